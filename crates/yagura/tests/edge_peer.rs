//! `yagura edge` against a scripted BGP peer on 127.0.0.0/8 (no root needed): the peer sends what no real router
//! would — an unknown optional transitive attribute, a malformed ORIGIN, garbage, a bad length, a truncated
//! message — and the daemon answers per RFC 4271 / RFC 7606 and stays up. The same peer checks the announce
//! hook (`yagura edge announce/withdraw`), SIGHUP reload without a session reset, a refused bad reload, and
//! SIGTERM drain (withdraw before Cease).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use yagura_bgp::packet::{
    attr_flags, decode, AsPath, Context, Decoded, Message, Notification, Open, Origin,
    PathAttributes, RawAttribute, Update,
};

struct Daemon {
    child: Child,
    control: String,
    log: std::path::PathBuf,
    config: std::path::PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_yagura"))
            .arg("edge")
            .args(args)
            .args(["--control", &self.control])
            .output()
            .unwrap()
    }
    fn status(&self) -> serde_json::Value {
        serde_json::from_slice(&self.cli(&["status", "--json"]).stdout).unwrap_or_default()
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    fn signal(&self, sig: &str) {
        Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
    }
}

fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(peer_port: u16, control: &str, community: &str) -> String {
    format!(
        r#"asn = 65001
router_id = "198.18.0.11"
listen = []
control = "{control}"
manage_addresses = false
drain_wait = "1s"

[[peers]]
name = "fake"
address = "127.0.0.2"
port = {peer_port}
asn = 65000
mode = "active"
hold_time = "9s"
connect_retry = "1s"
connect_retry_max = "1s"
bfd = {{ enabled = false }}

[[vips]]
name = "api"
prefix = "198.19.0.10/32"
communities = ["{community}"]

[[vips]]
name = "lb"
prefix = "198.19.1.0/24"
announce = "hook"
"#
    )
}

