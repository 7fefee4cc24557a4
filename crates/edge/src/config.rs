//! The edge daemon's TOML configuration: who we are (AS, router ID), the router peers (timers, BFD, MD5, GTSM,
//! graceful restart) and the VIPs with their pool, communities and announce condition. Loaded through
//! `yagura-daemon` (unknown keys refused by `yagura-config`, which collects them all, so no
//! `deny_unknown_fields` here; every problem with `file:line:col`); [`EdgeConfig::validate`] adds
//! the semantic checks.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use yagura_bgp::packet::{Community, LargeCommunity};
use yagura_config::{fields_of, Diagnostic, EnvName, FilePath, KeyPath};
use yagura_daemon::DaemonConfig;

use crate::lb::config::{BackendConfig, HealthConfig, ListenerConfig, PoolConfig};

/// The whole `yagura edge` config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EdgeConfig {
    /// Our AS number (2- or 4-octet).
    pub asn: u32,
    /// Our BGP identifier (also the default IPv4 next hop is the session's local address, not this).
    pub router_id: Ipv4Addr,
    /// Where the passive BGP listener binds (port 179 by default on every address). Empty list: no listener,
    /// only active sessions.
    #[serde(default = "default_listen")]
    pub listen: Vec<SocketAddr>,
    /// The control API (`/v1/status`, `/v1/drain`, `/v1/vips/…`) and `/metrics`, `/healthz`, `/readyz`.
    #[serde(default = "default_control")]
    pub control: SocketAddr,
    /// The interface VIPs are added to while announced (`lo` by default). `manage_addresses = false` leaves
    /// addresses alone (when something else owns them).
    #[serde(default = "default_interface")]
    pub interface: String,
    /// Whether the daemon adds and removes VIP addresses on `interface` (via netlink).
    #[serde(default = "default_true")]
    pub manage_addresses: bool,
    /// On drain: how long to wait after withdrawing every VIP before closing the sessions and exiting.
    #[serde(default = "default_drain_wait", with = "humantime_serde")]
    pub drain_wait: Duration,
    /// Defaults for every peer's BFD.
    #[serde(default)]
    pub bfd: BfdConfig,
    /// The routers to peer with.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// The addresses to announce.
    #[serde(default)]
    pub vips: Vec<VipConfig>,
    /// L4 load balancer listeners (`[[listeners]]`).
    #[serde(default)]
    pub listeners: Vec<ListenerConfig>,
    /// L4 load balancer pools (`[[pools]]` with `[pools.health]` and `[[pools.backends]]`).
    #[serde(default)]
    pub pools: Vec<PoolConfig>,
    /// On drain: after the withdrawal and `drain_wait`, how long proxied connections may take to finish
    /// before the daemon exits anyway (default 30 s).
    #[serde(default = "default_drain_timeout", with = "humantime_serde")]
    pub drain_timeout: Duration,
}

fn default_drain_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_listen() -> Vec<SocketAddr> {
    vec![SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 179)]
}
fn default_control() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9179)
}
fn default_interface() -> String {
    "lo".to_string()
}
fn default_true() -> bool {
    true
}
fn default_drain_wait() -> Duration {
    Duration::from_secs(5)
}

/// How a session is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Connect out and accept (collision detection picks one).
    #[default]
    Both,
    /// Only connect out.
    Active,
    /// Only accept.
    Passive,
}

/// BFD timing (RFC 5880): desired/required interval and detection multiplier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub struct BfdConfig {
    /// Whether BFD runs (default true). BFD down takes the BGP session down at once.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Desired min TX interval, and required min RX interval unless `receive_interval` is given (default
    /// 300 ms, from 10 ms to 60 s).
    #[serde(default = "default_bfd_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Required min RX interval when it differs from `interval`.
    #[serde(default, with = "humantime_serde")]
    pub receive_interval: Option<Duration>,
    /// Detection multiplier (default 3).
    #[serde(default = "default_multiplier")]
    pub multiplier: u8,
}

fn default_bfd_interval() -> Duration {
    Duration::from_millis(300)
}
fn default_multiplier() -> u8 {
    3
}

