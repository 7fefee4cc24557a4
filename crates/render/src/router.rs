//! The cluster's router, twice: VyOS 1.4 `set` commands (`router/vyos.commands`, loaded by the router
//! playbook) and the same routing policy as an FRR `frr.conf` (`router/frr.conf`, for a Linux/FRR router and
//! checked with `vtysh -C`). BGP to every edge with BFD, ECMP over all of them (`maximum-paths`), a blackhole
//! route for every pool so the router never loops pool traffic back to the provider, and a prefix list that
//! accepts only the cluster's API VIP and pools from the edges.

use crate::{Cx, Tree};
use ipnet::IpNet;
use std::fmt::Write as _;
use yagura_spec::model::Role;

/// Prefix-list / route-map name for what the router accepts from the edges.
pub const IMPORT: &str = "EDGES-IN";
/// Route-map name for what the router sends to the edges (nothing).
pub const EXPORT: &str = "EDGES-OUT";

/// The blocks the router accepts from the edges: (prefix, accept more-specifics up to /32).
pub fn accepted(cx: &Cx<'_>) -> Vec<(IpNet, bool)> {
    let c = cx.cluster;
    let mut v = vec![(IpNet::from(std::net::IpAddr::V4(c.api_vip)), false)];
    for p in &c.pools {
        match (p.cidr, p.first, p.last) {
            (Some(n), _, _) => v.push((n.trunc(), true)),
            (None, std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => {
                // A range without a block: the smallest set of blocks covering it.
                for n in ipnet::Ipv4Subnets::new(a, b, 0) {
                    v.push((IpNet::V4(n), true));
                }
            }
            _ => {}
        }
    }
    v.retain(|(n, _)| n.addr().is_ipv4());
    v
}

/// The pools' blocks (blackholed on the router).
pub fn pool_blocks(cx: &Cx<'_>) -> Vec<IpNet> {
    accepted(cx).into_iter().skip(1).map(|(n, _)| n).collect()
}

/// Renders `<cluster>/router/vyos.commands` and `<cluster>/router/frr.conf`.
pub fn render(cx: &Cx<'_>, tree: &mut Tree) {
    for r in cx.nodes(Role::Router) {
        let suffix = if r.index == 1 {
            String::new()
        } else {
            format!("-{}", r.index)
        };
        tree.add(
            cx.path(&format!("router/vyos{suffix}.commands")),
            vyos(cx, r),
        );
        tree.add(cx.path(&format!("router/frr{suffix}.conf")), frr(cx, r));
    }
}

fn vyos(cx: &Cx<'_>, r: &yagura_spec::plan::PlanNode) -> String {
    let c = cx.cluster;
    let rt = &cx.plan.routing;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# VyOS 1.4 configuration of {} (cluster {}): rendered by yagura render; load with `configure`, then these, then `commit; save`.",
        r.name, c.name
    );
    let _ = writeln!(s, "set system host-name '{}'", r.name);
    if let Some(ga) = r.global_address {
        let _ = writeln!(
            s,
            "set interfaces ethernet eth0 address '{ga}/{}'",
            c.networks.global.netmask
        );
        let _ = writeln!(s, "set interfaces ethernet eth0 description 'global'");
        let _ = writeln!(s, "set interfaces ethernet eth0 ip enable-proxy-arp");
        let _ = writeln!(
            s,
            "set protocols static route 0.0.0.0/0 next-hop {}",
            c.networks.global.gateway
        );
    }
    let _ = writeln!(
        s,
        "set interfaces ethernet eth1 address '{}/{}'",
        r.internal_address,
        c.networks.internal.cidr.prefix_len()
    );
    let _ = writeln!(s, "set interfaces ethernet eth1 description 'internal'");
    let _ = writeln!(
        s,
        "set nat source rule 100 outbound-interface name 'eth0'\nset nat source rule 100 source address '{}'\nset nat source rule 100 translation address 'masquerade'",
        c.networks.internal.cidr
    );
    for n in pool_blocks(cx) {
        let _ = writeln!(s, "set protocols static route {n} blackhole distance '254'");
    }
    for (i, (n, le)) in accepted(cx).iter().enumerate() {
        let rule = (i + 1) * 10;
        let _ = writeln!(
            s,
            "set policy prefix-list {IMPORT} rule {rule} action 'permit'"
        );
        let _ = writeln!(
            s,
            "set policy prefix-list {IMPORT} rule {rule} prefix '{n}'"
        );
        if *le && n.prefix_len() < 32 {
            let _ = writeln!(s, "set policy prefix-list {IMPORT} rule {rule} le '32'");
        }
    }
    let _ = writeln!(s, "set policy route-map {IMPORT} rule 10 action 'permit'");
    let _ = writeln!(
        s,
        "set policy route-map {IMPORT} rule 10 match ip address prefix-list '{IMPORT}'"
    );
    let _ = writeln!(s, "set policy route-map {EXPORT} rule 10 action 'deny'");
    let _ = writeln!(s, "set protocols bgp system-as '{}'", rt.router_asn);
    let _ = writeln!(
        s,
        "set protocols bgp parameters router-id '{}'",
        r.internal_address
    );
    if rt.graceful_restart {
        let _ = writeln!(
            s,
            "set protocols bgp parameters graceful-restart restart-time '{}'",
            rt.restart_time_s
        );
    }
    let sessions: Vec<_> = c
        .bgp_sessions
        .iter()
        .filter(|x| x.router == r.name)
        .collect();
    let _ = writeln!(
        s,
        "set protocols bgp address-family ipv4-unicast maximum-paths ebgp '{}'",
        sessions.len().max(1)
    );
    if let Some(b) = &rt.bfd {
        let _ = writeln!(
            s,
            "set protocols bfd profile edges interval transmit '{}'\nset protocols bfd profile edges interval receive '{}'\nset protocols bfd profile edges interval multiplier '{}'",
            b.min_tx_ms,
            b.min_rx_ms,
            b.multiplier
        );
    }
    for x in &sessions {
        let n = format!("set protocols bgp neighbor {}", x.edge_address);
        let _ = writeln!(s, "{n} description '{}'", x.edge);
        let _ = writeln!(s, "{n} remote-as '{}'", x.edge_asn);
        let _ = writeln!(
            s,
            "{n} timers holdtime '{}'\n{n} timers keepalive '{}'\n{n} timers connect '{}'",
            rt.hold_time_s, rt.keepalive_s, rt.connect_retry_s
        );
        if x.bfd && rt.bfd.is_some() {
            let _ = writeln!(s, "{n} bfd profile 'edges'");
        }
        let _ = writeln!(
            s,
            "{n} address-family ipv4-unicast route-map import '{IMPORT}'\n{n} address-family ipv4-unicast route-map export '{EXPORT}'"
        );
        if let Some(env) = &rt.md5_password_env {
            let _ = writeln!(
                s,
                "# TCP MD5: the playbook adds `{n} password` with the value of ${env}"
            );
        }
    }
    s
}

