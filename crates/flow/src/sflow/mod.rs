//! sFlow version 5 datagram decoder (sflow.org "sFlow Version 5", July 2004).
//!
//! Decodes the datagram header, flow samples and expanded flow samples
//! (enterprise 0, formats 1 and 3), counter samples and expanded counter
//! samples (formats 2 and 4). Flow records understood: raw packet header
//! (format 1, decoded through [`packet`]), extended switch (1001) and
//! extended router (1002). Counter records understood: generic interface
//! counters (1) and Ethernet interface counters (2). Anything else is kept as
//! an `Unknown` entry with its enterprise, format and length, and skipped.
//!
//! Errors inside one sample are collected in [`Datagram::errors`] and the
//! remaining samples are still decoded; only a broken datagram header makes
//! [`decode`] return `Err`.

pub mod packet;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::reader::Reader;
use crate::record::scale;
use crate::{DecodeError, FlowProtocol, FlowRecord};
pub use packet::PacketSummary;

/// Safety limits applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum samples decoded per datagram; the rest are reported as an error.
    pub max_samples: u32,
    /// Maximum records decoded per sample.
    pub max_records: u32,
    /// Maximum sampled header length kept (bytes).
    pub max_header_len: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_samples: 512,
            max_records: 128,
            max_header_len: 1024,
        }
    }
}

/// A decoded sFlow v5 datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Datagram version (always 5).
    pub version: u32,
    /// Agent address from the datagram header.
    pub agent_address: IpAddr,
    /// Sub-agent id.
    pub sub_agent_id: u32,
    /// Datagram sequence number.
    pub sequence: u32,
    /// Agent uptime in milliseconds.
    pub uptime_ms: u32,
    /// Samples in datagram order.
    pub samples: Vec<Sample>,
    /// Problems met while decoding individual samples (counted, not fatal).
    pub errors: Vec<DecodeError>,
}

impl Datagram {
    /// Flow samples of this datagram mapped into normalized [`FlowRecord`]s
    /// (one per flow sample that carries a raw packet header or extended data).
    pub fn flow_records(&self) -> Vec<FlowRecord> {
        self.samples
            .iter()
            .filter_map(|s| match s {
                Sample::Flow(f) => Some(f.to_flow_record(self.agent_address, self.sub_agent_id)),
                _ => None,
            })
            .collect()
    }
}

/// One sample of a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sample {
    /// Flow sample (format 1) or expanded flow sample (format 3).
    Flow(FlowSample),
    /// Counter sample (format 2) or expanded counter sample (format 4).
    Counter(CounterSample),
    /// A sample type this decoder does not understand; skipped.
    Unknown {
        /// Enterprise number.
        enterprise: u32,
        /// Format number.
        format: u32,
        /// Length of the opaque sample data in bytes.
        length: u32,
    },
}

/// An interface reference in a flow sample (`interface` in the spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interface {
    /// 0: ifIndex; 1: packet discarded (value is the reason); 2: multiple
    /// interfaces (value is the count, 0 = unknown).
    pub format: u32,
    /// ifIndex (format 0; 0 means unknown), reason or count.
    pub value: u32,
}

impl Interface {
    fn compact(v: u32) -> Self {
        Self {
            format: v >> 30,
            value: v & 0x3FFF_FFFF,
        }
    }

    /// The ifIndex if this refers to a single known interface.
    pub fn if_index(&self) -> Option<u32> {
        (self.format == 0 && self.value != 0).then_some(self.value)
    }
}

/// A flow sample (compact or expanded form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowSample {
    /// True if this came from an expanded flow sample (format 3).
    pub expanded: bool,
    /// Sample sequence number.
    pub sequence: u32,
    /// Source id type (0 ifIndex, 1 smonVlanDataSource, 2 entPhysicalEntry).
    pub source_id_type: u32,
    /// Source id index.
    pub source_id_index: u32,
    /// Sampling rate: one packet in `sampling_rate` was sampled.
    pub sampling_rate: u32,
    /// Total packets that could have been sampled.
    pub sample_pool: u32,
    /// Packets dropped for lack of resources.
    pub drops: u32,
    /// Input interface.
    pub input: Interface,
    /// Output interface.
    pub output: Interface,
    /// Flow records.
    pub records: Vec<FlowData>,
}

impl FlowSample {
    /// Scale a count observed in samples by the sampling rate (rate 0 counts as 1).
    pub fn scale(&self, count: u64) -> u64 {
        scale(count, Some(self.sampling_rate))
    }

