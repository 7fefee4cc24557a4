//! Heartbeats (a dead man's switch): `[[heartbeats]]` each expect a beat at least every `period` (+ `grace`),
//! received as a ping (`GET`/`POST /ping/NAME`) or as an Alertmanager webhook carrying the always-firing
//! Watchdog (`POST /alertmanager/NAME`). A missing beat raises `HeartbeatMissing{heartbeat=NAME}`; the next beat
//! resolves it. The overdue rule is the pure function [`overdue`]; the rest is a small task and two routes.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use yagura_alert::{Alert, Severity, SharedSink};
use yagura_config::{Diagnostic, KeyPath};

/// The alert a missing heartbeat raises.
pub const ALERT: &str = "HeartbeatMissing";

/// `[[heartbeats]]`: one expected heartbeat.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct HeartbeatConfig {
    /// Name: the `NAME` in `/ping/NAME` and `/alertmanager/NAME`, and the alert's `heartbeat` label.
    pub name: String,
    /// A beat is expected at least this often.
    #[serde(with = "yagura_config::duration")]
    pub period: Duration,
    /// Extra time allowed after a period before alerting (default: one period).
    #[serde(default, with = "yagura_config::duration")]
    pub grace: Option<Duration>,
    /// Severity of `HeartbeatMissing` (default critical).
    #[serde(default = "critical")]
    pub severity: Severity,
    /// On `/alertmanager/NAME`, the alertname that counts as a beat when firing (default `Watchdog`).
    #[serde(default = "watchdog")]
    pub alertname: String,
}

fn critical() -> Severity {
    Severity::Critical
}

fn watchdog() -> String {
    "Watchdog".to_string()
}

impl HeartbeatConfig {
    /// The grace in force.
    pub fn grace(&self) -> Duration {
        self.grace.unwrap_or(self.period)
    }
}

/// Checks `[[heartbeats]]` at `at`: names valid and unique, periods above 0.
pub fn validate(list: &[HeartbeatConfig], at: &KeyPath) -> Vec<Diagnostic> {
    let mut d = Vec::new();
    let mut seen: BTreeMap<&str, KeyPath> = BTreeMap::new();
    for (i, h) in list.iter().enumerate() {
        let here = at.index(i);
        if !yagura_alert::config::valid_name(&h.name) {
            d.push(
                Diagnostic::error(
                    "bad-name",
                    format!("heartbeat name `{}` must be 1–64 of [A-Za-z0-9_.-]", h.name),
                )
                .at(&here.key("name")),
            );
        } else if let Some(first) = seen.get(h.name.as_str()) {
            d.push(
                Diagnostic::error(
                    "duplicate-name",
                    format!("heartbeat `{}` is defined twice", h.name),
                )
                .at(&here.key("name"))
                .related(&first.key("name"), "first defined here"),
            );
        } else {
            seen.insert(&h.name, here.clone());
        }
        if h.period < Duration::from_millis(100) {
            d.push(
                Diagnostic::error("out-of-range", "`period` must be at least 100ms")
                    .at(&here.key("period")),
            );
        }
        if h.alertname.is_empty() {
            d.push(Diagnostic::error("empty", "`alertname` is empty").at(&here.key("alertname")));
        }
    }
    d
}

/// Whether a heartbeat is overdue at `now`: no beat since `last` (or since the daemon started watching it,
/// `since`) for longer than period + grace.
pub fn overdue(
    period: Duration,
    grace: Duration,
    last: Option<Instant>,
    since: Instant,
    now: Instant,
) -> bool {
    now.saturating_duration_since(last.unwrap_or(since)) > period + grace
}

/// `{heartbeat}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HeartbeatLabel {
    /// The configured name.
    pub heartbeat: String,
}

/// The heartbeat metrics (`yagura_watch_heartbeat_*`).
#[derive(Clone, Debug, Default)]
pub struct HeartbeatMetrics {
    /// Unix time of the last beat, per configured heartbeat.
    pub last_beat: Family<HeartbeatLabel, crate::metrics::FloatGauge>,
    /// Beats received, per configured heartbeat.
    pub beats: Family<HeartbeatLabel, Counter>,
    /// Requests for a heartbeat name that is not configured (answered 404).
    pub unknown: Counter,
    /// Alertmanager webhook bodies that were not valid JSON (answered 400).
    pub bad_requests: Counter,
    /// Whether each heartbeat is missing now (1) or not (0).
    pub missing: Family<HeartbeatLabel, Gauge>,
}

impl HeartbeatMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("yagura_watch_heartbeat");
        r.register(
            "last_beat_timestamp_seconds",
            "Unix time of the last beat of each configured heartbeat",
            m.last_beat.clone(),
        );
        r.register("beats", "Beats received", m.beats.clone());
        r.register(
            "unknown_requests",
            "Pings or webhooks for heartbeat names that are not configured",
            m.unknown.clone(),
        );
        r.register(
            "bad_requests",
            "Alertmanager webhook bodies that were not valid JSON",
            m.bad_requests.clone(),
        );
        r.register(
            "missing",
            "1 while a heartbeat is overdue",
            m.missing.clone(),
        );
        m
    }
}

