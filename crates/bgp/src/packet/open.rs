//! OPEN message (RFC 4271 §4.2) with the Capabilities optional parameter
//! (RFC 5492) and the capabilities yagura understands: multiprotocol
//! (RFC 4760), route refresh (RFC 2918), graceful restart (RFC 4724) and
//! 4-octet AS numbers (RFC 6793). Extended optional parameters (RFC 9072) are
//! decoded and used on encode when the capabilities need them.

use std::net::Ipv4Addr;

use super::afi::AfiSafi;
use super::reader::Reader;
use super::{EncodeError, Error, BGP_VERSION};

/// The 2-octet AS number placed in 2-octet fields for a 4-octet AS
/// (RFC 6793 §9).
pub const AS_TRANS: u16 = 23456;

/// Optional parameter type carrying capabilities (RFC 5492).
pub const PARAM_CAPABILITIES: u8 = 2;
/// Optional parameter type announcing the extended encoding (RFC 9072).
const PARAM_EXTENDED_LENGTH: u8 = 255;

/// Capability codes (IANA "Capability Codes" registry).
pub mod capability_code {
    /// Multiprotocol Extensions (RFC 4760).
    pub const MULTIPROTOCOL: u8 = 1;
    /// Route Refresh (RFC 2918).
    pub const ROUTE_REFRESH: u8 = 2;
    /// Graceful Restart (RFC 4724).
    pub const GRACEFUL_RESTART: u8 = 64;
    /// Support for 4-octet AS numbers (RFC 6793).
    pub const FOUR_OCTET_AS: u8 = 65;
}

