//! Upstreams of a route: round robin over the healthy ones, active health checks with rise/fall thresholds,
//! passive marking on connection failures. Each upstream has its connections ([`Conns`]: HTTP/1.1, or HTTP/2 by
//! ALPN for `https`; upgrades on connections of their own), pooled per serving thread, so a request is written
//! and answered on the thread that accepted it (no cross-thread wake-ups).

use crate::config::{HealthCheck, RouteConfig};
use crate::conns::Conns;
use crate::metrics::GateMetrics;
use crate::tls::{client_config, TlsError};
use bytes::Bytes;
use http::Uri;
use http_body_util::combinators::UnsyncBoxBody;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Boxed error of bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type the gate sends and receives.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// One upstream.
#[derive(Debug)]
pub struct Upstream {
    /// As configured (metric label).
    pub url: String,
    authority: http::uri::Authority,
    host_header: http::HeaderValue,
    base: String,
    conns: Arc<Conns>,
    healthy: AtomicBool,
    oks: AtomicU32,
    fails: AtomicU32,
}

impl Upstream {
    fn parse(
        s: &str,
        tls: &rustls::ClientConfig,
        connect_timeout: Duration,
        workers: usize,
    ) -> Option<Self> {
        let u: Uri = s.parse().ok()?;
        let base = u.path().trim_end_matches('/').to_string();
        let conns = Conns::new(
            u.scheme()?.clone(),
            u.authority()?.clone(),
            Some(tls.clone()),
            connect_timeout,
            workers,
        )?;
        Some(Self {
            url: s.to_string(),
            authority: u.authority()?.clone(),
            host_header: http::HeaderValue::from_str(u.authority()?.as_str()).ok()?,
            base,
            conns,
            healthy: AtomicBool::new(true),
            oks: AtomicU32::new(0),
            fails: AtomicU32::new(0),
        })
    }

    /// The (origin-form) URI for a request's normalized path and query.
    pub fn uri(&self, path: &str, query: Option<&str>) -> Option<Uri> {
        let pq = match query {
            Some(q) => format!("{}{path}?{q}", self.base),
            None => format!("{}{path}", self.base),
        };
        Uri::from_maybe_shared(Bytes::from(pq)).ok()
    }

    /// The upstream URL's path without its trailing `/`, put before each request's path.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The connections to this upstream.
    pub fn conns(&self) -> &Conns {
        &self.conns
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
    /// Deadline of an exchange (response head and a body read whole).
    pub timeout: Duration,
    /// Extra attempts for idempotent requests.
    pub retries: u32,
    /// Keep the client's `Host`.
    pub preserve_host: bool,
    /// The route's host as a ready header value (`X-Forwarded-Host`, built once rather than per request).
    host_value: Option<http::HeaderValue>,
    health: Option<HealthCheck>,
}

impl Pool {
    /// Builds the pool of a route for `workers` serving threads.
    pub fn new(r: &RouteConfig, workers: usize) -> Result<Self, TlsError> {
        let ca = r
            .ca_file
            .as_ref()
            .map(|p| Path::new(p.as_str()).to_path_buf());
        let tls = client_config(ca.as_deref())?;
        Ok(Self {
            route: r.name.clone(),
            upstreams: r
                .all_upstreams()
                .iter()
                .filter_map(|u| Upstream::parse(u, &tls, r.connect_timeout, workers).map(Arc::new))
                .collect(),
            next: AtomicUsize::new(0),
            timeout: r.timeout,
            retries: r.retries,
            preserve_host: r.preserve_host,
            host_value: http::HeaderValue::from_str(&r.host).ok(),
            health: r.health_check.clone(),
        })
    }

    /// `host` as a header value: the one built with the pool when it is the route's host, else built now.
    pub fn host_value(&self, host: &str) -> Option<http::HeaderValue> {
        match &self.host_value {
            Some(v) if v.as_bytes() == host.as_bytes() => Some(v.clone()),
            _ => http::HeaderValue::from_str(host).ok(),
        }
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
        use http_body_util::BodyExt;
        let mut headers = http::HeaderMap::with_capacity(1);
        headers.insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static("yagura-gate health check"),
        );
        let out = crate::h1::Outgoing {
            method: &http::Method::GET,
            target: crate::h1::Target {
                base: &u.base,
                path: &h.path,
                query: None,
            },
            host: u.host_header(),
            headers: &headers,
            added: &[],
        };
        let exchange = async {
            let res = u.conns().send(&out, None).await.ok()?;
            let ok = res.status().is_success() || res.status().is_redirection();
            // The body is read (up to 64 KiB) so the connection can be used again.
            let mut body = res.into_body();
            let mut read = 0;
            while let Some(Ok(f)) = body.frame().await {
                read += f.data_ref().map_or(0, bytes::Bytes::len);
                if read > 64 * 1024 {
                    break;
                }
            }
            Some(ok)
        };
        matches!(
            tokio::time::timeout(h.timeout, exchange).await,
            Ok(Some(true))
        )
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
