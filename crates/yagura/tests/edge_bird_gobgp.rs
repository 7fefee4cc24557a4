//! `yagura edge` against BIRD 2 and GoBGP 3 in network namespaces, over IPv4 and IPv6 sessions: two edges
//! announce the same IPv4 and IPv6 VIPs; BIRD (with BFD, `merge paths`) installs two next hops in the kernel
//! and drops a blackholed edge through BFD; GoBGP holds both paths and loses one when an edge drains.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod edge_support;

use std::time::Duration;

use edge_support::*;

const VIP: &str = "198.19.0.10";
const VIP6: &str = "2001:db8:ff::10";
const VIPS: &str = r#"
[[vips]]
name = "api"
prefix = "198.19.0.10/32"
communities = ["65000:100"]

[[vips]]
name = "api6"
prefix = "2001:db8:ff::10/128"
"#;

fn bird_conf() -> String {
    let mut s = String::from(
        r#"router id 198.18.0.1;
protocol device { }
protocol kernel k4 { ipv4 { export all; }; merge paths on; }
protocol kernel k6 { ipv6 { export all; }; merge paths on; }
protocol bfd { interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }
"#,
    );
    for i in 1..=2 {
        for (fam, addr) in [("ipv4", Topo::edge_v4(i)), ("ipv6", Topo::edge_v6(i))] {
            s.push_str(&format!(
                "protocol bgp e{i}{fam} {{ local as 65000; neighbor {addr} as 65001; hold time 30; \
                 connect retry time 1; error wait time 1, 5; bfd on; {fam} {{ import all; export none; }}; }}\n"
            ));
        }
    }
    s
}

#[test]
fn bird_two_edges_ipv4_ipv6_ecmp_and_bfd() {
    if !require(&["bird", "birdc", "nft"]) {
        return;
    }
    let topo = Topo::new(&prefix("yeb"), 2);
    let dir = tempdir();
    let bird = Bird::start(&topo.router, dir.path(), &bird_conf());
    let edges: Vec<Edge> = (1..=2)
        .map(|i| {
            Edge::start(
                &topo.edges[i - 1],
                dir.path(),
                &format!("edge{i}"),
                &dual_stack_edge_config(i, true, VIPS),
                "127.0.0.1:9179",
            )
        })
        .collect();
    let dump = || {
        format!(
            "{}\n{}\n{}",
            bird.birdc("show protocols"),
            edges[0].log_text(),
            edges[1].log_text()
        )
    };
    for vip in [VIP, VIP6] {
        let mut last = 0;
        let ok = (0..600).any(|_| {
            last = topo.router.next_hops(vip);
            last == 2 || {
                std::thread::sleep(Duration::from_millis(100));
                false
            }
        });
        assert!(ok, "{vip}: {last} next hops\n{}", dump());
    }
    let routes = bird.birdc("show route all");
    assert!(routes.contains("(65000,100)"), "{routes}");
    wait_for(
        "BFD up on both sessions of edge 1",
        Duration::from_secs(20),
        || {
            let st = edges[0].status();
            (st["sessions"][0]["bfd"]["state"] == "up" && st["sessions"][1]["bfd"]["state"] == "up")
                .then_some(())
        },
    );
    let st = edges[0].status();
    assert_eq!(
        st["sessions"][0]["families"],
        serde_json::json!(["ipv4-unicast"]),
        "{st}"
    );
    assert_eq!(
        st["sessions"][1]["families"],
        serde_json::json!(["ipv6-unicast"]),
        "{st}"
    );

    // Blackhole edge 2: BIRD's BFD drops its next hop for both families (hold time is 30 s).
    topo.edges[1].exec(&[
        "nft",
        "add table inet bh; add chain inet bh in { type filter hook input priority 0; policy drop; }; \
         add chain inet bh out { type filter hook output priority 0; policy drop; }; \
         add rule inet bh in iif lo accept; add rule inet bh out oif lo accept",
    ]);
    for vip in [VIP, VIP6] {
        wait_for(
            &format!("{vip} down to one next hop"),
            Duration::from_secs(5),
            || (topo.router.next_hops(vip) == 1).then_some(()),
        );
    }
    topo.edges[1].exec(&["nft", "delete table inet bh"]);
    for vip in [VIP, VIP6] {
        wait_for(
            &format!("{vip} back to two next hops"),
            Duration::from_secs(60),
            || (topo.router.next_hops(vip) == 2).then_some(()),
        );
    }
}

fn gobgp_conf() -> String {
    let mut s = String::from(
        "[global.config]\n  as = 65000\n  router-id = \"198.18.0.1\"\n  port = 179\n\n",
    );
    for i in 1..=2 {
        for (fam, addr) in [
            ("ipv4-unicast", Topo::edge_v4(i)),
            ("ipv6-unicast", Topo::edge_v6(i)),
        ] {
            s.push_str(&format!(
                "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{addr}\"\n    peer-as = 65001\n  \
                 [neighbors.timers.config]\n    connect-retry = 1\n    hold-time = 30\n    keepalive-interval = 10\n  \
                 [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{fam}\"\n\n"
            ));
        }
    }
    s
}

#[test]
fn gobgp_two_edges_ipv4_ipv6_and_drain() {
    if !require(&["gobgpd", "gobgp"]) {
        return;
    }
    let topo = Topo::new(&prefix("yeo"), 2);
    let dir = tempdir();
    let gobgp = GoBgp::start(&topo.router, dir.path(), &gobgp_conf());
    let mut edges: Vec<Edge> = (1..=2)
        .map(|i| {
            Edge::start(
                &topo.edges[i - 1],
                dir.path(),
                &format!("edge{i}"),
                &dual_stack_edge_config(i, false, VIPS),
                "127.0.0.1:9179",
            )
        })
        .collect();
    for vip in ["198.19.0.10/32", "2001:db8:ff::10/128"] {
        let mut n = 0;
        let ok = (0..600).any(|_| {
            n = gobgp.paths(vip);
            n == 2 || {
                std::thread::sleep(Duration::from_millis(100));
                false
            }
        });
        assert!(
            ok,
            "{vip}: {n} paths\n{}\n{}",
            String::from_utf8_lossy(&gobgp.cmd(&["neighbor"]).stdout),
            edges[0].log_text()
        );
    }
    let rib =
        String::from_utf8_lossy(&gobgp.cmd(&["global", "rib", "-a", "ipv4"]).stdout).into_owned();
    assert!(rib.contains("65000:100"), "{rib}");

    // Drain edge 1: its paths are withdrawn, then it exits 0.
    let out = edges[0].cli(&["drain"]);
    assert!(out.status.success());
    for vip in ["198.19.0.10/32", "2001:db8:ff::10/128"] {
        wait_for(
            &format!("{vip} down to one path"),
            Duration::from_secs(10),
            || (gobgp.paths(vip) == 1).then_some(()),
        );
    }
    assert_eq!(
        edges[0].proc.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        edges[0].log_text()
    );
}
