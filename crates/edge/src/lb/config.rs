//! The load balancer's config sections of the edge config: `[[listeners]]` (address, pool, timeouts, limits,
//! PROXY protocol) and `[[pools]]` (balancing, `min_healthy`, health check, `[[pools.backends]]`), and their
//! validation (reported with `file:line:col` through `yagura-config`).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use yagura_config::{Diagnostic, FilePath, KeyPath};

use super::balance::Algorithm;

/// The PROXY protocol header sent to backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProxyProtocol {
    /// None (default).
    #[default]
    None,
    /// Version 1 (text).
    V1,
    /// Version 2 (binary).
    V2,
}

/// One TCP listener forwarding to a pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct ListenerConfig {
    /// A short name (metrics, logs).
    pub name: String,
    /// Where to listen: a VIP and port (bound even before the VIP is on the interface), or `[::]:PORT`.
    pub address: SocketAddr,
    /// The pool to forward to.
    pub pool: String,
    /// Backend connect timeout (default 3 s); a timeout counts as a connect failure and the next backend is
    /// tried.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// A connection with no bytes either way for this long is closed (default 1 h).
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Most simultaneous connections (default 10000); more are closed at once and counted.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// PROXY protocol header towards the backends.
    #[serde(default)]
    pub proxy_protocol: ProxyProtocol,
    /// Buffer per direction per connection (default 16 KiB, 1 KiB to 1 MiB).
    #[serde(default = "default_buffer")]
    pub buffer_size: u32,
    /// When to forward with `splice(2)` through a pipe instead of copying through user space.
    #[serde(default)]
    pub splice: Splice,
}

/// When a direction of a connection is forwarded with `splice(2)` (socket → pipe → socket, no copy through
/// user space) rather than read into a buffer and written out.
///
/// Measured on loopback with 64 KiB responses (BENCHMARKS.md): splicing halves the proxy's CPU per request
/// under load but lengthens latency (p99 several times the copy's, p50 up at low concurrency), so it is off
/// unless asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Splice {
    /// Never splice (default).
    #[default]
    Never,
    /// Once a read fills the whole buffer (bulk transfer), that direction splices from then on; small
    /// request/response traffic keeps the copy (like haproxy's `splice-auto`).
    Auto,
    /// Always splice.
    Always,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(3)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(3600)
}
fn default_max_connections() -> u32 {
    10_000
}
fn default_buffer() -> u32 {
    16 * 1024
}

/// The kind of active health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// A TCP connect (default).
    #[default]
    Tcp,
    /// HTTP/1.1 GET `path`, expecting `expect_status`.
    Http,
    /// HTTPS GET (e.g. the API server's `/readyz` on 6443).
    Https,
}

/// The active health check of a pool's backends.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct HealthConfig {
    /// TCP, HTTP or HTTPS.
    #[serde(default)]
    pub kind: CheckKind,
    /// Path for HTTP(S) (default `/readyz`).
    #[serde(default = "default_path")]
    pub path: String,
    /// Expected status (default 200).
    #[serde(default = "default_status")]
    pub expect_status: u16,
    /// Port to check when it differs from the backend's.
    pub port: Option<u16>,
    /// CA bundle (PEM) to verify HTTPS backends with.
    pub ca_file: Option<FilePath>,
    /// Skip certificate verification (HTTPS).
    #[serde(default)]
    pub insecure: bool,
    /// TLS server name and HTTP Host (default: the backend's address).
    pub server_name: Option<String>,
    /// Interval between checks (default 2 s).
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Check timeout (default 1 s).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Successes in a row to mark a down backend up (default 2).
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Failures in a row to mark an up backend down (default 3).
    #[serde(default = "default_fall")]
    pub fall: u32,
}

fn default_path() -> String {
    "/readyz".into()
}
fn default_status() -> u16 {
    200
}
fn default_interval() -> Duration {
    Duration::from_secs(2)
}
fn default_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            kind: CheckKind::Tcp,
            path: default_path(),
            expect_status: default_status(),
            port: None,
            ca_file: None,
            insecure: false,
            server_name: None,
            interval: default_interval(),
            timeout: default_timeout(),
            rise: default_rise(),
            fall: default_fall(),
        }
    }
}

/// One backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct BackendConfig {
    /// A short name (metrics; Maglev hashes it, so give it the same on every edge).
    pub name: String,
    /// Address and port.
    pub address: SocketAddr,
}

/// A pool of backends.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct PoolConfig {
    /// A short name; VIPs with `announce = "hook"` and this `pool` are announced while it is healthy.
    pub name: String,
    /// Balancing algorithm.
    #[serde(default)]
    pub balance: Algorithm,
    /// VIPs of this pool are announced only while at least this many backends are up (default 1).
    #[serde(default = "default_min_healthy")]
    pub min_healthy: u32,
    /// Passive ejection: this many connect failures in a row mark a backend down until the active check
    /// rises it again (default 3, 0 disables).
    #[serde(default = "default_fall")]
    pub eject_after: u32,
    /// The active health check.
    #[serde(default)]
    pub health: HealthConfig,
    /// The backends.
    #[serde(default)]
    pub backends: Vec<BackendConfig>,
}

