//! UPDATE message (RFC 4271 §4.3) with RFC 7606 revised error handling:
//! decoding yields either a usable [`Update`] (possibly with discarded
//! attributes) or a [`TreatAsWithdraw`] listing the routes to withdraw.

use std::net::Ipv4Addr;

use ipnet::{Ipv4Net, Ipv6Net};

use super::afi::AfiSafi;
use super::attribute::{attr_flags, attr_type, MpReach, MpUnreach, PathAttributes};
use super::error::{ErrorAction, UpdateError, UpdateErrorKind};
use super::prefix;
use super::reader::Reader;
use super::{Context, EncodeError, Error};

/// An UPDATE message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Update {
    /// Withdrawn IPv4 unicast routes.
    pub withdrawn: Vec<Ipv4Net>,
    /// Path attributes (including MP_REACH_NLRI / MP_UNREACH_NLRI).
    pub attributes: PathAttributes,
    /// Announced IPv4 unicast routes (NLRI field).
    pub nlri: Vec<Ipv4Net>,
}

impl Update {
    /// The End-of-RIB marker for a family (RFC 4724 §2): an empty UPDATE for
    /// IPv4 unicast, otherwise an UPDATE holding only an empty
    /// MP_UNREACH_NLRI.
    pub fn end_of_rib(afi_safi: AfiSafi) -> Self {
        let mut update = Self::default();
        if afi_safi != AfiSafi::IPV4_UNICAST {
            update.attributes.mp_unreach = Some(MpUnreach::empty(afi_safi));
        }
        update
    }

