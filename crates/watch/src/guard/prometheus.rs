//! The ingestion probe (`[[prometheus]]`, `[[alertmanager]]`): asks each Prometheus whether it is still
//! *ingesting*, not merely alive, and each Alertmanager whether it is healthy.
//!
//! A Prometheus whose WAL writes fail (disk full, "disk quota exceeded") keeps answering queries and keeps
//! evaluating `vector(1)`; what changes is that no new samples land — including samples of its own metrics.
//! So `rate(prometheus_tsdb_head_samples_appended_total[W])` does not drop to 0, it turns *empty* once the last
//! ingested samples leave the window, and `prometheus_tsdb_wal_writes_failed_total` grows only in the process,
//! never in the TSDB. The probe therefore reads the process's own counters from its `/metrics` as well as the
//! query API, and treats an empty answer as "nothing ingested", not as "no data, no alert".
//!
//! Alerts: `PrometheusDown` (query API unreachable or failing), `PrometheusNotIngesting`,
//! `PrometheusWalWritesFailing`, `PrometheusStale` (its `up` series' newest sample older than `stale_after`),
//! `AlertmanagerDown` (`/-/healthy` not 200). [`ProbeLogic`] decides from observations without I/O.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;
use yagura_alert::{Alert, Severity, SharedSink, Status};
use yagura_config::{Diagnostic, KeyPath};

/// `[[prometheus]]`: one Prometheus server to probe.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PrometheusConfig {
    /// Name in alerts (`instance` label) and metrics.
    pub name: String,
    /// Base URL, e.g. `http://127.0.0.1:9090` (with the route prefix, if any).
    pub url: String,
    /// How often to probe (default 30s).
    #[serde(default = "thirty_seconds", with = "yagura_config::duration")]
    pub interval: Duration,
    /// Timeout of each HTTP request (default 10s).
    #[serde(default = "ten_seconds", with = "yagura_config::duration")]
    pub timeout: Duration,
    /// The window of the ingestion rate and of WAL failure growth (default 5m).
    #[serde(default = "five_minutes", with = "yagura_config::duration")]
    pub rate_window: Duration,
    /// `PrometheusStale` when the newest sample of `up_selector` is older than this (default 2m).
    #[serde(default = "two_minutes", with = "yagura_config::duration")]
    pub stale_after: Duration,
    /// The series proving it scrapes itself (default `up{job="prometheus"}`).
    #[serde(default = "default_up")]
    pub up_selector: String,
    /// Also read the server's own `/metrics` (the live counters, which do not depend on ingestion; default on).
    #[serde(default = "yes")]
    pub read_metrics: bool,
    /// Severity of this server's alerts (default critical).
    #[serde(default = "critical")]
    pub severity: Severity,
}

/// `[[alertmanager]]`: one Alertmanager to check.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AlertmanagerConfig {
    /// Name in alerts (`instance` label) and metrics.
    pub name: String,
    /// Base URL, e.g. `http://127.0.0.1:9093`.
    pub url: String,
    /// How often to check (default 30s).
    #[serde(default = "thirty_seconds", with = "yagura_config::duration")]
    pub interval: Duration,
    /// Timeout of the request (default 10s).
    #[serde(default = "ten_seconds", with = "yagura_config::duration")]
    pub timeout: Duration,
    /// Severity of `AlertmanagerDown` (default critical).
    #[serde(default = "critical")]
    pub severity: Severity,
}

fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}
fn ten_seconds() -> Duration {
    Duration::from_secs(10)
}
fn five_minutes() -> Duration {
    Duration::from_secs(300)
}
fn two_minutes() -> Duration {
    Duration::from_secs(120)
}
fn default_up() -> String {
    "up{job=\"prometheus\"}".to_string()
}
fn yes() -> bool {
    true
}
fn critical() -> Severity {
    Severity::Critical
}

fn check_url(url: &str, at: &KeyPath, d: &mut Vec<Diagnostic>) {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        Ok(_) => d.push(
            Diagnostic::error(
                "bad-url",
                format!("`{url}` is not an http(s) URL with a host"),
            )
            .at(at)
            .hint("like \"http://127.0.0.1:9090\""),
        ),
        Err(e) => d.push(
            Diagnostic::error("bad-url", format!("`{url}`: {e}"))
                .at(at)
                .hint("like \"http://127.0.0.1:9090\""),
        ),
    }
}