impl Default for BfdConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: default_bfd_interval(),
            receive_interval: None,
            multiplier: default_multiplier(),
        }
    }
}

impl BfdConfig {
    /// The required min RX interval in force.
    pub fn rx_interval(&self) -> Duration {
        self.receive_interval.unwrap_or(self.interval)
    }
}

/// Per-peer BFD overrides (unset keys take `[bfd]`'s values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
pub struct BfdOverride {
    /// Overrides `bfd.enabled`.
    pub enabled: Option<bool>,
    /// Overrides `bfd.interval`.
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// Overrides `bfd.receive_interval`.
    #[serde(default, with = "humantime_serde")]
    pub receive_interval: Option<Duration>,
    /// Overrides `bfd.multiplier`.
    pub multiplier: Option<u8>,
}

/// Graceful restart (RFC 4724) towards one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub struct GracefulRestartConfig {
    /// Advertise the capability (we restart gracefully and help a restarting peer).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How long the peer should keep our routes while we restart (at most 4095 s).
    #[serde(default = "default_restart_time", with = "humantime_serde")]
    pub restart_time: Duration,
}

fn default_restart_time() -> Duration {
    Duration::from_secs(120)
}

/// One router to peer with.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct PeerConfig {
    /// A short name used in logs, metrics and the control API.
    pub name: String,
    /// The router's address.
    pub address: IpAddr,
    /// The router's AS.
    pub asn: u32,
    /// The router's TCP port (179).
    #[serde(default = "default_port")]
    pub port: u16,
    /// Our source address (default: chosen by the kernel).
    pub local_address: Option<IpAddr>,
    /// Active, passive or both (default both).
    #[serde(default)]
    pub mode: Mode,
    /// Hold time we propose (default 9 s; 0 or at least 3 s).
    #[serde(default = "default_hold", with = "humantime_serde")]
    pub hold_time: Duration,
    /// Keepalive interval (default: a third of the negotiated hold time).
    #[serde(default, with = "humantime_serde")]
    pub keepalive: Option<Duration>,
    /// First connect-retry delay; doubles after each failure up to `connect_retry_max` (default 1 s).
    #[serde(default = "default_retry", with = "humantime_serde")]
    pub connect_retry: Duration,
    /// Longest connect-retry delay (default 30 s).
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub connect_retry_max: Duration,
    /// BFD overrides for this peer.
    #[serde(default)]
    pub bfd: BfdOverride,
    /// Environment variable holding the TCP MD5 password (RFC 2385).
    pub md5_password_env: Option<EnvName>,
    /// File holding the TCP MD5 password (RFC 2385), trailing newline ignored.
    pub md5_password_file: Option<FilePath>,
    /// GTSM (RFC 5082): send with TTL 255 and accept only TTL 255 (the router must do the same).
    #[serde(default)]
    pub ttl_security: bool,
    /// Graceful restart (RFC 4724); off unless given.
    pub graceful_restart: Option<GracefulRestartConfig>,
    /// IPv4 next hop for IPv4 VIPs (default: the session's local address when it is IPv4).
    pub next_hop_ipv4: Option<Ipv4Addr>,
    /// IPv6 next hop for IPv6 VIPs (default: the session's local address when it is IPv6).
    pub next_hop_ipv6: Option<Ipv6Addr>,
}

fn default_port() -> u16 {
    179
}
fn default_hold() -> Duration {
    Duration::from_secs(9)
}
fn default_retry() -> Duration {
    Duration::from_secs(1)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(30)
}

/// When a VIP is announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnounceWhen {
    /// Always (until drained).
    #[default]
    Always,
    /// When the hook says so: the control API (`POST /v1/vips/NAME/announce`) or the L4 load balancer's
    /// backend health. Starts withdrawn.
    Hook,
    /// Never (kept in the config, not announced).
    Never,
}

