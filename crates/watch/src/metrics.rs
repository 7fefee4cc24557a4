//! The watch daemon's Prometheus metrics (`yagura_watch_*`). Every label set is bounded: exporters beyond
//! `metrics.max_exporters` share the label `other`, interface gauges stop at `metrics.max_interfaces`, and the
//! top-N families are cleared and refilled (at most N series each) on every refresh.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

/// `{exporter, protocol}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExporterProto {
    /// Exporter (source address) or `other`.
    pub exporter: String,
    /// `sflow`, `netflow_v5`, `netflow_v9`, `ipfix`, `syslog`, `unknown`.
    pub protocol: &'static str,
}

/// `{exporter}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExporterOnly {
    /// Exporter (source address) or `other`.
    pub exporter: String,
}

/// `{exporter, input, reason}` for drops.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// Exporter (source address) or `other`.
    pub exporter: String,
    /// `flow` or `syslog`.
    pub input: &'static str,
    /// `queue_full` (decoder queue), `store_queue_full`, `disk` (store not writable), `too_long`.
    pub reason: &'static str,
}

/// `{exporter, if_index, direction}` for interface rates.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IfLabels {
    /// sFlow agent or `other`.
    pub exporter: String,
    /// ifIndex.
    pub if_index: String,
    /// `in` or `out`.
    pub direction: &'static str,
}

/// `{transport, exporter}` for syslog.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyslogLabels {
    /// Sender address or `other`.
    pub exporter: String,
    /// `udp` or `tcp`.
    pub transport: &'static str,
}

/// A single static label value.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    /// The value.
    pub kind: &'static str,
}

/// `{table, reason}` for retention.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Deleted {
    /// Table.
    pub table: &'static str,
    /// `age` or `size`.
    pub reason: &'static str,
}

/// `{by, rank, key}` for top-N gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopLabels {
    /// `src`, `dst`, `port` or `exporter`.
    pub by: &'static str,
    /// 1..=N.
    pub rank: String,
    /// The address, `proto/port` or exporter.
    pub key: String,
}

/// A gauge holding a float (seconds, rates, timestamps).
pub type FloatGauge = Gauge<f64, AtomicU64>;

/// Maps exporter addresses to bounded label values.
#[derive(Debug)]
pub struct ExporterLabels {
    max: usize,
    seen: Mutex<HashMap<IpAddr, String>>,
}

impl ExporterLabels {
    /// At most `max` distinct labels, then `other`.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The label for `ip`.
    pub fn label(&self, ip: IpAddr) -> String {
        let ip = canonical(ip);
        let Ok(mut seen) = self.seen.lock() else {
            return "other".to_string();
        };
        if let Some(l) = seen.get(&ip) {
            return l.clone();
        }
        if seen.len() >= self.max {
            return "other".to_string();
        }
        let l = ip.to_string();
        seen.insert(ip, l.clone());
        l
    }
}

