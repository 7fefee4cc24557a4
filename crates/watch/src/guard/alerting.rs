//! Alert delivery, heartbeats and peers wired into the daemon: starts the [`yagura_alert::Engine`] (the sink
//! every guard reports to), the heartbeat checker and the peer pingers; serves `/ping/NAME`,
//! `/alertmanager/NAME` and `GET /api/v1/alerts` (what fires now); applies reloads; flushes on shutdown.

use crate::guard::heartbeat::{HeartbeatMetrics, Heartbeats};
use crate::guard::peers::{PeerMetrics, Peers};
use crate::WatchConfig;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use yagura_alert::{AlertError, AlertMetrics, AlertsConfig, Engine, SharedSink};

/// The metrics of delivery, heartbeats and peers; register before the registry is shared.
#[derive(Debug, Clone)]
pub struct AlertingMetrics {
    alert: AlertMetrics,
    heartbeat: HeartbeatMetrics,
    peers: PeerMetrics,
}

impl AlertingMetrics {
    /// Creates and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        Self {
            alert: AlertMetrics::register(registry),
            heartbeat: HeartbeatMetrics::register(registry),
            peers: PeerMetrics::register(registry),
        }
    }
}

/// The spool directory in force: `alerts.spool`, or `alert-spool` beside the store.
pub fn spool_dir(c: &WatchConfig) -> PathBuf {
    match &c.alerts.spool {
        Some(p) => p.clone(),
        None => c
            .storage
            .path
            .parent()
            .map(|p| p.join("alert-spool"))
            .unwrap_or_else(|| PathBuf::from("alert-spool")),
    }
}

/// The running alerting side of the daemon.
#[derive(Debug)]
pub struct Alerting {
    engine: Arc<Engine>,
    heartbeats: Heartbeats,
    peers: Peers,
    stop: CancellationToken,
    applied: (AlertsConfig, PathBuf),
}

impl Alerting {
    /// Starts the engine, the heartbeat checker and the peer pingers. Fails if a notifier's or peer's URL
    /// variable is unset, or the spool cannot be created.
    pub fn start(c: &WatchConfig, m: AlertingMetrics) -> Result<Self, AlertError> {
        let spool = spool_dir(c);
        let engine = Engine::start(&c.alerts, &spool, m.alert)?;
        let sink: SharedSink = engine.clone();
        let stop = CancellationToken::new();
        let heartbeats = Heartbeats::new(&c.heartbeats, sink, m.heartbeat);
        tokio::spawn(heartbeats.clone().run(stop.clone()));
        let peers = match Peers::start(&c.peers, m.peers, &stop) {
            Ok(p) => p,
            Err(e) => {
                stop.cancel();
                return Err(AlertError::Url(e));
            }
        };
        Ok(Self {
            engine,
            heartbeats,
            peers,
            stop,
            applied: (c.alerts.clone(), spool),
        })
    }

    /// The sink guards report to.
    pub fn sink(&self) -> SharedSink {
        self.engine.clone()
    }

    /// The engine (current alerts, metrics).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The heartbeats.
    pub fn heartbeats(&self) -> &Heartbeats {
        &self.heartbeats
    }

    /// `/ping/{name}`, `/alertmanager/{name}` and `GET /api/v1/alerts`.
    pub fn router(&self) -> Router {
        self.heartbeats.router().merge(
            Router::new()
                .route("/api/v1/alerts", get(alerts))
                .with_state(self.engine.clone()),
        )
    }

    /// Applies a reloaded config: heartbeats and peers at once, notifiers and timing through the engine. An
    /// error (an unset URL variable) leaves the failing part as it was.
    pub async fn reload(&mut self, c: &WatchConfig) -> Result<(), AlertError> {
        self.heartbeats.set(&c.heartbeats);
        let peers = self
            .peers
            .reload(&c.peers, &self.stop)
            .map_err(AlertError::Url);
        let spool = spool_dir(c);
        if (c.alerts.clone(), spool.clone()) != self.applied {
            self.engine.reload(&c.alerts, &spool).await?;
            self.applied = (c.alerts.clone(), spool);
        }
        peers
    }

