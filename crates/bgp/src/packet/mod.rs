//! BGP-4 message codec (RFC 4271 §4) for stream buffers.
//!
//! [`decode`] takes the bytes received so far and returns one message and the
//! number of bytes it used, asks for more bytes, or reports an [`Error`] that
//! maps to the NOTIFICATION to send ([`Error::to_notification`]). UPDATE
//! decoding follows RFC 7606, so malformed attributes may produce
//! [`Decoded::TreatAsWithdraw`] instead of an error. [`Message::encode`]
//! writes a message. Both take a [`Context`] describing what the session
//! negotiated.

mod afi;
mod attribute;
mod error;
mod notification;
mod open;
mod prefix;
mod reader;
mod update;

pub use afi::{AfiSafi, AFI_IPV4, AFI_IPV6, SAFI_UNICAST};
pub use attribute::{
    attr_flags, attr_type, Aggregator, AsPath, AsSegment, AsSegmentType, Community, Ipv6NextHop,
    LargeCommunity, MpReach, MpUnreach, Origin, PathAttributes, RawAttribute,
};
pub use error::{EncodeError, Error, ErrorAction, UpdateError, UpdateErrorKind};
pub use notification::{
    cease_subcode, code, header_subcode, open_subcode, route_refresh_subcode, update_subcode,
    Notification,
};
pub use open::{
    capability_code, Capability, GracefulRestart, GracefulRestartFamily, Open, AS_TRANS,
};
pub use update::{TreatAsWithdraw, Update, UpdateOutcome};

use reader::Reader;

/// The BGP version this crate speaks.
pub const BGP_VERSION: u8 = 4;
/// Length of the common message header.
pub const HEADER_LEN: usize = 19;
/// Largest message allowed by RFC 4271.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// The all-ones marker that starts every message.
pub const MARKER: [u8; 16] = [0xff; 16];

/// Message type codes.
pub mod message_type {
    /// OPEN.
    pub const OPEN: u8 = 1;
    /// UPDATE.
    pub const UPDATE: u8 = 2;
    /// NOTIFICATION.
    pub const NOTIFICATION: u8 = 3;
    /// KEEPALIVE.
    pub const KEEPALIVE: u8 = 4;
    /// ROUTE-REFRESH (RFC 2918).
    pub const ROUTE_REFRESH: u8 = 5;
}

/// What the session has negotiated that changes the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Context {
    /// Both sides advertised the 4-octet AS capability (RFC 6793): AS_PATH
    /// and AGGREGATOR carry 4-octet AS numbers and AS4_* attributes are not
    /// used. `false` (the default) is right for the OPEN exchange.
    pub four_octet_as: bool,
}

impl Context {
    /// The context for a session after exchanging `local` and `remote` OPENs.
    pub fn negotiated(local: &Open, remote: &Open) -> Self {
        Self {
            four_octet_as: local.four_octet_as().is_some() && remote.four_octet_as().is_some(),
        }
    }
}

/// ROUTE-REFRESH message (RFC 2918; subtype from RFC 7313).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteRefresh {
    /// Family to refresh.
    pub afi_safi: AfiSafi,
    /// Message subtype: 0 normal request, 1 BoRR, 2 EoRR (RFC 7313).
    pub subtype: u8,
}

impl RouteRefresh {
    /// A plain route refresh request for `afi_safi`.
    pub fn new(afi_safi: AfiSafi) -> Self {
        Self {
            afi_safi,
            subtype: 0,
        }
    }
}

/// A BGP message.
// UPDATE is much larger than the other variants; messages are short-lived and
// boxing would make pattern matching in the session code clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE.
    Update(Update),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// The message type code.
    pub fn type_code(&self) -> u8 {
        match self {
            Self::Open(_) => message_type::OPEN,
            Self::Update(_) => message_type::UPDATE,
            Self::Notification(_) => message_type::NOTIFICATION,
            Self::Keepalive => message_type::KEEPALIVE,
            Self::RouteRefresh(_) => message_type::ROUTE_REFRESH,
        }
    }

    /// Append the encoded message to `out`. On error `out` is left as it was.
    pub fn encode(&self, ctx: &Context, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        let result = self.encode_inner(ctx, out, start);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn encode_inner(
        &self,
        ctx: &Context,
        out: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), EncodeError> {
        out.extend_from_slice(&MARKER);
        out.extend_from_slice(&[0, 0, self.type_code()]);
        match self {
            Self::Open(open) => open.encode_body(out)?,
            Self::Update(update) => update.encode_body(ctx, out)?,
            Self::Notification(n) => n.encode_body(out),
            Self::Keepalive => {}
            Self::RouteRefresh(rr) => {
                out.extend_from_slice(&rr.afi_safi.afi.to_be_bytes());
                out.push(rr.subtype);
                out.push(rr.afi_safi.safi);
            }
        }
        let len = out.len().saturating_sub(start);
        if len > MAX_MESSAGE_LEN {
            return Err(EncodeError::MessageTooLong(len));
        }
        let len = u16::try_from(len).map_err(|_| EncodeError::MessageTooLong(len))?;
        if let Some(field) = out.get_mut(start + 16..start + 18) {
            field.copy_from_slice(&len.to_be_bytes());
        }
        Ok(())
    }

    /// The encoded message as a new buffer.
    pub fn to_bytes(&self, ctx: &Context) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode(ctx, &mut out)?;
        Ok(out)
    }
}

impl From<Open> for Message {
    fn from(v: Open) -> Self {
        Self::Open(v)
    }
}