    /// The raw packet header record, if any.
    pub fn raw_header(&self) -> Option<&RawPacketHeader> {
        self.records.iter().find_map(|r| match r {
            FlowData::RawPacketHeader(h) => Some(h),
            _ => None,
        })
    }

    /// Map into a normalized [`FlowRecord`] (bytes = frame length, packets = 1).
    pub fn to_flow_record(&self, agent: IpAddr, sub_agent_id: u32) -> FlowRecord {
        let mut r = FlowRecord::new(FlowProtocol::Sflow5, agent, sub_agent_id);
        r.packets = Some(1);
        r.sampling_rate = Some(self.sampling_rate);
        r.input_if = self.input.if_index();
        r.output_if = self.output.if_index();
        for rec in &self.records {
            match rec {
                FlowData::RawPacketHeader(h) => {
                    let d = &h.decoded;
                    r.bytes = Some(u64::from(h.frame_length));
                    r.src_addr = d.src_ip;
                    r.dst_addr = d.dst_ip;
                    r.src_port = d.src_port;
                    r.dst_port = d.dst_port;
                    r.protocol = d.protocol;
                    r.tcp_flags = d.tcp_flags;
                    r.tos = d.tos;
                    r.icmp_type = d.icmp_type;
                    r.icmp_code = d.icmp_code;
                    r.src_mac = d.src_mac;
                    r.dst_mac = d.dst_mac;
                    if r.vlan.is_none() {
                        r.vlan = d.vlan;
                    }
                }
                FlowData::ExtendedSwitch(s) => {
                    if let Ok(v) = u16::try_from(s.src_vlan) {
                        if v != 0 {
                            r.vlan = Some(v);
                        }
                    }
                }
                FlowData::ExtendedRouter(x) => {
                    r.next_hop = Some(x.next_hop);
                    r.src_mask = u8::try_from(x.src_mask_len).ok();
                    r.dst_mask = u8::try_from(x.dst_mask_len).ok();
                }
                FlowData::Unknown { .. } => {}
            }
        }
        r
    }
}

/// A flow record inside a flow sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowData {
    /// Raw packet header (enterprise 0, format 1).
    RawPacketHeader(RawPacketHeader),
    /// Extended switch data (enterprise 0, format 1001).
    ExtendedSwitch(ExtendedSwitch),
    /// Extended router data (enterprise 0, format 1002).
    ExtendedRouter(ExtendedRouter),
    /// Anything else; skipped.
    Unknown {
        /// Enterprise number.
        enterprise: u32,
        /// Format number.
        format: u32,
        /// Length in bytes.
        length: u32,
    },
}

/// Header protocol values of a raw packet header record.
pub mod header_protocol {
    /// Ethernet (ISO 8802-3).
    pub const ETHERNET: u32 = 1;
    /// Raw IPv4 packet.
    pub const IPV4: u32 = 11;
    /// Raw IPv6 packet.
    pub const IPV6: u32 = 12;
}

/// Raw packet header record (format 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPacketHeader {
    /// Header protocol (see [`header_protocol`]).
    pub header_protocol: u32,
    /// Original length of the sampled frame.
    pub frame_length: u32,
    /// Bytes stripped from the frame before sampling (e.g. FCS).
    pub stripped: u32,
    /// The sampled header bytes (possibly cut to the decoder limit).
    pub header: Vec<u8>,
    /// What could be decoded from the header bytes.
    pub decoded: PacketSummary,
}

/// Extended switch data (format 1001).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtendedSwitch {
    /// 802.1Q VLAN id of the incoming frame.
    pub src_vlan: u32,
    /// 802.1p priority of the incoming frame.
    pub src_priority: u32,
    /// 802.1Q VLAN id of the outgoing frame.
    pub dst_vlan: u32,
    /// 802.1p priority of the outgoing frame.
    pub dst_priority: u32,
}

/// Extended router data (format 1002).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtendedRouter {
    /// Next-hop router address.
    pub next_hop: IpAddr,
    /// Source address prefix length.
    pub src_mask_len: u32,
    /// Destination address prefix length.
    pub dst_mask_len: u32,
}

/// A counter sample (compact or expanded form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterSample {
    /// True if this came from an expanded counter sample (format 4).
    pub expanded: bool,
    /// Sample sequence number.
    pub sequence: u32,
    /// Source id type.
    pub source_id_type: u32,
    /// Source id index.
    pub source_id_index: u32,
    /// Counter records.
    pub records: Vec<CounterData>,
}

