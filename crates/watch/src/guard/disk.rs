//! The disk guard (`[[disk]]`): for each configured path, the filesystem's bytes and inodes (statvfs), and
//! optionally a user/project quota (quotactl) or a byte budget for a directory (measured incrementally, see
//! [`super::dirsize`]). Usage is forecast with a linear fit over a window ([`super::forecast`]), and alerts
//! `DiskFillsSoon` (time to full under the horizon), `DiskAlmostFull` (over the threshold),
//! `DiskInodesAlmostFull`, `DiskQuotaExceeded` (writes fail with EDQUOT, which `df` does not show) and
//! `DiskUnreadable` go to the alert sink.
//!
//! [`DiskState::observe`] turns readings into alert states without I/O; [`run`] is the task around it.

use super::dirsize::DirMeter;
use super::forecast::Window;
use super::quota_sys;
use crate::config::ByteSize;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use yagura_alert::{Alert, Severity, SharedSink, Status};
use yagura_config::{Diagnostic, KeyPath};

/// Which quota of the path's filesystem to watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaKind {
    /// A user quota (`id` is the uid).
    User,
    /// A project quota (`id` is the project id; ext4 `-O project`, XFS `prjquota`).
    Project,
}

/// `[[disk]]`: one path to guard.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct DiskConfig {
    /// The path (any file or directory on the filesystem to watch; the directory for `budget`).
    pub path: PathBuf,
    /// Name in alerts and metrics (default: the path).
    #[serde(default)]
    pub name: Option<String>,
    /// Also watch this quota of the filesystem: `"user"` or `"project"` (needs `id`).
    #[serde(default)]
    pub quota: Option<QuotaKind>,
    /// The uid or project id of `quota`.
    #[serde(default)]
    pub id: Option<u32>,
    /// The block device for quotactl (default: found in /proc/self/mountinfo).
    #[serde(default)]
    pub device: Option<PathBuf>,
    /// Also hold the directory tree under `path` to this many bytes, e.g. `"18GiB"` (a quota the filesystem
    /// cannot enforce or report; "disk quota exceeded" past it).
    #[serde(default)]
    pub budget: Option<ByteSize>,
    /// How often to measure (default 1m).
    #[serde(default = "one_minute", with = "yagura_config::duration")]
    pub interval: Duration,
    /// The window of the linear fit (default 6h).
    #[serde(default = "six_hours", with = "yagura_config::duration")]
    pub window: Duration,
    /// Alert `DiskFillsSoon` when the forecast time to full is under this (default 72h).
    #[serde(default = "three_days", with = "yagura_config::duration")]
    pub horizon: Duration,
    /// Alert `DiskAlmostFull` at this fraction of the capacity (default 0.9).
    #[serde(default = "ninety_percent")]
    pub threshold: f64,
    /// How often a `budget` tree is walked in full besides the incremental updates (default 1h).
    #[serde(default = "one_hour", with = "yagura_config::duration")]
    pub rescan: Duration,
    /// Severity of this path's alerts (default critical).
    #[serde(default = "critical")]
    pub severity: Severity,
}

fn one_minute() -> Duration {
    Duration::from_secs(60)
}
fn one_hour() -> Duration {
    Duration::from_secs(3600)
}
fn six_hours() -> Duration {
    Duration::from_secs(6 * 3600)
}
fn three_days() -> Duration {
    Duration::from_secs(72 * 3600)
}
fn ninety_percent() -> f64 {
    0.9
}
fn critical() -> Severity {
    Severity::Critical
}

impl DiskConfig {
    /// The name in alerts and metrics.
    pub fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.path.display().to_string())
    }
}

/// Every alert the disk guard raises.
pub const ALERT_NAMES: [&str; 5] = [
    "DiskFillsSoon",
    "DiskAlmostFull",
    "DiskInodesAlmostFull",
    "DiskQuotaExceeded",
    "DiskUnreadable",
];

/// Most samples one forecast window keeps (whatever the interval).
pub const MAX_SAMPLES: usize = 720;
/// Most directories a budget meter watches with inotify.
pub const MAX_WATCHED_DIRS: usize = 10_000;

