//! The local control API (HTTP, JSON) and its client, used by `yagura edge status` / `yagura edge drain`:
//!
//! - `GET /v1/status` — sessions (state, uptime, BFD, prefixes), VIPs (announced or not);
//! - `POST /v1/drain` — withdraw every VIP, wait `drain_wait`, close the sessions, exit;
//! - `POST /v1/vips/{name}/announce` and `/withdraw` — the announce hook for VIPs with `announce = "hook"`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::instance::{AnnounceHook, Command, HookError};

/// The control routes over the instance's command channel.
pub fn router(tx: mpsc::Sender<Command>) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/drain", post(drain))
        .route("/v1/vips/{name}/announce", post(announce))
        .route("/v1/vips/{name}/withdraw", post(withdraw))
        .with_state(tx)
}

async fn status(State(tx): State<mpsc::Sender<Command>>) -> impl IntoResponse {
    let (reply, rx) = oneshot::channel();
    if tx.send(Command::Status { reply }).await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "stopping"})),
        );
    }
    match rx.await {
        Ok(v) => (StatusCode::OK, Json(v)),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "stopping"})),
        ),
    }
}

async fn drain(State(tx): State<mpsc::Sender<Command>>) -> impl IntoResponse {
    let (reply, rx) = oneshot::channel();
    if tx.send(Command::Drain { reply }).await.is_ok() {
        let _ = rx.await;
    }
    (StatusCode::ACCEPTED, Json(json!({"draining": true})))
}

async fn set(tx: mpsc::Sender<Command>, name: String, announce: bool) -> (StatusCode, Json<Value>) {
    match (AnnounceHook::from_sender(tx)).set(&name, announce).await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({"vip": name, "announce": announce})),
        ),
        Err(e @ HookError::UnknownVip(_)) => {
            (StatusCode::NOT_FOUND, Json(json!({"error": e.to_string()})))
        }
        Err(e @ HookError::NotHookDriven(..)) => {
            (StatusCode::CONFLICT, Json(json!({"error": e.to_string()})))
        }
        Err(e @ HookError::Stopped) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": e.to_string()})),
        ),
    }
}

async fn announce(
    State(tx): State<mpsc::Sender<Command>>,
    Path(name): Path<String>,
) -> impl IntoResponse {
    set(tx, name, true).await
}

async fn withdraw(
    State(tx): State<mpsc::Sender<Command>>,
    Path(name): Path<String>,
) -> impl IntoResponse {
    set(tx, name, false).await
}

impl AnnounceHook {
    /// A hook over an instance's command channel.
    pub fn from_sender(tx: mpsc::Sender<Command>) -> Self {
        Self::new(tx)
    }
}

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect.
    #[error("cannot reach the edge control API at {addr}: {source}")]
    Connect {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// HTTP failed.
    #[error("control API: {0}")]
    Http(String),
    /// The answer was not the expected JSON.
    #[error("control API answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Body.
        body: String,
    },
}

/// Sends `method path` to the control API at `addr` and returns the JSON answer (any 2xx).
pub async fn request(addr: SocketAddr, method: &str, path: &str) -> Result<Value, ClientError> {
    let stream = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| ClientError::Connect {
            addr,
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"),
        })?
        .map_err(|source| ClientError::Connect { addr, source })?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut send, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(io)
        .await
        .map_err(|e| ClientError::Http(e.to_string()))?;
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .body(Empty::new())
        .map_err(|e| ClientError::Http(e.to_string()))?;
    let resp = tokio::time::timeout(Duration::from_secs(30), send.send_request(req))
        .await
        .map_err(|_| ClientError::Http("timed out".into()))?
        .map_err(|e| ClientError::Http(e.to_string()))?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), 4 << 20)
        .collect()
        .await
        .map_err(|e| ClientError::Http(e.to_string()))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    if !(200..300).contains(&status) {
        return Err(ClientError::Status { status, body: text });
    }
    serde_json::from_str(&text).map_err(|_| ClientError::Status { status, body: text })
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn uptime(v: &Value) -> String {
    match v.as_u64() {
        None => "-".into(),
        Some(t) => humantime::format_duration(Duration::from_secs(t)).to_string(),
    }
}

/// Renders `GET /v1/status` as tables for people.
pub fn format_status(v: &Value) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "AS {}  router-id {}{}\n\nSESSIONS\n",
        s(&v["asn"]),
        s(&v["router_id"]),
        if v["draining"].as_bool() == Some(true) {
            "  (draining)"
        } else {
            ""
        }
    ));
    out.push_str(&format!(
        "{:<12} {:<26} {:<8} {:<12} {:<12} {:>5} {:>5} {:>5} {:<10}\n",
        "NAME", "ADDRESS", "AS", "STATE", "UPTIME", "FLAPS", "SENT", "RCVD", "BFD"
    ));
    for p in v["sessions"].as_array().into_iter().flatten() {
        let bfd = match &p["bfd"] {
            Value::Null => "off".to_string(),
            b => s(&b["state"]),
        };
        out.push_str(&format!(
            "{:<12} {:<26} {:<8} {:<12} {:<12} {:>5} {:>5} {:>5} {:<10}\n",
            s(&p["name"]),
            s(&p["address"]),
            s(&p["asn"]),
            s(&p["state"]),
            uptime(&p["uptime_seconds"]),
            s(&p["flaps"]),
            s(&p["prefixes_sent"]),
            s(&p["prefixes_received"]),
            bfd
        ));
        if let Value::String(e) = &p["last_error"] {
            out.push_str(&format!("{:<12} last error: {e}\n", ""));
        }
    }
    out.push_str("\nVIPS\n");
    out.push_str(&format!(
        "{:<16} {:<28} {:<10} {:<8} {:<9}\n",
        "NAME", "PREFIX", "POOL", "WHEN", "ANNOUNCED"
    ));
    for p in v["vips"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<16} {:<28} {:<10} {:<8} {:<9}\n",
            s(&p["name"]),
            s(&p["prefix"]),
            s(&p["pool"]),
            s(&p["announce"]),
            if p["announced"].as_bool() == Some(true) {
                "yes"
            } else {
                "no"
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn status_renders_as_tables() {
        let v = json!({
            "asn": 65001, "router_id": "198.18.0.11", "draining": false,
            "sessions": [{"name": "router", "address": "198.18.0.1", "asn": 65000, "state": "established",
                "uptime_seconds": 3661, "flaps": 1, "prefixes_sent": 2, "prefixes_received": 0,
                "last_error": "BFD down", "bfd": {"state": "up"}}],
            "vips": [{"name": "api", "prefix": "198.19.0.10/32", "pool": "api", "announce": "always", "announced": true}]
        });
        let t = format_status(&v);
        assert!(t.contains("AS 65001  router-id 198.18.0.11"), "{t}");
        assert!(
            t.contains("established") && t.contains("1h 1m 1s") && t.contains("up"),
            "{t}"
        );
        assert!(t.contains("last error: BFD down"), "{t}");
        assert!(t.contains("198.19.0.10/32") && t.contains("yes"), "{t}");
    }
}
