//! The syslog store path (the log store beside the database): rows in batches, the text search over them,
//! retention removing old messages, the move of a version 1 database's messages into the log store, and
//! blocks written within a second once input pauses, however long the commit interval.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use prometheus_client::registry::Registry;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use yagura_watch::logstore::logs_dir;
use yagura_watch::metrics::Metrics;
use yagura_watch::store::query::{self, LogQuery};
use yagura_watch::store::{
    now_ms, open_reader, LogBatch, LogRow, StoreMsg, Writer, WriterCmd, WriterLimits,
};

fn limits(commit_interval: Duration) -> WriterLimits {
    WriterLimits {
        max_bytes: 64 << 20,
        raw_flows: true,
        flows_raw: Duration::from_secs(3600),
        flows_rollup: Duration::from_secs(86400),
        logs: Duration::from_secs(86400),
        counters: Duration::from_secs(86400),
        commit_interval,
        retention_interval: Duration::from_secs(3600),
        retry_interval: Duration::from_secs(1),
    }
}

fn writer(path: &std::path::Path, commit_interval: Duration) -> Writer {
    let metrics = Arc::new(Metrics::register(&mut Registry::default(), 16));
    Writer::open(path, limits(commit_interval), metrics).unwrap()
}

fn row(received_ms: i64, host: &str, msg: &str) -> LogRow {
    LogRow {
        received_ms,
        ts_ms: Some(received_ms),
        peer: "198.18.0.7".parse::<IpAddr>().unwrap(),
        transport: "tcp",
        host: Some(host.into()),
        app: Some("app".into()),
        proc_id: Some("42".into()),
        msg_id: None,
        facility: 4,
        severity: 3,
        format: "rfc5424",
        malformed: false,
        msg: msg.into(),
        raw: format!("<35>1 - {host} app 42 - - {msg}").into_bytes(),
    }
}

fn batch(rows: Vec<LogRow>) -> StoreMsg {
    StoreMsg::Logs(LogBatch { rows, ticket: None })
}

fn text(db: &std::path::Path, words: &str, now: i64) -> Vec<LogRow2> {
    let q = LogQuery {
        from: Some("7d".into()),
        text: Some(words.into()),
        limit: Some(1000),
        ..LogQuery::default()
    };
    query::logs(&logs_dir(db), &q, now + 1, 1000)
        .unwrap()
        .rows
        .into_iter()
        .map(|r| LogRow2 {
            host: r.host.unwrap_or_default(),
            msg: r.msg,
            procid: r.procid,
            raw: r.raw,
        })
        .collect()
}

#[derive(Debug)]
struct LogRow2 {
    host: String,
    msg: String,
    procid: Option<String>,
    raw: String,
}

fn count(db: &std::path::Path, word: &str) -> usize {
    text(db, word, now_ms()).len()
}

#[test]
fn batches_are_stored_searchable_and_retired_with_their_index() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let mut w = writer(&db, Duration::from_secs(1));
    let now = now_ms();
    let old = now - 2 * 86_400_000;
    // 16-row statements and a remainder, in two batches plus a single row.
    let olds: Vec<LogRow> = (0..37)
        .map(|i| {
            row(
                old + i,
                &format!("old{i}"),
                &format!("ancient link down {i}"),
            )
        })
        .collect();
    let news: Vec<LogRow> = (0..21)
        .map(|i| {
            row(
                now - 100 + i,
                &format!("new{i}"),
                &format!("fresh Link Up {i}"),
            )
        })
        .collect();
    w.push(batch(olds));
    w.push(batch(news));
    w.push(StoreMsg::Log(Box::new(row(
        now,
        "single",
        "fresh link down",
    ))));
    w.flush();
    // Every word must appear, case-insensitively; each field stays with its row.
    let down = text(&db, "LINK down", now);
    assert_eq!(down.len(), 38, "{down:?}");
    let up = text(&db, "link up", now);
    assert_eq!(up.len(), 21);
    assert!(up.iter().all(|r| r.msg.starts_with("fresh Link Up")));
    let r = up.iter().find(|r| r.host == "new7").unwrap();
    assert_eq!(r.msg, "fresh Link Up 7");
    assert_eq!(r.procid.as_deref(), Some("42"));
    assert_eq!(r.raw, "<35>1 - new7 app 42 - - fresh Link Up 7");
    assert_eq!(text(&db, "fresh down", now).len(), 1);
    assert_eq!(text(&db, "absent", now).len(), 0);
    assert_eq!(count(&db, "ancient"), 37);
    w.run_retention(now);
    assert_eq!(text(&db, "link down", now).len(), 1);
    assert_eq!(text(&db, "link up", now).len(), 21);
    assert_eq!(count(&db, "ancient"), 0);
    assert_eq!(count(&db, "fresh"), 22);
    // Whole words only, as the full-text index matched.
    assert_eq!(count(&db, "fres"), 0);
    assert_eq!(count(&db, "link-up"), 21);
}