/// Semantic checks of `[[disk]]`.
pub fn validate(disks: &[DiskConfig], at: &KeyPath) -> Vec<Diagnostic> {
    let mut d = Vec::new();
    let mut names: Vec<(String, KeyPath)> = Vec::new();
    for (i, c) in disks.iter().enumerate() {
        let here = at.index(i);
        let name = c.name();
        if let Some((_, first)) = names.iter().find(|(n, _)| *n == name) {
            d.push(
                Diagnostic::error(
                    "duplicate-name",
                    format!("disk `{name}` is configured twice"),
                )
                .at(&here.key(if c.name.is_some() { "name" } else { "path" }))
                .related(first, "first here")
                .hint("give each entry its own `name`"),
            );
        } else {
            names.push((name, here.clone()));
        }
        if !c.path.is_absolute() {
            d.push(
                Diagnostic::error("relative-path", "`path` must be absolute").at(&here.key("path")),
            );
        }
        for (key, v) in [
            ("interval", c.interval),
            ("window", c.window),
            ("horizon", c.horizon),
            ("rescan", c.rescan),
        ] {
            if v.is_zero() {
                d.push(
                    Diagnostic::error("out-of-range", format!("`{key}` must be above 0"))
                        .at(&here.key(key))
                        .hint("write durations with a unit: \"30s\", \"6h\""),
                );
            }
        }
        if !c.interval.is_zero() && c.window < c.interval * 3 {
            d.push(
                Diagnostic::error(
                    "out-of-range",
                    "`window` must hold at least 3 intervals for a forecast",
                )
                .at(&here.key("window")),
            );
        }
        if !(c.threshold > 0.0 && c.threshold <= 1.0) {
            d.push(
                Diagnostic::error("out-of-range", "`threshold` must be within (0, 1]")
                    .at(&here.key("threshold"))
                    .hint("0.9 alerts at 90 % full"),
            );
        }
        match (c.quota, c.id) {
            (Some(_), None) => d.push(
                Diagnostic::error("missing-id", "`quota` needs the uid or project `id`")
                    .at(&here.key("quota")),
            ),
            (None, Some(_)) => d.push(
                Diagnostic::warning("unused", "`id` without `quota` is ignored")
                    .at(&here.key("id")),
            ),
            _ => {}
        }
        if c.budget.is_some_and(|b| b.0 == 0) {
            d.push(
                Diagnostic::error("out-of-range", "`budget` must be above 0")
                    .at(&here.key("budget")),
            );
        }
        if c.quota.is_some() && c.budget.is_some() {
            d.push(
                Diagnostic::error(
                    "conflict",
                    "give either `quota` or `budget` for one path, not both",
                )
                .at(&here.key("budget")),
            );
        }
    }
    d
}

/// Where a reading comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// The filesystem (statvfs).
    Fs,
    /// A user or project quota.
    Quota,
    /// The configured byte budget of a directory tree.
    Budget,
}

impl Source {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fs => "fs",
            Self::Quota => "quota",
            Self::Budget => "budget",
        }
    }
}

/// One measurement of one source.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Where it comes from.
    pub source: Source,
    /// Bytes used (charged, for a quota).
    pub used: u64,
    /// Bytes that can be used in all: used + available to unprivileged writers (fs), the hard (else soft) limit
    /// (quota), the budget; `None` for a quota without a byte limit.
    pub capacity: Option<u64>,
    /// The filesystem's total size (fs only).
    pub size: Option<u64>,
    /// Inodes used and the inode limit, when there is one.
    pub inodes: Option<(u64, u64)>,
    /// Writes fail with EDQUOT now (quota at its hard limit, budget used up).
    pub exceeded: bool,
}

/// Reads every source of one `[[disk]]` entry; holds the budget meter between reads.
#[derive(Debug)]
pub struct Meter {
    path: PathBuf,
    quota: Option<(QuotaKind, u32, Option<PathBuf>)>,
    quota_reader: Box<dyn QuotaReader>,
    budget: Option<(u64, DirMeter)>,
    rescan: Duration,
    last_walk: Instant,
}

