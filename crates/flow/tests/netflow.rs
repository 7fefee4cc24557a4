#![allow(clippy::unwrap_used, clippy::expect_used)]
//! NetFlow v5, v9 and IPFIX tests with packets built from the RFC layouts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use yagura_flow::netflow::{self, CacheConfig, TemplateCache};
use yagura_flow::{DecodeError, FlowProtocol};

const EXP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));

fn be16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_be_bytes());
}
fn be32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_be_bytes());
}

fn set(id: u16, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    be16(&mut v, id);
    be16(&mut v, (body.len() + 4) as u16);
    v.extend_from_slice(body);
    v
}

fn v9(sets: &[Vec<u8>], uptime: u32, secs: u32, source_id: u32) -> Vec<u8> {
    let mut v = Vec::new();
    be16(&mut v, 9);
    be16(&mut v, sets.len() as u16);
    be32(&mut v, uptime);
    be32(&mut v, secs);
    be32(&mut v, 1);
    be32(&mut v, source_id);
    for s in sets {
        v.extend_from_slice(s);
    }
    v
}

fn ipfix(sets: &[Vec<u8>], export: u32, domain: u32) -> Vec<u8> {
    let body: Vec<u8> = sets.concat();
    let mut v = Vec::new();
    be16(&mut v, 10);
    be16(&mut v, (16 + body.len()) as u16);
    be32(&mut v, export);
    be32(&mut v, 77);
    be32(&mut v, domain);
    v.extend_from_slice(&body);
    v
}

fn fields(v: &mut Vec<u8>, f: &[(u16, u16)]) {
    for &(id, len) in f {
        be16(v, id);
        be16(v, len);
    }
}

const V4_FIELDS: &[(u16, u16)] = &[
    (8, 4),
    (12, 4),
    (7, 2),
    (11, 2),
    (4, 1),
    (6, 1),
    (1, 4),
    (2, 4),
    (10, 2),
    (14, 2),
    (22, 4),
    (21, 4),
];

fn v4_record(v: &mut Vec<u8>) {
    v.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    be16(v, 1234);
    be16(v, 80);
    v.extend_from_slice(&[6, 0x1b]);
    be32(v, 5000);
    be32(v, 10);
    be16(v, 3);
    be16(v, 4);
    be32(v, 9_000); // first (uptime ms)
    be32(v, 9_500); // last
}

#[test]
fn v9_template_then_data_with_padding() {
    let mut t = Vec::new();
    be16(&mut t, 256);
    be16(&mut t, V4_FIELDS.len() as u16);
    fields(&mut t, V4_FIELDS);
    let mut d = Vec::new();
    v4_record(&mut d);
    v4_record(&mut d);
    d.extend_from_slice(&[0, 0]); // padding
    let pkt = v9(&[set(0, &t), set(256, &d)], 10_000, 1_700_000_000, 5);
    let mut cache = TemplateCache::default();
    let p = netflow::decode(&pkt, EXP, 100, &mut cache).unwrap();
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    assert_eq!(p.version, 9);
    assert_eq!(p.templates_learned, 1);
    assert_eq!(p.records.len(), 2);
    let r = &p.records[0];
    assert_eq!(r.protocol_source, FlowProtocol::NetflowV9);
    assert_eq!(r.exporter, EXP);
    assert_eq!(r.observation_domain, 5);
    assert_eq!(r.src_addr, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
    assert_eq!(r.dst_addr, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))));
    assert_eq!(
        (r.src_port, r.dst_port, r.protocol),
        (Some(1234), Some(80), Some(6))
    );
    assert_eq!(r.tcp_flags, Some(0x1b));
    assert_eq!((r.bytes, r.packets), (Some(5000), Some(10)));
    assert_eq!((r.input_if, r.output_if), (Some(3), Some(4)));
    assert_eq!(r.start_ms, Some(1_700_000_000_000 - 1000));
    assert_eq!(r.end_ms, Some(1_700_000_000_000 - 500));
    assert_eq!(r.sampling_rate, None);
    assert_eq!(r.src_mac, None);
    assert_eq!(cache.len(), 1);
}

#[test]
fn v9_unknown_template_counted_then_learned() {
    let mut d = Vec::new();
    v4_record(&mut d);
    let mut cache = TemplateCache::default();
    let p = netflow::decode(&v9(&[set(300, &d)], 1, 1, 1), EXP, 0, &mut cache).unwrap();
    assert_eq!(p.missing_templates, vec![300]);
    assert!(p.records.is_empty());
    assert_eq!(cache.stats().missing_template_sets, 1);
    // Same template id from another source id does not apply.
    let mut t = Vec::new();
    be16(&mut t, 300);
    be16(&mut t, V4_FIELDS.len() as u16);
    fields(&mut t, V4_FIELDS);
    netflow::decode(&v9(&[set(0, &t)], 1, 1, 2), EXP, 0, &mut cache).unwrap();
    let p = netflow::decode(&v9(&[set(300, &d)], 1, 1, 1), EXP, 0, &mut cache).unwrap();
    assert_eq!(p.missing_templates, vec![300]);
    let p = netflow::decode(&v9(&[set(300, &d)], 1, 1, 2), EXP, 0, &mut cache).unwrap();
    assert_eq!(p.records.len(), 1);
}

