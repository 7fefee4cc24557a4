//! Path attributes (RFC 4271 §4.3 and §5, RFC 1997, RFC 4760, RFC 6793,
//! RFC 8092): the typed [`PathAttributes`] set carried by an UPDATE and the
//! per-attribute codec with RFC 7606 error classification.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use super::afi::AfiSafi;
use super::error::{ErrorAction, UpdateError, UpdateErrorKind};
use super::open::AS_TRANS;
use super::prefix;
use super::reader::Reader;
use super::{Context, EncodeError};

/// Path attribute type codes (IANA "BGP Path Attributes" registry).
pub mod attr_type {
    /// ORIGIN (RFC 4271).
    pub const ORIGIN: u8 = 1;
    /// AS_PATH (RFC 4271).
    pub const AS_PATH: u8 = 2;
    /// NEXT_HOP (RFC 4271).
    pub const NEXT_HOP: u8 = 3;
    /// MULTI_EXIT_DISC (RFC 4271).
    pub const MULTI_EXIT_DISC: u8 = 4;
    /// LOCAL_PREF (RFC 4271).
    pub const LOCAL_PREF: u8 = 5;
    /// ATOMIC_AGGREGATE (RFC 4271).
    pub const ATOMIC_AGGREGATE: u8 = 6;
    /// AGGREGATOR (RFC 4271).
    pub const AGGREGATOR: u8 = 7;
    /// COMMUNITIES (RFC 1997).
    pub const COMMUNITIES: u8 = 8;
    /// MP_REACH_NLRI (RFC 4760).
    pub const MP_REACH_NLRI: u8 = 14;
    /// MP_UNREACH_NLRI (RFC 4760).
    pub const MP_UNREACH_NLRI: u8 = 15;
    /// AS4_PATH (RFC 6793).
    pub const AS4_PATH: u8 = 17;
    /// AS4_AGGREGATOR (RFC 6793).
    pub const AS4_AGGREGATOR: u8 = 18;
    /// LARGE_COMMUNITY (RFC 8092).
    pub const LARGE_COMMUNITIES: u8 = 32;
}

/// Attribute flag bits (RFC 4271 §4.3).
pub mod attr_flags {
    /// Optional (1) or well-known (0).
    pub const OPTIONAL: u8 = 0x80;
    /// Transitive (1) or non-transitive (0).
    pub const TRANSITIVE: u8 = 0x40;
    /// Partial: some AS on the path did not recognise the attribute.
    pub const PARTIAL: u8 = 0x20;
    /// Extended length: the length field is two octets.
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

use attr_flags::{EXTENDED_LENGTH, OPTIONAL, PARTIAL, TRANSITIVE};

/// ORIGIN attribute values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// Learned from an interior protocol (0).
    Igp,
    /// Learned via EGP (1).
    Egp,
    /// Learned by some other means (2).
    Incomplete,
}

impl Origin {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Igp),
            1 => Some(Self::Egp),
            2 => Some(Self::Incomplete),
            _ => None,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Igp => 0,
            Self::Egp => 1,
            Self::Incomplete => 2,
        }
    }
}

/// AS_PATH segment types (RFC 4271, RFC 5065).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AsSegmentType {
    /// AS_SET (1): unordered.
    Set,
    /// AS_SEQUENCE (2): ordered, most recent first.
    Sequence,
    /// AS_CONFED_SEQUENCE (3).
    ConfedSequence,
    /// AS_CONFED_SET (4).
    ConfedSet,
}

impl AsSegmentType {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Set),
            2 => Some(Self::Sequence),
            3 => Some(Self::ConfedSequence),
            4 => Some(Self::ConfedSet),
            _ => None,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Set => 1,
            Self::Sequence => 2,
            Self::ConfedSequence => 3,
            Self::ConfedSet => 4,
        }
    }
}