fn check_positive(v: Duration, key: &str, at: &KeyPath, d: &mut Vec<Diagnostic>) {
    if v.is_zero() {
        d.push(
            Diagnostic::error("out-of-range", format!("`{key}` must be above 0"))
                .at(&at.key(key))
                .hint("write durations with a unit: \"30s\", \"5m\""),
        );
    }
}

fn check_name(
    name: &str,
    here: &KeyPath,
    names: &mut Vec<(String, KeyPath)>,
    what: &str,
    d: &mut Vec<Diagnostic>,
) {
    if name.is_empty() {
        d.push(Diagnostic::error("empty", "`name` is empty").at(&here.key("name")));
    } else if let Some((_, first)) = names.iter().find(|(n, _)| n == name) {
        d.push(
            Diagnostic::error(
                "duplicate-name",
                format!("{what} `{name}` is configured twice"),
            )
            .at(&here.key("name"))
            .related(first, "first here"),
        );
    } else {
        names.push((name.to_string(), here.key("name")));
    }
}

/// Semantic checks of `[[prometheus]]` and `[[alertmanager]]`.
pub fn validate(
    proms: &[PrometheusConfig],
    ams: &[AlertmanagerConfig],
    root: &KeyPath,
) -> Vec<Diagnostic> {
    let mut d = Vec::new();
    let mut names = Vec::new();
    for (i, c) in proms.iter().enumerate() {
        let here = root.key("prometheus").index(i);
        check_name(&c.name, &here, &mut names, "prometheus", &mut d);
        check_url(&c.url, &here.key("url"), &mut d);
        for (k, v) in [
            ("interval", c.interval),
            ("timeout", c.timeout),
            ("stale_after", c.stale_after),
        ] {
            check_positive(v, k, &here, &mut d);
        }
        if c.rate_window < Duration::from_secs(1) {
            d.push(
                Diagnostic::error(
                    "out-of-range",
                    "`rate_window` must be at least 1s (and at least 2 scrape intervals)",
                )
                .at(&here.key("rate_window")),
            );
        }
        if c.up_selector.trim().is_empty() {
            d.push(
                Diagnostic::error("empty", "`up_selector` is empty").at(&here.key("up_selector")),
            );
        }
    }
    let mut names = Vec::new();
    for (i, c) in ams.iter().enumerate() {
        let here = root.key("alertmanager").index(i);
        check_name(&c.name, &here, &mut names, "alertmanager", &mut d);
        check_url(&c.url, &here.key("url"), &mut d);
        for (k, v) in [("interval", c.interval), ("timeout", c.timeout)] {
            check_positive(v, k, &here, &mut d);
        }
    }
    d
}

/// The answers of the query API in one probe.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ApiAnswers {
    /// `sum(rate(prometheus_tsdb_head_samples_appended_total[W]))`; `None` when the answer is empty.
    pub ingest_rate: Option<f64>,
    /// `sum(increase(prometheus_tsdb_wal_writes_failed_total[W]))`; `None` when empty.
    pub wal_failures: Option<f64>,
    /// `time() - max(timestamp(up_selector))`, seconds; `None` when empty (no sample within the lookback).
    pub up_age: Option<f64>,
}

/// The process's own counters, read from its `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Counters {
    /// `prometheus_tsdb_head_samples_appended_total`, summed over its label sets.
    pub samples_appended: f64,
    /// `prometheus_tsdb_wal_writes_failed_total`.
    pub wal_writes_failed: f64,
}

/// One probe's results.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// When (seconds, monotonic, any origin).
    pub t: f64,
    /// The query API's answers, or why it failed.
    pub api: Result<ApiAnswers, String>,
    /// The live counters, if `/metrics` could be read.
    pub counters: Option<Counters>,
}

/// A condition of one Prometheus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// The query API is unreachable or failing.
    Down,
    /// No samples ingested over the window.
    NotIngesting,
    /// WAL writes failed within the window.
    WalWritesFailing,
    /// Its own `up` series has no fresh sample.
    Stale,
}

impl Condition {
    /// Every condition.
    pub const ALL: [Condition; 4] = [
        Self::Down,
        Self::NotIngesting,
        Self::WalWritesFailing,
        Self::Stale,
    ];

