//! Process signals as events: SIGHUP asks for a reload, SIGTERM/SIGINT cancel the shutdown token (a second one
//! exits at once); and [`drain`], which waits for in-flight work up to a deadline.

use std::future::Future;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the signal handlers deliver.
#[derive(Debug)]
pub struct Signals {
    /// Cancelled on the first SIGTERM or SIGINT.
    pub shutdown: CancellationToken,
    /// One message per SIGHUP (coalesced while a reload is pending).
    pub reload: mpsc::Receiver<()>,
}

/// Installs the handlers; must run inside a tokio runtime.
pub fn install() -> std::io::Result<Signals> {
    let shutdown = CancellationToken::new();
    let (tx, rx) = mpsc::channel(1);
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let token = shutdown.clone();
    tokio::spawn(async move {
        let mut stopping = false;
        loop {
            tokio::select! {
                Some(()) = hup.recv() => {
                    tracing::info!("SIGHUP: reloading configuration");
                    let _ = tx.try_send(());
                }
                Some(()) = term.recv() => stop(&token, &mut stopping, "SIGTERM"),
                Some(()) = int.recv() => stop(&token, &mut stopping, "SIGINT"),
                else => break,
            }
        }
    });
    Ok(Signals {
        shutdown,
        reload: rx,
    })
}

fn stop(token: &CancellationToken, stopping: &mut bool, name: &str) {
    if *stopping {
        tracing::warn!("{name} again: exiting without waiting for the drain");
        std::process::exit(1);
    }
    *stopping = true;
    tracing::info!("{name}: draining, then exiting (send it again to exit at once)");
    token.cancel();
}

/// Waits for `work` up to `deadline`. Returns true when it finished; otherwise logs that `what` was still
/// running and returns false.
pub async fn drain<F: Future>(what: &str, deadline: Duration, work: F) -> bool {
    match tokio::time::timeout(deadline, work).await {
        Ok(_) => true,
        Err(_) => {
            tracing::warn!(deadline = ?deadline, "drain deadline passed with {what} still running");
            false
        }
    }
}