/// One AS_PATH segment: 1 to 255 AS numbers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AsSegment {
    /// Segment type.
    pub kind: AsSegmentType,
    /// AS numbers in wire order.
    pub asns: Vec<u32>,
}

/// An AS_PATH or AS4_PATH. AS numbers are always held as 4-octet values;
/// the wire width is chosen by [`Context::four_octet_as`] (AS4_PATH is
/// always 4-octet).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AsPath {
    /// Segments in wire order.
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// A path made of one AS_SEQUENCE (empty input gives an empty path).
    pub fn from_sequence(asns: impl IntoIterator<Item = u32>) -> Self {
        let asns: Vec<u32> = asns.into_iter().collect();
        let mut path = Self::default();
        for chunk in asns.chunks(255) {
            path.segments.push(AsSegment {
                kind: AsSegmentType::Sequence,
                asns: chunk.to_vec(),
            });
        }
        path
    }

    /// Path length for route selection (RFC 4271 §9.1.2.2): each AS in a
    /// sequence counts one, each AS_SET counts one, confederation segments
    /// count zero.
    pub fn path_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                AsSegmentType::Sequence => s.asns.len(),
                AsSegmentType::Set => 1,
                AsSegmentType::ConfedSequence | AsSegmentType::ConfedSet => 0,
            })
            .sum()
    }

    /// The neighbouring AS: the first AS of a leading AS_SEQUENCE.
    pub fn first_as(&self) -> Option<u32> {
        let first = self.segments.first()?;
        if first.kind == AsSegmentType::Sequence {
            first.asns.first().copied()
        } else {
            None
        }
    }

    /// Whether `asn` appears anywhere in the path (loop detection).
    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// Prepends `asn` as a speaker does when advertising to an external
    /// peer (RFC 4271 §5.1.2).
    pub fn prepend(&mut self, asn: u32) {
        match self.segments.first_mut() {
            Some(seg) if seg.kind == AsSegmentType::Sequence && seg.asns.len() < 255 => {
                seg.asns.insert(0, asn)
            }
            _ => self.segments.insert(
                0,
                AsSegment {
                    kind: AsSegmentType::Sequence,
                    asns: vec![asn],
                },
            ),
        }
    }

    fn decode(buf: &[u8], four_octet: bool) -> Option<Self> {
        let mut r = Reader::new(buf);
        let mut segments = Vec::new();
        while !r.is_empty() {
            let kind = AsSegmentType::from_u8(r.u8()?)?;
            let count = r.u8()?;
            if count == 0 {
                return None;
            }
            let mut asns = Vec::with_capacity(usize::from(count));
            for _ in 0..count {
                let asn = if four_octet {
                    r.u32()?
                } else {
                    u32::from(r.u16()?)
                };
                asns.push(asn);
            }
            segments.push(AsSegment { kind, asns });
        }
        Some(Self { segments })
    }

    fn encode(&self, four_octet: bool, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        for seg in &self.segments {
            let count = u8::try_from(seg.asns.len())
                .ok()
                .filter(|c| *c > 0)
                .ok_or(EncodeError::InvalidAsPathSegment(seg.asns.len()))?;
            out.push(seg.kind.to_u8());
            out.push(count);
            for asn in &seg.asns {
                if four_octet {
                    out.extend_from_slice(&asn.to_be_bytes());
                } else {
                    out.extend_from_slice(&as2(*asn).to_be_bytes());
                }
            }
        }
        Ok(())
    }
}

/// A 4-octet AS squeezed into a 2-octet field (RFC 6793).
fn as2(asn: u32) -> u16 {
    u16::try_from(asn).unwrap_or(AS_TRANS)
}

/// AGGREGATOR / AS4_AGGREGATOR value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aggregator {
    /// The AS that formed the aggregate.
    pub asn: u32,
    /// The BGP identifier of the aggregating speaker.
    pub address: Ipv4Addr,
}

/// An RFC 1997 community.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Community(pub u32);