/// An IPv4-mapped IPv6 address as IPv4 (dual-stack sockets report those).
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Every metric the daemon exports, registered under `yagura_watch_`.
#[derive(Debug)]
pub struct Metrics {
    /// Bounded exporter labels.
    pub exporters: ExporterLabels,
    /// Datagrams received per exporter and protocol.
    pub datagrams: Family<ExporterProto, Counter>,
    /// Flow records decoded per exporter and protocol.
    pub records: Family<ExporterProto, Counter>,
    /// Datagrams (or parts) that failed to decode.
    pub decode_errors: Family<ExporterProto, Counter>,
    /// NetFlow v9/IPFIX data sets skipped because their template was unknown.
    pub missing_templates: Family<ExporterOnly, Counter>,
    /// Dropped datagrams/messages/rows by reason.
    pub dropped: Family<DropLabels, Counter>,
    /// Templates held per exporter.
    pub templates: Family<ExporterOnly, Gauge>,
    /// sFlow counter samples (interface counters) received.
    pub counter_samples: Family<ExporterOnly, Counter>,
    /// Interface bits/s from sFlow counter samples.
    pub if_bps: Family<IfLabels, FloatGauge>,
    /// Interface packets/s from sFlow counter samples.
    pub if_pps: Family<IfLabels, FloatGauge>,
    /// Interfaces not tracked because `metrics.max_interfaces` was reached.
    pub if_untracked: Counter,
    /// Syslog messages received.
    pub syslog_messages: Family<SyslogLabels, Counter>,
    /// Syslog messages the parser flagged as malformed (kept with their raw line).
    pub syslog_malformed: Family<SyslogLabels, Counter>,
    /// Syslog TCP framing errors (oversized or invalid frames).
    pub framing_errors: Counter,
    /// Open syslog TCP connections.
    pub tcp_connections: Gauge,
    /// Syslog TCP connections refused (limit reached).
    pub tcp_refused: Counter,
    /// Items waiting in each queue.
    pub queue_depth: Family<Kind, Gauge>,
    /// 1 while the store accepts writes, 0 while it is failing (disk full, quota, I/O).
    pub store_writable: Gauge,
    /// Bytes of the database file and its WAL on disk.
    pub store_file_bytes: Gauge,
    /// Bytes of live data in the database (pages in use).
    pub store_used_bytes: Gauge,
    /// The size cap in force.
    pub store_max_bytes: Gauge,
    /// Rows written per table.
    pub store_rows: Family<Kind, Counter>,
    /// Failed writes by kind (`disk_full`, `io`, `other`).
    pub store_errors: Family<Kind, Counter>,
    /// Commit duration.
    pub store_commit_seconds: Histogram,
    /// Rows deleted by retention.
    pub retention_deleted: Family<Deleted, Counter>,
    /// Top-N by bytes over the last minutes (rank and key labels; at most N series per `by`).
    pub top_bytes: Family<TopLabels, Gauge>,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn register(registry: &mut Registry, max_exporters: usize) -> Self {
        let m = Self {
            exporters: ExporterLabels::new(max_exporters),
            datagrams: Family::default(),
            records: Family::default(),
            decode_errors: Family::default(),
            missing_templates: Family::default(),
            dropped: Family::default(),
            templates: Family::default(),
            counter_samples: Family::default(),
            if_bps: Family::default(),
            if_pps: Family::default(),
            if_untracked: Counter::default(),
            syslog_messages: Family::default(),
            syslog_malformed: Family::default(),
            framing_errors: Counter::default(),
            tcp_connections: Gauge::default(),
            tcp_refused: Counter::default(),
            queue_depth: Family::default(),
            store_writable: Gauge::default(),
            store_file_bytes: Gauge::default(),
            store_used_bytes: Gauge::default(),
            store_max_bytes: Gauge::default(),
            store_rows: Family::default(),
            store_errors: Family::default(),
            store_commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            retention_deleted: Family::default(),
            top_bytes: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("yagura_watch");
        r.register(
            "datagrams",
            "Datagrams received per exporter and protocol",
            m.datagrams.clone(),
        );
        r.register(
            "records",
            "Flow records decoded per exporter and protocol",
            m.records.clone(),
        );
        r.register(
            "decode_errors",
            "Datagrams or parts of datagrams that failed to decode",
            m.decode_errors.clone(),
        );
        r.register(
            "missing_template_sets",
            "NetFlow v9/IPFIX data sets skipped for an unknown template",
            m.missing_templates.clone(),
        );
        r.register(
            "dropped",
            "Datagrams, messages or rows dropped, by reason",
            m.dropped.clone(),
        );
        r.register(
            "templates",
            "NetFlow v9/IPFIX templates held per exporter",
            m.templates.clone(),
        );
        r.register(
            "counter_samples",
            "sFlow counter samples received",
            m.counter_samples.clone(),
        );
        r.register(
            "interface_bits_per_second",
            "Interface bit rate from sFlow counter samples",
            m.if_bps.clone(),
        );
        r.register(
            "interface_packets_per_second",
            "Interface packet rate from sFlow counter samples",
            m.if_pps.clone(),
        );
        r.register(
            "interfaces_untracked",
            "Counter samples for interfaces beyond metrics.max_interfaces",
            m.if_untracked.clone(),
        );
        r.register(
            "syslog_messages",
            "Syslog messages received",
            m.syslog_messages.clone(),
        );
        r.register(
            "syslog_malformed",
            "Syslog messages flagged malformed (stored with the raw line)",
            m.syslog_malformed.clone(),
        );
        r.register(
            "syslog_framing_errors",
            "Syslog TCP frames that were oversized or invalid",
            m.framing_errors.clone(),
        );
        r.register(
            "syslog_tcp_connections",
            "Open syslog TCP connections",
            m.tcp_connections.clone(),
        );
        r.register(
            "syslog_tcp_refused",
            "Syslog TCP connections refused at the limit",
            m.tcp_refused.clone(),
        );
        r.register(
            "queue_depth",
            "Items waiting in a queue",
            m.queue_depth.clone(),
        );
        r.register(
            "store_writable",
            "1 while the store accepts writes, 0 while disk full or failing",
            m.store_writable.clone(),
        );
        r.register(
            "store_file_bytes",
            "Bytes of the database and its WAL on disk",
            m.store_file_bytes.clone(),
        );
        r.register(
            "store_used_bytes",
            "Bytes of live pages in the database",
            m.store_used_bytes.clone(),
        );
        r.register(
            "store_max_bytes",
            "Size cap of the store",
            m.store_max_bytes.clone(),
        );
        r.register("store_rows", "Rows written per table", m.store_rows.clone());
        r.register(
            "store_errors",
            "Failed store writes by kind",
            m.store_errors.clone(),
        );
        r.register(
            "store_commit_seconds",
            "Time to commit one batch",
            m.store_commit_seconds.clone(),
        );
        r.register(
            "retention_deleted_rows",
            "Rows deleted by retention (age or size)",
            m.retention_deleted.clone(),
        );
        r.register(
            "top_bytes",
            "Top-N by bytes over the last 5 minutes (rank 1 is the largest)",
            m.top_bytes.clone(),
        );
        m
    }

    /// Counts `n` dropped items.
    pub fn drop_n(&self, exporter: &str, input: &'static str, reason: &'static str, n: u64) {
        self.dropped
            .get_or_create(&DropLabels {
                exporter: exporter.to_string(),
                input,
                reason,
            })
            .inc_by(n);
    }
}
