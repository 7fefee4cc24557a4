//! Benchmark driver for scripts/bench/watch.sh (not a test):
//!
//! - `replay PCAP REPEAT DB [--no-raw]`: decode + aggregate + store every UDP payload of a capture (sFlow or
//!   NetFlow/IPFIX, picked by destination port 6343 → sFlow) REPEAT times, in one thread, into a fresh store;
//!   prints datagrams, samples (flow records) and CPU seconds as JSON.
//! - `syslog-replay FILE REPEAT DB`: parse + store every line of FILE REPEAT times (in batches of 64 rows, as the
//!   daemon's parser sends them); prints the same.
//! - `send-tcp ADDR FILE REPEAT`: sends every line of FILE REPEAT times over one TCP connection (LF framing).
//! - `flood-udp ADDR PCAP SECONDS`: sends the capture's payloads in a loop for SECONDS as fast as it can.
//! - `daemon CONFIG`: runs the daemon exactly as `yagura watch --config CONFIG` does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use prometheus_client::registry::Registry;
use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use yagura_watch::collect::{log_row, FlowDecoder, FlowInput};
use yagura_watch::metrics::Metrics;
use yagura_watch::store::{LogBatch, StoreMsg, Writer, WriterLimits};

/// (destination port, source address, UDP payload) of every IPv4/UDP packet in a pcap file (Ethernet or
/// Linux cooked captures).
fn pcap_udp(path: &str) -> Vec<(u16, IpAddr, Vec<u8>)> {
    let b = std::fs::read(path).unwrap();
    let magic = u32::from_le_bytes(b[0..4].try_into().unwrap());
    let le = magic == 0xa1b2c3d4 || magic == 0xa1b23c4d;
    let u32_at = |o: usize| {
        let a: [u8; 4] = b[o..o + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let link = u32_at(20);
    let l2 = match link {
        1 => 14,   // Ethernet
        113 => 16, // Linux cooked v1
        _ => panic!("unsupported link type {link}"),
    };
    let mut out = Vec::new();
    let mut o = 24;
    while o + 16 <= b.len() {
        let incl = u32_at(o + 8) as usize;
        let pkt = &b[o + 16..(o + 16 + incl).min(b.len())];
        o += 16 + incl;
        if pkt.len() < l2 + 28 {
            continue;
        }
        let ip = &pkt[l2..];
        if ip[0] >> 4 != 4 || ip[9] != 17 {
            continue;
        }
        let ihl = usize::from(ip[0] & 15) * 4;
        let udp = &ip[ihl..];
        let dport = u16::from_be_bytes([udp[2], udp[3]]);
        let src = IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]));
        out.push((dport, src, udp[8..].to_vec()));
    }
    out
}