    /// The alert name.
    pub fn alert_name(self) -> &'static str {
        match self {
            Self::Down => "PrometheusDown",
            Self::NotIngesting => "PrometheusNotIngesting",
            Self::WalWritesFailing => "PrometheusWalWritesFailing",
            Self::Stale => "PrometheusStale",
        }
    }

    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Down => "down",
            Self::NotIngesting => "not_ingesting",
            Self::WalWritesFailing => "wal_writes_failing",
            Self::Stale => "stale",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Down => 0,
            Self::NotIngesting => 1,
            Self::WalWritesFailing => 2,
            Self::Stale => 3,
        }
    }
}

/// The state of one condition after a probe.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Which condition.
    pub condition: Condition,
    /// Holds (`Some(true)`), cleared (`Some(false)`), or never determined yet (`None`). While the API is down
    /// the other conditions keep their last determined state: unknown is not cleared.
    pub firing: Option<bool>,
    /// Why, for the alert's description.
    pub reason: String,
}

/// Decides, probe after probe, which conditions of one Prometheus hold. Pure: no clock, no I/O.
#[derive(Debug, Clone)]
pub struct ProbeLogic {
    window: f64,
    stale_after: f64,
    history: VecDeque<(f64, Counters)>,
    state: [Option<bool>; 4],
    reason: [String; 4],
}

/// Most counter samples kept per Prometheus.
const MAX_HISTORY: usize = 4096;

/// Increase of a counter over consecutive samples, counting resets as restarts from 0.
fn increase(values: impl Iterator<Item = f64>) -> f64 {
    let mut total = 0.0;
    let mut prev: Option<f64> = None;
    for v in values {
        if let Some(p) = prev {
            total += if v >= p { v - p } else { v };
        }
        prev = Some(v);
    }
    total
}

fn fmt_secs(s: f64) -> String {
    humantime::format_duration(Duration::from_secs(s.max(0.0) as u64)).to_string()
}

impl ProbeLogic {
    /// The logic for a rate window and staleness limit.
    pub fn new(rate_window: Duration, stale_after: Duration) -> Self {
        Self {
            window: rate_window.as_secs_f64(),
            stale_after: stale_after.as_secs_f64(),
            history: VecDeque::new(),
            state: [None; 4],
            reason: Default::default(),
        }
    }

    fn set(&mut self, c: Condition, firing: bool, reason: String) {
        self.state[c.index()] = Some(firing);
        self.reason[c.index()] = reason;
    }