/// Reads one quota: the real `quotactl`, or a stand-in in tests (quotas cannot be had on every kernel).
pub trait QuotaReader: Send + std::fmt::Debug {
    /// The quota of `id` on the filesystem at `device`.
    fn read(&self, kind: QuotaKind, device: &Path, id: u32)
        -> std::io::Result<quota_sys::RawQuota>;
}

/// The kernel's quotas through `quotactl(Q_GETQUOTA)`.
#[derive(Debug, Default)]
pub struct Quotactl;

impl QuotaReader for Quotactl {
    fn read(
        &self,
        kind: QuotaKind,
        device: &Path,
        id: u32,
    ) -> std::io::Result<quota_sys::RawQuota> {
        let k = match kind {
            QuotaKind::User => quota_sys::USRQUOTA,
            QuotaKind::Project => quota_sys::PRJQUOTA,
        };
        quota_sys::get_quota(k, device, id)
    }
}

pub use quota_sys::RawQuota;

impl Meter {
    /// A meter for one entry, reading quotas with `quotactl`.
    pub fn new(c: &DiskConfig) -> Self {
        Self::with_quota_reader(c, Box::new(Quotactl))
    }

    /// A meter reading quotas through `reader`.
    pub fn with_quota_reader(c: &DiskConfig, reader: Box<dyn QuotaReader>) -> Self {
        Self {
            path: c.path.clone(),
            quota: c.quota.zip(c.id).map(|(k, id)| (k, id, c.device.clone())),
            quota_reader: reader,
            budget: c
                .budget
                .map(|b| (b.0, DirMeter::new(c.path.clone(), MAX_WATCHED_DIRS))),
            rescan: c.rescan,
            last_walk: Instant::now(),
        }
    }

    /// Reads every source; an error names the source that failed (the others are still returned).
    pub fn read(&mut self) -> (Vec<Reading>, Vec<(Source, String)>) {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        match statvfs_reading(&self.path) {
            Ok(r) => out.push(r),
            Err(e) => errors.push((Source::Fs, format!("statvfs {}: {e}", self.path.display()))),
        }
        if let Some((kind, id, device)) = &self.quota {
            let device = match device {
                Some(d) => Ok(d.clone()),
                None => device_of(&self.path),
            };
            match device.and_then(|d| self.quota_reader.read(*kind, &d, *id)) {
                Ok(q) => out.push(quota_reading(&q)),
                Err(e) => errors.push((Source::Quota, format!("quotactl: {e}"))),
            }
        }
        if let Some((budget, meter)) = &mut self.budget {
            let full = self.last_walk.elapsed() >= self.rescan;
            let r = if full {
                self.last_walk = Instant::now();
                meter.full_walk()
            } else {
                meter.measure()
            };
            match r {
                Ok(used) => out.push(Reading {
                    source: Source::Budget,
                    used,
                    capacity: Some(*budget),
                    size: None,
                    inodes: None,
                    exceeded: used >= *budget,
                }),
                Err(e) => errors.push((Source::Budget, format!("{}: {e}", self.path.display()))),
            }
        }
        (out, errors)
    }
}

fn statvfs_reading(path: &Path) -> nix::Result<Reading> {
    let s = nix::sys::statvfs::statvfs(path)?;
    let frsize = (s.fragment_size() as u64).max(1);
    let blocks = s.blocks() as u64;
    let free = s.blocks_free() as u64;
    let avail = s.blocks_available() as u64;
    let used = blocks.saturating_sub(free).saturating_mul(frsize);
    let files = s.files() as u64;
    Ok(Reading {
        source: Source::Fs,
        used,
        capacity: Some(used.saturating_add(avail.saturating_mul(frsize))),
        size: Some(blocks.saturating_mul(frsize)),
        // Filesystems without an inode limit (btrfs, some tmpfs) report 0 files.
        inodes: (files > 0).then(|| (files.saturating_sub(s.files_free() as u64), files)),
        exceeded: false,
    })
}

