//! The store on its own: rows in, queries out; rollups scale by the sampling rate; retention by age and by size
//! keeps the database under its cap with the newest data kept; the file stays consistent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use prometheus_client::registry::Registry;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use yagura_flow::{FlowProtocol, FlowRecord};
use yagura_watch::logstore::logs_dir;
use yagura_watch::metrics::Metrics;
use yagura_watch::store::query::{self, FlowQuery, LogQuery, TopQuery};
use yagura_watch::store::{now_ms, open_reader, LogRow, StoreMsg, Writer, WriterLimits};

fn limits(max_bytes: u64) -> WriterLimits {
    WriterLimits {
        max_bytes,
        raw_flows: true,
        flows_raw: Duration::from_secs(3600),
        flows_rollup: Duration::from_secs(86400),
        logs: Duration::from_secs(86400),
        counters: Duration::from_secs(86400),
        commit_interval: Duration::from_secs(1),
        retention_interval: Duration::from_secs(5),
        retry_interval: Duration::from_secs(1),
    }
}

fn writer(dir: &std::path::Path, max_bytes: u64) -> (Writer, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::register(&mut Registry::default(), 16));
    let w = Writer::open(&dir.join("w.db"), limits(max_bytes), metrics.clone()).unwrap();
    (w, metrics)
}

/// The database, its WAL and the log store together stay within the cap (10 % slack for the page being
/// written).
fn assert_within_cap(dir: &std::path::Path, cap: u64) {
    let logs: u64 = std::fs::read_dir(logs_dir(&dir.join("w.db")))
        .map(|rd| {
            rd.map(|e| e.unwrap().metadata().unwrap().len())
                .sum::<u64>()
        })
        .unwrap_or(0);
    let file = std::fs::metadata(dir.join("w.db")).unwrap().len()
        + std::fs::metadata(dir.join("w.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0)
        + logs;
    assert!(
        file <= cap + cap / 10,
        "store is {file} bytes with a cap of {cap}"
    );
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn flow(src: &str, dst: &str, sport: u16, dport: u16, bytes: u64, rate: u32) -> FlowRecord {
    let mut r = FlowRecord::new(FlowProtocol::Sflow5, ip("198.18.0.1"), 0);
    r.src_addr = Some(ip(src));
    r.dst_addr = Some(ip(dst));
    r.src_port = Some(sport);
    r.dst_port = Some(dport);
    r.protocol = Some(6);
    r.bytes = Some(bytes);
    r.packets = Some(1);
    r.sampling_rate = Some(rate);
    r
}

fn log(received_ms: i64, host: &str, sev: u8, msg: &str) -> StoreMsg {
    StoreMsg::Log(Box::new(LogRow {
        received_ms,
        ts_ms: Some(received_ms),
        peer: ip("127.0.0.1"),
        transport: "udp",
        host: Some(host.into()),
        app: Some("app".into()),
        proc_id: None,
        msg_id: None,
        facility: 4,
        severity: sev,
        format: "rfc5424",
        malformed: false,
        msg: msg.into(),
        raw: msg.as_bytes().to_vec(),
    }))
}

#[test]
fn flows_rollups_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, _) = writer(dir.path(), 64 << 20);
    let now = now_ms();
    w.push(StoreMsg::Flows {
        received_ms: now,
        peer: ip("198.18.0.1"),
        records: vec![
            flow("198.18.1.1", "198.18.2.2", 40000, 443, 100, 10),
            flow("198.18.1.1", "198.18.2.2", 40000, 443, 50, 10),
            flow("198.18.1.3", "198.18.2.2", 40001, 22, 70, 1),
        ],
    });
    w.flush();
    let c = open_reader(&dir.path().join("w.db")).unwrap();
    let q = FlowQuery {
        port: Some(40000),
        ..FlowQuery::default()
    };
    let f = query::flows(&c, &q, now + 1, 100).unwrap();
    assert_eq!(f.rows.len(), 2);
    assert_eq!(
        f.rows.iter().map(|r| r.bytes).sum::<i64>(),
        1500,
        "scaled by the sampling rate"
    );
    let q = FlowQuery {
        port: Some(22),
        kind: Some("sflow".into()),
        host: Some("198.18.2.2".into()),
        ..FlowQuery::default()
    };
    assert_eq!(query::flows(&c, &q, now + 1, 100).unwrap().rows.len(), 1);
    let top = query::top(
        &c,
        &TopQuery {
            by: Some("src".into()),
            ..TopQuery::default()
        },
        now + 1,
        10,
    )
    .unwrap();
    assert_eq!(top.rows[0].src.as_deref(), Some("198.18.1.1"));
    assert_eq!(top.rows[0].bytes, 1500);
    assert_eq!(top.rows[0].flows, 2);
    assert_eq!(top.rows[1].bytes, 70);
    let conv = query::top(
        &c,
        &TopQuery {
            by: Some("port".into()),
            order: Some("flows".into()),
            ..TopQuery::default()
        },
        now + 1,
        10,
    )
    .unwrap();
    assert_eq!(
        (conv.rows[0].proto, conv.rows[0].port),
        (Some(6), Some(443))
    );
    let bad = query::top(
        &c,
        &TopQuery {
            by: Some("nonsense".into()),
            ..TopQuery::default()
        },
        now,
        10,
    );
    assert!(bad.is_err());
}

#[test]
fn retention_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, _) = writer(dir.path(), 64 << 20);
    let now = now_ms();
    let old = now - 2 * 86_400_000;
    w.push(log(old, "old", 3, "ancient message"));
    w.push(log(now, "new", 3, "fresh message"));
    w.push(StoreMsg::Flows {
        received_ms: now - 2 * 3_600_000,
        peer: ip("198.18.0.1"),
        records: vec![flow("198.18.1.1", "198.18.2.2", 1, 2, 10, 1)],
    });
    w.flush();
    w.run_retention(now);
    let c = open_reader(&dir.path().join("w.db")).unwrap();
    let all = LogQuery {
        from: Some("7d".into()),
        ..LogQuery::default()
    };
    let l = query::logs(&logs_dir(&dir.path().join("w.db")), &all, now + 1, 100).unwrap();
    assert_eq!(l.rows.len(), 1);
    assert_eq!(l.rows[0].host.as_deref(), Some("new"));
    let f = query::flows(
        &c,
        &FlowQuery {
            from: Some("1d".into()),
            ..FlowQuery::default()
        },
        now + 1,
        100,
    )
    .unwrap();
    assert!(f.rows.is_empty(), "raw flows older than 1h are gone");
    let t = query::top(
        &c,
        &TopQuery {
            from: Some("1d".into()),
            ..TopQuery::default()
        },
        now + 1,
        100,
    )
    .unwrap();
    assert_eq!(t.rows.len(), 1, "the rollup (kept a day) stays");
}

