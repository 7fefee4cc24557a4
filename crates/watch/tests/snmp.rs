//! SNMP polling against a real net-snmp `snmpd` (Debian `snmpd`), each test with its own agent and config: in a
//! network namespace the test creates (198.18.x.y over a veth pair), or on 127.0.0.1 at a free port:
//! - v2c and v3 authPriv (SHA + AES, users created by `createUser` in the test's snmpd.conf; SHA-256 + AES and
//!   SHA-512 + AES-256 too; a wrong pass phrase is a security error) polled together;
//!   a veth inside the namespace set down → `LinkDown` fires for its peer (admin up, oper down), set up →
//!   resolved; the interface names reach the flow name map; the agent killed → `SnmpDeviceDown`, restarted →
//!   resolved (over v3 too, with the agent's engine boots changed);
//! - counters wrap correctly and an agent restart resets the baselines: net-snmp's `pass` directive hands
//!   sysUpTime.0 and ifHCInOctets.1 to a script the test writes, which serves chosen values from the real agent;
//!   a community whose view hides ifXTable stands for a device with 32-bit counters only (fallback walk);
//! - the daemon started with an `[snmp]` section exports `yagura_snmp_*` metrics on /metrics, and a flow from
//!   an exporter that is also a polled device shows its interface names (`in_if_name`, `out_if_name`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{poll, require, Child, NetNs};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use yagura_alert::MemorySink;
use yagura_snmp::{AuthProtocol, Client, Credentials, PrivProtocol, RateTracker, Target};
use yagura_watch::snmp::{IfNames, SnmpConfig, SnmpGuard, SnmpMetrics};
use yagura_watch::ListenerKind;

const COMMUNITY: &str = "yagura-test-community";
const USER: &str = "yagura";
const AUTH_PASS: &str = "auth-pass-phrase";
const PRIV_PASS: &str = "priv-pass-phrase";
/// A community whose view hides ifXTable: a device with 32-bit counters only.
const LEGACY: &str = "yagura-test-legacy";

/// The path of `snmpd` when the test may run (root, `ip`, `snmpd`). In CI a missing one fails the test,
/// naming it; elsewhere the test is skipped with the reason printed.
fn ready() -> Option<PathBuf> {
    if !require(true, &["ip"]) {
        return None;
    }
    let found = yagura_testkit::find_tool("snmpd");
    if found.is_none() {
        yagura_testkit::needs(
            "the SNMP test",
            &["`snmpd` (Debian package snmpd, listed in scripts/deps/apt/snmp.txt)".into()],
        );
    }
    found
}

/// A net-snmp agent in a namespace, killed on drop.
struct Snmpd {
    bin: PathBuf,
    child: Option<Child>,
    conf: PathBuf,
    dir: PathBuf,
    ns: Option<String>,
    addr: SocketAddr,
}

impl Snmpd {
    /// Writes snmpd.conf (v2c community, v3 authPriv user, `extra` lines) under `dir` and starts the agent.
    fn start(bin: &Path, ns: &NetNs, dir: &Path, extra: &str) -> Self {
        let addr = SocketAddr::new(ns.ns_ip.parse().unwrap(), 161);
        Self::start_at(bin, Some(ns), addr, dir, extra)
    }

    /// Like [`Snmpd::start`], at `addr`, in the namespace `ns` or (None) in the test's own.
    fn start_at(bin: &Path, ns: Option<&NetNs>, addr: SocketAddr, dir: &Path, extra: &str) -> Self {
        let conf = dir.join("snmpd.conf");
        std::fs::create_dir_all(dir.join("persist")).unwrap();
        std::fs::write(
            &conf,
            format!(
                "rocommunity {COMMUNITY} 198.18.0.0/15\nrocommunity {COMMUNITY} 127.0.0.1\n\
                 createUser {USER} SHA \"{AUTH_PASS}\" AES \"{PRIV_PASS}\"\n\
                 rouser {USER} priv\n\
                 createUser {USER}256 SHA-256 \"{AUTH_PASS}\" AES \"{PRIV_PASS}\"\n\
                 rouser {USER}256 priv\n\
                 createUser {USER}512 SHA-512 \"{AUTH_PASS}\" AES-256 \"{PRIV_PASS}\"\n\
                 rouser {USER}512 priv\n{extra}\n"
            ),
        )
        .unwrap();
        let mut s = Self {
            bin: bin.to_path_buf(),
            child: None,
            conf,
            dir: dir.to_path_buf(),
            ns: ns.map(|n| n.name.clone()),
            addr,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join("snmpd.log")).unwrap();
        let mut cmd = match &self.ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        let child = cmd
            .args(["-f", "-Lo", "-C", "-m", "", "-M"])
            .arg(self.dir.join("nomibs"))
            .arg("-c")
            .arg(&self.conf)
            .arg("-p")
            .arg(self.dir.join("snmpd.pid"))
            .arg(format!("udp:{}", self.addr))
            .env("SNMP_PERSISTENT_DIR", self.dir.join("persist"))
            .env("MIBS", "")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("snmpd");
        self.child = Some(Child(child));
    }

