//! Per-backend Prometheus series of the load balancer (labels `pool`, `backend` from the config, so bounded)
//! and per-listener rejections (reasons from a fixed list).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::proxy::ByteCounters;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabel {
    pool: String,
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabel {
    listener: String,
    reason: &'static str,
}

/// The load balancer's metric families.
#[derive(Debug, Default)]
pub struct LbMetrics {
    up: Family<BackendLabel, Gauge>,
    active: Family<BackendLabel, Gauge>,
    total: Family<BackendLabel, Counter>,
    bytes_in: Family<BackendLabel, Counter>,
    bytes_out: Family<BackendLabel, Counter>,
    connect_errors: Family<BackendLabel, Counter>,
    check_latency: Family<BackendLabel, Gauge<f64, AtomicU64>>,
    check_failures: Family<BackendLabel, Counter>,
    idle_closed: Family<BackendLabel, Counter>,
    rejected: Family<RejectLabel, Counter>,
}

/// The series of one backend (handles into the families, updated without lookups on the data path).
#[derive(Debug, Clone)]
pub struct BackendMetrics {
    /// 1 while up.
    pub up: Gauge,
    /// Connections now.
    pub active: Gauge,
    /// Connections ever.
    pub total: Counter,
    /// Bytes each way.
    pub bytes: ByteCounters,
    /// Failed connects.
    pub connect_errors: Counter,
    /// Latency of the last good check.
    pub check_latency: Gauge<f64, AtomicU64>,
    /// Failed checks.
    pub check_failures: Counter,
    /// Connections closed by the idle timeout.
    pub idle_closed: Counter,
}

impl LbMetrics {
    /// Registers the families under `yagura_edge_lb_`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("yagura_edge_lb");
        r.register(
            "backend_up",
            "1 while the backend takes new connections",
            m.up.clone(),
        );
        r.register(
            "backend_active_connections",
            "Connections proxied to the backend now",
            m.active.clone(),
        );
        r.register(
            "backend_connections",
            "Connections proxied to the backend",
            m.total.clone(),
        );
        r.register(
            "backend_bytes_to_backend",
            "Bytes from clients to the backend",
            m.bytes_in.clone(),
        );
        r.register(
            "backend_bytes_to_client",
            "Bytes from the backend to clients",
            m.bytes_out.clone(),
        );
        r.register(
            "backend_connect_errors",
            "Failed connects to the backend",
            m.connect_errors.clone(),
        );
        r.register(
            "backend_check_latency_seconds",
            "Latency of the backend's last successful health check",
            m.check_latency.clone(),
        );
        r.register(
            "backend_check_failures",
            "Failed health checks",
            m.check_failures.clone(),
        );
        r.register(
            "backend_idle_closed",
            "Connections closed by the idle timeout",
            m.idle_closed.clone(),
        );
        r.register(
            "rejected",
            "Client connections closed without a backend, by listener and reason",
            m.rejected.clone(),
        );
        m
    }

    /// The series of a backend.
    pub fn backend(&self, pool: &str, backend: &str) -> BackendMetrics {
        let l = BackendLabel {
            pool: pool.to_string(),
            backend: backend.to_string(),
        };
        BackendMetrics {
            up: self.up.get_or_create(&l).clone(),
            active: self.active.get_or_create(&l).clone(),
            total: self.total.get_or_create(&l).clone(),
            bytes: ByteCounters {
                to_backend: self.bytes_in.get_or_create(&l).clone(),
                to_client: self.bytes_out.get_or_create(&l).clone(),
            },
            connect_errors: self.connect_errors.get_or_create(&l).clone(),
            check_latency: self.check_latency.get_or_create(&l).clone(),
            check_failures: self.check_failures.get_or_create(&l).clone(),
            idle_closed: self.idle_closed.get_or_create(&l).clone(),
        }
    }

    /// Drops a removed backend's series.
    pub fn remove_backend(&self, pool: &str, backend: &str) {
        let l = BackendLabel {
            pool: pool.to_string(),
            backend: backend.to_string(),
        };
        self.up.remove(&l);
        self.active.remove(&l);
        self.total.remove(&l);
        self.bytes_in.remove(&l);
        self.bytes_out.remove(&l);
        self.connect_errors.remove(&l);
        self.check_latency.remove(&l);
        self.check_failures.remove(&l);
        self.idle_closed.remove(&l);
    }

    /// Counts a rejected client connection.
    pub fn rejected(&self, listener: &str, reason: &'static str) {
        self.rejected
            .get_or_create(&RejectLabel {
                listener: listener.to_string(),
                reason,
            })
            .inc();
    }
}
