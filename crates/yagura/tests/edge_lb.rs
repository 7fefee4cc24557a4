//! `yagura edge` as an L4 load balancer in front of real nginx backends (TLS, a `/readyz` location) inside a
//! network namespace (127.0.0.0/8 addresses in the namespace only): HTTPS `/readyz` health checks with a CA
//! file drive the VIP's announcement; a backend killed under load costs no failed request once the fall
//! interval passed (the number that failed before is printed); SIGHUP under load (a backend removed, one
//! added) loses no request; a bad config is refused with file:line:col and the running one stays; SIGTERM
//! withdraws, stops accepting and exits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod edge_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use edge_support::{prefix, require, sh, tempdir, wait_for, Edge, Netns, Proc};

const VIP_LISTEN: &str = "127.0.0.100:6443";

fn certs(dir: &Path) {
    let d = |f: &str| dir.join(f).to_str().unwrap().to_string();
    sh(&[
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=yagura-test-ca",
        "-keyout",
        &d("ca.key"),
        "-out",
        &d("ca.pem"),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    sh(&[
        "openssl",
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=backend",
        "-keyout",
        &d("srv.key"),
        "-out",
        &d("srv.csr"),
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.11,IP:127.0.0.12,IP:127.0.0.13,IP:127.0.0.14\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    sh(&[
        "openssl",
        "x509",
        "-req",
        "-in",
        &d("srv.csr"),
        "-CA",
        &d("ca.pem"),
        "-CAkey",
        &d("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        &d("srv.pem"),
        "-extfile",
        &d("ext.cnf"),
    ]);
}

fn nginx(ns: &Netns, dir: &Path, i: u8) -> Proc {
    let d = dir.display();
    let tmp = dir.join(format!("ngx{i}"));
    std::fs::create_dir_all(&tmp).unwrap();
    let conf = format!(
        "master_process off;\nworker_processes 1;\npid {d}/ngx{i}.pid;\nerror_log {d}/ngx{i}.err;\nuser root;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n access_log off;\n client_body_temp_path {d}/ngx{i}/b; proxy_temp_path {d}/ngx{i}/p;\n \
         fastcgi_temp_path {d}/ngx{i}/f; uwsgi_temp_path {d}/ngx{i}/u; scgi_temp_path {d}/ngx{i}/s;\n \
         server {{\n  listen 127.0.0.1{i}:8443 ssl;\n  ssl_certificate {d}/srv.pem;\n  ssl_certificate_key {d}/srv.key;\n  \
         location = /readyz {{ return 200 \"ok\\n\"; }}\n  location / {{ return 200 \"backend{i}\\n\"; }}\n }}\n}}\n"
    );
    let path = dir.join(format!("ngx{i}.conf"));
    std::fs::write(&path, conf).unwrap();
    let mut c = ns.command("nginx");
    c.args([
        "-c",
        path.to_str().unwrap(),
        "-p",
        dir.to_str().unwrap(),
        "-g",
        "daemon off;",
    ]);
    let p = Proc::spawn(c, "nginx", &dir.join(format!("ngx{i}.log")));
    let addr = format!("127.0.0.1{i}:8443");
    wait_for(&format!("nginx on {addr}"), Duration::from_secs(10), || {
        ns.try_exec(&[
            "curl",
            "-sk",
            "--max-time",
            "1",
            &format!("https://{addr}/readyz"),
        ])
        .status
        .success()
        .then_some(())
    });
    p
}

fn config(dir: &Path, control: &str, backends: &[u8], extra: &str) -> String {
    let mut s = format!(
        r#"asn = 65010
router_id = "198.18.0.10"
listen = []
control = "{control}"
manage_addresses = false
drain_wait = "100ms"
drain_timeout = "5s"

[[vips]]
name = "api"
prefix = "198.18.0.100/32"
pool = "api"
announce = "hook"

[[listeners]]
name = "api"
address = "{VIP_LISTEN}"
pool = "api"
connect_timeout = "500ms"
{extra}
[[pools]]
name = "api"
balance = "round_robin"
min_healthy = 1

[pools.health]
kind = "https"
path = "/readyz"
ca_file = "{ca}"
interval = "200ms"
timeout = "150ms"
rise = 1
fall = 2
"#,
        ca = dir.join("ca.pem").display()
    );
    for b in backends {
        s.push_str(&format!(
            "\n[[pools.backends]]\nname = \"m{b}\"\naddress = \"127.0.0.1{b}:8443\"\n"
        ));
    }
    s
}

/// Runs `n` HTTPS requests one after the other through the VIP listener in the namespace, in the background;
/// each line of the output is `NANOS CODE`.
fn load(ns: &Netns, dir: &Path, n: u32, name: &str) -> (std::process::Child, std::path::PathBuf) {
    let out = dir.join(format!("{name}.out"));
    let script = format!(
        "for i in $(seq 1 {n}); do c=$(curl -s -o /dev/null -w '%{{http_code}}' --max-time 3 --cacert {ca} https://127.0.0.11:8443/readyz --connect-to 127.0.0.11:8443:{VIP_LISTEN}); echo \"$(date +%s%N) $c\"; done > {out}",
        ca = dir.join("ca.pem").display(),
        out = out.display()
    );
    let child = ns.command("bash").args(["-c", &script]).spawn().unwrap();
    (child, out)
}

fn results(path: &Path) -> Vec<(u128, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (t, c) = l.split_once(' ')?;
            Some((t.parse().ok()?, c.to_string()))
        })
        .collect()
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn announced(e: &Edge) -> Option<bool> {
    e.status()["vips"][0]["announced"].as_bool()
}

fn healthy(e: &Edge) -> u64 {
    e.status()["pools"][0]["healthy"].as_u64().unwrap_or(0)
}

#[test]
fn nginx_backends_health_kill_reload_drain() {
    if !require(&["nginx", "curl", "openssl", "ip"]) {
        return;
    }
    let ns = Netns::new(&format!("ylb{}", prefix("")));
    let dir = tempdir();
    certs(dir.path());
    let n1 = nginx(&ns, dir.path(), 1);
    let mut n2 = Some(nginx(&ns, dir.path(), 2));
    let _n3 = nginx(&ns, dir.path(), 3);
    let control = "127.0.0.1:9180";
    let mut edge = Edge::start(
        &ns,
        dir.path(),
        "edge",
        &config(dir.path(), control, &[1, 2, 3], ""),
        control,
    );
    wait_for(
        "3 healthy backends and the VIP announced",
        Duration::from_secs(20),
        || (healthy(&edge) == 3 && announced(&edge) == Some(true)).then_some(()),
    );

    // Kill a backend under load.
    let (mut child, out) = load(&ns, dir.path(), 120, "kill");
    wait_for("some requests done", Duration::from_secs(30), || {
        (results(&out).len() >= 20).then_some(())
    });
    let killed_at = now_nanos();
    drop(n2.take());
    wait_for(
        "the killed backend marked down",
        Duration::from_secs(10),
        || (healthy(&edge) == 2).then_some(()),
    );
    let down_at = now_nanos();
    assert!(child.wait().unwrap().success());
    let r = results(&out);
    let failed_before = r
        .iter()
        .filter(|(t, c)| *t <= down_at && c != "200")
        .count();
    let failed_after = r.iter().filter(|(t, c)| *t > down_at && c != "200").count();
    eprintln!(
        "backend killed under load: {} requests, {failed_before} failed before it was marked down ({} ms after the kill), {failed_after} after",
        r.len(),
        (down_at - killed_at) / 1_000_000
    );
    assert_eq!(r.len(), 120);
    assert_eq!(
        failed_after, 0,
        "requests failed after the fall interval: {r:?}"
    );
    assert_eq!(announced(&edge), Some(true));

    // Reload under load: m3 removed, m4 added (m1 kept).
    let _n4 = nginx(&ns, dir.path(), 4);
    let (mut child, out) = load(&ns, dir.path(), 80, "reload");
    wait_for("some requests done", Duration::from_secs(30), || {
        (results(&out).len() >= 20).then_some(())
    });
    std::fs::write(&edge.config, config(dir.path(), control, &[1, 4], "")).unwrap();
    edge.proc.signal("HUP");
    wait_for("m4 in the pool", Duration::from_secs(10), || {
        let s = edge.status();
        let names: Vec<String> = s["pools"][0]["backends"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|b| b["name"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        (names == ["m1", "m4"]).then_some(())
    });
    assert!(child.wait().unwrap().success());
    let r = results(&out);
    assert_eq!(r.len(), 80);
    assert!(
        r.iter().all(|(_, c)| c == "200"),
        "a request failed across the reload: {r:?}"
    );

    // A bad config is refused with file:line:col; the running one stays.
    let bad = config(dir.path(), control, &[1, 4], "max_conections = 5\n");
    std::fs::write(&edge.config, &bad).unwrap();
    edge.proc.signal("HUP");
    wait_for("the refused reload logged", Duration::from_secs(10), || {
        edge.log_text().contains("reload refused").then_some(())
    });
    let log = edge.log_text();
    assert!(log.contains("edge.toml:"), "no file:line:col in {log}");
    assert!(log.contains("max_conections"), "{log}");
    let (mut child, out) = load(&ns, dir.path(), 10, "after-bad");
    assert!(child.wait().unwrap().success());
    assert!(results(&out).iter().all(|(_, c)| c == "200"));

    // Metrics per backend.
    let m = ns.exec(&["curl", "-s", &format!("http://{control}/metrics")]);
    for series in [
        "yagura_edge_lb_backend_up{pool=\"api\",backend=\"m1\"} 1",
        "yagura_edge_lb_backend_connections_total{pool=\"api\",backend=\"m1\"}",
        "yagura_edge_lb_backend_bytes_to_client_total{pool=\"api\",backend=\"m1\"}",
        "yagura_edge_lb_backend_check_latency_seconds{pool=\"api\",backend=\"m4\"}",
    ] {
        assert!(m.contains(series), "{series} missing from\n{m}");
    }

    // Drain: SIGTERM with a connection open → it exits after the connection ends or the drain timeout.
    let t = Instant::now();
    edge.proc.signal("TERM");
    assert_eq!(edge.proc.wait_exit(Duration::from_secs(20)), Some(0));
    assert!(edge.log_text().contains("drained"));
    eprintln!("drained in {:?}", t.elapsed());
    let refused = ns.try_exec(&[
        "curl",
        "-sk",
        "--max-time",
        "1",
        &format!("https://{VIP_LISTEN}/"),
    ]);
    assert!(!refused.status.success(), "still accepting after the drain");
    drop(n1);
    let _ = Command::new("true").status();
}
