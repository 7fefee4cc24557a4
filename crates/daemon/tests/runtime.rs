//! The daemon runtime against a real process: config errors with positions, SIGHUP/SIGTERM, /metrics over TCP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use yagura_config::{fields_of, Diagnostic, KeyPath};
use yagura_daemon::{config, http, signals, DaemonConfig, RuntimeMetrics};

#[derive(serde::Deserialize, Debug)]
struct Cfg {
    listen: std::net::SocketAddr,
    #[serde(default)]
    backends: Vec<Backend>,
}

#[derive(serde::Deserialize, Debug)]
#[allow(dead_code)]
struct Backend {
    address: std::net::SocketAddr,
    weight: u32,
}

impl DaemonConfig for Cfg {
    fn fields_at(path: &KeyPath) -> &'static [&'static str] {
        match path.shape().as_slice() {
            [] => fields_of::<Cfg>(),
            ["backends"] => fields_of::<Backend>(),
            _ => &[],
        }
    }
    fn validate(&self) -> Vec<Diagnostic> {
        self.backends
            .iter()
            .enumerate()
            .filter(|(_, b)| b.weight == 0)
            .map(|(i, _)| {
                Diagnostic::error("invalid-value", "weight must be at least 1")
                    .at(&KeyPath::root().key("backends").index(i).key("weight"))
            })
            .collect()
    }
}

#[test]
fn config_errors_all_at_once_with_positions() {
    let text = "listen = \"127.0.0.1:80\"\nlisten_port = 3\n[[backends]]\naddress = \"127.0.0.1:1\"\nweight = 0\nwieght = 2\n";
    let err = config::parse::<Cfg>("edge.toml", text).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("edge.toml: invalid configuration (3 errors)"),
        "{msg}"
    );
    assert!(msg.contains("edge.toml:2:1: error[unknown-key]"), "{msg}");
    assert!(
        msg.contains("edge.toml:5:10: error[invalid-value]: weight must be at least 1"),
        "{msg}"
    );
    assert!(msg.contains("did you mean `weight`?"), "{msg}");
    assert!(err.human().contains("edge.toml:6:1"));
    let ok = config::parse::<Cfg>("edge.toml", "listen = \"127.0.0.1:80\"\n").unwrap();
    assert_eq!(ok.config.listen.port(), 80);
    assert!(ok.warnings.is_empty());
}

#[test]
fn missing_file_is_a_read_error() {
    let err = config::load::<Cfg>(std::path::Path::new("/nonexistent/edge.toml")).unwrap_err();
    assert!(matches!(err, yagura_daemon::ConfigError::Read(_)), "{err}");
}

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn signals_metrics_and_health() {
    let sig = signals::install().unwrap();
    let mut reload = sig.reload;
    let mut registry = prometheus_client::registry::Registry::default();
    let rt = RuntimeMetrics::register(&mut registry, "test");
    let ready = Arc::new(AtomicBool::new(false));
    let router = http::metrics_router(Arc::new(registry)).merge(http::health_router(ready.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(http::serve(listener, router, sig.shutdown.clone()));

    assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
    ready.store(true, Ordering::Relaxed);
    assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));

    nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGHUP).unwrap();
    tokio::time::timeout(Duration::from_secs(10), reload.recv())
        .await
        .expect("SIGHUP delivered as a reload")
        .unwrap();
    rt.reload(false);
    let m = get(addr, "/metrics").await;
    assert!(m.contains("application/openmetrics-text"), "{m}");
    assert!(m.contains("yagura_build_info{daemon=\"test\""), "{m}");
    assert!(
        m.contains("yagura_config_reloads_total{result=\"invalid\"} 1"),
        "{m}"
    );

    nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGTERM).unwrap();
    tokio::time::timeout(Duration::from_secs(10), sig.shutdown.cancelled())
        .await
        .expect("SIGTERM cancels the token");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops on shutdown")
        .unwrap()
        .unwrap();
    assert!(signals::drain("nothing", Duration::from_secs(1), async {}).await);
    assert!(
        !signals::drain(
            "a stuck task",
            Duration::from_millis(20),
            std::future::pending::<()>()
        )
        .await
    );
}
