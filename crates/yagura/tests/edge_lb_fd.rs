//! `yagura edge`'s load balancer out of file descriptors (run under `prlimit --nofile`), in a network
//! namespace with an nginx backend on 127.0.0.0/8: new connections are refused with one clear log line a
//! second, the backend is not ejected for our own limit, a connection established before keeps working, and
//! new connections work again once the flood is gone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod edge_support;

use std::time::Duration;

use edge_support::{prefix, require, tempdir, wait_for, yagura_bin, Edge, Netns, Proc};

const CLIENT: &str = r#"
import socket, sys, time
addr = ("127.0.0.100", 8080)
def get(c):
    c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"backend" not in data:
        d = c.recv(4096)
        if not d:
            return False
        data += d
    return True
est = socket.create_connection(addr, timeout=5)
assert get(est), "first request on the established connection"
flood = []
for _ in range(200):
    try:
        flood.append(socket.create_connection(addr, timeout=2))
    except OSError:
        break
open(sys.argv[1], "w").write("flooded %d\n" % len(flood))
# Wait until the daemon logged the exhaustion (the test touches this file).
for _ in range(300):
    try:
        open(sys.argv[2]).close()
        break
    except OSError:
        time.sleep(0.1)
ok = get(est)
for c in flood:
    c.close()
time.sleep(0.5)
fresh = None
for _ in range(50):
    try:
        c = socket.create_connection(addr, timeout=2)
        if get(c):
            fresh = True
            break
    except OSError:
        pass
    time.sleep(0.1)
print("established_ok=%s fresh_ok=%s" % (ok, fresh))
"#;

#[test]
fn fd_exhaustion_logs_and_keeps_established() {
    if !require(&["nginx", "python3", "prlimit", "ip"]) {
        return;
    }
    let ns = Netns::new(&format!("ylf{}", prefix("")));
    let dir = tempdir();
    let d = dir.path().display();
    std::fs::create_dir_all(dir.path().join("n")).unwrap();
    std::fs::write(
        dir.path().join("ngx.conf"),
        format!(
            "worker_processes 1;\npid {d}/ngx.pid;\nerror_log {d}/ngx.err;\nuser root;\nevents {{ worker_connections 1024; }}\n\
             http {{ access_log off; client_body_temp_path {d}/n/b; proxy_temp_path {d}/n/p; fastcgi_temp_path {d}/n/f;\n\
             uwsgi_temp_path {d}/n/u; scgi_temp_path {d}/n/s; keepalive_timeout 60s;\n\
             server {{ listen 127.0.0.11:8080; location / {{ return 200 \"backend\\n\"; }} }} }}\n"
        ),
    )
    .unwrap();
    let mut c = ns.command("nginx");
    c.args([
        "-c",
        &format!("{d}/ngx.conf"),
        "-p",
        &d.to_string(),
        "-g",
        "daemon off;",
    ]);
    let _nginx = Proc::spawn(c, "nginx", &dir.path().join("ngx.log"));

    let control = "127.0.0.1:9181";
    let cfg = format!(
        r#"asn = 65010
router_id = "198.18.0.10"
listen = []
control = "{control}"
manage_addresses = false
drain_wait = "100ms"

[[listeners]]
name = "web"
address = "127.0.0.100:8080"
pool = "web"

[[pools]]
name = "web"
[pools.health]
kind = "http"
path = "/"
interval = "200ms"
timeout = "150ms"
rise = 1
[[pools.backends]]
name = "n1"
address = "127.0.0.11:8080"
"#
    );
    let path = dir.path().join("edge.toml");
    std::fs::write(&path, cfg).unwrap();
    let log = dir.path().join("edge.log");
    let mut cmd = ns.command("prlimit");
    cmd.args([
        "--nofile=64:64",
        yagura_bin().to_str().unwrap(),
        "edge",
        "--config",
        path.to_str().unwrap(),
    ]);
    cmd.env("NO_COLOR", "1");
    let edge = Edge {
        proc: Proc::spawn(cmd, "yagura edge", &log),
        config: path.clone(),
        log: log.clone(),
        control: control.to_string(),
        ns: ns.name.clone(),
    };
    wait_for("the backend up", Duration::from_secs(20), || {
        (edge.status()["pools"][0]["healthy"].as_u64() == Some(1)).then_some(())
    });

    let flooded = dir.path().join("flooded");
    let go = dir.path().join("go");
    let script = dir.path().join("client.py");
    std::fs::write(&script, CLIENT).unwrap();
    let client = ns
        .command("python3")
        .args([
            script.to_str().unwrap(),
            flooded.to_str().unwrap(),
            go.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(
        "the fd exhaustion log line",
        Duration::from_secs(30),
        || {
            edge.log_text()
                .contains("out of file descriptors")
                .then_some(())
        },
    );
    std::fs::write(&go, "").unwrap();
    let out = client.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "{}{}",
        std::fs::read_to_string(&flooded).unwrap_or_default(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("established_ok=True"),
        "{text} / {}",
        edge.log_text()
    );
    assert!(
        text.contains("fresh_ok=True"),
        "{text} / {}",
        edge.log_text()
    );
    assert!(
        !edge.log_text().contains("backend ejected"),
        "{}",
        edge.log_text()
    );
    let line = edge
        .log_text()
        .lines()
        .find(|l| l.contains("out of file descriptors"))
        .unwrap()
        .to_string();
    eprintln!("log line: {line}");
}
