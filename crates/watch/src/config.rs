//! The watch daemon's TOML config (`yagura watch --config FILE`): listeners, queues, storage, retention, HTTP.
//! Loaded through `yagura-config`, so every problem is reported at once with `file:line:col`.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use yagura_config::{Diagnostic, KeyPath};

/// The whole config file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct WatchConfig {
    /// Flow and syslog listeners.
    #[serde(default)]
    pub listen: Listeners,
    /// Queue capacities and limits between sockets, decoders and the store.
    #[serde(default)]
    pub queues: Queues,
    /// The embedded store.
    pub storage: Storage,
    /// How long each kind of data is kept.
    #[serde(default)]
    pub retention: Retention,
    /// The HTTP server (query API, `/metrics`, health).
    #[serde(default)]
    pub http: Http,
    /// Metric label bounds.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Syslog parsing.
    #[serde(default)]
    pub syslog: SyslogConfig,
    /// Flow decoding.
    #[serde(default)]
    pub flow: FlowConfig,
    /// `[snmp]` and `[[snmp.devices]]`: SNMP interface polling.
    #[serde(default)]
    pub snmp: crate::snmp::SnmpConfig,
    /// `[[prometheus]]`: Prometheus servers whose ingestion is probed.
    #[serde(default)]
    pub prometheus: Vec<crate::guard::prometheus::PrometheusConfig>,
    /// `[[alertmanager]]`: Alertmanagers whose health is checked.
    #[serde(default)]
    pub alertmanager: Vec<crate::guard::prometheus::AlertmanagerConfig>,
    /// `[[disk]]`: paths, quotas and budgets the disk guard watches.
    #[serde(default)]
    pub disk: Vec<crate::guard::disk::DiskConfig>,
    /// `[alerts]` and `[[alerts.notifiers]]`: grouping, timing, spool and receivers of alert notifications.
    #[serde(default)]
    pub alerts: yagura_alert::AlertsConfig,
    /// `[[heartbeats]]`: expected pings and Alertmanager Watchdog webhooks (dead man's switch).
    #[serde(default)]
    pub heartbeats: Vec<crate::guard::heartbeat::HeartbeatConfig>,
    /// `[[peers]]`: other watch daemons this one pings (they list it under their `[[heartbeats]]`).
    #[serde(default)]
    pub peers: Vec<crate::guard::peers::PeerConfig>,
}

/// `[listen]`: socket addresses; an empty list disables that input.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Listeners {
    /// sFlow v5 (UDP), conventionally port 6343.
    pub sflow: Vec<SocketAddr>,
    /// NetFlow v5/v9 and IPFIX (UDP), conventionally 2055 and 4739.
    pub netflow: Vec<SocketAddr>,
    /// Syslog over UDP (RFC 5426), conventionally 514.
    pub syslog_udp: Vec<SocketAddr>,
    /// Syslog over TCP (RFC 6587 octet counting or LF framing), conventionally 514 or 601.
    pub syslog_tcp: Vec<SocketAddr>,
}

impl Default for Listeners {
    fn default() -> Self {
        let a = |s: &str| s.parse().into_iter().collect::<Vec<SocketAddr>>();
        Self {
            sflow: a("0.0.0.0:6343"),
            netflow: [a("0.0.0.0:2055"), a("0.0.0.0:4739")].concat(),
            syslog_udp: a("0.0.0.0:514"),
            syslog_tcp: a("0.0.0.0:514"),
        }
    }
}

/// `[queues]`: every buffer between a socket and the disk is bounded; what does not fit is dropped and counted.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Queues {
    /// Datagrams waiting for the flow decoder.
    pub flow_datagrams: usize,
    /// Slots for input waiting for the syslog parser: one UDP datagram, or up to 64 frames / 16 KiB read from
    /// one TCP connection, per slot.
    pub syslog_messages: usize,
    /// Batches waiting for the store writer (one per datagram or message).
    pub store: usize,
    /// Open syslog TCP connections at once; more are refused and counted.
    pub max_tcp_connections: usize,
    /// Longest syslog message (frame) accepted over TCP, bytes.
    pub max_message_bytes: usize,
    /// Socket receive buffer requested for UDP listeners, bytes (0 keeps the system default).
    pub udp_recv_buffer: usize,
}

impl Default for Queues {
    fn default() -> Self {
        Self {
            flow_datagrams: 8192,
            syslog_messages: 8192,
            store: 16384,
            max_tcp_connections: 256,
            max_message_bytes: 64 * 1024,
            udp_recv_buffer: 4 * 1024 * 1024,
        }
    }
}

