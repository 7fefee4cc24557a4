//! Many devices at once. [`poll_round`] polls every client once (benchmarks, tests); [`spawn_device`] runs one
//! device's poll loop at its interval (the daemon). Both bound concurrency with a semaphore and give every poll
//! a deadline, so one slow or dead device never delays the others beyond holding one permit.

use crate::{Client, Sample, SnmpError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The result of one poll of one device.
#[derive(Debug)]
pub struct Outcome {
    /// The device's name.
    pub device: String,
    /// When the poll started.
    pub started: Instant,
    /// How long it took.
    pub elapsed: Duration,
    /// The sample or why there is none.
    pub result: Result<Sample, SnmpError>,
}

async fn poll_one(client: &mut Client, deadline: Duration) -> Outcome {
    let started = Instant::now();
    let result = match tokio::time::timeout(deadline, client.poll()).await {
        Ok(r) => r,
        Err(_) => {
            client.reset();
            Err(SnmpError::Deadline(deadline))
        }
    };
    Outcome {
        device: client.target().name.clone(),
        started,
        elapsed: started.elapsed(),
        result,
    }
}

/// Polls every client once, at most `concurrency` at a time, each within `deadline`; returns the clients (with
/// their sessions kept for the next round) and the outcomes in the clients' order.
pub async fn poll_round(
    clients: Vec<Client>,
    concurrency: usize,
    deadline: Duration,
) -> (Vec<Client>, Vec<Outcome>) {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(clients.len());
    for mut c in clients {
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            let o = poll_one(&mut c, deadline).await;
            (c, o)
        }));
    }
    let mut cs = Vec::with_capacity(tasks.len());
    let mut os = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok((c, o)) = t.await {
            cs.push(c);
            os.push(o);
        }
    }
    (cs, os)
}

/// Runs one device's poll loop: first poll after `offset` (to spread devices over the interval), then every
/// `interval`; each poll holds one permit of `sem` and ends by `deadline`. Outcomes go to `tx`; the loop ends
/// when `stop` is cancelled or the receiver is gone.
pub fn spawn_device(
    mut client: Client,
    interval: Duration,
    offset: Duration,
    deadline: Duration,
    sem: Arc<Semaphore>,
    tx: mpsc::Sender<Outcome>,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let start = tokio::time::Instant::now() + offset;
        let mut tick = tokio::time::interval_at(start, interval.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let permit = tokio::select! {
                _ = stop.cancelled() => return,
                p = sem.clone().acquire_owned() => p,
            };
            let outcome = tokio::select! {
                _ = stop.cancelled() => return,
                o = poll_one(&mut client, deadline) => o,
            };
            drop(permit);
            if tx.send(outcome).await.is_err() {
                return;
            }
        }
    })
}
