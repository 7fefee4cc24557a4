//! SNMP polling inside `yagura watch`: the `[snmp]` config section, the `yagura_snmp_*` metrics (labelled by
//! device, ifName and ifAlias, with a cap on interfaces per device), the `LinkDown` and `SnmpDeviceDown` alerts
//! (reported to the daemon's alert sink, never delivered here), and the interface-name map the flow query API
//! uses to show `in_if_name` / `out_if_name`.
//!
//! Polling, walking and rate arithmetic are the `yagura-snmp` crate's; this module wires them to the daemon.
//! A reload restarts the poll loops with the new config but keeps per-device state (rate baselines, alerts
//! that fire), so a SIGHUP neither spikes a rate nor re-sends an alert; a device removed from the config has
//! its series removed and its alerts resolved.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use yagura_alert::{Alert, Severity, SharedSink};
use yagura_config::{Diagnostic, EnvName, KeyPath};
use yagura_snmp::poller::{self, Outcome};
use yagura_snmp::{AuthProtocol, Client, Credentials, PrivProtocol, RateTracker, Target};

/// `[snmp]`: defaults for every device and the devices.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct SnmpConfig {
    /// Devices polled at the same time at most.
    pub concurrency: usize,
    /// Time to wait for one response (a device may override it).
    #[serde(with = "yagura_config::duration")]
    pub timeout: Duration,
    /// Extra attempts after a timeout (a device may override it).
    pub retries: u32,
    /// GETBULK max-repetitions per column.
    pub max_repetitions: u32,
    /// Interfaces per device that get metrics; those beyond (by ifIndex) are counted, not exported.
    pub max_interfaces_per_device: usize,
    /// `[[snmp.devices]]`.
    pub devices: Vec<SnmpDevice>,
}

impl Default for SnmpConfig {
    fn default() -> Self {
        Self {
            concurrency: 32,
            timeout: Duration::from_secs(2),
            retries: 1,
            max_repetitions: 20,
            max_interfaces_per_device: 512,
            devices: Vec::new(),
        }
    }
}

/// SNMP version of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SnmpVersion {
    /// Community-based v2c.
    #[serde(rename = "2c")]
    V2c,
    /// USM-based v3.
    #[serde(rename = "3")]
    V3,
}

/// SNMPv3 authentication protocol (the spec's `SnmpAuth`, plus SHA-224/384).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnmpAuth {
    /// HMAC-SHA-96 (SHA-1).
    Sha,
    /// HMAC-SHA-224.
    Sha224,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-384.
    Sha384,
    /// HMAC-SHA-512.
    Sha512,
}

/// SNMPv3 privacy protocol (the spec's `SnmpPrivacy`, plus AES-192).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnmpPrivacy {
    /// AES-128-CFB.
    Aes,
    /// AES-192 (Blumenthal key extension).
    Aes192,
    /// AES-256 (Blumenthal key extension).
    Aes256,
}

/// `[[snmp.devices]]`: one device; the fields mirror the platform spec's `Snmp` settings. Secrets are given
/// as the names of environment variables.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct SnmpDevice {
    /// Name in metrics and alerts (`device` label).
    pub name: String,
    /// Agent address; also matched against flow exporter addresses to name interfaces in flows.
    pub address: IpAddr,
    /// UDP port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// `"2c"` or `"3"`.
    pub version: SnmpVersion,
    /// v2c: environment variable with the community.
    #[serde(default)]
    pub community_env: Option<EnvName>,
    /// v3: user name.
    #[serde(default)]
    pub user: Option<String>,
    /// v3: authentication protocol.
    #[serde(default)]
    pub auth_protocol: Option<SnmpAuth>,
    /// v3: environment variable with the authentication pass phrase.
    #[serde(default)]
    pub auth_password_env: Option<EnvName>,
    /// v3: privacy protocol (authPriv); absent is authNoPriv.
    #[serde(default)]
    pub privacy_protocol: Option<SnmpPrivacy>,
    /// v3: environment variable with the privacy pass phrase.
    #[serde(default)]
    pub privacy_password_env: Option<EnvName>,
    /// Poll interval (default 60 s).
    #[serde(default = "default_interval", with = "yagura_config::duration")]
    pub interval: Duration,
    /// Per-request timeout (default `snmp.timeout`).
    #[serde(default, with = "humantime_serde::option")]
    pub timeout: Option<Duration>,
    /// Retries (default `snmp.retries`).
    #[serde(default)]
    pub retries: Option<u32>,
}

fn default_port() -> u16 {
    161
}
fn default_interval() -> Duration {
    Duration::from_secs(60)
}

/// The keys valid under `snmp` (for "did you mean").
pub fn fields_at(shape: &[&str]) -> &'static [&'static str] {
    use yagura_config::fields_of as f;
    match shape {
        ["snmp"] => f::<SnmpConfig>(),
        ["snmp", "devices"] => f::<SnmpDevice>(),
        _ => &[],
    }
}

