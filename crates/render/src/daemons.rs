//! The configs of yagura's own daemons, in the schemas the daemons load (`yagura edge|gate|watch --config
//! FILE`; every rendered file passes `yagura edge|gate|watch --check --config FILE`, see
//! `crates/yagura/tests/render_daemon_configs.rs`): one `edge.toml` per edge node (its own router ID, BGP
//! sessions and control address; the API VIP, the pool prefixes and the API server listener are the same on every
//! edge), and `gate.toml` / `watch.toml` for the clusters they run in.
//!
//! The structs here mirror the daemons' config structs (crates/edge/src/config.rs, crates/gate/src/config.rs,
//! crates/watch/src/config.rs) without depending on those crates: only the keys yagura renders, in the
//! daemons' spelling. Files the configs name (the Kubernetes CA, the cookie key, TLS certificates) live on the
//! host or in mounted Secrets; secrets appear only as environment variable names or file paths.

use crate::{Cx, RenderError};
use serde::Serialize;
use std::time::Duration;
use yagura_spec::model::{
    Access, AnnounceMode, Balance, HealthKind, NotifierKind, Role, SnmpAuth, SnmpPrivacy,
    SnmpVersion,
};
use yagura_spec::plan::PlanNode;

/// Where the edge's HTTPS health check finds the Kubernetes CA when the spec names none
/// (`edge.api_health.ca_file`); the edge playbook installs the cluster CA there.
pub const DEFAULT_KUBERNETES_CA: &str = "/etc/yagura/kubernetes-ca.crt";
/// The name of the edge's load-balancer pool (and VIP) for the API servers.
pub const API_POOL: &str = "api";
/// Where gate finds its TLS certificate (the `yagura-gate-tls` Secret cert-manager fills).
pub const GATE_TLS_DIR: &str = "/etc/yagura/gate-tls";
/// The gate's HTTPS, HTTP and metrics ports inside its pod.
pub const GATE_PORTS: (u16, u16, u16) = (8443, 8080, 9471);
/// The watch daemon's HTTP port (query API, `/metrics`, heartbeats).
pub const WATCH_HTTP_PORT: u16 = 9480;
/// Where the watch daemon keeps its store (a volume in its pod).
pub const WATCH_DATA_DIR: &str = "/var/lib/yagura/watch";
/// How often this watch pings each `[[watch.peers]]` (docs/watch-guard.md's numbers) …
const PEER_PING: Duration = Duration::from_secs(10);
/// … and the period (and grace) it expects their pings at.
const PEER_BEAT: Duration = Duration::from_secs(30);

fn toml<T: Serialize>(what: &str, v: &T) -> Result<String, RenderError> {
    toml::to_string(v).map_err(|e| RenderError::Encode {
        what: what.to_string(),
        message: e.to_string(),
    })
}

