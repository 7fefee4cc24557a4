//! Helpers for the watch integration tests: root/tool checks (fail loudly in CI), network namespace guards,
//! an in-process daemon on ephemeral ports, HTTP queries and polling with deadlines.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use yagura_watch::{Daemon, ListenerKind, WatchConfig};

/// True when the test may run; outside CI prints why it skips, in CI panics naming what is missing.
pub fn require(root: bool, tools: &[&str]) -> bool {
    let mut missing = Vec::new();
    if root && !yagura_testkit::is_root() {
        missing.push("root (network namespaces, tmpfs)".to_string());
    }
    for t in tools {
        if yagura_testkit::find_tool(t).is_none() {
            missing.push(format!("`{t}` (scripts/deps/apt/watch.txt)"));
        }
    }
    yagura_testkit::needs("this test", &missing)
}

/// Runs a command, panicking with its output on failure.
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect(args[0]);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn quiet(args: &[&str]) {
    let _ = Command::new(args[0]).args(&args[1..]).output();
}

/// A namespace joined to the root namespace by a veth pair: root side `host` (`.1/30`), namespace side `peer`
/// (`.2/30`) in 198.18.`third`.`base`/30. Removed on drop, even when the test fails.
pub struct NetNs {
    /// Namespace name.
    pub name: String,
    /// Root-side link.
    pub host_if: String,
    /// Namespace-side link.
    pub ns_if: String,
    /// Root-side address.
    pub host_ip: String,
    /// Namespace-side address.
    pub ns_ip: String,
}

impl NetNs {
    /// Creates it; `tag` (≤ 3 chars) and `slot` (0..63) make names and addresses unique per test.
    pub fn new(tag: &str, slot: u8) -> Self {
        let pid = std::process::id() % 100_000;
        let name = format!("yw{tag}{pid}");
        let host_if = format!("yw{tag}{pid}h");
        let ns_if = format!("yw{tag}{pid}n");
        // Leftovers from a crashed run with the same pid.
        quiet(&["ip", "netns", "del", &name]);
        quiet(&["ip", "link", "del", &host_if]);
        let third = 100 + (pid % 100) as u8;
        let base = slot * 4;
        let host_ip = format!("198.18.{third}.{}", base + 1);
        let ns_ip = format!("198.18.{third}.{}", base + 2);
        let g = Self {
            name,
            host_if,
            ns_if,
            host_ip,
            ns_ip,
        };
        sh(&["ip", "netns", "add", &g.name]);
        sh(&[
            "ip", "link", "add", &g.host_if, "type", "veth", "peer", "name", &g.ns_if,
        ]);
        sh(&["ip", "link", "set", &g.ns_if, "netns", &g.name]);
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", g.host_ip),
            "dev",
            &g.host_if,
        ]);
        sh(&["ip", "link", "set", &g.host_if, "up"]);
        g.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", g.ns_ip),
            "dev",
            &g.ns_if,
        ]);
        g.exec(&["ip", "link", "set", &g.ns_if, "up"]);
        g.exec(&["ip", "link", "set", "lo", "up"]);
        g
    }

    /// Runs a command inside the namespace (must succeed).
    pub fn exec(&self, args: &[&str]) {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        sh(&v);
    }

    /// A command to spawn inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        quiet(&["ip", "netns", "del", &self.name]);
        quiet(&["ip", "link", "del", &self.host_if]);
    }
}

/// A child process killed on drop.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A config with every listener on `ip` port 0 (ephemeral), the store in `dir`, HTTP on 127.0.0.1:0.
pub fn config(ip: &str, dir: &Path, max_size: &str) -> WatchConfig {
    let text = format!(
        r#"
[listen]
sflow = ["{ip}:0"]
netflow = ["{ip}:0"]
syslog_udp = ["{ip}:0"]
syslog_tcp = ["{ip}:0"]
[storage]
path = "{}"
max_size = "{max_size}"
commit_interval = "200ms"
retention_interval = "500ms"
retry_interval = "300ms"
[http]
listen = "127.0.0.1:0"
"#,
        dir.join("watch.db").display()
    );
    yagura_daemon::config::parse::<WatchConfig>("test.toml", &text)
        .unwrap()
        .config
}

/// The daemon plus the addresses it bound.
pub struct Running {
    /// The daemon.
    pub daemon: Daemon,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Running {
    /// Starts a daemon.
    pub async fn start(c: WatchConfig) -> Self {
        let daemon = Daemon::start(c).await.unwrap();
        let url = format!("http://{}", daemon.http_addr());
        Self { daemon, url }
    }

    /// The bound address of a listener.
    pub fn addr(&self, k: ListenerKind) -> SocketAddr {
        self.daemon.bound_of(k).unwrap()
    }

    /// GET a JSON API path (blocking client in a blocking thread).
    pub async fn get(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let (url, path) = (self.url.clone(), path.to_string());
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let p: Vec<(&str, String)> = params
                .iter()
                .map(|(a, b)| (a.as_str(), b.clone()))
                .collect();
            yagura_watch::cli::get(&url, &path, &p).unwrap()
        })
        .await
        .unwrap()
    }

    /// The /metrics text.
    pub async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.url);
        tokio::task::spawn_blocking(move || ureq::get(&url).call().unwrap().into_string().unwrap())
            .await
            .unwrap()
    }

    /// The value of one metric line that starts with `prefix` (sum over matching lines).
    pub async fn metric(&self, prefix: &str) -> f64 {
        metric_in(&self.metrics().await, prefix)
    }
}

/// Sum of the metric lines starting with `prefix`.
pub fn metric_in(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls `f` until it returns `Some` or `deadline` passes (then panics with `what`).
pub async fn poll<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sum of a numeric field over an answer's rows.
pub fn sum(v: &Value, field: &str) -> i64 {
    v["rows"]
        .as_array()
        .map(|r| r.iter().filter_map(|x| x[field].as_i64()).sum())
        .unwrap_or(0)
}

/// Number of rows in an answer.
pub fn rows(v: &Value) -> usize {
    v["rows"].as_array().map_or(0, Vec::len)
}
