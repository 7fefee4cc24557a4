//! The configs of yagura's own daemons for one cluster, as TOML: `edge.toml` (BGP peers, VIPs, the API
//! listener and its backends), `gate.toml` and `watch.toml` (the spec's `[gate]` / `[watch]` sections resolved
//! for this cluster). They are shipped in ConfigMaps and, for the edge, by Ansible.
//!
//! The daemons' own config structs live in their crates (`yagura edge/gate/watch --config FILE`); these files
//! follow the spec's names and are kept in step with those structs as the daemons land.

use crate::{Cx, RenderError};
use serde_json::{json, Value};
use yagura_spec::model::Role;

fn toml(what: &str, v: &Value) -> Result<String, RenderError> {
    toml::to_string(v).map_err(|e| RenderError::Encode {
        what: what.to_string(),
        message: e.to_string(),
    })
}

fn secs(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// `edge.toml` for the edges of the cluster.
pub fn edge(cx: &Cx<'_>) -> Result<String, RenderError> {
    let c = cx.cluster;
    let rt = &cx.plan.routing;
    let e = &cx.spec.edge;
    let peers: Vec<Value> = cx
        .nodes(Role::Router)
        .map(|r| {
            let addr = c
                .bgp_sessions
                .iter()
                .find(|s| s.router == r.name)
                .map(|s| s.router_address)
                .unwrap_or(r.internal_address);
            json!({ "name": r.name, "address": addr.to_string(), "asn": rt.router_asn, "bfd": rt.bfd.is_some() })
        })
        .collect();
    let pools: Vec<Value> = c
        .pools
        .iter()
        .map(|p| json!({ "name": p.name, "range": p.range, "access": p.access, "auto_assign": p.auto_assign }))
        .collect();
    let backends: Vec<Value> = cx
        .nodes(Role::Master)
        .map(|m| json!(format!("{}:{}", m.internal_address, e.api_port)))
        .collect();
    let h = &e.api_health;
    let mut v = json!({
        "cluster": c.name,
        "asn": rt.cluster_asn,
        "announce": e.announce,
        "metrics_listen": format!("0.0.0.0:{}", e.metrics_port),
        "drain_timeout": secs(e.drain_timeout),
        "bgp": {
            "hold_time": format!("{}s", rt.hold_time_s),
            "keepalive": format!("{}s", rt.keepalive_s),
            "connect_retry": format!("{}s", rt.connect_retry_s),
            "graceful_restart": rt.graceful_restart,
            "restart_time": format!("{}s", rt.restart_time_s),
        },
        "peers": peers,
        "api": {
            "vip": c.api_vip.to_string(),
            "port": e.api_port,
            "balance": e.balance,
            "min_healthy": e.min_healthy,
            "backends": backends,
            "health": {
                "kind": h.kind, "path": h.path, "expect_status": h.expect_status,
                "interval": secs(h.interval), "timeout": secs(h.timeout), "rise": h.rise, "fall": h.fall,
                "insecure_skip_verify": h.insecure_skip_verify,
            },
        },
        "pools": pools,
    });
    if let Some(b) = &rt.bfd {
        v["bfd"] = json!({ "min_tx": format!("{}ms", b.min_tx_ms), "min_rx": format!("{}ms", b.min_rx_ms), "multiplier": b.multiplier });
    }
    if let Some(env) = &rt.md5_password_env {
        v["bgp"]["md5_password_env"] = json!(env);
    }
    if let Some(ca) = &h.ca_file {
        v["api"]["health"]["ca_file"] = json!(ca.to_string());
    }
    toml("edge.toml", &v)
}

/// True when gate runs in this cluster.
pub fn gate_here(cx: &Cx<'_>) -> bool {
    cx.spec
        .gate
        .as_ref()
        .is_some_and(|g| g.clusters.is_empty() || g.clusters.contains(&cx.cluster.name))
}

/// `gate.toml` for this cluster (its routes only).
pub fn gate(cx: &Cx<'_>) -> Result<Option<String>, RenderError> {
    let Some(g) = cx.spec.gate.as_ref().filter(|_| gate_here(cx)) else {
        return Ok(None);
    };
    let routes: Vec<Value> = g
        .routes
        .iter()
        .filter(|r| r.cluster == cx.cluster.name)
        .map(|r| {
            json!({
                "name": r.name, "host": r.host, "path": r.path, "upstream": r.upstream, "access": r.access,
                "allow_users": r.allow_users, "allow_orgs": r.allow_orgs, "allow_teams": r.allow_teams,
                "allow_groups": r.allow_groups,
            })
        })
        .collect();
    let mut v = json!({
        "listen_https": "0.0.0.0:8443",
        "listen_http": "0.0.0.0:8080",
        "metrics_listen": "0.0.0.0:9471",
        "auth_host": g.auth_host,
        "cookie_secret_file": "/etc/yagura/gate-secrets/cookie.key",
        "session_ttl": secs(g.session_ttl),
        "membership_recheck": secs(g.membership_recheck),
        "certificates_dir": "/etc/yagura/tls",
        "routes": routes,
    });
    if let Some(gh) = &g.github {
        v["github"] = json!({
            "org": gh.org, "client_id": gh.client_id, "api_url": gh.api_url, "web_url": gh.web_url,
            "client_secret_env": gh.client_secret_env.as_ref().map(ToString::to_string),
        });
    }
    if let Some(o) = &g.oidc {
        v["oidc"] = json!({
            "issuer": o.issuer, "client_id": o.client_id, "groups_claim": o.groups_claim,
            "client_secret_env": o.client_secret_env.as_ref().map(ToString::to_string),
        });
    }
    strip_nulls(&mut v);
    toml("gate.toml", &v).map(Some)
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
    let devices: Vec<Value> = w
        .devices
        .iter()
        .map(|d| {
            let mut v = json!({ "name": d.name, "address": d.address.to_string(), "sflow": d.sflow, "netflow": d.netflow, "syslog": d.syslog });
            if let Some(s) = &d.snmp {
                v["snmp"] = json!({
                    "version": s.version, "port": s.port, "interval": secs(s.interval),
                    "community_env": s.community_env.as_ref().map(ToString::to_string),
                    "user": s.user, "auth_protocol": s.auth_protocol,
                    "auth_password_env": s.auth_password_env.as_ref().map(ToString::to_string),
                    "privacy_protocol": s.privacy_protocol,
                    "privacy_password_env": s.privacy_password_env.as_ref().map(ToString::to_string),
                });
            }
            v
        })
        .collect();
    let mut v = json!({
        "listen_http": "0.0.0.0:9480",
        "listen_sflow": "0.0.0.0:6343",
        "listen_netflow": "0.0.0.0:2055",
        "listen_ipfix": "0.0.0.0:4739",
        "listen_syslog": "0.0.0.0:514",
        "data_dir": "/var/lib/yagura/watch",
        "retention": {
            "flows_raw": secs(w.retention.flows_raw), "flows_rollup": secs(w.retention.flows_rollup),
            "logs": secs(w.retention.logs), "max_disk_gb": w.retention.max_disk_gb,
        },
        "peers": w.peers.iter().map(|p| json!({ "name": p.name, "url": p.url })).collect::<Vec<_>>(),
        "devices": devices,
        "prometheus": w.prometheus.iter().map(|p| json!({ "name": p.name, "url": p.url, "volume_gb": p.volume_gb })).collect::<Vec<_>>(),
        "alertmanager": w.alertmanager.iter().map(|a| json!({ "name": a.name, "url": a.url })).collect::<Vec<_>>(),
        "heartbeats": w.heartbeats.iter().map(|h| json!({ "name": h.name, "period": secs(h.period), "grace": secs(h.grace) })).collect::<Vec<_>>(),
        "notify": w.notify.iter().map(|n| json!({ "name": n.name, "kind": n.kind, "url_env": n.url_env.as_ref().map(ToString::to_string), "url": n.url })).collect::<Vec<_>>(),
    });
    strip_nulls(&mut v);
    toml("watch.toml", &v).map(Some)
}

/// TOML has no null: drop absent values.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
