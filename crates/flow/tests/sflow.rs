#![allow(clippy::unwrap_used, clippy::expect_used)]
//! sFlow v5 tests with datagrams built by a small XDR encoder.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use yagura_flow::sflow::{self, CounterData, FlowData, Limits, Sample};
use yagura_flow::{DecodeError, FlowProtocol, MacAddr};

/// Minimal sFlow v5 / XDR encoder for tests.
#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    /// XDR opaque with a length prefix and padding.
    fn opaque(self, b: &[u8]) -> Self {
        let pad = (4 - b.len() % 4) % 4;
        self.u32(b.len() as u32).raw(b).raw(&vec![0; pad])
    }
    /// `data_format` + length-prefixed body.
    fn tlv(self, enterprise: u32, format: u32, body: &[u8]) -> Self {
        self.u32((enterprise << 12) | format).opaque(body)
    }
    fn done(self) -> Vec<u8> {
        self.0
    }
}

fn datagram_v4(agent: [u8; 4], samples: &[Vec<u8>]) -> Vec<u8> {
    let mut e = Enc::default()
        .u32(5)
        .u32(1)
        .raw(&agent)
        .u32(7) // sub-agent
        .u32(42) // sequence
        .u32(123_456) // uptime
        .u32(samples.len() as u32);
    for s in samples {
        e = e.raw(s);
    }
    e.done()
}

fn eth_ipv4_tcp(vlan_tags: &[u16]) -> Vec<u8> {
    let mut f = vec![
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb,
    ];
    for (i, v) in vlan_tags.iter().enumerate() {
        let tpid: u16 = if i == 0 && vlan_tags.len() > 1 {
            0x88a8
        } else {
            0x8100
        };
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&((5u16 << 13) | v).to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0x00]);
    // IPv4: IHL 5, TOS 0xb8 (EF), len 1500, frag 0, TTL 64, TCP
    f.extend_from_slice(&[
        0x45, 0xb8, 0x05, 0xdc, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 192, 168, 1, 2,
    ]);
    // TCP: 443 -> 51000, flags SYN|ACK
    f.extend_from_slice(&[
        0x01, 0xbb, 0xc7, 0x38, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x12, 0, 0,
    ]);
    f
}

fn raw_header_record(proto: u32, frame_len: u32, header: &[u8]) -> Vec<u8> {
    let body = Enc::default()
        .u32(proto)
        .u32(frame_len)
        .u32(4)
        .opaque(header)
        .done();
    Enc::default().tlv(0, 1, &body).done()
}

fn flow_sample(expanded: bool, rate: u32, records: &[Vec<u8>]) -> Vec<u8> {
    let mut e = Enc::default().u32(99);
    if expanded {
        e = e
            .u32(0)
            .u32(17)
            .u32(rate)
            .u32(1000)
            .u32(3)
            .u32(0)
            .u32(17)
            .u32(0)
            .u32(18);
    } else {
        e = e.u32(17).u32(rate).u32(1000).u32(3).u32(17).u32(18);
    }
    e = e.u32(records.len() as u32);
    for r in records {
        e = e.raw(r);
    }
    Enc::default()
        .tlv(0, if expanded { 3 } else { 1 }, &e.done())
        .done()
}

