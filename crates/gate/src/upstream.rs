//! Upstreams of a route: round robin over the healthy ones, active health checks with rise/fall thresholds,
//! passive marking on connection failures, and the pooled hyper clients (HTTP/1.1 and HTTP/2 over ALPN for
//! `https`; a separate HTTP/1.1-only client for websocket upgrades). Each serving thread has its own keep-alive
//! pool, so a request is written and answered on the thread that accepted it (no cross-thread wake-ups).

use crate::config::{HealthCheck, RouteConfig};
use crate::httpc::connector;
use crate::metrics::GateMetrics;
use crate::tls::{client_config, TlsError};
use bytes::Bytes;
use http::Uri;
use http_body_util::combinators::UnsyncBoxBody;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Boxed error of bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type the gate sends and receives.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;
/// The upstream client.
pub type UpClient = Client<HttpsConnector<HttpConnector>, Body>;

/// One upstream.
#[derive(Debug)]
pub struct Upstream {
    /// As configured (metric label).
    pub url: String,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    host_header: http::HeaderValue,
    base: String,
    healthy: AtomicBool,
    oks: AtomicU32,
    fails: AtomicU32,
}

impl Upstream {
    fn parse(s: &str) -> Option<Self> {
        let u: Uri = s.parse().ok()?;
        let base = u.path().trim_end_matches('/').to_string();
        Some(Self {
            url: s.to_string(),
            scheme: u.scheme()?.clone(),
            authority: u.authority()?.clone(),
            host_header: http::HeaderValue::from_str(u.authority()?.as_str()).ok()?,
            base,
            healthy: AtomicBool::new(true),
            oks: AtomicU32::new(0),
            fails: AtomicU32::new(0),
        })
    }

    /// The URI for a request's normalized path and query.
    pub fn uri(&self, path: &str, query: Option<&str>) -> Option<Uri> {
        let pq = match query {
            Some(q) => format!("{}{path}?{q}", self.base),
            None => format!("{}{path}", self.base),
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .ok()
    }

    /// `host[:port]` of the upstream (its own `Host` header).
    pub fn authority(&self) -> &str {
        self.authority.as_str()
    }

    /// [`Upstream::authority`] as a ready `Host` header value.
    pub fn host_header(&self) -> &http::HeaderValue {
        &self.host_header
    }

    /// In use?
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

/// A route's upstreams and clients.
#[derive(Debug)]
pub struct Pool {
    /// Route name.
    pub route: String,
    upstreams: Vec<Arc<Upstream>>,
    next: AtomicUsize,
    /// Pooled clients (HTTP/1.1, HTTP/2 by ALPN), one per serving thread ([`Pool::client`]).
    clients: Box<[UpClient]>,
    /// HTTP/1.1-only client for upgrades.
    pub ws_client: UpClient,
    /// Response-header deadline.
    pub timeout: Duration,
    /// Extra attempts for idempotent requests.
    pub retries: u32,
    /// Keep the client's `Host`.
    pub preserve_host: bool,
    health: Option<HealthCheck>,
}

fn client(tls: rustls::ClientConfig, connect: Duration, h2: bool) -> UpClient {
    let mut b = Client::builder(TokioExecutor::new());
    b.pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256);
    b.build(connector(tls, connect, h2))
}

impl Pool {
    /// Builds the pool of a route for `workers` serving threads (clients are created even for routes without
    /// upstreams).
    pub fn new(r: &RouteConfig, workers: usize) -> Result<Self, TlsError> {
        let ca = r
            .ca_file
            .as_ref()
            .map(|p| Path::new(p.as_str()).to_path_buf());
        let tls = client_config(ca.as_deref())?;
        let ws_tls = client_config(ca.as_deref())?;
        Ok(Self {
            route: r.name.clone(),
            upstreams: r
                .all_upstreams()
                .iter()
                .filter_map(|u| Upstream::parse(u).map(Arc::new))
                .collect(),
            next: AtomicUsize::new(0),
            clients: (0..workers.max(1))
                .map(|_| client(tls.clone(), r.connect_timeout, true))
                .collect(),
            ws_client: client(ws_tls, r.connect_timeout, false),
            timeout: r.timeout,
            retries: r.retries,
            preserve_host: r.preserve_host,
            health: r.health_check.clone(),
        })
    }