#[test]
fn v9_options_sampling_and_interface_names() {
    // Options template 257: scope Interface(2) len 4; options 34 (4), 35 (1), 82 (8), 83 (12).
    let mut t = Vec::new();
    be16(&mut t, 257);
    be16(&mut t, 4);
    be16(&mut t, 16);
    fields(&mut t, &[(2, 4), (34, 4), (35, 1), (82, 8), (83, 12)]);
    let mut d = Vec::new();
    be32(&mut d, 3);
    be32(&mut d, 100);
    d.push(2);
    d.extend_from_slice(b"Gi0/1\0\0\0");
    d.extend_from_slice(b"uplink core\0");
    let mut dt = Vec::new();
    be16(&mut dt, 256);
    be16(&mut dt, V4_FIELDS.len() as u16);
    fields(&mut dt, V4_FIELDS);
    let mut dd = Vec::new();
    v4_record(&mut dd);
    let pkt = v9(
        &[set(1, &t), set(257, &d), set(0, &dt), set(256, &dd)],
        10_000,
        1000,
        0,
    );
    let mut cache = TemplateCache::default();
    let p = netflow::decode(&pkt, EXP, 0, &mut cache).unwrap();
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    assert_eq!(p.options_records, 1);
    let s = cache.sampling(EXP, 0).unwrap();
    assert_eq!((s.rate, s.algorithm), (100, Some(2)));
    let i = cache.interface(EXP, 0, 3).unwrap();
    assert_eq!(i.name.as_deref(), Some("Gi0/1"));
    assert_eq!(i.description.as_deref(), Some("uplink core"));
    let all = cache.interfaces_of(EXP);
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].0, all[0].1), (0, 3));
    assert_eq!(p.records[0].sampling_rate, Some(100));
    assert_eq!(p.records[0].estimated_packets(), Some(1000));
}

#[test]
fn ipfix_v6_varlen_enterprise_and_times() {
    // Template 400: 27 srcIPv6, 28 dstIPv6, 7, 11, 4, 6 (2 bytes), 1 (8), 2 (8),
    // enterprise IE 1 of PEN 9 (len 4), 82 varlen, 152/153 ms, 56 src mac.
    let mut t = Vec::new();
    be16(&mut t, 400);
    be16(&mut t, 13);
    fields(
        &mut t,
        &[
            (27, 16),
            (28, 16),
            (7, 2),
            (11, 2),
            (4, 1),
            (6, 2),
            (1, 8),
            (2, 8),
        ],
    );
    be16(&mut t, 0x8001);
    be16(&mut t, 4);
    be32(&mut t, 9);
    fields(&mut t, &[(82, 0xFFFF), (152, 8), (153, 8), (56, 6)]);
    let src = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
    let dst = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x20);
    let mut d = Vec::new();
    for varlen in [&b"eth0"[..], &[b'x'; 300][..]] {
        d.extend_from_slice(&src.octets());
        d.extend_from_slice(&dst.octets());
        be16(&mut d, 5000);
        be16(&mut d, 443);
        d.push(17);
        be16(&mut d, 0);
        d.extend_from_slice(&1_000_000u64.to_be_bytes());
        d.extend_from_slice(&700u64.to_be_bytes());
        be32(&mut d, 0xdeadbeef);
        if varlen.len() < 255 {
            d.push(varlen.len() as u8);
        } else {
            d.push(255);
            be16(&mut d, varlen.len() as u16);
        }
        d.extend_from_slice(varlen);
        d.extend_from_slice(&1_700_000_000_000u64.to_be_bytes());
        d.extend_from_slice(&1_700_000_001_000u64.to_be_bytes());
        d.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
    }
    let pkt = ipfix(&[set(2, &t), set(400, &d)], 1_700_000_002, 42);
    let mut cache = TemplateCache::default();
    let p = netflow::decode(&pkt, EXP, 10, &mut cache).unwrap();
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    assert_eq!(p.version, 10);
    assert_eq!(p.observation_domain, 42);
    assert_eq!(p.records.len(), 2);
    for r in &p.records {
        assert_eq!(r.protocol_source, FlowProtocol::Ipfix);
        assert_eq!(r.src_addr, Some(IpAddr::V6(src)));
        assert_eq!(r.dst_addr, Some(IpAddr::V6(dst)));
        assert_eq!((r.bytes, r.packets), (Some(1_000_000), Some(700)));
        assert_eq!(r.start_ms, Some(1_700_000_000_000));
        assert_eq!(r.end_ms, Some(1_700_000_001_000));
        assert_eq!(
            r.src_mac.map(|m| m.to_string()).as_deref(),
            Some("02:00:00:00:00:01")
        );
        assert_eq!(r.observation_domain, 42);
    }
}