/// A reading from a quota: the hard limit is the capacity (writes fail past it), else the soft limit.
pub fn quota_reading(q: &RawQuota) -> Reading {
    let limit = if q.hard_bytes > 0 {
        Some(q.hard_bytes)
    } else if q.soft_bytes > 0 {
        Some(q.soft_bytes)
    } else {
        None
    };
    Reading {
        source: Source::Quota,
        used: q.used_bytes,
        capacity: limit,
        size: None,
        inodes: (q.hard_inodes > 0).then_some((q.used_inodes, q.hard_inodes)),
        exceeded: (q.hard_bytes > 0 && q.used_bytes >= q.hard_bytes)
            || (q.hard_inodes > 0 && q.used_inodes >= q.hard_inodes),
    }
}

/// The block device the filesystem holding `path` is mounted from, from /proc/self/mountinfo.
pub fn device_of(path: &Path) -> std::io::Result<PathBuf> {
    let canon = std::fs::canonicalize(path)?;
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    mount_source(&text, &canon).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no mount found for {}", canon.display()),
        )
    })
}

/// The mount source of the longest mount point containing `path`, from mountinfo text.
pub fn mount_source(mountinfo: &str, path: &Path) -> Option<PathBuf> {
    let mut best: Option<(usize, PathBuf)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(mount_point) = fields.get(4) else {
            continue;
        };
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let Some(source) = fields.get(dash + 2) else {
            continue;
        };
        let mp = PathBuf::from(unescape(mount_point));
        if path.starts_with(&mp) {
            let depth = mp.components().count();
            // Later lines win at equal depth: they are mounted on top.
            if best.as_ref().is_none_or(|(d, _)| depth >= *d) {
                best = Some((depth, PathBuf::from(unescape(source))));
            }
        }
    }
    best.map(|(_, s)| s)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One source's forecast window and its alerts' last state.
#[derive(Debug)]
struct SourceState {
    window: Window,
    capacity: Option<u64>,
    seconds_to_full: Option<f64>,
}

/// The guard's memory for one `[[disk]]` entry: a forecast window per source and the alerts it has raised.
#[derive(Debug)]
pub struct DiskState {
    name: String,
    path: String,
    window: Duration,
    horizon: Duration,
    threshold: f64,
    severity: Severity,
    sources: HashMap<Source, SourceState>,
    firing: HashMap<(String, Source), bool>,
}

impl DiskState {
    /// The state for one entry.
    pub fn new(c: &DiskConfig) -> Self {
        Self {
            name: c.name(),
            path: c.path.display().to_string(),
            window: c.window,
            horizon: c.horizon,
            threshold: c.threshold,
            severity: c.severity,
            sources: HashMap::new(),
            firing: HashMap::new(),
        }
    }

    /// The latest forecast of a source, seconds to full.
    pub fn seconds_to_full(&self, s: Source) -> Option<f64> {
        self.sources.get(&s).and_then(|x| x.seconds_to_full)
    }

    fn alert(&mut self, name: &str, source: Source, firing: bool, summary: String) -> Alert {
        self.firing.insert((name.to_string(), source), firing);
        Alert::firing(name, self.severity)
            .label("disk", self.name.clone())
            .label("source", source.as_str())
            .annotation("path", self.path.clone())
            .annotation("summary", summary)
            .with_status(if firing {
                Status::Firing
            } else {
                Status::Resolved
            })
    }

