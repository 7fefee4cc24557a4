//! Best-effort decoding of a sampled packet header (Ethernet, 802.1Q/QinQ,
//! IPv4, IPv6 with extension headers, TCP, UDP, ICMP, ICMPv6) into a flat
//! struct.
//!
//! sFlow agents truncate sampled headers (typically to 128 bytes), so running
//! out of bytes is normal here: decoding stops and whatever was learned so far
//! is kept. This never fails and never panics.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::MacAddr;

/// What could be learned from a sampled packet header. Missing layers are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PacketSummary {
    /// Source MAC address.
    pub src_mac: Option<MacAddr>,
    /// Destination MAC address.
    pub dst_mac: Option<MacAddr>,
    /// Outer 802.1Q VLAN id.
    pub vlan: Option<u16>,
    /// Inner VLAN id for QinQ (802.1ad / double-tagged) frames.
    pub inner_vlan: Option<u16>,
    /// 802.1p priority of the outer tag.
    pub vlan_priority: Option<u8>,
    /// The EtherType after any VLAN tags.
    pub ethertype: Option<u16>,
    /// Source IP address.
    pub src_ip: Option<IpAddr>,
    /// Destination IP address.
    pub dst_ip: Option<IpAddr>,
    /// IP protocol / IPv6 final next-header.
    pub protocol: Option<u8>,
    /// Type-of-service (IPv4) / traffic class (IPv6) byte.
    pub tos: Option<u8>,
    /// TTL (IPv4) / hop limit (IPv6).
    pub ttl: Option<u8>,
    /// IP total length (IPv6: payload length + 40).
    pub ip_length: Option<u16>,
    /// True if this is a non-first fragment (no transport header present).
    pub fragment: bool,
    /// Transport source port (TCP/UDP/SCTP).
    pub src_port: Option<u16>,
    /// Transport destination port (TCP/UDP/SCTP).
    pub dst_port: Option<u16>,
    /// TCP flags (low 9 bits of the data offset/flags word).
    pub tcp_flags: Option<u16>,
    /// ICMP / ICMPv6 type.
    pub icmp_type: Option<u8>,
    /// ICMP / ICMPv6 code.
    pub icmp_code: Option<u8>,
}

impl PacketSummary {
    /// DSCP (upper six bits of the TOS / traffic class byte).
    pub fn dscp(&self) -> Option<u8> {
        self.tos.map(|t| t >> 2)
    }
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86DD;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88A8;
const ETH_QINQ_OLD: u16 = 0x9100;

/// Maximum number of VLAN tags and IPv6 extension headers walked.
const MAX_TAGS: usize = 4;
const MAX_EXT_HEADERS: usize = 8;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn mac(b: &[u8], at: usize) -> Option<MacAddr> {
    let s = b.get(at..at + 6)?;
    let mut m = [0u8; 6];
    m.copy_from_slice(s);
    Some(MacAddr(m))
}

/// Decode an Ethernet frame header.
pub fn decode_ethernet(frame: &[u8]) -> PacketSummary {
    let mut s = PacketSummary {
        dst_mac: mac(frame, 0),
        src_mac: mac(frame, 6),
        ..PacketSummary::default()
    };
    let mut off = 12;
    let Some(mut et) = be16(frame, off) else {
        return s;
    };
    off += 2;
    let mut tags = 0;
    while matches!(et, ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD) && tags < MAX_TAGS {
        let Some(tci) = be16(frame, off) else {
            return s;
        };
        if tags == 0 {
            s.vlan = Some(tci & 0x0FFF);
            s.vlan_priority = Some((tci >> 13) as u8);
        } else if tags == 1 {
            s.inner_vlan = Some(tci & 0x0FFF);
        }
        tags += 1;
        let Some(next) = be16(frame, off + 2) else {
            return s;
        };
        et = next;
        off += 4;
    }
    s.ethertype = Some(et);
    let payload = frame.get(off..).unwrap_or(&[]);
    match et {
        ETH_IPV4 => decode_ipv4_into(payload, &mut s),
        ETH_IPV6 => decode_ipv6_into(payload, &mut s),
        _ => {}
    }
    s
}

/// Decode a packet that starts with an IPv4 header.
pub fn decode_ipv4(packet: &[u8]) -> PacketSummary {
    let mut s = PacketSummary {
        ethertype: Some(ETH_IPV4),
        ..PacketSummary::default()
    };
    decode_ipv4_into(packet, &mut s);
    s
}

/// Decode a packet that starts with an IPv6 header.
pub fn decode_ipv6(packet: &[u8]) -> PacketSummary {
    let mut s = PacketSummary {
        ethertype: Some(ETH_IPV6),
        ..PacketSummary::default()
    };
    decode_ipv6_into(packet, &mut s);
    s
}

fn decode_ipv4_into(p: &[u8], s: &mut PacketSummary) {
    let Some(&vihl) = p.first() else { return };
    if vihl >> 4 != 4 {
        return;
    }
    let ihl = usize::from(vihl & 0x0F) * 4;
    if ihl < 20 || p.len() < 20 {
        return;
    }
    s.tos = Some(p[1]);
    s.ip_length = be16(p, 2);
    let frag = be16(p, 6).unwrap_or(0);
    s.ttl = Some(p[8]);
    let proto = p[9];
    s.protocol = Some(proto);
    s.src_ip = Some(IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15])));
    s.dst_ip = Some(IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19])));
    if frag & 0x1FFF != 0 {
        s.fragment = true;
        return;
    }
    if let Some(l4) = p.get(ihl..) {
        decode_l4(proto, l4, s, false);
    }
}

