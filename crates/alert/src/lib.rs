//! The alert model shared by every guard of `yagura watch`, and the sink they report to.
//!
//! A guard calls [`AlertSink::update`] with the *current* state of each condition it watches (firing or resolved),
//! as often as it likes: the sink keeps one alert per [`Alert::fingerprint`], so repeating a state is harmless,
//! and a resolved update for an alert that never fired is ignored.
//!
//! Delivery: [`Engine`] is the sink `yagura watch` uses. It groups alerts and decides when to notify with the
//! pure state machine in [`policy`], renders receiver payloads in [`payload`] (Slack, Discord, Alertmanager
//! webhook v4, Alertmanager v2 API), keeps every notification in a disk [`spool`] until a receiver answered 2xx,
//! and retries with exponential backoff and jitter. [`config`] is the `[alerts]` section; [`metrics`] its
//! Prometheus metrics.

pub mod config;
pub mod engine;
pub mod metrics;
pub mod payload;
pub mod policy;
pub mod spool;

pub use config::{AlertsConfig, NotifierConfig, NotifierKind};
pub use engine::{AlertError, Engine};
pub use metrics::AlertMetrics;
pub use policy::{AlertState, Dispatcher, Notification, Timing};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// How urgent an alert is; becomes the `severity` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Someone must act now (a monitoring path is dead, a disk fills within hours).
    Critical,
    /// Someone must act soon.
    Warning,
    /// For the record.
    Info,
}

impl Severity {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Warning => "warning",
            Self::Info => "info",
        }
    }
}

/// Whether the condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The condition holds.
    Firing,
    /// The condition no longer holds.
    Resolved,
}

/// One alert: a named condition on one subject, identified by its name and labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The `alertname`, CamelCase: `HeartbeatMissing`, `PrometheusNotIngesting`, `DiskFillsSoon`, `LinkDown`.
    pub name: String,
    /// Identifying labels (besides `alertname` and `severity`): `heartbeat`, `instance`, `path`, `device`, `ifName`…
    pub labels: BTreeMap<String, String>,
    /// Human text: `summary` (one line) and `description`; not part of the identity.
    pub annotations: BTreeMap<String, String>,
    /// Urgency.
    pub severity: Severity,
    /// Firing or resolved.
    pub status: Status,
    /// When the guard observed this state.
    pub at: SystemTime,
}

impl Alert {
    /// A firing alert with no labels or annotations yet.
    pub fn firing(name: impl Into<String>, severity: Severity) -> Self {
        Self {
            name: name.into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            severity,
            status: Status::Firing,
            at: SystemTime::now(),
        }
    }

    /// The same alert, resolved.
    pub fn resolved(mut self) -> Self {
        self.status = Status::Resolved;
        self.at = SystemTime::now();
        self
    }

    /// Adds a label.
    pub fn label(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }

    /// Adds an annotation.
    pub fn annotation(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.annotations.insert(k.into(), v.into());
        self
    }

    /// Sets the status.
    pub fn with_status(mut self, status: Status) -> Self {
        self.status = status;
        self
    }

    /// The identity of the alert: its name and labels, stable across runs.
    pub fn fingerprint(&self) -> String {
        let mut s = self.name.clone();
        for (k, v) in &self.labels {
            s.push('\u{1f}');
            s.push_str(k);
            s.push('=');
            s.push_str(v);
        }
        s
    }
}

/// Where guards report alert state. Implementations must not block for long: deliver elsewhere.
pub trait AlertSink: Send + Sync + std::fmt::Debug {
    /// Reports the current state of one alert.
    fn update(&self, alert: Alert);
}

/// The sink handle guards hold.
pub type SharedSink = Arc<dyn AlertSink>;

/// A sink that only logs state changes; what a daemon with no notifier configured uses.
#[derive(Debug, Default)]
pub struct LogSink {
    firing: Mutex<BTreeMap<String, Status>>,
}

impl AlertSink for LogSink {
    fn update(&self, alert: Alert) {
        let key = alert.fingerprint();
        let Ok(mut firing) = self.firing.lock() else {
            return;
        };
        let before = firing.get(&key).copied();
        if before == Some(alert.status) || (before.is_none() && alert.status == Status::Resolved) {
            return;
        }
        firing.insert(key, alert.status);
        match alert.status {
            Status::Firing => {
                tracing::warn!(alert = %alert.name, labels = ?alert.labels, severity = alert.severity.as_str(), summary = alert.annotations.get("summary").map(String::as_str).unwrap_or(""), "alert firing")
            }
            Status::Resolved => {
                tracing::info!(alert = %alert.name, labels = ?alert.labels, "alert resolved")
            }
        }
    }
}

/// A sink that records every update, for tests.
#[derive(Debug, Default)]
pub struct MemorySink {
    updates: Mutex<Vec<Alert>>,
}

impl MemorySink {
    /// Every update so far, in order.
    pub fn updates(&self) -> Vec<Alert> {
        self.updates.lock().map(|u| u.clone()).unwrap_or_default()
    }

    /// The latest status of each alert by fingerprint.
    pub fn current(&self) -> BTreeMap<String, Alert> {
        let mut m = BTreeMap::new();
        for a in self.updates() {
            m.insert(a.fingerprint(), a);
        }
        m
    }

    /// Whether an alert with this name and all these labels is currently firing.
    pub fn is_firing(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.current().values().any(|a| {
            a.name == name
                && a.status == Status::Firing
                && labels
                    .iter()
                    .all(|(k, v)| a.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

impl AlertSink for MemorySink {
    fn update(&self, alert: Alert) {
        if let Ok(mut u) = self.updates.lock() {
            u.push(alert);
        }
    }
}
