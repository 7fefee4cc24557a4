//! The night of the talk, reproduced: a real Prometheus 2.42 (Debian `prometheus`) writes its TSDB to a small
//! tmpfs that a filler writes into as well. The disk guard must forecast the fill before the tmpfs is full; once
//! the tmpfs is full and Prometheus' WAL writes fail (while its query API keeps answering), the ingestion probe
//! must raise `PrometheusNotIngesting` or `PrometheusWalWritesFailing` within its configured time; freeing the
//! space must resolve everything. The guards run directly, reporting to a `MemorySink`.
//!
//! Needs root (to mount the tmpfs) and `prometheus` (scripts/deps/apt/watch-guard.txt); under `CI=true` a
//! missing one fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use yagura_alert::{MemorySink, SharedSink};
use yagura_watch::guard::disk::{self, DiskConfig, DiskMetrics};
use yagura_watch::guard::prometheus::{run_prometheus, ProbeMetrics, PrometheusConfig};
use yagura_watch::guard::sizing;

/// True when the test may run; in CI a missing prerequisite is a failure naming it.
fn require() -> bool {
    let mut missing = Vec::new();
    if !yagura_testkit::is_root() {
        missing.push("root (to mount a tmpfs)".to_string());
    }
    if !Path::new("/usr/bin/prometheus").is_file() {
        missing.push(
            "/usr/bin/prometheus (Debian `prometheus`, scripts/deps/apt/watch-guard.txt)".into(),
        );
    }
    yagura_testkit::needs("guard_prometheus", &missing)
}

/// A tmpfs mounted for the test, unmounted on drop (also on failure).
struct Tmpfs {
    dir: PathBuf,
    _base: tempfile::TempDir,
}

impl Tmpfs {
    /// Unmounts what a crashed earlier run of this test left (its process is gone).
    fn sweep_leftovers() {
        let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
            return;
        };
        for line in mounts.lines() {
            let Some(mp) = line.split(' ').nth(1) else {
                continue;
            };
            let Some(rest) = mp.split('/').find_map(|c| c.strip_prefix("yagura-probe-")) else {
                continue;
            };
            let pid = rest.split('-').next().unwrap_or("");
            if !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("umount").arg("-l").arg(mp).status();
            }
        }
    }

    fn mount(size: &str) -> Self {
        Self::sweep_leftovers();
        let base = tempfile::Builder::new()
            .prefix(&format!("yagura-probe-{}-", std::process::id()))
            .tempdir()
            .unwrap();
        let dir = base.path().join("mnt");
        std::fs::create_dir(&dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs on {}", dir.display());
        Self { dir, _base: base }
    }

    fn avail(&self) -> u64 {
        let s = nix::sys::statvfs::statvfs(&self.dir).unwrap();
        s.blocks_available() as u64 * s.fragment_size() as u64
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A scrape target with many series whose values change every scrape, so Prometheus writes its WAL fast.
fn synthetic_target(series: usize, stop: Arc<AtomicBool>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    let n = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((s, _)) => {
                    let k = n.fetch_add(1, Ordering::Relaxed);
                    serve(s, series, k);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    port
}

fn serve(mut s: TcpStream, series: usize, k: u64) {
    s.set_nonblocking(false).ok();
    s.set_read_timeout(Some(Duration::from_secs(2))).ok();
    let mut buf = [0u8; 4096];
    let mut req = Vec::new();
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
        if req.len() > 65536 {
            return;
        }
    }
    let mut body = String::with_capacity(series * 40);
    body.push_str("# TYPE synthetic_value gauge\n");
    for i in 0..series {
        // Values that do not repeat, so the WAL cannot shrink them much.
        let v = (k as f64 * 1.000_173 + i as f64 * 0.618_034).sin() * 1e6;
        body.push_str(&format!("synthetic_value{{i=\"{i}\"}} {v}\n"));
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body.as_bytes());
}

/// Writes into `path` at about `rate` bytes/s until the filesystem is full (or `max` bytes, or a deadline);
/// sets `full` when a write failed with ENOSPC.
fn filler(
    path: PathBuf,
    rate: u64,
    max: u64,
    full: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0x5a_u8; 64 * 1024];
        let start = Instant::now();
        let mut written: u64 = 0;
        while written < max && start.elapsed() < Duration::from_secs(60) {
            // Pace: never ahead of `rate`.
            let due = Duration::from_secs_f64(written as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait.min(Duration::from_millis(50)));
                continue;
            }
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc_enospc()) => break,
                Err(e) => panic!("filler: {e}"),
            }
        }
        // Take the last scraps too, so the next allocation anyone makes fails.
        let small = [0x5a_u8; 512];
        while let Ok(n) = f.write(&small) {
            if n == 0 {
                break;
            }
            written += n as u64;
        }
        full.store(true, Ordering::Relaxed);
        written
    })
}

fn libc_enospc() -> i32 {
    nix::errno::Errno::ENOSPC as i32
}