/// One VIP (or pool prefix) to announce.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct VipConfig {
    /// A short name (control API, metrics, logs).
    pub name: String,
    /// The prefix (a /32 or /128 for a single VIP).
    pub prefix: IpNet,
    /// The pool it belongs to (a label, e.g. `api` or `lb`).
    #[serde(default)]
    pub pool: String,
    /// Standard communities as `ASN:VALUE` (or `no-export`, `no-advertise`).
    #[serde(default)]
    pub communities: Vec<String>,
    /// Large communities as `GLOBAL:LOCAL1:LOCAL2`.
    #[serde(default)]
    pub large_communities: Vec<String>,
    /// MULTI_EXIT_DISC to send.
    pub med: Option<u32>,
    /// The announce condition.
    #[serde(default)]
    pub announce: AnnounceWhen,
    /// Whether the address is added to the interface while announced (default: when the prefix is a host route).
    pub add_address: Option<bool>,
}

impl VipConfig {
    /// The parsed standard communities (unparseable ones are reported by validation and skipped here).
    pub fn parsed_communities(&self) -> Vec<Community> {
        self.communities
            .iter()
            .filter_map(|c| parse_community(c).ok())
            .collect()
    }

    /// The parsed large communities.
    pub fn parsed_large_communities(&self) -> Vec<LargeCommunity> {
        self.large_communities
            .iter()
            .filter_map(|c| parse_large_community(c).ok())
            .collect()
    }

    /// Whether the address goes on the interface.
    pub fn wants_address(&self) -> bool {
        self.add_address
            .unwrap_or(self.prefix.prefix_len() == self.prefix.max_prefix_len())
    }
}

/// Parses `ASN:VALUE`, `no-export`, `no-advertise`, `no-export-subconfed`, `blackhole`.
pub fn parse_community(s: &str) -> Result<Community, String> {
    match s {
        "no-export" => return Ok(Community::NO_EXPORT),
        "no-advertise" => return Ok(Community::NO_ADVERTISE),
        "no-export-subconfed" => return Ok(Community::NO_EXPORT_SUBCONFED),
        "blackhole" => return Ok(Community::BLACKHOLE),
        _ => {}
    }
    let (a, v) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not a community: write ASN:VALUE, each 0-65535"))?;
    match (a.parse::<u16>(), v.parse::<u16>()) {
        (Ok(a), Ok(v)) => Ok(Community::new(a, v)),
        _ => Err(format!(
            "`{s}` is not a community: write ASN:VALUE, each 0-65535"
        )),
    }
}

/// Parses `GLOBAL:LOCAL1:LOCAL2` (each 0-4294967295).
pub fn parse_large_community(s: &str) -> Result<LargeCommunity, String> {
    let parts: Vec<Result<u32, _>> = s.split(':').map(str::parse::<u32>).collect();
    match parts.as_slice() {
        [Ok(g), Ok(l1), Ok(l2)] => Ok(LargeCommunity {
            global_admin: *g,
            local_data1: *l1,
            local_data2: *l2,
        }),
        _ => Err(format!(
            "`{s}` is not a large community: write GLOBAL:LOCAL1:LOCAL2"
        )),
    }
}

impl PeerConfig {
    /// The BFD timing in force for this peer, or `None` when BFD is off.
    pub fn bfd_timing(&self, defaults: &BfdConfig) -> Option<BfdConfig> {
        let enabled = self.bfd.enabled.unwrap_or(defaults.enabled);
        enabled.then(|| BfdConfig {
            enabled,
            interval: self.bfd.interval.unwrap_or(defaults.interval),
            receive_interval: self.bfd.receive_interval.or(defaults.receive_interval),
            multiplier: self.bfd.multiplier.unwrap_or(defaults.multiplier),
        })
    }

    /// Reads the MD5 password, if one is configured.
    pub fn md5_password(&self) -> Result<Option<String>, String> {
        if let Some(env) = &self.md5_password_env {
            return env
                .read()
                .map(Some)
                .map_err(|e| format!("peer {}: ${env}: {e}", self.name));
        }
        if let Some(file) = &self.md5_password_file {
            return std::fs::read_to_string(file.as_str())
                .map(|s| Some(s.trim_end_matches(['\n', '\r']).to_string()))
                .map_err(|e| format!("peer {}: {file}: {e}", self.name));
        }
        Ok(None)
    }
}

