//! Turning received bytes into store rows, with no I/O: [`FlowDecoder`] (sFlow v5 and NetFlow v5/v9/IPFIX
//! through `yagura-flow`, with the template cache and interface-rate tracking) and [`log_row`] (syslog through
//! `yagura-syslog`). The protocol decoders themselves live in those crates and are fuzzed there.

use crate::store::{CounterRow, LogRow};
use std::collections::HashMap;
use std::net::IpAddr;
use yagura_flow::netflow::{self, CacheConfig, TemplateCache};
use yagura_flow::sflow::{self, CounterData, Sample};
use yagura_flow::{DecodeError, FlowRecord};

/// Which listener a datagram came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowInput {
    /// The sFlow port.
    Sflow,
    /// A NetFlow/IPFIX port.
    Netflow,
}

/// An interface's rates computed from two successive counter samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IfRate {
    /// sFlow agent.
    pub exporter: IpAddr,
    /// ifIndex.
    pub if_index: u32,
    /// Input bits/s.
    pub in_bps: f64,
    /// Output bits/s.
    pub out_bps: f64,
    /// Input packets/s.
    pub in_pps: f64,
    /// Output packets/s.
    pub out_pps: f64,
}

/// What one datagram decoded into.
#[derive(Debug, Default)]
pub struct Decoded {
    /// `sflow`, `netflow_v5`, `netflow_v9`, `ipfix`, or `unknown` when even the header failed.
    pub protocol: &'static str,
    /// Flow records.
    pub records: Vec<FlowRecord>,
    /// Interface counter rows (sFlow counter samples).
    pub counters: Vec<CounterRow>,
    /// Interface rates (from counters seen before).
    pub rates: Vec<IfRate>,
    /// Counter samples for interfaces that are not tracked (limit reached).
    pub untracked: u64,
    /// The whole datagram failed.
    pub fatal: Option<DecodeError>,
    /// Problems inside the datagram (samples or sets skipped).
    pub partial_errors: usize,
    /// NetFlow v9/IPFIX data sets skipped for an unknown template.
    pub missing_templates: usize,
}

#[derive(Debug, Clone, Copy)]
struct LastCounters {
    ts_ms: i64,
    in_octets: u64,
    out_octets: u64,
    in_packets: u64,
    out_packets: u64,
}

/// Decoder state for all flow listeners: the NetFlow v9/IPFIX template cache and the last counters per
/// interface. Owned by the flow decoder thread.
#[derive(Debug)]
pub struct FlowDecoder {
    cache: TemplateCache,
    limits: sflow::Limits,
    last: HashMap<(IpAddr, u32), LastCounters>,
    max_interfaces: usize,
}

impl FlowDecoder {
    /// A decoder with the given template settings and interface limit.
    pub fn new(
        template_timeout_secs: u64,
        max_templates_per_exporter: usize,
        max_interfaces: usize,
    ) -> Self {
        let cache = TemplateCache::new(CacheConfig {
            template_timeout_secs: Some(template_timeout_secs),
            max_templates_per_exporter,
            ..CacheConfig::default()
        });
        Self {
            cache,
            limits: sflow::Limits::default(),
            last: HashMap::new(),
            max_interfaces,
        }
    }

    /// The template cache (for metrics).
    pub fn templates(&self) -> &TemplateCache {
        &self.cache
    }

    /// Expires stale templates; returns how many went.
    pub fn expire(&mut self, now_secs: u64) -> usize {
        self.cache.expire(now_secs)
    }

    /// Decodes one datagram received from `peer` at `received_ms`.
    pub fn decode(
        &mut self,
        input: FlowInput,
        peer: IpAddr,
        received_ms: i64,
        bytes: &[u8],
    ) -> Decoded {
        match input {
            FlowInput::Sflow => self.decode_sflow(received_ms, bytes),
            FlowInput::Netflow => self.decode_netflow(peer, received_ms, bytes),
        }
    }

    fn decode_netflow(&mut self, peer: IpAddr, received_ms: i64, bytes: &[u8]) -> Decoded {
        let now_secs = (received_ms / 1000).max(0) as u64;
        let peer = crate::metrics::canonical(peer);
        match netflow::decode(bytes, peer, now_secs, &mut self.cache) {
            Ok(p) => Decoded {
                protocol: match p.version {
                    5 => "netflow_v5",
                    9 => "netflow_v9",
                    _ => "ipfix",
                },
                partial_errors: p.errors.len(),
                missing_templates: p.missing_templates.len(),
                records: p.records,
                ..Decoded::default()
            },
            Err(e) => Decoded {
                protocol: "unknown",
                fatal: Some(e),
                ..Decoded::default()
            },
        }
    }

