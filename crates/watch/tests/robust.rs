//! The daemon under bad input and bad luck: malformed and truncated datagrams are counted, never fatal; an
//! IPFIX template withdrawn and re-sent; sFlow counter samples become interface rates; a disk that fills
//! (a small tmpfs) while data flows — storing stops, is counted and shown, and resumes when space returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::net::UdpSocket;
use std::time::Duration;
use yagura_watch::ListenerKind;

fn be16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_be_bytes());
}
fn be32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_be_bytes());
}
fn be64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_be_bytes());
}

/// An IPFIX message (RFC 7011) with the given sets.
fn ipfix(seq: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = sets.concat();
    let mut v = Vec::new();
    be16(&mut v, 10);
    be16(&mut v, (16 + body.len()) as u16);
    be32(&mut v, (yagura_watch::store::now_ms() / 1000) as u32);
    be32(&mut v, seq);
    be32(&mut v, 7);
    v.extend(body);
    v
}

fn set(id: u16, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    be16(&mut v, id);
    be16(&mut v, (4 + body.len()) as u16);
    v.extend_from_slice(body);
    v
}

/// Template 256: src/dst IPv4, ports, protocol, octets, packets.
fn template() -> Vec<u8> {
    let mut b = Vec::new();
    be16(&mut b, 256);
    be16(&mut b, 7);
    for (id, len) in [
        (8u16, 4u16),
        (12, 4),
        (7, 2),
        (11, 2),
        (4, 1),
        (1, 8),
        (2, 8),
    ] {
        be16(&mut b, id);
        be16(&mut b, len);
    }
    set(2, &b)
}

fn withdrawal() -> Vec<u8> {
    let mut b = Vec::new();
    be16(&mut b, 256);
    be16(&mut b, 0);
    set(2, &b)
}

fn data(octets: u64) -> Vec<u8> {
    let mut b = vec![198, 18, 9, 1, 198, 18, 9, 2];
    be16(&mut b, 5555);
    be16(&mut b, 53);
    b.push(17);
    be64(&mut b, octets);
    be64(&mut b, 1);
    set(256, &b)
}