    /// The keep-alive pool of the current serving thread.
    pub fn client(&self) -> &UpClient {
        &self.clients[crate::worker::index(self.clients.len())]
    }

    /// True when the route has upstreams (else it only serves `/auth`).
    pub fn has_upstreams(&self) -> bool {
        !self.upstreams.is_empty()
    }

    /// The upstream for attempt `attempt` of a request: round robin over the healthy ones (all of them when
    /// none is healthy, rather than failing outright), a different one on each retry.
    pub fn pick(&self, start: usize, attempt: usize) -> Option<Arc<Upstream>> {
        if self.upstreams.iter().all(|u| u.is_healthy()) {
            let n = self.upstreams.len();
            return (n > 0).then(|| Arc::clone(&self.upstreams[(start + attempt) % n]));
        }
        let healthy: Vec<&Arc<Upstream>> =
            self.upstreams.iter().filter(|u| u.is_healthy()).collect();
        let set: Vec<&Arc<Upstream>> = if healthy.is_empty() {
            self.upstreams.iter().collect()
        } else {
            healthy
        };
        if set.is_empty() {
            return None;
        }
        set.get((start + attempt) % set.len())
            .map(|u| Arc::clone(u))
    }

    /// A starting point for round robin.
    pub fn start(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// A connection to `u` failed: counts towards `fall` when health checks are on (they bring it back).
    pub fn connect_failed(&self, u: &Upstream, m: &GateMetrics) {
        if let Some(h) = &self.health {
            u.oks.store(0, Ordering::Relaxed);
            if u.fails.fetch_add(1, Ordering::Relaxed) + 1 >= h.fall
                && u.healthy.swap(false, Ordering::Relaxed)
            {
                tracing::warn!(route = %self.route, upstream = %u.url, "upstream down (connection failures)");
                m.healthy(&self.route, &u.url, false);
            }
        }
    }

    /// Runs the active health checks until `stop`; `first_round` is called once every upstream was checked once.
    pub async fn health_loop(
        self: Arc<Self>,
        m: GateMetrics,
        stop: CancellationToken,
        first_round: impl FnOnce() + Send,
    ) {
        for u in &self.upstreams {
            m.healthy(&self.route, &u.url, u.is_healthy());
        }
        let Some(h) = self.health.clone() else {
            first_round();
            return;
        };
        let mut first = Some(first_round);
        let mut tick = tokio::time::interval(h.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let checks = self.upstreams.iter().map(|u| self.check(u, &h));
            let results = futures_util::future::join_all(checks).await;
            for (u, ok) in self.upstreams.iter().zip(results) {
                let changed = if ok {
                    u.fails.store(0, Ordering::Relaxed);
                    u.oks.fetch_add(1, Ordering::Relaxed) + 1 >= h.rise
                        && !u.healthy.swap(true, Ordering::Relaxed)
                } else {
                    u.oks.store(0, Ordering::Relaxed);
                    u.fails.fetch_add(1, Ordering::Relaxed) + 1 >= h.fall
                        && u.healthy.swap(false, Ordering::Relaxed)
                };
                if changed {
                    tracing::info!(route = %self.route, upstream = %u.url, healthy = ok, "upstream health changed");
                }
                m.healthy(&self.route, &u.url, u.is_healthy());
            }
            if let Some(f) = first.take() {
                f();
            }
        }
    }

    async fn check(&self, u: &Upstream, h: &HealthCheck) -> bool {
        let Some(uri) = u.uri(&h.path, None) else {
            return false;
        };
        let Ok(req) = http::Request::get(uri)
            .header(http::header::USER_AGENT, "yagura-gate health check")
            .body(empty())
        else {
            return false;
        };
        match tokio::time::timeout(h.timeout, self.client().request(req)).await {
            Ok(Ok(res)) => {
                let s = res.status();
                s.is_success() || s.is_redirection()
            }
            _ => false,
        }
    }
}

/// An empty body.
pub fn empty() -> Body {
    use http_body_util::BodyExt;
    http_body_util::Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body with `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    use http_body_util::BodyExt;
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}