/// A counter record inside a counter sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CounterData {
    /// Generic interface counters (format 1).
    GenericInterface(IfCounters),
    /// Ethernet interface counters (format 2).
    Ethernet(EthernetCounters),
    /// Anything else; skipped.
    Unknown {
        /// Enterprise number.
        enterprise: u32,
        /// Format number.
        format: u32,
        /// Length in bytes.
        length: u32,
    },
}

/// Generic interface counters (RFC 2233 ifTable / ifXTable), format 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IfCounters {
    /// ifIndex.
    pub if_index: u32,
    /// ifType.
    pub if_type: u32,
    /// ifSpeed in bits per second.
    pub if_speed: u64,
    /// 0 unknown, 1 full-duplex, 2 half-duplex, 3 in, 4 out.
    pub if_direction: u32,
    /// bit 0: ifAdminStatus up; bit 1: ifOperStatus up.
    pub if_status: u32,
    /// ifInOctets.
    pub in_octets: u64,
    /// ifInUcastPkts.
    pub in_ucast_pkts: u32,
    /// ifInMulticastPkts.
    pub in_multicast_pkts: u32,
    /// ifInBroadcastPkts.
    pub in_broadcast_pkts: u32,
    /// ifInDiscards.
    pub in_discards: u32,
    /// ifInErrors.
    pub in_errors: u32,
    /// ifInUnknownProtos.
    pub in_unknown_protos: u32,
    /// ifOutOctets.
    pub out_octets: u64,
    /// ifOutUcastPkts.
    pub out_ucast_pkts: u32,
    /// ifOutMulticastPkts.
    pub out_multicast_pkts: u32,
    /// ifOutBroadcastPkts.
    pub out_broadcast_pkts: u32,
    /// ifOutDiscards.
    pub out_discards: u32,
    /// ifOutErrors.
    pub out_errors: u32,
    /// ifPromiscuousMode (1 = true).
    pub promiscuous_mode: u32,
}

impl IfCounters {
    /// ifAdminStatus is up.
    pub fn admin_up(&self) -> bool {
        self.if_status & 1 != 0
    }
    /// ifOperStatus is up.
    pub fn oper_up(&self) -> bool {
        self.if_status & 2 != 0
    }
}

/// Ethernet interface counters (RFC 2358 dot3StatsTable), format 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EthernetCounters {
    /// dot3StatsAlignmentErrors.
    pub alignment_errors: u32,
    /// dot3StatsFCSErrors.
    pub fcs_errors: u32,
    /// dot3StatsSingleCollisionFrames.
    pub single_collision_frames: u32,
    /// dot3StatsMultipleCollisionFrames.
    pub multiple_collision_frames: u32,
    /// dot3StatsSQETestErrors.
    pub sqe_test_errors: u32,
    /// dot3StatsDeferredTransmissions.
    pub deferred_transmissions: u32,
    /// dot3StatsLateCollisions.
    pub late_collisions: u32,
    /// dot3StatsExcessiveCollisions.
    pub excessive_collisions: u32,
    /// dot3StatsInternalMacTransmitErrors.
    pub internal_mac_transmit_errors: u32,
    /// dot3StatsCarrierSenseErrors.
    pub carrier_sense_errors: u32,
    /// dot3StatsFrameTooLongs.
    pub frame_too_longs: u32,
    /// dot3StatsInternalMacReceiveErrors.
    pub internal_mac_receive_errors: u32,
    /// dot3StatsSymbolErrors.
    pub symbol_errors: u32,
}

/// Decode one sFlow v5 datagram with default [`Limits`].
pub fn decode(buf: &[u8]) -> Result<Datagram, DecodeError> {
    decode_with_limits(buf, &Limits::default())
}

