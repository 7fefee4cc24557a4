//! The planner: turns a validated [`Spec`] into concrete addresses, VIPs, pools and BGP sessions.
//!
//! Allocation rules (documented in `docs/plan.md`; stable by construction):
//! - **Global network** (router, masters, edges; workers have none): host numbers from just above the
//!   provider's reserved addresses (sakuracloud: .1 gateway, .2/.3 router interfaces → first node at .4),
//!   in the order router(s), masters, edges, then the API VIP when it is not given. Pools taken `from_global`
//!   come from the top of the network downwards, in the order written.
//! - **Internal network**: each role has a block starting at its `internal_offset` (defaults: router .1,
//!   masters .11, edges .31, workers .101); node *i* gets offset + *i* − 1. Workers are last everywhere, so
//!   adding a worker appends one node and moves nothing else.
//! - **BGP sessions**: every edge with every router, over the `routing.session_network`.

use crate::addr::{nth, Span};
use crate::model::{PoolAccess, Provider, Role, SessionNetwork, Spec};
use crate::provider::catalogue;
use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};

/// The version of the plan's JSON schema. Bumped on any incompatible change; additions keep it.
pub const SCHEMA_VERSION: &str = "yagura.plan/v1";

/// The planned platform (`yagura plan --format json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Plan {
    /// Always [`SCHEMA_VERSION`].
    pub schema: String,
    /// Platform facts.
    pub platform: PlanPlatform,
    /// Routing facts shared by every cluster.
    pub routing: PlanRouting,
    /// One entry per cluster, in spec order.
    pub clusters: Vec<PlanCluster>,
}

/// Platform facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlanPlatform {
    /// Platform name.
    pub name: String,
    /// Provider.
    pub provider: Provider,
    /// Zone.
    pub zone: String,
    /// Terraform state location.
    pub state: PlanState,
}

/// Terraform's S3 backend and where each cluster's workspace state lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlanState {
    /// S3 endpoint.
    pub endpoint: String,
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Workspace key prefix (`env:`).
    pub workspace_key_prefix: String,
    /// Region.
    pub region: String,
    /// Name of the variable with the access key id.
    pub access_key_env: String,
    /// Name of the variable with the secret key.
    pub secret_key_env: String,
    /// One workspace per cluster.
    pub workspaces: Vec<PlanWorkspace>,
}

/// A Terraform workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlanWorkspace {
    /// Cluster name.
    pub cluster: String,
    /// Workspace name.
    pub workspace: String,
    /// Object key of its state (`env:/prd/terraform.tfstate`).
    pub object_key: String,
}

/// Routing facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlanRouting {
    /// Router ASN.
    pub router_asn: u32,
    /// Cluster (edge) ASN.
    pub cluster_asn: u32,
    /// Network the sessions use.
    pub session_network: SessionNetwork,
    /// Hold time, seconds.
    pub hold_time_s: u64,
    /// Keepalive, seconds.
    pub keepalive_s: u64,
    /// First connect retry, seconds.
    pub connect_retry_s: u64,
    /// Graceful restart.
    pub graceful_restart: bool,
    /// Restart time, seconds.
    pub restart_time_s: u64,
    /// Whether TCP MD5 is used (the password's variable name; never the password).
    pub md5_password_env: Option<String>,
    /// BFD, when enabled.
    pub bfd: Option<PlanBfd>,
}

/// BFD parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlanBfd {
    /// Desired min TX, ms.
    pub min_tx_ms: u64,
    /// Required min RX, ms.
    pub min_rx_ms: u64,
    /// Detect multiplier.
    pub multiplier: u32,
    /// Worst-case detection time, ms (max(tx, rx) × multiplier).
    pub detect_time_ms: u64,
}

/// A planned cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlanCluster {
    /// Name.
    pub name: String,
    /// Argo CD environment label.
    pub env: String,
    /// Kubernetes version.
    pub kubernetes_version: String,
    /// Networks.
    pub networks: PlanNetworks,
    /// Every VM: router(s), masters, edges, workers, in that order.
    pub nodes: Vec<PlanNode>,
    /// API server VIP.
    pub api_vip: Ipv4Addr,
    /// `VIP:port`, kubeadm's controlPlaneEndpoint.
    pub api_endpoint: String,
    /// LoadBalancer pools.
    pub pools: Vec<PlanPool>,
    /// Edge ↔ router sessions.
    pub bgp_sessions: Vec<PlanSession>,
}