impl From<Update> for Message {
    fn from(v: Update) -> Self {
        Self::Update(v)
    }
}

impl From<Notification> for Message {
    fn from(v: Notification) -> Self {
        Self::Notification(v)
    }
}

impl From<RouteRefresh> for Message {
    fn from(v: RouteRefresh) -> Self {
        Self::RouteRefresh(v)
    }
}

impl From<&Error> for Message {
    /// The NOTIFICATION message for a decode error.
    fn from(e: &Error) -> Self {
        Self::Notification(e.to_notification())
    }
}

/// The outcome of [`decode`] on a stream buffer.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// The buffer holds no complete message yet; at least `needed` bytes in
    /// total are required before calling again.
    Incomplete {
        /// Total bytes needed from the start of the buffer.
        needed: usize,
    },
    /// A complete message.
    Message {
        /// The message.
        message: Message,
        /// Bytes of the buffer it occupied.
        consumed: usize,
        /// UPDATE problems handled by discarding attributes (RFC 7606
        /// "attribute discard"); worth logging, nothing else to do.
        discarded: Vec<UpdateError>,
    },
    /// An UPDATE to handle as "treat-as-withdraw" (RFC 7606): withdraw the
    /// listed routes and keep the session up.
    TreatAsWithdraw {
        /// Routes to withdraw and the errors found.
        withdraw: TreatAsWithdraw,
        /// Bytes of the buffer the message occupied.
        consumed: usize,
    },
}

/// Decode one message from the front of `buf`.
///
/// Returns [`Decoded::Incomplete`] while the buffer holds less than a whole
/// message; an `Err` means the session must send
/// [`Error::to_notification`] and close.
pub fn decode(buf: &[u8], ctx: &Context) -> Result<Decoded, Error> {
    let marker_part = buf.get(..MARKER.len()).unwrap_or(buf);
    if marker_part.iter().any(|b| *b != 0xff) {
        return Err(Error::ConnectionNotSynchronized);
    }
    let mut r = Reader::new(buf);
    let header = (r.take(MARKER.len()), r.u16(), r.u8());
    let (Some(_), Some(length), Some(type_code)) = header else {
        return Ok(Decoded::Incomplete { needed: HEADER_LEN });
    };
    let len = usize::from(length);
    if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&len) {
        return Err(Error::BadMessageLength(length));
    }
    let min_len = match type_code {
        message_type::OPEN => 29,
        message_type::UPDATE => 23,
        message_type::NOTIFICATION => 21,
        message_type::KEEPALIVE | message_type::ROUTE_REFRESH => HEADER_LEN,
        _ => return Err(Error::BadMessageType(type_code)),
    };
    if len < min_len || (type_code == message_type::KEEPALIVE && len != HEADER_LEN) {
        return Err(Error::BadMessageLength(length));
    }
    let Some(whole) = buf.get(..len) else {
        return Ok(Decoded::Incomplete { needed: len });
    };
    let body = whole.get(HEADER_LEN..).unwrap_or_default();
    let mut discarded = Vec::new();
    let message = match type_code {
        message_type::OPEN => Message::Open(Open::decode(body)?),
        message_type::UPDATE => match Update::decode(body, ctx)? {
            UpdateOutcome::Update {
                update,
                discarded: d,
            } => {
                discarded = d;
                Message::Update(update)
            }
            UpdateOutcome::TreatAsWithdraw(withdraw) => {
                return Ok(Decoded::TreatAsWithdraw {
                    withdraw,
                    consumed: len,
                });
            }
        },
        message_type::NOTIFICATION => Message::Notification(Notification::decode(body)?),
        message_type::KEEPALIVE => Message::Keepalive,
        _ => {
            // ROUTE-REFRESH: exactly 4 octets of body (RFC 2918, RFC 7313).
            let bytes: Option<[u8; 4]> = body.try_into().ok();
            let Some([afi_hi, afi_lo, subtype, safi]) = bytes else {
                return Err(Error::InvalidRouteRefreshLength(whole.to_vec()));
            };
            Message::RouteRefresh(RouteRefresh {
                afi_safi: AfiSafi::new(u16::from_be_bytes([afi_hi, afi_lo]), safi),
                subtype,
            })
        }
    };
    Ok(Decoded::Message {
        message,
        consumed: len,
        discarded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_round_trip() {
        let bytes = Message::Keepalive.to_bytes(&Context::default()).unwrap();
        let mut expected = vec![0xff; 16];
        expected.extend_from_slice(&[0, 19, 4]);
        assert_eq!(bytes, expected);
        let decoded = decode(&bytes, &Context::default()).unwrap();
        assert_eq!(
            decoded,
            Decoded::Message {
                message: Message::Keepalive,
                consumed: 19,
                discarded: vec![]
            }
        );
    }

    #[test]
    fn incomplete_input() {
        let bytes = Message::Keepalive.to_bytes(&Context::default()).unwrap();
        for n in 0..19 {
            let got = decode(&bytes[..n], &Context::default()).unwrap();
            assert_eq!(got, Decoded::Incomplete { needed: 19 });
        }
    }

    #[test]
    fn encode_failure_leaves_buffer_untouched() {
        let update = Update {
            nlri: vec!["10.0.0.0/24".parse().unwrap(); 2000],
            ..Default::default()
        };
        let mut out = vec![1, 2, 3];
        let err = Message::Update(update)
            .encode(&Context::default(), &mut out)
            .unwrap_err();
        assert!(matches!(err, EncodeError::MessageTooLong(_)));
        assert_eq!(out, [1, 2, 3]);
    }
}
