//! Block codec round trips and damage detection (property tests), the writer's torn-tail recovery and segment
//! retention, and the search's text semantics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::codec::{self, BlockBuilder, FrameHeader, FRAME_HEADER};
use super::search::TextQuery;
use super::*;
use crate::metrics::Metrics;
use crate::store::query::LogQuery;
use crate::store::{LogRow, WriterLimits};
use proptest::prelude::*;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

fn arb_row() -> impl Strategy<Value = LogRow> {
    let ip = prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
    ];
    let opt = || proptest::option::of("[a-zA-Z0-9 ._\\-é]{0,12}");
    (
        (
            -2_000_000_000_000i64..4_000_000_000_000,
            proptest::option::of(-4_000_000_000_000i64..4_000_000_000_000),
            ip,
            any::<bool>(),
            opt(),
            opt(),
            opt(),
            opt(),
        ),
        (
            0u8..24,
            0u8..8,
            0u8..3,
            any::<bool>(),
            "\\PC{0,40}",
            proptest::collection::vec(any::<u8>(), 0..60),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (received_ms, ts_ms, peer, tcp, host, app, proc_id, msg_id),
                (facility, severity, fmt, malformed, msg, raw, suffix),
            )| {
                // Half the rows have the message as the raw line's tail (the compact case).
                let raw = if suffix {
                    let mut r = raw;
                    r.extend_from_slice(msg.as_bytes());
                    r
                } else {
                    raw
                };
                LogRow {
                    received_ms,
                    ts_ms,
                    peer,
                    transport: if tcp { "tcp" } else { "udp" },
                    host,
                    app,
                    proc_id,
                    msg_id,
                    facility,
                    severity,
                    format: ["unknown", "rfc3164", "rfc5424"][fmt as usize],
                    malformed,
                    msg,
                    raw,
                }
            },
        )
}

fn encode(rows: &[LogRow], compress: bool) -> Vec<u8> {
    let mut b = BlockBuilder::default();
    for r in rows {
        b.push(r);
    }
    let mut out = Vec::new();
    b.finish_into(&mut out, compress);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn blocks_round_trip(blocks in proptest::collection::vec((proptest::collection::vec(arb_row(), 1..20), any::<bool>()), 1..4)) {
        let mut seg = Vec::new();
        let mut all = Vec::new();
        for (rows, compress) in &blocks {
            seg.extend(encode(rows, *compress));
            all.extend(rows.iter().cloned());
        }
        let (frames, valid) = codec::scan(&seg);
        prop_assert_eq!(valid, seg.len());
        prop_assert_eq!(frames.len(), blocks.len());
        for (f, (rows, _)) in frames.iter().zip(&blocks) {
            prop_assert_eq!(f.summary.count as usize, rows.len());
            prop_assert_eq!(f.summary.recv_min, rows.iter().map(|r| r.received_ms).min().unwrap());
            prop_assert_eq!(f.summary.recv_max, rows.iter().map(|r| r.received_ms).max().unwrap());
            for r in rows {
                prop_assert!(f.summary.may_have_severity_at_most(r.severity));
                prop_assert!(f.summary.may_have_facility(r.facility));
                if let Some(h) = &r.host {
                    prop_assert!(f.summary.may_have_host(codec::hash(h.as_bytes())));
                }
                prop_assert!(f.summary.may_have_peer(codec::hash(r.peer.to_string().as_bytes())));
            }
        }
        prop_assert_eq!(codec::decode_segment(&seg).unwrap(), all);
    }

    /// A segment cut anywhere keeps exactly the blocks before the cut; nothing panics.
    #[test]
    fn truncated_tails_are_cut_at_the_last_whole_block(rows in proptest::collection::vec(arb_row(), 1..12), cut in any::<prop::sample::Index>()) {
        let first = encode(&rows[..rows.len() / 2 + 1], true);
        let second = encode(&rows[rows.len() / 2..], true);
        let mut seg = first.clone();
        seg.extend_from_slice(&second);
        let at = cut.index(seg.len());
        let (frames, valid) = codec::scan(&seg[..at]);
        if at < first.len() {
            prop_assert_eq!((frames.len(), valid), (0, 0));
        } else if at < seg.len() {
            prop_assert_eq!((frames.len(), valid), (1, first.len()));
        }
        let _ = codec::decode_segment(&seg[..at]);
    }

    /// Any flipped byte is caught (by the CRC or the header checks) and the blocks before it stay readable.
    #[test]
    fn corrupted_blocks_are_detected(rows in proptest::collection::vec(arb_row(), 2..12), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let first = encode(&rows[..1], true);
        let second = encode(&rows[1..], true);
        let mut seg = first.clone();
        seg.extend_from_slice(&second);
        let i = first.len() + pos.index(second.len());
        seg[i] ^= 1 << bit;
        let (frames, valid) = codec::scan(&seg);
        prop_assert_eq!(frames.len(), 1);
        prop_assert_eq!(valid, first.len());
        prop_assert_eq!(codec::decode_segment(&seg).unwrap(), rows[..1].to_vec());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = codec::decode_segment(&bytes);
        if let Ok(h) = FrameHeader::decode(&bytes) {
            let _ = codec::check_frame(&h, &bytes[FRAME_HEADER.min(bytes.len())..]);
        }
        let _ = codec::Summary::decode(&bytes);
        let s = codec::Summary { count: 3, raw_len: bytes.len() as u32, ..Default::default() };
        let _ = codec::decode_payload(&s, &bytes);
        let s = codec::Summary { lz4: true, count: 3, raw_len: 1000, ..Default::default() };
        let _ = codec::decode_payload(&s, &bytes);
    }
}