    /// Takes the readings of time `t` (seconds, monotonic) and the sources that failed, and returns the current
    /// state of every alert of this entry.
    pub fn observe(
        &mut self,
        t: f64,
        readings: &[Reading],
        errors: &[(Source, String)],
    ) -> Vec<Alert> {
        let mut out = Vec::new();
        let window = self.window.as_secs_f64();
        let horizon = self.horizon.as_secs_f64();
        for r in readings {
            let st = self.sources.entry(r.source).or_insert_with(|| SourceState {
                window: Window::new(window, MAX_SAMPLES),
                capacity: None,
                seconds_to_full: None,
            });
            let moved = match (st.capacity, r.capacity) {
                (Some(o), Some(n)) => o.abs_diff(n) > o / 100,
                (o, n) => o != n,
            };
            if moved {
                // A resized volume or a changed quota: the old line says nothing about the new limit. (Small
                // wobbles of used + available, e.g. delayed allocation, keep the window.)
                st.window.clear();
            }
            st.capacity = r.capacity;
            st.window.push(t, r.used as f64);
            let forecast = r.capacity.and_then(|cap| {
                st.window
                    .forecast(cap as f64, 3, window / 10.0)
                    .and_then(|f| f.seconds_to_full)
            });
            st.seconds_to_full = forecast;
            let what = match r.source {
                Source::Fs => "the filesystem",
                Source::Quota => "the quota",
                Source::Budget => "the budget",
            };
            let fills = forecast.is_some_and(|s| s < horizon);
            out.push(self.alert(
                "DiskFillsSoon",
                r.source,
                fills,
                match forecast {
                    Some(s) => format!(
                        "{what} of {} fills in {} at the growth of the last {}",
                        self.name,
                        humantime::format_duration(Duration::from_secs(s as u64)),
                        humantime::format_duration(self.window)
                    ),
                    None => format!("{what} of {} is not growing towards full", self.name),
                },
            ));
            let ratio = r.capacity.map(|c| {
                if c == 0 {
                    1.0
                } else {
                    r.used as f64 / c as f64
                }
            });
            let full = ratio.is_some_and(|x| x >= self.threshold);
            out.push(self.alert(
                "DiskAlmostFull",
                r.source,
                full,
                format!(
                    "{what} of {} is {:.1} % full (threshold {:.0} %)",
                    self.name,
                    ratio.unwrap_or(0.0) * 100.0,
                    self.threshold * 100.0
                ),
            ));
            if let Some((used, total)) = r.inodes {
                let ir = if total == 0 {
                    1.0
                } else {
                    used as f64 / total as f64
                };
                out.push(self.alert(
                    "DiskInodesAlmostFull",
                    r.source,
                    ir >= self.threshold,
                    format!(
                        "{what} of {} has {used} of {total} inodes in use ({:.1} %)",
                        self.name,
                        ir * 100.0
                    ),
                ));
            }
            if r.source != Source::Fs {
                out.push(self.alert(
                    "DiskQuotaExceeded",
                    r.source,
                    r.exceeded,
                    format!(
                        "{what} of {} is used up: writes fail with \"disk quota exceeded\" (EDQUOT) although df may show free space",
                        self.name
                    ),
                ));
            }
            out.push(self.alert("DiskUnreadable", r.source, false, String::new()));
        }
        for (source, e) in errors {
            out.push(self.alert(
                "DiskUnreadable",
                *source,
                true,
                format!("cannot measure {}: {e}", self.name),
            ));
        }
        out
    }
}

/// `{disk, source}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DiskLabels {
    /// The entry's name.
    pub disk: String,
    /// `fs`, `quota` or `budget`.
    pub source: &'static str,
}

use crate::metrics::FloatGauge as FGauge;

