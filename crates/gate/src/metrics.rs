//! The gate's Prometheus metrics. Labels are bounded: route names come from the config (plus `_auth` for the
//! auth host, `_none` for unmatched requests), status classes are five, outcomes are a fixed list. Never the
//! path, the user or the client address.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteClass {
    route: String,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderOutcome {
    provider: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Upstream {
    route: String,
    upstream: String,
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const DECISIONS: [&str; 3] = ["allow", "sign_in", "forbidden"];

/// A route's hot-path metric handles, looked up once (no label allocation per request).
#[derive(Debug)]
struct RouteHandles {
    classes: [Counter; 5],
    latency: Histogram,
    decisions: [Counter; 3],
}

/// One route's request and decision metrics, looked up once per config generation ([`GateMetrics::for_route`]).
#[derive(Clone, Debug)]
pub struct RouteMetrics(Arc<RouteHandles>);

impl RouteMetrics {
    /// A request finished with `status` after `secs`.
    pub fn request(&self, status: u16, secs: f64) {
        self.0.classes[class(status)].inc();
        self.0.latency.observe(secs);
    }

    /// A policy decision (`allow`, `sign_in`, `forbidden`).
    pub fn decision(&self, what: &'static str) {
        let i = DECISIONS.iter().position(|d| *d == what).unwrap_or(0);
        self.0.decisions[i].inc();
    }
}

/// Every metric of the gate.
#[derive(Clone, Debug)]
pub struct GateMetrics {
    handles: Arc<RwLock<HashMap<String, Arc<RouteHandles>>>>,
    requests: Family<RouteClass, Counter>,
    latency: Family<RouteLabel, Histogram>,
    sign_ins: Family<ProviderOutcome, Counter>,
    decisions: Family<RouteClass, Counter>,
    forward_auth: Family<Outcome, Counter>,
    rechecks: Family<Outcome, Counter>,
    retries: Family<RouteLabel, Counter>,
    healthy: Family<Upstream, Gauge>,
    websockets: Family<RouteLabel, Gauge>,
    websocket_cut: Family<RouteLabel, Counter>,
    cert_reloads: Family<Outcome, Counter>,
    dropped_headers: Counter,
    worker_connections: Family<WorkerLabel, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabel {
    worker: String,
}

fn class(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

impl GateMetrics {
    /// Registers under `yagura_gate_`.
    pub fn register(r: &mut Registry) -> Self {
        let latency = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ])
        });
        let m = Self {
            handles: Arc::default(),
            requests: Family::default(),
            latency,
            sign_ins: Family::default(),
            decisions: Family::default(),
            forward_auth: Family::default(),
            rechecks: Family::default(),
            retries: Family::default(),
            healthy: Family::default(),
            websockets: Family::default(),
            websocket_cut: Family::default(),
            cert_reloads: Family::default(),
            dropped_headers: Counter::default(),
            worker_connections: Family::default(),
        };
        r.register(
            "yagura_gate_worker_connections",
            "Open HTTPS connections per serving thread",
            m.worker_connections.clone(),
        );
        r.register(
            "yagura_gate_requests",
            "Requests by route and status class",
            m.requests.clone(),
        );
        r.register(
            "yagura_gate_request_duration_seconds",
            "Time to response headers by route",
            m.latency.clone(),
        );
        r.register(
            "yagura_gate_sign_ins",
            "Sign-in attempts by provider and outcome",
            m.sign_ins.clone(),
        );
        r.register(
            "yagura_gate_policy_decisions",
            "Policy decisions by route (class: allow, sign_in, forbidden)",
            m.decisions.clone(),
        );
        r.register(
            "yagura_gate_forward_auth",
            "Forward-auth answers (202, 401, 403)",
            m.forward_auth.clone(),
        );
        r.register(
            "yagura_gate_membership_rechecks",
            "Membership re-checks during sessions by outcome",
            m.rechecks.clone(),
        );
        r.register(
            "yagura_gate_upstream_retries",
            "Requests retried on another upstream",
            m.retries.clone(),
        );
        r.register(
            "yagura_gate_upstream_healthy",
            "1 when an upstream is in use",
            m.healthy.clone(),
        );
        r.register(
            "yagura_gate_websockets_open",
            "Open websocket tunnels",
            m.websockets.clone(),
        );
        r.register(
            "yagura_gate_websockets_closed_by_policy",
            "Websocket tunnels closed because the session ended or lost access",
            m.websocket_cut.clone(),
        );
        r.register(
            "yagura_gate_certificate_reloads",
            "Certificate file changes by outcome",
            m.cert_reloads.clone(),
        );
        r.register(
            "yagura_gate_identity_headers_stripped",
            "Identity headers removed from client requests",
            m.dropped_headers.clone(),
        );
        m
    }

    fn route(&self, route: &str) -> Arc<RouteHandles> {
        if let Ok(h) = self.handles.read() {
            if let Some(r) = h.get(route) {
                return Arc::clone(r);
            }
        }
        let mk = |class: &'static str, f: &Family<RouteClass, Counter>| {
            f.get_or_create(&RouteClass {
                route: route.to_string(),
                class,
            })
            .clone()
        };
        let r = Arc::new(RouteHandles {
            classes: CLASSES.map(|c| mk(c, &self.requests)),
            latency: self
                .latency
                .get_or_create(&RouteLabel {
                    route: route.to_string(),
                })
                .clone(),
            decisions: DECISIONS.map(|d| mk(d, &self.decisions)),
        });
        if let Ok(mut h) = self.handles.write() {
            h.insert(route.to_string(), Arc::clone(&r));
        }
        r
    }

    /// The hot-path handles of `route`, to keep with the route (no lookup per request).
    pub fn for_route(&self, route: &str) -> RouteMetrics {
        RouteMetrics(self.route(route))
    }

    /// A request finished with `status` after `secs`.
    pub fn request(&self, route: &str, status: u16, secs: f64) {
        let r = self.route(route);
        r.classes[class(status)].inc();
        r.latency.observe(secs);
    }

    /// A policy decision (`allow`, `sign_in`, `forbidden`).
    pub fn decision(&self, route: &str, what: &'static str) {
        let i = DECISIONS.iter().position(|d| *d == what).unwrap_or(0);
        self.route(route).decisions[i].inc();
    }

    /// A sign-in outcome.
    pub fn sign_in(&self, provider: &'static str, outcome: &'static str) {
        self.sign_ins
            .get_or_create(&ProviderOutcome { provider, outcome })
            .inc();
    }

    /// A forward-auth answer.
    pub fn forward_auth(&self, outcome: &'static str) {
        self.forward_auth.get_or_create(&Outcome { outcome }).inc();
    }

    /// A membership re-check.
    pub fn recheck(&self, outcome: &'static str) {
        self.rechecks.get_or_create(&Outcome { outcome }).inc();
    }

    /// A retry.
    pub fn retry(&self, route: &str) {
        self.retries
            .get_or_create(&RouteLabel {
                route: route.to_string(),
            })
            .inc();
    }

    /// Upstream health.
    pub fn healthy(&self, route: &str, upstream: &str, up: bool) {
        self.healthy
            .get_or_create(&Upstream {
                route: route.to_string(),
                upstream: upstream.to_string(),
            })
            .set(i64::from(up));
    }

    /// Serving thread `worker` now has `n` open HTTPS connections.
    pub fn worker_connections(&self, worker: usize, n: usize) {
        self.worker_connections
            .get_or_create(&WorkerLabel {
                worker: worker.to_string(),
            })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// A websocket opened (+1) or closed (-1).
    pub fn websocket(&self, route: &str, delta: i64) {
        self.websockets
            .get_or_create(&RouteLabel {
                route: route.to_string(),
            })
            .inc_by(delta);
    }

    /// A websocket closed by policy.
    pub fn websocket_cut(&self, route: &str) {
        self.websocket_cut
            .get_or_create(&RouteLabel {
                route: route.to_string(),
            })
            .inc();
    }

    /// A certificate reload.
    pub fn cert_reload(&self, outcome: &'static str) {
        self.cert_reloads.get_or_create(&Outcome { outcome }).inc();
    }

    /// Identity headers stripped from one request.
    pub fn stripped(&self, n: u64) {
        if n > 0 {
            self.dropped_headers.inc_by(n);
        }
    }
}
