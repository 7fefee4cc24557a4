//! The normalized flow record that every protocol maps into.

use std::fmt;
use std::net::IpAddr;

/// A 48-bit Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// Which wire protocol a [`FlowRecord`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowProtocol {
    /// sFlow version 5 flow sample (one sampled packet).
    Sflow5,
    /// Cisco NetFlow version 5.
    NetflowV5,
    /// NetFlow version 9 (RFC 3954).
    NetflowV9,
    /// IPFIX (RFC 7011).
    Ipfix,
}

/// One flow (or, for sFlow, one sampled packet) in a protocol-neutral shape.
///
/// Fields the exporter did not send are `None`. `bytes` and `packets` are the
/// values as exported (not scaled); use [`FlowRecord::estimated_bytes`] and
/// [`FlowRecord::estimated_packets`] to scale by the sampling rate.
/// Times are Unix epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRecord {
    /// Protocol the record was decoded from.
    pub protocol_source: FlowProtocol,
    /// Exporter: the sFlow agent address, or the NetFlow/IPFIX packet source
    /// address supplied by the caller.
    pub exporter: IpAddr,
    /// NetFlow v9 source id / IPFIX observation domain / sFlow sub-agent id.
    pub observation_domain: u32,
    /// Source IP address.
    pub src_addr: Option<IpAddr>,
    /// Destination IP address.
    pub dst_addr: Option<IpAddr>,
    /// Transport source port.
    pub src_port: Option<u16>,
    /// Transport destination port.
    pub dst_port: Option<u16>,
    /// IP protocol number (6 TCP, 17 UDP, ...).
    pub protocol: Option<u8>,
    /// TCP control bits (flags), cumulative over the flow.
    pub tcp_flags: Option<u16>,
    /// IPv4 type-of-service / IPv6 traffic class byte.
    pub tos: Option<u8>,
    /// ICMP type (ICMP and ICMPv6).
    pub icmp_type: Option<u8>,
    /// ICMP code (ICMP and ICMPv6).
    pub icmp_code: Option<u8>,
    /// Octets as exported (for sFlow: the sampled frame length).
    pub bytes: Option<u64>,
    /// Packets as exported (for sFlow: 1).
    pub packets: Option<u64>,
    /// Input interface ifIndex.
    pub input_if: Option<u32>,
    /// Output interface ifIndex.
    pub output_if: Option<u32>,
    /// Flow start, Unix epoch milliseconds.
    pub start_ms: Option<u64>,
    /// Flow end, Unix epoch milliseconds.
    pub end_ms: Option<u64>,
    /// Sampling rate (1 in N) if known.
    pub sampling_rate: Option<u32>,
    /// Source MAC address.
    pub src_mac: Option<MacAddr>,
    /// Destination MAC address.
    pub dst_mac: Option<MacAddr>,
    /// VLAN id (outer tag, or the source VLAN reported by the exporter).
    pub vlan: Option<u16>,
    /// Next-hop router address.
    pub next_hop: Option<IpAddr>,
    /// Source prefix length.
    pub src_mask: Option<u8>,
    /// Destination prefix length.
    pub dst_mask: Option<u8>,
    /// Source autonomous system.
    pub src_as: Option<u32>,
    /// Destination autonomous system.
    pub dst_as: Option<u32>,
}

impl FlowRecord {
    /// An empty record: everything `None` except the identifying fields.
    pub fn new(protocol_source: FlowProtocol, exporter: IpAddr, observation_domain: u32) -> Self {
        Self {
            protocol_source,
            exporter,
            observation_domain,
            src_addr: None,
            dst_addr: None,
            src_port: None,
            dst_port: None,
            protocol: None,
            tcp_flags: None,
            tos: None,
            icmp_type: None,
            icmp_code: None,
            bytes: None,
            packets: None,
            input_if: None,
            output_if: None,
            start_ms: None,
            end_ms: None,
            sampling_rate: None,
            src_mac: None,
            dst_mac: None,
            vlan: None,
            next_hop: None,
            src_mask: None,
            dst_mask: None,
            src_as: None,
            dst_as: None,
        }
    }

    /// Bytes multiplied by the sampling rate (rate unknown or 0 counts as 1).
    pub fn estimated_bytes(&self) -> Option<u64> {
        self.bytes.map(|b| scale(b, self.sampling_rate))
    }

    /// Packets multiplied by the sampling rate (rate unknown or 0 counts as 1).
    pub fn estimated_packets(&self) -> Option<u64> {
        self.packets.map(|p| scale(p, self.sampling_rate))
    }
}

/// Multiply `count` by a 1-in-N sampling rate, saturating; `None`/0 mean 1.
pub(crate) fn scale(count: u64, rate: Option<u32>) -> u64 {
    match rate {
        Some(r) if r > 1 => count.saturating_mul(u64::from(r)),
        _ => count,
    }
}