/// The disk guard's metrics (one series per configured entry and source).
#[derive(Debug, Default)]
pub struct DiskMetrics {
    used: Family<DiskLabels, Gauge>,
    capacity: Family<DiskLabels, Gauge>,
    size: Family<DiskLabels, Gauge>,
    free: Family<DiskLabels, Gauge>,
    inodes_used: Family<DiskLabels, Gauge>,
    inodes_total: Family<DiskLabels, Gauge>,
    seconds_to_full: Family<DiskLabels, FGauge>,
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl DiskMetrics {
    /// Registers `yagura_watch_disk_*`.
    pub fn register(r: &mut Registry) -> Self {
        let m = Self::default();
        r.register(
            "yagura_watch_disk_used_bytes",
            "Bytes used (charged, for a quota) per guarded disk and source",
            m.used.clone(),
        );
        r.register(
            "yagura_watch_disk_capacity_bytes",
            "Bytes usable in all: used + available (fs), the quota limit, the budget",
            m.capacity.clone(),
        );
        r.register(
            "yagura_watch_disk_size_bytes",
            "Total size of the filesystem",
            m.size.clone(),
        );
        r.register(
            "yagura_watch_disk_free_bytes",
            "Bytes still usable (capacity minus used)",
            m.free.clone(),
        );
        r.register(
            "yagura_watch_disk_inodes_used",
            "Inodes in use",
            m.inodes_used.clone(),
        );
        r.register(
            "yagura_watch_disk_inodes_total",
            "Inode limit",
            m.inodes_total.clone(),
        );
        r.register(
            "yagura_watch_disk_forecast_seconds_to_full",
            "Forecast seconds until full from a linear fit of usage over the window (absent when not growing)",
            m.seconds_to_full.clone(),
        );
        m
    }

    /// Forgets every series (before the guards restart with a new config).
    pub fn clear(&self) {
        self.used.clear();
        self.capacity.clear();
        self.size.clear();
        self.free.clear();
        self.inodes_used.clear();
        self.inodes_total.clear();
        self.seconds_to_full.clear();
    }

    fn record(&self, disk: &str, readings: &[Reading], state: &DiskState) {
        for r in readings {
            let l = DiskLabels {
                disk: disk.to_string(),
                source: r.source.as_str(),
            };
            self.used.get_or_create(&l).set(clamp(r.used));
            if let Some(c) = r.capacity {
                self.capacity.get_or_create(&l).set(clamp(c));
                self.free
                    .get_or_create(&l)
                    .set(clamp(c.saturating_sub(r.used)));
            }
            if let Some(s) = r.size {
                self.size.get_or_create(&l).set(clamp(s));
            }
            if let Some((u, t)) = r.inodes {
                self.inodes_used.get_or_create(&l).set(clamp(u));
                self.inodes_total.get_or_create(&l).set(clamp(t));
            }
            match state.seconds_to_full(r.source) {
                Some(s) => {
                    self.seconds_to_full.get_or_create(&l).set(s);
                }
                None => {
                    self.seconds_to_full.remove(&l);
                }
            }
        }
    }
}

/// Guards one entry until `stop`: measures every `interval`, reports alert states to `sink`, updates metrics.
pub async fn run(
    c: DiskConfig,
    meter: Meter,
    metrics: Arc<DiskMetrics>,
    sink: SharedSink,
    stop: CancellationToken,
) {
    let name = c.name();
    let mut state = DiskState::new(&c);
    let mut meter = Some(meter);
    let start = Instant::now();
    let mut tick = tokio::time::interval(c.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let Some(mut m) = meter.take() else { break };
        let joined = tokio::task::spawn_blocking(move || {
            let r = m.read();
            (m, r)
        })
        .await;
        let Ok((m, (readings, errors))) = joined else {
            tracing::error!(disk = %name, "disk measurement panicked; the guard of this path stops");
            sink.update(
                Alert::firing("DiskUnreadable", c.severity)
                    .label("disk", name.clone())
                    .label("source", "fs")
                    .annotation("summary", "the disk guard of this path stopped"),
            );
            break;
        };
        meter = Some(m);
        let t = start.elapsed().as_secs_f64();
        for (source, e) in &errors {
            tracing::debug!(disk = %name, source = source.as_str(), error = %e, "disk measurement failed");
        }
        for a in state.observe(t, &readings, &errors) {
            sink.update(a);
        }
        metrics.record(&name, &readings, &state);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use yagura_alert::{AlertSink, MemorySink};

    fn cfg(extra: &str) -> DiskConfig {
        #[derive(Deserialize)]
        struct W {
            disk: Vec<DiskConfig>,
        }
        let w: W = toml::from_str(&format!("[[disk]]\npath = \"/data\"\n{extra}")).unwrap();
        w.disk.into_iter().next().unwrap()
    }

    fn reading(source: Source, used: u64, capacity: u64) -> Reading {
        Reading {
            source,
            used,
            capacity: Some(capacity),
            size: Some(capacity),
            inodes: None,
            exceeded: source != Source::Fs && used >= capacity,
        }
    }

    fn firing(alerts: &[Alert], name: &str, source: Source) -> bool {
        let s = MemorySink::default();
        for a in alerts {
            s.update(a.clone());
        }
        s.is_firing(name, &[("source", source.as_str())])
    }

    #[test]
    fn defaults() {
        let c = cfg("");
        assert_eq!(c.window, Duration::from_secs(6 * 3600));
        assert_eq!(c.horizon, Duration::from_secs(72 * 3600));
        assert_eq!(c.threshold, 0.9);
        assert_eq!(c.name(), "/data");
        assert!(validate(&[c], &KeyPath::root().key("disk")).is_empty());
    }

    #[test]
    fn growth_towards_full_fires_then_resolves_when_freed() {
        let c = cfg("window = \"10m\"\nhorizon = \"1h\"\ninterval = \"1m\"");
        let mut s = DiskState::new(&c);
        let cap = 100 << 30;
        // 10 GiB used, growing 10 MiB/s: full in ~2.5 h — not yet inside the 1 h horizon.
        let mut last = Vec::new();
        for i in 0..5u64 {
            last = s.observe(
                i as f64 * 60.0,
                &[reading(Source::Fs, (10 << 30) + i * 60 * (10 << 20), cap)],
                &[],
            );
        }
        assert!(!firing(&last, "DiskFillsSoon", Source::Fs));
        // 60 MiB/s: full within the hour.
        for i in 5..10u64 {
            let used = (10 << 30) + 4 * 60 * (10 << 20) + (i - 4) * 60 * (60 << 20);
            last = s.observe(i as f64 * 60.0, &[reading(Source::Fs, used, cap)], &[]);
        }
        assert!(firing(&last, "DiskFillsSoon", Source::Fs), "{last:?}");
        assert!(s.seconds_to_full(Source::Fs).unwrap() < 3600.0);
        // Space freed and flat since: resolved once the window no longer shows growth.
        for i in 10..21u64 {
            last = s.observe(i as f64 * 60.0, &[reading(Source::Fs, 20 << 30, cap)], &[]);
        }
        assert!(!firing(&last, "DiskFillsSoon", Source::Fs), "{last:?}");
        assert_eq!(s.seconds_to_full(Source::Fs), None);
    }

    #[test]
    fn capacity_wobble_keeps_the_window_a_resize_clears_it() {
        let c = cfg("window = \"10m\"\nhorizon = \"1h\"");
        let mut s = DiskState::new(&c);
        let cap: u64 = 100 << 30;
        for i in 0..6u64 {
            let wobble = if i % 2 == 0 { cap } else { cap - (cap / 300) };
            s.observe(
                i as f64 * 60.0,
                &[reading(Source::Fs, (50 << 30) + i * (5 << 30), wobble)],
                &[],
            );
        }
        assert!(s.seconds_to_full(Source::Fs).is_some());
        // The volume was doubled: start over.
        s.observe(360.0, &[reading(Source::Fs, 80 << 30, 2 * cap)], &[]);
        assert!(s.seconds_to_full(Source::Fs).is_none());
    }

    #[test]
    fn threshold_and_quota_exceeded() {
        let c = cfg("threshold = 0.8");
        let mut s = DiskState::new(&c);
        let a = s.observe(
            0.0,
            &[
                reading(Source::Fs, 50, 100),
                reading(Source::Quota, 100, 100),
            ],
            &[],
        );
        assert!(!firing(&a, "DiskAlmostFull", Source::Fs));
        assert!(firing(&a, "DiskAlmostFull", Source::Quota));
        // df would show half the disk free; the quota is what fails writes.
        assert!(firing(&a, "DiskQuotaExceeded", Source::Quota));
        let a = s.observe(
            60.0,
            &[
                reading(Source::Fs, 50, 100),
                reading(Source::Quota, 10, 100),
            ],
            &[],
        );
        assert!(!firing(&a, "DiskQuotaExceeded", Source::Quota));
        assert!(!firing(&a, "DiskAlmostFull", Source::Quota));
    }

    #[test]
    fn unreadable_fires_and_resolves() {
        let c = cfg("");
        let mut s = DiskState::new(&c);
        let a = s.observe(0.0, &[], &[(Source::Fs, "ENOENT".into())]);
        assert!(firing(&a, "DiskUnreadable", Source::Fs));
        let sink = MemorySink::default();
        for x in a {
            sink.update(x);
        }
        for x in s.observe(1.0, &[reading(Source::Fs, 1, 10)], &[]) {
            sink.update(x);
        }
        assert!(!sink.is_firing("DiskUnreadable", &[]));
    }

    #[test]
    fn quota_reading_limits() {
        let r = quota_reading(&RawQuota {
            used_bytes: 20 << 30,
            hard_bytes: 20 << 30,
            soft_bytes: 18 << 30,
            used_inodes: 10,
            hard_inodes: 0,
        });
        assert_eq!(r.capacity, Some(20 << 30));
        assert!(r.exceeded);
        assert_eq!(r.inodes, None);
        let r = quota_reading(&RawQuota {
            used_bytes: 1,
            hard_bytes: 0,
            soft_bytes: 0,
            used_inodes: 1,
            hard_inodes: 0,
        });
        assert_eq!(r.capacity, None);
        assert!(!r.exceeded);
    }

    /// A stand-in for the kernel's quota (quotas cannot be enabled on this kernel): what `quotactl` returns
    /// for a project quota that the WAL has filled.
    #[derive(Debug)]
    struct FixedQuota(RawQuota);
    impl QuotaReader for FixedQuota {
        fn read(&self, kind: QuotaKind, device: &Path, id: u32) -> std::io::Result<RawQuota> {
            assert_eq!((kind, id), (QuotaKind::Project, 42));
            assert_eq!(device, Path::new("/dev/vdb"));
            Ok(self.0)
        }
    }

    #[test]
    fn meter_reads_fs_and_quota() {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = cfg("quota = \"project\"\nid = 42\ndevice = \"/dev/vdb\"\n");
        c.path = tmp.path().to_path_buf();
        let q = RawQuota {
            used_bytes: 5 << 30,
            hard_bytes: 5 << 30,
            soft_bytes: 0,
            used_inodes: 3,
            hard_inodes: 0,
        };
        let mut m = Meter::with_quota_reader(&c, Box::new(FixedQuota(q)));
        let (r, e) = m.read();
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].source, Source::Fs);
        assert!(r[0].capacity.unwrap() > 0);
        assert!(r[1].exceeded);
    }