/// `[storage]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Storage {
    /// The SQLite database file (its `-wal` and `-shm` files live beside it).
    pub path: PathBuf,
    /// Hard cap on the store (database + write-ahead log), e.g. `"2GiB"`. Oldest data goes first.
    pub max_size: ByteSize,
    /// Keep raw flow records (turn off to store only per-minute rollups).
    #[serde(default = "yes")]
    pub raw_flows: bool,
    /// Longest time between commits: a crash loses at most this much (default 1 s).
    #[serde(default = "one_second", with = "yagura_config::duration")]
    pub commit_interval: Duration,
    /// How often retention (age and size) is enforced (default 5 s).
    #[serde(default = "five_seconds", with = "yagura_config::duration")]
    pub retention_interval: Duration,
    /// After a disk-full or I/O error, how long to wait before trying to store again (default 2 s).
    #[serde(default = "two_seconds", with = "yagura_config::duration")]
    pub retry_interval: Duration,
}

fn yes() -> bool {
    true
}
fn one_second() -> Duration {
    Duration::from_secs(1)
}
fn two_seconds() -> Duration {
    Duration::from_secs(2)
}
fn five_seconds() -> Duration {
    Duration::from_secs(5)
}

/// `[retention]`: age limits per kind of data (size is `storage.max_size`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Retention {
    /// Raw flow records.
    #[serde(with = "yagura_config::duration")]
    pub flows_raw: Duration,
    /// Per-minute flow rollups.
    #[serde(with = "yagura_config::duration")]
    pub flows_rollup: Duration,
    /// Syslog messages.
    #[serde(with = "yagura_config::duration")]
    pub logs: Duration,
    /// sFlow interface counter samples.
    #[serde(with = "yagura_config::duration")]
    pub counters: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            flows_raw: Duration::from_secs(6 * 3600),
            flows_rollup: Duration::from_secs(30 * 86400),
            logs: Duration::from_secs(14 * 86400),
            counters: Duration::from_secs(7 * 86400),
        }
    }
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Http {
    /// Where the query API, `/metrics` and `/healthz` are served.
    pub listen: SocketAddr,
    /// Most rows one query may return.
    pub max_rows: usize,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9480)),
            max_rows: 10_000,
        }
    }
}

/// `[metrics]`: bounds on label cardinality.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct MetricsConfig {
    /// Distinct exporter/peer labels; later ones are counted under `exporter="other"`.
    pub max_exporters: usize,
    /// Interfaces (exporter × ifIndex) with bps/pps gauges; later ones are not tracked (and counted).
    pub max_interfaces: usize,
    /// Entries in each top-N gauge family (talkers, destinations, ports), refreshed every minute.
    pub top_n: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            max_exporters: 64,
            max_interfaces: 1024,
            top_n: 10,
        }
    }
}

/// `[syslog]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
#[serde(default)]
pub struct SyslogConfig {
    /// UTC offset (minutes) assumed for RFC 3164 timestamps, which carry none.
    pub local_offset_minutes: i16,
}

/// `[flow]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct FlowConfig {
    /// NetFlow v9 / IPFIX templates not refreshed within this time are forgotten (default 30 min).
    #[serde(with = "yagura_config::duration")]
    pub template_timeout: Duration,
    /// Templates kept per exporter.
    pub max_templates_per_exporter: usize,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            template_timeout: Duration::from_secs(1800),
            max_templates_per_exporter: 512,
        }
    }
}

/// A byte count written as `"512MiB"`, `"2GB"`, `"1048576"` (or a bare integer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `123`, `64KiB`, `512MiB`, `2GiB`, `1TiB`, `10kB`, `5MB`, `2GB` (case-insensitive unit, optional space).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a size like \"512MiB\" or \"2GB\""))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            "t" | "tb" => 1_000_000_000_000,
            "tib" => 1 << 40,
            u => {
                return Err(format!(
                    "unknown size unit `{u}` (use B, kB, KiB, MB, MiB, GB, GiB)"
                ))
            }
        };
        Ok(Self((n * mult as f64) as u64))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Self(n)),
            Raw::S(s) => Self::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// The keys valid at a place, for "did you mean" on unknown keys.
pub fn fields_at(path: &KeyPath) -> &'static [&'static str] {
    use yagura_config::fields_of as f;
    match path.shape().as_slice() {
        [] => f::<WatchConfig>(),
        ["listen"] => f::<Listeners>(),
        ["queues"] => f::<Queues>(),
        ["storage"] => f::<Storage>(),
        ["retention"] => f::<Retention>(),
        ["http"] => f::<Http>(),
        ["metrics"] => f::<MetricsConfig>(),
        ["syslog"] => f::<SyslogConfig>(),
        ["flow"] => f::<FlowConfig>(),
        ["snmp", ..] => crate::snmp::fields_at(&path.shape()),
        ["prometheus"] => f::<crate::guard::prometheus::PrometheusConfig>(),
        ["alertmanager"] => f::<crate::guard::prometheus::AlertmanagerConfig>(),
        ["disk"] => f::<crate::guard::disk::DiskConfig>(),
        ["alerts", rest @ ..] => yagura_alert::config::fields_at(rest),
        ["heartbeats"] => f::<crate::guard::heartbeat::HeartbeatConfig>(),
        ["peers"] => f::<crate::guard::peers::PeerConfig>(),
        _ => &[],
    }
}

