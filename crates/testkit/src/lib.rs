//! Test support shared by the crates' integration tests: the real programs tests run against, found on `PATH` or
//! in the system directories, with a missing one failing the test loudly under `CI=true` (never a silent skip);
//! a free local address; a webhook receiver that keeps what it is sent.
// Test support: a failed bind is a failed test, said by `expect`.
#![allow(clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where the program `name` is: on `PATH`, else in `/usr/sbin` or `/sbin` (where Debian puts daemons); an
/// absolute `name` is taken as it is.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    if name.starts_with('/') {
        return Path::new(name).exists().then(|| PathBuf::from(name));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// True when the tests run as root (the effective uid, from `/proc`).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// True when nothing is `missing`. Otherwise, under `CI=true`, the test fails with "`who` needs …"; elsewhere it
/// prints why it skips and returns false.
pub fn needs(who: &str, missing: &[String]) -> bool {
    if missing.is_empty() {
        return true;
    }
    let msg = format!("{who} needs {}", missing.join(", "));
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI: {msg}");
    eprintln!("skipping: {msg}");
    false
}

/// True when every tool is found (see [`needs`] otherwise); `from` says where they come from, e.g.
/// `scripts/deps/apt/watch.txt`.
pub fn have_tools(who: &str, tools: &[&str], from: &str) -> bool {
    let missing: Vec<String> = tools
        .iter()
        .filter(|t| find_tool(t).is_none())
        .map(|t| format!("`{t}` ({from})"))
        .collect();
    needs(who, &missing)
}

/// A 127.0.0.1 address nothing listens on now (bound, then let go).
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local address")
}

/// A webhook receiver for alert deliveries.
pub mod webhook {
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::routing::post;
    use axum::{Json, Router};
    use serde_json::Value;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    type Log = Arc<Mutex<Vec<(Instant, Value)>>>;

    /// Answers 200 to every JSON body posted to `/hook` and keeps it, with the time it came.
    pub struct Receiver {
        /// Where it listens.
        pub addr: SocketAddr,
        log: Log,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
    }

    impl Receiver {
        /// Listens on `addr` (port 0: any free one).
        pub async fn start(addr: SocketAddr) -> Self {
            let log: Log = Arc::default();
            let app = Router::new()
                .route(
                    "/hook",
                    post(|State(l): State<Log>, Json(v): Json<Value>| async move {
                        if let Ok(mut l) = l.lock() {
                            l.push((Instant::now(), v));
                        }
                        StatusCode::OK
                    }),
                )
                .with_state(log.clone());
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .expect("bind the receiver");
            let addr = listener.local_addr().expect("local address");
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await;
            });
            Self {
                addr,
                log,
                stop: Some(stop),
            }
        }

        /// `http://ADDR/hook`.
        pub fn url(&self) -> String {
            format!("http://{}/hook", self.addr)
        }

        /// The bodies received so far, oldest first.
        pub fn bodies(&self) -> Vec<Value> {
            self.timed().into_iter().map(|(_, v)| v).collect()
        }

        /// The bodies received so far with the time each came.
        pub fn timed(&self) -> Vec<(Instant, Value)> {
            self.log.lock().map(|l| l.clone()).unwrap_or_default()
        }

        /// Stops listening (the address is free again once in-flight requests end).
        pub fn stop(&mut self) {
            if let Some(s) = self.stop.take() {
                let _ = s.send(());
            }
        }
    }

    impl Drop for Receiver {
        fn drop(&mut self) {
            self.stop();
        }
    }
}