#[derive(Debug)]
struct Beat {
    cfg: HeartbeatConfig,
    last: Option<Instant>,
    since: Instant,
    firing: bool,
}

#[derive(Debug)]
struct Inner {
    beats: Mutex<BTreeMap<String, Beat>>,
    sink: SharedSink,
    metrics: HeartbeatMetrics,
}

/// The configured heartbeats and their state; clone to share with the HTTP routes.
#[derive(Debug, Clone)]
pub struct Heartbeats {
    inner: Arc<Inner>,
}

/// How a beat arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `/ping/NAME`.
    Ping,
    /// An Alertmanager webhook with the firing Watchdog.
    Alertmanager,
}

impl Heartbeats {
    /// Heartbeats reporting to `sink`, initially `configs` (each given a full period + grace from now).
    pub fn new(configs: &[HeartbeatConfig], sink: SharedSink, metrics: HeartbeatMetrics) -> Self {
        let h = Self {
            inner: Arc::new(Inner {
                beats: Mutex::new(BTreeMap::new()),
                sink,
                metrics,
            }),
        };
        h.set(configs);
        h
    }

    /// Applies a new list (reload): kept names keep their last beat; removed ones resolve their alert.
    pub fn set(&self, configs: &[HeartbeatConfig]) {
        let now = Instant::now();
        let mut resolved = Vec::new();
        if let Ok(mut beats) = self.inner.beats.lock() {
            let mut next = BTreeMap::new();
            for c in configs {
                let b = match beats.remove(&c.name) {
                    Some(mut b) => {
                        b.cfg = c.clone();
                        b
                    }
                    None => Beat {
                        cfg: c.clone(),
                        last: None,
                        since: now,
                        firing: false,
                    },
                };
                next.insert(c.name.clone(), b);
            }
            for (name, b) in std::mem::take(&mut *beats) {
                let l = label(&name);
                self.inner.metrics.last_beat.remove(&l);
                self.inner.metrics.beats.remove(&l);
                self.inner.metrics.missing.remove(&l);
                if b.firing {
                    resolved.push(alert(&b.cfg).resolved());
                }
            }
            *beats = next;
        }
        for a in resolved {
            self.inner.sink.update(a);
        }
    }

    /// Records a beat; `false` if no heartbeat has this name.
    pub fn beat(&self, name: &str, via: Via) -> bool {
        let mut resolve = None;
        {
            let Ok(mut beats) = self.inner.beats.lock() else {
                return false;
            };
            let Some(b) = beats.get_mut(name) else {
                self.inner.metrics.unknown.inc();
                return false;
            };
            // The first beat after a start also resolves an alert restored from before the restart.
            let first = b.last.is_none();
            b.last = Some(Instant::now());
            let l = label(name);
            let unix = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            self.inner.metrics.last_beat.get_or_create(&l).set(unix);
            self.inner.metrics.beats.get_or_create(&l).inc();
            self.inner.metrics.missing.get_or_create(&l).set(0);
            if b.firing || first {
                b.firing = false;
                resolve = Some(alert(&b.cfg).resolved());
            }
        }
        if let Some(a) = resolve {
            tracing::info!(heartbeat = name, ?via, "heartbeat received");
            self.inner.sink.update(a);
        }
        true
    }

    /// Checks every heartbeat at `now`, raising the alert of those overdue.
    pub fn check(&self, now: Instant) {
        let mut fire = Vec::new();
        if let Ok(mut beats) = self.inner.beats.lock() {
            for b in beats.values_mut() {
                if !b.firing && overdue(b.cfg.period, b.cfg.grace(), b.last, b.since, now) {
                    b.firing = true;
                    self.inner
                        .metrics
                        .missing
                        .get_or_create(&label(&b.cfg.name))
                        .set(1);
                    fire.push(alert(&b.cfg));
                }
            }
        }
        for a in fire {
            self.inner.sink.update(a);
        }
    }

    /// How often [`Heartbeats::check`] should run: a tenth of the shortest period, 50 ms to 1 s.
    pub fn tick(&self) -> Duration {
        let min = self
            .inner
            .beats
            .lock()
            .ok()
            .and_then(|b| b.values().map(|b| b.cfg.period).min())
            .unwrap_or(Duration::from_secs(1));
        (min / 10).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }

    /// The alertname that counts as a beat for `name` on the Alertmanager endpoint.
    fn alertname(&self, name: &str) -> Option<String> {
        self.inner
            .beats
            .lock()
            .ok()
            .and_then(|b| b.get(name).map(|b| b.cfg.alertname.clone()))
    }

    /// Runs the checker until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            let tick = self.tick();
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(tick) => self.check(Instant::now()),
            }
        }
    }

    /// `GET|POST /ping/{name}` and `POST /alertmanager/{name}`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/ping/{name}", get(ping).post(ping))
            .route("/alertmanager/{name}", post(alertmanager))
            .with_state(self.clone())
    }
}