    /// Takes one probe's results and returns the state of every condition.
    pub fn step(&mut self, obs: &Observation) -> Vec<Verdict> {
        let now = obs.t;
        if let Some(c) = obs.counters {
            if self.history.back().is_some_and(|(t, _)| *t > now) {
                self.history.clear();
            }
            self.history.push_back((now, c));
            // Keep one sample at or before the window's start, so the window is fully covered.
            while self.history.len() > 2 && self.history[1].0 <= now - self.window {
                self.history.pop_front();
            }
            while self.history.len() > MAX_HISTORY {
                self.history.pop_front();
            }
        }
        let covered = match (self.history.front(), self.history.back()) {
            (Some(a), Some(b)) => b.0 - a.0,
            _ => 0.0,
        };
        let fresh = obs.counters.is_some();
        let appended = increase(self.history.iter().map(|(_, c)| c.samples_appended));
        let wal_failed = increase(self.history.iter().map(|(_, c)| c.wal_writes_failed));

        match &obs.api {
            Err(e) => {
                self.set(
                    Condition::Down,
                    true,
                    format!("the query API does not answer: {e}"),
                );
            }
            Ok(api) => {
                self.set(Condition::Down, false, "the query API answers".into());

                // Ingestion: the live counter is the ground truth; the query API decides when it is unknown.
                let direct = if !fresh {
                    None
                } else if appended > 0.0 {
                    Some(false)
                } else if covered >= self.window {
                    Some(true)
                } else {
                    None
                };
                let w = fmt_secs(self.window);
                match (direct, api.ingest_rate) {
                    (Some(true), _) => self.set(
                        Condition::NotIngesting,
                        true,
                        format!("prometheus_tsdb_head_samples_appended_total has not grown in {w} (read from its /metrics)"),
                    ),
                    (Some(false), _) => self.set(
                        Condition::NotIngesting,
                        false,
                        format!("{appended} samples appended in the last {}", fmt_secs(covered)),
                    ),
                    (None, Some(r)) if r > 0.0 => self.set(
                        Condition::NotIngesting,
                        false,
                        format!("ingesting {r:.1} samples/s"),
                    ),
                    (None, Some(_)) => self.set(
                        Condition::NotIngesting,
                        true,
                        format!("rate(prometheus_tsdb_head_samples_appended_total[{w}]) is 0"),
                    ),
                    (None, None) => self.set(
                        Condition::NotIngesting,
                        true,
                        format!("no sample of prometheus_tsdb_head_samples_appended_total in the last {w}: it ingests nothing (or does not scrape itself)"),
                    ),
                }

                let via_api = api.wal_failures.filter(|x| *x > 0.0);
                if wal_failed > 0.0 || via_api.is_some() {
                    let n = if wal_failed > 0.0 {
                        wal_failed
                    } else {
                        via_api.unwrap_or(0.0)
                    };
                    self.set(
                        Condition::WalWritesFailing,
                        true,
                        format!("{n} WAL writes failed in the last {w}: samples are being dropped (disk full or quota exceeded?)"),
                    );
                } else if fresh || api.wal_failures.is_some() {
                    self.set(
                        Condition::WalWritesFailing,
                        false,
                        format!("no WAL write failed in the last {w}"),
                    );
                }

                match api.up_age {
                    Some(age) if age > self.stale_after => self.set(
                        Condition::Stale,
                        true,
                        format!(
                            "its newest `up` sample is {} old (limit {})",
                            fmt_secs(age),
                            fmt_secs(self.stale_after)
                        ),
                    ),
                    Some(age) => self.set(
                        Condition::Stale,
                        false,
                        format!("its newest `up` sample is {age:.0}s old"),
                    ),
                    None => self.set(
                        Condition::Stale,
                        true,
                        "no recent `up` sample at all: it does not scrape itself, or ingests nothing".into(),
                    ),
                }
            }
        }
        Condition::ALL
            .iter()
            .map(|c| Verdict {
                condition: *c,
                firing: self.state[c.index()],
                reason: self.reason[c.index()].clone(),
            })
            .collect()
    }
}

/// Sums the samples of `name` (any labels) in Prometheus text exposition; `None` if there is none.
pub fn sum_metric(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with('#') || !line.starts_with(name) {
            continue;
        }
        let rest = &line[name.len()..];
        let value_part = if let Some(r) = rest.strip_prefix('{') {
            // Label values may contain `}` inside quotes; find the closing brace outside quotes.
            let mut in_q = false;
            let mut esc = false;
            let mut end = None;
            for (i, ch) in r.char_indices() {
                match ch {
                    _ if esc => esc = false,
                    '\\' if in_q => esc = true,
                    '"' => in_q = !in_q,
                    '}' if !in_q => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            match end {
                Some(e) => &r[e + 1..],
                None => continue,
            }
        } else if rest.starts_with(' ') || rest.starts_with('\t') {
            rest
        } else {
            continue; // a longer name with this prefix
        };
        if let Some(v) = value_part
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            if v.is_finite() {
                *found.get_or_insert(0.0) += v;
            }
        }
    }
    found
}

/// The value of an instant query's answer: the first sample of a vector, or a scalar; `None` when empty.
pub fn query_value(answer: &Value) -> Result<Option<f64>, String> {
    if answer.get("status").and_then(Value::as_str) != Some("success") {
        let e = answer
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("status is not success");
        return Err(e.to_string());
    }
    let data = answer.get("data").ok_or("no data in the answer")?;
    let result = data.get("result").ok_or("no result in the answer")?;
    let pair = match data.get("resultType").and_then(Value::as_str) {
        Some("vector") => match result.as_array().and_then(|a| a.first()) {
            None => return Ok(None),
            Some(s) => s.get("value").cloned().unwrap_or(Value::Null),
        },
        Some("scalar") => result.clone(),
        other => return Err(format!("unexpected result type {other:?}")),
    };
    let v = pair
        .get(1)
        .and_then(Value::as_str)
        .ok_or("malformed sample")?;
    match v.parse::<f64>() {
        Ok(x) if x.is_nan() => Ok(None),
        Ok(x) => Ok(Some(x)),
        Err(_) => Err(format!("`{v}` is not a number")),
    }
}