    /// Stops heartbeats and pingers, then flushes pending notifications to the spool and stops delivery.
    pub async fn shutdown(&self) {
        self.peers.stop();
        self.stop.cancel();
        self.engine.shutdown().await;
    }
}

impl Drop for Alerting {
    /// A daemon that failed half-way through its start stops the heartbeat checker and pingers too.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn alerts(State(e): State<Arc<Engine>>) -> Json<Value> {
    let v: Vec<Value> = e
        .firing()
        .into_iter()
        .map(|a| {
            json!({
                "labels": a.all_labels(),
                "annotations": a.annotations,
                "startsAt": yagura_alert::payload::rfc3339(a.starts_at),
                "fingerprint": yagura_alert::payload::short_fingerprint(&a.fingerprint),
            })
        })
        .collect();
    Json(json!({ "alerts": v }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use crate::WatchConfig;

    fn load(text: &str) -> Result<WatchConfig, String> {
        let base = "[storage]\npath = \"/tmp/w.db\"\nmax_size = \"64MiB\"\n";
        yagura_daemon::config::parse::<WatchConfig>("w.toml", &format!("{base}{text}"))
            .map(|l| l.config)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn sections_load_with_defaults() {
        let c = load(
            "[alerts]\ngroup_wait = \"10s\"\nlabels = { source = \"wsp\" }\n\
             [[alerts.notifiers]]\nname = \"ops\"\nkind = \"slack\"\nurl_env = \"SLACK_URL\"\n\
             [[heartbeats]]\nname = \"prd\"\nperiod = \"1m\"\n\
             [[peers]]\nname = \"prd\"\nurl = \"http://prd-watch:9480\"\nheartbeat = \"wsp\"\nperiod = \"20s\"\n",
        )
        .unwrap();
        assert_eq!(c.alerts.group_wait.as_secs(), 10);
        assert_eq!(c.alerts.repeat_interval.as_secs(), 4 * 3600);
        assert_eq!(c.heartbeats[0].grace().as_secs(), 60);
        assert_eq!(c.heartbeats[0].alertname, "Watchdog");
        assert_eq!(
            super::spool_dir(&c),
            std::path::PathBuf::from("/tmp/alert-spool")
        );
    }

    #[test]
    fn every_problem_at_its_place() {
        let e = load(
            "[alerts]\ngroup_wiat = \"1s\"\n\
             [[alerts.notifiers]]\nname = \"ops\"\nkind = \"teams\"\nurl_env = \"X\"\n\
             [[alerts.notifiers]]\nname = \"ops\"\nkind = \"webhook\"\n\
             [[alerts.notifiers]]\nname = \"s\"\nkind = \"discord\"\nurl_env = \"https://discord.com/api/webhooks/1/secret\"\n\
             [[heartbeats]]\nname = \"prd\"\nperiod = \"1m\"\n\
             [[heartbeats]]\nname = \"prd\"\nperiod = \"0s\"\n\
             [[peers]]\nname = \"dev\"\nheartbeat = \"wsp\"\nperiod = \"20s\"\n",
        )
        .unwrap_err();
        // Line numbers count the three-line [storage] prefix.
        assert!(e.contains("w.toml:5:1: error[unknown-key]"), "{e}");
        assert!(e.contains("did you mean `group_wait`"), "{e}");
        assert!(e.contains("w.toml:8:8: error[unknown-kind]"), "{e}");
        assert!(e.contains("w.toml:11:8: error[duplicate-name]"), "{e}");
        assert!(e.contains("error[missing-url]"), "{e}");
        assert!(e.contains("w.toml:16:11: error[bad-env-name]"), "{e}");
        assert!(
            !e.contains("discord.com"),
            "the pasted secret is echoed: {e}"
        );
        assert!(e.contains("w.toml:21:8: error[duplicate-name]"), "{e}");
        assert!(e.contains("w.toml:22:10: error[out-of-range]"), "{e}");
        assert!(e.contains("error[missing-url]: peer `dev`"), "{e}");
        assert!(e.contains("warning[unwatched-peer]"), "{e}");
    }
}
