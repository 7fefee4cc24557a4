//! Watching the watchers: `[[peers]]` are other `yagura watch` daemons this one pings every `period` at
//! `PEER/ping/<heartbeat>`, where `heartbeat` is the name this daemon has in the peer's `[[heartbeats]]`. Each
//! side also lists the other under its own `[[heartbeats]]`, so either one going silent alerts on the other.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use yagura_config::{Diagnostic, EnvName, KeyPath};

/// `[[peers]]`: another watch daemon to ping.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's name (logs and the `peer` metric label).
    pub name: String,
    /// The peer's HTTP base URL (`http://prd-watch:9480`).
    #[serde(default)]
    pub url: Option<String>,
    /// Or the environment variable holding it (when it carries a token).
    #[serde(default)]
    pub url_env: Option<EnvName>,
    /// The name of this daemon's heartbeat in the peer's `[[heartbeats]]`.
    pub heartbeat: String,
    /// How often to ping (keep it below the peer's heartbeat period).
    #[serde(with = "yagura_config::duration")]
    pub period: Duration,
}

impl PeerConfig {
    fn resolve_url(&self) -> Result<String, String> {
        match (&self.url, &self.url_env) {
            (Some(u), _) => Ok(u.clone()),
            (None, Some(e)) => e.read().map_err(|_| {
                format!(
                    "peer `{}`: environment variable {} is not set",
                    self.name,
                    e.as_str()
                )
            }),
            (None, None) => Err(format!("peer `{}` has no url", self.name)),
        }
    }
}

/// Checks `[[peers]]` at `at`; `heartbeats` are this daemon's own heartbeat names (a peer nobody expects beats
/// from gets a warning: it would watch us but we would not watch it).
pub fn validate(list: &[PeerConfig], heartbeats: &[&str], at: &KeyPath) -> Vec<Diagnostic> {
    let mut d = Vec::new();
    let mut seen: BTreeMap<&str, KeyPath> = BTreeMap::new();
    for (i, p) in list.iter().enumerate() {
        let here = at.index(i);
        if !yagura_alert::config::valid_name(&p.name) {
            d.push(
                Diagnostic::error(
                    "bad-name",
                    format!("peer name `{}` must be 1–64 of [A-Za-z0-9_.-]", p.name),
                )
                .at(&here.key("name")),
            );
        } else if let Some(first) = seen.get(p.name.as_str()) {
            d.push(
                Diagnostic::error(
                    "duplicate-name",
                    format!("peer `{}` is defined twice", p.name),
                )
                .at(&here.key("name"))
                .related(&first.key("name"), "first defined here"),
            );
        } else {
            seen.insert(&p.name, here.clone());
            if !heartbeats.contains(&p.name.as_str()) {
                d.push(
                    Diagnostic::warning(
                        "unwatched-peer",
                        format!(
                            "no `[[heartbeats]]` named `{}`: this daemon pings the peer but does not notice when it goes silent",
                            p.name
                        ),
                    )
                    .at(&here.key("name")),
                );
            }
        }
        if !yagura_alert::config::valid_name(&p.heartbeat) {
            d.push(
                Diagnostic::error("bad-name", "`heartbeat` must be 1–64 of [A-Za-z0-9_.-]")
                    .at(&here.key("heartbeat")),
            );
        }
        if p.period < Duration::from_millis(100) {
            d.push(
                Diagnostic::error("out-of-range", "`period` must be at least 100ms")
                    .at(&here.key("period")),
            );
        }
        match (&p.url, &p.url_env) {
            (None, None) => d.push(
                Diagnostic::error("missing-url", format!("peer `{}` has no url", p.name))
                    .at(&here)
                    .hint("give `url = \"http://PEER:9480\"` or `url_env = \"NAME\"`"),
            ),
            (Some(_), Some(_)) => d.push(
                Diagnostic::error("url-twice", "give either `url` or `url_env`, not both")
                    .at(&here.key("url")),
            ),
            (Some(u), None) if !(u.starts_with("http://") || u.starts_with("https://")) => d.push(
                Diagnostic::error("bad-url", "`url` must start with http:// or https://")
                    .at(&here.key("url")),
            ),
            (None, Some(e)) => {
                if let Err(m) = e.check() {
                    d.push(Diagnostic::error("bad-env-name", m).at(&here.key("url_env")));
                }
            }
            _ => {}
        }
    }
    d
}

/// `{peer, result}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    /// The peer's name.
    pub peer: String,
    /// `ok` or `failed`.
    pub result: &'static str,
}

/// `yagura_watch_peer_pings_total{peer,result}`.
#[derive(Clone, Debug, Default)]
pub struct PeerMetrics {
    /// Pings sent, by outcome.
    pub pings: Family<PeerLabels, Counter>,
}

impl PeerMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry
            .sub_registry_with_prefix("yagura_watch_peer")
            .register(
                "pings",
                "Heartbeat pings sent to peer watch daemons, by outcome",
                m.pings.clone(),
            );
        m
    }
}

/// The running pingers.
#[derive(Debug)]
pub struct Peers {
    stop: CancellationToken,
    metrics: PeerMetrics,
    applied: Vec<PeerConfig>,
}

impl Peers {
    /// Starts one pinger per peer (children of `parent`). Fails if a `url_env` is unset.
    pub fn start(
        list: &[PeerConfig],
        metrics: PeerMetrics,
        parent: &CancellationToken,
    ) -> Result<Self, String> {
        let mut p = Self {
            stop: parent.child_token(),
            metrics,
            applied: Vec::new(),
        };
        p.spawn(list, parent)?;
        Ok(p)
    }

    fn spawn(&mut self, list: &[PeerConfig], parent: &CancellationToken) -> Result<(), String> {
        let urls = list
            .iter()
            .map(PeerConfig::resolve_url)
            .collect::<Result<Vec<_>, _>>()?;
        self.stop.cancel();
        self.stop = parent.child_token();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .user_agent(concat!("yagura-watch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {}", e.without_url()))?;
        for (p, url) in list.iter().zip(urls) {
            let ping = format!("{}/ping/{}", url.trim_end_matches('/'), p.heartbeat);
            tokio::spawn(pinger(
                p.clone(),
                ping,
                client.clone(),
                self.metrics.clone(),
                self.stop.clone(),
            ));
        }
        self.applied = list.to_vec();
        Ok(())
    }

    /// Applies a new list (restarts the pingers if it changed); on error the old pingers keep running.
    pub fn reload(
        &mut self,
        list: &[PeerConfig],
        parent: &CancellationToken,
    ) -> Result<(), String> {
        if list == self.applied.as_slice() {
            return Ok(());
        }
        self.spawn(list, parent)
    }

    /// Stops every pinger.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

async fn pinger(
    p: PeerConfig,
    url: String,
    client: reqwest::Client,
    m: PeerMetrics,
    stop: CancellationToken,
) {
    let mut failing = false;
    let mut every = tokio::time::interval(p.period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let r = client.post(&url).send().await;
        let ok = matches!(&r, Ok(resp) if resp.status().is_success());
        m.pings
            .get_or_create(&PeerLabels {
                peer: p.name.clone(),
                result: if ok { "ok" } else { "failed" },
            })
            .inc();
        if ok && failing {
            tracing::info!(peer = %p.name, "peer answers pings again");
        } else if !ok && !failing {
            let why = match r {
                Ok(resp) => format!("HTTP {}", resp.status()),
                Err(e) => yagura_alert::engine::describe(e),
            };
            tracing::warn!(peer = %p.name, error = %why, "cannot ping peer watch daemon");
        }
        failing = !ok;
    }
}