fn promql_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

/// The three queries of a probe.
pub fn queries(c: &PrometheusConfig) -> [String; 3] {
    let w = promql_duration(c.rate_window);
    [
        format!("sum(rate(prometheus_tsdb_head_samples_appended_total[{w}]))"),
        format!("sum(increase(prometheus_tsdb_wal_writes_failed_total[{w}]))"),
        format!("time() - max(timestamp({}))", c.up_selector),
    ]
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(timeout).build()
}

fn base(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// Runs one instant query; `Ok(None)` for an empty answer.
pub fn instant_query(agent: &ureq::Agent, url: &str, q: &str) -> Result<Option<f64>, String> {
    let r = agent
        .get(&format!("{}/api/v1/query", base(url)))
        .query("query", q)
        .call();
    let answer: Value = match r {
        Ok(r) => r.into_json().map_err(|e| format!("{url}: {e}"))?,
        Err(ureq::Error::Status(code, r)) => {
            let msg = r
                .into_json::<Value>()
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_default();
            return Err(format!("{url}: HTTP {code} {msg}"));
        }
        Err(e) => return Err(format!("{url}: {e}")),
    };
    query_value(&answer).map_err(|e| format!("{url}: query `{q}`: {e}"))
}

/// Probes one Prometheus once (blocking: run it off the async threads).
pub fn probe_once(c: &PrometheusConfig, t: f64) -> Observation {
    let agent = agent(c.timeout);
    let [q_rate, q_wal, q_up] = queries(c);
    let api = (|| {
        Ok(ApiAnswers {
            ingest_rate: instant_query(&agent, &c.url, &q_rate)?,
            wal_failures: instant_query(&agent, &c.url, &q_wal)?,
            up_age: instant_query(&agent, &c.url, &q_up)?,
        })
    })();
    let counters = if c.read_metrics {
        agent
            .get(&format!("{}/metrics", base(&c.url)))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .and_then(|text| {
                Some(Counters {
                    samples_appended: sum_metric(
                        &text,
                        "prometheus_tsdb_head_samples_appended_total",
                    )?,
                    wal_writes_failed: sum_metric(&text, "prometheus_tsdb_wal_writes_failed_total")
                        .unwrap_or(0.0),
                })
            })
    } else {
        None
    };
    Observation { t, api, counters }
}

/// Checks one Alertmanager once: `Ok` when `/-/healthy` answers 200.
pub fn alertmanager_once(c: &AlertmanagerConfig) -> Result<(), String> {
    match agent(c.timeout)
        .get(&format!("{}/-/healthy", base(&c.url)))
        .call()
    {
        Ok(r) if r.status() == 200 => Ok(()),
        Ok(r) => Err(format!("{}: HTTP {}", c.url, r.status())),
        Err(ureq::Error::Status(code, _)) => Err(format!("{}: HTTP {code}", c.url)),
        Err(e) => Err(format!("{}: {e}", c.url)),
    }
}

/// `{target, kind}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    /// The configured name.
    pub target: String,
    /// `prometheus` or `alertmanager`.
    pub kind: &'static str,
}

/// `{target, condition}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConditionLabels {
    /// The configured name.
    pub target: String,
    /// `down`, `not_ingesting`, `wal_writes_failing`, `stale`.
    pub condition: &'static str,
}

use crate::metrics::FloatGauge as FGauge;

/// The probe's metrics (series per configured target only).
#[derive(Debug, Default)]
pub struct ProbeMetrics {
    duration: Family<ProbeLabels, FGauge>,
    last_success: Family<ProbeLabels, FGauge>,
    condition: Family<ConditionLabels, Gauge>,
}

impl ProbeMetrics {
    /// Registers `yagura_watch_probe_*`.
    pub fn register(r: &mut Registry) -> Self {
        let m = Self::default();
        r.register(
            "yagura_watch_probe_duration_seconds",
            "How long the latest probe of a Prometheus or Alertmanager took",
            m.duration.clone(),
        );
        r.register(
            "yagura_watch_probe_last_success_timestamp_seconds",
            "Unix time of the latest probe whose target answered",
            m.last_success.clone(),
        );
        r.register(
            "yagura_watch_probe_condition",
            "1 while a probed condition holds (down, not_ingesting, wal_writes_failing, stale)",
            m.condition.clone(),
        );
        m
    }