impl Community {
    /// NO_EXPORT.
    pub const NO_EXPORT: Self = Self(0xffff_ff01);
    /// NO_ADVERTISE.
    pub const NO_ADVERTISE: Self = Self(0xffff_ff02);
    /// NO_EXPORT_SUBCONFED.
    pub const NO_EXPORT_SUBCONFED: Self = Self(0xffff_ff03);
    /// BLACKHOLE (RFC 7999).
    pub const BLACKHOLE: Self = Self(0xffff_029a);

    /// The conventional `asn:value` community.
    pub const fn new(asn: u16, value: u16) -> Self {
        Self(((asn as u32) << 16) | value as u32)
    }
}

/// An RFC 8092 large community.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LargeCommunity {
    /// Global administrator (an AS number).
    pub global_admin: u32,
    /// First local data part.
    pub local_data1: u32,
    /// Second local data part.
    pub local_data2: u32,
}

/// IPv6 next hop of MP_REACH_NLRI: a global address, optionally followed
/// by a link-local one (RFC 2545 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6NextHop {
    /// Global unicast next hop.
    pub global: Ipv6Addr,
    /// Link-local next hop (32-octet form).
    pub link_local: Option<Ipv6Addr>,
}

/// MP_REACH_NLRI (RFC 4760 §3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MpReach {
    /// IPv4 unicast routes with an IPv4 next hop.
    Ipv4Unicast {
        /// Next hop.
        next_hop: Ipv4Addr,
        /// Reachable prefixes.
        nlri: Vec<Ipv4Net>,
    },
    /// IPv6 unicast routes.
    Ipv6Unicast {
        /// Next hop (16 or 32 octets on the wire).
        next_hop: Ipv6NextHop,
        /// Reachable prefixes.
        nlri: Vec<Ipv6Net>,
    },
    /// Another family, kept raw.
    Other {
        /// Address family.
        afi_safi: AfiSafi,
        /// Raw next hop.
        next_hop: Vec<u8>,
        /// Raw NLRI.
        nlri: Vec<u8>,
    },
}

impl MpReach {
    /// The address family.
    pub fn afi_safi(&self) -> AfiSafi {
        match self {
            Self::Ipv4Unicast { .. } => AfiSafi::IPV4_UNICAST,
            Self::Ipv6Unicast { .. } => AfiSafi::IPV6_UNICAST,
            Self::Other { afi_safi, .. } => *afi_safi,
        }
    }

    fn decode(value: &[u8]) -> Option<Self> {
        let mut r = Reader::new(value);
        let afi_safi = AfiSafi::new(r.u16()?, r.u8()?);
        let nh_len = r.u8()?;
        let nh = r.take(usize::from(nh_len))?;
        let _reserved = r.u8()?;
        let nlri = r.rest();
        let mut nhr = Reader::new(nh);
        Some(match afi_safi {
            AfiSafi::IPV4_UNICAST => {
                if nh_len != 4 {
                    return None;
                }
                Self::Ipv4Unicast {
                    next_hop: nhr.ipv4()?,
                    nlri: prefix::decode_ipv4(nlri).ok()?,
                }
            }
            AfiSafi::IPV6_UNICAST => {
                let next_hop = match nh_len {
                    16 => Ipv6NextHop {
                        global: nhr.ipv6()?,
                        link_local: None,
                    },
                    32 => Ipv6NextHop {
                        global: nhr.ipv6()?,
                        link_local: Some(nhr.ipv6()?),
                    },
                    _ => return None,
                };
                Self::Ipv6Unicast {
                    next_hop,
                    nlri: prefix::decode_ipv6(nlri).ok()?,
                }
            }
            _ => Self::Other {
                afi_safi,
                next_hop: nh.to_vec(),
                nlri: nlri.to_vec(),
            },
        })
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let f = self.afi_safi();
        out.extend_from_slice(&f.afi.to_be_bytes());
        out.push(f.safi);
        match self {
            Self::Ipv4Unicast { next_hop, nlri } => {
                out.push(4);
                out.extend_from_slice(&next_hop.octets());
                out.push(0);
                for p in nlri {
                    prefix::encode_ipv4(p, out);
                }
            }
            Self::Ipv6Unicast { next_hop, nlri } => {
                out.push(if next_hop.link_local.is_some() {
                    32
                } else {
                    16
                });
                out.extend_from_slice(&next_hop.global.octets());
                if let Some(ll) = next_hop.link_local {
                    out.extend_from_slice(&ll.octets());
                }
                out.push(0);
                for p in nlri {
                    prefix::encode_ipv6(p, out);
                }
            }
            Self::Other { next_hop, nlri, .. } => {
                out.push(
                    u8::try_from(next_hop.len())
                        .map_err(|_| EncodeError::OutOfRange("MP_REACH next hop"))?,
                );
                out.extend_from_slice(next_hop);
                out.push(0);
                out.extend_from_slice(nlri);
            }
        }
        Ok(())
    }
}

