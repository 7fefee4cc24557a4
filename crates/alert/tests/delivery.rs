//! The engine against real receivers: a webhook receiver in the test (yagura-testkit's, on 127.0.0.1) that is down for a
//! while, a restart of the engine with notifications in its spool, and a real Alertmanager 0.25 (Debian's
//! `prometheus-alertmanager`) fed through its v2 API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use yagura_alert::{Alert, AlertSink, AlertsConfig, Engine, NotifierConfig, Severity};
use yagura_testkit::webhook::Receiver;
use yagura_testkit::{free_addr, have_tools};

async fn wait_for<F: FnMut() -> bool>(what: &str, timeout: Duration, mut f: F) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn config(url: &str, kind: &str) -> AlertsConfig {
    AlertsConfig {
        group_by: vec!["alertname".into()],
        group_wait: Duration::from_millis(200),
        group_interval: Duration::from_millis(500),
        repeat_interval: Duration::from_secs(3),
        retry_min: Duration::from_millis(200),
        retry_max: Duration::from_millis(800),
        timeout: Duration::from_secs(2),
        notifiers: vec![NotifierConfig {
            name: "hook".into(),
            kind: kind.into(),
            url: Some(url.into()),
            url_env: None,
            resend_interval: Duration::from_secs(1),
        }],
        ..AlertsConfig::default()
    }
}

fn alert(name: &str, x: &str) -> Alert {
    Alert::firing(name, Severity::Critical)
        .label("x", x)
        .annotation("summary", format!("{name} {x}"))
}

fn messages(rx: &Receiver, group: &str) -> Vec<Value> {
    rx.bodies()
        .into_iter()
        .filter(|v| v["groupLabels"]["alertname"] == group)
        .collect()
}

