//! End to end in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`, driven over
//! WebDriver with a small HTTP client) signs in through the gate and the GitHub stand-in, reaches an allowed route,
//! is refused on a forbidden one, and saves screenshots of the sign-in and error pages under
//! `$CARGO_TARGET_TMPDIR/gate-e2e/`. Host names resolve to 127.0.0.1 through Chromium's own resolver rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use bytes::Bytes;
use common::github::{StandIn, User};
use common::*;
use http::Request;
use http_body_util::Full;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

struct Driver {
    child: Child,
    addr: SocketAddr,
    session: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tool(name: &str) -> Option<String> {
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"] {
        let p = format!("{dir}/{name}");
        if std::path::Path::new(&p).exists() {
            return Some(p);
        }
    }
    None
}

async fn wd(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Value {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .unwrap();
    let r = send(addr, None, req).await;
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    assert!(
        r.status.is_success(),
        "WebDriver {method} {path}: {} {v}",
        r.status
    );
    v["value"].clone()
}

impl Driver {
    async fn start(profile: &std::path::Path) -> Option<Driver> {
        let (Some(chromium), Some(driver)) = (tool("chromium"), tool("chromedriver")) else {
            yagura_testkit::needs(
                "the Chromium test",
                &["chromium and chromium-driver (apt-get install chromium chromium-driver; see scripts/deps/apt/gate.txt)".into()],
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut d = Driver {
            child,
            addr,
            session: String::new(),
        };
        eventually("chromedriver up", Duration::from_secs(20), || async {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--no-first-run",
                     "--ignore-certificate-errors", "--host-resolver-rules=MAP *.gate.test 127.0.0.1",
                     "--window-size=1000,900", "--hide-scrollbars",
                     format!("--user-data-dir={}", profile.display())]
        }}}});
        let v = wd(addr, "POST", "/session", Some(caps)).await;
        d.session = v["sessionId"].as_str().unwrap().to_string();
        Some(d)
    }

    async fn go(&self, url: &str) {
        wd(
            self.addr,
            "POST",
            &format!("/session/{}/url", self.session),
            Some(json!({"url": url})),
        )
        .await;
    }
    async fn url(&self) -> String {
        wd(
            self.addr,
            "GET",
            &format!("/session/{}/url", self.session),
            None,
        )
        .await
        .as_str()
        .unwrap()
        .to_string()
    }
    async fn text(&self) -> String {
        let v = wd(self.addr, "POST", &format!("/session/{}/execute/sync", self.session),
            Some(json!({"script": "return document.body ? document.body.innerText : ''", "args": []}))).await;
        v.as_str().unwrap_or_default().to_string()
    }
    async fn click(&self, css: &str) {
        let e = wd(
            self.addr,
            "POST",
            &format!("/session/{}/element", self.session),
            Some(json!({"using": "css selector", "value": css})),
        )
        .await;
        let id = e
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string();
        wd(
            self.addr,
            "POST",
            &format!("/session/{}/element/{id}/click", self.session),
            Some(json!({})),
        )
        .await;
    }
    async fn screenshot(&self, path: &std::path::Path) {
        let v = wd(
            self.addr,
            "GET",
            &format!("/session/{}/screenshot", self.session),
            None,
        )
        .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }
    async fn wait_text(&self, what: &str) -> String {
        let mut last = String::new();
        for _ in 0..200 {
            last = self.text().await;
            if last.contains(what) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "page never showed {what:?}; last text: {last}; url {}",
            self.url().await
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_signs_in_reaches_allowed_and_is_refused_on_forbidden() {
    let profile = tempfile::tempdir().unwrap();
    let Some(d) = Driver::start(profile.path()).await else {
        return;
    };
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gate-e2e");
    std::fs::create_dir_all(&shots).unwrap();

    let gh = StandIn::start().await;
    gh.add(
        User::new("alice", 1)
            .org("ictsc", "active")
            .team("ictsc", "ictsc_infra"),
    );
    gh.restrict("contest");
    let up = upstream("grafana").await;
    let cfg = format!(
        r#"{gh_cfg}
[[routes]]
name = "grafana"
host = "grafana.gate.test"
upstream = "http://{u}"
allow_teams = ["ictsc:ictsc_infra"]

[[routes]]
name = "score"
host = "score.gate.test"
upstream = "http://{u}"
allow_orgs = ["contest"]
"#,
        gh_cfg = gh.config(None),
        u = up.addr
    );
    let g = Gate::start(Arc::new(Pki::new()), &cfg).await;
    gh.next_user("alice");

    // 1. Not signed in: the gate's sign-in page.
    d.go(&g.url("grafana.gate.test", "/d/home")).await;
    d.wait_text("Continue with GitHub").await;
    assert!(d.url().await.starts_with(&g.url(AUTH, "/sign_in")));
    d.screenshot(&shots.join("sign-in.png")).await;

    // 2. Sign in through the stand-in; back on the allowed route with the identity headers.
    d.click("a.btn.primary").await;
    let text = d.wait_text("\"upstream\":\"grafana\"").await;
    assert!(text.contains("\"x-yagura-user\":[\"alice\"]"), "{text}");
    assert!(d
        .url()
        .await
        .starts_with(&g.url("grafana.gate.test", "/d/home")));

    // 3. A route for an org that restricts OAuth apps: the 403 page explains why.
    d.go(&g.url("score.gate.test", "/")).await;
    let text = d.wait_text("You don't have access").await;
    assert!(
        text.contains("restricts third-party applications"),
        "{text}"
    );
    assert!(text.contains("alice"));
    d.screenshot(&shots.join("forbidden.png")).await;

    // 4. Sign out: the session ends on every host.
    d.go(&g.url(AUTH, "/sign_out")).await;
    d.wait_text("You're signed out").await;
    d.screenshot(&shots.join("signed-out.png")).await;
    d.go(&g.url("grafana.gate.test", "/")).await;
    d.wait_text("Continue with GitHub").await;
    let _ = wd(d.addr, "DELETE", &format!("/session/{}", d.session), None).await;
}