/// MP_UNREACH_NLRI (RFC 4760 §4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MpUnreach {
    /// Withdrawn IPv4 unicast prefixes.
    Ipv4Unicast(Vec<Ipv4Net>),
    /// Withdrawn IPv6 unicast prefixes.
    Ipv6Unicast(Vec<Ipv6Net>),
    /// Another family, kept raw.
    Other {
        /// Address family.
        afi_safi: AfiSafi,
        /// Raw withdrawn routes.
        nlri: Vec<u8>,
    },
}

impl MpUnreach {
    /// The address family.
    pub fn afi_safi(&self) -> AfiSafi {
        match self {
            Self::Ipv4Unicast(_) => AfiSafi::IPV4_UNICAST,
            Self::Ipv6Unicast(_) => AfiSafi::IPV6_UNICAST,
            Self::Other { afi_safi, .. } => *afi_safi,
        }
    }

    /// Whether no routes are withdrawn (an End-of-RIB marker, RFC 4724).
    pub fn is_empty(&self) -> bool {
        match self {
            Self::Ipv4Unicast(v) => v.is_empty(),
            Self::Ipv6Unicast(v) => v.is_empty(),
            Self::Other { nlri, .. } => nlri.is_empty(),
        }
    }

    /// An empty withdrawal for `afi_safi`.
    pub fn empty(afi_safi: AfiSafi) -> Self {
        match afi_safi {
            AfiSafi::IPV4_UNICAST => Self::Ipv4Unicast(Vec::new()),
            AfiSafi::IPV6_UNICAST => Self::Ipv6Unicast(Vec::new()),
            _ => Self::Other {
                afi_safi,
                nlri: Vec::new(),
            },
        }
    }

    fn decode(value: &[u8]) -> Option<Self> {
        let mut r = Reader::new(value);
        let afi_safi = AfiSafi::new(r.u16()?, r.u8()?);
        let nlri = r.rest();
        Some(match afi_safi {
            AfiSafi::IPV4_UNICAST => Self::Ipv4Unicast(prefix::decode_ipv4(nlri).ok()?),
            AfiSafi::IPV6_UNICAST => Self::Ipv6Unicast(prefix::decode_ipv6(nlri).ok()?),
            _ => Self::Other {
                afi_safi,
                nlri: nlri.to_vec(),
            },
        })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let f = self.afi_safi();
        out.extend_from_slice(&f.afi.to_be_bytes());
        out.push(f.safi);
        match self {
            Self::Ipv4Unicast(v) => v.iter().for_each(|p| prefix::encode_ipv4(p, out)),
            Self::Ipv6Unicast(v) => v.iter().for_each(|p| prefix::encode_ipv6(p, out)),
            Self::Other { nlri, .. } => out.extend_from_slice(nlri),
        }
    }
}

