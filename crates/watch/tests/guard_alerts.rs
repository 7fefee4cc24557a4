//! Heartbeats, alert delivery and peers of `yagura watch`, end to end: pings and a webhook receiver in the test,
//! a real Prometheus 2.42 whose `vector(1)` Watchdog goes through a real Alertmanager 0.25 to the daemon's
//! `/alertmanager/NAME`, two daemons guarding each other, and the spool across a daemon restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{metric_in, poll, Child, Running};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use yagura_alert::{Alert, Severity};
use yagura_testkit::webhook::Receiver;
use yagura_testkit::{free_addr, have_tools};
use yagura_watch::WatchConfig;

/// A daemon config: no flow/syslog listeners, store in `dir`, HTTP on an ephemeral port, plus `extra`.
fn config(dir: &Path, extra: &str) -> WatchConfig {
    let text = format!(
        r#"
[listen]
sflow = []
netflow = []
syslog_udp = []
syslog_tcp = []
[storage]
path = "{}"
max_size = "16MiB"
[http]
listen = "127.0.0.1:0"
{extra}
"#,
        dir.join("watch.db").display()
    );
    match yagura_daemon::config::parse::<WatchConfig>("test.toml", &text) {
        Ok(l) => l.config,
        Err(e) => panic!("{e}"),
    }
}

