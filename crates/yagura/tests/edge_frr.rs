//! `yagura edge` against FRR (zebra + bgpd + bfdd) in network namespaces: three edges announce the same VIP
//! (IPv4 and IPv6) and the router's kernel route has three next hops; SIGKILL and link-down are noticed by BFD
//! (hold time 30 s, so only BFD can explain a fast drop) and the next hop comes back; drain withdraws before
//! the session closes; TCP MD5 with a good and a wrong password (and GTSM); graceful restart keeps the route.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod edge_support;

use std::time::{Duration, Instant};

use edge_support::*;

const VIP: &str = "198.19.0.10";
const VIP6: &str = "2001:db8:ff::10";

fn frr_conf(edges: &[usize], neighbor_extra: &str, global_extra: &str) -> String {
    let mut n = String::new();
    for i in edges {
        n.push_str(&format!(
            " neighbor {} peer-group EDGES\n",
            Topo::edge_v4(*i)
        ));
    }
    format!(
        "frr defaults traditional
hostname router
!
bfd
 profile fast
  receive-interval 300
  transmit-interval 300
  detect-multiplier 3
 exit
exit
!
router bgp 65000
 bgp router-id 198.18.0.1
 no bgp ebgp-requires-policy
 no bgp network import-check
{global_extra} neighbor EDGES peer-group
 neighbor EDGES remote-as 65001
 neighbor EDGES timers 10 30
 neighbor EDGES timers connect 1
{neighbor_extra}{n} address-family ipv4 unicast
  maximum-paths 8
 exit-address-family
 address-family ipv6 unicast
  neighbor EDGES activate
  maximum-paths 8
 exit-address-family
exit
"
    )
}

const VIPS: &str = r#"
[[vips]]
name = "api"
prefix = "198.19.0.10/32"
pool = "api"
communities = ["65000:100"]
large_communities = ["65000:1:2"]

[[vips]]
name = "api6"
prefix = "2001:db8:ff::10/128"
pool = "api"
"#;

fn dump(frr: &Frr, edges: &[&Edge]) -> String {
    let mut s = format!(
        "--- frr summary\n{}\n--- bfd\n{}\n",
        frr.vtysh("show bgp summary"),
        frr.vtysh("show bfd peers brief")
    );
    for e in edges {
        s.push_str(&format!("--- {}\n{}\n", e.config.display(), e.log_text()));
    }
    s
}