/// An attribute this crate does not model (optional transitive), kept so
/// it can be propagated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    /// Flags as sent, except the extended-length bit which is recomputed on
    /// encode. Received unknown attributes get the Partial bit set, as
    /// RFC 4271 §5 requires when propagating them.
    pub flags: u8,
    /// Attribute type code.
    pub type_code: u8,
    /// Attribute value.
    pub value: Vec<u8>,
}

/// The path attributes of an UPDATE, one field per attribute this crate
/// understands. Absent attributes are `None` (or empty / `false`).
///
/// On encode, MP_UNREACH_NLRI and MP_REACH_NLRI come first (RFC 7606 §5.1),
/// then the others by type code, then `unknown` in order. AS4_PATH and
/// AS4_AGGREGATOR are only sent when 4-octet AS was not negotiated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PathAttributes {
    /// ORIGIN.
    pub origin: Option<Origin>,
    /// AS_PATH.
    pub as_path: Option<AsPath>,
    /// NEXT_HOP (IPv4 NLRI field only).
    pub next_hop: Option<Ipv4Addr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE present.
    pub atomic_aggregate: bool,
    /// AGGREGATOR.
    pub aggregator: Option<Aggregator>,
    /// COMMUNITIES (empty = absent).
    pub communities: Vec<Community>,
    /// MP_REACH_NLRI.
    pub mp_reach: Option<MpReach>,
    /// MP_UNREACH_NLRI.
    pub mp_unreach: Option<MpUnreach>,
    /// AS4_PATH (only between a 4-octet and a 2-octet speaker).
    pub as4_path: Option<AsPath>,
    /// AS4_AGGREGATOR (only between a 4-octet and a 2-octet speaker).
    pub as4_aggregator: Option<Aggregator>,
    /// LARGE_COMMUNITY (empty = absent).
    pub large_communities: Vec<LargeCommunity>,
    /// Unrecognised optional transitive attributes, sorted by type code
    /// when decoded.
    pub unknown: Vec<RawAttribute>,
}

/// Expected Optional/Transitive flags and RFC 7606 action for a recognised
/// attribute; `None` for attributes this crate does not model.
fn spec(type_code: u8) -> Option<(u8, ErrorAction)> {
    use attr_type::*;
    use ErrorAction::*;
    Some(match type_code {
        ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF => (TRANSITIVE, TreatAsWithdraw),
        MULTI_EXIT_DISC => (OPTIONAL, TreatAsWithdraw),
        ATOMIC_AGGREGATE => (TRANSITIVE, AttributeDiscard),
        AGGREGATOR | AS4_PATH | AS4_AGGREGATOR => (OPTIONAL | TRANSITIVE, AttributeDiscard),
        COMMUNITIES | LARGE_COMMUNITIES => (OPTIONAL | TRANSITIVE, TreatAsWithdraw),
        MP_REACH_NLRI | MP_UNREACH_NLRI => (OPTIONAL, SessionReset),
        _ => return None,
    })
}

fn u32_value(value: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(value).ok().map(u32::from_be_bytes)
}

fn aggregator_value(value: &[u8], four_octet: bool) -> Option<Aggregator> {
    let mut r = Reader::new(value);
    let asn = if four_octet {
        r.u32()?
    } else {
        u32::from(r.u16()?)
    };
    let address = r.ipv4()?;
    r.is_empty().then_some(Aggregator { asn, address })
}

