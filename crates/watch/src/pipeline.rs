//! The worker threads between the socket queues and the stores: the flow decoder (one thread owns the template
//! cache) and the syslog parser. Each reads a bounded queue, updates metrics, and hands rows to its writer's
//! bounded queue (flows: the SQLite writer; syslog: the log store writer) — dropping and counting when that is
//! full. Syslog travels in batches (the frames of one
//! TCP read become one item and one batch of rows), so each hop is paid once per batch, not per message.
//!
//! ```text
//!  UDP 6343 ─┐
//!  UDP 2055 ─┼─► [flow queue] ─► flow decoder ── flows/counters ─► [store queue] ─► writer ─► SQLite
//!  UDP 4739 ─┘                                                                     query API reads (WAL) ▲
//!  UDP 514 ──┬─► [syslog queue] ─► syslog parser ── logs ─► [logs queue] ─► log writer ─► segment files
//!  TCP 514 ──┘   (TCP waits for room)                                      query API scans blocks ▲
//! ```

use crate::collect::{log_row, FlowDecoder};
use crate::listen::{FlowDatagram, SyslogItem};
use crate::metrics::{ExporterOnly, ExporterProto, IfLabels, Kind, Metrics, SyslogLabels};
use crate::store::{LogBatch, StoreMsg, WriterCmd};
use std::collections::HashSet;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Offers a message to the store queue; counts it as dropped when the queue is full.
fn offer(
    store: &SyncSender<WriterCmd>,
    msg: StoreMsg,
    label: &str,
    input: &'static str,
    metrics: &Metrics,
) -> bool {
    let rows = msg.rows() as u64;
    match store.try_send(WriterCmd::Data(msg)) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            metrics.drop_n(label, input, "store_queue_full", rows);
            true
        }
        Err(TrySendError::Disconnected(_)) => false,
    }
}

/// Runs the flow decoder until its queue closes.
pub fn flow_worker(
    mut rx: mpsc::Receiver<FlowDatagram>,
    store: SyncSender<WriterCmd>,
    metrics: Arc<Metrics>,
    mut dec: FlowDecoder,
) {
    let mut last_expire_ms = 0i64;
    let mut reported: HashSet<String> = HashSet::new();
    let depth = metrics
        .queue_depth
        .get_or_create(&Kind { kind: "flow" })
        .clone();
    while let Some(d) = rx.blocking_recv() {
        depth.set(rx.len() as i64);
        let label = metrics.exporters.label(d.peer);
        let out = dec.decode(d.input, d.peer, d.received_ms, &d.bytes);
        let key = ExporterProto {
            exporter: label.clone(),
            protocol: out.protocol,
        };
        metrics.datagrams.get_or_create(&key).inc();
        if let Some(e) = &out.fatal {
            metrics.decode_errors.get_or_create(&key).inc();
            tracing::debug!(peer = %d.peer, error = %e, "undecodable flow datagram");
            continue;
        }
        if out.partial_errors > 0 {
            metrics
                .decode_errors
                .get_or_create(&key)
                .inc_by(out.partial_errors as u64);
        }
        if out.missing_templates > 0 {
            metrics
                .missing_templates
                .get_or_create(&ExporterOnly {
                    exporter: label.clone(),
                })
                .inc_by(out.missing_templates as u64);
        }
        if out.protocol == "netflow_v9" || out.protocol == "ipfix" {
            let n = dec
                .templates()
                .templates_of(crate::metrics::canonical(d.peer));
            metrics
                .templates
                .get_or_create(&ExporterOnly {
                    exporter: label.clone(),
                })
                .set(n as i64);
            reported.insert(label.clone());
        }
        metrics
            .records
            .get_or_create(&key)
            .inc_by(out.records.len() as u64);
        if !out.counters.is_empty() {
            metrics
                .counter_samples
                .get_or_create(&ExporterOnly {
                    exporter: label.clone(),
                })
                .inc_by(out.counters.len() as u64);
        }
        if out.untracked > 0 {
            metrics.if_untracked.inc_by(out.untracked);
        }
        for r in &out.rates {
            let exporter = metrics.exporters.label(r.exporter);
            for (direction, bps, pps) in [("in", r.in_bps, r.in_pps), ("out", r.out_bps, r.out_pps)]
            {
                let l = IfLabels {
                    exporter: exporter.clone(),
                    if_index: r.if_index.to_string(),
                    direction,
                };
                metrics.if_bps.get_or_create(&l).set(bps);
                metrics.if_pps.get_or_create(&l).set(pps);
            }
        }
        let alive = (out.records.is_empty()
            || offer(
                &store,
                StoreMsg::Flows {
                    received_ms: d.received_ms,
                    peer: d.peer,
                    records: out.records,
                },
                &label,
                "flow",
                &metrics,
            ))
            && (out.counters.is_empty()
                || offer(
                    &store,
                    StoreMsg::Counters {
                        peer: d.peer,
                        rows: out.counters,
                    },
                    &label,
                    "flow",
                    &metrics,
                ));
        if !alive {
            break;
        }
        if d.received_ms - last_expire_ms >= 10_000 {
            last_expire_ms = d.received_ms;
            let n = dec.expire((d.received_ms / 1000).max(0) as u64);
            if n > 0 {
                tracing::info!(templates = n, "NetFlow/IPFIX templates expired");
                let now: HashSet<String> = dec
                    .templates()
                    .exporters()
                    .into_iter()
                    .map(|(a, n)| {
                        let l = metrics.exporters.label(a);
                        metrics
                            .templates
                            .get_or_create(&ExporterOnly {
                                exporter: l.clone(),
                            })
                            .set(n as i64);
                        l
                    })
                    .collect();
                for gone in reported.difference(&now) {
                    metrics
                        .templates
                        .get_or_create(&ExporterOnly {
                            exporter: gone.clone(),
                        })
                        .set(0);
                }
                reported = now;
            }
        }
    }
    depth.set(0);
}