fn ipv6_addr(b: &[u8]) -> Option<Ipv6Addr> {
    let s: [u8; 16] = b.get(..16)?.try_into().ok()?;
    Some(Ipv6Addr::from(s))
}

fn decode_ipv6_into(p: &[u8], s: &mut PacketSummary) {
    if p.len() < 40 || p[0] >> 4 != 6 {
        return;
    }
    s.tos = Some(((p[0] & 0x0F) << 4) | (p[1] >> 4));
    s.ip_length = be16(p, 4).map(|l| l.saturating_add(40));
    s.ttl = Some(p[7]);
    s.src_ip = ipv6_addr(&p[8..]).map(IpAddr::V6);
    s.dst_ip = ipv6_addr(&p[24..]).map(IpAddr::V6);
    let mut next = p[6];
    let mut off = 40;
    for _ in 0..MAX_EXT_HEADERS {
        match next {
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6.
            0 | 43 | 60 | 135 | 139 | 140 => {
                let (Some(&nh), Some(&len)) = (p.get(off), p.get(off + 1)) else {
                    s.protocol = Some(next);
                    return;
                };
                next = nh;
                off += (usize::from(len) + 1) * 8;
            }
            // Fragment header: fixed 8 bytes.
            44 => {
                let (Some(&nh), Some(fo)) = (p.get(off), be16(p, off + 2)) else {
                    s.protocol = Some(next);
                    return;
                };
                next = nh;
                off += 8;
                if fo & 0xFFF8 != 0 {
                    s.fragment = true;
                    s.protocol = Some(next);
                    return;
                }
            }
            // Authentication header: length in 4-octet units minus 2.
            51 => {
                let (Some(&nh), Some(&len)) = (p.get(off), p.get(off + 1)) else {
                    s.protocol = Some(next);
                    return;
                };
                next = nh;
                off += (usize::from(len) + 2) * 4;
            }
            _ => break,
        }
    }
    s.protocol = Some(next);
    if let Some(l4) = p.get(off..) {
        decode_l4(next, l4, s, true);
    }
}

fn decode_l4(proto: u8, l4: &[u8], s: &mut PacketSummary, v6: bool) {
    match proto {
        // TCP
        6 => {
            s.src_port = be16(l4, 0);
            s.dst_port = be16(l4, 2);
            s.tcp_flags = be16(l4, 12).map(|w| w & 0x01FF);
        }
        // UDP, UDP-Lite, SCTP, DCCP share the port layout.
        17 | 136 | 132 | 33 => {
            s.src_port = be16(l4, 0);
            s.dst_port = be16(l4, 2);
        }
        1 if !v6 => {
            s.icmp_type = l4.first().copied();
            s.icmp_code = l4.get(1).copied();
        }
        58 if v6 => {
            s.icmp_type = l4.first().copied();
            s.icmp_code = l4.get(1).copied();
        }
        _ => {}
    }
}
