//! The plan as tables people read: one block per cluster with its nodes, VIP, pools and BGP sessions.

use crate::plan::{Plan, PlanCluster};
use std::fmt::Write;

fn table(out: &mut String, indent: &str, header: &[&str], rows: &[Vec<String>]) {
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::from(indent);
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                let pad = w.get(i).copied().unwrap_or(0);
                let _ = write!(s, "{c:<pad$}  ");
            }
        }
        s.trim_end().to_string() + "\n"
    };
    out.push_str(&line(header.to_vec()));
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
}

fn cluster(out: &mut String, c: &PlanCluster) {
    let g = &c.networks.global;
    let _ = writeln!(
        out,
        "cluster {} (env {}, Kubernetes {})",
        c.name, c.env, c.kubernetes_version
    );
    let _ = writeln!(
        out,
        "  networks: global {} (gateway {}, usable {}–{}, {} free) · internal {} (gateway {}) · pods {} · services {}",
        g.cidr, g.gateway, g.first_usable, g.last_usable, g.free, c.networks.internal.cidr, c.networks.internal.gateway, c.networks.pod, c.networks.service
    );
    out.push('\n');
    let rows: Vec<Vec<String>> = c
        .nodes
        .iter()
        .map(|n| {
            let mut size = format!("{}c/{}G/{}G", n.cores, n.memory_gb, n.disk_gb);
            if let Some(d) = n.data_disk_gb {
                let _ = write!(size, "+{d}G");
            }
            vec![
                n.name.clone(),
                n.role.to_string(),
                n.global_address
                    .map_or_else(|| "-".to_string(), |a| a.to_string()),
                n.internal_address.to_string(),
                size,
                n.os.clone(),
            ]
        })
        .collect();
    table(
        out,
        "  ",
        &["NODE", "ROLE", "GLOBAL", "INTERNAL", "SIZE", "OS"],
        &rows,
    );
    out.push('\n');
    let _ = writeln!(
        out,
        "  API VIP {}  (controlPlaneEndpoint {})",
        c.api_vip, c.api_endpoint
    );
    if !c.pools.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = c
            .pools
            .iter()
            .map(|p| {
                let mut notes = Vec::new();
                if let Some(n) = p.next_hop {
                    notes.push(format!("routed to {n}"));
                }
                if p.avoid_buggy_ips {
                    notes.push("avoids .0/.255".to_string());
                }
                if !p.auto_assign {
                    notes.push("on request only".to_string());
                }
                vec![
                    p.name.clone(),
                    serde_json::to_value(p.access)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    p.range.clone(),
                    p.addresses.to_string(),
                    notes.join(", "),
                ]
            })
            .collect();
        table(
            out,
            "  ",
            &["POOL", "ACCESS", "RANGE", "ADDRESSES", "NOTES"],
            &rows,
        );
    }
    if !c.bgp_sessions.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = c
            .bgp_sessions
            .iter()
            .map(|s| {
                vec![
                    format!("{} {} AS{}", s.edge, s.edge_address, s.edge_asn),
                    format!("{} {} AS{}", s.router, s.router_address, s.router_asn),
                    if s.bfd { "yes".into() } else { "no".into() },
                ]
            })
            .collect();
        table(out, "  ", &["BGP EDGE", "ROUTER", "BFD"], &rows);
    }
}

/// Renders the plan for a terminal (no colour, stable across runs).
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let p = &plan.platform;
    let _ = writeln!(out, "platform {} on {} zone {}", p.name, p.provider, p.zone);
    let s = &p.state;
    let _ = writeln!(
        out,
        "  state: s3://{}/{}/<cluster>/{} at {} (credentials from ${} and ${})",
        s.bucket,
        s.workspace_key_prefix.trim_end_matches('/'),
        s.key,
        s.endpoint,
        s.access_key_env,
        s.secret_key_env
    );
    let r = &plan.routing;
    let bfd = match &r.bfd {
        Some(b) => format!(
            "BFD {}ms×{} (detect {}ms)",
            b.min_tx_ms.max(b.min_rx_ms),
            b.multiplier,
            b.detect_time_ms
        ),
        None => "no BFD".to_string(),
    };
    let _ = writeln!(
        out,
        "  routing: edges AS{} → router AS{}, hold {}s / keepalive {}s, {}",
        r.cluster_asn, r.router_asn, r.hold_time_s, r.keepalive_s, bfd
    );
    for c in &plan.clusters {
        out.push('\n');
        cluster(&mut out, c);
    }
    out
}
