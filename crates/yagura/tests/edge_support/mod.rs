//! Shared helpers of the `edge_*` interop tests: network namespaces, veth links and bridges with guards that
//! remove them (even when a test fails), processes killed on drop, polling with deadlines, and starting FRR,
//! BIRD, GoBGP and `yagura edge` inside a namespace with their own temp configs.
//!
//! Addresses used: 198.18.0.0/15 and 2001:db8::/32 inside the namespaces only.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `yagura` binary under test.
pub fn yagura_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_yagura"))
}

/// Whether the test can run: root and the tools. Outside CI a missing prerequisite skips with a printed reason;
/// with `CI=true` it fails naming what is missing.
pub fn require(tools: &[&str]) -> bool {
    let mut missing = Vec::new();
    if !yagura_testkit::is_root() {
        missing.push("root (network namespaces)".to_string());
    }
    for t in tools {
        if !tool_exists(t) {
            missing.push(format!(
                "`{t}` (Debian packages in scripts/deps/apt/edge.txt)"
            ));
        }
    }
    yagura_testkit::needs("edge interop test", &missing)
}

/// On `PATH`, in the system directories, or among FRR's daemons.
fn tool_exists(t: &str) -> bool {
    yagura_testkit::find_tool(t).is_some() || Path::new("/usr/lib/frr").join(t).exists()
}