#[test]
fn ipfix_options_305_306_and_scope_ifindex() {
    let mut t = Vec::new();
    be16(&mut t, 500);
    be16(&mut t, 4);
    be16(&mut t, 1);
    fields(&mut t, &[(10, 4), (305, 4), (306, 4), (82, 0xFFFF)]);
    let mut d = Vec::new();
    be32(&mut d, 7);
    be32(&mut d, 1);
    be32(&mut d, 99);
    d.push(3);
    d.extend_from_slice(b"xe0");
    let mut cache = TemplateCache::default();
    let p = netflow::decode(
        &ipfix(&[set(3, &t), set(500, &d)], 1, 1),
        EXP,
        0,
        &mut cache,
    )
    .unwrap();
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    assert_eq!(cache.sampling(EXP, 1).unwrap().rate, 100);
    assert_eq!(
        cache.interface(EXP, 1, 7).unwrap().name.as_deref(),
        Some("xe0")
    );
}

#[test]
fn ipfix_withdrawal_and_expiry() {
    let mut t = Vec::new();
    for id in [256u16, 257] {
        be16(&mut t, id);
        be16(&mut t, 1);
        fields(&mut t, &[(4, 1)]);
    }
    let mut cache = TemplateCache::new(CacheConfig {
        template_timeout_secs: Some(60),
        ..CacheConfig::default()
    });
    let p = netflow::decode(&ipfix(&[set(2, &t)], 1, 1), EXP, 1000, &mut cache).unwrap();
    assert_eq!(p.templates_learned, 2);
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.templates_of(EXP), 2);
    assert_eq!(cache.exporters(), vec![(EXP, 2)]);
    // Withdraw 256.
    let mut w = Vec::new();
    be16(&mut w, 256);
    be16(&mut w, 0);
    let p = netflow::decode(&ipfix(&[set(2, &w)], 1, 1), EXP, 1000, &mut cache).unwrap();
    assert_eq!(p.templates_withdrawn, 1);
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.templates_of(EXP), 1);
    let p = netflow::decode(&ipfix(&[set(256, &[6])], 1, 1), EXP, 1000, &mut cache).unwrap();
    assert_eq!(p.missing_templates, vec![256]);
    let p = netflow::decode(&ipfix(&[set(257, &[6, 17])], 1, 1), EXP, 1030, &mut cache).unwrap();
    assert_eq!(p.records.len(), 2);
    // Expired after the timeout.
    let p = netflow::decode(&ipfix(&[set(257, &[6])], 1, 1), EXP, 1061, &mut cache).unwrap();
    assert_eq!(p.missing_templates, vec![257]);
    assert_eq!(cache.stats().templates_expired, 1);
    // Withdraw all.
    netflow::decode(&ipfix(&[set(2, &t)], 1, 1), EXP, 2000, &mut cache).unwrap();
    let mut w = Vec::new();
    be16(&mut w, 2);
    be16(&mut w, 0);
    let p = netflow::decode(&ipfix(&[set(2, &w)], 1, 1), EXP, 2000, &mut cache).unwrap();
    assert_eq!(p.templates_withdrawn, 2);
    assert!(cache.is_empty());
    // Explicit sweep.
    netflow::decode(&ipfix(&[set(2, &t)], 1, 1), EXP, 3000, &mut cache).unwrap();
    assert_eq!(cache.expire(3060), 0);
    assert_eq!(cache.expire(3061), 2);
}