    fn kill(&mut self) {
        self.child = None;
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("snmpd.log")).unwrap_or_default()
    }
}

fn v2c(name: &str, addr: SocketAddr) -> Target {
    Target {
        name: name.into(),
        addr,
        credentials: Credentials::V2c {
            community: COMMUNITY.as_bytes().to_vec(),
        },
        timeout: Duration::from_millis(500),
        retries: 1,
        max_repetitions: 20,
    }
}

fn v3(name: &str, addr: SocketAddr) -> Target {
    Target {
        credentials: Credentials::V3 {
            user: USER.into(),
            auth: AuthProtocol::Sha1,
            auth_password: AUTH_PASS.as_bytes().to_vec(),
            privacy: Some((PrivProtocol::Aes128, PRIV_PASS.as_bytes().to_vec())),
        },
        ..v2c(name, addr)
    }
}

/// Polls until the agent answers (it takes a moment to start), within 15 s.
async fn wait_ready(s: &Snmpd, t: Target) -> yagura_snmp::Sample {
    let mut c = Client::new(t);
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        match c.poll().await {
            Ok(s) => return s,
            Err(e) => assert!(
                Instant::now() < end,
                "snmpd never answered: {e}\n{}",
                s.log()
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One poll: when it started and what the agent reported (lo is ifIndex 1 in a fresh namespace).
async fn sample(c: &mut Client) -> (Instant, yagura_snmp::Sample) {
    let started = Instant::now();
    (started, c.poll().await.unwrap())
}

fn ns_output(ns: &NetNs, args: &[&str]) -> String {
    let out = ns.command(args[0]).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{args:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn metrics_text(r: &Registry) -> String {
    let mut s = String::new();
    prometheus_client::encoding::text::encode(&mut s, r).unwrap();
    s
}

fn guard_config(ip: &str, port: u16, tag: &str) -> SnmpConfig {
    // Secrets are given to the daemon as environment variable names; per-test names keep tests independent.
    std::env::set_var(format!("YG_SNMP_COMMUNITY_{tag}"), COMMUNITY);
    std::env::set_var(format!("YG_SNMP_AUTH_{tag}"), AUTH_PASS);
    std::env::set_var(format!("YG_SNMP_PRIV_{tag}"), PRIV_PASS);
    let text = format!(
        r#"
[storage]
path = "/nonexistent/w.db"
max_size = "64MiB"
[snmp]
timeout = "400ms"
retries = 1
[[snmp.devices]]
name = "v2"
address = "{ip}"
port = {port}
version = "2c"
community_env = "YG_SNMP_COMMUNITY_{tag}"
interval = "1s"
[[snmp.devices]]
name = "v3"
address = "{ip}"
port = {port}
version = "3"
user = "{USER}"
auth_protocol = "sha"
auth_password_env = "YG_SNMP_AUTH_{tag}"
privacy_protocol = "aes"
privacy_password_env = "YG_SNMP_PRIV_{tag}"
interval = "1s"
"#
    );
    yagura_daemon::config::parse::<yagura_watch::WatchConfig>("snmp-test.toml", &text)
        .unwrap()
        .config
        .snmp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2c_and_v3_link_down_and_device_down() {
    let Some(snmpd) = ready() else {
        return;
    };
    let ns = NetNs::new("sld", 1);
    // A veth pair inside the namespace: `ylb` goes oper-down (admin still up) when its peer `yla` is set down.
    ns.exec(&[
        "ip", "link", "add", "yla", "type", "veth", "peer", "name", "ylb",
    ]);
    ns.exec(&["ip", "link", "set", "yla", "up"]);
    ns.exec(&["ip", "link", "set", "ylb", "up"]);
    let ylb_index: u32 = ns_output(&ns, &["cat", "/sys/class/net/ylb/ifindex"])
        .parse()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Snmpd::start(&snmpd, &ns, dir.path(), "");
    let first = wait_ready(&agent, v3("probe", agent.addr)).await;
    assert_eq!(first.interfaces[&ylb_index].name, "ylb");
    // SHA-256 + AES-128, and SHA-512 + AES-256 (Blumenthal key extension, as net-snmp does it).
    for (user, auth, privacy) in [
        ("256", AuthProtocol::Sha256, PrivProtocol::Aes128),
        ("512", AuthProtocol::Sha512, PrivProtocol::Aes256),
    ] {
        let t = Target {
            credentials: Credentials::V3 {
                user: format!("{USER}{user}"),
                auth,
                auth_password: AUTH_PASS.as_bytes().to_vec(),
                privacy: Some((privacy, PRIV_PASS.as_bytes().to_vec())),
            },
            ..v2c("probe", agent.addr)
        };
        let s = Client::new(t)
            .poll()
            .await
            .unwrap_or_else(|e| panic!("{auth:?}/{privacy:?}: {e}"));
        assert_eq!(s.interfaces[&ylb_index].name, "ylb");
    }
    // A wrong pass phrase is a security error, not a timeout.
    let wrong = Target {
        credentials: Credentials::V3 {
            user: USER.into(),
            auth: AuthProtocol::Sha1,
            auth_password: b"not-the-pass-phrase".to_vec(),
            privacy: Some((PrivProtocol::Aes128, PRIV_PASS.as_bytes().to_vec())),
        },
        ..v2c("probe", agent.addr)
    };
    let e = Client::new(wrong).poll().await.unwrap_err();
    assert_eq!(e.reason(), "security", "{e}");

    let mut registry = Registry::default();
    let metrics = SnmpMetrics::register(&mut registry);
    let sink = Arc::new(MemorySink::default());
    let names = IfNames::default();
    let stop = CancellationToken::new();
    let mut guard = SnmpGuard::new(metrics, sink.clone(), names.clone());
    guard.start(&guard_config(&ns.ns_ip, 161, "SLD"), &stop);

    poll("both devices polled", Duration::from_secs(15), || {
        let t = metrics_text(&registry);
        async move {
            (t.contains("yagura_snmp_up{device=\"v2\"} 1")
                && t.contains("yagura_snmp_up{device=\"v3\"} 1")
                && t.contains("yagura_snmp_if_oper_status{device=\"v3\",ifName=\"ylb\""))
            .then_some(())
        }
    })
    .await;
    assert_eq!(
        names
            .lookup(&ns.ns_ip, Some(i64::from(ylb_index)))
            .as_deref(),
        Some("ylb"),
        "interface names for flows"
    );

    ns.exec(&["ip", "link", "set", "yla", "down"]);
    poll(
        "LinkDown for ylb over v2c and v3",
        Duration::from_secs(20),
        || {
            let s = sink.clone();
            async move {
                (s.is_firing("LinkDown", &[("device", "v2"), ("ifName", "ylb")])
                    && s.is_firing("LinkDown", &[("device", "v3"), ("ifName", "ylb")]))
                .then_some(())
            }
        },
    )
    .await;
    // `yla` itself is administratively down: that is not a link alert.
    assert!(!sink.is_firing("LinkDown", &[("ifName", "yla")]));
    assert!(
        metrics_text(&registry)
            .contains("yagura_snmp_if_oper_status{device=\"v2\",ifName=\"ylb\",ifAlias=\"\"} 2")
            || metrics_text(&registry).contains(
                "yagura_snmp_if_oper_status{device=\"v2\",ifName=\"ylb\",ifAlias=\"\"} 7"
            )
    );

    ns.exec(&["ip", "link", "set", "yla", "up"]);
    poll("LinkDown resolved", Duration::from_secs(20), || {
        let s = sink.clone();
        async move { (!s.is_firing("LinkDown", &[("ifName", "ylb")])).then_some(()) }
    })
    .await;

    agent.kill();
    poll("SnmpDeviceDown for both", Duration::from_secs(20), || {
        let s = sink.clone();
        async move {
            (s.is_firing("SnmpDeviceDown", &[("device", "v2")])
                && s.is_firing("SnmpDeviceDown", &[("device", "v3")]))
            .then_some(())
        }
    })
    .await;
    assert!(metrics_text(&registry).contains("yagura_snmp_up{device=\"v3\"} 0"));

    // Back (v3: the agent's engine boots went up, the session rediscovers it).
    agent.spawn();
    poll("SnmpDeviceDown resolved", Duration::from_secs(20), || {
        let s = sink.clone();
        async move {
            (!s.is_firing("SnmpDeviceDown", &[("device", "v2")])
                && !s.is_firing("SnmpDeviceDown", &[("device", "v3")]))
            .then_some(())
        }
    })
    .await;
    guard.stop();
}

const PASS_SCRIPT: &str = r#"#!/bin/sh
# net-snmp `pass` script: serves sysUpTime.0 and ifHCInOctets.1 from files the test writes.
D=$(dirname "$0")
UP=$(cat "$D/uptime")
HC=$(cat "$D/hcin")
case "$1" in
  -g)
    case "$2" in
      .1.3.6.1.2.1.1.3.0) printf '%s\ntimeticks\n%s\n' "$2" "$UP" ;;
      .1.3.6.1.2.1.31.1.1.1.6.1) printf '%s\ncounter64\n%s\n' "$2" "$HC" ;;
    esac ;;
  -n)
    case "$2" in
      .1.3.6.1.2.1.1.3|.1.3.6.1.2.1.1) printf '.1.3.6.1.2.1.1.3.0\ntimeticks\n%s\n' "$UP" ;;
      .1.3.6.1.2.1.31.1.1.1.6|.1.3.6.1.2.1.31.1.1.1.6.0) printf '.1.3.6.1.2.1.31.1.1.1.6.1\ncounter64\n%s\n' "$HC" ;;
    esac ;;