    fn decode_sflow(&mut self, received_ms: i64, bytes: &[u8]) -> Decoded {
        let d = match sflow::decode_with_limits(bytes, &self.limits) {
            Ok(d) => d,
            Err(e) => {
                return Decoded {
                    protocol: "unknown",
                    fatal: Some(e),
                    ..Decoded::default()
                }
            }
        };
        let mut out = Decoded {
            protocol: "sflow",
            partial_errors: d.errors.len(),
            records: d.flow_records(),
            ..Decoded::default()
        };
        let agent = crate::metrics::canonical(d.agent_address);
        for s in &d.samples {
            let Sample::Counter(c) = s else { continue };
            for rec in &c.records {
                let CounterData::GenericInterface(i) = rec else {
                    continue;
                };
                let row = CounterRow {
                    ts_ms: received_ms,
                    exporter: agent,
                    if_index: i.if_index,
                    if_speed: i.if_speed,
                    in_octets: i.in_octets,
                    out_octets: i.out_octets,
                    in_packets: u64::from(i.in_ucast_pkts)
                        + u64::from(i.in_multicast_pkts)
                        + u64::from(i.in_broadcast_pkts),
                    out_packets: u64::from(i.out_ucast_pkts)
                        + u64::from(i.out_multicast_pkts)
                        + u64::from(i.out_broadcast_pkts),
                    in_errors: i.in_errors,
                    out_errors: i.out_errors,
                    in_discards: i.in_discards,
                    out_discards: i.out_discards,
                    oper_up: i.oper_up(),
                };
                match self.track(&row) {
                    Track::Rate(r) => out.rates.push(r),
                    Track::First => {}
                    Track::Untracked => out.untracked += 1,
                }
                out.counters.push(row);
            }
        }
        out
    }

    fn track(&mut self, row: &CounterRow) -> Track {
        let key = (row.exporter, row.if_index);
        let now = LastCounters {
            ts_ms: row.ts_ms,
            in_octets: row.in_octets,
            out_octets: row.out_octets,
            in_packets: row.in_packets,
            out_packets: row.out_packets,
        };
        let Some(prev) = self.last.get(&key).copied() else {
            if self.last.len() >= self.max_interfaces {
                return Track::Untracked;
            }
            self.last.insert(key, now);
            return Track::First;
        };
        self.last.insert(key, now);
        let dt = (now.ts_ms - prev.ts_ms) as f64 / 1000.0;
        let d = |a: u64, b: u64| a.checked_sub(b);
        match (
            d(now.in_octets, prev.in_octets),
            d(now.out_octets, prev.out_octets),
            d(now.in_packets, prev.in_packets),
            d(now.out_packets, prev.out_packets),
        ) {
            (Some(io), Some(oo), Some(ip), Some(op)) if dt > 0.0 => Track::Rate(IfRate {
                exporter: row.exporter,
                if_index: row.if_index,
                in_bps: io as f64 * 8.0 / dt,
                out_bps: oo as f64 * 8.0 / dt,
                in_pps: ip as f64 / dt,
                out_pps: op as f64 / dt,
            }),
            // A counter went backwards (reset or 32-bit wrap): start again from this sample.
            _ => Track::First,
        }
    }
}

enum Track {
    Rate(IfRate),
    First,
    Untracked,
}

/// Parses one syslog message (never fails) into a store row.
pub fn log_row(
    bytes: &[u8],
    peer: IpAddr,
    transport: &'static str,
    received_ms: i64,
    local_offset_minutes: i16,
) -> LogRow {
    let opts = yagura_syslog::ParseOptions {
        received_unix_secs: received_ms.div_euclid(1000),
        local_offset_minutes,
    };
    let m = yagura_syslog::parse_with(bytes, &opts);
    let ts_ms = m.timestamp.map(|t| {
        t.unix_seconds_assuming(local_offset_minutes)
            .saturating_mul(1000)
            .saturating_add(i64::from(t.nanosecond / 1_000_000))
    });
    LogRow {
        received_ms,
        ts_ms,
        peer: crate::metrics::canonical(peer),
        transport,
        host: m.hostname,
        app: m.app_name,
        proc_id: m.proc_id,
        msg_id: m.msg_id,
        facility: m.facility.code(),
        severity: m.severity.code(),
        format: match m.format {
            yagura_syslog::Format::Rfc5424 => "rfc5424",
            yagura_syslog::Format::Rfc3164 => "rfc3164",
        },
        malformed: !m.anomalies.is_clean(),
        msg: m.msg,
        raw: m.raw,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn garbage_is_a_counted_failure() {
        let mut d = FlowDecoder::new(1800, 64, 16);
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let out = d.decode(FlowInput::Sflow, peer, 0, b"\x00\x00\x00\x05garbage");
        assert!(out.fatal.is_some());
        let out = d.decode(FlowInput::Netflow, peer, 0, b"\x00\x07");
        assert!(out.fatal.is_some());
        let out = d.decode(FlowInput::Netflow, peer, 0, b"");
        assert!(out.fatal.is_some());
    }

    #[test]
    fn syslog_rows_keep_raw_and_flags() {
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let r = log_row(
            b"<34>1 2026-11-27T08:00:00.5Z host app 12 ID1 - hello",
            peer,
            "udp",
            1_800_000_000_000,
            0,
        );
        assert_eq!(r.host.as_deref(), Some("host"));
        assert_eq!(r.ts_ms, Some(1_795_766_400_500));
        assert_eq!(r.severity, 2);
        assert!(!r.malformed);
        let r = log_row(b"\xff\xfe not syslog at all", peer, "tcp", 0, 0);
        assert!(r.malformed);
        assert_eq!(r.raw, b"\xff\xfe not syslog at all");
    }
}