fn frr(cx: &Cx<'_>, r: &yagura_spec::plan::PlanNode) -> String {
    let c = cx.cluster;
    let rt = &cx.plan.routing;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "! FRR configuration of {} (cluster {}): rendered by yagura render; do not edit.",
        r.name, c.name
    );
    let _ = writeln!(s, "frr defaults traditional\nhostname {}\nlog syslog informational\nservice integrated-vtysh-config\n!", r.name);
    for n in pool_blocks(cx) {
        let _ = writeln!(s, "ip route {n} blackhole 254");
    }
    let _ = writeln!(s, "!");
    for (i, (n, le)) in accepted(cx).iter().enumerate() {
        let more = if *le && n.prefix_len() < 32 {
            " le 32"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "ip prefix-list {IMPORT} seq {} permit {n}{more}",
            (i + 1) * 10
        );
    }
    let _ = writeln!(s, "!\nroute-map {IMPORT} permit 10\n match ip address prefix-list {IMPORT}\nexit\n!\nroute-map {EXPORT} deny 10\nexit\n!");
    let sessions: Vec<_> = c
        .bgp_sessions
        .iter()
        .filter(|x| x.router == r.name)
        .collect();
    let _ = writeln!(s, "router bgp {}", rt.router_asn);
    let _ = writeln!(s, " bgp router-id {}", r.internal_address);
    let _ = writeln!(s, " bgp bestpath as-path multipath-relax");
    if rt.graceful_restart {
        let _ = writeln!(
            s,
            " bgp graceful-restart\n bgp graceful-restart restart-time {}",
            rt.restart_time_s
        );
    }
    let _ = writeln!(s, " timers bgp {} {}", rt.keepalive_s, rt.hold_time_s);
    let _ = writeln!(
        s,
        " neighbor EDGES peer-group\n neighbor EDGES remote-as {}",
        rt.cluster_asn
    );
    let _ = writeln!(s, " neighbor EDGES timers connect {}", rt.connect_retry_s);
    if rt.bfd.is_some() {
        let _ = writeln!(s, " neighbor EDGES bfd profile edges");
    }
    if let Some(env) = &rt.md5_password_env {
        let _ = writeln!(
            s,
            " ! TCP MD5: add `neighbor EDGES password` with the value of ${env} at deploy time"
        );
    }
    for x in &sessions {
        let _ = writeln!(s, " neighbor {} peer-group EDGES", x.edge_address);
        let _ = writeln!(s, " neighbor {} description {}", x.edge_address, x.edge);
    }
    let _ = writeln!(
        s,
        " !\n address-family ipv4 unicast\n  maximum-paths {}",
        sessions.len().max(1)
    );
    let _ = writeln!(s, "  neighbor EDGES route-map {IMPORT} in\n  neighbor EDGES route-map {EXPORT} out\n exit-address-family\nexit\n!");
    if let Some(b) = &rt.bfd {
        let _ = writeln!(s, "bfd\n profile edges\n  detect-multiplier {}\n  receive-interval {}\n  transmit-interval {}\n exit\n !", b.multiplier, b.min_rx_ms, b.min_tx_ms);
        for x in &sessions {
            let _ = writeln!(s, " peer {}\n  profile edges\n exit\n !", x.edge_address);
        }
        let _ = writeln!(s, "exit\n!");
    }
    s
}