    #[test]
    fn real_quotactl_reports_an_error_not_a_panic() {
        // No quotas here: the kernel answers an error (ENOENT/ENOTBLK/ESRCH/ENOSYS), which becomes DiskUnreadable.
        let r = Quotactl.read(QuotaKind::User, Path::new("/nonexistent-dev"), 0);
        assert!(r.is_err());
    }

    #[test]
    fn budget_exceeded_is_disk_quota_exceeded() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("f"), vec![1u8; 64 * 1024]).unwrap();
        let mut c = cfg("budget = \"16KiB\"");
        c.path = tmp.path().to_path_buf();
        let mut m = Meter::new(&c);
        let (r, e) = m.read();
        assert!(e.is_empty());
        let b = r.iter().find(|r| r.source == Source::Budget).unwrap();
        assert!(b.exceeded && b.used >= 64 * 1024);
        let mut s = DiskState::new(&c);
        assert!(firing(
            &s.observe(0.0, &r, &e),
            "DiskQuotaExceeded",
            Source::Budget
        ));
    }

    #[test]
    fn mountinfo_longest_prefix() {
        let mi = "22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n\
                  30 22 253:16 / /var/lib/prometheus rw shared:2 - xfs /dev/vdb rw,prjquota\n\
                  31 22 0:40 / /mnt/with\\040space rw - tmpfs tmpfs rw\n";
        assert_eq!(
            mount_source(mi, Path::new("/var/lib/prometheus/wal")),
            Some(PathBuf::from("/dev/vdb"))
        );
        assert_eq!(
            mount_source(mi, Path::new("/etc")),
            Some(PathBuf::from("/dev/vda1"))
        );
        assert_eq!(
            mount_source(mi, Path::new("/mnt/with space/x")),
            Some(PathBuf::from("tmpfs"))
        );
    }

    #[test]
    fn validation() {
        #[derive(Deserialize)]
        struct W {
            disk: Vec<DiskConfig>,
        }
        let w: W = toml::from_str(
            "[[disk]]\npath = \"rel\"\nquota = \"user\"\ninterval = \"0s\"\nthreshold = 1.5\n[[disk]]\npath = \"rel\"\nbudget = 0\n",
        )
        .unwrap();
        let d = validate(&w.disk, &KeyPath::root().key("disk"));
        let text = format!("{d:?}");
        for code in [
            "duplicate-name",
            "relative-path",
            "missing-id",
            "out-of-range",
        ] {
            assert!(text.contains(code), "{code}: {text}");
        }
    }
}