    /// Forgets every series (before the probes restart with a new config).
    pub fn clear(&self) {
        self.duration.clear();
        self.last_success.clear();
        self.condition.clear();
    }

    fn probed(&self, target: &str, kind: &'static str, took: Duration, ok: bool) {
        let l = ProbeLabels {
            target: target.to_string(),
            kind,
        };
        self.duration.get_or_create(&l).set(took.as_secs_f64());
        if ok {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            self.last_success.get_or_create(&l).set(now);
        }
    }

    fn condition(&self, target: &str, condition: &'static str, firing: bool) {
        self.condition
            .get_or_create(&ConditionLabels {
                target: target.to_string(),
                condition,
            })
            .set(i64::from(firing));
    }
}

fn status(firing: bool) -> Status {
    if firing {
        Status::Firing
    } else {
        Status::Resolved
    }
}

/// The alerts of one probe's verdicts.
pub fn alerts(c: &PrometheusConfig, verdicts: &[Verdict]) -> Vec<Alert> {
    verdicts
        .iter()
        .filter_map(|v| {
            let firing = v.firing?;
            Some(
                Alert::firing(v.condition.alert_name(), c.severity)
                    .label("instance", c.name.clone())
                    .annotation("url", c.url.clone())
                    .annotation("summary", format!("Prometheus {}: {}", c.name, v.reason))
                    .with_status(status(firing)),
            )
        })
        .collect()
}

/// Probes one Prometheus every `interval` until `stop`.
pub async fn run_prometheus(
    c: PrometheusConfig,
    metrics: Arc<ProbeMetrics>,
    sink: SharedSink,
    stop: CancellationToken,
) {
    let mut logic = ProbeLogic::new(c.rate_window, c.stale_after);
    let start = Instant::now();
    let mut tick = tokio::time::interval(c.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let began = Instant::now();
        let t = start.elapsed().as_secs_f64();
        let cc = c.clone();
        let Ok(obs) = tokio::task::spawn_blocking(move || probe_once(&cc, t)).await else {
            break;
        };
        metrics.probed(&c.name, "prometheus", began.elapsed(), obs.api.is_ok());
        let verdicts = logic.step(&obs);
        for v in &verdicts {
            if let Some(f) = v.firing {
                metrics.condition(&c.name, v.condition.label(), f);
            }
        }
        for a in alerts(&c, &verdicts) {
            sink.update(a);
        }
    }
}