#[test]
fn text_matches_whole_words_case_insensitively() {
    let q = TextQuery::new(Some("LINK down"));
    assert!(q.matches("Interface eth0: link is down."));
    assert!(!q.matches("link downstream"));
    assert!(!q.matches("link up"));
    let p = TextQuery::new(Some("link-down"));
    assert!(p.matches("state LINK DOWN now"));
    assert!(!p.matches("down link"));
    assert!(TextQuery::new(Some("   ")).is_empty());
    assert!(TextQuery::new(Some("a\"b OR")).matches("a b or"));
    assert!(TextQuery::new(Some("Ärger")).matches("viel ärger heute"));
}

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

fn row(received_ms: i64, host: &str, msg: &str) -> LogRow {
    LogRow {
        received_ms,
        ts_ms: None,
        peer: "198.18.0.7".parse().unwrap(),
        transport: "udp",
        host: Some(host.into()),
        app: Some("app".into()),
        proc_id: None,
        msg_id: None,
        facility: 1,
        severity: 6,
        format: "rfc3164",
        malformed: false,
        msg: msg.into(),
        raw: format!("<14>Nov 27 08:00:00 {host} app: {msg}").into_bytes(),
    }
}

fn open(dir: &std::path::Path, max: u64) -> LogStore {
    let metrics = Arc::new(Metrics::register(
        &mut prometheus_client::registry::Registry::default(),
        16,
    ));
    LogStore::open(dir, limits(max), metrics, Arc::new(SharedUsage::default())).unwrap()
}

fn all(dir: &std::path::Path, now: i64) -> Vec<crate::store::query::LogOut> {
    let q = LogQuery {
        from: Some("0".into()),
        limit: Some(100_000),
        ..LogQuery::default()
    };
    search::search(dir, &q, now, 100_000).unwrap().rows
}

#[test]
fn a_torn_tail_is_cut_on_open_and_older_blocks_survive() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("logs");
    let now = crate::store::now_ms();
    {
        let mut s = open(&dir, 64 << 20);
        s.push_rows(&[row(now, "a", "first block")]);
        s.flush();
        s.push_rows(&[row(now + 2000, "b", "second block")]);
        s.flush();
    }
    let (seq, path) = list_segments(&dir).unwrap().pop().unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    // A crash mid-write: the second block's last bytes never reached the file.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    // Searching before the repair reads what is whole.
    assert_eq!(all(&dir, now + 10_000).len(), 1);
    let mut s = open(&dir, 64 << 20);
    let len2 = std::fs::metadata(&path).unwrap().len();
    assert!(
        len2 < len - 5,
        "the torn block was cut off ({len2} of {len})"
    );
    s.push_rows(&[row(now + 3000, "c", "after the crash")]);
    s.flush();
    let rows = all(&dir, now + 10_000);
    let hosts: Vec<_> = rows.iter().map(|r| r.host.clone().unwrap()).collect();
    assert_eq!(hosts, ["c", "a"], "newest first, the torn message gone");
    assert!(list_segments(&dir).unwrap().iter().any(|(s, _)| *s > seq));
}

#[test]
fn size_retention_deletes_oldest_segments_and_age_retention_old_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("logs");
    let cap = 2u64 << 20;
    let now = crate::store::now_ms();
    let mut s = open(&dir, cap);
    // Incompressible text: 3.6 MB into a 2 MiB cap.
    let mut x: u64 = 7;
    for i in 0..6000i64 {
        let body: String = (0..600)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'a' + (x % 26) as u8)
            })
            .collect();
        s.push_rows(&[row(now - 3_600_000 + i * 100, "h", &format!("m{i} {body}"))]);
    }
    s.flush();
    s.run_retention(now);
    assert!(s.bytes() <= cap, "{} bytes over a cap of {cap}", s.bytes());
    let rows = all(&dir, now);
    assert_eq!(rows[0].msg.split(' ').next(), Some("m5999"));
    assert!(rows.len() < 6000 && !rows.iter().any(|r| r.msg.starts_with("m0 ")));
    // Everything is a day old a day later.
    s.run_retention(now + 2 * 86_400_000);
    assert!(all(&dir, now).is_empty());
}