/// A cluster's networks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlanNetworks {
    /// The global network.
    pub global: PlanGlobal,
    /// The internal network.
    pub internal: PlanInternal,
    /// Pod CIDR.
    #[schemars(with = "String")]
    pub pod: IpNet,
    /// Service CIDR.
    #[schemars(with = "String")]
    pub service: IpNet,
}

/// The global network and its use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlanGlobal {
    /// CIDR.
    #[schemars(with = "String")]
    pub cidr: Ipv4Net,
    /// Prefix length.
    pub netmask: u8,
    /// The provider's gateway.
    pub gateway: Ipv4Addr,
    /// Addresses the provider keeps (gateway included).
    pub reserved: Vec<Ipv4Addr>,
    /// First address a node may use.
    pub first_usable: Ipv4Addr,
    /// Last address a node may use.
    pub last_usable: Ipv4Addr,
    /// Usable addresses not taken by nodes, the VIP or pools.
    pub free: u32,
}

/// The internal network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlanInternal {
    /// CIDR.
    #[schemars(with = "String")]
    pub cidr: Ipv4Net,
    /// Its gateway: the first router's internal address.
    pub gateway: Ipv4Addr,
}

/// A planned VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlanNode {
    /// `<cluster>-<role>-<index>`.
    pub name: String,
    /// Role.
    pub role: Role,
    /// 1-based index within the role.
    pub index: u32,
    /// Address on the global network (none for workers).
    pub global_address: Option<Ipv4Addr>,
    /// Address on the internal network.
    pub internal_address: Ipv4Addr,
    /// vCPUs.
    pub cores: u32,
    /// Memory, GB.
    pub memory_gb: u32,
    /// System disk, GB.
    pub disk_gb: u32,
    /// Data disk, GB.
    pub data_disk_gb: Option<u32>,
    /// OS image.
    pub os: String,
}

/// How a pool's addresses were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PoolSource {
    /// A block given as `cidr` (routed to the router when public).
    Cidr,
    /// An explicit `range`.
    Range,
    /// Carved from the top of the global network.
    Global,
}

/// A planned pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlanPool {
    /// Name.
    pub name: String,
    /// Reachability.
    pub access: PoolAccess,
    /// Where its addresses come from.
    pub source: PoolSource,
    /// `first-last`.
    pub range: String,
    /// First assignable address.
    pub first: IpAddr,
    /// Last assignable address.
    pub last: IpAddr,
    /// The block, when given.
    #[schemars(with = "Option<String>")]
    pub cidr: Option<IpNet>,
    /// Assignable addresses.
    pub addresses: u64,
    /// .0/.255 skipped.
    pub avoid_buggy_ips: bool,
    /// Assigned without asking.
    pub auto_assign: bool,
    /// Next hop the provider routes the block to (public `cidr` pools).
    pub next_hop: Option<Ipv4Addr>,
}

/// A BGP session between an edge and a router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlanSession {
    /// Router node name.
    pub router: String,
    /// Router address.
    pub router_address: Ipv4Addr,
    /// Router ASN.
    pub router_asn: u32,
    /// Edge node name.
    pub edge: String,
    /// Edge address.
    pub edge_address: Ipv4Addr,
    /// Edge ASN.
    pub edge_asn: u32,
    /// BFD on this session.
    pub bfd: bool,
}

/// The planner met something validation should have refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// An address did not fit its network.
    #[error("cluster {cluster}: {what} does not fit in {network}")]
    DoesNotFit {
        /// Cluster name.
        cluster: String,
        /// What was being placed.
        what: String,
        /// The network.
        network: String,
    },
    /// A cluster has no router to route through.
    #[error("cluster {0}: no router")]
    NoRouter(String),
}