fn default_min_healthy() -> u32 {
    1
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Validates the listeners and pools; diagnostics point at the offending keys.
pub fn validate(listeners: &[ListenerConfig], pools: &[PoolConfig], d: &mut Vec<Diagnostic>) {
    let root = KeyPath::root();
    let err = |code: &'static str, msg: String, at: KeyPath| Diagnostic::error(code, msg).at(&at);
    let mut pnames = BTreeSet::new();
    for (i, p) in pools.iter().enumerate() {
        let at = root.key("pools").index(i);
        if !valid_name(&p.name) {
            d.push(err(
                "invalid-value",
                "a pool name is 1-32 characters of a-z, 0-9, `-`, `_`".into(),
                at.key("name"),
            ));
        }
        if !pnames.insert(p.name.clone()) {
            d.push(err(
                "duplicate",
                format!("two pools are named `{}`", p.name),
                at.key("name"),
            ));
        }
        let h = &p.health;
        let hat = at.key("health");
        if h.interval < Duration::from_millis(50) || h.interval > Duration::from_secs(3600) {
            d.push(err(
                "invalid-value",
                "health interval must be from 50 ms to 1 h".into(),
                hat.key("interval"),
            ));
        }
        if h.timeout.is_zero() || h.timeout > h.interval {
            d.push(err(
                "invalid-value",
                "health timeout must be non-zero and at most the interval".into(),
                hat.key("timeout"),
            ));
        }
        if h.rise == 0 {
            d.push(err(
                "invalid-value",
                "rise must be at least 1".into(),
                hat.key("rise"),
            ));
        }
        if h.fall == 0 {
            d.push(err(
                "invalid-value",
                "fall must be at least 1".into(),
                hat.key("fall"),
            ));
        }
        if !(100..=599).contains(&h.expect_status) {
            d.push(err(
                "invalid-value",
                "expect_status must be an HTTP status (100-599)".into(),
                hat.key("expect_status"),
            ));
        }
        if !h.path.starts_with('/') || h.path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            d.push(err(
                "invalid-value",
                "path must start with `/` and have no spaces or control characters".into(),
                hat.key("path"),
            ));
        }
        if h.insecure && h.ca_file.is_some() {
            d.push(err(
                "conflict",
                "give ca_file or insecure = true, not both".into(),
                hat.key("insecure"),
            ));
        }
        if h.kind != CheckKind::Https && (h.insecure || h.ca_file.is_some()) {
            d.push(err(
                "conflict",
                "ca_file and insecure apply to kind = \"https\" only".into(),
                hat.key("kind"),
            ));
        }
        let mut bnames = BTreeSet::new();
        let mut baddrs = BTreeSet::new();
        for (j, b) in p.backends.iter().enumerate() {
            let bat = at.key("backends").index(j);
            if !valid_name(&b.name) {
                d.push(err(
                    "invalid-value",
                    "a backend name is 1-32 characters of a-z, 0-9, `-`, `_`".into(),
                    bat.key("name"),
                ));
            }
            if !bnames.insert(b.name.clone()) {
                d.push(err(
                    "duplicate",
                    format!("two backends of pool `{}` are named `{}`", p.name, b.name),
                    bat.key("name"),
                ));
            }
            if !baddrs.insert(b.address) {
                d.push(err(
                    "duplicate",
                    format!("{} is listed twice", b.address),
                    bat.key("address"),
                ));
            }
            if b.address.port() == 0 || b.address.ip().is_unspecified() {
                d.push(err(
                    "invalid-value",
                    "a backend needs a specific address and a non-zero port".into(),
                    bat.key("address"),
                ));
            }
        }
        if p.min_healthy as usize > p.backends.len() {
            d.push(err(
                "invalid-value",
                format!(
                    "min_healthy is {} but the pool has {} backends: its VIPs would never be announced",
                    p.min_healthy,
                    p.backends.len()
                ),
                at.key("min_healthy"),
            ));
        }
    }
    let mut lnames = BTreeSet::new();
    let mut laddrs = BTreeSet::new();
    for (i, l) in listeners.iter().enumerate() {
        let at = root.key("listeners").index(i);
        if !valid_name(&l.name) {
            d.push(err(
                "invalid-value",
                "a listener name is 1-32 characters of a-z, 0-9, `-`, `_`".into(),
                at.key("name"),
            ));
        }
        if !lnames.insert(l.name.clone()) {
            d.push(err(
                "duplicate",
                format!("two listeners are named `{}`", l.name),
                at.key("name"),
            ));
        }
        if !laddrs.insert(l.address) {
            d.push(err(
                "duplicate",
                format!("two listeners on {}", l.address),
                at.key("address"),
            ));
        }
        if !pools.iter().any(|p| p.name == l.pool) {
            let mut e = err(
                "unknown-reference",
                format!("no pool named `{}`", l.pool),
                at.key("pool"),
            );
            if !pools.is_empty() {
                let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
                e = e.hint(format!("pools are: {}", names.join(", ")));
            }
            d.push(e);
        }
        if l.connect_timeout.is_zero() {
            d.push(err(
                "invalid-value",
                "connect_timeout must be non-zero".into(),
                at.key("connect_timeout"),
            ));
        }
        if l.idle_timeout < Duration::from_secs(1) {
            d.push(err(
                "invalid-value",
                "idle_timeout must be at least 1 s".into(),
                at.key("idle_timeout"),
            ));
        }
        if l.max_connections == 0 {
            d.push(err(
                "invalid-value",
                "max_connections must be at least 1".into(),
                at.key("max_connections"),
            ));
        }
        if !(1024..=1 << 20).contains(&l.buffer_size) {
            d.push(err(
                "invalid-value",
                "buffer_size must be from 1024 to 1048576 bytes".into(),
                at.key("buffer_size"),
            ));
        }
    }
}