impl SnmpConfig {
    /// Semantic checks; `at` is the path of the `snmp` table.
    pub fn validate(&self, at: &KeyPath) -> Vec<Diagnostic> {
        let mut d = Vec::new();
        let range = |d: &mut Vec<Diagnostic>, ok: bool, key: &str, what: &str| {
            if !ok {
                d.push(
                    Diagnostic::error("out-of-range", format!("`snmp.{key}` must be {what}"))
                        .at(&at.key(key)),
                );
            }
        };
        range(
            &mut d,
            (1..=4096).contains(&self.concurrency),
            "concurrency",
            "1..=4096",
        );
        range(
            &mut d,
            self.timeout >= Duration::from_millis(10) && self.timeout <= Duration::from_secs(60),
            "timeout",
            "10ms ..= 60s",
        );
        range(&mut d, self.retries <= 10, "retries", "at most 10");
        range(
            &mut d,
            (1..=500).contains(&self.max_repetitions),
            "max_repetitions",
            "1..=500",
        );
        range(
            &mut d,
            (1..=100_000).contains(&self.max_interfaces_per_device),
            "max_interfaces_per_device",
            "1..=100000",
        );
        let mut names: HashMap<&str, KeyPath> = HashMap::new();
        for (i, dev) in self.devices.iter().enumerate() {
            let p = at.key("devices").index(i);
            if dev.name.is_empty()
                || dev.name.len() > 64
                || dev.name.chars().any(|c| c.is_control())
            {
                d.push(
                    Diagnostic::error("bad-name", "a device name is 1 to 64 printable characters")
                        .at(&p.key("name")),
                );
            } else if let Some(first) = names.get(dev.name.as_str()) {
                d.push(
                    Diagnostic::error(
                        "duplicate",
                        format!("device `{}` is defined twice", dev.name),
                    )
                    .at(&p.key("name"))
                    .related(first, "first defined here"),
                );
            } else {
                names.insert(&dev.name, p.key("name"));
            }
            for (k, v) in [
                ("community_env", &dev.community_env),
                ("auth_password_env", &dev.auth_password_env),
                ("privacy_password_env", &dev.privacy_password_env),
            ] {
                if let Some(Err(e)) = v.as_ref().map(EnvName::check) {
                    d.push(Diagnostic::error("not-env-name", e).at(&p.key(k)));
                }
            }
            let need = |d: &mut Vec<Diagnostic>, present: bool, key: &str, why: &str| {
                if !present {
                    d.push(
                        Diagnostic::error("missing", format!("`{key}` is required {why}"))
                            .at(&p.key("version")),
                    );
                }
            };
            match dev.version {
                SnmpVersion::V2c => {
                    need(
                        &mut d,
                        dev.community_env.is_some(),
                        "community_env",
                        "for version \"2c\"",
                    );
                    for (k, present) in [
                        ("user", dev.user.is_some()),
                        ("auth_protocol", dev.auth_protocol.is_some()),
                        ("privacy_protocol", dev.privacy_protocol.is_some()),
                    ] {
                        if present {
                            d.push(
                                Diagnostic::error(
                                    "v3-only",
                                    format!("`{k}` is for version \"3\", this device uses \"2c\""),
                                )
                                .at(&p.key(k)),
                            );
                        }
                    }
                }
                SnmpVersion::V3 => {
                    let why = "for version \"3\"";
                    need(
                        &mut d,
                        dev.user.as_deref().is_some_and(|u| !u.is_empty()),
                        "user",
                        why,
                    );
                    need(&mut d, dev.auth_protocol.is_some(), "auth_protocol", why);
                    need(
                        &mut d,
                        dev.auth_password_env.is_some(),
                        "auth_password_env",
                        why,
                    );
                    if dev.privacy_protocol.is_some() != dev.privacy_password_env.is_some() {
                        d.push(
                            Diagnostic::error(
                                "incomplete",
                                "`privacy_protocol` and `privacy_password_env` go together",
                            )
                            .at(&p.key(
                                if dev.privacy_protocol.is_some() {
                                    "privacy_protocol"
                                } else {
                                    "privacy_password_env"
                                },
                            )),
                        );
                    } else if dev.privacy_protocol.is_none() {
                        d.push(
                            Diagnostic::warning(
                                "no-privacy",
                                "SNMPv3 without privacy (authNoPriv) sends counters in clear text",
                            )
                            .at(&p.key("version"))
                            .hint("set privacy_protocol = \"aes\" and privacy_password_env"),
                        );
                    }
                    if dev.community_env.is_some() {
                        d.push(
                            Diagnostic::error(
                                "v2c-only",
                                "`community_env` is for version \"2c\", this device uses \"3\"",
                            )
                            .at(&p.key("community_env")),
                        );
                    }
                }
            }
            if dev.interval < Duration::from_secs(1) || dev.interval > Duration::from_secs(86_400) {
                d.push(
                    Diagnostic::error("out-of-range", "`interval` must be 1s ..= 1d")
                        .at(&p.key("interval")),
                );
            }
            let t = dev.timeout.unwrap_or(self.timeout);
            if t.is_zero() || t * (dev.retries.unwrap_or(self.retries) + 1) > dev.interval {
                d.push(
                    Diagnostic::error(
                        "out-of-range",
                        "`timeout` × (retries + 1) must fit within the device's `interval`",
                    )
                    .at(&p.key(if dev.timeout.is_some() {
                        "timeout"
                    } else {
                        "interval"
                    })),
                );
            }
            if dev.retries.is_some_and(|r| r > 10) {
                d.push(
                    Diagnostic::error("out-of-range", "`retries` must be at most 10")
                        .at(&p.key("retries")),
                );
            }
        }
        d
    }
}