/// Decode one sFlow v5 datagram.
pub fn decode_with_limits(buf: &[u8], limits: &Limits) -> Result<Datagram, DecodeError> {
    let mut r = Reader::new(buf);
    let version = r.u32()?;
    if version != 5 {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let agent_address = read_address(&mut r)?;
    let sub_agent_id = r.u32()?;
    let sequence = r.u32()?;
    let uptime_ms = r.u32()?;
    let num_samples = r.u32()?;
    let mut d = Datagram {
        version,
        agent_address,
        sub_agent_id,
        sequence,
        uptime_ms,
        samples: Vec::new(),
        errors: Vec::new(),
    };
    if num_samples > limits.max_samples {
        d.errors.push(DecodeError::LimitExceeded {
            what: "samples per datagram",
            value: u64::from(num_samples),
            limit: u64::from(limits.max_samples),
        });
    }
    for _ in 0..num_samples.min(limits.max_samples) {
        if r.is_empty() {
            d.errors.push(DecodeError::Truncated {
                offset: r.position(),
                needed: 8,
                available: 0,
            });
            break;
        }
        let (enterprise, format, body) = match read_tlv(&mut r) {
            Ok(t) => t,
            Err(e) => {
                d.errors.push(e);
                break;
            }
        };
        let sample = if enterprise != 0 {
            Ok(Sample::Unknown {
                enterprise,
                format,
                length: len32(body),
            })
        } else {
            match format {
                1 => decode_flow_sample(body, false, limits, &mut d.errors).map(Sample::Flow),
                3 => decode_flow_sample(body, true, limits, &mut d.errors).map(Sample::Flow),
                2 => decode_counter_sample(body, false, limits, &mut d.errors).map(Sample::Counter),
                4 => decode_counter_sample(body, true, limits, &mut d.errors).map(Sample::Counter),
                _ => Ok(Sample::Unknown {
                    enterprise,
                    format,
                    length: len32(body),
                }),
            }
        };
        match sample {
            Ok(s) => d.samples.push(s),
            Err(e) => d.errors.push(e),
        }
    }
    Ok(d)
}

fn len32(b: &[u8]) -> u32 {
    u32::try_from(b.len()).unwrap_or(u32::MAX)
}

fn read_address(r: &mut Reader<'_>) -> Result<IpAddr, DecodeError> {
    match r.u32()? {
        1 => Ok(IpAddr::V4(Ipv4Addr::from(r.array::<4>()?))),
        2 => Ok(IpAddr::V6(Ipv6Addr::from(r.array::<16>()?))),
        // "UNKNOWN" (0) carries no address bytes.
        0 => Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        t => Err(DecodeError::Invalid {
            what: "sFlow address type",
            value: u64::from(t),
        }),
    }
}

/// Read `data_format` + `length` + opaque body; returns (enterprise, format, body).
fn read_tlv<'a>(r: &mut Reader<'a>) -> Result<(u32, u32, &'a [u8]), DecodeError> {
    let df = r.u32()?;
    let len = r.u32()? as usize;
    let body = r.bytes(len)?;
    // XDR opaque data is padded to a multiple of 4; agents include the padding
    // in the length, but tolerate ones that do not.
    let pad = (4 - len % 4) % 4;
    if pad > 0 && r.remaining() >= pad {
        r.skip(pad)?;
    }
    Ok((df >> 12, df & 0x0FFF, body))
}

fn decode_flow_sample(
    body: &[u8],
    expanded: bool,
    limits: &Limits,
    errors: &mut Vec<DecodeError>,
) -> Result<FlowSample, DecodeError> {
    let mut r = Reader::new(body);
    let sequence = r.u32()?;
    let (source_id_type, source_id_index) = if expanded {
        (r.u32()?, r.u32()?)
    } else {
        let v = r.u32()?;
        (v >> 24, v & 0x00FF_FFFF)
    };
    let sampling_rate = r.u32()?;
    let sample_pool = r.u32()?;
    let drops = r.u32()?;
    let (input, output) = if expanded {
        let inf = r.u32()?;
        let inv = r.u32()?;
        let outf = r.u32()?;
        let outv = r.u32()?;
        (
            Interface {
                format: inf,
                value: inv,
            },
            Interface {
                format: outf,
                value: outv,
            },
        )
    } else {
        (Interface::compact(r.u32()?), Interface::compact(r.u32()?))
    };
    let n = r.u32()?;
    let records = decode_records(&mut r, n, limits, errors, decode_flow_record)?;
    Ok(FlowSample {
        expanded,
        sequence,
        source_id_type,
        source_id_index,
        sampling_rate,
        sample_pool,
        drops,
        input,
        output,
        records,
    })
}

fn decode_counter_sample(
    body: &[u8],
    expanded: bool,
    limits: &Limits,
    errors: &mut Vec<DecodeError>,
) -> Result<CounterSample, DecodeError> {
    let mut r = Reader::new(body);
    let sequence = r.u32()?;
    let (source_id_type, source_id_index) = if expanded {
        (r.u32()?, r.u32()?)
    } else {
        let v = r.u32()?;
        (v >> 24, v & 0x00FF_FFFF)
    };
    let n = r.u32()?;
    let records = decode_records(&mut r, n, limits, errors, decode_counter_record)?;
    Ok(CounterSample {
        expanded,
        sequence,
        source_id_type,
        source_id_index,
        records,
    })
}