#[test]
fn a_version_1_stores_messages_move_to_the_log_store_and_stay_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    {
        // The version 1 layout of the log tables, with two messages in it.
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE logs (
                id INTEGER PRIMARY KEY, received INTEGER NOT NULL, ts INTEGER, peer TEXT NOT NULL,
                transport TEXT NOT NULL, host TEXT, app TEXT, procid TEXT, msgid TEXT,
                facility INTEGER NOT NULL, severity INTEGER NOT NULL, format TEXT NOT NULL,
                malformed INTEGER NOT NULL, msg TEXT NOT NULL, raw BLOB NOT NULL);
             CREATE INDEX logs_received ON logs(received);
             CREATE VIRTUAL TABLE logs_fts USING fts5(msg, content='', contentless_delete=1, detail=none);
             PRAGMA user_version = 1;",
        )
        .unwrap();
        let now = now_ms();
        for (id, m) in [(1, "bgp neighbor down"), (2, "bgp neighbor up")] {
            c.execute(
                "INSERT INTO logs VALUES (?1, ?2, NULL, '198.18.0.1', 'udp', 'sw1', 'bgpd', NULL, NULL, 3, 3, \
                 'rfc3164', 0, ?3, CAST(?3 AS BLOB))",
                rusqlite::params![id, now - 1000, m],
            )
            .unwrap();
            c.execute(
                "INSERT INTO logs_fts (rowid, msg) VALUES (?1, ?2)",
                rusqlite::params![id, m],
            )
            .unwrap();
        }
    }
    let mut w = writer(&db, Duration::from_secs(1));
    let now = now_ms();
    w.push(batch(vec![row(now, "sw2", "bgp neighbor down again")]));
    w.flush();
    let c = open_reader(&db).unwrap();
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 3);
    let tables: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('logs', 'logs_fts')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0, "the old tables are gone");
    let down = text(&db, "neighbor down", now);
    assert_eq!(down.len(), 2, "{down:?}");
    assert_eq!(text(&db, "up", now).len(), 1);
    let moved = text(&db, "neighbor up", now);
    assert_eq!(moved[0].host, "sw1");
    assert_eq!(moved[0].raw, "bgp neighbor up");
    // Retention removes the moved messages like any other.
    w.run_retention(now + 2 * 86_400_000);
    assert_eq!(count(&db, "neighbor"), 0);
}

#[test]
fn rows_are_committed_soon_after_input_pauses() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    // A commit interval far longer than the test: blocks are still written within a second.
    let w = writer(&db, Duration::from_secs(3600));
    let (tx, rx) = std::sync::mpsc::sync_channel(16);
    let t = std::thread::spawn(move || w.run(rx));
    let now = now_ms();
    let ticket = Arc::new(());
    tx.send(WriterCmd::Data(StoreMsg::Logs(LogBatch {
        rows: (0..40)
            .map(|i| row(now, "h", &format!("paused {i}")))
            .collect(),
        ticket: Some(ticket.clone()),
    })))
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = count(&db, "paused");
        if n == 40 {
            break;
        }
        assert!(Instant::now() < deadline, "rows not committed ({n})");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The writer let go of the batch's ticket when it took the batch.
    assert_eq!(Arc::strong_count(&ticket), 1);
    drop(tx);
    t.join().unwrap();
}