fn wait_hops(
    topo: &Topo,
    prefix: &str,
    n: usize,
    deadline: Duration,
    frr: &Frr,
    edges: &[&Edge],
) -> Duration {
    let start = Instant::now();
    while topo.router.next_hops(prefix) != n {
        if start.elapsed() > deadline {
            panic!(
                "timed out after {deadline:?} waiting for {n} next hops for {prefix}; route: {}\n{}",
                topo.router.route(prefix),
                dump(frr, edges)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

fn refs(e: &[Edge]) -> Vec<&Edge> {
    e.iter().collect()
}

fn neighbor_state(frr: &Frr, addr: &str) -> String {
    let out = frr.vtysh(&format!("show bgp neighbors {addr} json"));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    v[addr]["bgpState"].as_str().unwrap_or("").to_string()
}

#[test]
fn frr_three_edges_ecmp_bfd_failover_and_drain() {
    if !require(&[
        "vtysh",
        "/usr/lib/frr/bgpd",
        "/usr/lib/frr/bfdd",
        "ping",
        "curl",
        "nft",
    ]) {
        return;
    }
    let topo = Topo::new(&prefix("yef"), 3);
    let dir = tempdir();
    let frr = Frr::start(
        &topo.router,
        dir.path(),
        &frr_conf(
            &[1, 2, 3],
            " neighbor EDGES bfd\n neighbor EDGES bfd profile fast\n",
            "",
        ),
    );
    let mut edges: Vec<Edge> = (1..=3)
        .map(|i| {
            let extra = format!("next_hop_ipv6 = \"{}\"", Topo::edge_v6(i));
            Edge::start(
                &topo.edges[i - 1],
                dir.path(),
                &format!("edge{i}"),
                &edge_config(i, "198.18.0.1", &extra, VIPS),
                "127.0.0.1:9179",
            )
        })
        .collect();

    // Three edges, one VIP: three next hops in the router's kernel, for IPv4 and IPv6.
    wait_hops(&topo, VIP, 3, Duration::from_secs(60), &frr, &refs(&edges));
    wait_hops(&topo, VIP6, 3, Duration::from_secs(30), &frr, &refs(&edges));
    for vip in [VIP, VIP6] {
        wait_for(
            &format!("the client to reach {vip}"),
            Duration::from_secs(20),
            || {
                topo.client
                    .try_exec(&["ping", "-c", "1", "-W", "1", vip])
                    .status
                    .success()
                    .then_some(())
            },
        );
    }

    // Communities and large communities arrive as configured.
    let route = frr.vtysh(&format!("show bgp ipv4 unicast {VIP}/32 json"));
    assert!(route.contains("65000:100"), "{route}");
    assert!(route.contains("65000:1:2"), "{route}");

    // The control API and the CLI show the session, BFD and the VIPs.
    // Under load the session may still be re-establishing when BFD is already up: wait for both.
    let st = wait_for(
        "BFD up and the session established in the status",
        Duration::from_secs(30),
        || {
            let st = edges[0].status();
            (st["sessions"][0]["bfd"]["state"] == "up"
                && st["sessions"][0]["state"] == "established")
                .then_some(st)
        },
    );
    assert_eq!(st["sessions"][0]["state"], "established", "{st}");
    assert_eq!(st["sessions"][0]["prefixes_sent"], 2, "{st}");
    assert_eq!(st["vips"][0]["announced"], true, "{st}");
    let table = edges[0].cli(&["status"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("established") && table.contains("198.19.0.10/32"),
        "{table}"
    );
    let wanted = [
        "yagura_edge_bgp_session_state{peer=\"router\",state=\"established\"} 1",
        "yagura_edge_bfd_session_state{peer=\"router\",state=\"up\"} 1",
        "yagura_edge_vip_announced{vip=\"api\"} 1",
        "yagura_edge_bgp_prefixes_sent{peer=\"router\"} 2",
        "yagura_edge_bgp_session_uptime_seconds",
    ];
    // Polled rather than read once: on a loaded machine a session may flap and come back in between.
    let mut metrics = String::new();
    let ok = (0..150).any(|_| {
        metrics = topo.edges[0].exec(&["curl", "-sf", "http://127.0.0.1:9179/metrics"]);
        let all = wanted.iter().all(|m| metrics.contains(m));
        if !all {
            std::thread::sleep(Duration::from_millis(200));
        }
        all
    });
    for m in wanted {
        assert!(ok || metrics.contains(m), "missing {m} in\n{metrics}");
    }

    // SIGKILL edge 3: BFD (300 ms x 3) drops its next hop long before the 30 s hold time could.
    edges[2].proc.signal("KILL");
    let t = wait_hops(&topo, VIP, 2, Duration::from_secs(15), &frr, &refs(&edges)); // still half the 30 s hold time
    eprintln!("SIGKILL: next hop removed after {t:?}");
    edges[2].restart(&topo.edges[2]);
    wait_hops(&topo, VIP, 3, Duration::from_secs(60), &frr, &refs(&edges));

    // Link down on edge 2's port (the edge's own address stays): BFD again; back up: three again.
    topo.router.exec(&["ip", "link", "set", "p2", "down"]);
    let t = wait_hops(&topo, VIP, 2, Duration::from_secs(15), &frr, &refs(&edges)); // still half the 30 s hold time
    eprintln!("link down: next hop removed after {t:?}");
    // The router drops the next hop with the link at once; edge 2 learns it from BFD's detection time.
    // On a timeout the message carries edge 2's status and log, so a failure says which side did not move.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let st = edges[1].status();
        if st["sessions"][0]["flaps"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        if Instant::now() > deadline {
            let log = edges[1].log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "edge 2's session did not go down (BFD) within 15 s of the link going down\nstatus: {st:#}\nlog (last lines):\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    topo.router.exec(&["ip", "link", "set", "p2", "up"]);
    wait_hops(&topo, VIP, 3, Duration::from_secs(60), &frr, &refs(&edges));

    // Blackhole edge 3 with nftables (link and TCP stay up, nothing gets through): only BFD can notice.
    topo.edges[2].exec(&[
        "nft",
        "add table inet bh; add chain inet bh in { type filter hook input priority 0; policy drop; }; \
         add chain inet bh out { type filter hook output priority 0; policy drop; }; \
         add rule inet bh in iif lo accept; add rule inet bh out oif lo accept",
    ]);
    let t = wait_hops(&topo, VIP, 2, Duration::from_secs(15), &frr, &refs(&edges)); // still half the 30 s hold time
    eprintln!("blackhole: next hop removed after {t:?}");
    topo.edges[2].exec(&["nft", "delete table inet bh"]);
    wait_hops(&topo, VIP, 3, Duration::from_secs(60), &frr, &refs(&edges));
    let st = edges[2].status();
    assert!(st["sessions"][0]["bfd"]["last_down"].is_u64(), "{st}");

    // Drain edge 1: its VIP is withdrawn while its session is still Established, then the session closes
    // and the daemon exits 0.
    let out = edges[0].cli(&["drain"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e1 = Topo::edge_v4(1);
    let mut withdrawn_while_up = false;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let hops = topo.router.next_hops(VIP);
        let state = neighbor_state(&frr, &e1);
        if hops == 2 {
            withdrawn_while_up = state == "Established";
            break;
        }
        assert_eq!(state, "Established", "session closed before the withdrawal");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        withdrawn_while_up,
        "VIP not withdrawn before the session closed\n{}",
        dump(&frr, &refs(&edges))
    );
    assert_eq!(
        edges[0].proc.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        edges[0].log_text()
    );
    wait_for(
        "the drained session to close",
        Duration::from_secs(10),
        || (neighbor_state(&frr, &e1) != "Established").then_some(()),
    );
    assert!(
        frr.log().contains("Administrative Shutdown") || neighbor_state(&frr, &e1) != "Established"
    );
    assert_eq!(topo.router.next_hops(VIP), 2);
    // The VIP address left edge 1's loopback.
    let lo = topo.edges[0].exec(&["ip", "-4", "addr", "show", "dev", "lo"]);
    assert!(!lo.contains(VIP), "{lo}");
}

#[test]
fn frr_md5_good_password_up_wrong_refused_with_gtsm() {
    if !require(&["vtysh", "/usr/lib/frr/bgpd"]) {
        return;
    }
    let topo = Topo::new(&prefix("yem"), 2);
    let dir = tempdir();
    // Edge 1 also uses GTSM (RFC 5082) on both sides.
    let nb = format!(
        " neighbor {e1} password right-secret\n neighbor {e1} ttl-security hops 1\n neighbor {} password right-secret\n",
        Topo::edge_v4(2),
        e1 = Topo::edge_v4(1),
    );
    // Passwords are per neighbor; they must come after the neighbors exist.
    let conf = frr_conf(&[1, 2], "", "").replace(
        " address-family ipv4 unicast\n",
        &format!("{nb} address-family ipv4 unicast\n"),
    );
    let frr = Frr::start(&topo.router, dir.path(), &conf);
    let good = dir.path().join("good.key");
    let bad = dir.path().join("bad.key");
    std::fs::write(&good, "right-secret\n").unwrap();
    std::fs::write(&bad, "wrong-secret\n").unwrap();
    let mk = |i: usize, key: &std::path::Path| {
        let extra = format!(
            "bfd = {{ enabled = false }}\nmd5_password_file = \"{}\"\nttl_security = {}",
            key.display(),
            i == 1
        );
        Edge::start(
            &topo.edges[i - 1],
            dir.path(),
            &format!("edge{i}"),
            &edge_config(i, "198.18.0.1", &extra, VIPS),
            "127.0.0.1:9179",
        )
    };
    let e1 = mk(1, &good);
    let e2 = mk(2, &bad);
    wait_for(
        "the MD5 session with the right password",
        Duration::from_secs(60),
        || (neighbor_state(&frr, &Topo::edge_v4(1)) == "Established").then_some(()),
    );
    wait_hops(&topo, VIP, 1, Duration::from_secs(30), &frr, &[&e1, &e2]);
    // The wrong password never gets a session: wait for several connect attempts (the edge retries every
    // 1-2 s) and check it is still not Established on either side.
    wait_for(
        "connect attempts with the wrong key",
        Duration::from_secs(30),
        || {
            let st = e2.status();
            st["sessions"][0]["last_error"].as_str().map(|_| ())
        },
    );
    assert_ne!(neighbor_state(&frr, &Topo::edge_v4(2)), "Established");
    assert_ne!(e2.status()["sessions"][0]["state"], "established");
    assert_eq!(topo.router.next_hops(VIP), 1);
}

#[test]
fn frr_graceful_restart_keeps_the_route_and_loses_no_probe() {
    if !require(&["vtysh", "/usr/lib/frr/bgpd", "ping"]) {
        return;
    }
    let topo = Topo::new(&prefix("yeg"), 1);
    let dir = tempdir();
    let frr = Frr::start(
        &topo.router,
        dir.path(),
        &frr_conf(
            &[1],
            "",
            " bgp graceful-restart\n bgp graceful-restart restart-time 120\n",
        ),
    );
    let extra = "bfd = { enabled = false }\ngraceful_restart = { restart_time = \"60s\" }";
    let mut e = Edge::start(
        &topo.edges[0],
        dir.path(),
        "edge1",
        &edge_config(1, "198.18.0.1", extra, VIPS),
        "127.0.0.1:9179",
    );
    wait_hops(&topo, VIP, 1, Duration::from_secs(60), &frr, &[&e]);
    let st = wait_for(
        "graceful restart negotiated",
        Duration::from_secs(10),
        || {
            let st = e.status();
            (st["sessions"][0]["graceful_restart"] == true).then_some(st)
        },
    );
    assert_eq!(st["sessions"][0]["state"], "established");

    // Probe the VIP at 50 Hz through the restart; every probe must be answered.
    let mut ping = topo.client.command("ping");
    ping.args(["-i", "0.02", "-c", "400", "-W", "1", VIP]);
    let log = dir.path().join("ping.log");
    let mut probe = Proc::spawn(ping, "ping", &log);
    std::thread::sleep(Duration::from_millis(1000)); // let some probes through before the kill (not a sync point)
    e.proc.signal("KILL");
    // The route stays (stale) while the edge is gone.
    wait_for("the session to drop", Duration::from_secs(10), || {
        (neighbor_state(&frr, &Topo::edge_v4(1)) != "Established").then_some(())
    });
    assert_eq!(
        topo.router.next_hops(VIP),
        1,
        "route lost during the restart"
    );
    e.restart(&topo.edges[0]);
    wait_for("the session to come back", Duration::from_secs(60), || {
        (neighbor_state(&frr, &Topo::edge_v4(1)) == "Established").then_some(())
    });
    assert!(
        e.log_text().contains("restarting speaker"),
        "{}",
        e.log_text()
    );
    assert_eq!(
        probe.wait_exit(Duration::from_secs(30)),
        Some(0),
        "probes lost:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(out.contains(" 0% packet loss"), "{out}");
    assert_eq!(topo.router.next_hops(VIP), 1);
}