impl SnmpDevice {
    /// Reads the secrets from the environment and builds the poll target.
    pub fn target(&self, defaults: &SnmpConfig) -> Result<Target, String> {
        let read = |e: &Option<EnvName>, key: &str| -> Result<Vec<u8>, String> {
            let e = e.as_ref().ok_or_else(|| format!("`{key}` is not set"))?;
            e.read()
                .map(String::into_bytes)
                .map_err(|_| format!("environment variable {} is not set", e.as_str()))
        };
        let credentials = match self.version {
            SnmpVersion::V2c => Credentials::V2c {
                community: read(&self.community_env, "community_env")?,
            },
            SnmpVersion::V3 => Credentials::V3 {
                user: self.user.clone().unwrap_or_default(),
                auth: match self.auth_protocol {
                    Some(SnmpAuth::Sha) | None => AuthProtocol::Sha1,
                    Some(SnmpAuth::Sha224) => AuthProtocol::Sha224,
                    Some(SnmpAuth::Sha256) => AuthProtocol::Sha256,
                    Some(SnmpAuth::Sha384) => AuthProtocol::Sha384,
                    Some(SnmpAuth::Sha512) => AuthProtocol::Sha512,
                },
                auth_password: read(&self.auth_password_env, "auth_password_env")?,
                privacy: match self.privacy_protocol {
                    None => None,
                    Some(p) => Some((
                        match p {
                            SnmpPrivacy::Aes => PrivProtocol::Aes128,
                            SnmpPrivacy::Aes192 => PrivProtocol::Aes192,
                            SnmpPrivacy::Aes256 => PrivProtocol::Aes256,
                        },
                        read(&self.privacy_password_env, "privacy_password_env")?,
                    )),
                },
            },
        };
        Ok(Target {
            name: self.name.clone(),
            addr: SocketAddr::new(self.address, self.port),
            credentials,
            timeout: self.timeout.unwrap_or(defaults.timeout),
            retries: self.retries.unwrap_or(defaults.retries),
            max_repetitions: defaults.max_repetitions,
        })
    }
}

/// One interface's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfName {
    /// ifName (or ifDescr).
    pub name: String,
    /// ifAlias.
    pub alias: String,
}

/// Interface names learnt by SNMP, by device address and ifIndex; shared with the flow query API, which
/// matches a flow's exporter address to a device address.
#[derive(Debug, Clone, Default)]
pub struct IfNames(Arc<RwLock<HashMap<IpAddr, BTreeMap<u32, IfName>>>>);

impl IfNames {
    /// The ifName of `if_index` on the device at `exporter` (an address as the store writes it).
    pub fn lookup(&self, exporter: &str, if_index: Option<i64>) -> Option<String> {
        let ip: IpAddr = exporter.parse().ok()?;
        let idx = u32::try_from(if_index?).ok()?;
        let m = self.0.read().ok()?;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        m.get(&ip)?.get(&idx).map(|n| n.name.clone())
    }

    /// Replaces the names of one device.
    pub fn set(&self, addr: IpAddr, names: BTreeMap<u32, IfName>) {
        if let Ok(mut m) = self.0.write() {
            m.insert(addr, names);
        }
    }

    fn remove(&self, addr: IpAddr) {
        if let Ok(mut m) = self.0.write() {
            m.remove(&addr);
        }
    }
}