/// Smallest store the size retention can work with.
pub const MIN_STORE_BYTES: u64 = 1 << 20;

impl WatchConfig {
    /// Semantic checks after deserialization; every problem at its key path.
    pub fn validate(&self) -> Vec<Diagnostic> {
        let mut d = Vec::new();
        let root = KeyPath::root();
        let q = root.key("queues");
        for (name, v) in [
            ("flow_datagrams", self.queues.flow_datagrams),
            ("syslog_messages", self.queues.syslog_messages),
            ("store", self.queues.store),
            ("max_tcp_connections", self.queues.max_tcp_connections),
        ] {
            if v == 0 || v > 1_000_000 {
                d.push(
                    Diagnostic::error(
                        "out-of-range",
                        format!("`queues.{name}` must be 1..=1000000"),
                    )
                    .at(&q.key(name)),
                );
            }
        }
        if !(512..=16 * 1024 * 1024).contains(&self.queues.max_message_bytes) {
            d.push(
                Diagnostic::error(
                    "out-of-range",
                    "`queues.max_message_bytes` must be 512 B ..= 16 MiB",
                )
                .at(&q.key("max_message_bytes")),
            );
        }
        let s = root.key("storage");
        if self.storage.max_size.0 < MIN_STORE_BYTES {
            d.push(
                Diagnostic::error("out-of-range", "`storage.max_size` must be at least 1MiB")
                    .at(&s.key("max_size"))
                    .hint("write a size like \"2GiB\""),
            );
        }
        if self.storage.path.as_os_str().is_empty() {
            d.push(Diagnostic::error("empty", "`storage.path` is empty").at(&s.key("path")));
        }
        for (name, v, max) in [
            (
                "commit_interval",
                self.storage.commit_interval,
                Duration::from_secs(1),
            ),
            (
                "retention_interval",
                self.storage.retention_interval,
                Duration::from_secs(3600),
            ),
            (
                "retry_interval",
                self.storage.retry_interval,
                Duration::from_secs(3600),
            ),
        ] {
            if v.is_zero() || v > max {
                d.push(
                    Diagnostic::error(
                        "out-of-range",
                        format!(
                            "`storage.{name}` must be above 0 and at most {}",
                            humantime::format_duration(max)
                        ),
                    )
                    .at(&s.key(name))
                    .hint(if name == "commit_interval" {
                        "a crash loses at most one commit interval; the daemon promises at most 1s"
                    } else {
                        "write durations with a unit: \"500ms\", \"5s\""
                    }),
                );
            }
        }
        let r = root.key("retention");
        for (name, v) in [
            ("flows_raw", self.retention.flows_raw),
            ("flows_rollup", self.retention.flows_rollup),
            ("logs", self.retention.logs),
            ("counters", self.retention.counters),
        ] {
            if v < Duration::from_secs(60) {
                d.push(
                    Diagnostic::error(
                        "out-of-range",
                        format!("`retention.{name}` must be at least 1m"),
                    )
                    .at(&r.key(name)),
                );
            }
        }
        if self.retention.flows_rollup < self.retention.flows_raw {
            d.push(
                Diagnostic::warning(
                    "retention-order",
                    "`retention.flows_rollup` is shorter than `retention.flows_raw`: rollups usually outlive raw flows",
                )
                .at(&r.key("flows_rollup")),
            );
        }
        d.extend(crate::guard::prometheus::validate(
            &self.prometheus,
            &self.alertmanager,
            &root,
        ));
        d.extend(crate::guard::disk::validate(&self.disk, &root.key("disk")));
        d.extend(self.snmp.validate(&root.key("snmp")));
        d.extend(self.alerts.validate(&root.key("alerts")));
        d.extend(crate::guard::heartbeat::validate(
            &self.heartbeats,
            &root.key("heartbeats"),
        ));
        let beats: Vec<&str> = self.heartbeats.iter().map(|h| h.name.as_str()).collect();
        d.extend(crate::guard::peers::validate(
            &self.peers,
            &beats,
            &root.key("peers"),
        ));
        let m = root.key("metrics");
        if self.metrics.max_exporters == 0 || self.metrics.max_exporters > 10_000 {
            d.push(
                Diagnostic::error("out-of-range", "`metrics.max_exporters` must be 1..=10000")
                    .at(&m.key("max_exporters")),
            );
        }
        if self.metrics.max_interfaces > 100_000 {
            d.push(
                Diagnostic::error(
                    "out-of-range",
                    "`metrics.max_interfaces` must be at most 100000",
                )
                .at(&m.key("max_interfaces")),
            );
        }
        if self.metrics.top_n > 100 {
            d.push(
                Diagnostic::error("out-of-range", "`metrics.top_n` must be at most 100")
                    .at(&m.key("top_n")),
            );
        }
        if self.http.max_rows == 0 || self.http.max_rows > 1_000_000 {
            d.push(
                Diagnostic::error("out-of-range", "`http.max_rows` must be 1..=1000000")
                    .at(&root.key("http").key("max_rows")),
            );
        }
        if !(-1440..=1440).contains(&self.syslog.local_offset_minutes) {
            d.push(
                Diagnostic::error(
                    "out-of-range",
                    "`syslog.local_offset_minutes` must be within ±1440",
                )
                .at(&root.key("syslog").key("local_offset_minutes")),
            );
        }
        // Two listeners on one port and protocol.
        let l = root.key("listen");
        let mut udp: Vec<(SocketAddr, KeyPath)> = Vec::new();
        for (name, list) in [
            ("sflow", &self.listen.sflow),
            ("netflow", &self.listen.netflow),
            ("syslog_udp", &self.listen.syslog_udp),
        ] {
            for (i, a) in list.iter().enumerate() {
                let here = l.key(name).index(i);
                // Port 0 asks the kernel for a free port: never a clash.
                if let Some((_, other)) = udp.iter().find(|(b, _)| b == a && a.port() != 0) {
                    d.push(
                        Diagnostic::error(
                            "duplicate-listener",
                            format!("UDP {a} is claimed twice"),
                        )
                        .at(&here)
                        .related(other, "first claimed here"),
                    );
                } else {
                    udp.push((*a, here));
                }
            }
        }
        let mut tcp: Vec<(SocketAddr, KeyPath)> = Vec::new();
        for (i, a) in self.listen.syslog_tcp.iter().enumerate() {
            let here = l.key("syslog_tcp").index(i);
            if let Some((_, other)) = tcp.iter().find(|(b, _)| b == a && a.port() != 0) {
                d.push(
                    Diagnostic::error("duplicate-listener", format!("TCP {a} is claimed twice"))
                        .at(&here)
                        .related(other, "first claimed here"),
                );
            } else {
                tcp.push((*a, here));
            }
        }
        if self.http.listen.port() != 0 && tcp.iter().any(|(a, _)| *a == self.http.listen) {
            d.push(
                Diagnostic::error(
                    "duplicate-listener",
                    format!(
                        "TCP {} is both a syslog listener and `http.listen`",
                        self.http.listen
                    ),
                )
                .at(&root.key("http").key("listen")),
            );
        }
        d
    }
}