fn label(name: &str) -> HeartbeatLabel {
    HeartbeatLabel {
        heartbeat: name.to_string(),
    }
}

fn alert(c: &HeartbeatConfig) -> Alert {
    Alert::firing(ALERT, c.severity)
        .label("heartbeat", &c.name)
        .annotation(
            "summary",
            format!(
                "no heartbeat from {} for more than {} (period {}, grace {})",
                c.name,
                humantime::format_duration(c.period + c.grace()),
                humantime::format_duration(c.period),
                humantime::format_duration(c.grace())
            ),
        )
        .annotation(
            "description",
            "whatever sends this heartbeat (an Alertmanager's Watchdog route, a peer yagura watch, a cron job) \
             has stopped: the path it proves is broken",
        )
}

async fn ping(State(h): State<Heartbeats>, Path(name): Path<String>) -> (StatusCode, &'static str) {
    if h.beat(&name, Via::Ping) {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::NOT_FOUND, "unknown heartbeat\n")
    }
}

/// The part of Alertmanager's webhook payload that matters here.
#[derive(Debug, Deserialize)]
struct Webhook {
    #[serde(default)]
    alerts: Vec<WebhookAlert>,
}

#[derive(Debug, Deserialize)]
struct WebhookAlert {
    #[serde(default)]
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Whether an Alertmanager webhook body carries `alertname` firing.
pub fn carries_firing(body: &[u8], alertname: &str) -> Result<bool, serde_json::Error> {
    let w: Webhook = serde_json::from_slice(body)?;
    Ok(w.alerts.iter().any(|a| {
        a.status == "firing" && a.labels.get("alertname").map(String::as_str) == Some(alertname)
    }))
}

async fn alertmanager(
    State(h): State<Heartbeats>,
    Path(name): Path<String>,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let Some(alertname) = h.alertname(&name) else {
        h.inner.metrics.unknown.inc();
        return (StatusCode::NOT_FOUND, "unknown heartbeat\n");
    };
    match carries_firing(&body, &alertname) {
        Ok(true) => {
            h.beat(&name, Via::Alertmanager);
            (StatusCode::OK, "ok\n")
        }
        // Other alerts routed here are accepted (Alertmanager would retry otherwise) but are no beat.
        Ok(false) => (StatusCode::OK, "no firing heartbeat alert in the payload\n"),
        Err(_) => {
            h.inner.metrics.bad_requests.inc();
            (
                StatusCode::BAD_REQUEST,
                "not an Alertmanager webhook payload\n",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use yagura_alert::MemorySink;

    fn cfg(name: &str, period_ms: u64) -> HeartbeatConfig {
        HeartbeatConfig {
            name: name.into(),
            period: Duration::from_millis(period_ms),
            grace: Some(Duration::ZERO),
            severity: Severity::Critical,
            alertname: "Watchdog".into(),
        }
    }

    #[test]
    fn overdue_rule() {
        let t0 = Instant::now();
        let p = Duration::from_secs(10);
        let g = Duration::from_secs(5);
        assert!(!overdue(p, g, None, t0, t0 + Duration::from_secs(15)));
        assert!(overdue(p, g, None, t0, t0 + Duration::from_secs(16)));
        assert!(!overdue(
            p,
            g,
            Some(t0 + Duration::from_secs(10)),
            t0,
            t0 + Duration::from_secs(16)
        ));
    }

    #[tokio::test]
    async fn fire_resolve_reload_unknown() {
        let sink = Arc::new(MemorySink::default());
        let h = Heartbeats::new(
            &[cfg("prd", 100)],
            sink.clone(),
            HeartbeatMetrics::default(),
        );
        let t0 = Instant::now();
        h.check(t0);
        assert!(!sink.is_firing(ALERT, &[("heartbeat", "prd")]));
        h.check(t0 + Duration::from_millis(150));
        assert!(sink.is_firing(ALERT, &[("heartbeat", "prd")]));
        assert!(h.beat("prd", Via::Ping));
        assert!(!sink.is_firing(ALERT, &[("heartbeat", "prd")]));
        assert!(!h.beat("nope", Via::Ping));
        assert_eq!(h.inner.metrics.unknown.get(), 1);
        h.check(Instant::now() + Duration::from_secs(1));
        assert!(sink.is_firing(ALERT, &[("heartbeat", "prd")]));
        h.set(&[cfg("dev", 100)]);
        assert!(!sink.is_firing(ALERT, &[("heartbeat", "prd")]));
    }

    #[test]
    fn webhook_payload() {
        let body = br#"{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"Watchdog","severity":"none"}}]}"#;
        assert!(carries_firing(body, "Watchdog").unwrap());
        assert!(!carries_firing(body, "Other").unwrap());
        let resolved = br#"{"alerts":[{"status":"resolved","labels":{"alertname":"Watchdog"}}]}"#;
        assert!(!carries_firing(resolved, "Watchdog").unwrap());
        assert!(carries_firing(b"{", "Watchdog").is_err());
    }
}