/// Plans every cluster of a validated spec.
pub fn plan(spec: &Spec) -> Result<Plan, PlanError> {
    let st = &spec.platform.state;
    let prefix = st.workspace_key_prefix.trim_end_matches('/');
    let workspaces = spec
        .clusters
        .iter()
        .map(|c| PlanWorkspace {
            cluster: c.name.clone(),
            workspace: c.name.clone(),
            object_key: format!("{prefix}/{}/{}", c.name, st.key),
        })
        .collect();
    let r = &spec.routing;
    let bfd = r.bfd.enabled.then(|| {
        let tx = r.bfd.min_tx.as_millis() as u64;
        let rx = r.bfd.min_rx.as_millis() as u64;
        PlanBfd {
            min_tx_ms: tx,
            min_rx_ms: rx,
            multiplier: r.bfd.multiplier,
            detect_time_ms: tx.max(rx) * u64::from(r.bfd.multiplier),
        }
    });
    let clusters = spec
        .clusters
        .iter()
        .map(|c| plan_cluster(spec, c))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Plan {
        schema: SCHEMA_VERSION.to_string(),
        platform: PlanPlatform {
            name: spec.platform.name.clone(),
            provider: spec.platform.provider,
            zone: spec.platform.zone.clone(),
            state: PlanState {
                endpoint: st.endpoint.clone(),
                bucket: st.bucket.clone(),
                key: st.key.clone(),
                workspace_key_prefix: st.workspace_key_prefix.clone(),
                region: st.region.clone(),
                access_key_env: st.access_key_env.to_string(),
                secret_key_env: st.secret_key_env.to_string(),
                workspaces,
            },
        },
        routing: PlanRouting {
            router_asn: r.router_asn.0,
            cluster_asn: r.cluster_asn.0,
            session_network: r.session_network,
            hold_time_s: r.bgp.hold_time.as_secs(),
            keepalive_s: r.bgp.keepalive.as_secs(),
            connect_retry_s: r.bgp.connect_retry.as_secs(),
            graceful_restart: r.bgp.graceful_restart,
            restart_time_s: r.bgp.restart_time.as_secs(),
            md5_password_env: r.md5_password_env.as_ref().map(ToString::to_string),
            bfd,
        },
        clusters,
    })
}

/// The global layout of a cluster: host numbers of nodes by role, the VIP, and pools from the top.
pub(crate) struct GlobalLayout {
    /// (role, index, host number).
    pub nodes: Vec<(Role, u32, u32)>,
    /// VIP host number when auto-assigned.
    pub auto_vip: Option<u32>,
    /// (pool index, first host, last host) for `from_global` pools.
    pub pools: Vec<(usize, u32, u32)>,
    /// First usable host number.
    pub first: u32,
    /// Last usable host number.
    pub last: u32,
    /// Host numbers taken.
    pub used: u64,
}

/// Computes the global layout without checking that it fits; callers compare against `first..=last`.
pub(crate) fn global_layout(provider: Provider, c: &crate::model::Cluster) -> GlobalLayout {
    let cat = catalogue(provider);
    let size: u64 = 1u64 << (32 - u32::from(c.network.global.prefix_len()));
    let first = cat.reserved_low + 1;
    let last = u32::try_from(size.saturating_sub(2)).unwrap_or(u32::MAX);
    let mut next = u64::from(first);
    let mut nodes = Vec::new();
    for role in [Role::Router, Role::Master, Role::Edge] {
        for i in 1..=c.nodes.get(role).count {
            nodes.push((role, i, u32::try_from(next).unwrap_or(u32::MAX)));
            next += 1;
        }
    }
    let mut used = next - u64::from(first);
    let auto_vip = if c.api_vip.is_none() {
        used += 1;
        Some(u32::try_from(next).unwrap_or(u32::MAX))
    } else {
        // A given VIP is validated to lie in the usable range; it takes an address all the same.
        used += 1;
        None
    };
    let mut top = i64::from(last);
    let mut pools = Vec::new();
    for (i, p) in c.pools.iter().enumerate() {
        if let Some(n) = p.from_global {
            let lo = top - i64::from(n) + 1;
            pools.push((
                i,
                u32::try_from(lo.max(0)).unwrap_or(0),
                u32::try_from(top.max(0)).unwrap_or(0),
            ));
            top = lo - 1;
            used += u64::from(n);
        }
    }
    GlobalLayout {
        nodes,
        auto_vip,
        pools,
        first,
        last,
        used,
    }
}