#[test]
fn retention_by_size_keeps_the_newest_under_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let cap: u64 = 4 << 20;
    let (mut w, metrics) = writer(dir.path(), cap);
    let start = now_ms() - 3_600_000;
    // ~18 MB of messages (incompressible text) into a 4 MiB store, a tenth of a second apart.
    let mut x: u64 = 7;
    for i in 0..20_000i64 {
        let body: String = (0..900)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'a' + (x % 26) as u8)
            })
            .collect();
        w.push(log(
            start + i * 100,
            &format!("h{}", i % 7),
            6,
            &format!("msg{i} {body}"),
        ));
        if i % 1000 == 999 {
            w.flush();
            w.run_retention(start + i * 100);
            assert_within_cap(dir.path(), cap);
        }
    }
    let c = open_reader(&dir.path().join("w.db")).unwrap();
    let logs = logs_dir(&dir.path().join("w.db"));
    let newest = query::logs(
        &logs,
        &LogQuery {
            from: Some("0".into()),
            text: Some("msg19999".into()),
            ..LogQuery::default()
        },
        now_ms(),
        10,
    )
    .unwrap();
    assert_eq!(newest.rows.len(), 1, "the newest message is kept");
    assert!(
        newest.rows[0].msg.starts_with("msg19999 "),
        "text matches find their own messages"
    );
    let oldest = query::logs(
        &logs,
        &LogQuery {
            from: Some("0".into()),
            text: Some("msg0".into()),
            ..LogQuery::default()
        },
        now_ms(),
        10,
    )
    .unwrap();
    assert!(oldest.rows.is_empty(), "the oldest message went first");
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let mut text = String::new();
    let mut reg = Registry::default();
    let _ = &metrics;
    let m2 = Metrics::register(&mut reg, 1);
    m2.store_used_bytes.set(1);
    prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
    assert!(text.contains("yagura_watch_store_used_bytes 1"));
}

#[test]
fn raw_flows_are_found_and_trimmed_through_the_minute_index() {
    let dir = tempfile::tempdir().unwrap();
    let cap: u64 = 4 << 20;
    let (mut w, _) = writer(dir.path(), cap);
    // Minute-aligned plus 15 s: which table the size cap trims first depends on the ages relative to each
    // table's retention, and so on where in its minute the test started (at 50 s it took the newest raw
    // minute too: correct by the policy, but not what this test looks at).
    let now = now_ms();
    let start = now - now.rem_euclid(60_000) - 50 * 60_000 + 15_000;
    // 50 receive minutes × 2,000 flows: ~100,000 rows, far more than 4 MiB holds.
    for minute in 0..50i64 {
        let t = start + minute * 60_000;
        let records: Vec<_> = (0..2000u16)
            .map(|i| {
                flow(
                    "198.18.1.1",
                    "198.18.2.2",
                    i + 10_000,
                    (minute as u16) + 1000,
                    100,
                    1,
                )
            })
            .collect();
        w.push(StoreMsg::Flows {
            received_ms: t,
            peer: ip("198.18.0.1"),
            records,
        });
        w.flush();
        w.run_retention(t);
        assert_within_cap(dir.path(), cap);
    }
    let c = open_reader(&dir.path().join("w.db")).unwrap();
    let q = |port: u16, from: i64| FlowQuery {
        port: Some(port),
        from: Some(from.to_string()),
        limit: Some(5000),
        ..FlowQuery::default()
    };
    let newest = query::flows(&c, &q(1049, start), now_ms(), 10_000).unwrap();
    assert_eq!(newest.rows.len(), 2000, "the newest minute is all there");
    let oldest = query::flows(&c, &q(1000, start - 60_000), now_ms(), 10_000).unwrap();
    assert!(oldest.rows.is_empty(), "the oldest minute went first");
    // (Rollups are kept 24 times longer than raw flows here, so the cap leaves raw flows for the last minute.)
    // A window around a minute finds only that minute.
    let mid = start + 49 * 60_000;
    let v = query::flows(
        &c,
        &FlowQuery {
            from: Some(mid.to_string()),
            to: Some((mid + 60_000).to_string()),
            limit: Some(5000),
            ..FlowQuery::default()
        },
        now_ms(),
        10_000,
    )
    .unwrap();
    assert_eq!(v.rows.len(), 2000);
    assert!(v.rows.iter().all(|r| r.dport == Some(1049)));
}