/// CPU seconds (user + system) of this process so far.
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn writer(db: &str, raw: bool) -> Writer {
    let _ = std::fs::remove_file(db);
    let _ = std::fs::remove_file(format!("{db}-wal"));
    let _ = std::fs::remove_file(format!("{db}-shm"));
    let _ = std::fs::remove_dir_all(format!("{db}.logs"));
    let metrics = Arc::new(Metrics::register(&mut Registry::default(), 64));
    let limits = WriterLimits {
        max_bytes: 8 << 30,
        raw_flows: raw,
        flows_raw: Duration::from_secs(86400),
        flows_rollup: Duration::from_secs(86400 * 30),
        logs: Duration::from_secs(86400),
        counters: Duration::from_secs(86400),
        commit_interval: Duration::from_secs(1),
        retention_interval: Duration::from_secs(5),
        retry_interval: Duration::from_secs(1),
    };
    Writer::open(std::path::Path::new(db), limits, metrics).unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("replay") => {
            let pkts = pcap_udp(&args[2]);
            let repeat: usize = args[3].parse().unwrap();
            let raw = !args.iter().any(|a| a == "--no-raw");
            let mut w = writer(&args[4], raw);
            let mut dec = FlowDecoder::new(3600, 1024, 4096);
            let (c0, t0) = (cpu_seconds(), Instant::now());
            let (mut datagrams, mut samples, mut counters) = (0u64, 0u64, 0u64);
            let mut last_flush = Instant::now();
            // Receive times advance 1 ms per datagram, so rollups spread over minutes as in real traffic.
            let mut now = 1_800_000_000_000i64;
            for _ in 0..repeat {
                for (dport, src, p) in &pkts {
                    now += 1;
                    let input = if *dport == 6343 {
                        FlowInput::Sflow
                    } else {
                        FlowInput::Netflow
                    };
                    let out = dec.decode(input, *src, now, p);
                    datagrams += 1;
                    samples += out.records.len() as u64;
                    counters += out.counters.len() as u64;
                    if !out.records.is_empty() {
                        w.push(StoreMsg::Flows {
                            received_ms: now,
                            peer: *src,
                            records: out.records,
                        });
                    }
                    if !out.counters.is_empty() {
                        w.push(StoreMsg::Counters {
                            peer: *src,
                            rows: out.counters,
                        });
                    }
                    if last_flush.elapsed() >= Duration::from_secs(1) {
                        w.flush();
                        last_flush = Instant::now();
                    }
                }
            }
            w.flush();
            let cpu = cpu_seconds() - c0;
            let wall = t0.elapsed().as_secs_f64();
            println!(
                "{{\"datagrams\":{datagrams},\"samples\":{samples},\"counter_records\":{counters},\"cpu_s\":{cpu:.3},\"wall_s\":{wall:.3},\"samples_per_cpu_s\":{:.0}}}",
                samples as f64 / cpu.max(0.001)
            );
        }
        Some("syslog-replay") => {
            let text = std::fs::read(&args[2]).unwrap();
            let lines: Vec<&[u8]> = text
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .collect();
            let repeat: usize = args[3].parse().unwrap();
            let mut w = writer(&args[4], true);
            let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
            let (c0, t0) = (cpu_seconds(), Instant::now());
            let mut n = 0u64;
            let mut last_flush = Instant::now();
            // Batches of up to 64 rows, as the daemon's parser hands them to the writer.
            for _ in 0..repeat {
                for chunk in lines.chunks(64) {
                    let rows = chunk
                        .iter()
                        .map(|l| log_row(l, peer, "tcp", 1_800_000_000_000 + n as i64, 0))
                        .collect();
                    w.push(StoreMsg::Logs(LogBatch { rows, ticket: None }));
                    n += chunk.len() as u64;
                    if last_flush.elapsed() >= Duration::from_secs(1) {
                        w.flush();
                        last_flush = Instant::now();
                    }
                }
            }
            w.flush();
            let cpu = cpu_seconds() - c0;
            println!(
                "{{\"messages\":{n},\"cpu_s\":{cpu:.3},\"wall_s\":{:.3},\"messages_per_cpu_s\":{:.0}}}",
                t0.elapsed().as_secs_f64(),
                n as f64 / cpu.max(0.001)
            );
        }
        Some("send-tcp") => {
            let mut s = std::io::BufWriter::new(std::net::TcpStream::connect(&args[2]).unwrap());
            let f = std::fs::File::open(&args[3]).unwrap();
            let lines: Vec<String> = std::io::BufReader::new(f)
                .lines()
                .map(Result::unwrap)
                .collect();
            let repeat: usize = args[4].parse().unwrap();
            for _ in 0..repeat {
                for l in &lines {
                    s.write_all(l.as_bytes()).unwrap();
                    s.write_all(b"\n").unwrap();
                }
            }
            s.flush().unwrap();
        }
        Some("flood-udp") => {
            let pkts = pcap_udp(&args[3]);
            let secs: u64 = args[4].parse().unwrap();
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let end = Instant::now() + Duration::from_secs(secs);
            let mut sent = 0u64;
            'outer: loop {
                for (_, _, p) in &pkts {
                    let _ = sock.send_to(p, &args[2]);
                    sent += 1;
                    if sent.is_multiple_of(1024) && Instant::now() >= end {
                        break 'outer;
                    }
                }
            }
            println!("{{\"sent\":{sent}}}");
        }
        Some("daemon") => {
            // Exactly what `yagura watch --config FILE` runs, without building the whole `yagura` binary.
            let log = yagura_daemon::log::LogFormat::Text;
            if let Err(e) = yagura_watch::daemon::run_blocking(std::path::Path::new(&args[2]), log)
            {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
        _ => {
            eprintln!("usage: watch_bench daemon CONFIG | replay PCAP REPEAT DB [--no-raw] | syslog-replay FILE REPEAT DB | send-tcp ADDR FILE REPEAT | flood-udp ADDR PCAP SECONDS");
            std::process::exit(2);
        }
    }
}