/// Host number of node `index` (1-based) of `role` on the internal network.
pub(crate) fn internal_host(c: &crate::model::Cluster, role: Role, index: u32) -> u64 {
    let g = c.nodes.get(role);
    u64::from(g.internal_offset.unwrap_or(role.default_internal_offset())) + u64::from(index) - 1
}

fn plan_cluster(spec: &Spec, c: &crate::model::Cluster) -> Result<PlanCluster, PlanError> {
    let provider = spec.platform.provider;
    let cat = catalogue(provider);
    let g = c.network.global;
    let fit = |what: String, net: &dyn std::fmt::Display| PlanError::DoesNotFit {
        cluster: c.name.clone(),
        what,
        network: net.to_string(),
    };
    let layout = global_layout(provider, c);
    let global_of = |n: u32, what: &str| nth(g, n).ok_or_else(|| fit(what.to_string(), &g));
    let internal_of = |role: Role, i: u32| {
        let h = internal_host(c, role, i);
        u32::try_from(h)
            .ok()
            .and_then(|h| nth(c.network.internal, h))
            .ok_or_else(|| fit(format!("{role} {i} internal address"), &c.network.internal))
    };

    let mut nodes = Vec::new();
    let mut globals = layout.nodes.iter();
    for role in Role::ALL {
        let grp = c.nodes.get(role);
        for i in 1..=grp.count {
            let global_address = if role.has_global_address() {
                let (_, _, h) = globals
                    .next()
                    .ok_or_else(|| fit(format!("{role} {i}"), &g))?;
                Some(global_of(*h, role.as_str())?)
            } else {
                None
            };
            nodes.push(PlanNode {
                name: format!("{}-{}-{}", c.name, role, i),
                role,
                index: i,
                global_address,
                internal_address: internal_of(role, i)?,
                cores: grp.cores,
                memory_gb: grp.memory_gb,
                disk_gb: grp.disk_gb,
                data_disk_gb: grp.data_disk_gb,
                os: grp.os.clone().unwrap_or_else(|| match role {
                    Role::Router => "vyos".to_string(),
                    _ => "ubuntu".to_string(),
                }),
            });
        }
    }
    let api_vip = match (c.api_vip, layout.auto_vip) {
        (Some(v), _) => v,
        (None, Some(h)) => global_of(h, "API VIP")?,
        (None, None) => return Err(fit("API VIP".into(), &g)),
    };
    let routers: Vec<&PlanNode> = nodes.iter().filter(|n| n.role == Role::Router).collect();
    let first_router = routers
        .first()
        .ok_or_else(|| PlanError::NoRouter(c.name.clone()))?;

    let mut pools = Vec::new();
    for (i, p) in c.pools.iter().enumerate() {
        let (source, span) =
            if let Some((_, lo, hi)) = layout.pools.iter().find(|(j, _, _)| *j == i) {
                let lo = global_of(*lo, "pool")?;
                let hi = global_of(*hi, "pool")?;
                (
                    PoolSource::Global,
                    Span {
                        start: u128::from(u32::from(lo)),
                        end: u128::from(u32::from(hi)),
                        v4: true,
                    },
                )
            } else if let Some(r) = p.range {
                (PoolSource::Range, Span::range(r))
            } else if let Some(n) = p.cidr {
                (PoolSource::Cidr, Span::net(n))
            } else {
                return Err(fit(format!("pool {}", p.name), &"any network"));
            };
        let (first, last) = span
            .usable_bounds(p.avoid_buggy_ips)
            .ok_or_else(|| fit(format!("pool {}", p.name), &span.first()))?;
        let next_hop = (p.cidr.is_some() && p.access == PoolAccess::Public && p.range.is_none())
            .then_some(first_router.global_address)
            .flatten();
        pools.push(PlanPool {
            name: p.name.clone(),
            access: p.access,
            source,
            range: format!("{first}-{last}"),
            first,
            last,
            cidr: p.cidr,
            addresses: u64::try_from(span.usable(p.avoid_buggy_ips)).unwrap_or(u64::MAX),
            avoid_buggy_ips: p.avoid_buggy_ips,
            auto_assign: p.auto_assign,
            next_hop,
        });
    }

    let mut bgp_sessions = Vec::new();
    for r in &routers {
        for e in nodes.iter().filter(|n| n.role == Role::Edge) {
            let (ra, ea) = match spec.routing.session_network {
                SessionNetwork::Internal => (r.internal_address, e.internal_address),
                SessionNetwork::Global => (
                    r.global_address
                        .ok_or_else(|| fit("router global address".into(), &g))?,
                    e.global_address
                        .ok_or_else(|| fit("edge global address".into(), &g))?,
                ),
            };
            bgp_sessions.push(PlanSession {
                router: r.name.clone(),
                router_address: ra,
                router_asn: spec.routing.router_asn.0,
                edge: e.name.clone(),
                edge_address: ea,
                edge_asn: spec.routing.cluster_asn.0,
                bfd: spec.routing.bfd.enabled,
            });
        }
    }

    let reserved: Vec<Ipv4Addr> = (1..=cat.reserved_low).filter_map(|h| nth(g, h)).collect();
    let usable = u64::from(layout.last.saturating_sub(layout.first)) + 1;
    let free = u32::try_from(usable.saturating_sub(layout.used)).unwrap_or(0);
    Ok(PlanCluster {
        name: c.name.clone(),
        env: c.env_label().to_string(),
        kubernetes_version: c.kubernetes_version.trim_start_matches('v').to_string(),
        networks: PlanNetworks {
            global: PlanGlobal {
                cidr: g.trunc(),
                netmask: g.prefix_len(),
                gateway: global_of(1, "gateway")?,
                reserved,
                first_usable: global_of(layout.first, "first usable")?,
                last_usable: global_of(layout.last, "last usable")?,
                free,
            },
            internal: PlanInternal {
                cidr: c.network.internal.trunc(),
                gateway: first_router.internal_address,
            },
            pod: c.network.pod.trunc(),
            service: c.network.service.trunc(),
        },
        nodes,
        api_vip,
        api_endpoint: format!("{api_vip}:{}", spec.edge.api_port),
        pools,
        bgp_sessions,
    })
}

