//! `yagura edge`'s load balancer limits on loopback, no root needed: IPv6 and mixed-family forwarding, the
//! `max_connections` cap, the idle timeout, PROXY protocol v1/v2 headers as the backend receives them, and a
//! half-close passed through (the client's FIN reaches the backend, the backend's reply still comes back).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn yagura() -> &'static str {
    env!("CARGO_BIN_EXE_yagura")
}

fn free_port(host: &str) -> u16 {
    TcpListener::bind((host, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A backend that, per connection, reads until the client half-closes, then answers with what it read
/// prefixed by `echo:`; every connection's received bytes also go to `seen`.
fn echo_backend(addr: &str) -> (SocketAddr, mpsc::Receiver<Vec<u8>>) {
    let l = TcpListener::bind(addr).unwrap();
    let a = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let _ = c.read_to_end(&mut got);
                let _ = tx.send(got.clone());
                let _ = c.write_all(b"echo:");
                let _ = c.write_all(&got);
            });
        }
    });
    (a, rx)
}

struct Edge {
    child: Child,
    control: String,
    log: std::path::PathBuf,
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Edge {
    fn start(dir: &Path, listeners: &str, backends: &[(&str, SocketAddr)]) -> Self {
        let control = format!("127.0.0.1:{}", free_port("127.0.0.1"));
        let mut cfg = format!(
            "asn = 65010\nrouter_id = \"198.18.0.10\"\nlisten = []\ncontrol = \"{control}\"\n\
             manage_addresses = false\ndrain_wait = \"0s\"\ndrain_timeout = \"1s\"\n\n{listeners}\n\
             [[pools]]\nname = \"p\"\nbalance = \"round_robin\"\n[pools.health]\nkind = \"tcp\"\n\
             interval = \"200ms\"\ntimeout = \"200ms\"\nrise = 1\nfall = 2\n"
        );
        for (name, a) in backends {
            cfg.push_str(&format!(
                "\n[[pools.backends]]\nname = \"{name}\"\naddress = \"{a}\"\n"
            ));
        }
        let path = dir.join("edge.toml");
        std::fs::write(&path, cfg).unwrap();
        let log = dir.join("edge.log");
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new(yagura())
            .args(["edge", "--config", path.to_str().unwrap()])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        let e = Self {
            child,
            control,
            log,
        };
        e.wait("all backends healthy", Duration::from_secs(20), |e| {
            let s = e.get("/v1/status")?;
            let v: serde_json::Value = serde_json::from_str(&s).ok()?;
            (v["pools"][0]["healthy"].as_u64()? == backends.len() as u64).then_some(())
        });
        e
    }

    fn get(&self, path: &str) -> Option<String> {
        let mut c = TcpStream::connect(&self.control).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(
            c,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut s = String::new();
        c.read_to_string(&mut s).ok()?;
        Some(s.split_once("\r\n\r\n")?.1.to_string())
    }

    fn metric(&self, prefix: &str) -> f64 {
        self.get("/metrics")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn wait<T>(&self, what: &str, limit: Duration, mut f: impl FnMut(&Self) -> Option<T>) -> T {
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Some(v) = f(self) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out after {limit:?} waiting for {what}; log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

fn connect(addr: &str) -> TcpStream {
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

/// Sends `msg`, half-closes, reads the whole answer.
fn exchange(addr: &str, msg: &[u8]) -> Vec<u8> {
    let mut c = connect(addr);
    c.write_all(msg).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    out
}

#[test]
fn ipv6_and_mixed_families_with_half_close() {
    let dir = tempfile::tempdir().unwrap();
    let (b6, _) = echo_backend("[::1]:0");
    let l6 = format!("[::1]:{}", free_port("::1"));
    let l4 = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    let listeners = format!(
        "[[listeners]]\nname = \"v6\"\naddress = \"{l6}\"\npool = \"p\"\n\n\
         [[listeners]]\nname = \"v4\"\naddress = \"{l4}\"\npool = \"p\"\n"
    );
    let _e = Edge::start(dir.path(), &listeners, &[("b6", b6)]);
    // IPv6 client → IPv6 backend, and IPv4 client → IPv6 backend; the FIN goes through both ways.
    assert_eq!(exchange(&l6, b"hello v6"), b"echo:hello v6");
    assert_eq!(exchange(&l4, b"hello v4"), b"echo:hello v4");
    // A large transfer (more than any socket buffer) comes back whole.
    let big: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    let back = exchange(&l4, &big);
    assert_eq!(back.len(), big.len() + 5);
    assert!(back[5..] == big[..], "payload corrupted");
}

#[test]
fn max_connections_and_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (b, _) = echo_backend("127.0.0.1:0");
    let l = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    let listeners = format!(
        "[[listeners]]\nname = \"capped\"\naddress = \"{l}\"\npool = \"p\"\nmax_connections = 2\nidle_timeout = \"1s\"\n"
    );
    let e = Edge::start(dir.path(), &listeners, &[("b", b)]);

    // Two connections are held open (idle); a third is closed at once and counted.
    let c1 = connect(&l);
    let c2 = connect(&l);
    e.wait("2 active connections", Duration::from_secs(10), |e| {
        (e.metric("yagura_edge_lb_backend_active_connections") >= 2.0).then_some(())
    });
    let mut c3 = connect(&l);
    let mut buf = [0u8; 16];
    let n = c3.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the connection over the cap was served");
    e.wait("the rejection counted", Duration::from_secs(10), |e| {
        (e.metric("yagura_edge_lb_rejected_total") >= 1.0).then_some(())
    });

    // The idle timeout closes the two held connections; the closes are counted.
    for mut c in [c1, c2] {
        let t = Instant::now();
        let n = c.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0);
        assert!(t.elapsed() < Duration::from_secs(10));
    }
    e.wait("idle closes counted", Duration::from_secs(10), |e| {
        (e.metric("yagura_edge_lb_backend_idle_closed_total") >= 2.0).then_some(())
    });
    // Below the cap again: served.
    assert_eq!(exchange(&l, b"again"), b"echo:again");
}

#[test]
fn proxy_protocol_headers_reach_the_backend() {
    let dir = tempfile::tempdir().unwrap();
    let (b, seen) = echo_backend("127.0.0.1:0");
    let l1 = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    let l2 = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    let listeners = format!(
        "[[listeners]]\nname = \"v1\"\naddress = \"{l1}\"\npool = \"p\"\nproxy_protocol = \"v1\"\n\n\
         [[listeners]]\nname = \"v2\"\naddress = \"{l2}\"\npool = \"p\"\nproxy_protocol = \"v2\"\n"
    );
    let _e = Edge::start(dir.path(), &listeners, &[("b", b)]);
    // Health checks connect too (and send nothing): skip empty connections.
    let next = || loop {
        let got = seen.recv_timeout(Duration::from_secs(10)).unwrap();
        if !got.is_empty() {
            return got;
        }
    };

    let mut c = connect(&l1);
    let src = c.local_addr().unwrap();
    c.write_all(b"payload").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let got = next();
    let text = String::from_utf8_lossy(&got);
    assert_eq!(
        text,
        format!(
            "PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\npayload",
            src.port(),
            l1.rsplit(':').next().unwrap()
        )
    );

    let mut c = connect(&l2);
    c.write_all(b"payload").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let got = next();
    assert_eq!(
        &got[..12],
        b"\r\n\r\n\0\r\nQUIT\n",
        "not a PROXY v2 signature"
    );
    assert_eq!(got[12], 0x21, "version 2, PROXY command");
    assert_eq!(got[13], 0x11, "TCP over IPv4");
    assert_eq!(&got[16..20], &[127, 0, 0, 1]);
    assert_eq!(&got[28..], b"payload");
}