/// Checks one Alertmanager every `interval` until `stop`.
pub async fn run_alertmanager(
    c: AlertmanagerConfig,
    metrics: Arc<ProbeMetrics>,
    sink: SharedSink,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(c.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let began = Instant::now();
        let cc = c.clone();
        let Ok(r) = tokio::task::spawn_blocking(move || alertmanager_once(&cc)).await else {
            break;
        };
        metrics.probed(&c.name, "alertmanager", began.elapsed(), r.is_ok());
        metrics.condition(&c.name, "down", r.is_err());
        let summary = match &r {
            Ok(()) => format!("Alertmanager {} is healthy", c.name),
            Err(e) => format!("Alertmanager {} is not healthy: {e}", c.name),
        };
        sink.update(
            Alert::firing("AlertmanagerDown", c.severity)
                .label("instance", c.name.clone())
                .annotation("url", c.url.clone())
                .annotation("summary", summary)
                .with_status(status(r.is_err())),
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn logic() -> ProbeLogic {
        ProbeLogic::new(Duration::from_secs(60), Duration::from_secs(120))
    }

    fn ok(rate: Option<f64>, wal: Option<f64>, up: Option<f64>) -> Result<ApiAnswers, String> {
        Ok(ApiAnswers {
            ingest_rate: rate,
            wal_failures: wal,
            up_age: up,
        })
    }

    fn state(v: &[Verdict], c: Condition) -> Option<bool> {
        v.iter().find(|x| x.condition == c).unwrap().firing
    }

    fn counters(a: f64, f: f64) -> Option<Counters> {
        Some(Counters {
            samples_appended: a,
            wal_writes_failed: f,
        })
    }

    #[test]
    fn healthy_server_fires_nothing() {
        let mut l = logic();
        let v = l.step(&Observation {
            t: 0.0,
            api: ok(Some(1000.0), Some(0.0), Some(3.0)),
            counters: counters(1e6, 0.0),
        });
        for c in Condition::ALL {
            assert_eq!(state(&v, c), Some(false), "{c:?}");
        }
    }

    /// The incident: the WAL cannot be written. The API answers; the self-scraped series age out, so the rate
    /// query turns empty (not 0); the live counters show failures and no appends.
    #[test]
    fn wal_failure_night() {
        let mut l = logic();
        let mut t = 0.0;
        let mut appended = 1e6;
        for _ in 0..10 {
            appended += 15_000.0;
            l.step(&Observation {
                t,
                api: ok(Some(1000.0), Some(0.0), Some(3.0)),
                counters: counters(appended, 0.0),
            });
            t += 15.0;
        }
        // The disk is full from here on.
        let mut failed = 0.0;
        let mut fired_wal_at = None;
        let mut fired_ingest_at = None;
        for i in 0..10 {
            failed += 15.0;
            let rate = if i < 4 { Some(800.0) } else { None };
            let v = l.step(&Observation {
                t,
                api: ok(rate, None, if i < 8 { Some(15.0 * i as f64) } else { None }),
                counters: counters(appended, failed),
            });
            if state(&v, Condition::WalWritesFailing) == Some(true) && fired_wal_at.is_none() {
                fired_wal_at = Some(i);
            }
            if state(&v, Condition::NotIngesting) == Some(true) && fired_ingest_at.is_none() {
                fired_ingest_at = Some(i);
            }
            assert_eq!(state(&v, Condition::Down), Some(false));
            t += 15.0;
        }
        assert_eq!(
            fired_wal_at,
            Some(0),
            "WAL failures are seen at the first probe"
        );
        // Fires once the counter has not moved for a full window (60 s: the last growth was the probe before
        // the failure) — while the rate query still returned samples from before the failure.
        assert_eq!(fired_ingest_at, Some(3));
        // Space freed: appends resume, failures stop.
        let mut resolved_at = None;
        for i in 0..10 {
            appended += 15_000.0;
            let v = l.step(&Observation {
                t,
                api: ok(Some(1000.0), Some(0.0), Some(2.0)),
                counters: counters(appended, failed),
            });
            assert_eq!(state(&v, Condition::NotIngesting), Some(false));
            assert_eq!(state(&v, Condition::Stale), Some(false));
            if state(&v, Condition::WalWritesFailing) == Some(false) && resolved_at.is_none() {
                resolved_at = Some(i);
            }
            t += 15.0;
        }
        // Resolved once the last failure left the window.
        assert_eq!(resolved_at, Some(3));
    }

    #[test]
    fn without_metrics_the_api_decides_and_empty_means_not_ingesting() {
        let mut l = logic();
        let v = l.step(&Observation {
            t: 0.0,
            api: ok(None, None, None),
            counters: None,
        });
        assert_eq!(state(&v, Condition::NotIngesting), Some(true));
        assert_eq!(state(&v, Condition::Stale), Some(true));
        // An empty WAL answer says nothing: unknown, not cleared.
        assert_eq!(state(&v, Condition::WalWritesFailing), None);
        let v = l.step(&Observation {
            t: 10.0,
            api: ok(Some(0.0), Some(3.0), Some(500.0)),
            counters: None,
        });
        assert_eq!(state(&v, Condition::NotIngesting), Some(true));
        assert_eq!(state(&v, Condition::WalWritesFailing), Some(true));
        assert_eq!(state(&v, Condition::Stale), Some(true));
        let v = l.step(&Observation {
            t: 20.0,
            api: ok(Some(5.0), Some(0.0), Some(1.0)),
            counters: None,
        });
        for c in Condition::ALL {
            assert_eq!(state(&v, c), Some(false), "{c:?}");
        }
    }

    #[test]
    fn down_keeps_the_other_states() {
        let mut l = logic();
        l.step(&Observation {
            t: 0.0,
            api: ok(None, Some(2.0), None),
            counters: None,
        });
        let v = l.step(&Observation {
            t: 10.0,
            api: Err("connection refused".into()),
            counters: None,
        });
        assert_eq!(state(&v, Condition::Down), Some(true));
        assert_eq!(state(&v, Condition::NotIngesting), Some(true));
        assert_eq!(state(&v, Condition::WalWritesFailing), Some(true));
        let alerts = alerts(
            &PrometheusConfig {
                name: "prd".into(),
                url: "http://127.0.0.1:9090".into(),
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
                rate_window: Duration::from_secs(60),
                stale_after: Duration::from_secs(60),
                up_selector: default_up(),
                read_metrics: true,
                severity: Severity::Critical,
            },
            &v,
        );
        assert_eq!(alerts.len(), 4);
        assert!(alerts.iter().all(|a| a.labels["instance"] == "prd"));
        assert!(alerts[0].annotations["summary"].contains("connection refused"));
    }

    #[test]
    fn counter_reset_is_a_restart_not_a_stall() {
        let mut l = logic();
        l.step(&Observation {
            t: 0.0,
            api: ok(None, None, None),
            counters: counters(1e6, 5.0),
        });
        let v = l.step(&Observation {
            t: 70.0,
            api: ok(None, None, None),
            counters: counters(100.0, 0.0),
        });
        assert_eq!(state(&v, Condition::NotIngesting), Some(false));
        assert_eq!(state(&v, Condition::WalWritesFailing), Some(false));
    }

    #[test]
    fn parses_exposition() {
        let text = "# HELP prometheus_tsdb_head_samples_appended_total Total.\n\
            # TYPE prometheus_tsdb_head_samples_appended_total counter\n\
            prometheus_tsdb_head_samples_appended_total{type=\"float\"} 12345\n\
            prometheus_tsdb_head_samples_appended_total{type=\"histogram\"} 5\n\
            prometheus_tsdb_head_samples_appended_total_extra 99\n\
            prometheus_tsdb_wal_writes_failed_total 3 1700000000000\n\
            odd{a=\"}\\\"\"} 1\n";
        assert_eq!(
            sum_metric(text, "prometheus_tsdb_head_samples_appended_total"),
            Some(12350.0)
        );
        assert_eq!(
            sum_metric(text, "prometheus_tsdb_wal_writes_failed_total"),
            Some(3.0)
        );
        assert_eq!(sum_metric(text, "odd"), Some(1.0));
        assert_eq!(sum_metric(text, "missing"), None);
    }

    #[test]
    fn parses_query_answers() {
        let v: Value = serde_json::from_str(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.1,"42.5"]}]}}"#,
        )
        .unwrap();
        assert_eq!(query_value(&v), Ok(Some(42.5)));
        let v: Value = serde_json::from_str(
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
        )
        .unwrap();
        assert_eq!(query_value(&v), Ok(None));
        let v: Value = serde_json::from_str(
            r#"{"status":"success","data":{"resultType":"scalar","result":[1,"7"]}}"#,
        )
        .unwrap();
        assert_eq!(query_value(&v), Ok(Some(7.0)));
        let v: Value = serde_json::from_str(
            r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
        )
        .unwrap();
        assert_eq!(query_value(&v), Err("parse error".into()));
    }

    #[test]
    fn validation() {
        let c = PrometheusConfig {
            name: "a".into(),
            url: "ftp://x".into(),
            interval: Duration::ZERO,
            timeout: Duration::from_secs(1),
            rate_window: Duration::from_secs(60),
            stale_after: Duration::from_secs(60),
            up_selector: default_up(),
            read_metrics: true,
            severity: Severity::Critical,
        };
        let am = AlertmanagerConfig {
            name: "a".into(),
            url: "not a url".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            severity: Severity::Critical,
        };
        let d = validate(&[c.clone(), c], &[am], &KeyPath::root());
        let text = format!("{d:?}");
        assert!(text.contains("duplicate-name"), "{text}");
        assert_eq!(text.matches("bad-url").count(), 3, "{text}");
        assert!(text.contains("out-of-range"), "{text}");
    }

    #[tokio::test]
    async fn unreachable_server_is_down() {
        // A port nothing listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = PrometheusConfig {
            name: "gone".into(),
            url: format!("http://127.0.0.1:{port}"),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            rate_window: Duration::from_secs(60),
            stale_after: Duration::from_secs(60),
            up_selector: default_up(),
            read_metrics: true,
            severity: Severity::Critical,
        };
        let obs = tokio::task::spawn_blocking(move || probe_once(&c, 0.0))
            .await
            .unwrap();
        assert!(obs.api.is_err());
        assert!(obs.counters.is_none());
    }
}