fn start(dir: &std::path::Path, text: &str, control: &str) -> Daemon {
    let config = dir.join("edge.toml");
    std::fs::write(&config, text).unwrap();
    let log = dir.join("edge.log");
    let child = Command::new(env!("CARGO_BIN_EXE_yagura"))
        .args(["edge", "--config", config.to_str().unwrap()])
        .env("YAGURA_LOG", "info,yagura_edge=debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join("edge.err")).unwrap())
        .spawn()
        .unwrap();
    // Logs go to stderr; keep them in one file.
    let log = dir.join("edge.err");
    Daemon {
        child,
        control: control.to_string(),
        log,
        config,
    }
}

/// The scripted peer's side of one connection.
struct Peer {
    s: TcpStream,
    buf: Vec<u8>,
    ctx: Context,
}

impl Peer {
    fn accept(l: &TcpListener, d: &Daemon) -> Self {
        l.set_nonblocking(true).unwrap();
        let start = Instant::now();
        loop {
            match l.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
                    return Self {
                        s,
                        buf: Vec::new(),
                        ctx: Context::default(),
                    };
                }
                Err(_) if start.elapsed() < Duration::from_secs(30) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("no connection from the edge: {e}\n{}", d.log()),
            }
        }
    }

    /// Next message; `None` when the edge closed the connection.
    fn recv(&mut self) -> Option<Message> {
        loop {
            match decode(&self.buf, &self.ctx).unwrap() {
                Decoded::Message {
                    message, consumed, ..
                } => {
                    self.buf.drain(..consumed);
                    return Some(message);
                }
                Decoded::TreatAsWithdraw { .. } => panic!("the edge sent a malformed UPDATE"),
                Decoded::Incomplete { .. } => {}
            }
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Next message that is not a KEEPALIVE.
    fn recv_non_keepalive(&mut self) -> Option<Message> {
        loop {
            match self.recv()? {
                Message::Keepalive => continue,
                m => return Some(m),
            }
        }
    }

    fn send(&mut self, m: Message) {
        let b = m.to_bytes(&self.ctx).unwrap();
        self.s.write_all(&b).unwrap();
    }

    fn raw(&mut self, b: &[u8]) {
        self.s.write_all(b).unwrap();
    }

    /// OPEN/KEEPALIVE exchange up to Established; returns the edge's first UPDATE(s) up to End-of-RIB.
    fn establish(&mut self) -> Vec<Update> {
        let Some(Message::Open(open)) = self.recv() else {
            panic!("expected OPEN")
        };
        assert_eq!(open.asn(), 65001);
        let ours = Open::new(65000, 9, Ipv4Addr::new(127, 0, 0, 2));
        self.ctx = Context::negotiated(&ours, &open);
        self.send(Message::Open(ours));
        self.send(Message::Keepalive);
        assert_eq!(self.recv(), Some(Message::Keepalive));
        let mut ups = Vec::new();
        loop {
            match self.recv_non_keepalive() {
                Some(Message::Update(u)) if u.end_of_rib_family().is_some() => {
                    // IPv6 End-of-RIB is not sent: only IPv4 unicast was negotiated (no MP capability).
                    return ups;
                }
                Some(Message::Update(u)) => ups.push(u),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

fn update(prefix: &str, extra: Vec<RawAttribute>, origin_raw: Option<u8>) -> Vec<u8> {
    let mut u = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence([65000])),
            next_hop: Some(Ipv4Addr::new(127, 0, 0, 2)),
            unknown: extra,
            ..Default::default()
        },
        nlri: vec![prefix.parse().unwrap()],
        ..Default::default()
    };
    u.attributes.unknown.sort_by_key(|a| a.type_code);
    let mut b = Message::Update(u)
        .to_bytes(&Context {
            four_octet_as: true,
        })
        .unwrap();
    if let Some(v) = origin_raw {
        // ORIGIN is encoded first: flags, type 1, length 1, value.
        let pos = b.windows(3).position(|w| w == [0x40, 1, 1]).unwrap();
        b[pos + 3] = v;
    }
    b
}

fn wait<T>(what: &str, d: &Daemon, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn malformed_messages_hook_reload_and_drain() {
    let dir = tempfile::tempdir().unwrap();
    let peer_port = free_port("127.0.0.2");
    let listener = TcpListener::bind(("127.0.0.2", peer_port)).unwrap();
    let control = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    let d = start(
        dir.path(),
        &config(peer_port, &control, "65000:1"),
        &control,
    );

    // --- connection 1: established, the static VIP arrives with its community.
    let mut p = Peer::accept(&listener, &d);
    let ups = p.establish();
    let first = ups.first().expect("the static VIP");
    assert_eq!(first.nlri, vec!["198.19.0.10/32".parse().unwrap()]);
    assert_eq!(
        first.attributes.communities,
        vec![yagura_bgp::packet::Community::new(65000, 1)]
    );
    assert_eq!(first.attributes.next_hop, Some(Ipv4Addr::new(127, 0, 0, 1)));

    // Unknown optional transitive attribute: accepted, the route counts as received.
    p.raw(&update(
        "198.18.99.0/24",
        vec![RawAttribute {
            flags: attr_flags::OPTIONAL | attr_flags::TRANSITIVE,
            type_code: 99,
            value: vec![1, 2, 3],
        }],
        None,
    ));
    wait("the route with an unknown attribute", &d, || {
        (d.status()["sessions"][0]["prefixes_received"] == 1).then_some(())
    });
    // Malformed ORIGIN (value 7): RFC 7606 treat-as-withdraw, the session stays up.
    p.raw(&update("198.18.99.0/24", vec![], Some(7)));
    wait("treat-as-withdraw", &d, || {
        (d.status()["sessions"][0]["prefixes_received"] == 0).then_some(())
    });
    assert_eq!(d.status()["sessions"][0]["state"], "established");

    // The announce hook: announce and withdraw the `lb` pool through the CLI.
    let out = d.cli(&["announce", "lb"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let Some(Message::Update(u)) = p.recv_non_keepalive() else {
        panic!()
    };
    assert_eq!(u.nlri, vec!["198.19.1.0/24".parse().unwrap()]);
    let out = d.cli(&["withdraw", "lb"]);
    assert!(out.status.success());
    let Some(Message::Update(u)) = p.recv_non_keepalive() else {
        panic!()
    };
    assert_eq!(u.withdrawn, vec!["198.19.1.0/24".parse().unwrap()]);
    // A VIP that is not hook-driven refuses the hook; an unknown VIP is 404.
    assert!(!d.cli(&["announce", "api"]).status.success());
    assert!(!d.cli(&["announce", "nope"]).status.success());

    // SIGHUP with a changed community: the session is not reset, the route is re-sent.
    std::fs::write(&d.config, config(peer_port, &control, "65000:2")).unwrap();
    d.signal("HUP");
    let Some(Message::Update(u)) = p.recv_non_keepalive() else {
        panic!("{}", d.log())
    };
    assert_eq!(
        u.attributes.communities,
        vec![yagura_bgp::packet::Community::new(65000, 2)]
    );
    assert_eq!(d.status()["sessions"][0]["flaps"], 0);
    // A broken config on SIGHUP is refused and the running one stays.
    std::fs::write(&d.config, "asn = 0\nbogus = 1\n").unwrap();
    d.signal("HUP");
    wait("the refused reload", &d, || {
        d.log().contains("reload refused").then_some(())
    });
    assert!(d.log().contains("edge.toml:2:1"), "{}", d.log());
    assert_eq!(d.status()["sessions"][0]["state"], "established");
    std::fs::write(&d.config, config(peer_port, &control, "65000:2")).unwrap();

    // Garbage (a header without the all-ones marker): NOTIFICATION 1/1 and close.
    p.raw(&[0u8; 19]);
    match p.recv_non_keepalive() {
        Some(Message::Notification(n)) => assert_eq!((n.code, n.subcode), (1, 1)),
        other => panic!("expected NOTIFICATION 1/1, got {other:?}"),
    }
    assert_eq!(p.recv(), None);

    // --- connection 2: a header with length 10: NOTIFICATION 1/2 (Bad Message Length) with the length.
    let mut p = Peer::accept(&listener, &d);
    p.establish();
    let mut bad = vec![0xff; 16];
    bad.extend_from_slice(&[0, 10, 4]);
    p.raw(&bad);
    match p.recv_non_keepalive() {
        Some(Message::Notification(n)) => {
            assert_eq!((n.code, n.subcode, n.data.clone()), (1, 2, vec![0, 10]))
        }
        other => panic!("expected NOTIFICATION 1/2, got {other:?}"),
    }

    // --- connection 3: a truncated message, then the connection closes: the daemon reconnects.
    let mut p = Peer::accept(&listener, &d);
    p.establish();
    let full = update("198.18.98.0/24", vec![], None);
    p.raw(&full[..full.len() / 2]);
    drop(p);

    // --- connection 4: everything still works; a NOTIFICATION from us closes cleanly.
    let mut p = Peer::accept(&listener, &d);
    p.establish();
    wait("established again", &d, || {
        (d.status()["sessions"][0]["state"] == "established").then_some(())
    });
    let st = d.status();
    assert!(st["sessions"][0]["flaps"].as_u64().unwrap() >= 3, "{st}");

    // SIGTERM: the VIP is withdrawn first, then Cease (Administrative Shutdown), then exit 0.
    d.signal("TERM");
    let Some(Message::Update(u)) = p.recv_non_keepalive() else {
        panic!("{}", d.log())
    };
    assert_eq!(u.withdrawn, vec!["198.19.0.10/32".parse().unwrap()]);
    match p.recv_non_keepalive() {
        Some(Message::Notification(n)) => assert_eq!(n, Notification::cease(2)),
        other => panic!("expected Cease, got {other:?}"),
    }
    let mut d = d;
    let start = Instant::now();
    let code = loop {
        if let Some(st) = d.child.try_wait().unwrap() {
            break st.code();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "daemon did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0), "{}", d.log());
}

#[test]
fn invalid_config_is_reported_with_positions_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("edge.toml");
    std::fs::write(
        &p,
        "asn = 65001\nrouter_id = \"198.18.0.11\"\n[[peers]]\nname = \"r\"\naddress = \"198.18.0.1\"\nasn = 65000\nhold_time = \"2s\"\nmd5_password = \"x\"\n[[vips]]\nname = \"v\"\nprefix = \"198.19.0.1/24\"\ncommunities = [\"1:2:3\"]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_yagura"))
        .args(["edge", "check", "--config", p.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for want in [
        "edge.toml:8:1",
        "edge.toml:7:13",
        "edge.toml:11:10",
        "edge.toml:12:16",
        "secret",
    ] {
        assert!(err.contains(want), "missing {want} in\n{err}");
    }
    let ok = dir.path().join("ok.toml");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/edge.toml");
    std::fs::copy(example, &ok).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_yagura"))
        .args(["edge", "check", "--config", ok.to_str().unwrap()])
        .env("EDGE_MD5_PASSWORD", "x")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
