//! Connection workers: one thread per core, each running its own single-threaded tokio runtime. A proxied
//! connection is handed over once, right after `accept`, and from then on its reads, writes and timers all
//! happen on that one thread — no cross-thread wake-ups per packet, which is what the event-loop-per-core
//! design of haproxy and nginx buys them.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use yagura_daemon::CancellationToken;

/// The worker threads' runtimes; connections are spread over them in turn.
#[derive(Debug)]
pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
}

impl Workers {
    /// Starts `n` worker threads (at least one); they stop when `stop` is cancelled, dropping what still
    /// runs on them. With no thread to be had, connections run on the caller's runtime instead.
    pub fn start(n: usize, stop: &CancellationToken) -> Self {
        let mut handles = Vec::new();
        for i in 0..n.max(1) {
            let (tx, rx) = std::sync::mpsc::channel();
            let stop = stop.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("edge-lb-{i}"))
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = tx.send(Ok(rt.handle().clone()));
                    rt.block_on(stop.cancelled());
                });
            let handle = match spawned {
                Ok(_) => rx.recv().ok().and_then(Result::ok),
                Err(_) => None,
            };
            match handle {
                Some(h) => handles.push(h),
                None => {
                    tracing::warn!(
                        worker = i,
                        "could not start an L4 worker thread; using fewer"
                    );
                    break;
                }
            }
        }
        Self {
            handles,
            next: AtomicUsize::new(0),
        }
    }

    /// Runs `f` on the next worker, or on the current runtime when there is none.
    pub fn spawn<F>(&self, f: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if self.handles.is_empty() {
            tokio::spawn(f);
            return;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        if let Some(h) = self.handles.get(i) {
            h.spawn(f);
        }
    }
}