/// Most syslog batches a parser has waiting in the store queue (each at most
/// [`crate::listen::MAX_BATCH_FRAMES`] rows): bounds the memory the store queue holds for syslog when the writer
/// lags, as a one-message-per-item queue did.
pub const MAX_LOG_BATCHES_IN_FLIGHT: usize = 256;

/// Runs the syslog parser until its queue closes. `local_offset` is shared so a reload can change it.
///
/// Each item (a datagram, or the frames of one TCP read) is parsed into one [`LogBatch`] and handed to the writer
/// in one queue hop (encoding the rows here instead, so the writer only appends bytes, measured 10 % more CPU in
/// all). TCP input waits while [`MAX_LOG_BATCHES_IN_FLIGHT`] batches are queued (so the connection
/// stops being read and the sender slows down); UDP input is dropped and counted then.
pub fn syslog_worker(
    mut rx: mpsc::Receiver<SyslogItem>,
    store: SyncSender<WriterCmd>,
    metrics: Arc<Metrics>,
    local_offset: Arc<AtomicI32>,
) {
    let depth = metrics
        .queue_depth
        .get_or_create(&Kind { kind: "syslog" })
        .clone();
    let ticket = Arc::new(());
    while let Some(m) = rx.blocking_recv() {
        depth.set(rx.len() as i64);
        let label = metrics.exporters.label(m.peer);
        let offset = local_offset.load(Ordering::Relaxed) as i16;
        let mut rows = Vec::with_capacity(m.len());
        let mut malformed = 0u64;
        for bytes in m.messages() {
            let row = log_row(bytes, m.peer, m.transport, m.received_ms, offset);
            malformed += u64::from(row.malformed);
            rows.push(row);
        }
        if rows.is_empty() {
            continue;
        }
        let l = SyslogLabels {
            exporter: label.clone(),
            transport: m.transport,
        };
        metrics
            .syslog_messages
            .get_or_create(&l)
            .inc_by(rows.len() as u64);
        if malformed > 0 {
            metrics.syslog_malformed.get_or_create(&l).inc_by(malformed);
        }
        let tcp = m.transport == "tcp";
        if Arc::strong_count(&ticket) > MAX_LOG_BATCHES_IN_FLIGHT {
            if !tcp {
                metrics.drop_n(&label, "syslog", "store_queue_full", rows.len() as u64);
                continue;
            }
            // TCP is lossless: wait until the writer has taken batches (bounded by the writer's progress; a
            // stopped writer drops its queue, and with it the tickets).
            while Arc::strong_count(&ticket) > MAX_LOG_BATCHES_IN_FLIGHT {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        let msg = StoreMsg::Logs(LogBatch {
            rows,
            ticket: Some(ticket.clone()),
        });
        let alive = if tcp {
            // Wait for room, so the connection stops being read and the sender slows down.
            store.send(WriterCmd::Data(msg)).is_ok()
        } else {
            offer(&store, msg, &label, "syslog", &metrics)
        };
        if !alive {
            break;
        }
    }
    depth.set(0);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::net::IpAddr;

    /// With the writer not taking anything, UDP batches beyond the in-flight bound are dropped (and the store
    /// queue, though it has room, holds no more than the bound).
    #[test]
    fn syslog_batches_in_flight_are_bounded() {
        let metrics = Arc::new(Metrics::register(
            &mut prometheus_client::registry::Registry::default(),
            16,
        ));
        let (store_tx, store_rx) = std::sync::mpsc::sync_channel(4 * MAX_LOG_BATCHES_IN_FLIGHT);
        let (tx, rx) = mpsc::channel(4 * MAX_LOG_BATCHES_IN_FLIGHT);
        let peer: IpAddr = "198.18.0.9".parse().unwrap();
        let extra = 40;
        for i in 0..MAX_LOG_BATCHES_IN_FLIGHT + extra {
            let line = format!("<13>1 2026-11-27T08:00:00Z h app - - - message {i}");
            tx.try_send(SyslogItem::one(peer, "udp", 0, line.into_bytes()))
                .unwrap();
        }
        drop(tx);
        syslog_worker(rx, store_tx, metrics, Arc::new(AtomicI32::new(0)));
        let mut batches = 0;
        while let Ok(WriterCmd::Data(StoreMsg::Logs(b))) = store_rx.try_recv() {
            assert_eq!(b.rows.len(), 1);
            batches += 1;
        }
        assert_eq!(batches, MAX_LOG_BATCHES_IN_FLIGHT);
    }
}