async fn wait_for(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if cond() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn http_ok(url: &str) -> bool {
    ureq::get(url)
        .timeout(Duration::from_secs(2))
        .call()
        .map(|r| r.status() == 200)
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_fills_and_prometheus_stops_ingesting() {
    if !require() {
        return;
    }
    let t0 = Instant::now();
    let fs = Tmpfs::mount("32m");
    let data = fs.dir.join("data");
    std::fs::create_dir(&data).unwrap();

    let stop_target = Arc::new(AtomicBool::new(false));
    let synth = synthetic_target(3000, stop_target.clone());
    let port = free_port();
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: prometheus\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n  - job_name: synthetic\n    static_configs: [{{targets: ['127.0.0.1:{synth}']}}]\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(cfg_dir.path().join("prometheus.log")).unwrap();
    let _prom = Proc(
        Command::new("/usr/bin/prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=1h")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let url = format!("http://127.0.0.1:{port}");
    let ready = format!("{url}/-/ready");
    wait_for("prometheus ready", Duration::from_secs(20), || {
        http_ok(&ready)
    })
    .await;

    // The guards, reporting to a memory sink.
    let sink = Arc::new(MemorySink::default());
    let shared: SharedSink = sink.clone();
    let stop = CancellationToken::new();
    let _stop_guard = stop.clone().drop_guard();
    let mut reg = prometheus_client::registry::Registry::default();
    let probe_metrics = Arc::new(ProbeMetrics::register(&mut reg));
    let disk_metrics = Arc::new(DiskMetrics::register(&mut reg));
    let rate_window = Duration::from_secs(5);
    let probe_interval = Duration::from_millis(500);
    let probe = PrometheusConfig {
        name: "tmpfs".into(),
        url: url.clone(),
        interval: probe_interval,
        timeout: Duration::from_secs(2),
        rate_window,
        stale_after: Duration::from_secs(10),
        up_selector: "up{job=\"prometheus\"}".into(),
        read_metrics: true,
        severity: yagura_alert::Severity::Critical,
    };
    tokio::spawn(run_prometheus(
        probe,
        probe_metrics,
        shared.clone(),
        stop.clone(),
    ));
    let disk_cfg: DiskConfig = {
        #[derive(serde::Deserialize)]
        struct W {
            disk: Vec<DiskConfig>,
        }
        let w: W = toml::from_str(&format!(
            "[[disk]]\nname = \"tsdb\"\npath = \"{}\"\ninterval = \"250ms\"\nwindow = \"6s\"\nhorizon = \"60s\"\nthreshold = 0.9\n",
            fs.dir.display()
        ))
        .unwrap();
        w.disk.into_iter().next().unwrap()
    };
    tokio::spawn(disk::run(
        disk_cfg.clone(),
        disk::Meter::new(&disk_cfg),
        disk_metrics,
        shared.clone(),
        stop.clone(),
    ));

    // Healthy first: ingesting, nothing firing.
    let s = sink.clone();
    wait_for(
        "the probe to see ingestion",
        Duration::from_secs(20),
        move || {
            s.current().values().any(|a| {
                a.name == "PrometheusNotIngesting" && a.status == yagura_alert::Status::Resolved
            })
        },
    )
    .await;
    assert!(!sink.is_firing("DiskFillsSoon", &[]));
    assert!(!sink.is_firing("PrometheusDown", &[]));

    // The sizing helper reads the real rate (once two self-scrapes have landed).
    let q = url.clone();
    wait_for(
        "a rate in the query API",
        Duration::from_secs(20),
        move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(2))
                .build();
            yagura_watch::guard::prometheus::instant_query(
                &agent,
                &q,
                "sum(rate(prometheus_tsdb_head_samples_appended_total[5m]))",
            )
            .ok()
            .flatten()
            .is_some()
        },
    )
    .await;
    let args = sizing::SizeArgs {
        samples_per_second: None,
        url: Some(url.clone()),
        volume: "20GiB".into(),
        bytes_per_sample: None,
        wal_bytes_per_sample: sizing::WAL_BYTES_PER_SAMPLE,
        max_fraction: sizing::MAX_FRACTION,
        format: "json".into(),
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let a = args;
    let code = tokio::task::spawn_blocking(move || {
        let c = sizing::run(&a, &mut out, &mut err);
        (c, out, err)
    })
    .await
    .unwrap();
    assert_eq!(code.0, 0, "{}", String::from_utf8_lossy(&code.2));
    let j: serde_json::Value = serde_json::from_slice(&code.1).unwrap();
    assert!(
        j["input"]["samples_per_second"].as_f64().unwrap() > 100.0,
        "{j}"
    );
    assert_eq!(j["retention_size_flag"], "16384MB");

    // The filler: ~2 MiB/s into the same tmpfs.
    let full = Arc::new(AtomicBool::new(false));
    let fill = filler(fs.dir.join("filler"), 2 << 20, 64 << 20, full.clone());
    let s = sink.clone();
    let mut avail_when_forecast = 0;
    wait_for("DiskFillsSoon", Duration::from_secs(30), || {
        let firing = s.is_firing("DiskFillsSoon", &[("disk", "tsdb"), ("source", "fs")]);
        if firing {
            avail_when_forecast = fs.avail();
        }
        firing
    })
    .await;
    assert!(
        avail_when_forecast > 1 << 20,
        "DiskFillsSoon came only when {avail_when_forecast} bytes were left"
    );
    assert!(
        !full.load(Ordering::Relaxed),
        "the forecast must come before the tmpfs is full"
    );

    let f = full.clone();
    wait_for("the tmpfs to be full", Duration::from_secs(40), move || {
        f.load(Ordering::Relaxed)
    })
    .await;
    let filled = fill.join().unwrap();
    eprintln!(
        "filler wrote {filled} bytes; tmpfs full at {:?}",
        t0.elapsed()
    );

    // Prometheus keeps answering queries, but its WAL writes fail: the probe must see it within its window
    // plus a few probe intervals and scrapes.
    let allowed = rate_window + probe_interval * 4 + Duration::from_secs(3);
    let s = sink.clone();
    let took = wait_for(
        "PrometheusNotIngesting or PrometheusWalWritesFailing",
        allowed,
        move || {
            s.is_firing("PrometheusWalWritesFailing", &[("instance", "tmpfs")])
                || s.is_firing("PrometheusNotIngesting", &[("instance", "tmpfs")])
        },
    )
    .await;
    eprintln!(
        "ingestion alert {took:?} after the tmpfs filled (WAL writes failing: {}, not ingesting: {})",
        sink.is_firing("PrometheusWalWritesFailing", &[]),
        sink.is_firing("PrometheusNotIngesting", &[])
    );
    assert!(
        !sink.is_firing("PrometheusDown", &[]),
        "the API keeps answering"
    );
    let s = sink.clone();
    wait_for("DiskAlmostFull", Duration::from_secs(5), move || {
        s.is_firing("DiskAlmostFull", &[("disk", "tsdb")])
    })
    .await;

    // Free the space: every alert resolves.
    std::fs::remove_file(fs.dir.join("filler")).unwrap();
    let s = sink.clone();
    let took = wait_for("everything resolved", Duration::from_secs(30), move || {
        [
            "DiskAlmostFull",
            "DiskFillsSoon",
            "PrometheusNotIngesting",
            "PrometheusWalWritesFailing",
            "PrometheusStale",
        ]
        .iter()
        .all(|n| !s.is_firing(n, &[]))
    })
    .await;
    eprintln!(
        "resolved {took:?} after freeing; whole test {:?}",
        t0.elapsed()
    );
    stop.cancel();
    stop_target.store(true, Ordering::Relaxed);
}

fn watch_config(dir: &Path, guards: &str) -> yagura_watch::WatchConfig {
    let text = format!(
        "[listen]\nsflow = []\nnetflow = []\nsyslog_udp = []\nsyslog_tcp = []\n[storage]\npath = \"{}\"\nmax_size = \"8MiB\"\n[http]\nlisten = \"127.0.0.1:0\"\n{guards}",
        dir.join("watch.db").display()
    );
    yagura_daemon::config::parse::<yagura_watch::WatchConfig>("guards.toml", &text)
        .unwrap()
        .config
}

/// The daemon starts the guards from its config, exports their metrics, and a reload replaces them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_starts_and_reloads_the_storage_guards() {
    let tmp = tempfile::tempdir().unwrap();
    let dead = free_port();
    let guards = |name: &str| {
        format!(
            "[[disk]]\nname = \"{name}\"\npath = \"{}\"\ninterval = \"100ms\"\nwindow = \"1s\"\n\
             [[prometheus]]\nname = \"{name}\"\nurl = \"http://127.0.0.1:{dead}\"\ninterval = \"100ms\"\ntimeout = \"1s\"\n\
             [[alertmanager]]\nname = \"{name}\"\nurl = \"http://127.0.0.1:{dead}\"\ninterval = \"100ms\"\ntimeout = \"1s\"\n",
            tmp.path().display()
        )
    };
    let mut d = yagura_watch::Daemon::start(watch_config(tmp.path(), &guards("first")))
        .await
        .unwrap();
    let metrics = format!("http://{}/metrics", d.http_addr());
    let get = move || {
        ureq::get(&metrics)
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .unwrap_or_default()
    };
    let g = get.clone();
    wait_for(
        "the first guards' metrics",
        Duration::from_secs(20),
        move || {
            let m = g();
            m.contains("yagura_watch_disk_used_bytes{disk=\"first\",source=\"fs\"}")
                && m.contains("yagura_watch_probe_condition{target=\"first\",condition=\"down\"} 1")
                && m.contains(
                    "yagura_watch_probe_duration_seconds{target=\"first\",kind=\"alertmanager\"}",
                )
        },
    )
    .await;
    d.reload(watch_config(tmp.path(), &guards("second")))
        .await
        .unwrap();
    let g = get.clone();
    wait_for(
        "the reloaded guards' metrics",
        Duration::from_secs(20),
        move || {
            let m = g();
            m.contains("yagura_watch_disk_used_bytes{disk=\"second\",source=\"fs\"}")
                && m.contains(
                    "yagura_watch_probe_condition{target=\"second\",condition=\"down\"} 1",
                )
                && !m.contains("\"first\"")
        },
    )
    .await;
    d.shutdown().await;
}