/// Decode `n` TLV records with `f`; a record whose body is malformed is
/// reported in `errors` and replaced by nothing, later records still decode.
fn decode_records<T>(
    r: &mut Reader<'_>,
    n: u32,
    limits: &Limits,
    errors: &mut Vec<DecodeError>,
    f: fn(u32, u32, &[u8], &Limits) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    if n > limits.max_records {
        errors.push(DecodeError::LimitExceeded {
            what: "records per sample",
            value: u64::from(n),
            limit: u64::from(limits.max_records),
        });
    }
    let mut out = Vec::new();
    for _ in 0..n.min(limits.max_records) {
        let (ent, fmt, body) = match read_tlv(r) {
            Ok(t) => t,
            Err(e) => {
                errors.push(e);
                break;
            }
        };
        match f(ent, fmt, body, limits) {
            Ok(v) => out.push(v),
            Err(e) => errors.push(e),
        }
    }
    Ok(out)
}

fn decode_flow_record(
    enterprise: u32,
    format: u32,
    body: &[u8],
    limits: &Limits,
) -> Result<FlowData, DecodeError> {
    let mut r = Reader::new(body);
    match (enterprise, format) {
        (0, 1) => {
            let header_protocol = r.u32()?;
            let frame_length = r.u32()?;
            let stripped = r.u32()?;
            let header_len = r.u32()?;
            let avail = r.remaining();
            let take = (header_len as usize).min(avail);
            if (header_len as usize) > avail {
                return Err(DecodeError::Truncated {
                    offset: r.position(),
                    needed: header_len as usize,
                    available: avail,
                });
            }
            let bytes = r.bytes(take)?;
            let kept = &bytes[..bytes.len().min(limits.max_header_len as usize)];
            let decoded = match header_protocol {
                header_protocol::ETHERNET => packet::decode_ethernet(kept),
                header_protocol::IPV4 => packet::decode_ipv4(kept),
                header_protocol::IPV6 => packet::decode_ipv6(kept),
                _ => PacketSummary::default(),
            };
            Ok(FlowData::RawPacketHeader(RawPacketHeader {
                header_protocol,
                frame_length,
                stripped,
                header: kept.to_vec(),
                decoded,
            }))
        }
        (0, 1001) => Ok(FlowData::ExtendedSwitch(ExtendedSwitch {
            src_vlan: r.u32()?,
            src_priority: r.u32()?,
            dst_vlan: r.u32()?,
            dst_priority: r.u32()?,
        })),
        (0, 1002) => Ok(FlowData::ExtendedRouter(ExtendedRouter {
            next_hop: read_address(&mut r)?,
            src_mask_len: r.u32()?,
            dst_mask_len: r.u32()?,
        })),
        _ => Ok(FlowData::Unknown {
            enterprise,
            format,
            length: len32(body),
        }),
    }
}

fn decode_counter_record(
    enterprise: u32,
    format: u32,
    body: &[u8],
    _limits: &Limits,
) -> Result<CounterData, DecodeError> {
    let mut r = Reader::new(body);
    match (enterprise, format) {
        (0, 1) => Ok(CounterData::GenericInterface(IfCounters {
            if_index: r.u32()?,
            if_type: r.u32()?,
            if_speed: r.u64()?,
            if_direction: r.u32()?,
            if_status: r.u32()?,
            in_octets: r.u64()?,
            in_ucast_pkts: r.u32()?,
            in_multicast_pkts: r.u32()?,
            in_broadcast_pkts: r.u32()?,
            in_discards: r.u32()?,
            in_errors: r.u32()?,
            in_unknown_protos: r.u32()?,
            out_octets: r.u64()?,
            out_ucast_pkts: r.u32()?,
            out_multicast_pkts: r.u32()?,
            out_broadcast_pkts: r.u32()?,
            out_discards: r.u32()?,
            out_errors: r.u32()?,
            promiscuous_mode: r.u32()?,
        })),
        (0, 2) => Ok(CounterData::Ethernet(EthernetCounters {
            alignment_errors: r.u32()?,
            fcs_errors: r.u32()?,
            single_collision_frames: r.u32()?,
            multiple_collision_frames: r.u32()?,
            sqe_test_errors: r.u32()?,
            deferred_transmissions: r.u32()?,
            late_collisions: r.u32()?,
            excessive_collisions: r.u32()?,
            internal_mac_transmit_errors: r.u32()?,
            carrier_sense_errors: r.u32()?,
            frame_too_longs: r.u32()?,
            internal_mac_receive_errors: r.u32()?,
            symbol_errors: r.u32()?,
        })),
        _ => Ok(CounterData::Unknown {
            enterprise,
            format,
            length: len32(body),
        }),
    }
}