impl PathAttributes {
    /// Decode one attribute into `self`. `raw` is the whole attribute
    /// (header included) for NOTIFICATION data. Errors carry their RFC 7606
    /// action; the attribute is left unset on error.
    pub(crate) fn decode_one(
        &mut self,
        flags: u8,
        type_code: u8,
        value: &[u8],
        raw: &[u8],
        ctx: &Context,
    ) -> Result<(), UpdateError> {
        use attr_type::*;
        use UpdateErrorKind::*;

        let Some((expected, action)) = spec(type_code) else {
            if flags & OPTIONAL == 0 {
                return Err(UpdateError::new(
                    UnrecognizedWellKnownAttribute,
                    ErrorAction::SessionReset,
                    Some(type_code),
                    raw.to_vec(),
                ));
            }
            if flags & TRANSITIVE != 0 {
                self.unknown.push(RawAttribute {
                    flags: (flags & (OPTIONAL | TRANSITIVE | PARTIAL)) | PARTIAL,
                    type_code,
                    value: value.to_vec(),
                });
            }
            // Unrecognised optional non-transitive attributes are quietly
            // ignored (RFC 4271 §5).
            return Ok(());
        };
        let err = |kind| UpdateError::new(kind, action, Some(type_code), raw.to_vec());
        if flags & (OPTIONAL | TRANSITIVE) != expected {
            return Err(err(AttributeFlagsError));
        }
        match type_code {
            ORIGIN => {
                let [v] = value else {
                    return Err(err(AttributeLengthError));
                };
                self.origin = Some(Origin::from_u8(*v).ok_or_else(|| err(InvalidOrigin))?);
            }
            AS_PATH => {
                let path = AsPath::decode(value, ctx.four_octet_as).ok_or_else(|| {
                    UpdateError::new(MalformedAsPath, action, Some(type_code), Vec::new())
                })?;
                self.as_path = Some(path);
            }
            NEXT_HOP => {
                let v = u32_value(value).ok_or_else(|| err(AttributeLengthError))?;
                self.next_hop = Some(Ipv4Addr::from(v));
            }
            MULTI_EXIT_DISC => {
                self.med = Some(u32_value(value).ok_or_else(|| err(AttributeLengthError))?)
            }
            LOCAL_PREF => {
                self.local_pref = Some(u32_value(value).ok_or_else(|| err(AttributeLengthError))?)
            }
            ATOMIC_AGGREGATE => {
                if !value.is_empty() {
                    return Err(err(AttributeLengthError));
                }
                self.atomic_aggregate = true;
            }
            AGGREGATOR => {
                self.aggregator = Some(
                    aggregator_value(value, ctx.four_octet_as)
                        .ok_or_else(|| err(AttributeLengthError))?,
                );
            }
            COMMUNITIES => {
                if value.is_empty() || !value.len().is_multiple_of(4) {
                    return Err(err(AttributeLengthError));
                }
                self.communities = value
                    .chunks_exact(4)
                    .filter_map(u32_value)
                    .map(Community)
                    .collect();
            }
            MP_REACH_NLRI => {
                self.mp_reach =
                    Some(MpReach::decode(value).ok_or_else(|| err(OptionalAttributeError))?)
            }
            MP_UNREACH_NLRI => {
                self.mp_unreach =
                    Some(MpUnreach::decode(value).ok_or_else(|| err(OptionalAttributeError))?);
            }
            AS4_PATH => {
                if ctx.four_octet_as {
                    // RFC 6793 §3: a NEW speaker discards AS4_PATH from a NEW peer.
                    return Err(err(OptionalAttributeError));
                }
                self.as4_path =
                    Some(AsPath::decode(value, true).ok_or_else(|| err(OptionalAttributeError))?);
            }
            AS4_AGGREGATOR => {
                if ctx.four_octet_as {
                    return Err(err(OptionalAttributeError));
                }
                self.as4_aggregator =
                    Some(aggregator_value(value, true).ok_or_else(|| err(AttributeLengthError))?);
            }
            LARGE_COMMUNITIES => {
                if value.is_empty() || !value.len().is_multiple_of(12) {
                    return Err(err(AttributeLengthError));
                }
                self.large_communities = value
                    .chunks_exact(12)
                    .filter_map(|c| {
                        let mut r = Reader::new(c);
                        Some(LargeCommunity {
                            global_admin: r.u32()?,
                            local_data1: r.u32()?,
                            local_data2: r.u32()?,
                        })
                    })
                    .collect();
            }
            _ => {}
        }
        Ok(())
    }