/// A duration as the daemons write it (`humantime`): the largest unit that divides it, `"2d"`, `"8h"`, `"300ms"`.
fn secs(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms != 0 && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

// ---------------------------------------------------------------------------------------------------------------
// edge

#[derive(Serialize)]
struct EdgeFile {
    asn: u32,
    router_id: String,
    listen: Vec<String>,
    control: String,
    interface: &'static str,
    manage_addresses: bool,
    drain_wait: String,
    drain_timeout: String,
    bfd: EdgeBfd,
    peers: Vec<EdgePeer>,
    vips: Vec<EdgeVip>,
    listeners: Vec<EdgeListener>,
    pools: Vec<EdgePool>,
}

#[derive(Serialize)]
struct EdgeBfd {
    enabled: bool,
    interval: String,
    receive_interval: String,
    multiplier: u8,
}

#[derive(Serialize)]
struct EdgePeer {
    name: String,
    address: String,
    asn: u32,
    local_address: String,
    mode: &'static str,
    hold_time: String,
    keepalive: String,
    connect_retry: String,
    connect_retry_max: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    md5_password_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bfd: Option<EdgeBfdOverride>,
    #[serde(skip_serializing_if = "Option::is_none")]
    graceful_restart: Option<EdgeGracefulRestart>,
}

#[derive(Serialize)]
struct EdgeBfdOverride {
    enabled: bool,
}

#[derive(Serialize)]
struct EdgeGracefulRestart {
    enabled: bool,
    restart_time: String,
}

#[derive(Serialize)]
struct EdgeVip {
    name: String,
    prefix: String,
    pool: String,
    announce: &'static str,
}

#[derive(Serialize)]
struct EdgeListener {
    name: &'static str,
    address: String,
    pool: &'static str,
}

#[derive(Serialize)]
struct EdgePool {
    name: &'static str,
    balance: &'static str,
    min_healthy: u32,
    health: EdgeHealth,
    backends: Vec<EdgeBackend>,
}

#[derive(Serialize)]
struct EdgeHealth {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expect_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_file: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    insecure: bool,
    interval: String,
    timeout: String,
    rise: u32,
    fall: u32,
}

#[derive(Serialize)]
struct EdgeBackend {
    name: String,
    address: String,
}

/// The CA file the edges' HTTPS health check of the API servers uses, when it uses one: the spec's
/// `edge.api_health.ca_file`, else [`DEFAULT_KUBERNETES_CA`]; `None` for TCP/HTTP checks or
/// `insecure_skip_verify`.
pub fn edge_ca_file(cx: &Cx<'_>) -> Option<String> {
    let h = &cx.spec.edge.api_health;
    (h.kind == HealthKind::Https && !h.insecure_skip_verify).then(|| {
        h.ca_file
            .as_ref()
            .map_or_else(|| DEFAULT_KUBERNETES_CA.to_string(), ToString::to_string)
    })
}

/// The prefixes every edge of the cluster announces: the API VIP (`/32`, announced while at least
/// `min_healthy` API servers pass the health check), then each pool's blocks (always announced).
fn edge_vips(cx: &Cx<'_>) -> Vec<EdgeVip> {
    let c = cx.cluster;
    let mut v = vec![EdgeVip {
        name: API_POOL.into(),
        prefix: format!("{}/32", c.api_vip),
        pool: API_POOL.into(),
        announce: "hook",
    }];
    for (i, p) in c.pools.iter().enumerate() {
        let blocks: Vec<ipnet::IpNet> = match (p.cidr, p.first, p.last) {
            (Some(n), _, _) => vec![n.trunc()],
            (None, std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => {
                ipnet::Ipv4Subnets::new(a, b, 0)
                    .map(ipnet::IpNet::V4)
                    .collect()
            }
            // The router accepts IPv4 only (see `router::accepted`).
            _ => Vec::new(),
        };
        let base = if p.name.len() <= 24 {
            format!("pool-{}", p.name)
        } else {
            format!("pool{i}")
        };
        let many = blocks.len() > 1;
        for (j, b) in blocks.into_iter().enumerate() {
            v.push(EdgeVip {
                name: if many {
                    format!("{base}-{j}")
                } else {
                    base.clone()
                },
                prefix: b.to_string(),
                pool: p.name.clone(),
                announce: "always",
            });
        }
    }
    v
}

/// `edge.toml` for the edge node `node` of the cluster: BGP to the cluster's router(s) from the node's session
/// address, the API VIP and the pools, and the API server listener (VIP:port → every master's port, HTTPS
/// `/readyz` health check against the Kubernetes CA).
pub fn edge(cx: &Cx<'_>, node: &PlanNode) -> Result<String, RenderError> {
    let c = cx.cluster;
    let rt = &cx.plan.routing;
    let e = &cx.spec.edge;
    if e.announce == AnnounceMode::L2 {
        return Err(RenderError::Unsupported(
            "edge.announce = \"l2\": yagura edge announces VIPs by BGP only; use \"bgp\"".into(),
        ));
    }
    let sessions: Vec<_> = c
        .bgp_sessions
        .iter()
        .filter(|s| s.edge == node.name)
        .collect();
    let router_id = sessions
        .first()
        .map_or(node.internal_address, |s| s.edge_address);
    let bfd = match &rt.bfd {
        Some(b) => EdgeBfd {
            enabled: true,
            interval: secs(Duration::from_millis(b.min_tx_ms)),
            receive_interval: secs(Duration::from_millis(b.min_rx_ms)),
            multiplier: u8::try_from(b.multiplier).map_err(|_| {
                RenderError::Mismatch(format!("BFD multiplier {} above 255", b.multiplier))
            })?,
        },
        None => EdgeBfd {
            enabled: false,
            interval: secs(Duration::from_millis(300)),
            receive_interval: secs(Duration::from_millis(300)),
            multiplier: 3,
        },
    };
    let retry = Duration::from_secs(rt.connect_retry_s);
    let peers = sessions
        .iter()
        .map(|s| EdgePeer {
            name: s.router.clone(),
            address: s.router_address.to_string(),
            asn: s.router_asn,
            local_address: s.edge_address.to_string(),
            mode: "both",
            hold_time: secs(Duration::from_secs(rt.hold_time_s)),
            keepalive: secs(Duration::from_secs(rt.keepalive_s)),
            connect_retry: secs(retry),
            connect_retry_max: secs(retry.max(Duration::from_secs(30))),
            md5_password_env: rt.md5_password_env.clone(),
            bfd: (s.bfd != rt.bfd.is_some()).then_some(EdgeBfdOverride { enabled: s.bfd }),
            graceful_restart: rt.graceful_restart.then(|| EdgeGracefulRestart {
                enabled: true,
                restart_time: secs(Duration::from_secs(rt.restart_time_s)),
            }),
        })
        .collect();
    let h = &e.api_health;
    let http = h.kind != HealthKind::Tcp;
    let health = EdgeHealth {
        kind: match h.kind {
            HealthKind::Tcp => "tcp",
            HealthKind::Http => "http",
            HealthKind::Https => "https",
        },
        path: http.then(|| h.path.clone()),
        expect_status: http.then_some(h.expect_status),
        ca_file: edge_ca_file(cx),
        insecure: h.kind == HealthKind::Https && h.insecure_skip_verify,
        interval: secs(h.interval),
        timeout: secs(h.timeout),
        rise: h.rise,
        fall: h.fall,
    };
    let backends = cx
        .nodes(Role::Master)
        .map(|m| EdgeBackend {
            name: m.name.clone(),
            address: format!("{}:{}", m.internal_address, e.api_port),
        })
        .collect();
    let file = EdgeFile {
        asn: rt.cluster_asn,
        router_id: router_id.to_string(),
        listen: vec![format!("{router_id}:179")],
        control: format!("{}:{}", node.internal_address, e.metrics_port),
        interface: "lo",
        manage_addresses: true,
        drain_wait: secs(Duration::from_secs(5)),
        drain_timeout: secs(e.drain_timeout),
        bfd,
        peers,
        vips: edge_vips(cx),
        listeners: vec![EdgeListener {
            name: API_POOL,
            address: format!("{}:{}", c.api_vip, e.api_port),
            pool: API_POOL,
        }],
        pools: vec![EdgePool {
            name: API_POOL,
            balance: match e.balance {
                Balance::RoundRobin => "round_robin",
                Balance::LeastConn => "least_connections",
                Balance::Maglev => "maglev",
            },
            min_healthy: e.min_healthy,
            health,
            backends,
        }],
    };
    let head = format!(
        "# yagura edge on {} (cluster {}): rendered by yagura render; do not edit.\n\
         # Check: yagura edge --check --config FILE\n",
        node.name, c.name
    );
    Ok(head + &toml("edge.toml", &file)?)
}

/// Every edge node of the cluster with its `edge.toml`, in node order.
pub fn edges(cx: &Cx<'_>) -> Result<Vec<(String, String)>, RenderError> {
    cx.nodes(Role::Edge)
        .map(|n| Ok((n.name.clone(), edge(cx, n)?)))
        .collect()
}

// ---------------------------------------------------------------------------------------------------------------
// gate

#[derive(Serialize)]
struct GateFile {
    auth_host: String,
    cookie_secret_file: String,
    session_ttl: String,
    membership_recheck: String,
    listen: GateListen,
    certificates: Vec<GateCertificate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    github: Option<GateGithub>,
    #[serde(skip_serializing_if = "Option::is_none")]
    oidc: Option<GateOidc>,
    routes: Vec<GateRoute>,
}

#[derive(Serialize)]
struct GateListen {
    https: String,
    http: String,
    metrics: String,
    public_https_port: u16,
}

#[derive(Serialize)]
struct GateCertificate {
    cert_file: String,
    key_file: String,
}

#[derive(Serialize)]
struct GateGithub {
    client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret_file: Option<String>,
    org: String,
    api_url: String,
    web_url: String,
}

#[derive(Serialize)]
struct GateOidc {
    issuer: String,
    client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret_file: Option<String>,
    groups_claim: String,
}

#[derive(Serialize)]
struct GateRoute {
    name: String,
    host: String,
    path: String,
    upstream: String,
    access: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allow_users: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allow_orgs: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allow_teams: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allow_groups: Vec<String>,
}

/// True when gate runs in this cluster.
pub fn gate_here(cx: &Cx<'_>) -> bool {
    cx.spec
        .gate
        .as_ref()
        .is_some_and(|g| g.clusters.is_empty() || g.clusters.contains(&cx.cluster.name))
}

/// The gate's cookie key file (from the spec; the `yagura-gate` Secret is mounted there).
pub fn gate_cookie_file(cx: &Cx<'_>) -> Option<String> {
    cx.spec
        .gate
        .as_ref()
        .map(|g| g.cookie_secret_file.to_string())
}

/// `gate.toml` for this cluster (its routes only).
pub fn gate(cx: &Cx<'_>) -> Result<Option<String>, RenderError> {
    let Some(g) = cx.spec.gate.as_ref().filter(|_| gate_here(cx)) else {
        return Ok(None);
    };
    let routes = g
        .routes
        .iter()
        .filter(|r| r.cluster == cx.cluster.name)
        .map(|r| GateRoute {
            name: r.name.clone(),
            host: r.host.clone(),
            path: r.path.clone(),
            upstream: r.upstream.clone(),
            access: match r.access {
                Access::Public => "public",
                Access::SignedIn => "signed_in",
                Access::Allow => "allow",
            },
            allow_users: r.allow_users.clone(),
            allow_orgs: r.allow_orgs.clone(),
            allow_teams: r.allow_teams.clone(),
            allow_groups: r.allow_groups.clone(),
        })
        .collect();
    let (https, http, metrics) = GATE_PORTS;
    let file = GateFile {
        auth_host: g.auth_host.clone(),
        cookie_secret_file: g.cookie_secret_file.to_string(),
        session_ttl: secs(g.session_ttl),
        membership_recheck: secs(g.membership_recheck),
        listen: GateListen {
            https: format!("0.0.0.0:{https}"),
            http: format!("0.0.0.0:{http}"),
            metrics: format!("0.0.0.0:{metrics}"),
            public_https_port: 443,
        },
        certificates: vec![GateCertificate {
            cert_file: format!("{GATE_TLS_DIR}/tls.crt"),
            key_file: format!("{GATE_TLS_DIR}/tls.key"),
        }],
        github: g.github.as_ref().map(|gh| GateGithub {
            client_id: gh.client_id.clone(),
            client_secret_env: gh.client_secret_env.as_ref().map(ToString::to_string),
            client_secret_file: gh.client_secret_file.as_ref().map(ToString::to_string),
            org: gh.org.clone(),
            api_url: gh.api_url.clone(),
            web_url: gh.web_url.clone(),
        }),
        oidc: g.oidc.as_ref().map(|o| GateOidc {
            issuer: o.issuer.clone(),
            client_id: o.client_id.clone(),
            client_secret_env: o.client_secret_env.as_ref().map(ToString::to_string),
            client_secret_file: o.client_secret_file.as_ref().map(ToString::to_string),
            groups_claim: o.groups_claim.clone(),
        }),
        routes,
    };
    let head = format!(
        "# yagura gate in cluster {}: rendered by yagura render; do not edit.\n\
         # Check: yagura gate --check --config FILE\n",
        cx.cluster.name
    );
    Ok(Some(head + &toml("gate.toml", &file)?))
}

// ---------------------------------------------------------------------------------------------------------------
// watch

#[derive(Serialize)]
struct WatchFile {
    listen: WatchListen,
    storage: WatchStorage,
    retention: WatchRetention,
    http: WatchHttp,
    #[serde(skip_serializing_if = "Option::is_none")]
    snmp: Option<WatchSnmp>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    prometheus: Vec<WatchTarget>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    alertmanager: Vec<WatchTarget>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    heartbeats: Vec<WatchHeartbeat>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    peers: Vec<WatchPeer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alerts: Option<WatchAlerts>,
}

#[derive(Serialize)]
struct WatchListen {
    sflow: Vec<String>,
    netflow: Vec<String>,
    syslog_udp: Vec<String>,
    syslog_tcp: Vec<String>,
}

#[derive(Serialize)]
struct WatchStorage {
    path: String,
    max_size: String,
}

#[derive(Serialize)]
struct WatchRetention {
    flows_raw: String,
    flows_rollup: String,
    logs: String,
}

#[derive(Serialize)]
struct WatchHttp {
    listen: String,
}

#[derive(Serialize)]
struct WatchSnmp {
    devices: Vec<WatchSnmpDevice>,
}

#[derive(Serialize)]
struct WatchSnmpDevice {
    name: String,
    address: String,
    port: u16,
    version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    community_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_protocol: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_password_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    privacy_protocol: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    privacy_password_env: Option<String>,
    interval: String,
}

#[derive(Serialize)]
struct WatchTarget {
    name: String,
    url: String,
}

#[derive(Serialize)]
struct WatchHeartbeat {
    name: String,
    period: String,
    grace: String,
}

#[derive(Serialize)]
struct WatchPeer {
    name: String,
    url: String,
    heartbeat: String,
    period: String,
}

#[derive(Serialize)]
struct WatchAlerts {
    notifiers: Vec<WatchNotifier>,
}

#[derive(Serialize)]
struct WatchNotifier {
    name: String,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url_env: Option<String>,
}

/// The heartbeat watch expects from Alertmanager's Watchdog (the first heartbeat whose name mentions it, else
/// the first one).
pub fn watchdog_heartbeat(cx: &Cx<'_>) -> Option<String> {
    let w = cx.spec.watch.as_ref()?;
    w.heartbeats
        .iter()
        .find(|h| h.name.contains("watchdog"))
        .or_else(|| w.heartbeats.first())
        .map(|h| h.name.clone())
}

/// The name this watch has in its peers' `[[heartbeats]]`: `<cluster>-watch` (the spec's peers follow it, e.g.
/// `prd-watch`).
pub fn watch_self_name(cluster: &str) -> String {
    format!("{cluster}-watch")
}

/// `watch.toml` when watch runs in this cluster.
pub fn watch(cx: &Cx<'_>) -> Result<Option<String>, RenderError> {
    let Some(w) = cx
        .spec
        .watch
        .as_ref()
        .filter(|w| w.cluster == cx.cluster.name)
    else {
        return Ok(None);
    };
    let any = |a: &str| vec![a.to_string()];
    let devices: Vec<WatchSnmpDevice> = w
        .devices
        .iter()
        .filter_map(|d| d.snmp.as_ref().map(|s| (d, s)))
        .map(|(d, s)| WatchSnmpDevice {
            name: d.name.clone(),
            address: d.address.to_string(),
            port: s.port,
            version: match s.version {
                SnmpVersion::V2c => "2c",
                SnmpVersion::V3 => "3",
            },
            community_env: s.community_env.as_ref().map(ToString::to_string),
            user: s.user.clone(),
            auth_protocol: s.auth_protocol.map(|a| match a {
                SnmpAuth::Sha => "sha",
                SnmpAuth::Sha256 => "sha256",
                SnmpAuth::Sha512 => "sha512",
            }),
            auth_password_env: s.auth_password_env.as_ref().map(ToString::to_string),
            privacy_protocol: s.privacy_protocol.map(|p| match p {
                SnmpPrivacy::Aes => "aes",
                SnmpPrivacy::Aes256 => "aes256",
            }),
            privacy_password_env: s.privacy_password_env.as_ref().map(ToString::to_string),
            interval: secs(s.interval),
        })
        .collect();
    let mut heartbeats: Vec<WatchHeartbeat> = w
        .heartbeats
        .iter()
        .map(|h| WatchHeartbeat {
            name: h.name.clone(),
            period: secs(h.period),
            grace: secs(h.grace),
        })
        .collect();
    // Each peer pings us; we expect its beats (unless the spec already lists a heartbeat by its name).
    for p in &w.peers {
        if !w.heartbeats.iter().any(|h| h.name == p.name) {
            heartbeats.push(WatchHeartbeat {
                name: p.name.clone(),
                period: secs(PEER_BEAT),
                grace: secs(PEER_BEAT),
            });
        }
    }
    let me = watch_self_name(&w.cluster);
    let file = WatchFile {
        listen: WatchListen {
            sflow: any("0.0.0.0:6343"),
            netflow: vec!["0.0.0.0:2055".into(), "0.0.0.0:4739".into()],
            syslog_udp: any("0.0.0.0:514"),
            syslog_tcp: any("0.0.0.0:514"),
        },
        storage: WatchStorage {
            path: format!("{WATCH_DATA_DIR}/watch.db"),
            max_size: format!("{}GB", w.retention.max_disk_gb),
        },
        retention: WatchRetention {
            flows_raw: secs(w.retention.flows_raw),
            flows_rollup: secs(w.retention.flows_rollup),
            logs: secs(w.retention.logs),
        },
        http: WatchHttp {
            listen: format!("0.0.0.0:{WATCH_HTTP_PORT}"),
        },
        snmp: (!devices.is_empty()).then_some(WatchSnmp { devices }),
        prometheus: w
            .prometheus
            .iter()
            .map(|p| WatchTarget {
                name: p.name.clone(),
                url: p.url.clone(),
            })
            .collect(),
        alertmanager: w
            .alertmanager
            .iter()
            .map(|a| WatchTarget {
                name: a.name.clone(),
                url: a.url.clone(),
            })
            .collect(),
        heartbeats,
        peers: w
            .peers
            .iter()
            .map(|p| WatchPeer {
                name: p.name.clone(),
                url: p.url.clone(),
                heartbeat: me.clone(),
                period: secs(PEER_PING),
            })
            .collect(),
        alerts: (!w.notify.is_empty()).then(|| WatchAlerts {
            notifiers: w
                .notify
                .iter()
                .map(|n| WatchNotifier {
                    name: n.name.clone(),
                    kind: match n.kind {
                        NotifierKind::Slack => "slack",
                        NotifierKind::Discord => "discord",
                        NotifierKind::Webhook => "webhook",
                        NotifierKind::Alertmanager => "alertmanager",
                    },
                    url: n.url.clone(),
                    url_env: n.url_env.as_ref().map(ToString::to_string),
                })
                .collect(),
        }),
    };
    let head = format!(
        "# yagura watch in cluster {}: rendered by yagura render; do not edit.\n\
         # Check: yagura watch --check --config FILE\n",
        cx.cluster.name
    );
    Ok(Some(head + &toml("watch.toml", &file)?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::{render, Options};

    fn example(edit: impl Fn(String) -> String) -> (yagura_spec::model::Spec, yagura_spec::Plan) {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/ictsc2020.toml");
        let text = edit(std::fs::read_to_string(path).unwrap());
        let checked = yagura_spec::check("ictsc2020.toml", &text);
        (checked.spec.unwrap(), checked.plan.unwrap())
    }

    #[test]
    fn durations_in_the_largest_whole_unit() {
        assert_eq!(secs(Duration::from_secs(2 * 86400)), "2d");
        assert_eq!(secs(Duration::from_secs(8 * 3600)), "8h");
        assert_eq!(secs(Duration::from_secs(90)), "90s");
        assert_eq!(secs(Duration::from_secs(300)), "5m");
        assert_eq!(secs(Duration::from_millis(300)), "300ms");
        assert_eq!(secs(Duration::ZERO), "0ms");
    }

    #[test]
    fn one_edge_config_per_edge_node_with_its_own_identity() {
        let (spec, plan) = example(|t| t);
        let tree = render(&spec, &plan, &Options::new("examples", "out")).unwrap();
        assert!(tree.get("prd/ansible/files/edge.toml").is_none());
        for (i, addr) in ["192.168.100.31", "192.168.100.32", "192.168.100.33"]
            .iter()
            .enumerate()
        {
            let t = tree
                .get(&format!("prd/ansible/files/edge/prd-edge-{}.toml", i + 1))
                .unwrap();
            assert!(t.contains(&format!("router_id = \"{addr}\"")), "{t}");
            assert!(t.contains(&format!("local_address = \"{addr}\"")), "{t}");
            assert!(t.contains(&format!("control = \"{addr}:9470\"")), "{t}");
            // The same VIPs, listener and pool on every edge.
            assert!(t.contains("prefix = \"203.0.113.11/32\"\npool = \"api\"\nannounce = \"hook\""));
            assert!(t.contains("address = \"203.0.113.11:6443\""));
            assert!(t.contains("address = \"192.168.100.13:6443\""));
        }
    }

    #[test]
    fn every_announced_prefix_is_one_the_router_accepts() {
        // A pool given as a range that is not one block becomes several prefixes, like the router's list.
        let (spec, plan) = example(|t| {
            t.replacen(
                "name = \"global\"\ncidr = \"198.51.100.16/28\"",
                "name = \"global\"\nrange = \"198.51.100.17-198.51.100.29\"",
                1,
            )
        });
        let opts = Options::new("examples", "out");
        for c in &plan.clusters {
            let cx = Cx {
                spec: &spec,
                plan: &plan,
                cluster: c,
                opts: &opts,
            };
            let accepted: Vec<String> = crate::router::accepted(&cx)
                .iter()
                .map(|(n, _)| n.to_string())
                .collect();
            let vips: Vec<String> = edge_vips(&cx).into_iter().map(|v| v.prefix).collect();
            assert_eq!(vips, accepted, "cluster {}", c.name);
            if c.name == "dev" {
                assert!(vips.len() > 3, "{vips:?}");
            }
        }
    }

    #[test]
    fn l2_announcement_is_refused_not_rendered_wrong() {
        let (mut spec, plan) = example(|t| t);
        spec.edge.announce = AnnounceMode::L2;
        let e = render(&spec, &plan, &Options::new("examples", "out"));
        assert!(matches!(e, Err(RenderError::Unsupported(_))), "{e:?}");
    }
}