#[test]
fn flow_sample_ethernet_ipv4_tcp() {
    let rec = raw_header_record(1, 1518, &eth_ipv4_tcp(&[100]));
    let sw = Enc::default()
        .tlv(
            0,
            1001,
            &Enc::default().u32(100).u32(5).u32(200).u32(0).done(),
        )
        .done();
    let router_body = Enc::default()
        .u32(1)
        .raw(&[10, 0, 0, 254])
        .u32(24)
        .u32(16)
        .done();
    let rt = Enc::default().tlv(0, 1002, &router_body).done();
    let unknown = Enc::default()
        .tlv(0, 1010, &[1, 2, 3, 4, 5, 6, 7, 8])
        .done();
    let d = datagram_v4(
        [192, 0, 2, 1],
        &[flow_sample(false, 512, &[rec, sw, rt, unknown])],
    );
    let dg = sflow::decode(&d).unwrap();
    assert_eq!(dg.version, 5);
    assert_eq!(dg.agent_address, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(
        (dg.sub_agent_id, dg.sequence, dg.uptime_ms),
        (7, 42, 123_456)
    );
    assert!(dg.errors.is_empty(), "{:?}", dg.errors);
    let Sample::Flow(fs) = &dg.samples[0] else {
        panic!()
    };
    assert!(!fs.expanded);
    assert_eq!((fs.source_id_type, fs.source_id_index), (0, 17));
    assert_eq!(fs.sampling_rate, 512);
    assert_eq!(fs.scale(3), 1536);
    assert_eq!(fs.input.if_index(), Some(17));
    assert_eq!(fs.output.if_index(), Some(18));
    assert_eq!(fs.records.len(), 4);
    let h = fs.raw_header().unwrap();
    let p = &h.decoded;
    assert_eq!(h.frame_length, 1518);
    assert_eq!(p.dst_mac, Some(MacAddr([0, 0x11, 0x22, 0x33, 0x44, 0x55])));
    assert_eq!(
        p.src_mac,
        Some(MacAddr([0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb]))
    );
    assert_eq!(p.vlan, Some(100));
    assert_eq!(p.vlan_priority, Some(5));
    assert_eq!(p.src_ip, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
    assert_eq!(p.dst_ip, Some(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2))));
    assert_eq!(p.protocol, Some(6));
    assert_eq!((p.src_port, p.dst_port), (Some(443), Some(51000)));
    assert_eq!(p.tcp_flags, Some(0x12));
    assert_eq!(p.tos, Some(0xb8));
    assert_eq!(p.dscp(), Some(46));
    assert_eq!(p.ttl, Some(64));
    assert_eq!(p.ip_length, Some(1500));
    assert!(
        matches!(fs.records[1], FlowData::ExtendedSwitch(s) if s.src_vlan == 100 && s.dst_vlan == 200)
    );
    assert!(
        matches!(fs.records[2], FlowData::ExtendedRouter(r) if r.src_mask_len == 24 && r.dst_mask_len == 16)
    );
    assert!(matches!(
        fs.records[3],
        FlowData::Unknown {
            enterprise: 0,
            format: 1010,
            length: 8
        }
    ));

    let recs = dg.flow_records();
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(r.protocol_source, FlowProtocol::Sflow5);
    assert_eq!(r.exporter, dg.agent_address);
    assert_eq!(r.bytes, Some(1518));
    assert_eq!(r.packets, Some(1));
    assert_eq!(r.estimated_bytes(), Some(1518 * 512));
    assert_eq!(r.estimated_packets(), Some(512));
    assert_eq!(r.vlan, Some(100));
    assert_eq!(r.next_hop, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 254))));
    assert_eq!((r.src_mask, r.dst_mask), (Some(24), Some(16)));
    assert_eq!((r.input_if, r.output_if), (Some(17), Some(18)));
    assert_eq!(r.tcp_flags, Some(0x12));
}

#[test]
fn expanded_flow_sample_qinq_ipv6_ext_headers_udp() {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    f.extend_from_slice(&[0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x86, 0xdd]);
    // IPv6: TC 0x28, next header hop-by-hop (0), hop limit 55
    f.extend_from_slice(&[0x62, 0x80, 0, 0, 0, 32, 0, 55]);
    f.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets());
    f.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).octets());
    // Hop-by-hop: next = fragment(44), len 0 (8 bytes)
    f.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0]);
    // Fragment header: next = UDP, offset 0, M=1
    f.extend_from_slice(&[17, 0, 0, 1, 0, 0, 0, 9]);
    // UDP 53 -> 5353
    f.extend_from_slice(&[0, 53, 0x14, 0xe9, 0, 16, 0, 0]);
    let rec = raw_header_record(1, 90, &f);
    let d = datagram_v4([10, 1, 1, 1], &[flow_sample(true, 1000, &[rec])]);
    let dg = sflow::decode(&d).unwrap();
    let Sample::Flow(fs) = &dg.samples[0] else {
        panic!()
    };
    assert!(fs.expanded);
    assert_eq!(fs.input.if_index(), Some(17));
    let p = &fs.raw_header().unwrap().decoded;
    assert_eq!((p.vlan, p.inner_vlan), (Some(10), Some(20)));
    assert_eq!(p.ethertype, Some(0x86dd));
    assert_eq!(p.tos, Some(0x28));
    assert_eq!(p.ttl, Some(55));
    assert_eq!(p.ip_length, Some(72));
    assert_eq!(p.protocol, Some(17));
    assert!(!p.fragment);
    assert_eq!((p.src_port, p.dst_port), (Some(53), Some(5353)));
    assert_eq!(
        p.dst_ip,
        Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)))
    );
}