esac
exit 0
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_wrap_and_agent_restart_from_the_real_agent() {
    let Some(snmpd) = ready() else {
        return;
    };
    let ns = NetNs::new("swr", 2);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("pass.sh");
    std::fs::write(&script, PASS_SCRIPT).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let set = |up: u32, hc: u64| {
        std::fs::write(dir.path().join("uptime"), up.to_string()).unwrap();
        std::fs::write(dir.path().join("hcin"), hc.to_string()).unwrap();
    };
    set(100_000, u64::MAX - 999);
    // Priority 10 beats the agent's own registrations of these OIDs (default 127).
    let agent = Snmpd::start(
        &snmpd,
        &ns,
        dir.path(),
        &format!(
            "pass -p 10 .1.3.6.1.2.1.1.3 {0}\npass -p 10 .1.3.6.1.2.1.31.1.1.1.6 {0}\n\
             view legacy included .1\nview legacy excluded .1.3.6.1.2.1.31\n\
             rocommunity {LEGACY} 198.18.0.0/15 -V legacy",
            script.display()
        ),
    );
    let s = wait_ready(&agent, v2c("wrap", agent.addr)).await;
    assert_eq!(s.sys_uptime, 100_000, "{}", agent.log());

    let mut client = Client::new(v2c("wrap", agent.addr));
    let mut tracker = RateTracker::default();
    let epoch = Instant::now();
    let (at, s) = sample(&mut client).await;
    assert_eq!(
        s.interfaces[&1].counters.in_octets,
        Some(yagura_snmp::Counter::C64(u64::MAX - 999))
    );
    assert!(tracker
        .update(at.duration_since(epoch), &s)
        .interfaces
        .is_empty());

    // Wrapped past 2^64: 1000 octets up to the top, 3000 after it.
    set(100_100, 3000);
    let (at, s) = sample(&mut client).await;
    let r = tracker.update(at.duration_since(epoch), &s);
    assert!(!r.restarted);
    let lo = &r.interfaces[&1];
    assert_eq!(lo.in_octets_delta, Some(4000), "{r:?}");
    assert!(lo.in_bps.is_some_and(|b| b > 0.0 && b.is_finite()));

    // The agent "restarted": sysUpTime went down. No rate, no spike; baselines reset.
    set(50, 10);
    let (at, s) = sample(&mut client).await;
    let r = tracker.update(at.duration_since(epoch), &s);
    assert!(r.restarted, "{r:?}");
    assert!(r.interfaces.is_empty());

    // Measured from the new baseline.
    set(150, 1010);
    let (at, s) = sample(&mut client).await;
    let r = tracker.update(at.duration_since(epoch), &s);
    assert_eq!(r.interfaces[&1].in_octets_delta, Some(1000), "{r:?}");

    // A counter that went back without a restart (a reset, not a wrap): no rate rather than a wrong one.
    set(250, 5);
    let (at, s) = sample(&mut client).await;
    let r = tracker.update(at.duration_since(epoch), &s);
    let lo = &r.interfaces[&1];
    assert_eq!(lo.in_bps, None, "{r:?}");
    assert!(lo.discontinuity);

    // A device without ifXTable (a view hides it): names from ifDescr, 32-bit counters, rates from them.
    let legacy = Target {
        credentials: Credentials::V2c {
            community: LEGACY.as_bytes().to_vec(),
        },
        ..v2c("legacy", agent.addr)
    };
    let mut client = Client::new(legacy);
    let mut tracker = RateTracker::default();
    let (at, s) = sample(&mut client).await;
    assert!(s.needs_fallback);
    let veth = s
        .interfaces
        .values()
        .find(|i| i.name == ns.ns_if)
        .unwrap_or_else(|| panic!("{s:?}"));
    assert!(matches!(
        veth.counters.in_octets,
        Some(yagura_snmp::Counter::C32(_))
    ));
    assert_eq!(veth.alias, "");
    let idx = veth.index;
    tracker.update(at.duration_since(epoch), &s);
    let (at, s) = sample(&mut client).await;
    let r = tracker.update(at.duration_since(epoch), &s);
    assert!(r.interfaces[&idx].in_bps.is_some(), "{r:?}");
}

