//! Starts and restarts the storage guards of the daemon — the Prometheus/Alertmanager probes and the disk
//! guard — as tasks under one cancellation token, so a reload replaces them all with the new config.

use super::disk::{self, DiskMetrics};
use super::prometheus::{self, ProbeMetrics};
use crate::config::WatchConfig;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use yagura_alert::{Alert, Severity, SharedSink};

/// The running probes and disk guards, and their metrics.
#[derive(Debug)]
pub struct StorageGuards {
    probe_metrics: Arc<ProbeMetrics>,
    disk_metrics: Arc<DiskMetrics>,
    stop: Option<CancellationToken>,
    /// The names the running guards report under: (prometheus, alertmanager, disk).
    names: (Vec<String>, Vec<String>, Vec<String>),
}

impl StorageGuards {
    /// Registers the metrics (before the registry is shared); starts nothing yet.
    pub fn register(registry: &mut Registry) -> Self {
        Self {
            probe_metrics: Arc::new(ProbeMetrics::register(registry)),
            disk_metrics: Arc::new(DiskMetrics::register(registry)),
            stop: None,
            names: Default::default(),
        }
    }

    /// Stops the running guards (if any) and starts one task per `[[prometheus]]`, `[[alertmanager]]` and
    /// `[[disk]]` entry of `config`, under a child of `parent` (so the daemon's shutdown stops them too).
    /// Alerts of entries the new config no longer has are resolved (nothing would ever resolve them).
    pub fn start(&mut self, config: &WatchConfig, sink: &SharedSink, parent: &CancellationToken) {
        self.stop();
        let names = (
            config.prometheus.iter().map(|c| c.name.clone()).collect(),
            config.alertmanager.iter().map(|c| c.name.clone()).collect(),
            config.disk.iter().map(|c| c.name()).collect(),
        );
        for a in retired(&self.names, &names) {
            sink.update(a);
        }
        self.names = names;
        self.probe_metrics.clear();
        self.disk_metrics.clear();
        let stop = parent.child_token();
        for c in &config.prometheus {
            tokio::spawn(prometheus::run_prometheus(
                c.clone(),
                self.probe_metrics.clone(),
                sink.clone(),
                stop.clone(),
            ));
        }
        for c in &config.alertmanager {
            tokio::spawn(prometheus::run_alertmanager(
                c.clone(),
                self.probe_metrics.clone(),
                sink.clone(),
                stop.clone(),
            ));
        }
        for c in &config.disk {
            tokio::spawn(disk::run(
                c.clone(),
                disk::Meter::new(c),
                self.disk_metrics.clone(),
                sink.clone(),
                stop.clone(),
            ));
        }
        let n = config.prometheus.len() + config.alertmanager.len() + config.disk.len();
        if n > 0 {
            tracing::info!(
                prometheus = config.prometheus.len(),
                alertmanager = config.alertmanager.len(),
                disk = config.disk.len(),
                "storage guards running"
            );
        }
        self.stop = Some(stop);
    }

    /// Stops the running guards.
    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            s.cancel();
        }
    }
}

/// Resolved updates for every alert the guards of names in `old` but not in `new` may have raised.
fn retired(
    old: &(Vec<String>, Vec<String>, Vec<String>),
    new: &(Vec<String>, Vec<String>, Vec<String>),
) -> Vec<Alert> {
    let gone = |o: &[String], n: &[String]| -> Vec<String> {
        o.iter().filter(|x| !n.contains(x)).cloned().collect()
    };
    let mut out = Vec::new();
    let resolved = |name: &str| Alert::firing(name, Severity::Critical).resolved();
    for p in gone(&old.0, &new.0) {
        for c in prometheus::Condition::ALL {
            out.push(resolved(c.alert_name()).label("instance", p.clone()));
        }
    }
    for a in gone(&old.1, &new.1) {
        out.push(resolved("AlertmanagerDown").label("instance", a));
    }
    for d in gone(&old.2, &new.2) {
        for source in [disk::Source::Fs, disk::Source::Quota, disk::Source::Budget] {
            for name in disk::ALERT_NAMES {
                out.push(
                    resolved(name)
                        .label("disk", d.clone())
                        .label("source", source.as_str()),
                );
            }
        }
    }
    out
}

impl Drop for StorageGuards {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use crate::config::WatchConfig;
    use std::time::Duration;

    const BASE: &str = "[storage]\npath = \"/tmp/w.db\"\nmax_size = \"64MiB\"\n";

    fn load(extra: &str) -> Result<WatchConfig, String> {
        yagura_daemon::config::parse::<WatchConfig>("w.toml", &format!("{BASE}{extra}"))
            .map(|l| l.config)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn removed_entries_are_resolved() {
        let n = |p: &[&str], a: &[&str], d: &[&str]| {
            let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            (v(p), v(a), v(d))
        };
        let r = super::retired(&n(&["a", "b"], &["am"], &["d"]), &n(&["b"], &[], &["d"]));
        assert_eq!(r.len(), 4 + 1);
        assert!(r.iter().all(|x| x.status == yagura_alert::Status::Resolved));
        assert!(r.iter().any(|x| x.name == "AlertmanagerDown"));
        let r = super::retired(&n(&[], &[], &["d"]), &n(&[], &[], &[]));
        assert_eq!(r.len(), 3 * super::disk::ALERT_NAMES.len());
    }

    #[test]
    fn sections_load_with_defaults() {
        let c = load(
            "[[prometheus]]\nname = \"prd\"\nurl = \"http://127.0.0.1:9090\"\n\
             [[alertmanager]]\nname = \"prd\"\nurl = \"http://127.0.0.1:9093\"\n\
             [[disk]]\npath = \"/var/lib/prometheus\"\nquota = \"project\"\nid = 7\n",
        )
        .unwrap();
        assert_eq!(c.prometheus[0].rate_window, Duration::from_secs(300));
        assert_eq!(c.prometheus[0].up_selector, "up{job=\"prometheus\"}");
        assert_eq!(c.alertmanager[0].interval, Duration::from_secs(30));
        assert_eq!(c.disk[0].horizon, Duration::from_secs(72 * 3600));
        assert!(load("").unwrap().disk.is_empty());
    }

    #[test]
    fn every_problem_with_its_position() {
        let e = load(
            "[[prometheus]]\nname = \"a\"\nurl = \"ftp://x\"\ninterval = \"0s\"\n\
             [[prometheus]]\nname = \"a\"\nurl = \"http://127.0.0.1:9090\"\nrate_windo = \"1m\"\n\
             [[disk]]\npath = \"/data\"\nthreshold = 2.0\nquota = \"user\"\n",
        )
        .unwrap_err();
        // Lines: 4 [[prometheus]], 5 name, 6 url, 7 interval, 8 [[prometheus]], 9 name, 11 typo, 13 path, 14 threshold, 15 quota.
        assert!(e.contains("w.toml:6:7: error[bad-url]"), "{e}");
        assert!(e.contains("w.toml:7:12: error[out-of-range]"), "{e}");
        assert!(e.contains("w.toml:9:8: error[duplicate-name]"), "{e}");
        assert!(
            e.contains("w.toml:11:1: error[unknown-key]") && e.contains("`rate_window`"),
            "{e}"
        );
        assert!(e.contains("w.toml:14:13: error[out-of-range]"), "{e}");
        assert!(e.contains("w.toml:15:9: error[missing-id]"), "{e}");
    }
}