/// An sFlow v5 datagram with one counter sample carrying generic interface counters.
fn sflow_counters(seq: u32, in_octets: u64, out_octets: u64, in_pkts: u32) -> Vec<u8> {
    let mut rec = Vec::new();
    be32(&mut rec, 3); // ifIndex
    be32(&mut rec, 6); // ifType ethernetCsmacd
    be64(&mut rec, 1_000_000_000);
    be32(&mut rec, 1); // full duplex
    be32(&mut rec, 3); // admin up, oper up
    be64(&mut rec, in_octets);
    for x in [in_pkts, 0, 0, 0, 2, 0] {
        be32(&mut rec, x);
    }
    be64(&mut rec, out_octets);
    for x in [in_pkts / 2, 0, 0, 0, 0, 0] {
        be32(&mut rec, x);
    }
    assert_eq!(rec.len(), 88);
    let mut sample = Vec::new();
    be32(&mut sample, seq);
    be32(&mut sample, 3); // source id: ifIndex 3
    be32(&mut sample, 1); // one record
    be32(&mut sample, 1); // generic interface counters
    be32(&mut sample, 88);
    sample.extend(rec);
    let mut v = Vec::new();
    be32(&mut v, 5);
    be32(&mut v, 1);
    v.extend_from_slice(&[127, 0, 0, 9]);
    be32(&mut v, 0);
    be32(&mut v, seq);
    be32(&mut v, 1000 * seq);
    be32(&mut v, 1); // one sample
    be32(&mut v, 2); // counter sample
    be32(&mut v, sample.len() as u32);
    v.extend(sample);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_templates_and_counters() {
    let dir = tempfile::tempdir().unwrap();
    let w = Running::start(config("127.0.0.1", dir.path(), "64MiB")).await;
    let sflow = w.addr(ListenerKind::Sflow);
    let netflow = w.addr(ListenerKind::Netflow);
    let syslog = w.addr(ListenerKind::SyslogUdp);
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();

    // Garbage and every truncation of valid datagrams: counted, never fatal.
    let good_ipfix = ipfix(1, &[template(), data(1000)]);
    let good_sflow = sflow_counters(1, 1_000, 2_000, 10);
    for len in 0..good_ipfix.len() {
        tx.send_to(&good_ipfix[..len], netflow).unwrap();
    }
    for len in (0..good_sflow.len()).step_by(7) {
        tx.send_to(&good_sflow[..len], sflow).unwrap();
    }
    tx.send_to(b"\x00\x00\x00\x05 not really sflow", sflow)
        .unwrap();
    tx.send_to(&[0xff; 1400], netflow).unwrap();
    tx.send_to(b"\xc3\x28 <999>garbage \x00 line", syslog)
        .unwrap();
    let w_ref = &w;
    poll(
        "decode errors to be counted",
        Duration::from_secs(10),
        || async move {
            (w_ref.metric("yagura_watch_decode_errors_total{").await >= 20.0).then_some(())
        },
    )
    .await;
    let v = poll(
        "the malformed syslog line",
        Duration::from_secs(10),
        || async move {
            let v = w_ref.get("/api/v1/syslog", &[("from", "5m")]).await;
            (rows(&v) == 1).then_some(v)
        },
    )
    .await;
    assert_eq!(v["rows"][0]["malformed"], true);
    assert!(v["rows"][0]["raw"].as_str().unwrap().contains("garbage"));

    // Template learned → data stored; withdrawn → data counted as missing; re-sent → stored again.
    tx.send_to(&ipfix(10, &[template(), data(1000)]), netflow)
        .unwrap();
    poll("a template", Duration::from_secs(10), || async move {
        (w_ref.metric("yagura_watch_templates{").await == 1.0).then_some(())
    })
    .await;
    let missing_before = w.metric("yagura_watch_missing_template_sets_total{").await;
    tx.send_to(&ipfix(11, &[withdrawal(), data(2000)]), netflow)
        .unwrap();
    poll("the withdrawal", Duration::from_secs(10), || async move {
        (w_ref
            .metric("yagura_watch_missing_template_sets_total{")
            .await
            > missing_before)
            .then_some(())
    })
    .await;
    tx.send_to(&ipfix(12, &[template(), data(3000)]), netflow)
        .unwrap();
    let v = poll(
        "flows from the re-sent template",
        Duration::from_secs(10),
        || async move {
            let v = w_ref
                .get(
                    "/api/v1/flows",
                    &[("kind", "ipfix"), ("port", "5555"), ("from", "5m")],
                )
                .await;
            (sum(&v, "bytes") >= 4000).then_some(v)
        },
    )
    .await;
    // The truncated copies above could decode a complete first record: count only the three sent whole.
    let bytes: Vec<i64> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["bytes"].as_i64().unwrap())
        .collect();
    assert!(bytes.contains(&3000) && !bytes.contains(&2000), "{bytes:?}");

    // Counter samples are kept and turned into interface rates.
    tx.send_to(&sflow_counters(2, 1_000_000, 2_000_000, 1000), sflow)
        .unwrap();
    poll(
        "the first counter sample",
        Duration::from_secs(10),
        || async move {
            (w_ref.metric("yagura_watch_counter_samples_total{").await >= 1.0).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await; // two samples need two receive times
    tx.send_to(&sflow_counters(3, 2_000_000, 4_000_000, 3000), sflow)
        .unwrap();
    let m = poll("interface rates", Duration::from_secs(10), || async move {
        let m = w_ref.metrics().await;
        m.contains("yagura_watch_interface_bits_per_second{")
            .then_some(m)
    })
    .await;
    let bps = metric_in(&m, "yagura_watch_interface_bits_per_second{exporter=\"127.0.0.9\",if_index=\"3\",direction=\"in\"}");
    assert!(bps > 0.0 && bps < 8_000_000.0 / 0.3, "{m}");
    let v = poll(
        "interfaces in the API",
        Duration::from_secs(10),
        || async move {
            let v = w_ref.get("/api/v1/interfaces", &[("from", "5m")]).await;
            (v["rows"][0]["in_bps"].as_f64().is_some()).then_some(v)
        },
    )
    .await;
    assert_eq!(v["rows"][0]["if_index"], 3, "{v}");
    assert_eq!(v["rows"][0]["oper_up"], true);
    // Bad query parameters are a 400 with a message, not a crash.
    let err = tokio::task::spawn_blocking({
        let url = w.url.clone();
        move || yagura_watch::cli::get(&url, "/api/v1/flows/top", &[("by", "colour".to_string())])
    })
    .await
    .unwrap()
    .unwrap_err();
    assert!(err.to_string().contains("400"), "{err}");
    w.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_fills_stops_storing_then_recovers() {
    if !require(true, &["mount", "umount"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    sh(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "size=6m",
        "tmpfs",
        mnt.to_str().unwrap(),
    ]);
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _guard = Unmount(mnt.clone());
    // Leave about 1.5 MiB free, with a cap (64 MiB) the filesystem cannot hold: ENOSPC comes first.
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![0u8; 4 * 1024 * 1024 + 512 * 1024]).unwrap();
    let w = Running::start(config("127.0.0.1", &mnt, "64MiB")).await;
    let syslog = w.addr(ListenerKind::SyslogUdp);
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Text that does not compress (the log store compresses its blocks): a new pseudo-random body per message.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut body = move || -> String {
        (0..1800)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from(b'a' + (seed % 26) as u8)
            })
            .collect()
    };
    let w_ref = &w;
    let mut i = 0u32;
    poll(
        "the store to fail with a full disk",
        Duration::from_secs(30),
        || {
            for _ in 0..100 {
                i += 1;
                let _ = tx.send_to(
                    format!("<13>1 - h app - - - fill{i} {}", body()).as_bytes(),
                    syslog,
                );
            }
            std::thread::sleep(Duration::from_millis(20));
            async move { (w_ref.metric("yagura_watch_store_writable ").await == 0.0).then_some(()) }
        },
    )
    .await;
    let m = w.metrics().await;
    assert!(
        metric_in(&m, "yagura_watch_store_errors_total{kind=\"disk_full\"}") >= 1.0,
        "{m}"
    );
    // Still serving while failing, and what it drops is counted.
    for _ in 0..20 {
        i += 1;
        let _ = tx.send_to(
            format!("<13>1 - h app - - - fill{i} {}", body()).as_bytes(),
            syslog,
        );
    }
    poll("disk drops to be counted", Duration::from_secs(10), || async move {
        (w_ref.metric("yagura_watch_dropped_total{exporter=\"127.0.0.1\",input=\"syslog\",reason=\"disk\"}").await
            > 0.0)
            .then_some(())
    })
    .await;
    let stored = w
        .get("/api/v1/syslog", &[("from", "5m"), ("limit", "1")])
        .await;
    assert_eq!(rows(&stored), 1, "queries keep working: {stored}");

    // Space returns: storing resumes by itself.
    std::fs::remove_file(&filler).unwrap();
    let mut n = 0;
    poll("storing to resume", Duration::from_secs(20), || {
        n += 1;
        let _ = tx.send_to(
            format!("<13>1 - h app - - - recovered {n}").as_bytes(),
            syslog,
        );
        async move {
            let v = w_ref
                .get("/api/v1/syslog", &[("from", "5m"), ("text", "recovered")])
                .await;
            (rows(&v) > 0 && w_ref.metric("yagura_watch_store_writable ").await == 1.0)
                .then_some(())
        }
    })
    .await;
    w.daemon.shutdown().await;
    let c = yagura_watch::store::open_reader(&mnt.join("watch.db")).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok", "the store is consistent after the disk filled");
    // No partial block stays in a log segment: every byte belongs to a whole, checksummed block.
    let logs = yagura_watch::logstore::logs_dir(&mnt.join("watch.db"));
    for e in std::fs::read_dir(&logs).unwrap() {
        let b = std::fs::read(e.unwrap().path()).unwrap();
        assert_eq!(
            yagura_watch::logstore::codec::scan(&b).1,
            b.len(),
            "a log segment ends in a partial block"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_dropped_and_counted_with_bounded_queues() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config("127.0.0.1", dir.path(), "64MiB");
    c.queues.flow_datagrams = 4;
    c.queues.store = 4;
    let w = Running::start(c).await;
    let netflow = w.addr(ListenerKind::Netflow);
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    // NetFlow v5 with 30 records per datagram: cheap to send, real work to decode and store.
    let mut v5 = Vec::new();
    be16(&mut v5, 5);
    be16(&mut v5, 30);
    be32(&mut v5, 1000);
    be32(&mut v5, (yagura_watch::store::now_ms() / 1000) as u32);
    be32(&mut v5, 0);
    be32(&mut v5, 1);
    be32(&mut v5, 0);
    for i in 0..30u8 {
        v5.extend_from_slice(&[198, 18, 7, i, 198, 18, 8, i, 0, 0, 0, 0]);
        be16(&mut v5, 1);
        be16(&mut v5, 2);
        be32(&mut v5, 10);
        be32(&mut v5, 1000);
        be32(&mut v5, 0);
        be32(&mut v5, 1000);
        be16(&mut v5, 4000);
        be16(&mut v5, 80);
        v5.extend_from_slice(&[0, 0x18, 6, 0]);
        be16(&mut v5, 0);
        be16(&mut v5, 0);
        v5.extend_from_slice(&[24, 24, 0, 0]);
    }
    assert_eq!(v5.len(), 24 + 30 * 48);
    let w_ref = &w;
    let mut rounds = 0;
    poll("drops under a flood", Duration::from_secs(20), || {
        rounds += 1;
        for _ in 0..2000 {
            let _ = tx.send_to(&v5, netflow);
        }
        async move {
            let m = w_ref.metrics().await;
            let dropped = metric_in(&m, "yagura_watch_dropped_total{");
            (dropped > 0.0).then_some(())
        }
    })
    .await;
    assert!(rounds <= 200);
    // Still answering, and what got through is stored.
    let v = poll("stored v5 flows", Duration::from_secs(10), || async move {
        let v = w_ref
            .get(
                "/api/v1/flows",
                &[("kind", "netflow_v5"), ("from", "5m"), ("limit", "1")],
            )
            .await;
        (rows(&v) == 1).then_some(v)
    })
    .await;
    assert_eq!(v["rows"][0]["dport"], 80);
    w.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_over_tcp_is_lossless_under_pressure() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config("127.0.0.1", dir.path(), "64MiB");
    c.queues.syslog_messages = 2;
    c.queues.store = 2;
    let w = Running::start(c).await;
    let tcp = w.addr(ListenerKind::SyslogTcp);
    const N: usize = 5000;
    tokio::task::spawn_blocking(move || {
        let mut s = std::io::BufWriter::new(std::net::TcpStream::connect(tcp).unwrap());
        for i in 0..N {
            // Octet counting, as rsyslog sends it.
            let m = format!("<14>1 2026-11-27T08:00:00Z h1 burst - - - message number {i}");
            write!(s, "{} {m}", m.len()).unwrap();
        }
        s.flush().unwrap();
    })
    .await
    .unwrap();
    let w_ref = &w;
    poll(
        "every TCP message stored",
        Duration::from_secs(30),
        || async move {
            (w_ref
                .metric("yagura_watch_store_rows_total{kind=\"logs\"}")
                .await
                == N as f64)
                .then_some(())
        },
    )
    .await;
    assert_eq!(w.metric("yagura_watch_dropped_total{").await, 0.0);
    w.daemon.shutdown().await;
}