#[test]
fn ipv4_icmp_and_later_fragment() {
    let icmp = [
        0x45, 0, 0, 84, 0, 0, 0, 0, 64, 1, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 8, 0, 0, 0,
    ];
    let frag = [
        0x45, 0, 0, 84, 0, 0, 0x00, 0x10, 64, 17, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 0, 53, 0, 53,
    ];
    let d = datagram_v4(
        [1, 2, 3, 4],
        &[
            flow_sample(false, 1, &[raw_header_record(11, 98, &icmp)]),
            flow_sample(false, 1, &[raw_header_record(11, 98, &frag)]),
        ],
    );
    let dg = sflow::decode(&d).unwrap();
    let recs = dg.flow_records();
    assert_eq!((recs[0].icmp_type, recs[0].icmp_code), (Some(8), Some(0)));
    assert_eq!(recs[0].src_port, None);
    assert_eq!(recs[1].protocol, Some(17));
    assert_eq!(recs[1].src_port, None, "non-first fragment has no ports");
}

#[test]
fn truncated_sampled_header_keeps_what_it_has() {
    let full = eth_ipv4_tcp(&[]);
    let cut = &full[..30]; // Ethernet + part of IPv4
    let d = datagram_v4(
        [1, 2, 3, 4],
        &[flow_sample(false, 10, &[raw_header_record(1, 1514, cut)])],
    );
    let dg = sflow::decode(&d).unwrap();
    let Sample::Flow(fs) = &dg.samples[0] else {
        panic!()
    };
    let p = &fs.raw_header().unwrap().decoded;
    assert!(p.src_mac.is_some());
    assert_eq!(p.ethertype, Some(0x0800));
    assert_eq!(p.src_ip, None);
}

fn if_counters_body() -> Vec<u8> {
    Enc::default()
        .u32(3) // ifIndex
        .u32(6) // ifType
        .u64(10_000_000_000)
        .u32(1) // direction
        .u32(3) // status
        .u64(1_000_000_000_000)
        .u32(11)
        .u32(12)
        .u32(13)
        .u32(14)
        .u32(15)
        .u32(16)
        .u64(2_000_000_000_000)
        .u32(21)
        .u32(22)
        .u32(23)
        .u32(24)
        .u32(25)
        .u32(1)
        .done()
}

