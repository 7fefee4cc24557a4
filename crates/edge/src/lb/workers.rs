//! Connection workers: one thread per core, each running its own single-threaded tokio runtime. Every worker
//! accepts on its own `SO_REUSEPORT` socket of each listener (the kernel spreads new connections over them),
//! so a connection is accepted, proxied and closed on one thread: no hand-over after `accept`, no
//! cross-thread wake-ups per packet — the event-loop-per-core design of haproxy and nginx.

use std::future::Future;

use tokio::runtime::Handle;
use yagura_daemon::CancellationToken;

/// The worker threads' runtimes.
#[derive(Debug)]
pub struct Workers {
    handles: Vec<Handle>,
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
        Self { handles }
    }

    /// How many workers run (at least one counts: with none, work runs on the caller's runtime).
    pub fn count(&self) -> usize {
        self.handles.len().max(1)
    }

    /// Runs `f` on worker `i` (modulo [`Workers::count`]), or on the current runtime when there is none.
    pub fn spawn_on<F>(&self, i: usize, f: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match self.handles.get(i % self.count()) {
            Some(h) => {
                h.spawn(f);
            }
            None => {
                tokio::spawn(f);
            }
        }
    }
}