/// Runs a command, panicking with its output on failure.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command and returns its output whatever the status.
pub fn try_sh(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Polls `f` every 50 ms until it returns `Some` or `deadline` passes; panics with `what` on timeout.
pub fn wait_for<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A network namespace, deleted on drop (with every process still in it killed).
pub struct Netns {
    /// Its name.
    pub name: String,
}

impl Netns {
    /// Creates `name` (removing a leftover of a crashed run first) with `lo` up.
    pub fn new(name: &str) -> Self {
        let _ = try_sh(&["ip", "netns", "del", name]);
        sh(&["ip", "netns", "add", name]);
        let ns = Self {
            name: name.to_string(),
        };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside, panicking on failure.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// Runs a command inside, whatever its status.
    pub fn try_exec(&self, args: &[&str]) -> Output {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        try_sh(&v)
    }

    /// A `Command` that runs `program` inside.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Sets a sysctl inside.
    pub fn sysctl(&self, kv: &str) {
        self.exec(&["sysctl", "-qw", kv]);
    }

    /// The kernel route for `prefix` (`ip route show PREFIX`, or `ip -6 …`).
    pub fn route(&self, prefix: &str) -> String {
        let fam = if prefix.contains(':') { "-6" } else { "-4" };
        String::from_utf8_lossy(&self.try_exec(&["ip", fam, "route", "show", prefix]).stdout)
            .into_owned()
    }

    /// Number of next hops the kernel has for `prefix` (0 when there is no route).
    pub fn next_hops(&self, prefix: &str) -> usize {
        let r = self.route(prefix);
        if r.trim().is_empty() {
            return 0;
        }
        let n = r.matches("nexthop via").count();
        if n == 0 {
            1
        } else {
            n
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill what still runs inside, then delete the namespace.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Connects `a` and `b` with a veth pair (`a_if` in `a`, `b_if` in `b`), both up.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp_a = format!("yv{}x{n}", std::process::id() % 100_000);
    let _ = try_sh(&["ip", "link", "del", &tmp_a]);
    sh(&[
        "ip",
        "link",
        "add",
        &tmp_a,
        "type",
        "veth",
        "peer",
        "name",
        &format!("{tmp_a}p"),
    ]);
    sh(&["ip", "link", "set", &tmp_a, "netns", &a.name]);
    sh(&["ip", "link", "set", &format!("{tmp_a}p"), "netns", &b.name]);
    a.exec(&["ip", "link", "set", &tmp_a, "name", a_if]);
    b.exec(&["ip", "link", "set", &format!("{tmp_a}p"), "name", b_if]);
    a.exec(&["ip", "link", "set", a_if, "up"]);
    b.exec(&["ip", "link", "set", b_if, "up"]);
}

/// A child process killed (SIGKILL) and reaped on drop.
pub struct Proc {
    /// The child.
    pub child: Child,
    /// What it is (for messages).
    pub what: String,
}

impl Proc {
    /// Spawns `cmd` with stdout/stderr to `log`.
    pub fn spawn(mut cmd: Command, what: &str, log: &Path) -> Self {
        let f = std::fs::File::create(log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        Self {
            child,
            what: what.to_string(),
        }
    }

    /// Sends a signal.
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status();
    }

    /// Waits for the process to exit within `deadline`; returns its exit status code.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temp directory readable by the `frr` user (FRR drops privileges).
pub fn tempdir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("yagura-edge-")
        .tempdir()
        .unwrap();
    let _ = Command::new("chmod")
        .args(["0777", d.path().to_str().unwrap()])
        .status();
    d
}

/// FRR (zebra, bfdd, bgpd) in a namespace, with `-N` so its sockets live under /var/run/frr/NAME.
pub struct Frr {
    ns: String,
    dir: PathBuf,
    pids: Vec<PathBuf>,
}

impl Frr {
    /// Starts zebra, bfdd and bgpd in `ns`. `config` is an frr.conf body; the part before `router bgp` goes to
    /// bfdd, the `router bgp` part to bgpd (each daemon gets its own file: a daemon stops reading a shared file
    /// at another daemon's `exit`).
    pub fn start(ns: &Netns, dir: &Path, config: &str) -> Self {
        let run = format!("/var/run/frr/{}", ns.name);
        let _ = std::fs::remove_dir_all(&run);
        sh(&[
            "install",
            "-d",
            "-o",
            "frr",
            "-g",
            "frr",
            "-m",
            "0755",
            "/var/run/frr",
        ]);
        sh(&[
            "install", "-d", "-o", "frr", "-g", "frr", "-m", "0755", &run,
        ]);
        let (head, bgp) = match config.find("router bgp") {
            Some(i) => config.split_at(i),
            None => (config, ""),
        };
        let header: String = head
            .lines()
            .take_while(|l| !l.starts_with("bfd"))
            .map(|l| format!("{l}\n"))
            .collect();
        let mut pids = Vec::new();
        for d in ["zebra", "bfdd", "bgpd"] {
            let body = match d {
                "zebra" => header.clone(),
                "bfdd" => head.to_string(),
                _ => format!("{header}{bgp}"),
            };
            let conf = dir.join(format!("{d}.conf"));
            std::fs::write(&conf, body).unwrap();
            let _ = Command::new("chmod")
                .args(["0666", conf.to_str().unwrap()])
                .status();
            let pid = dir.join(format!("{d}.pid"));
            let log = dir.join(format!("{d}.log"));
            std::fs::write(&log, "").unwrap();
            let _ = Command::new("chown")
                .args(["frr:frr", log.to_str().unwrap()])
                .status();
            let args = vec![
                "-d".to_string(),
                "-N".to_string(),
                ns.name.clone(),
                "-f".to_string(),
                conf.display().to_string(),
                "-i".to_string(),
                pid.display().to_string(),
                "--log".to_string(),
                format!("file:{}", log.display()),
            ];
            let mut c = ns.command(&format!("/usr/lib/frr/{d}"));
            c.args(&args);
            let out = c.output().unwrap();
            assert!(
                out.status.success(),
                "{d}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            pids.push(pid);
            if d == "zebra" {
                // bgpd and bfdd connect to zebra's socket.
                let sock = format!("{run}/zserv.api");
                wait_for("zebra socket", Duration::from_secs(10), || {
                    Path::new(&sock).exists().then_some(())
                });
            }
        }
        Self {
            ns: ns.name.clone(),
            dir: dir.to_path_buf(),
            pids,
        }
    }

    /// `vtysh -N NS -c CMD`.
    pub fn vtysh(&self, cmd: &str) -> String {
        String::from_utf8_lossy(&try_sh(&["vtysh", "-N", &self.ns, "-c", cmd]).stdout).into_owned()
    }

    /// The bgpd log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("bgpd.log")).unwrap_or_default()
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        for p in &self.pids {
            if let Ok(pid) = std::fs::read_to_string(p) {
                let _ = Command::new("kill").args(["-9", pid.trim()]).status();
            }
        }
        let _ = std::fs::remove_dir_all(format!("/var/run/frr/{}", self.ns));
    }
}

/// A `yagura edge` daemon inside a namespace.
pub struct Edge {
    /// The process.
    pub proc: Proc,
    /// Its config file.
    pub config: PathBuf,
    /// Its log file.
    pub log: PathBuf,
    /// Its control address.
    pub control: String,
    /// The namespace name.
    pub ns: String,
}

impl Edge {
    /// Writes `config` and starts `yagura edge --config` in `ns`.
    pub fn start(ns: &Netns, dir: &Path, name: &str, config: &str, control: &str) -> Self {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, config).unwrap();
        let log = dir.join(format!("{name}.log"));
        Self::spawn(ns, &path, &log, control)
    }

    fn spawn(ns: &Netns, path: &Path, log: &Path, control: &str) -> Self {
        let mut c = ns.command(yagura_bin().to_str().unwrap());
        c.args(["edge", "--config", path.to_str().unwrap()]);
        c.env("YAGURA_LOG", "info,yagura_edge=debug");
        c.env("NO_COLOR", "1");
        let proc = Proc::spawn(c, "yagura edge", log);
        Self {
            proc,
            config: path.to_path_buf(),
            log: log.to_path_buf(),
            control: control.to_string(),
            ns: ns.name.clone(),
        }
    }

    /// Starts the same daemon again (after a kill).
    pub fn restart(&mut self, ns: &Netns) {
        let log = self.log.with_extension("2.log");
        let e = Self::spawn(ns, &self.config, &log, &self.control);
        *self = e;
    }

    /// Runs `yagura edge SUBCOMMAND --control ADDR` inside the namespace.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut v = vec![
            "ip",
            "netns",
            "exec",
            &self.ns,
            yagura_bin().to_str().unwrap().to_string().leak(),
        ];
        v.push("edge");
        v.extend_from_slice(args);
        v.push("--control");
        v.push(self.control.clone().leak());
        try_sh(&v)
    }

    /// The status document from the control API.
    pub fn status(&self) -> serde_json::Value {
        let out = self.cli(&["status", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A per-test, per-process name prefix for namespaces (short: interface names are at most 15 characters).
pub fn prefix(test: &str) -> String {
    format!("{test}{}", std::process::id() % 100_000)
}

/// The test topology: a router namespace with a bridge `br0` (198.18.0.1/24, 2001:db8::1/64) shared by the
/// edges (198.18.0.1N/24, 2001:db8::1N/64), and a client namespace behind the router (198.18.1.2/24 via
/// 198.18.1.1, 2001:db8:1::2/64 via 2001:db8:1::1).
pub struct Topo {
    /// The router.
    pub router: Netns,
    /// The client.
    pub client: Netns,
    /// The edges.
    pub edges: Vec<Netns>,
}

impl Topo {
    /// Builds it with `n` edges; namespace names start with `prefix`.
    pub fn new(prefix: &str, n: usize) -> Self {
        let router = Netns::new(&format!("{prefix}r"));
        let client = Netns::new(&format!("{prefix}c"));
        router.exec(&["ip", "link", "add", "br0", "type", "bridge"]);
        router.exec(&["ip", "link", "set", "br0", "up"]);
        router.exec(&["ip", "addr", "add", "198.18.0.1/24", "dev", "br0"]);
        router.exec(&["ip", "addr", "add", "2001:db8::1/64", "dev", "br0", "nodad"]);
        router.sysctl("net.ipv4.ip_forward=1");
        router.sysctl("net.ipv6.conf.all.forwarding=1");
        router.sysctl("net.ipv4.fib_multipath_hash_policy=1");
        router.sysctl("net.ipv6.fib_multipath_hash_policy=1");
        veth(&router, "cl0", &client, "eth0");
        router.exec(&["ip", "addr", "add", "198.18.1.1/24", "dev", "cl0"]);
        router.exec(&[
            "ip",
            "addr",
            "add",
            "2001:db8:1::1/64",
            "dev",
            "cl0",
            "nodad",
        ]);
        client.exec(&["ip", "addr", "add", "198.18.1.2/24", "dev", "eth0"]);
        client.exec(&[
            "ip",
            "addr",
            "add",
            "2001:db8:1::2/64",
            "dev",
            "eth0",
            "nodad",
        ]);
        client.exec(&["ip", "route", "add", "default", "via", "198.18.1.1"]);
        client.exec(&[
            "ip",
            "-6",
            "route",
            "add",
            "default",
            "via",
            "2001:db8:1::1",
        ]);
        let mut edges = Vec::new();
        for i in 1..=n {
            let e = Netns::new(&format!("{prefix}e{i}"));
            let port = format!("p{i}");
            veth(&router, &port, &e, "eth0");
            router.exec(&["ip", "link", "set", &port, "master", "br0"]);
            e.exec(&[
                "ip",
                "addr",
                "add",
                &format!("198.18.0.{}/24", 10 + i),
                "dev",
                "eth0",
            ]);
            e.exec(&[
                "ip",
                "addr",
                "add",
                &format!("2001:db8::{}/64", 10 + i),
                "dev",
                "eth0",
                "nodad",
            ]);
            e.exec(&["ip", "route", "add", "default", "via", "198.18.0.1"]);
            e.exec(&["ip", "-6", "route", "add", "default", "via", "2001:db8::1"]);
            edges.push(e);
        }
        Self {
            router,
            client,
            edges,
        }
    }

    /// Edge `i`'s (1-based) IPv4 address.
    pub fn edge_v4(i: usize) -> String {
        format!("198.18.0.{}", 10 + i)
    }

    /// Edge `i`'s (1-based) IPv6 address.
    pub fn edge_v6(i: usize) -> String {
        format!("2001:db8::{}", 10 + i)
    }
}

/// A minimal edge config peering with the router at `peer` (AS 65000) from AS 65001.
pub fn edge_config(i: usize, peer: &str, extra_peer: &str, vips: &str) -> String {
    format!(
        r#"asn = 65001
router_id = "198.18.0.{id}"
control = "127.0.0.1:9179"
drain_wait = "2s"

# 300 ms x 3: fast enough to show BFD beating the hold time by far, slow enough not to flap when the test
# machine is loaded (100 ms x 3 did, on 2 shared cores).
[bfd]
interval = "300ms"
multiplier = 3

[[peers]]
name = "router"
address = "{peer}"
asn = 65000
hold_time = "30s"
connect_retry = "1s"
connect_retry_max = "2s"
{extra_peer}

{vips}
"#,
        id = 10 + i
    )
}

/// An edge config with two peers — the router over IPv4 (`r4`) and over IPv6 (`r6`) — for BIRD and GoBGP.
pub fn dual_stack_edge_config(i: usize, bfd: bool, vips: &str) -> String {
    let bfd = if bfd { "" } else { "bfd = { enabled = false }" };
    format!(
        r#"asn = 65001
router_id = "198.18.0.{id}"
control = "127.0.0.1:9179"
drain_wait = "1s"

[bfd]
interval = "100ms"
multiplier = 3

[[peers]]
name = "r4"
address = "198.18.0.1"
asn = 65000
hold_time = "30s"
connect_retry = "1s"
connect_retry_max = "2s"
{bfd}

[[peers]]
name = "r6"
address = "2001:db8::1"
asn = 65000
hold_time = "30s"
connect_retry = "1s"
connect_retry_max = "2s"
{bfd}

{vips}
"#,
        id = 10 + i
    )
}

/// BIRD 2 in a namespace, in the foreground, with its own control socket.
pub struct Bird {
    /// The process.
    pub proc: Proc,
    sock: PathBuf,
    ns: String,
}

impl Bird {
    /// Starts `bird -f -c CONF -s SOCK` in `ns`.
    pub fn start(ns: &Netns, dir: &Path, config: &str) -> Self {
        let conf = dir.join("bird.conf");
        std::fs::write(&conf, config).unwrap();
        let sock = dir.join("bird.ctl");
        let mut c = ns.command("bird");
        c.args([
            "-f",
            "-c",
            conf.to_str().unwrap(),
            "-s",
            sock.to_str().unwrap(),
        ]);
        c.args(["-P", dir.join("bird.pid").to_str().unwrap()]);
        let proc = Proc::spawn(c, "bird", &dir.join("bird.out"));
        wait_for("BIRD's control socket", Duration::from_secs(10), || {
            sock.exists().then_some(())
        });
        Self {
            proc,
            sock,
            ns: ns.name.clone(),
        }
    }

    /// `birdc -s SOCK CMD…`.
    pub fn birdc(&self, cmd: &str) -> String {
        let mut v = vec![
            "ip",
            "netns",
            "exec",
            &self.ns,
            "birdc",
            "-s",
            self.sock.to_str().unwrap(),
        ];
        v.extend(cmd.split_whitespace());
        String::from_utf8_lossy(&try_sh(&v).stdout).into_owned()
    }
}

/// GoBGP (gobgpd) in a namespace with its gRPC API on 127.0.0.1:50051 of that namespace.
pub struct GoBgp {
    /// The process.
    pub proc: Proc,
    ns: String,
}

impl GoBgp {
    /// Starts `gobgpd -f CONF` in `ns`.
    pub fn start(ns: &Netns, dir: &Path, config: &str) -> Self {
        let conf = dir.join("gobgpd.toml");
        std::fs::write(&conf, config).unwrap();
        let mut c = ns.command("gobgpd");
        c.args([
            "-f",
            conf.to_str().unwrap(),
            "--api-hosts",
            "127.0.0.1:50051",
            "-l",
            "info",
        ]);
        let proc = Proc::spawn(c, "gobgpd", &dir.join("gobgpd.log"));
        let g = Self {
            proc,
            ns: ns.name.clone(),
        };
        wait_for("gobgpd's API", Duration::from_secs(20), || {
            g.cmd(&["global"]).status.success().then_some(())
        });
        g
    }

    /// `gobgp ARGS…` against this daemon.
    pub fn cmd(&self, args: &[&str]) -> Output {
        let mut v = vec![
            "ip",
            "netns",
            "exec",
            &self.ns,
            "gobgp",
            "-u",
            "127.0.0.1",
            "-p",
            "50051",
        ];
        v.extend_from_slice(args);
        try_sh(&v)
    }

    /// Number of paths GoBGP holds for `prefix` in its global RIB.
    pub fn paths(&self, prefix: &str) -> usize {
        let fam = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        let out = self.cmd(&["global", "rib", "-a", fam, prefix, "-j"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(|p| p.as_array())
            .map(Vec::len)
            .unwrap_or(0)
    }
}
