//! Metrics every daemon exports besides its own: build info and config reloads.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    daemon: String,
    version: &'static str,
}

/// Build info and reload outcomes, registered under the `yagura_` prefix.
#[derive(Clone, Debug)]
pub struct RuntimeMetrics {
    reloads: Family<ResultLabel, Counter>,
    last_success: Gauge<f64, AtomicU64>,
}

impl RuntimeMetrics {
    /// Registers into `registry` for daemon `daemon` (`edge`, `gate`, `watch`).
    pub fn register(registry: &mut Registry, daemon: &str) -> Self {
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                daemon: daemon.to_string(),
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("yagura_build_info", "Version of the running daemon", build);
        let reloads = Family::<ResultLabel, Counter>::default();
        registry.register(
            "yagura_config_reloads",
            "Config reloads by result (ok, invalid)",
            reloads.clone(),
        );
        let last_success = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "yagura_config_last_reload_success_timestamp_seconds",
            "When the config in force was loaded",
            last_success.clone(),
        );
        let m = Self {
            reloads,
            last_success,
        };
        m.loaded();
        m
    }

    /// Records a good load or reload.
    pub fn loaded(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.last_success.set(now);
    }

    /// Records a reload's outcome.
    pub fn reload(&self, ok: bool) {
        self.reloads
            .get_or_create(&ResultLabel {
                result: if ok { "ok" } else { "invalid" },
            })
            .inc();
        if ok {
            self.loaded();
        }
    }
}