impl Plan {
    /// The plan as pretty JSON with a trailing newline (byte-identical for an unchanged spec).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The JSON Schema of the plan (draft-07), as published in `docs/plan.schema.json`.
    pub fn json_schema() -> String {
        let schema = schemars::schema_for!(Plan);
        let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use crate::synth::{spec_text, SynthCluster};
    use std::net::{IpAddr, Ipv4Addr};

    fn one(c: SynthCluster) -> crate::plan::PlanCluster {
        let checked = crate::check("t.toml", &spec_text(&[c]));
        assert!(!checked.has_errors(), "{}", checked.report().short());
        checked.plan.unwrap().clusters.remove(0)
    }

    fn base() -> SynthCluster {
        SynthCluster {
            masters: 3,
            edges: 3,
            workers: 2,
            global_prefix: 27,
            from_global: vec![],
            routed_pool: false,
            explicit_vip: false,
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn sakuracloud_global_order_router_masters_edges_vip() {
        let c = one(base());
        let g: Vec<(String, Option<Ipv4Addr>)> = c
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.global_address))
            .collect();
        assert_eq!(g[0], ("c0-router-1".into(), Some(ip("198.18.0.4"))));
        assert_eq!(g[1], ("c0-master-1".into(), Some(ip("198.18.0.5"))));
        assert_eq!(g[3], ("c0-master-3".into(), Some(ip("198.18.0.7"))));
        assert_eq!(g[4], ("c0-edge-1".into(), Some(ip("198.18.0.8"))));
        assert_eq!(g[6], ("c0-edge-3".into(), Some(ip("198.18.0.10"))));
        assert_eq!(g[7], ("c0-worker-1".into(), None));
        assert_eq!(c.api_vip, ip("198.18.0.11"));
        assert_eq!(c.api_endpoint, "198.18.0.11:6443");
        assert_eq!(c.networks.global.gateway, ip("198.18.0.1"));
        assert_eq!(
            c.networks.global.reserved,
            vec![ip("198.18.0.1"), ip("198.18.0.2"), ip("198.18.0.3")]
        );
        assert_eq!(c.networks.global.first_usable, ip("198.18.0.4"));
        assert_eq!(c.networks.global.last_usable, ip("198.18.0.30"));
        assert_eq!(c.networks.global.free, 27 - 8);
    }

    #[test]
    fn internal_blocks_by_role() {
        let c = one(base());
        let by = |name: &str| {
            c.nodes
                .iter()
                .find(|n| n.name == name)
                .unwrap()
                .internal_address
        };
        assert_eq!(by("c0-router-1"), ip("192.168.100.1"));
        assert_eq!(by("c0-master-2"), ip("192.168.100.12"));
        assert_eq!(by("c0-edge-1"), ip("192.168.100.31"));
        assert_eq!(by("c0-worker-2"), ip("192.168.100.102"));
        assert_eq!(c.networks.internal.gateway, ip("192.168.100.1"));
    }

    #[test]
    fn pools_from_global_come_from_the_top_in_order() {
        let c = one(SynthCluster {
            from_global: vec![4, 2],
            routed_pool: true,
            ..base()
        });
        assert_eq!(c.pools[0].range, "198.18.0.27-198.18.0.30");
        assert_eq!(c.pools[0].addresses, 4);
        assert_eq!(c.pools[1].range, "198.18.0.25-198.18.0.26");
        assert_eq!(c.pools[2].range, "198.19.0.0-198.19.0.15");
        assert_eq!(
            c.pools[2].next_hop,
            Some(ip("198.18.0.4")),
            "a routed block goes to the router"
        );
        assert_eq!(c.pools[0].next_hop, None);
        assert_eq!(c.networks.global.free, 27 - 8 - 6);
    }

    #[test]
    fn explicit_vip_is_kept_and_not_reallocated() {
        let c = one(SynthCluster {
            explicit_vip: true,
            from_global: vec![2],
            ..base()
        });
        assert_eq!(c.api_vip, ip("198.18.0.28"));
        assert!(c.nodes.iter().all(|n| n.global_address != Some(c.api_vip)));
    }

    #[test]
    fn sessions_every_edge_to_the_router_over_internal() {
        let c = one(base());
        assert_eq!(c.bgp_sessions.len(), 3);
        let s = &c.bgp_sessions[1];
        assert_eq!(
            (s.edge.as_str(), s.edge_address),
            ("c0-edge-2", ip("192.168.100.32"))
        );
        assert_eq!(
            (s.router.as_str(), s.router_address),
            ("c0-router-1", ip("192.168.100.1"))
        );
        assert_eq!((s.edge_asn, s.router_asn), (4_200_000_001, 65020));
    }

    #[test]
    fn sessions_over_global_and_lab_reservations() {
        let text = spec_text(&[base()])
            .replace(
                "cluster_asn = 4200000001",
                "cluster_asn = 4200000001\nsession_network = \"global\"",
            )
            .replace("provider = \"sakuracloud\"", "provider = \"lab\"");
        let checked = crate::check("t.toml", &text);
        assert!(!checked.has_errors(), "{}", checked.report().short());
        assert_eq!(checked.diagnostics.len(), 1, "lab is reserved: one warning");
        let c = &checked.plan.unwrap().clusters[0];
        assert_eq!(
            c.networks.global.first_usable,
            ip("198.18.0.2"),
            "lab keeps only the gateway"
        );
        assert_eq!(c.bgp_sessions[0].router_address, ip("198.18.0.2"));
        assert_eq!(c.bgp_sessions[0].edge_address, ip("198.18.0.6"));
    }

    #[test]
    fn avoid_buggy_ips_trims_the_range() {
        let text = spec_text(&[base()]) + "\n[[clusters.pools]]\nname = \"vpn\"\naccess = \"vpn\"\ncidr = \"10.200.0.0/23\"\navoid_buggy_ips = true\n";
        let checked = crate::check("t.toml", &text);
        assert!(!checked.has_errors(), "{}", checked.report().short());
        let p = &checked.plan.unwrap().clusters[0].pools[0];
        assert_eq!(
            (p.first, p.last),
            (
                "10.200.0.1".parse::<IpAddr>().unwrap(),
                "10.200.1.254".parse::<IpAddr>().unwrap()
            )
        );
        assert_eq!(p.addresses, 512 - 4);
    }
}