type Labels = Vec<(&'static str, String)>;
type FGauge = Family<Labels, crate::metrics::FloatGauge>;
type IGauge = Family<Labels, Gauge>;
type Count = Family<Labels, Counter>;

/// The `yagura_snmp_*` metrics.
#[derive(Debug, Default)]
pub struct SnmpMetrics {
    bps: FGauge,
    pps: FGauge,
    errors: FGauge,
    discards: FGauge,
    oper: IGauge,
    admin: IGauge,
    speed: IGauge,
    up: IGauge,
    interfaces: IGauge,
    duration: FGauge,
    polls: Count,
    poll_errors: Count,
    restarts: Count,
    discontinuities: Count,
    dropped: Count,
}

impl SnmpMetrics {
    /// Registers every family under `yagura_snmp_`.
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("yagura_snmp");
        r.register(
            "if_bits_per_second",
            "Interface traffic, bit/s, by direction (in/out), over the last poll interval",
            m.bps.clone(),
        );
        r.register(
            "if_packets_per_second",
            "Interface packets/s (unicast + multicast + broadcast), by direction",
            m.pps.clone(),
        );
        r.register(
            "if_errors_per_second",
            "Interface errors/s, by direction",
            m.errors.clone(),
        );
        r.register(
            "if_discards_per_second",
            "Interface discards/s, by direction",
            m.discards.clone(),
        );
        r.register(
            "if_oper_status",
            "ifOperStatus (1 up, 2 down, 5 dormant, 6 notPresent, 7 lowerLayerDown)",
            m.oper.clone(),
        );
        r.register(
            "if_admin_status",
            "ifAdminStatus (1 up, 2 down, 3 testing)",
            m.admin.clone(),
        );
        r.register(
            "if_speed_bits_per_second",
            "Interface speed (ifHighSpeed, else ifSpeed), bit/s",
            m.speed.clone(),
        );
        r.register(
            "up",
            "1 when the last poll of the device succeeded",
            m.up.clone(),
        );
        r.register(
            "interfaces",
            "Interfaces the device reported in the last poll",
            m.interfaces.clone(),
        );
        r.register(
            "poll_duration_seconds",
            "Duration of the last poll of the device",
            m.duration.clone(),
        );
        r.register("polls", "Polls of the device", m.polls.clone());
        r.register(
            "poll_errors",
            "Failed polls, by reason (timeout, socket, security, agent, protocol, credentials)",
            m.poll_errors.clone(),
        );
        r.register(
            "agent_restarts",
            "sysUpTime went down: the agent restarted (rate baselines were reset)",
            m.restarts.clone(),
        );
        r.register(
            "rate_discontinuities",
            "Interface intervals with a counter discontinuity (no rate given)",
            m.discontinuities.clone(),
        );
        r.register("interfaces_dropped", "Interface samples not exported because the device has more than snmp.max_interfaces_per_device", m.dropped.clone());
        Arc::new(m)
    }

    fn remove_if(&self, l: &Labels) {
        for f in [&self.oper, &self.admin, &self.speed] {
            f.remove(l);
        }
        for dir in ["in", "out"] {
            let mut ld = l.clone();
            ld.push(("direction", dir.to_string()));
            for f in [&self.bps, &self.pps, &self.errors, &self.discards] {
                f.remove(&ld);
            }
        }
    }

    fn remove_device(&self, device: &str) {
        let l = dev_labels(device);
        for f in [&self.up, &self.interfaces] {
            f.remove(&l);
        }
        self.duration.remove(&l);
        for f in [
            &self.polls,
            &self.restarts,
            &self.discontinuities,
            &self.dropped,
        ] {
            f.remove(&l);
        }
        for reason in [
            "timeout",
            "socket",
            "security",
            "agent",
            "protocol",
            "credentials",
        ] {
            let mut lr = l.clone();
            lr.push(("reason", reason.to_string()));
            self.poll_errors.remove(&lr);
        }
    }
}

fn dev_labels(device: &str) -> Labels {
    vec![("device", device.to_string())]
}

fn if_labels(device: &str, n: &IfName) -> Labels {
    vec![
        ("device", device.to_string()),
        ("ifName", n.name.clone()),
        ("ifAlias", n.alias.clone()),
    ]
}

#[derive(Debug, Default)]
struct DeviceState {
    addr: Option<SocketAddr>,
    tracker: RateTracker,
    /// Interfaces with series, by ifIndex.
    series: BTreeMap<u32, IfName>,
    /// LinkDown alerts firing, by ifIndex.
    firing: BTreeMap<u32, IfName>,
    down: bool,
}

#[derive(Debug)]
struct Shared {
    metrics: Arc<SnmpMetrics>,
    alerts: SharedSink,
    names: IfNames,
    epoch: Instant,
    state: Mutex<HashMap<String, DeviceState>>,
}

fn link_alert(device: &str, n: &IfName, index: u32) -> Alert {
    Alert::firing("LinkDown", Severity::Warning)
        .label("device", device)
        .label("ifName", n.name.clone())
        .annotation("ifAlias", n.alias.clone())
        .annotation("ifIndex", index.to_string())
        .annotation(
            "summary",
            format!(
                "{} on {device} is down{}",
                n.name,
                if n.alias.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", n.alias)
                }
            ),
        )
}

