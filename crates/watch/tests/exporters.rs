//! Real exporters against the daemon, in network namespaces: pmacct's `pmacctd` with `sfprobe` and `nfprobe`
//! (NetFlow v9 and IPFIX) over traffic the test generates; `logger` in both RFC formats over UDP and TCP;
//! rsyslog forwarding over TCP with octet counting. Needs root, pmacct, rsyslog and bsdutils.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::net::UdpSocket;
use std::time::Duration;
use yagura_watch::ListenerKind;

const PACKETS: usize = 400;
const PAYLOAD: usize = 300;
/// IPv4 + UDP headers.
const IP_LEN: i64 = (PAYLOAD + 28) as i64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pmacct_sfprobe_and_nfprobe_totals_match_what_was_sent() {
    if !require(true, &["pmacctd", "ip"]) {
        return;
    }
    let ns = NetNs::new("pm", 1);
    let dir = tempfile::tempdir().unwrap();
    let w = Running::start(config(&ns.host_ip, dir.path(), "64MiB")).await;
    let sflow = w.addr(ListenerKind::Sflow);
    let netflow = w.addr(ListenerKind::Netflow);
    let conf = dir.path().join("pmacctd.conf");
    std::fs::write(
        &conf,
        format!(
            "daemonize: false\npidfile: {d}/pmacctd.pid\nlogfile: {d}/pmacctd.log\npcap_interface: {nsif}\n\
             pcap_filter: udp and dst port 7777\nplugins: sfprobe[sf], nfprobe[v9], nfprobe[fix]\nsampling_rate: 1\n\
             sfprobe_receiver[sf]: {sflow}\nsfprobe_agentip[sf]: {nsip}\n\
             nfprobe_receiver[v9]: {netflow}\nnfprobe_version[v9]: 9\n\
             nfprobe_receiver[fix]: {netflow}\nnfprobe_version[fix]: 10\n\
             nfprobe_timeouts[v9]: udp=2:general=2:maxlife=4:expint=1\n\
             nfprobe_timeouts[fix]: udp=2:general=2:maxlife=4:expint=1\n",
            d = dir.path().display(),
            nsif = ns.ns_if,
            nsip = ns.ns_ip,
        ),
    )
    .unwrap();
    let _pmacctd = Child(
        ns.command("pmacctd")
            .args(["-f", conf.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );

    // Warm up from another socket until sFlow arrives (pmacctd is capturing), then send the measured burst.
    let dst = format!("{}:7777", ns.ns_ip);
    let warm = UdpSocket::bind(format!("{}:0", ns.host_ip)).unwrap();
    let w_ref = &w;
    poll(
        "pmacctd sfprobe to start exporting",
        Duration::from_secs(20),
        || {
            let _ = warm.send_to(b"warm-up", &dst);
            async move {
                let v = w_ref
                    .get("/api/v1/flows", &[("kind", "sflow"), ("from", "5m")])
                    .await;
                (rows(&v) > 0).then_some(())
            }
        },
    )
    .await;
    let sock = UdpSocket::bind(format!("{}:0", ns.host_ip)).unwrap();
    let port = sock.local_addr().unwrap().port().to_string();
    let payload = vec![0x5a; PAYLOAD];
    for i in 0..PACKETS {
        sock.send_to(&payload, &dst).unwrap();
        if i % 10 == 9 {
            // Bounded pacing (about 1,000 packets/s) so the capture keeps up on a slow, shared machine.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    // pmacctd sends a datagram when it is full: keep other traffic going so the last samples are flushed
    // (that traffic comes from another port and is not counted).
    let (warm_ref, dst_ref) = (&warm, &dst);
    let filter = |kind: &'static str| {
        let port = port.clone();
        move || {
            let port = port.clone();
            let _ = warm_ref.send_to(b"flush", dst_ref);
            async move {
                let v = w_ref
                    .get(
                        "/api/v1/flows",
                        &[
                            ("kind", kind),
                            ("from", "5m"),
                            ("port", &port),
                            ("limit", "10000"),
                        ],
                    )
                    .await;
                (sum(&v, "packets") >= PACKETS as i64).then_some(v)
            }
        }
    };
    let sf = poll(
        "all sFlow samples",
        Duration::from_secs(20),
        filter("sflow"),
    )
    .await;
    assert_eq!(sum(&sf, "packets"), PACKETS as i64);
    let bytes = sum(&sf, "bytes");
    // sFlow reports the sampled frame length: the IP packet plus Ethernet framing (14–18 bytes, maybe FCS).
    assert!(
        (IP_LEN * PACKETS as i64..=(IP_LEN + 22) * PACKETS as i64).contains(&bytes),
        "sFlow bytes {bytes} for {PACKETS} × {IP_LEN}"
    );
    let first = &sf["rows"][0];
    assert_eq!(first["src"], ns.host_ip.as_str());
    assert_eq!(first["dst"], ns.ns_ip.as_str());
    assert_eq!(first["dport"], 7777);
    assert_eq!(first["proto"], 17);
    assert_eq!(first["exporter"], ns.ns_ip.as_str());

    for kind in ["netflow_v9", "ipfix"] {
        let v = poll(
            &format!("{kind} flows"),
            Duration::from_secs(30),
            filter(kind),
        )
        .await;
        assert_eq!(sum(&v, "packets"), PACKETS as i64, "{kind}");
        assert_eq!(
            sum(&v, "bytes"),
            IP_LEN * PACKETS as i64,
            "{kind}: octets are IP lengths"
        );
    }

    // Rollups answer the same totals through top talkers / ports.
    let top = w
        .get(
            "/api/v1/flows/top",
            &[("by", "port"), ("from", "10m"), ("limit", "5")],
        )
        .await;
    let p7777 = top["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["port"] == 7777)
        .cloned()
        .unwrap();
    assert!(
        p7777["packets"].as_i64().unwrap() >= 3 * PACKETS as i64,
        "{top}"
    );
    let m = w.metrics().await;
    assert!(metric_in(&m, "yagura_watch_templates{") >= 2.0, "{m}");
    assert!(
        metric_in(&m, "yagura_watch_records_total{") >= PACKETS as f64 + 2.0,
        "{m}"
    );
    assert!(m.contains("protocol=\"sflow\""));
    assert!(m.contains("protocol=\"netflow_v9\""));
    assert!(m.contains("protocol=\"ipfix\""));
    w.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logger_both_formats_udp_and_tcp_and_rsyslog_forwarding() {
    if !require(true, &["logger", "rsyslogd", "ip"]) {
        return;
    }
    let ns = NetNs::new("lg", 2);
    let dir = tempfile::tempdir().unwrap();
    let w = Running::start(config(&ns.host_ip, dir.path(), "64MiB")).await;
    let udp = w.addr(ListenerKind::SyslogUdp).port().to_string();
    let tcp = w.addr(ListenerKind::SyslogTcp).port().to_string();
    let host = ns.host_ip.clone();
    let cases: [(&str, &[&str], &str); 5] = [
        ("u5424", &["--rfc5424", "--udp", "-P", &udp], "rfc5424"),
        ("u3164", &["--rfc3164", "--udp", "-P", &udp], "rfc3164"),
        (
            "t5424",
            &["--rfc5424", "--tcp", "--octet-count", "-P", &tcp],
            "rfc5424",
        ),
        ("t3164", &["--rfc3164", "--tcp", "-P", &tcp], "rfc3164"),
        ("t5424lf", &["--rfc5424", "--tcp", "-P", &tcp], "rfc5424"),
    ];
    for (tag, args, _) in &cases {
        let mut a: Vec<&str> = vec!["logger", "-n", &host, "-t", tag, "-p", "local3.warning"];
        a.extend_from_slice(args);
        let text = format!(
            "interface ge-0/0/{} changed state to down token{tag}",
            tag.len()
        );
        a.push(&text);
        ns.exec(&a);
    }
    let w_ref = &w;
    for (tag, _, format) in &cases {
        let token = format!("token{tag}");
        let v = poll(
            &format!("logger message {tag}"),
            Duration::from_secs(10),
            || {
                let token = token.clone();
                async move {
                    let v = w_ref
                        .get("/api/v1/syslog", &[("text", &token), ("from", "5m")])
                        .await;
                    (rows(&v) == 1).then_some(v)
                }
            },
        )
        .await;
        let r = &v["rows"][0];
        assert_eq!(r["app"], *tag, "{v}");
        assert_eq!(r["format"], *format, "{v}");
        assert_eq!(r["facility"], "local3");
        assert_eq!(r["severity"], "warning");
        assert_eq!(r["peer"], ns.ns_ip.as_str());
        assert!(r["raw"].as_str().unwrap().contains(&token));
    }
    // Filters combine: severity at least warning, facility, app, host, and words.
    let v = w
        .get(
            "/api/v1/syslog",
            &[
                ("severity", "warning"),
                ("facility", "local3"),
                ("app", "u3164"),
                ("text", "changed down"),
            ],
        )
        .await;
    assert_eq!(rows(&v), 1, "{v}");
    let v = w
        .get("/api/v1/syslog", &[("severity", "err"), ("from", "5m")])
        .await;
    assert_eq!(rows(&v), 0, "nothing is err or worse: {v}");

    // rsyslog in the namespace receives on its own UDP port and forwards to us over TCP, octet-counted RFC 5424.
    let conf = dir.path().join("rsyslog.conf");
    let work = dir.path().join("rsyslog-work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{}\")\nmodule(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"10514\")\n\
             action(type=\"omfwd\" target=\"{host}\" port=\"{tcp}\" protocol=\"tcp\" TCP_Framing=\"octet-counted\" \
             template=\"RSYSLOG_SyslogProtocol23Format\")\n",
            work.display()
        ),
    )
    .unwrap();
    let pid = dir.path().join("rsyslog.pid");
    let _rsyslogd = Child(
        ns.command("rsyslogd")
            .args([
                "-n",
                "-f",
                conf.to_str().unwrap(),
                "-i",
                pid.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ns_ref = &ns;
    let mut n = 0;
    let v = poll(
        "a message forwarded by rsyslog",
        Duration::from_secs(20),
        || {
            n += 1;
            let text = format!("forwarded via rsyslog seq{n}");
            ns_ref.exec(&[
                "logger",
                "-n",
                "127.0.0.1",
                "-P",
                "10514",
                "--udp",
                "--rfc3164",
                "-t",
                "fwd",
                &text,
            ]);
            async move {
                let v = w_ref
                    .get(
                        "/api/v1/syslog",
                        &[("text", "forwarded rsyslog"), ("from", "5m")],
                    )
                    .await;
                (rows(&v) > 0).then_some(v)
            }
        },
    )
    .await;
    let r = &v["rows"][0];
    assert_eq!(r["transport"], "tcp");
    assert_eq!(r["format"], "rfc5424", "rsyslog forwards RFC 5424: {v}");
    assert_eq!(r["app"], "fwd");
    let m = w.metrics().await;
    assert!(
        metric_in(&m, "yagura_watch_syslog_messages_total{") >= 6.0,
        "{m}"
    );
    w.daemon.shutdown().await;
}