impl DaemonConfig for EdgeConfig {
    fn fields_at(path: &KeyPath) -> &'static [&'static str] {
        match path.shape().as_slice() {
            [] => fields_of::<EdgeConfig>(),
            ["bfd"] => fields_of::<BfdConfig>(),
            ["peers"] => fields_of::<PeerConfig>(),
            ["peers", "bfd"] => fields_of::<BfdOverride>(),
            ["peers", "graceful_restart"] => fields_of::<GracefulRestartConfig>(),
            ["vips"] => fields_of::<VipConfig>(),
            ["listeners"] => fields_of::<ListenerConfig>(),
            ["pools"] => fields_of::<PoolConfig>(),
            ["pools", "health"] => fields_of::<HealthConfig>(),
            ["pools", "backends"] => fields_of::<BackendConfig>(),
            _ => &[],
        }
    }

    fn validate(&self) -> Vec<Diagnostic> {
        let mut d = Vec::new();
        let root = KeyPath::root();
        let err =
            |code: &'static str, msg: String, at: KeyPath| Diagnostic::error(code, msg).at(&at);
        if self.asn == 0 || self.asn == u32::from(yagura_bgp::packet::AS_TRANS) {
            d.push(err(
                "invalid-value",
                format!("AS {} cannot be used by a speaker", self.asn),
                root.key("asn"),
            ));
        }
        if self.router_id.is_unspecified() {
            d.push(err(
                "invalid-value",
                "router_id must not be 0.0.0.0".into(),
                root.key("router_id"),
            ));
        }
        if self.interface.is_empty() || self.interface.len() > 15 {
            d.push(err(
                "invalid-value",
                "interface must be a Linux interface name (1-15 characters)".into(),
                root.key("interface"),
            ));
        }
        check_bfd(&self.bfd, &root.key("bfd"), &mut d);
        let mut names = BTreeSet::new();
        let mut addrs = BTreeSet::new();
        for (i, p) in self.peers.iter().enumerate() {
            let at = root.key("peers").index(i);
            if !valid_name(&p.name) {
                d.push(err(
                    "invalid-value",
                    "a peer name is 1-32 characters of a-z, 0-9, `-`, `_`".into(),
                    at.key("name"),
                ));
            }
            if !names.insert(p.name.clone()) {
                d.push(err(
                    "duplicate",
                    format!("two peers are named `{}`", p.name),
                    at.key("name"),
                ));
            }
            if !addrs.insert(p.address) {
                d.push(err(
                    "duplicate",
                    format!("two peers have address {}", p.address),
                    at.key("address"),
                ));
            }
            if p.asn == 0 {
                d.push(err(
                    "invalid-value",
                    "peer AS 0 is invalid".into(),
                    at.key("asn"),
                ));
            }
            let hold = p.hold_time.as_secs();
            if p.hold_time.subsec_nanos() != 0 || (hold != 0 && hold < 3) || hold > 65535 {
                d.push(err(
                    "invalid-value",
                    "hold_time is 0 or whole seconds from 3 s to 65535 s (RFC 4271)".into(),
                    at.key("hold_time"),
                ));
            }
            if let Some(k) = p.keepalive {
                if k.is_zero() || (hold != 0 && k.as_secs_f64() > hold as f64 / 3.0 + 1e-9) {
                    d.push(err(
                        "invalid-value",
                        "keepalive must be non-zero and at most a third of hold_time".into(),
                        at.key("keepalive"),
                    ));
                }
            }
            if p.connect_retry.is_zero() || p.connect_retry_max < p.connect_retry {
                d.push(err(
                    "invalid-value",
                    "connect_retry must be non-zero and at most connect_retry_max".into(),
                    at.key("connect_retry"),
                ));
            }
            if p.md5_password_env.is_some() && p.md5_password_file.is_some() {
                d.push(err(
                    "conflict",
                    "give md5_password_env or md5_password_file, not both".into(),
                    at.key("md5_password_file"),
                ));
            }
            if let Some(env) = &p.md5_password_env {
                if let Err(e) = env.check() {
                    d.push(err("invalid-value", e, at.key("md5_password_env")));
                }
            }
            if let (Some(l), a) = (p.local_address, p.address) {
                if l.is_ipv4() != a.is_ipv4() {
                    d.push(err(
                        "invalid-value",
                        "local_address must be of the same family as address".into(),
                        at.key("local_address"),
                    ));
                }
            }
            if let Some(gr) = &p.graceful_restart {
                if gr.restart_time > Duration::from_secs(4095)
                    || gr.restart_time.subsec_nanos() != 0
                {
                    d.push(err(
                        "invalid-value",
                        "restart_time is whole seconds, at most 4095 s (RFC 4724)".into(),
                        at.key("graceful_restart").key("restart_time"),
                    ));
                }
            }
            // Only the values the peer overrides (the defaults are checked once, under `[bfd]`).
            let overridden = BfdConfig {
                enabled: true,
                interval: p.bfd.interval.unwrap_or(default_bfd_interval()),
                receive_interval: p.bfd.receive_interval,
                multiplier: p.bfd.multiplier.unwrap_or(default_multiplier()),
            };
            check_bfd(&overridden, &at.key("bfd"), &mut d);
        }
        let mut vnames = BTreeSet::new();
        let mut prefixes = BTreeSet::new();
        for (i, v) in self.vips.iter().enumerate() {
            let at = root.key("vips").index(i);
            if !valid_name(&v.name) {
                d.push(err(
                    "invalid-value",
                    "a VIP name is 1-32 characters of a-z, 0-9, `-`, `_`".into(),
                    at.key("name"),
                ));
            }
            if !vnames.insert(v.name.clone()) {
                d.push(err(
                    "duplicate",
                    format!("two VIPs are named `{}`", v.name),
                    at.key("name"),
                ));
            }
            if v.prefix != v.prefix.trunc() {
                d.push(
                    err(
                        "invalid-value",
                        format!("{} has host bits set", v.prefix),
                        at.key("prefix"),
                    )
                    .hint(format!("did you mean {}?", v.prefix.trunc())),
                );
            }
            if !prefixes.insert(v.prefix) {
                d.push(err(
                    "duplicate",
                    format!("{} is listed twice", v.prefix),
                    at.key("prefix"),
                ));
            }
            for (j, c) in v.communities.iter().enumerate() {
                if let Err(e) = parse_community(c) {
                    d.push(err("invalid-value", e, at.key("communities").index(j)));
                }
            }
            for (j, c) in v.large_communities.iter().enumerate() {
                if let Err(e) = parse_large_community(c) {
                    d.push(err(
                        "invalid-value",
                        e,
                        at.key("large_communities").index(j),
                    ));
                }
            }
        }
        crate::lb::config::validate(&self.listeners, &self.pools, &mut d);
        for (i, v) in self.vips.iter().enumerate() {
            if v.announce == AnnounceWhen::Hook
                && !v.pool.is_empty()
                && !self.pools.is_empty()
                && !self.pools.iter().any(|p| p.name == v.pool)
            {
                d.push(
                    Diagnostic::warning(
                        "unknown-reference",
                        format!(
                            "no pool named `{}`: this VIP follows the control API only",
                            v.pool
                        ),
                    )
                    .at(&root.key("vips").index(i).key("pool")),
                );
            }
        }
        d
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn check_bfd(b: &BfdConfig, at: &KeyPath, d: &mut Vec<Diagnostic>) {
    let bad = |i: Duration| i < Duration::from_millis(10) || i > Duration::from_secs(60);
    if bad(b.interval) {
        d.push(
            Diagnostic::error("invalid-value", "BFD interval must be from 10 ms to 60 s")
                .at(&at.key("interval")),
        );
    }
    if b.receive_interval.is_some_and(bad) {
        d.push(
            Diagnostic::error(
                "invalid-value",
                "BFD receive_interval must be from 10 ms to 60 s",
            )
            .at(&at.key("receive_interval")),
        );
    }
    if b.multiplier == 0 {
        d.push(
            Diagnostic::error("invalid-value", "BFD multiplier must be at least 1")
                .at(&at.key("multiplier")),
        );
    }
}
