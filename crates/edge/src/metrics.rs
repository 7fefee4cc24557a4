//! The edge daemon's Prometheus metrics. Labels are bounded: peer and VIP names come from the config, states and
//! drop reasons from fixed lists.

use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use yagura_bfd::packet::State as BfdState;

use crate::fsm::State;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabel {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerStateLabel {
    peer: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VipLabel {
    vip: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// Every metric of the edge daemon.
#[derive(Debug, Default)]
pub struct Metrics {
    session_state: Family<PeerStateLabel, Gauge>,
    session_uptime: Family<PeerLabel, Gauge<f64, AtomicU64>>,
    session_flaps: Family<PeerLabel, Counter>,
    prefixes_sent: Family<PeerLabel, Gauge>,
    prefixes_received: Family<PeerLabel, Gauge>,
    updates_sent: Family<PeerLabel, Counter>,
    bfd_state: Family<PeerStateLabel, Gauge>,
    bfd_downs: Family<PeerLabel, Counter>,
    bfd_last_down: Family<PeerLabel, Gauge<f64, AtomicU64>>,
    vip_announced: Family<VipLabel, Gauge>,
    dropped: Family<ReasonLabel, Counter>,
    draining: Gauge,
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn bfd_state_name(s: BfdState) -> &'static str {
    match s {
        BfdState::AdminDown => "admin_down",
        BfdState::Down => "down",
        BfdState::Init => "init",
        BfdState::Up => "up",
    }
}

impl Metrics {
    /// Creates the metrics and registers them under `yagura_edge_`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("yagura_edge");
        r.register(
            "bgp_session_state",
            "BGP session state (1 for the current state of each peer)",
            m.session_state.clone(),
        );
        r.register(
            "bgp_session_uptime_seconds",
            "Seconds since the session reached Established (0 when not Established)",
            m.session_uptime.clone(),
        );
        r.register(
            "bgp_session_flaps",
            "Times the session left Established",
            m.session_flaps.clone(),
        );
        r.register(
            "bgp_prefixes_sent",
            "Prefixes announced to the peer",
            m.prefixes_sent.clone(),
        );
        r.register(
            "bgp_prefixes_received",
            "Prefixes the peer announced to us",
            m.prefixes_received.clone(),
        );
        r.register(
            "bgp_updates_sent",
            "UPDATE messages sent",
            m.updates_sent.clone(),
        );
        r.register(
            "bfd_session_state",
            "BFD session state (1 for the current state of each peer)",
            m.bfd_state.clone(),
        );
        r.register(
            "bfd_session_downs",
            "Times an Up BFD session went down (detection timeout or neighbour signalled)",
            m.bfd_downs.clone(),
        );
        r.register(
            "bfd_last_down_timestamp_seconds",
            "When BFD last took the session down",
            m.bfd_last_down.clone(),
        );
        r.register(
            "vip_announced",
            "1 while the VIP is announced",
            m.vip_announced.clone(),
        );
        r.register(
            "dropped",
            "Packets or connections dropped, by reason",
            m.dropped.clone(),
        );
        r.register("draining", "1 while the daemon drains", m.draining.clone());
        m
    }

    /// Records a session state.
    pub fn session_state(&self, peer: &str, state: State) {
        for s in State::ALL {
            self.session_state
                .get_or_create(&PeerStateLabel {
                    peer: peer.to_string(),
                    state: s.as_str(),
                })
                .set(i64::from(s == state));
        }
    }

    /// Sets the uptime of a session (0 when down).
    pub fn session_uptime(&self, peer: &str, secs: f64) {
        self.session_uptime
            .get_or_create(&PeerLabel {
                peer: peer.to_string(),
            })
            .set(secs);
    }

    /// Counts a session leaving Established.
    pub fn session_flap(&self, peer: &str) {
        self.session_flaps
            .get_or_create(&PeerLabel {
                peer: peer.to_string(),
            })
            .inc();
    }

    /// Sets the prefix counts of a session.
    pub fn prefixes(&self, peer: &str, sent: usize, received: usize) {
        let l = PeerLabel {
            peer: peer.to_string(),
        };
        self.prefixes_sent
            .get_or_create(&l)
            .set(i64::try_from(sent).unwrap_or(i64::MAX));
        self.prefixes_received
            .get_or_create(&l)
            .set(i64::try_from(received).unwrap_or(i64::MAX));
    }

    /// Counts UPDATEs sent.
    pub fn updates_sent(&self, peer: &str, n: usize) {
        self.updates_sent
            .get_or_create(&PeerLabel {
                peer: peer.to_string(),
            })
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// Records a BFD state.
    pub fn bfd_state(&self, peer: &str, state: BfdState) {
        for s in [
            BfdState::AdminDown,
            BfdState::Down,
            BfdState::Init,
            BfdState::Up,
        ] {
            self.bfd_state
                .get_or_create(&PeerStateLabel {
                    peer: peer.to_string(),
                    state: bfd_state_name(s),
                })
                .set(i64::from(s == state));
        }
    }

    /// Records BFD taking a session down now.
    pub fn bfd_down(&self, peer: &str) {
        let l = PeerLabel {
            peer: peer.to_string(),
        };
        self.bfd_downs.get_or_create(&l).inc();
        self.bfd_last_down.get_or_create(&l).set(now_secs());
    }

    /// Records whether a VIP is announced.
    pub fn vip(&self, vip: &str, announced: bool) {
        self.vip_announced
            .get_or_create(&VipLabel {
                vip: vip.to_string(),
            })
            .set(i64::from(announced));
    }

    /// Counts a drop.
    pub fn dropped(&self, reason: &'static str) {
        self.dropped.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Records the drain.
    pub fn draining(&self) {
        self.draining.set(1);
    }

    /// Forgets a peer removed by a reload (so its series stop).
    pub fn remove_peer(&self, peer: &str) {
        let l = PeerLabel {
            peer: peer.to_string(),
        };
        for s in State::ALL {
            self.session_state.remove(&PeerStateLabel {
                peer: peer.to_string(),
                state: s.as_str(),
            });
        }
        self.session_uptime.remove(&l);
        self.prefixes_sent.remove(&l);
        self.prefixes_received.remove(&l);
    }
}