fn states(v: &Value) -> Vec<(String, String)> {
    let mut s: Vec<(String, String)> = v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["labels"]["x"].as_str().unwrap().to_string(),
                a["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    s.sort();
    s
}

fn spool_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("hook"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))
            })
            .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_then_back_nothing_lost_no_duplicates() {
    let spool = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let cfg = config(&format!("http://{addr}/hook"), "webhook");
    let metrics = yagura_alert::AlertMetrics::default();
    let engine = Engine::start(&cfg, spool.path(), metrics.clone()).unwrap();
    engine.update(alert("A", "1"));
    engine.update(alert("A", "2"));
    engine.update(alert("B", "1"));
    // Both groups queued and failing against the closed port.
    wait_for("two spooled groups", Duration::from_secs(10), || {
        spool_files(spool.path()) == 2
    })
    .await;
    engine.update(alert("A", "2").resolved());
    // Down for a while: several retries and a group-interval change happen meanwhile.
    let failed = |m: &yagura_alert::AlertMetrics| {
        m.failed
            .get_or_create(&yagura_alert::metrics::NotifierLabel::of("hook"))
            .get()
    };
    wait_for("retries while down", Duration::from_secs(10), || {
        failed(&metrics) >= 4
    })
    .await;
    let rx = Receiver::start(addr).await;
    let up = Instant::now();
    wait_for("both groups delivered", Duration::from_secs(10), || {
        !messages(&rx, "A").is_empty() && !messages(&rx, "B").is_empty()
    })
    .await;
    // One coalesced message per group: the latest state, including the resolution that happened while down.
    let a = messages(&rx, "A");
    assert_eq!(
        states(&a[0]),
        vec![
            ("1".into(), "firing".into()),
            ("2".into(), "resolved".into())
        ]
    );
    assert_eq!(a[0]["version"], "4");
    assert_eq!(
        states(&messages(&rx, "B")[0]),
        vec![("1".into(), "firing".into())]
    );
    wait_for("spool emptied", Duration::from_secs(5), || {
        spool_files(spool.path()) == 0
    })
    .await;
    // Resolve everything: one resolved message per group, and no more than the repeat policy allows.
    engine.update(alert("A", "1").resolved());
    engine.update(alert("B", "1").resolved());
    wait_for("resolved messages", Duration::from_secs(10), || {
        let done = |g: &str| {
            messages(&rx, g)
                .last()
                .is_some_and(|m| m["status"] == "resolved")
        };
        done("A") && done("B")
    })
    .await;
    let window = up.elapsed();
    let allowed = 2 + (window.as_secs_f64() / cfg.repeat_interval.as_secs_f64()).ceil() as usize;
    for g in ["A", "B"] {
        let n = messages(&rx, g).len();
        assert!(
            n <= allowed,
            "group {g}: {n} messages in {window:?} (allowed {allowed})"
        );
    }
    let a = messages(&rx, "A");
    assert_eq!(
        states(a.last().unwrap()),
        vec![("1".into(), "resolved".into())]
    );
    engine.shutdown().await;
    drop(rx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_survives_restart() {
    let spool = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let cfg = config(&format!("http://{addr}/hook"), "webhook");
    let first = Engine::start(&cfg, spool.path(), Default::default()).unwrap();
    // Not yet due when the daemon stops: shutdown flushes it to the spool anyway.
    let mut slow = cfg.clone();
    slow.group_wait = Duration::from_secs(3600);
    first.reload(&slow, spool.path()).await.unwrap();
    first.update(alert("C", "1"));
    wait_for("alert seen", Duration::from_secs(5), || {
        first.firing().len() == 1
    })
    .await;
    first.shutdown().await;
    assert_eq!(
        spool_files(spool.path()),
        1,
        "the pending notification is on disk"
    );
    // A new process: the receiver is up now; nobody reports the alert again.
    let rx = Receiver::start(addr).await;
    let second = Engine::start(&cfg, spool.path(), Default::default()).unwrap();
    wait_for(
        "spooled notification delivered",
        Duration::from_secs(10),
        || !messages(&rx, "C").is_empty(),
    )
    .await;
    assert_eq!(
        states(&messages(&rx, "C")[0]),
        vec![("1".into(), "firing".into())]
    );
    wait_for("spool emptied", Duration::from_secs(5), || {
        spool_files(spool.path()) == 0
    })
    .await;
    assert_eq!(messages(&rx, "C").len(), 1);
    // The guard reports the alert again after the start: it was announced before the restart, so no
    // duplicate; its resolution is the next message.
    second.update(alert("C", "1"));
    second.update(alert("C", "1").resolved());
    wait_for("resolved after restart", Duration::from_secs(10), || {
        messages(&rx, "C").len() >= 2
    })
    .await;
    let c = messages(&rx, "C");
    assert_eq!(c.len(), 2, "{c:?}");
    assert_eq!(states(&c[1]), vec![("1".into(), "resolved".into())]);
    second.shutdown().await;
    drop(rx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_env_missing_is_an_error_without_the_url() {
    let spool = tempfile::tempdir().unwrap();
    let mut cfg = config("http://127.0.0.1:9/hook", "slack");
    cfg.notifiers[0].url = None;
    cfg.notifiers[0].url_env =
        Some(yagura_config::EnvName::new("YAGURA_TEST_ALERT_URL_UNSET_4711").unwrap());
    let e = Engine::start(&cfg, spool.path(), Default::default()).unwrap_err();
    assert!(
        e.to_string().contains("YAGURA_TEST_ALERT_URL_UNSET_4711"),
        "{e}"
    );
}

/// A real Alertmanager child process, killed on drop.
struct Alertmanager {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_alertmanager() -> Alertmanager {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("am.yml");
    std::fs::write(
        &conf,
        "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n",
    )
    .unwrap();
    let addr = free_addr();
    let child = std::process::Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", conf.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--cluster.listen-address=")
        .arg("--log.level=warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prometheus-alertmanager");
    let am = Alertmanager {
        child,
        url: format!("http://{addr}"),
        _dir: dir,
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = client
            .get(format!("{}/-/ready", am.url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alertmanager did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    am
}

async fn am_alerts(url: &str) -> Vec<Value> {
    reqwest::get(format!("{url}/api/v2/alerts"))
        .await
        .unwrap()
        .json::<Vec<Value>>()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_to_real_alertmanager_v2() {
    if !have_tools(
        "posts_to_real_alertmanager_v2",
        &["prometheus-alertmanager"],
        "Debian prometheus-alertmanager, scripts/deps/apt/alert.txt",
    ) {
        return;
    }
    let am = start_alertmanager().await;
    let spool = tempfile::tempdir().unwrap();
    let mut cfg = config(&am.url, "alertmanager");
    cfg.group_wait = Duration::ZERO;
    cfg.external_url = Some("http://127.0.0.1:9480".into());
    let engine = Engine::start(&cfg, spool.path(), Default::default()).unwrap();
    engine.update(alert("DiskFillsSoon", "7"));
    let find = |v: &[Value]| {
        v.iter()
            .find(|a| a["labels"]["alertname"] == "DiskFillsSoon" && a["labels"]["x"] == "7")
            .cloned()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let first = loop {
        if let Some(a) = find(&am_alerts(&am.url).await) {
            break a;
        }
        assert!(
            Instant::now() < deadline,
            "alert never reached alertmanager"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(first["status"]["state"], "active");
    assert_eq!(first["labels"]["severity"], "critical");
    assert_eq!(first["annotations"]["summary"], "DiskFillsSoon 7");
    assert_eq!(first["generatorURL"], "http://127.0.0.1:9480");
    // Re-posted while firing: Alertmanager's endsAt moves forward, so it never times the alert out.
    let ends = first["endsAt"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let a = find(&am_alerts(&am.url).await).expect("alert still active");
        if a["endsAt"].as_str().unwrap() > ends.as_str() {
            break;
        }
        assert!(Instant::now() < deadline, "alert was not re-posted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Resolved: Alertmanager no longer lists it as active.
    engine.update(alert("DiskFillsSoon", "7").resolved());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let gone = find(&am_alerts(&am.url).await).is_none_or(|a| a["status"]["state"] != "active");
        if gone {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "resolution never reached alertmanager"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    engine.shutdown().await;
}