/// An OPEN message. The version is always 4 ([`BGP_VERSION`]); other
/// versions are rejected when decoding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Open {
    /// The 2-octet "My Autonomous System" field ([`AS_TRANS`] for 4-octet
    /// ASes; use [`Open::asn`] for the real AS).
    pub my_as: u16,
    /// Proposed hold time in seconds (0 or at least 3).
    pub hold_time: u16,
    /// BGP identifier.
    pub bgp_id: Ipv4Addr,
    /// Capabilities from all Capabilities optional parameters, in order.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// An OPEN for `asn` that always advertises the 4-octet AS capability
    /// (as RFC 6793 requires of a NEW speaker) and sets `my_as` to the AS or
    /// to [`AS_TRANS`] when it does not fit in 16 bits. Add further
    /// capabilities with [`Open::with_capability`].
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr) -> Self {
        Self {
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time,
            bgp_id,
            capabilities: vec![Capability::FourOctetAs(asn)],
        }
    }

    /// Adds a capability (builder style).
    #[must_use]
    pub fn with_capability(mut self, capability: Capability) -> Self {
        self.capabilities.push(capability);
        self
    }

    /// The AS from the 4-octet AS capability if present, else `my_as`.
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }

    /// The AS carried in the 4-octet AS capability, if advertised.
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(asn) => Some(*asn),
            _ => None,
        })
    }

    /// Whether route refresh (RFC 2918) is advertised.
    pub fn route_refresh(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| matches!(c, Capability::RouteRefresh))
    }

    /// Address families advertised with the multiprotocol capability.
    pub fn multiprotocol(&self) -> impl Iterator<Item = AfiSafi> + '_ {
        self.capabilities.iter().filter_map(|c| match c {
            Capability::Multiprotocol(f) => Some(*f),
            _ => None,
        })
    }

    /// The graceful restart capability, if advertised.
    pub fn graceful_restart(&self) -> Option<&GracefulRestart> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr),
            _ => None,
        })
    }

    pub(crate) fn decode(body: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(body);
        let short = Error::MalformedOpen("message too short");
        let version = r.u8().ok_or(short.clone())?;
        if version != BGP_VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let my_as = r.u16().ok_or(short.clone())?;
        let hold_time = r.u16().ok_or(short.clone())?;
        let bgp_id = r.ipv4().ok_or(short.clone())?;
        let opt_len = r.u8().ok_or(short)?;

        let mut capabilities = Vec::new();
        let extended = opt_len == 255 && r.rest().first() == Some(&PARAM_EXTENDED_LENGTH);
        let params = if extended {
            let _ = r.u8();
            let len = r
                .u16()
                .ok_or(Error::MalformedOpen("optional parameters length"))?;
            r.take(usize::from(len))
        } else {
            r.take(usize::from(opt_len))
        }
        .ok_or(Error::MalformedOpen("optional parameters length"))?;
        if !r.is_empty() {
            return Err(Error::MalformedOpen("optional parameters length"));
        }

        let mut pr = Reader::new(params);
        while !pr.is_empty() {
            let bad = Error::MalformedOpen("optional parameter");
            let ptype = pr.u8().ok_or(bad.clone())?;
            let plen = if extended {
                pr.u16()
            } else {
                pr.u8().map(u16::from)
            }
            .ok_or(bad.clone())?;
            let value = pr.take(usize::from(plen)).ok_or(bad)?;
            if ptype != PARAM_CAPABILITIES {
                return Err(Error::UnsupportedOptionalParameter(ptype));
            }
            let mut cr = Reader::new(value);
            while !cr.is_empty() {
                let bad = Error::MalformedOpen("capability");
                let code = cr.u8().ok_or(bad.clone())?;
                let len = cr.u8().ok_or(bad.clone())?;
                let value = cr.take(usize::from(len)).ok_or(bad)?;
                capabilities.push(Capability::decode(code, value)?);
            }
        }

        let open = Self {
            my_as,
            hold_time,
            bgp_id,
            capabilities,
        };
        // RFC 7607: AS 0 is a Bad Peer AS, in My AS or in the capability.
        if my_as == 0 || open.four_octet_as() == Some(0) {
            return Err(Error::BadPeerAs(0));
        }
        // RFC 6286: the identifier is any non-zero 32-bit value.
        if bgp_id.is_unspecified() {
            return Err(Error::BadBgpIdentifier(bgp_id));
        }
        if hold_time == 1 || hold_time == 2 {
            return Err(Error::UnacceptableHoldTime(hold_time));
        }
        Ok(open)
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(BGP_VERSION);
        out.extend_from_slice(&self.my_as.to_be_bytes());
        out.extend_from_slice(&self.hold_time.to_be_bytes());
        out.extend_from_slice(&self.bgp_id.octets());

        // Encode each capability separately, then pack them into as few
        // Capabilities parameters as possible.
        let mut encoded = Vec::with_capacity(self.capabilities.len());
        for cap in &self.capabilities {
            let mut buf = Vec::new();
            cap.encode(&mut buf)?;
            encoded.push(buf);
        }
        let total: usize = encoded.iter().map(Vec::len).sum();
        if total == 0 {
            out.push(0);
            return Ok(());
        }
        let mut params: Vec<Vec<u8>> = vec![Vec::new()];
        for cap in encoded {
            let fits = params.last().is_some_and(|p| p.len() + cap.len() <= 255);
            if fits {
                if let Some(p) = params.last_mut() {
                    p.extend_from_slice(&cap);
                }
            } else {
                params.push(cap);
            }
        }
        let regular_len: usize = params.iter().map(|p| p.len() + 2).sum();
        if regular_len <= 255 {
            out.push(
                u8::try_from(regular_len).map_err(|_| EncodeError::OptionalParametersTooLong)?,
            );
            for p in params {
                out.push(PARAM_CAPABILITIES);
                out.push(
                    u8::try_from(p.len()).map_err(|_| EncodeError::OptionalParametersTooLong)?,
                );
                out.extend_from_slice(&p);
            }
        } else {
            // RFC 9072: one Capabilities parameter with a 2-octet length.
            let len = u16::try_from(total).map_err(|_| EncodeError::OptionalParametersTooLong)?;
            let ext_len = len
                .checked_add(3)
                .ok_or(EncodeError::OptionalParametersTooLong)?;
            out.push(255);
            out.push(PARAM_EXTENDED_LENGTH);
            out.extend_from_slice(&ext_len.to_be_bytes());
            out.push(PARAM_CAPABILITIES);
            out.extend_from_slice(&len.to_be_bytes());
            for p in params {
                out.extend_from_slice(&p);
            }
        }
        Ok(())
    }
}

/// A capability advertised in an OPEN (RFC 5492).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Multiprotocol extensions for one address family (RFC 4760).
    Multiprotocol(AfiSafi),
    /// Route refresh (RFC 2918).
    RouteRefresh,
    /// Graceful restart (RFC 4724).
    GracefulRestart(GracefulRestart),
    /// 4-octet AS number support, carrying the speaker's AS (RFC 6793).
    FourOctetAs(u32),
    /// Any other capability, kept as raw bytes.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        value: Vec<u8>,
    },
}

impl Capability {
    /// The capability code.
    pub fn code(&self) -> u8 {
        match self {
            Self::Multiprotocol(_) => capability_code::MULTIPROTOCOL,
            Self::RouteRefresh => capability_code::ROUTE_REFRESH,
            Self::GracefulRestart(_) => capability_code::GRACEFUL_RESTART,
            Self::FourOctetAs(_) => capability_code::FOUR_OCTET_AS,
            Self::Unknown { code, .. } => *code,
        }
    }

