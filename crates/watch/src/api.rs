//! The HTTP JSON query API (`/api/v1/…`, documented in docs/watch.md) and the top-N metrics refresher. Every
//! query runs in a blocking thread on its own read-only SQLite connection (flows) or over the log store's files
//! (syslog), so queries never stall the writers.

use crate::metrics::{Metrics, TopLabels};
use crate::store::query::{self, FlowQuery, IfQuery, LogQuery, TopQuery};
use crate::store::{now_ms, open_reader, StoreError};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rusqlite::Connection;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What the API handlers share.
#[derive(Debug)]
pub struct ApiState {
    /// The database.
    pub db: PathBuf,
    /// Row cap per answer (changes on reload).
    pub max_rows: AtomicUsize,
    /// Interface names learnt by SNMP polling, to name the interfaces of flows.
    pub if_names: crate::snmp::IfNames,
}

async fn run<T, F>(state: Arc<ApiState>, f: F) -> Response
where
    T: Serialize + Send + 'static,
    F: FnOnce(&Connection, i64, usize) -> Result<T, StoreError> + Send + 'static,
{
    let r = tokio::task::spawn_blocking(move || {
        let conn = open_reader(&state.db)?;
        f(&conn, now_ms(), state.max_rows.load(Ordering::Relaxed))
    })
    .await;
    answer(r)
}

fn answer<T: Serialize>(r: Result<Result<T, StoreError>, tokio::task::JoinError>) -> Response {
    match r {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(StoreError::BadQuery(m))) => error(StatusCode::BAD_REQUEST, m),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "query failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn error(code: StatusCode, message: String) -> Response {
    (code, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn top(State(s): State<Arc<ApiState>>, Query(q): Query<TopQuery>) -> Response {
    let names = s.if_names.clone();
    run(s, move |c, now, max| {
        query::top(c, &q, now, max).map(|mut a| {
            for r in &mut a.rows {
                if let Some(e) = &r.exporter {
                    r.if_name = names.lookup(e, r.if_index);
                }
            }
            a
        })
    })
    .await
}

async fn exporters(State(s): State<Arc<ApiState>>, Query(mut q): Query<TopQuery>) -> Response {
    q.by = Some("exporter".into());
    q.limit = q.limit.or(Some(1000));
    run(s, move |c, now, max| query::top(c, &q, now, max)).await
}

async fn flows(State(s): State<Arc<ApiState>>, Query(q): Query<FlowQuery>) -> Response {
    let names = s.if_names.clone();
    run(s, move |c, now, max| {
        query::flows(c, &q, now, max).map(|mut a| {
            for r in &mut a.rows {
                r.in_if_name = names.lookup(&r.exporter, r.in_if);
                r.out_if_name = names.lookup(&r.exporter, r.out_if);
            }
            a
        })
    })
    .await
}

async fn syslog(State(s): State<Arc<ApiState>>, Query(q): Query<LogQuery>) -> Response {
    // The log store is read directly (no SQLite connection).
    let r = tokio::task::spawn_blocking(move || {
        let dir = crate::logstore::logs_dir(&s.db);
        query::logs(&dir, &q, now_ms(), s.max_rows.load(Ordering::Relaxed))
    })
    .await;
    answer(r)
}

async fn interfaces(State(s): State<Arc<ApiState>>, Query(q): Query<IfQuery>) -> Response {
    let names = s.if_names.clone();
    run(s, move |c, now, max| {
        query::interfaces(c, &q, now, max).map(|mut a| {
            for r in &mut a.rows {
                r.if_name = names.lookup(&r.exporter, Some(r.if_index));
            }
            a
        })
    })
    .await
}

/// The `/api/v1` routes.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/api/v1/flows/top", get(top))
        .route("/api/v1/flows", get(flows))
        .route("/api/v1/exporters", get(exporters))
        .route("/api/v1/syslog", get(syslog))
        .route("/api/v1/interfaces", get(interfaces))
        .with_state(state)
}

/// Refreshes the `top_bytes` gauges from the last five minutes of rollups every `every`, until `stop`.
/// The family is cleared before each refill, so it never holds more than `n` series per `by`.
pub async fn top_refresher(
    db: PathBuf,
    metrics: Arc<Metrics>,
    n: Arc<AtomicUsize>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (db, metrics, n) = (db.clone(), metrics.clone(), n.load(Ordering::Relaxed));
        let r = tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let conn = open_reader(&db)?;
            let mut fresh = Vec::new();
            for by in ["src", "dst", "port", "exporter"] {
                let q = TopQuery {
                    from: Some("5m".into()),
                    by: Some(by.into()),
                    limit: Some(n.max(1)),
                    ..TopQuery::default()
                };
                if n == 0 {
                    continue;
                }
                for (i, row) in query::top(&conn, &q, now_ms(), n)?
                    .rows
                    .into_iter()
                    .enumerate()
                {
                    let key = match by {
                        "src" => row.src.unwrap_or_default(),
                        "dst" => row.dst.unwrap_or_default(),
                        "port" => format!("{}/{}", row.proto.unwrap_or(0), row.port.unwrap_or(0)),
                        _ => row.exporter.unwrap_or_default(),
                    };
                    fresh.push((
                        TopLabels {
                            by,
                            rank: (i + 1).to_string(),
                            key,
                        },
                        row.bytes,
                    ));
                }
            }
            metrics.top_bytes.clear();
            for (l, v) in fresh {
                metrics.top_bytes.get_or_create(&l).set(v);
            }
            Ok(())
        })
        .await;
        if let Ok(Err(e)) = r {
            tracing::debug!(error = %e, "top-N refresh failed");
        }
    }
}