#[test]
fn counter_samples_generic_and_ethernet() {
    let eth = (1..=13).fold(Enc::default(), |e, i| e.u32(i)).done();
    let recs = Enc::default()
        .u32(99)
        .u32(3)
        .u32(3)
        .tlv(0, 1, &if_counters_body())
        .tlv(0, 2, &eth)
        .tlv(0, 1005, &[0; 12])
        .done();
    let compact = Enc::default().tlv(0, 2, &recs).done();
    let exp_recs = Enc::default()
        .u32(100)
        .u32(0)
        .u32(3)
        .u32(1)
        .tlv(0, 1, &if_counters_body())
        .done();
    let expanded = Enc::default().tlv(0, 4, &exp_recs).done();
    let vendor = Enc::default().tlv(4413, 5, &[0; 8]).done();
    let dg = sflow::decode(&datagram_v4([1, 1, 1, 1], &[compact, expanded, vendor])).unwrap();
    assert!(dg.errors.is_empty());
    assert_eq!(dg.samples.len(), 3);
    let Sample::Counter(cs) = &dg.samples[0] else {
        panic!()
    };
    assert!(!cs.expanded);
    assert_eq!(cs.source_id_index, 3);
    let CounterData::GenericInterface(c) = &cs.records[0] else {
        panic!()
    };
    assert_eq!(c.if_index, 3);
    assert_eq!(c.if_type, 6);
    assert_eq!(c.if_speed, 10_000_000_000);
    assert!(c.admin_up() && c.oper_up());
    assert_eq!(c.in_octets, 1_000_000_000_000);
    assert_eq!(
        (
            c.in_ucast_pkts,
            c.in_multicast_pkts,
            c.in_broadcast_pkts,
            c.in_discards,
            c.in_errors,
            c.in_unknown_protos
        ),
        (11, 12, 13, 14, 15, 16)
    );
    assert_eq!(c.out_octets, 2_000_000_000_000);
    assert_eq!(
        (
            c.out_ucast_pkts,
            c.out_multicast_pkts,
            c.out_broadcast_pkts,
            c.out_discards,
            c.out_errors
        ),
        (21, 22, 23, 24, 25)
    );
    assert_eq!(c.promiscuous_mode, 1);
    let CounterData::Ethernet(e) = &cs.records[1] else {
        panic!()
    };
    assert_eq!(e.alignment_errors, 1);
    assert_eq!(e.symbol_errors, 13);
    assert!(matches!(
        cs.records[2],
        CounterData::Unknown {
            format: 1005,
            length: 12,
            ..
        }
    ));
    let Sample::Counter(cs) = &dg.samples[1] else {
        panic!()
    };
    assert!(cs.expanded);
    assert_eq!(cs.source_id_index, 3);
    assert!(matches!(
        dg.samples[2],
        Sample::Unknown {
            enterprise: 4413,
            format: 5,
            length: 8
        }
    ));
    assert!(dg.flow_records().is_empty());
}

#[test]
fn ipv6_agent_address() {
    let mut d = Enc::default()
        .u32(5)
        .u32(2)
        .raw(&Ipv6Addr::LOCALHOST.octets())
        .u32(0)
        .u32(1)
        .u32(2)
        .u32(0)
        .done();
    let dg = sflow::decode(&d).unwrap();
    assert_eq!(dg.agent_address, IpAddr::V6(Ipv6Addr::LOCALHOST));
    d[7] = 9;
    assert!(matches!(
        sflow::decode(&d),
        Err(DecodeError::Invalid { .. })
    ));
}

#[test]
fn errors_are_counted_not_fatal() {
    assert_eq!(
        sflow::decode(&[0, 0, 0, 4]),
        Err(DecodeError::UnsupportedVersion(4))
    );
    assert!(matches!(
        sflow::decode(&[0, 0, 0, 5, 0]),
        Err(DecodeError::Truncated { .. })
    ));
    // A short generic counter record is reported; the next sample still decodes.
    let bad = Enc::default()
        .u32(1)
        .u32(3)
        .u32(1)
        .tlv(0, 1, &[0; 20])
        .done();
    let bad = Enc::default().tlv(0, 2, &bad).done();
    let good = flow_sample(false, 1, &[raw_header_record(1, 60, &eth_ipv4_tcp(&[]))]);
    let mut d = datagram_v4([1, 1, 1, 1], &[bad, good]);
    let dg = sflow::decode(&d).unwrap();
    assert_eq!(dg.errors.len(), 1);
    assert_eq!(dg.samples.len(), 2);
    assert_eq!(dg.flow_records().len(), 1);
    // Claim more samples than present.
    d[27] = 5;
    let dg = sflow::decode(&d).unwrap();
    assert_eq!(dg.samples.len(), 2);
    assert!(!dg.errors.is_empty());
}

#[test]
fn limits_apply() {
    let s = flow_sample(false, 1, &[raw_header_record(1, 60, &eth_ipv4_tcp(&[]))]);
    let d = datagram_v4([1, 1, 1, 1], &[s.clone(), s.clone(), s]);
    let lim = Limits {
        max_samples: 2,
        ..Limits::default()
    };
    let dg = sflow::decode_with_limits(&d, &lim).unwrap();
    assert_eq!(dg.samples.len(), 2);
    assert!(matches!(dg.errors[0], DecodeError::LimitExceeded { .. }));
}