    fn decode(code: u8, value: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(value);
        let cap = match code {
            capability_code::MULTIPROTOCOL => {
                let bad = Error::MalformedOpen("multiprotocol capability");
                let afi = r.u16().ok_or(bad.clone())?;
                let _reserved = r.u8().ok_or(bad.clone())?;
                let safi = r.u8().ok_or(bad.clone())?;
                if !r.is_empty() {
                    return Err(bad);
                }
                Self::Multiprotocol(AfiSafi::new(afi, safi))
            }
            capability_code::ROUTE_REFRESH => {
                if !value.is_empty() {
                    return Err(Error::MalformedOpen("route refresh capability"));
                }
                Self::RouteRefresh
            }
            capability_code::GRACEFUL_RESTART => {
                let bad = Error::MalformedOpen("graceful restart capability");
                let flags_time = r.u16().ok_or(bad.clone())?;
                if !r.remaining().is_multiple_of(4) {
                    return Err(bad);
                }
                let mut families = Vec::new();
                while !r.is_empty() {
                    let afi = r.u16().ok_or(bad.clone())?;
                    let safi = r.u8().ok_or(bad.clone())?;
                    let flags = r.u8().ok_or(bad.clone())?;
                    families.push(GracefulRestartFamily {
                        afi_safi: AfiSafi::new(afi, safi),
                        forwarding_preserved: flags & 0x80 != 0,
                    });
                }
                Self::GracefulRestart(GracefulRestart {
                    restarting: flags_time & 0x8000 != 0,
                    notification: flags_time & 0x4000 != 0,
                    restart_time: flags_time & 0x0fff,
                    families,
                })
            }
            capability_code::FOUR_OCTET_AS => {
                let bad = Error::MalformedOpen("4-octet AS capability");
                let asn = r.u32().ok_or(bad.clone())?;
                if !r.is_empty() {
                    return Err(bad);
                }
                Self::FourOctetAs(asn)
            }
            _ => Self::Unknown {
                code,
                value: value.to_vec(),
            },
        };
        Ok(cap)
    }

    /// Append the capability TLV (code, length, value).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut value = Vec::new();
        match self {
            Self::Multiprotocol(f) => {
                value.extend_from_slice(&f.afi.to_be_bytes());
                value.push(0);
                value.push(f.safi);
            }
            Self::RouteRefresh => {}
            Self::GracefulRestart(gr) => {
                if gr.restart_time > GracefulRestart::MAX_RESTART_TIME {
                    return Err(EncodeError::OutOfRange("graceful restart time"));
                }
                let mut flags_time = gr.restart_time;
                if gr.restarting {
                    flags_time |= 0x8000;
                }
                if gr.notification {
                    flags_time |= 0x4000;
                }
                value.extend_from_slice(&flags_time.to_be_bytes());
                for f in &gr.families {
                    value.extend_from_slice(&f.afi_safi.afi.to_be_bytes());
                    value.push(f.afi_safi.safi);
                    value.push(if f.forwarding_preserved { 0x80 } else { 0 });
                }
            }
            Self::FourOctetAs(asn) => value.extend_from_slice(&asn.to_be_bytes()),
            Self::Unknown { value: v, .. } => value.extend_from_slice(v),
        }
        let len =
            u8::try_from(value.len()).map_err(|_| EncodeError::CapabilityTooLong(self.code()))?;
        out.push(self.code());
        out.push(len);
        out.extend_from_slice(&value);
        Ok(())
    }
}

/// The graceful restart capability (RFC 4724 §3, N bit from RFC 8538).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct GracefulRestart {
    /// Restart State (R) bit: the sender has restarted.
    pub restarting: bool,
    /// Graceful Notification (N) bit (RFC 8538).
    pub notification: bool,
    /// Restart time in seconds, at most 4095.
    pub restart_time: u16,
    /// Families for which the sender can preserve forwarding state.
    pub families: Vec<GracefulRestartFamily>,
}

impl GracefulRestart {
    /// Largest restart time representable in the 12-bit field.
    pub const MAX_RESTART_TIME: u16 = 0x0fff;
}

/// One address family in the graceful restart capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GracefulRestartFamily {
    /// The address family.
    pub afi_safi: AfiSafi,
    /// Forwarding State (F) bit: forwarding state was preserved.
    pub forwarding_preserved: bool,
}