    /// The family this UPDATE is an End-of-RIB marker for, if it is one.
    pub fn end_of_rib_family(&self) -> Option<AfiSafi> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        let only_unreach = PathAttributes {
            mp_unreach: self.attributes.mp_unreach.clone(),
            ..Default::default()
        };
        if self.attributes != only_unreach {
            return None;
        }
        match &self.attributes.mp_unreach {
            None => Some(AfiSafi::IPV4_UNICAST),
            Some(mp) if mp.is_empty() => Some(mp.afi_safi()),
            Some(_) => None,
        }
    }

    /// All IPv4 unicast prefixes announced (NLRI field and MP_REACH_NLRI).
    pub fn announced_ipv4(&self) -> impl Iterator<Item = &Ipv4Net> + '_ {
        let mp = match &self.attributes.mp_reach {
            Some(MpReach::Ipv4Unicast { nlri, .. }) => nlri.as_slice(),
            _ => &[],
        };
        self.nlri.iter().chain(mp)
    }

    /// All IPv4 unicast prefixes withdrawn (Withdrawn Routes field and
    /// MP_UNREACH_NLRI).
    pub fn withdrawn_ipv4(&self) -> impl Iterator<Item = &Ipv4Net> + '_ {
        let mp = match &self.attributes.mp_unreach {
            Some(MpUnreach::Ipv4Unicast(v)) => v.as_slice(),
            _ => &[],
        };
        self.withdrawn.iter().chain(mp)
    }

    /// IPv6 unicast prefixes announced in MP_REACH_NLRI.
    pub fn announced_ipv6(&self) -> &[Ipv6Net] {
        match &self.attributes.mp_reach {
            Some(MpReach::Ipv6Unicast { nlri, .. }) => nlri,
            _ => &[],
        }
    }

    /// IPv6 unicast prefixes withdrawn in MP_UNREACH_NLRI.
    pub fn withdrawn_ipv6(&self) -> &[Ipv6Net] {
        match &self.attributes.mp_unreach {
            Some(MpUnreach::Ipv6Unicast(v)) => v,
            _ => &[],
        }
    }

    pub(crate) fn encode_body(&self, ctx: &Context, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut field = Vec::new();
        for p in &self.withdrawn {
            prefix::encode_ipv4(p, &mut field);
        }
        let len =
            u16::try_from(field.len()).map_err(|_| EncodeError::MessageTooLong(field.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&field);
        field.clear();
        self.attributes.encode(ctx, &mut field)?;
        let len =
            u16::try_from(field.len()).map_err(|_| EncodeError::MessageTooLong(field.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&field);
        for p in &self.nlri {
            prefix::encode_ipv4(p, out);
        }
        Ok(())
    }

    pub(crate) fn decode(body: &[u8], ctx: &Context) -> Result<UpdateOutcome, Error> {
        use UpdateErrorKind::*;
        let malformed_list = || {
            Error::Update(UpdateError::new(
                MalformedAttributeList,
                ErrorAction::SessionReset,
                None,
                Vec::new(),
            ))
        };
        let invalid_network = || {
            Error::Update(UpdateError::new(
                InvalidNetworkField,
                ErrorAction::SessionReset,
                None,
                Vec::new(),
            ))
        };

        let mut r = Reader::new(body);
        let withdrawn_len = r.u16().ok_or_else(malformed_list)?;
        let withdrawn_field = r
            .take(usize::from(withdrawn_len))
            .ok_or_else(malformed_list)?;
        let attrs_len = r.u16().ok_or_else(malformed_list)?;
        let attrs_field = r.take(usize::from(attrs_len)).ok_or_else(malformed_list)?;
        let nlri_field = r.rest();

        // RFC 7606 §5.3: unparseable NLRI fields reset the session.
        let withdrawn = prefix::decode_ipv4(withdrawn_field).map_err(|_| invalid_network())?;
        let nlri = prefix::decode_ipv4(nlri_field).map_err(|_| invalid_network())?;

        let mut attributes = PathAttributes::default();
        let mut errors: Vec<UpdateError> = Vec::new();
        let mut seen = [false; 256];
        let mut next_hop_raw: Option<&[u8]> = None;
        let mut ar = Reader::new(attrs_field);
        while !ar.is_empty() {
            let start = ar.rest();
            let header = (ar.u8(), ar.u8());
            let (Some(flags), Some(type_code)) = header else {
                // RFC 7606 §4: too few octets left for an attribute header.
                errors.push(UpdateError::new(
                    MalformedAttributeList,
                    ErrorAction::TreatAsWithdraw,
                    None,
                    Vec::new(),
                ));
                break;
            };
            let len = if flags & attr_flags::EXTENDED_LENGTH != 0 {
                ar.u16()
            } else {
                ar.u8().map(u16::from)
            };
            let value = len.and_then(|len| ar.take(usize::from(len)));
            let Some(value) = value else {
                // RFC 7606 §4: the attribute overruns the attribute list.
                let kind = if len.is_some() {
                    AttributeLengthError
                } else {
                    MalformedAttributeList
                };
                errors.push(UpdateError::new(
                    kind,
                    ErrorAction::TreatAsWithdraw,
                    Some(type_code),
                    start.to_vec(),
                ));
                break;
            };
            let raw = start
                .get(..start.len().saturating_sub(ar.remaining()))
                .unwrap_or(start);

            let slot = &mut seen[usize::from(type_code)];
            if *slot {
                // RFC 7606 §3 (g): repeated MP attributes reset the session,
                // other repeats are discarded.
                if matches!(
                    type_code,
                    attr_type::MP_REACH_NLRI | attr_type::MP_UNREACH_NLRI
                ) {
                    return Err(malformed_list());
                }
                errors.push(UpdateError::new(
                    MalformedAttributeList,
                    ErrorAction::AttributeDiscard,
                    Some(type_code),
                    raw.to_vec(),
                ));
                continue;
            }
            *slot = true;
            if type_code == attr_type::NEXT_HOP {
                next_hop_raw = Some(raw);
            }
            if let Err(e) = attributes.decode_one(flags, type_code, value, raw, ctx) {
                if e.action == ErrorAction::SessionReset {
                    return Err(Error::Update(e));
                }
                errors.push(e);
            }
        }

        // Mandatory attributes (RFC 4271 §6.3, RFC 4760 §3; RFC 7606 §3 (d)
        // makes a missing one treat-as-withdraw). An attribute that was
        // already found malformed is not reported again as missing.
        let announces = !nlri.is_empty() || attributes.mp_reach.is_some();
        if announces {
            let mut required = vec![attr_type::ORIGIN, attr_type::AS_PATH];
            if !nlri.is_empty() {
                required.push(attr_type::NEXT_HOP);
            }
            for t in required {
                if !seen[usize::from(t)] {
                    errors.push(UpdateError::new(
                        MissingWellKnownAttribute,
                        ErrorAction::TreatAsWithdraw,
                        Some(t),
                        vec![t],
                    ));
                }
            }
        }
        // Semantic NEXT_HOP check (RFC 4271 §6.3, RFC 7606 §7.3): it must
        // be a plausible unicast host address when the NLRI field is used.
        if let (false, Some(nh)) = (nlri.is_empty(), attributes.next_hop) {
            if !is_unicast_host(nh) {
                errors.push(UpdateError::new(
                    InvalidNextHop,
                    ErrorAction::TreatAsWithdraw,
                    Some(attr_type::NEXT_HOP),
                    next_hop_raw.map(<[u8]>::to_vec).unwrap_or_default(),
                ));
            }
        }

        // Attribute order carries no meaning; keep unknown ones canonical.
        attributes.unknown.sort_by_key(|a| a.type_code);
        let update = Update {
            withdrawn,
            attributes,
            nlri,
        };
        if errors
            .iter()
            .any(|e| e.action == ErrorAction::TreatAsWithdraw)
        {
            return Ok(UpdateOutcome::TreatAsWithdraw(
                TreatAsWithdraw::from_update(update, errors),
            ));
        }
        Ok(UpdateOutcome::Update {
            update,
            discarded: errors,
        })
    }
}

fn is_unicast_host(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_multicast() || a.is_broadcast())
}