fn device_alert(device: &str, addr: Option<SocketAddr>, why: &str) -> Alert {
    Alert::firing("SnmpDeviceDown", Severity::Critical)
        .label("device", device)
        .annotation("address", addr.map(|a| a.to_string()).unwrap_or_default())
        .annotation(
            "summary",
            format!("SNMP device {device} does not answer: {why}"),
        )
}

impl Shared {
    fn forget(&self, device: &str, st: DeviceState) {
        for (idx, n) in &st.firing {
            self.alerts.update(link_alert(device, n, *idx).resolved());
        }
        if st.down {
            self.alerts
                .update(device_alert(device, st.addr, "").resolved());
        }
        for n in st.series.values() {
            self.metrics.remove_if(&if_labels(device, n));
        }
        self.metrics.remove_device(device);
        if let Some(a) = st.addr {
            self.names.remove(a.ip());
        }
    }

    /// A failed poll (the caller holds the state lock).
    fn failed(
        &self,
        all: &mut HashMap<String, DeviceState>,
        device: &str,
        addr: Option<SocketAddr>,
        reason: &'static str,
        why: &str,
    ) {
        let mut l = dev_labels(device);
        self.metrics.up.get_or_create(&l).set(0);
        l.push(("reason", reason.to_string()));
        self.metrics.poll_errors.get_or_create(&l).inc();
        all.entry(device.to_string()).or_default().down = true;
        self.alerts.update(device_alert(device, addr, why));
    }

    /// One outcome of a poll loop started with `stop`. Everything happens under the state lock, after checking
    /// that the loop was not stopped meanwhile: a reload that removed the device (cancel, then forget under the
    /// lock) can never be followed by a late outcome re-creating its series.
    fn handle(&self, o: Outcome, addr: SocketAddr, max_ifs: usize, stop: &CancellationToken) {
        let Ok(mut all) = self.state.lock() else {
            return;
        };
        if stop.is_cancelled() {
            return;
        }
        let device = o.device.as_str();
        let dl = dev_labels(device);
        self.metrics.polls.get_or_create(&dl).inc();
        self.metrics
            .duration
            .get_or_create(&dl)
            .set(o.elapsed.as_secs_f64());
        let sample = match o.result {
            Err(e) => {
                tracing::debug!(device, error = %e, "SNMP poll failed");
                self.failed(&mut all, device, Some(addr), e.reason(), &e.to_string());
                return;
            }
            Ok(s) => s,
        };
        let st = all.entry(o.device.clone()).or_default();
        st.addr = Some(addr);
        if st.down {
            st.down = false;
            self.alerts
                .update(device_alert(device, Some(addr), "").resolved());
        }
        self.metrics.up.get_or_create(&dl).set(1);
        self.metrics
            .interfaces
            .get_or_create(&dl)
            .set(sample.interfaces.len() as i64);
        let at = o.started.saturating_duration_since(self.epoch);
        let rates = st.tracker.update(at, &sample);
        if rates.restarted {
            self.metrics.restarts.get_or_create(&dl).inc();
            tracing::info!(
                device,
                "SNMP agent restarted (sysUpTime went down): rate baselines reset"
            );
        }
        let disc = rates.discontinuities() as u64;
        if disc > 0 {
            self.metrics.discontinuities.get_or_create(&dl).inc_by(disc);
        }
        let over = sample.interfaces.len().saturating_sub(max_ifs) as u64;
        if over > 0 {
            self.metrics.dropped.get_or_create(&dl).inc_by(over);
        }
        let mut names = BTreeMap::new();
        let mut seen = BTreeMap::new();
        for (idx, i) in sample.interfaces.iter() {
            let n = IfName {
                name: i.name.clone(),
                alias: i.alias.clone(),
            };
            names.insert(*idx, n.clone());
            if seen.len() >= max_ifs {
                continue;
            }
            // LinkDown: administratively up, operationally down.
            if i.link_down() {
                self.alerts.update(link_alert(device, &n, *idx));
                st.firing.insert(*idx, n.clone());
            } else if let Some(old) = st.firing.remove(idx) {
                self.alerts
                    .update(link_alert(device, &old, *idx).resolved());
            }
            let l = if_labels(device, &n);
            if let Some(old) = st.series.get(idx).filter(|old| **old != n) {
                self.metrics.remove_if(&if_labels(device, old));
            }
            if let Some(v) = i.oper_status {
                self.metrics.oper.get_or_create(&l).set(v);
            }
            if let Some(v) = i.admin_status {
                self.metrics.admin.get_or_create(&l).set(v);
            }
            if let Some(v) = i.speed_bps {
                self.metrics
                    .speed
                    .get_or_create(&l)
                    .set(i64::try_from(v).unwrap_or(i64::MAX));
            }
            let r = rates.interfaces.get(idx);
            for (dir, f, v) in [
                ("in", &self.metrics.bps, r.and_then(|r| r.in_bps)),
                ("out", &self.metrics.bps, r.and_then(|r| r.out_bps)),
                ("in", &self.metrics.pps, r.and_then(|r| r.in_pps)),
                ("out", &self.metrics.pps, r.and_then(|r| r.out_pps)),
                ("in", &self.metrics.errors, r.and_then(|r| r.in_errors)),
                ("out", &self.metrics.errors, r.and_then(|r| r.out_errors)),
                ("in", &self.metrics.discards, r.and_then(|r| r.in_discards)),
                (
                    "out",
                    &self.metrics.discards,
                    r.and_then(|r| r.out_discards),
                ),
            ] {
                let mut ld = l.clone();
                ld.push(("direction", dir.to_string()));
                match v {
                    Some(v) => {
                        f.get_or_create(&ld).set(v);
                    }
                    // No rate this interval (first poll, discontinuity, restart): no stale value either.
                    None => {
                        f.remove(&ld);
                    }
                }
            }
            seen.insert(*idx, n);
        }
        // Interfaces gone (or now beyond the cap): drop their series, resolve their alerts.
        for (idx, n) in std::mem::take(&mut st.series) {
            if !seen.contains_key(&idx) {
                self.metrics.remove_if(&if_labels(device, &n));
            }
        }
        let gone: Vec<u32> = st
            .firing
            .keys()
            .filter(|k| !seen.contains_key(k))
            .copied()
            .collect();
        for idx in gone {
            if let Some(n) = st.firing.remove(&idx) {
                self.alerts.update(link_alert(device, &n, idx).resolved());
            }
        }
        st.series = seen;
        drop(all);
        self.names.set(addr.ip(), names);
    }
}