    /// Append every attribute (the Path Attributes field of an UPDATE).
    pub(crate) fn encode(&self, ctx: &Context, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        use attr_type::*;
        let mut v = Vec::new();
        if let Some(mp) = &self.mp_unreach {
            mp.encode(&mut v);
            put(out, OPTIONAL, MP_UNREACH_NLRI, &v)?;
        }
        if let Some(mp) = &self.mp_reach {
            v.clear();
            mp.encode(&mut v)?;
            put(out, OPTIONAL, MP_REACH_NLRI, &v)?;
        }
        if let Some(origin) = self.origin {
            put(out, TRANSITIVE, ORIGIN, &[origin.to_u8()])?;
        }
        if let Some(path) = &self.as_path {
            v.clear();
            path.encode(ctx.four_octet_as, &mut v)?;
            put(out, TRANSITIVE, AS_PATH, &v)?;
        }
        if let Some(nh) = self.next_hop {
            put(out, TRANSITIVE, NEXT_HOP, &nh.octets())?;
        }
        if let Some(med) = self.med {
            put(out, OPTIONAL, MULTI_EXIT_DISC, &med.to_be_bytes())?;
        }
        if let Some(lp) = self.local_pref {
            put(out, TRANSITIVE, LOCAL_PREF, &lp.to_be_bytes())?;
        }
        if self.atomic_aggregate {
            put(out, TRANSITIVE, ATOMIC_AGGREGATE, &[])?;
        }
        if let Some(agg) = self.aggregator {
            v.clear();
            if ctx.four_octet_as {
                v.extend_from_slice(&agg.asn.to_be_bytes());
            } else {
                v.extend_from_slice(&as2(agg.asn).to_be_bytes());
            }
            v.extend_from_slice(&agg.address.octets());
            put(out, OPTIONAL | TRANSITIVE, AGGREGATOR, &v)?;
        }
        if !self.communities.is_empty() {
            v.clear();
            for c in &self.communities {
                v.extend_from_slice(&c.0.to_be_bytes());
            }
            put(out, OPTIONAL | TRANSITIVE, COMMUNITIES, &v)?;
        }
        if !ctx.four_octet_as {
            if let Some(path) = &self.as4_path {
                v.clear();
                path.encode(true, &mut v)?;
                put(out, OPTIONAL | TRANSITIVE, AS4_PATH, &v)?;
            }
            if let Some(agg) = self.as4_aggregator {
                v.clear();
                v.extend_from_slice(&agg.asn.to_be_bytes());
                v.extend_from_slice(&agg.address.octets());
                put(out, OPTIONAL | TRANSITIVE, AS4_AGGREGATOR, &v)?;
            }
        }
        if !self.large_communities.is_empty() {
            v.clear();
            for c in &self.large_communities {
                v.extend_from_slice(&c.global_admin.to_be_bytes());
                v.extend_from_slice(&c.local_data1.to_be_bytes());
                v.extend_from_slice(&c.local_data2.to_be_bytes());
            }
            put(out, OPTIONAL | TRANSITIVE, LARGE_COMMUNITIES, &v)?;
        }
        for raw in &self.unknown {
            put(out, raw.flags & !EXTENDED_LENGTH, raw.type_code, &raw.value)?;
        }
        Ok(())
    }
}

/// Append one attribute, using the extended length form when needed.
fn put(out: &mut Vec<u8>, flags: u8, type_code: u8, value: &[u8]) -> Result<(), EncodeError> {
    let len = u16::try_from(value.len()).map_err(|_| EncodeError::AttributeTooLong(type_code))?;
    match u8::try_from(len) {
        Ok(short) => {
            out.extend_from_slice(&[flags, type_code, short]);
        }
        Err(_) => {
            out.extend_from_slice(&[flags | EXTENDED_LENGTH, type_code]);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    out.extend_from_slice(value);
    Ok(())
}