/// The result of decoding an UPDATE body.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// A usable UPDATE. `discarded` lists attributes dropped under the
    /// RFC 7606 "attribute discard" approach (and repeated attributes).
    Update {
        /// The decoded UPDATE.
        update: Update,
        /// Problems handled by discarding an attribute.
        discarded: Vec<UpdateError>,
    },
    /// The UPDATE must be handled as "treat-as-withdraw" (RFC 7606 §2).
    TreatAsWithdraw(TreatAsWithdraw),
}

/// An UPDATE that RFC 7606 says to treat as withdrawing every route it
/// carries. The session stays up; the listed routes must be removed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TreatAsWithdraw {
    /// IPv4 unicast prefixes to withdraw (withdrawn routes, NLRI field, and
    /// the IPv4 MP_REACH/MP_UNREACH NLRI).
    pub ipv4: Vec<Ipv4Net>,
    /// IPv6 unicast prefixes to withdraw (MP_REACH/MP_UNREACH NLRI).
    pub ipv6: Vec<Ipv6Net>,
    /// Every error found, strongest action first is not guaranteed; at
    /// least one has [`ErrorAction::TreatAsWithdraw`].
    pub errors: Vec<UpdateError>,
}

impl TreatAsWithdraw {
    fn from_update(update: Update, errors: Vec<UpdateError>) -> Self {
        let mut ipv4 = update.withdrawn;
        ipv4.extend(update.nlri);
        let mut ipv6 = Vec::new();
        match update.attributes.mp_reach {
            Some(MpReach::Ipv4Unicast { nlri, .. }) => ipv4.extend(nlri),
            Some(MpReach::Ipv6Unicast { nlri, .. }) => ipv6.extend(nlri),
            _ => {}
        }
        match update.attributes.mp_unreach {
            Some(MpUnreach::Ipv4Unicast(v)) => ipv4.extend(v),
            Some(MpUnreach::Ipv6Unicast(v)) => ipv6.extend(v),
            _ => {}
        }
        Self { ipv4, ipv6, errors }
    }

    /// The error that decided treat-as-withdraw (the first one with that
    /// action), e.g. for logging.
    pub fn reason(&self) -> Option<&UpdateError> {
        self.errors
            .iter()
            .find(|e| e.action == ErrorAction::TreatAsWithdraw)
    }
}