/// The running SNMP poller of the daemon: started from `Daemon::start`, restarted on reload.
#[derive(Debug)]
pub struct SnmpGuard {
    shared: Arc<Shared>,
    stop: Option<CancellationToken>,
}

impl SnmpGuard {
    /// A guard reporting to `metrics`, `alerts` and `names`; nothing runs until [`SnmpGuard::start`].
    pub fn new(metrics: Arc<SnmpMetrics>, alerts: SharedSink, names: IfNames) -> Self {
        Self {
            shared: Arc::new(Shared {
                metrics,
                alerts,
                names,
                epoch: Instant::now(),
                state: Mutex::new(HashMap::new()),
            }),
            stop: None,
        }
    }

    /// (Re)starts polling with `cfg` as child tasks of `parent`: the previous loops stop, per-device state is
    /// kept for devices that stay (at the same address), devices no longer configured are forgotten.
    pub fn start(&mut self, cfg: &SnmpConfig, parent: &CancellationToken) {
        self.stop();
        let mut targets = Vec::new();
        for d in &cfg.devices {
            match d.target(cfg) {
                Ok(t) => targets.push((t, d.interval)),
                Err(why) => {
                    tracing::error!(device = %d.name, "SNMP device not polled: {why}");
                    let Ok(mut all) = self.shared.state.lock() else {
                        continue;
                    };
                    self.shared.failed(
                        &mut all,
                        &d.name,
                        Some(SocketAddr::new(d.address, d.port)),
                        "credentials",
                        &why,
                    );
                }
            }
        }
        // Forget devices that went away; reset baselines of devices that moved.
        let forgotten: Vec<(String, DeviceState)> = match self.shared.state.lock() {
            Ok(mut st) => {
                let keep: HashMap<&str, SocketAddr> = cfg
                    .devices
                    .iter()
                    .map(|d| (d.name.as_str(), SocketAddr::new(d.address, d.port)))
                    .collect();
                let names: Vec<String> = st.keys().cloned().collect();
                let mut out = Vec::new();
                for n in names {
                    match keep.get(n.as_str()) {
                        None => {
                            if let Some(s) = st.remove(&n) {
                                out.push((n, s));
                            }
                        }
                        Some(a) => {
                            if let Some(s) = st.get_mut(&n) {
                                if s.addr.is_some_and(|old| old != *a) {
                                    s.tracker.reset();
                                }
                            }
                        }
                    }
                }
                out
            }
            Err(_) => Vec::new(),
        };
        for (n, s) in forgotten {
            self.shared.forget(&n, s);
        }
        if targets.is_empty() {
            return;
        }
        let stop = parent.child_token();
        let sem = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
        let (tx, mut rx) = mpsc::channel::<Outcome>(targets.len() * 2 + 16);
        let n = targets.len() as u32;
        let mut addrs = HashMap::new();
        for (i, (t, interval)) in targets.into_iter().enumerate() {
            addrs.insert(t.name.clone(), t.addr);
            // Spread the first polls over (at most) 10 s so devices do not all start at once.
            let offset = interval.min(Duration::from_secs(10)) * i as u32 / n;
            poller::spawn_device(
                Client::new(t),
                interval,
                offset,
                interval,
                sem.clone(),
                tx.clone(),
                stop.clone(),
            );
        }
        drop(tx);
        let shared = self.shared.clone();
        let max_ifs = cfg.max_interfaces_per_device;
        let consumer_stop = stop.clone();
        tracing::info!(
            devices = addrs.len(),
            concurrency = cfg.concurrency,
            "SNMP polling started"
        );
        tokio::spawn(async move {
            while let Some(o) = rx.recv().await {
                let Some(addr) = addrs.get(&o.device).copied() else {
                    continue;
                };
                shared.handle(o, addr, max_ifs, &consumer_stop);
            }
        });
        self.stop = Some(stop);
    }