impl yagura_daemon::DaemonConfig for WatchConfig {
    fn fields_at(path: &KeyPath) -> &'static [&'static str] {
        fields_at(path)
    }

    fn validate(&self) -> Vec<Diagnostic> {
        WatchConfig::validate(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn load(text: &str) -> Result<WatchConfig, String> {
        yagura_daemon::config::parse::<WatchConfig>("w.toml", text)
            .map(|l| l.config)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = load("[storage]\npath = \"/tmp/w.db\"\nmax_size = \"64MiB\"\n").unwrap();
        assert_eq!(c.storage.max_size, ByteSize(64 << 20));
        assert_eq!(c.storage.commit_interval, Duration::from_secs(1));
        assert_eq!(c.listen.netflow.len(), 2);
        assert_eq!(c.http.listen.port(), 9480);
    }

    #[test]
    fn every_problem_with_position() {
        let e = load(
            "[storage]\npath = \"/tmp/w.db\"\nmax_size = \"10kB\"\ncommit_interval = \"5s\"\n[listen]\nsflow = [\"127.0.0.1:6343\"]\nnetflow = [\"127.0.0.1:6343\"]\nsyslgo_udp = []\n[queues]\nstore = 0\n",
        )
        .unwrap_err();
        assert!(e.contains("w.toml:3:12: error[out-of-range]"), "{e}");
        assert!(e.contains("w.toml:4:19: error[out-of-range]"), "{e}");
        assert!(e.contains("w.toml:7:12: error[duplicate-listener]"), "{e}");
        assert!(
            e.contains("w.toml:8:1: error[unknown-key]") && e.contains("did you mean `syslog_udp`"),
            "{e}"
        );
        assert!(e.contains("w.toml:10:9: error[out-of-range]"), "{e}");
    }

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("2GiB").unwrap(), ByteSize(2 << 30));
        assert_eq!(ByteSize::parse("1.5 MB").unwrap(), ByteSize(1_500_000));
        assert_eq!(ByteSize::parse("42").unwrap(), ByteSize(42));
        assert!(ByteSize::parse("3 parsecs").is_err());
        assert!(ByteSize::parse("MiB").is_err());
    }
}
