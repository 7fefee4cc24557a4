//! `yagura watch` as a process: `--check` diagnostics; SIGHUP with a bad file keeps the running config and a
//! good one is applied; SIGKILL loses nothing that was committed and leaves a store the next start opens;
//! SIGTERM drains and exits 0; `yagura watch query` prints what the API answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_yagura"));
    c.env("NO_COLOR", "1");
    c
}

fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_tcp() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A bare HTTP/1.1 GET; returns (status, body).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

fn wait_until<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(config: &Path, http: u16) -> Daemon {
    let child = bin()
        .args(["watch", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let d = Daemon(child);
    wait_until("the daemon to be ready", Duration::from_secs(20), || {
        get(http, "/readyz").filter(|(s, _)| *s == 200)
    });
    d
}

fn signal(d: &Daemon, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &d.0.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn metric(http: u16, prefix: &str) -> f64 {
    get(http, "/metrics")
        .map(|(_, b)| {
            b.lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        })
        .unwrap_or(-1.0)
}

#[test]
fn check_reports_positions() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(
        &f,
        "retension = 3\n[storage]\npath = \"/x/w.db\"\nmax_size = \"1kB\"\n",
    )
    .unwrap();
    let o = bin()
        .args(["watch", "--config", f.to_str().unwrap(), "--check"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.toml:4:12"), "{err}");
    assert!(err.contains("did you mean `retention`"), "{err}");
    let ex = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/watch.toml");
    let o = bin()
        .args(["watch", "--config", ex.to_str().unwrap(), "--check"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn reload_kill_restart_and_drain() {
    let dir = tempfile::tempdir().unwrap();
    let (udp, http) = (free_udp(), free_tcp());
    let cfg = dir.path().join("watch.toml");
    let good = |logs: &str| {
        format!(
            "[listen]\nsflow = []\nnetflow = []\nsyslog_tcp = []\nsyslog_udp = [\"127.0.0.1:{udp}\"]\n\
             [storage]\npath = \"{}\"\nmax_size = \"32MiB\"\n[retention]\nlogs = \"{logs}\"\n\
             [http]\nlisten = \"127.0.0.1:{http}\"\n",
            dir.path().join("db/watch.db").display()
        )
    };
    std::fs::write(&cfg, good("14d")).unwrap();
    let d = start(&cfg, http);
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..50 {
        tx.send_to(
            format!("<30>Nov 27 08:00:00 sw1 kernel: port {i} down").as_bytes(),
            ("127.0.0.1", udp),
        )
        .unwrap();
    }
    let count = |http: u16| -> usize {
        get(http, "/api/v1/syslog?from=1h&limit=1000&host=sw1")
            .map(|(_, b)| b.matches("\"received\"").count())
            .unwrap_or(0)
    };
    wait_until("50 stored messages", Duration::from_secs(15), || {
        (count(http) == 50).then_some(())
    });

    // A bad file on SIGHUP: refused, the daemon keeps running with the old config.
    std::fs::write(&cfg, "[storage]\npath = 3\n").unwrap();
    signal(&d, "-HUP");
    wait_until("the refused reload", Duration::from_secs(10), || {
        (metric(http, "yagura_config_reloads_total{result=\"invalid\"}") == 1.0).then_some(())
    });
    assert_eq!(count(http), 50);
    std::fs::write(&cfg, good("7d")).unwrap();
    signal(&d, "-HUP");
    wait_until("the good reload", Duration::from_secs(10), || {
        (metric(http, "yagura_config_reloads_total{result=\"ok\"}") == 1.0).then_some(())
    });

    // The CLI over the API.
    let o = bin()
        .args([
            "watch",
            "query",
            "--server",
            &format!("http://127.0.0.1:{http}"),
            "syslog",
            "--host",
            "sw1",
        ])
        .args(["--text", "port 7", "--limit", "5"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.lines().next().unwrap().contains("severity"), "{out}");
    assert!(out.contains("port 7 down"), "{out}");

    // SIGKILL: everything committed (the API saw it) survives; the next start opens the store.
    let mut d = d;
    d.0.kill().unwrap();
    d.0.wait().unwrap();
    drop(d);
    let d = start(&cfg, http);
    assert_eq!(count(http), 50, "committed messages survive a kill");

    // SIGTERM: drains and exits 0.
    tx.send_to(
        b"<30>Nov 27 08:00:01 sw1 kernel: last words",
        ("127.0.0.1", udp),
    )
    .unwrap();
    wait_until("the last message", Duration::from_secs(15), || {
        (count(http) == 51).then_some(())
    });
    signal(&d, "-TERM");
    let mut d = d;
    let end = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = d.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}