    /// Stops the poll loops (state and alerts stay as they are).
    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            s.cancel();
        }
    }

    /// Whether the alert `LinkDown` is firing for `device`/`if_name` (for tests and status pages).
    pub fn link_down(&self, device: &str, if_name: &str) -> bool {
        self.shared.state.lock().is_ok_and(|st| {
            st.get(device)
                .is_some_and(|d| d.firing.values().any(|n| n.name == if_name))
        })
    }
}

impl Drop for SnmpGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn load(text: &str) -> Result<SnmpConfig, String> {
        let text = format!("[storage]\npath = \"/tmp/w.db\"\nmax_size = \"64MiB\"\n{text}");
        yagura_daemon::config::parse::<crate::WatchConfig>("w.toml", &text)
            .map(|l| l.config.snmp)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn v2c_and_v3_devices_load() {
        let c = load(
            r#"
[snmp]
concurrency = 8
[[snmp.devices]]
name = "core1"
address = "198.18.0.1"
version = "2c"
community_env = "SNMP_COMMUNITY"
interval = "30s"
[[snmp.devices]]
name = "edge1"
address = "198.18.0.2"
port = 1161
version = "3"
user = "yagura"
auth_protocol = "sha256"
auth_password_env = "SNMP_AUTH"
privacy_protocol = "aes"
privacy_password_env = "SNMP_PRIV"
timeout = "500ms"
"#,
        )
        .unwrap();
        assert_eq!(c.devices.len(), 2);
        assert_eq!(c.devices[1].port, 1161);
        assert_eq!(c.devices[0].interval, Duration::from_secs(30));
        assert_eq!(c.devices[1].timeout, Some(Duration::from_millis(500)));
    }

    #[test]
    fn missing_secrets_and_literal_secrets_are_errors() {
        let e = load(
            r#"
[[snmp.devices]]
name = "a"
address = "198.18.0.1"
version = "3"
user = "u"
auth_protocol = "sha"
auth_password_env = "hunter2 secret"
privacy_protocol = "aes"
[[snmp.devices]]
name = "a"
address = "198.18.0.2"
version = "2c"
"#,
        )
        .unwrap_err();
        assert!(e.contains("w.toml:11:21: error[not-env-name]"), "{e}");
        assert!(e.contains("privacy_password_env"), "{e}");
        assert!(e.contains("defined twice"), "{e}");
        assert!(e.contains("community_env"), "{e}");
    }

    #[test]
    fn unknown_device_keys_get_a_suggestion() {
        let e = load(
            "[[snmp.devices]]\nname = \"a\"\naddress = \"198.18.0.1\"\nversion = \"2c\"\ncomunity_env = \"C\"\n",
        )
        .unwrap_err();
        assert!(e.contains("did you mean `community_env`"), "{e}");
    }

    fn iface(index: u32, name: &str, oper: i64, octets: u64) -> yagura_snmp::Interface {
        yagura_snmp::Interface {
            index,
            name: name.into(),
            alias: format!("to-{name}"),
            admin_status: Some(1),
            oper_status: Some(oper),
            speed_bps: Some(1_000_000_000),
            discontinuity: None,
            counters: yagura_snmp::Counters {
                in_octets: Some(yagura_snmp::Counter::C64(octets)),
                out_octets: Some(yagura_snmp::Counter::C64(octets)),
                in_ucast: Some(yagura_snmp::Counter::C64(octets / 100)),
                out_ucast: Some(yagura_snmp::Counter::C64(octets / 100)),
                ..Default::default()
            },
        }
    }

    fn outcome(started: Instant, uptime: u32, ifs: Vec<yagura_snmp::Interface>) -> Outcome {
        Outcome {
            device: "sw1".into(),
            started,
            elapsed: Duration::from_millis(20),
            result: Ok(yagura_snmp::Sample {
                sys_uptime: uptime,
                sys_name: "sw1".into(),
                interfaces: ifs.into_iter().map(|i| (i.index, i)).collect(),
                needs_fallback: false,
            }),
        }
    }