/// A NetFlow v5 datagram with one flow in on ifIndex `input`, out on `output`.
fn netflow_v5(input: u16, output: u16) -> Vec<u8> {
    let mut v = Vec::new();
    let now = (yagura_watch::store::now_ms() / 1000) as u32;
    for (x, n) in [
        (5u32, 2),
        (1, 2),
        (1000, 4),
        (now, 4),
        (0, 4),
        (1, 4),
        (0, 4),
    ] {
        v.extend_from_slice(&x.to_be_bytes()[4 - n..]);
    }
    v.extend_from_slice(&[198, 18, 7, 1, 198, 18, 8, 1, 0, 0, 0, 0]);
    v.extend_from_slice(&input.to_be_bytes());
    v.extend_from_slice(&output.to_be_bytes());
    for x in [10u32, 1000, 0, 1000] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(&4000u16.to_be_bytes());
    v.extend_from_slice(&80u16.to_be_bytes());
    v.extend_from_slice(&[0, 0x18, 6, 0, 0, 0, 0, 0, 24, 24, 0, 0]);
    assert_eq!(v.len(), 24 + 48);
    v
}

/// The whole daemon with an `[snmp]` section: metrics on /metrics, and interface names in flow queries for an
/// exporter that is also a polled device. The agent runs on 127.0.0.1 (a free port) so that NetFlow sent from
/// 127.0.0.1 comes from the device's address; ifIndex 1 there is `lo`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_exports_metrics_and_names_flow_interfaces() {
    let Some(snmpd) = ready() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let agent = Snmpd::start_at(&snmpd, None, addr, &dir.path().join("agent"), "");
    let lo = wait_ready(&agent, v2c("probe", agent.addr)).await;
    assert_eq!(lo.interfaces[&1].name, "lo");
    let mut c = common::config("127.0.0.1", dir.path(), "64MiB");
    c.snmp = guard_config("127.0.0.1", port, "SDM");
    let running = common::Running::start(c).await;
    poll("yagura_snmp_* on /metrics", Duration::from_secs(15), || {
        let r = &running;
        async move {
            let t = r.metrics().await;
            (t.contains("yagura_snmp_up{device=\"v2\"} 1")
                && t.contains("yagura_snmp_up{device=\"v3\"} 1")
                && t.contains("yagura_snmp_if_oper_status{device=\"v3\",ifName=\"lo\""))
            .then_some(())
        }
    })
    .await;

    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    tx.send_to(&netflow_v5(1, 1), running.addr(ListenerKind::Netflow))
        .unwrap();
    let r = &running;
    let v = poll(
        "the flow, with interface names",
        Duration::from_secs(10),
        || async move {
            let v = r
                .get(
                    "/api/v1/flows",
                    &[("exporter", "127.0.0.1"), ("from", "5m")],
                )
                .await;
            (common::rows(&v) == 1).then_some(v)
        },
    )
    .await;
    assert_eq!(v["rows"][0]["in_if"], 1, "{v}");
    assert_eq!(v["rows"][0]["in_if_name"], "lo", "{v}");
    assert_eq!(v["rows"][0]["out_if_name"], "lo", "{v}");

    // Reload without `v3`: polling restarts with the new config and v3's series go away.
    let mut c = running.daemon.config().clone();
    c.snmp.devices.retain(|d| d.name == "v2");
    let mut running = running;
    running.daemon.reload(c).await.unwrap();
    poll(
        "v3 gone after reload, v2 still polled",
        Duration::from_secs(15),
        || {
            let r = &running;
            async move {
                let t = r.metrics().await;
                (!t.contains("device=\"v3\"") && t.contains("yagura_snmp_up{device=\"v2\"} 1"))
                    .then_some(())
            }
        },
    )
    .await;
    running.daemon.shutdown().await;
}
