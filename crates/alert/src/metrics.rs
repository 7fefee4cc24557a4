//! The alert engine's Prometheus metrics (`yagura_alert_*`), labelled by notifier name only (bounded by the
//! config).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// `{notifier}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotifierLabel {
    /// The notifier's configured name.
    pub notifier: String,
}

impl NotifierLabel {
    /// The label set of `name`.
    pub fn of(name: &str) -> Self {
        Self {
            notifier: name.to_string(),
        }
    }
}

/// Every metric of the engine; cheap to clone (handles).
#[derive(Clone, Debug, Default)]
pub struct AlertMetrics {
    /// Notifications delivered (2xx).
    pub sent: Family<NotifierLabel, Counter>,
    /// Delivery attempts that failed (each is retried).
    pub failed: Family<NotifierLabel, Counter>,
    /// Notifications waiting in the spool.
    pub spool_depth: Family<NotifierLabel, Gauge>,
    /// Alerts firing now.
    pub firing: Gauge,
    /// Updates refused because the engine's queue was full (a guard far too chatty).
    pub dropped: Counter,
    /// Spool files that could not be written or removed.
    pub spool_errors: Counter,
}

impl AlertMetrics {
    /// Creates the metrics and registers them under `yagura_alert_`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("yagura_alert");
        r.register(
            "notifications_sent",
            "Notifications delivered to a receiver (2xx)",
            m.sent.clone(),
        );
        r.register(
            "notifications_failed",
            "Delivery attempts that failed and will be retried",
            m.failed.clone(),
        );
        r.register(
            "spool_depth",
            "Notifications waiting in the spool for a receiver",
            m.spool_depth.clone(),
        );
        r.register("alerts_firing", "Alerts firing now", m.firing.clone());
        r.register(
            "updates_dropped",
            "Alert updates refused because the engine queue was full",
            m.dropped.clone(),
        );
        r.register(
            "spool_errors",
            "Spool files that could not be written or removed",
            m.spool_errors.clone(),
        );
        m
    }
}