    #[test]
    fn metrics_alerts_and_the_interface_cap() {
        let mut reg = Registry::default();
        let metrics = SnmpMetrics::register(&mut reg);
        let sink = Arc::new(yagura_alert::MemorySink::default());
        let names = IfNames::default();
        let g = SnmpGuard::new(metrics, sink.clone(), names.clone());
        let addr: SocketAddr = "198.18.0.9:161".parse().unwrap();
        let t0 = Instant::now();
        let live = CancellationToken::new();
        let text = || {
            let mut s = String::new();
            prometheus_client::encoding::text::encode(&mut s, &reg).unwrap();
            s
        };
        // Three interfaces, cap of two: the third is counted, not exported; eth1 is down.
        let ifs = vec![
            iface(1, "eth0", 1, 1000),
            iface(2, "eth1", 2, 0),
            iface(3, "eth2", 1, 0),
        ];
        g.shared.handle(outcome(t0, 100, ifs), addr, 2, &live);
        assert!(sink.is_firing("LinkDown", &[("device", "sw1"), ("ifName", "eth1")]));
        let t = text();
        assert!(
            t.contains("yagura_snmp_interfaces_dropped_total{device=\"sw1\"} 1"),
            "{t}"
        );
        assert!(!t.contains("ifName=\"eth2\""), "{t}");
        assert!(
            !t.contains("yagura_snmp_if_bits_per_second{"),
            "no rate on the first poll: {t}"
        );
        assert_eq!(names.lookup("198.18.0.9", Some(3)).as_deref(), Some("eth2"));

        // 10 s later: 1250 octets/s on eth0 = 10 kbit/s; eth1 back up.
        let ifs = vec![
            iface(1, "eth0", 1, 13_500),
            iface(2, "eth1", 1, 0),
            iface(3, "eth2", 1, 0),
        ];
        g.shared.handle(
            outcome(t0 + Duration::from_secs(10), 1100, ifs),
            addr,
            2,
            &live,
        );
        assert!(!sink.is_firing("LinkDown", &[("ifName", "eth1")]));
        let t = text();
        assert!(
            t.contains("yagura_snmp_if_bits_per_second{device=\"sw1\",ifName=\"eth0\",ifAlias=\"to-eth0\",direction=\"in\"} 10000.0"),
            "{t}"
        );

        // The agent restarted: no rate (the series goes away rather than going stale), restart counted.
        let ifs = vec![iface(1, "eth0", 1, 5), iface(2, "eth1", 1, 0)];
        g.shared.handle(
            outcome(t0 + Duration::from_secs(20), 30, ifs),
            addr,
            2,
            &live,
        );
        let t = text();
        assert!(
            t.contains("yagura_snmp_agent_restarts_total{device=\"sw1\"} 1"),
            "{t}"
        );
        assert!(!t.contains("yagura_snmp_if_bits_per_second{"), "{t}");

        // Unreachable: SnmpDeviceDown, up = 0; back: resolved.
        let failed = Outcome {
            result: Err(yagura_snmp::SnmpError::Timeout {
                timeout: Duration::from_secs(1),
                attempts: 2,
            }),
            ..outcome(t0 + Duration::from_secs(30), 0, vec![])
        };
        g.shared.handle(failed, addr, 2, &live);
        assert!(sink.is_firing("SnmpDeviceDown", &[("device", "sw1")]));
        assert!(
            text().contains("yagura_snmp_poll_errors_total{device=\"sw1\",reason=\"timeout\"} 1")
        );
        g.shared.handle(
            outcome(t0 + Duration::from_secs(40), 1030, vec![]),
            addr,
            2,
            &live,
        );
        assert!(!sink.is_firing("SnmpDeviceDown", &[("device", "sw1")]));
        // A late outcome of a stopped loop (a reload removed the device meanwhile) changes nothing.
        let stopped = CancellationToken::new();
        stopped.cancel();
        let late = vec![iface(9, "late", 2, 0)];
        g.shared.handle(
            outcome(t0 + Duration::from_secs(50), 2000, late),
            addr,
            2,
            &stopped,
        );
        assert!(!sink.is_firing("LinkDown", &[("ifName", "late")]));
        assert!(!text().contains("late"));
    }

    #[test]
    fn names_match_exporters() {
        let n = IfNames::default();
        let mut m = BTreeMap::new();
        m.insert(
            3,
            IfName {
                name: "ge-0/0/3".into(),
                alias: "uplink".into(),
            },
        );
        n.set("198.18.0.1".parse().unwrap(), m);
        assert_eq!(n.lookup("198.18.0.1", Some(3)).as_deref(), Some("ge-0/0/3"));
        assert_eq!(
            n.lookup("::ffff:198.18.0.1", Some(3)).as_deref(),
            Some("ge-0/0/3")
        );
        assert_eq!(n.lookup("198.18.0.1", Some(4)), None);
        assert_eq!(n.lookup("198.18.0.1", None), None);
        assert_eq!(n.lookup("junk", Some(3)), None);
    }
}