const FAST: &str = r#"
[alerts]
group_wait = "100ms"
group_interval = "300ms"
repeat_interval = "1h"
retry_min = "100ms"
retry_max = "500ms"
"#;

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn post_body(url: &str, body: &'static str) -> u16 {
    reqwest::Client::new()
        .post(url)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The firing alerts the daemon reports at `/api/v1/alerts`, as (alertname, heartbeat label).
async fn firing(url: &str) -> Vec<(String, String)> {
    let (_, body) = get(&format!("{url}/api/v1/alerts")).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                a["labels"]["heartbeat"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

async fn missing(url: &str, hb: &str) -> bool {
    firing(url)
        .await
        .contains(&("HeartbeatMissing".to_string(), hb.to_string()))
}

async fn metrics(url: &str) -> String {
    get(&format!("{url}/metrics")).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_webhooks_delivery_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start("127.0.0.1:0".parse().unwrap()).await;
    let rx = hook.addr;
    let extra = format!(
        r#"{FAST}
[[alerts.notifiers]]
name = "hook"
kind = "webhook"
url = "http://{rx}/hook"
[[heartbeats]]
name = "cron"
period = "500ms"
grace = "300ms"
[[heartbeats]]
name = "am"
period = "1h"
"#
    );
    let mut c = config(dir.path(), &extra);
    let w = Running::start(c.clone()).await;
    let u = w.url.clone();
    assert_eq!(get(&format!("{u}/ping/cron")).await.0, 200);
    assert_eq!(post_body(&format!("{u}/ping/cron"), "").await, 200);
    assert_eq!(get(&format!("{u}/ping/nope")).await.0, 404);
    assert_eq!(
        post_body(&format!("{u}/alertmanager/nope"), "{}").await,
        404
    );
    assert_eq!(post_body(&format!("{u}/alertmanager/am"), "{").await, 400);
    let watchdog = r#"{"version":"4","status":"firing","receiver":"watch","alerts":[{"status":"firing","labels":{"alertname":"Watchdog"}}]}"#;
    assert_eq!(
        post_body(&format!("{u}/alertmanager/am"), watchdog).await,
        200
    );
    let m = metrics(&u).await;
    assert_eq!(
        metric_in(&m, "yagura_watch_heartbeat_unknown_requests_total"),
        2.0
    );
    assert_eq!(
        metric_in(&m, "yagura_watch_heartbeat_bad_requests_total"),
        1.0
    );
    assert_eq!(
        metric_in(&m, "yagura_watch_heartbeat_beats_total{heartbeat=\"cron\"}"),
        2.0
    );
    assert!(
        metric_in(
            &m,
            "yagura_watch_heartbeat_last_beat_timestamp_seconds{heartbeat=\"am\"}"
        ) > 1.7e9
    );

    // Silence: the alert fires and reaches the receiver.
    poll(
        "HeartbeatMissing{cron} delivered",
        Duration::from_secs(10),
        || async {
            hook.bodies()
                .iter()
                .any(|v| v["status"] == "firing" && v["commonLabels"]["heartbeat"] == "cron")
                .then_some(())
        },
    )
    .await;
    assert!(missing(&u, "cron").await);
    // A beat resolves it.
    assert_eq!(get(&format!("{u}/ping/cron")).await.0, 200);
    assert!(!missing(&u, "cron").await);
    poll("resolved delivered", Duration::from_secs(10), || async {
        hook.bodies()
            .iter()
            .any(|v| v["status"] == "resolved" && v["alerts"][0]["labels"]["heartbeat"] == "cron")
            .then_some(())
    })
    .await;
    let m = metrics(&u).await;
    assert!(
        metric_in(
            &m,
            "yagura_alert_notifications_sent_total{notifier=\"hook\"}"
        ) >= 2.0
    );

    // Reload: a new heartbeat appears, the removed one is gone (404).
    c.heartbeats.retain(|h| h.name != "cron");
    let mut nightly = c.heartbeats[0].clone();
    nightly.name = "nightly".into();
    c.heartbeats.push(nightly);
    let mut d = w.daemon;
    d.reload(c).await.unwrap();
    assert_eq!(get(&format!("{u}/ping/nightly")).await.0, 200);
    assert_eq!(get(&format!("{u}/ping/cron")).await.0, 404);
    d.shutdown().await;
}

fn spawn_alertmanager(dir: &Path, addr: SocketAddr) -> Child {
    Child(
        std::process::Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", dir.join("am.yml").display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_through_real_prometheus_and_alertmanager() {
    if !have_tools(
        "the Watchdog test",
        &["prometheus", "prometheus-alertmanager"],
        "scripts/deps/apt/alert.txt",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let w = Running::start(config(
        dir.path(),
        &format!("{FAST}\n[[heartbeats]]\nname = \"am\"\nperiod = \"2s\"\ngrace = \"3s\"\n"),
    ))
    .await;
    let u = w.url.clone();
    let am = free_addr();
    let prom = free_addr();
    std::fs::write(
        dir.path().join("am.yml"),
        format!(
            "route:\n  receiver: watch\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1s\n\
             receivers:\n  - name: watch\n    webhook_configs:\n      - url: {u}/alertmanager/am\n        send_resolved: false\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: meta\n    interval: 1s\n    rules:\n      - alert: Watchdog\n        expr: vector(1)\n        labels:\n          severity: none\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files:\n  - {}\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{am}']\n",
            dir.path().join("rules.yml").display()
        ),
    )
    .unwrap();
    let mut alertmanager = spawn_alertmanager(dir.path(), am);
    let _prometheus = Child(
        std::process::Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("prom-data").display()
            ))
            .arg(format!("--web.listen-address={prom}"))
            .arg("--rules.alert.resend-delay=1s")
            .arg("--log.level=warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus"),
    );
    let beats = |m: String| metric_in(&m, "yagura_watch_heartbeat_beats_total{heartbeat=\"am\"}");
    // The Watchdog arrives through the whole path, more than once.
    poll(
        "Watchdog beats via Alertmanager",
        Duration::from_secs(30),
        || async { (beats(metrics(&u).await) >= 2.0).then_some(()) },
    )
    .await;
    assert!(!missing(&u, "am").await);

    // Alertmanager dies: the beat stops, HeartbeatMissing fires.
    drop(std::mem::replace(
        &mut alertmanager,
        Child(std::process::Command::new("true").spawn().unwrap()),
    ));
    poll("HeartbeatMissing{am}", Duration::from_secs(15), || async {
        missing(&u, "am").await.then_some(())
    })
    .await;

    // Back again: Prometheus re-sends the Watchdog, Alertmanager routes it, the alert resolves.
    alertmanager = spawn_alertmanager(dir.path(), am);
    poll(
        "HeartbeatMissing{am} resolved",
        Duration::from_secs(30),
        || async { (!missing(&u, "am").await).then_some(()) },
    )
    .await;
    drop(alertmanager);
    w.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_guard_each_other() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let beat = |name: &str| {
        format!("[[heartbeats]]\nname = \"{name}\"\nperiod = \"1s\"\ngrace = \"1s\"\n")
    };
    let peer = |name: &str, url: &str, me: &str| {
        format!("[[peers]]\nname = \"{name}\"\nurl = \"{url}\"\nheartbeat = \"{me}\"\nperiod = \"250ms\"\n")
    };
    // wsp starts first and expects prd; prd expects wsp and pings it; then wsp learns prd's address (SIGHUP).
    let wsp_cfg = config(da.path(), &format!("{FAST}{}", beat("prd")));
    let wsp = Running::start(wsp_cfg.clone()).await;
    let prd_cfg = config(
        db.path(),
        &format!("{FAST}{}{}", beat("wsp"), peer("wsp", &wsp.url, "prd")),
    );
    let prd = Running::start(prd_cfg.clone()).await;
    let mut wsp_new = wsp_cfg.clone();
    wsp_new.peers = config(
        da.path(),
        &format!("{}{}", beat("prd"), peer("prd", &prd.url, "wsp")),
    )
    .peers;
    let (wsp_url, prd_url) = (wsp.url.clone(), prd.url.clone());
    let mut wsp_d = wsp.daemon;
    wsp_d.reload(wsp_new).await.unwrap();
    let beats = |m: String, hb: &str| {
        metric_in(
            &m,
            &format!("yagura_watch_heartbeat_beats_total{{heartbeat=\"{hb}\"}}"),
        )
    };
    poll("both sides beating", Duration::from_secs(10), || async {
        (beats(metrics(&wsp_url).await, "prd") >= 3.0
            && beats(metrics(&prd_url).await, "wsp") >= 3.0)
            .then_some(())
    })
    .await;
    // Well past one period + grace: still nothing missing on either side.
    poll("a quiet period", Duration::from_secs(10), || async {
        (beats(metrics(&wsp_url).await, "prd") >= 12.0).then_some(())
    })
    .await;
    assert!(
        firing(&wsp_url).await.is_empty(),
        "{:?}",
        firing(&wsp_url).await
    );
    assert!(
        firing(&prd_url).await.is_empty(),
        "{:?}",
        firing(&prd_url).await
    );

    // prd stops: wsp alerts.
    prd.daemon.shutdown().await;
    poll(
        "wsp notices prd is gone",
        Duration::from_secs(10),
        || async { missing(&wsp_url, "prd").await.then_some(()) },
    )
    .await;
    // prd comes back (same config): its pings resolve wsp's alert.
    let prd2 = Running::start(prd_cfg).await;
    poll("wsp sees prd again", Duration::from_secs(10), || async {
        (!missing(&wsp_url, "prd").await).then_some(())
    })
    .await;
    prd2.daemon.shutdown().await;
    wsp_d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_survives_daemon_restart() {
    let dir = tempfile::tempdir().unwrap();
    let down = free_addr();
    let extra = format!(
        "{FAST}\n[[alerts.notifiers]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://{down}/hook\"\n"
    );
    let c = config(dir.path(), &extra);
    let w = Running::start(c.clone()).await;
    w.daemon
        .alerts()
        .update(Alert::firing("DiskFillsSoon", Severity::Warning).label("path", "/prometheus"));
    let spool = dir.path().join("alert-spool").join("hook");
    let files = || {
        std::fs::read_dir(&spool)
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))
                })
                .count()
            })
            .unwrap_or(0)
    };
    let u = w.url.clone();
    poll("a failed delivery", Duration::from_secs(10), || async {
        (metric_in(
            &metrics(&u).await,
            "yagura_alert_notifications_failed_total",
        ) >= 1.0)
            .then_some(())
    })
    .await;
    assert_eq!(files(), 1);
    w.daemon.shutdown().await;
    assert_eq!(files(), 1, "kept on disk across the stop");

    let hook = Receiver::start(down).await;
    let w2 = Running::start(c).await;
    poll(
        "delivered after restart",
        Duration::from_secs(10),
        || async { (!hook.bodies().is_empty()).then_some(()) },
    )
    .await;
    let v = hook.bodies()[0].clone();
    assert_eq!(v["alerts"][0]["labels"]["alertname"], "DiskFillsSoon");
    assert_eq!(v["alerts"][0]["labels"]["path"], "/prometheus");
    poll("spool emptied", Duration::from_secs(5), || async {
        (files() == 0).then_some(())
    })
    .await;
    assert_eq!(hook.bodies().len(), 1);
    w2.daemon.shutdown().await;
}