#[test]
fn limits_are_counted() {
    let mut cache = TemplateCache::new(CacheConfig {
        max_templates_per_exporter: 1,
        max_fields: 2,
        max_record_len: 8,
        ..CacheConfig::default()
    });
    let mut t = Vec::new();
    for id in [256u16, 257] {
        be16(&mut t, id);
        be16(&mut t, 1);
        fields(&mut t, &[(4, 1)]);
    }
    let p = netflow::decode(&ipfix(&[set(2, &t)], 1, 1), EXP, 0, &mut cache).unwrap();
    assert_eq!(p.templates_learned, 1);
    assert!(matches!(
        p.errors[0],
        DecodeError::LimitExceeded {
            what: "templates per exporter",
            ..
        }
    ));
    let mut t = Vec::new();
    be16(&mut t, 256);
    be16(&mut t, 3);
    fields(&mut t, &[(4, 1), (4, 1), (4, 1)]);
    let p = netflow::decode(&ipfix(&[set(2, &t)], 1, 1), EXP, 0, &mut cache).unwrap();
    assert!(matches!(
        p.errors[0],
        DecodeError::LimitExceeded {
            what: "fields per template",
            ..
        }
    ));
    let mut t = Vec::new();
    be16(&mut t, 256);
    be16(&mut t, 1);
    fields(&mut t, &[(1, 100)]);
    let p = netflow::decode(&ipfix(&[set(2, &t)], 1, 1), EXP, 0, &mut cache).unwrap();
    assert!(matches!(
        p.errors[0],
        DecodeError::LimitExceeded {
            what: "template record length",
            ..
        }
    ));
    assert_eq!(cache.stats().templates_rejected, 3);
}

#[test]
fn bad_set_length_is_reported() {
    let mut pkt = ipfix(&[set(256, &[1, 2, 3])], 1, 1);
    pkt[18] = 0;
    pkt[19] = 200;
    let mut cache = TemplateCache::default();
    // Message length smaller than buffer claims → set overruns.
    let p = netflow::decode(&pkt, EXP, 0, &mut cache).unwrap();
    assert_eq!(p.errors.len(), 1);
    assert!(matches!(
        netflow::decode(&[0, 11, 0, 0], EXP, 0, &mut cache),
        Err(DecodeError::UnsupportedVersion(11))
    ));
    assert!(matches!(
        netflow::decode(&[0, 10, 0, 200, 0], EXP, 0, &mut cache),
        Err(DecodeError::Truncated { .. })
    ));
}

fn v5_packet(count: u16) -> Vec<u8> {
    let mut v = Vec::new();
    be16(&mut v, 5);
    be16(&mut v, count);
    be32(&mut v, 60_000); // uptime
    be32(&mut v, 1_700_000_000);
    be32(&mut v, 500_000_000);
    be32(&mut v, 1234);
    v.push(1);
    v.push(2);
    be16(&mut v, (1 << 14) | 64);
    for _ in 0..count {
        v.extend_from_slice(&[10, 1, 1, 1, 10, 2, 2, 2, 10, 3, 3, 3]);
        be16(&mut v, 5);
        be16(&mut v, 6);
        be32(&mut v, 3);
        be32(&mut v, 180);
        be32(&mut v, 50_000);
        be32(&mut v, 59_000);
        be16(&mut v, 0);
        be16(&mut v, 0x0800);
        v.extend_from_slice(&[0, 0, 1, 0]);
        be16(&mut v, 65001);
        be16(&mut v, 65002);
        v.extend_from_slice(&[24, 16, 0, 0]);
    }
    v
}

#[test]
fn v5_records() {
    let mut cache = TemplateCache::default();
    let p = netflow::decode(&v5_packet(2), EXP, 0, &mut cache).unwrap();
    assert_eq!(p.version, 5);
    assert_eq!(p.sequence, 1234);
    assert_eq!(p.observation_domain, 0x0102);
    assert_eq!(p.records.len(), 2);
    let r = &p.records[0];
    assert_eq!(r.protocol_source, FlowProtocol::NetflowV5);
    assert_eq!(r.src_addr, Some(IpAddr::V4(Ipv4Addr::new(10, 1, 1, 1))));
    assert_eq!(r.next_hop, Some(IpAddr::V4(Ipv4Addr::new(10, 3, 3, 3))));
    assert_eq!((r.input_if, r.output_if), (Some(5), Some(6)));
    assert_eq!((r.packets, r.bytes), (Some(3), Some(180)));
    assert_eq!(r.protocol, Some(1));
    assert_eq!((r.icmp_type, r.icmp_code), (Some(8), Some(0)));
    assert_eq!((r.src_as, r.dst_as), (Some(65001), Some(65002)));
    assert_eq!((r.src_mask, r.dst_mask), (Some(24), Some(16)));
    assert_eq!(r.sampling_rate, Some(64));
    assert_eq!(r.start_ms, Some(1_700_000_000_500 - 10_000));
    assert_eq!(r.end_ms, Some(1_700_000_000_500 - 1_000));
    // Truncated record is reported, earlier ones kept.
    let mut short = v5_packet(2);
    short.truncate(24 + 48 + 10);
    let p = netflow::decode_v5(&short, EXP).unwrap();
    assert_eq!(p.records.len(), 1);
    assert_eq!(p.errors.len(), 1);
    assert!(netflow::decode_v5(&v5_packet(31), EXP).is_err());
}
