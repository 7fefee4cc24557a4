//! Spreads HTTPS connections evenly over the serving threads (Envoy's "exact balance"). `SO_REUSEPORT` hashes
//! each new connection to a thread, which can leave one core serving many more long-lived keep-alive
//! connections than another (64 connections split 38/26 is common) and queueing while the other idles; a thread
//! that accepts a connection while it serves more than the least busy thread hands the socket over to it.

use crate::metrics::GateMetrics;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// A connection handed from the thread that accepted it to the one that will serve it.
pub type Handoff = (std::net::TcpStream, SocketAddr, Open);

/// Open connections per serving thread, and a way to hand a connection to each thread.
pub struct Balance {
    open: Box<[AtomicUsize]>,
    inbox: Vec<UnboundedSender<Handoff>>,
    metrics: GateMetrics,
}

impl Balance {
    /// For `n` serving threads; the receivers are the threads' inboxes, in order.
    pub fn new(n: usize, metrics: GateMetrics) -> (Arc<Self>, Vec<UnboundedReceiver<Handoff>>) {
        let (tx, rx): (Vec<_>, Vec<_>) = (0..n.max(1)).map(|_| unbounded_channel()).unzip();
        let b = Self {
            open: (0..n.max(1)).map(|_| AtomicUsize::new(0)).collect(),
            inbox: tx,
            metrics,
        };
        (Arc::new(b), rx)
    }

    /// The thread that should serve a connection thread `i` accepted: `i` unless another serves fewer.
    pub fn pick(&self, i: usize) -> usize {
        let mine = self.open.get(i).map_or(0, |c| c.load(Ordering::Relaxed));
        let least = self
            .open
            .iter()
            .enumerate()
            .map(|(j, c)| (c.load(Ordering::Relaxed), j))
            .min();
        match least {
            Some((n, j)) if n < mine => j,
            _ => i,
        }
    }

    /// Counts a connection served by thread `i` until the returned guard is dropped.
    pub fn open(self: &Arc<Self>, i: usize) -> Open {
        if let Some(c) = self.open.get(i) {
            let n = c.fetch_add(1, Ordering::Relaxed) + 1;
            self.metrics.worker_connections(i, n);
        }
        Open {
            balance: Arc::clone(self),
            worker: i,
        }
    }

    /// Hands a connection (counted for thread `to` by `open`) to thread `to`; gives it back when that thread no
    /// longer takes connections.
    pub fn hand_over(&self, to: usize, h: Handoff) -> Result<(), Handoff> {
        match self.inbox.get(to) {
            Some(tx) => tx.send(h).map_err(|e| e.0),
            None => Err(h),
        }
    }
}

/// One open connection of a serving thread; dropped when the connection ends.
pub struct Open {
    balance: Arc<Balance>,
    worker: usize,
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(c) = self.balance.open.get(self.worker) {
            let n = c.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
            self.balance.metrics.worker_connections(self.worker, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_to_the_least_busy_thread() {
        let (b, _rx) = Balance::new(3, GateMetrics::register(&mut Default::default()));
        assert_eq!(b.pick(1), 1, "all equal: the accepting thread serves");
        let a = b.open(1);
        assert_eq!(b.pick(1), 0);
        let c = b.open(0);
        let d = b.open(2);
        assert_eq!(b.pick(0), 0);
        let e = b.open(0);
        assert_eq!(b.pick(0), 1);
        drop((a, c, d, e));
        assert_eq!(b.pick(2), 2);
    }
}
