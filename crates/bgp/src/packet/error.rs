//! Decode and encode errors, their mapping to NOTIFICATION code/subcode/data
//! (RFC 4271 §6) and their RFC 7606 error-handling classification.

use std::fmt;
use std::net::Ipv4Addr;

use super::notification::{
    code, header_subcode, open_subcode, route_refresh_subcode, update_subcode, Notification,
};
use super::BGP_VERSION;

/// A malformed message. Every variant maps to the exact NOTIFICATION that
/// RFC 4271 §6 (and RFC 5492, RFC 7313) require; see [`Error::to_notification`].
///
/// A session state machine sends that NOTIFICATION and closes the session.
/// UPDATE errors that RFC 7606 allows to be handled more gently never surface
/// as an `Error`: they are reported through
/// [`Decoded::TreatAsWithdraw`](super::Decoded::TreatAsWithdraw) or the
/// `discarded` list of [`Decoded::Message`](super::Decoded::Message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The marker is not all ones.
    #[error("message header error: connection not synchronized (marker is not all ones)")]
    ConnectionNotSynchronized,
    /// Length field out of 19..=4096 or wrong for the message type; carries the
    /// received length field.
    #[error("message header error: bad message length {0}")]
    BadMessageLength(u16),
    /// Unknown message type.
    #[error("message header error: bad message type {0}")]
    BadMessageType(u8),
    /// OPEN version other than 4.
    #[error("OPEN message error: unsupported version number {0}")]
    UnsupportedVersion(u8),
    /// Peer AS unacceptable (AS 0 per RFC 7607, or rejected by configuration).
    #[error("OPEN message error: bad peer AS {0}")]
    BadPeerAs(u32),
    /// BGP identifier unacceptable (zero, per RFC 6286).
    #[error("OPEN message error: bad BGP identifier {0}")]
    BadBgpIdentifier(Ipv4Addr),
    /// Optional parameter type other than Capabilities.
    #[error("OPEN message error: unsupported optional parameter type {0}")]
    UnsupportedOptionalParameter(u8),
    /// Hold time of 1 or 2 seconds.
    #[error("OPEN message error: unacceptable hold time {0}")]
    UnacceptableHoldTime(u16),
    /// Capabilities the speaker requires or refuses (RFC 5492 §5); carries
    /// the capabilities encoded as in an OPEN, for the NOTIFICATION data.
    /// Built by the session layer with [`Error::unsupported_capabilities`].
    #[error("OPEN message error: unsupported capability")]
    UnsupportedCapability(Vec<u8>),
    /// A recognised optional parameter or capability is malformed
    /// (OPEN Message Error, subcode 0 "unspecific").
    #[error("OPEN message error: malformed {0}")]
    MalformedOpen(&'static str),
    /// An UPDATE error that requires a session reset.
    #[error("UPDATE message error: {0}")]
    Update(UpdateError),
    /// ROUTE-REFRESH with a length other than 23 (RFC 7313); carries the
    /// whole message for the NOTIFICATION data.
    #[error("ROUTE-REFRESH message error: invalid message length {}", .0.len())]
    InvalidRouteRefreshLength(Vec<u8>),
}

impl Error {
    /// The NOTIFICATION error code.
    pub fn code(&self) -> u8 {
        match self {
            Self::ConnectionNotSynchronized
            | Self::BadMessageLength(_)
            | Self::BadMessageType(_) => code::MESSAGE_HEADER,
            Self::UnsupportedVersion(_)
            | Self::BadPeerAs(_)
            | Self::BadBgpIdentifier(_)
            | Self::UnsupportedOptionalParameter(_)
            | Self::UnacceptableHoldTime(_)
            | Self::UnsupportedCapability(_)
            | Self::MalformedOpen(_) => code::OPEN_MESSAGE,
            Self::Update(_) => code::UPDATE_MESSAGE,
            Self::InvalidRouteRefreshLength(_) => code::ROUTE_REFRESH_MESSAGE,
        }
    }

    /// The NOTIFICATION error subcode.
    pub fn subcode(&self) -> u8 {
        match self {
            Self::ConnectionNotSynchronized => header_subcode::CONNECTION_NOT_SYNCHRONIZED,
            Self::BadMessageLength(_) => header_subcode::BAD_MESSAGE_LENGTH,
            Self::BadMessageType(_) => header_subcode::BAD_MESSAGE_TYPE,
            Self::UnsupportedVersion(_) => open_subcode::UNSUPPORTED_VERSION_NUMBER,
            Self::BadPeerAs(_) => open_subcode::BAD_PEER_AS,
            Self::BadBgpIdentifier(_) => open_subcode::BAD_BGP_IDENTIFIER,
            Self::UnsupportedOptionalParameter(_) => open_subcode::UNSUPPORTED_OPTIONAL_PARAMETER,
            Self::UnacceptableHoldTime(_) => open_subcode::UNACCEPTABLE_HOLD_TIME,
            Self::UnsupportedCapability(_) => open_subcode::UNSUPPORTED_CAPABILITY,
            Self::MalformedOpen(_) => open_subcode::UNSPECIFIC,
            Self::Update(e) => e.kind.subcode(),
            Self::InvalidRouteRefreshLength(_) => route_refresh_subcode::INVALID_MESSAGE_LENGTH,
        }
    }

    /// The NOTIFICATION data field RFC 4271 §6 asks for.
    pub fn data(&self) -> Vec<u8> {
        match self {
            Self::BadMessageLength(len) => len.to_be_bytes().to_vec(),
            Self::BadMessageType(t) => vec![*t],
            Self::UnsupportedVersion(_) => u16::from(BGP_VERSION).to_be_bytes().to_vec(),
            Self::UnsupportedCapability(caps) => caps.clone(),
            Self::Update(e) => e.data.clone(),
            Self::InvalidRouteRefreshLength(msg) => msg.clone(),
            Self::ConnectionNotSynchronized
            | Self::BadPeerAs(_)
            | Self::BadBgpIdentifier(_)
            | Self::UnsupportedOptionalParameter(_)
            | Self::UnacceptableHoldTime(_)
            | Self::MalformedOpen(_) => Vec::new(),
        }
    }

    /// The NOTIFICATION to send to the peer for this error.
    pub fn to_notification(&self) -> Notification {
        Notification::new(self.code(), self.subcode(), self.data())
    }

    /// An Unsupported Capability error listing `caps` (RFC 5492 §5), for a
    /// session that requires capabilities the peer did not advertise.
    pub fn unsupported_capabilities(caps: &[super::Capability]) -> Self {
        let mut data = Vec::new();
        for cap in caps {
            // A capability whose value is too long to encode cannot have come
            // from the wire; it is left out of the diagnostic data.
            let _ = cap.encode(&mut data);
        }
        Self::UnsupportedCapability(data)
    }
}

impl From<UpdateError> for Error {
    fn from(e: UpdateError) -> Self {
        Self::Update(e)
    }
}

/// RFC 7606 §2 error-handling approaches, weakest first so that `max()`
/// picks the one to apply when several errors are present (§3 (i)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorAction {
    /// Discard the malformed attribute and keep processing the UPDATE.
    AttributeDiscard,
    /// Treat every route in the UPDATE as withdrawn.
    TreatAsWithdraw,
    /// Send a NOTIFICATION and reset the session.
    SessionReset,
}

/// The RFC 4271 §6.3 UPDATE Message Error subcode an error maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpdateErrorKind {
    /// Malformed Attribute List (subcode 1).
    MalformedAttributeList,
    /// Unrecognized Well-known Attribute (subcode 2).
    UnrecognizedWellKnownAttribute,
    /// Missing Well-known Attribute (subcode 3).
    MissingWellKnownAttribute,
    /// Attribute Flags Error (subcode 4).
    AttributeFlagsError,
    /// Attribute Length Error (subcode 5).
    AttributeLengthError,
    /// Invalid ORIGIN Attribute (subcode 6).
    InvalidOrigin,
    /// Invalid NEXT_HOP Attribute (subcode 8).
    InvalidNextHop,
    /// Optional Attribute Error (subcode 9).
    OptionalAttributeError,
    /// Invalid Network Field (subcode 10).
    InvalidNetworkField,
    /// Malformed AS_PATH (subcode 11).
    MalformedAsPath,
}

impl UpdateErrorKind {
    /// The UPDATE Message Error subcode.
    pub fn subcode(self) -> u8 {
        match self {
            Self::MalformedAttributeList => update_subcode::MALFORMED_ATTRIBUTE_LIST,
            Self::UnrecognizedWellKnownAttribute => {
                update_subcode::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE
            }
            Self::MissingWellKnownAttribute => update_subcode::MISSING_WELL_KNOWN_ATTRIBUTE,
            Self::AttributeFlagsError => update_subcode::ATTRIBUTE_FLAGS_ERROR,
            Self::AttributeLengthError => update_subcode::ATTRIBUTE_LENGTH_ERROR,
            Self::InvalidOrigin => update_subcode::INVALID_ORIGIN_ATTRIBUTE,
            Self::InvalidNextHop => update_subcode::INVALID_NEXT_HOP_ATTRIBUTE,
            Self::OptionalAttributeError => update_subcode::OPTIONAL_ATTRIBUTE_ERROR,
            Self::InvalidNetworkField => update_subcode::INVALID_NETWORK_FIELD,
            Self::MalformedAsPath => update_subcode::MALFORMED_AS_PATH,
        }
    }
}

impl fmt::Display for UpdateErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MalformedAttributeList => "malformed attribute list",
            Self::UnrecognizedWellKnownAttribute => "unrecognized well-known attribute",
            Self::MissingWellKnownAttribute => "missing well-known attribute",
            Self::AttributeFlagsError => "attribute flags error",
            Self::AttributeLengthError => "attribute length error",
            Self::InvalidOrigin => "invalid ORIGIN attribute",
            Self::InvalidNextHop => "invalid NEXT_HOP attribute",
            Self::OptionalAttributeError => "optional attribute error",
            Self::InvalidNetworkField => "invalid network field",
            Self::MalformedAsPath => "malformed AS_PATH",
        })
    }
}

/// One problem found in an UPDATE: the NOTIFICATION subcode and data
/// RFC 4271 §6.3 prescribes and the RFC 7606 approach that applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{kind}{}", attribute_suffix(*.attribute_type))]
pub struct UpdateError {
    /// Which UPDATE Message Error this is.
    pub kind: UpdateErrorKind,
    /// How RFC 7606 says to handle it.
    pub action: ErrorAction,
    /// The type code of the attribute concerned, if any.
    pub attribute_type: Option<u8>,
    /// NOTIFICATION data (e.g. the erroneous attribute, or the type code of
    /// a missing attribute); empty where RFC 4271 specifies none.
    pub data: Vec<u8>,
}

fn attribute_suffix(t: Option<u8>) -> String {
    t.map(|t| format!(" (attribute type {t})"))
        .unwrap_or_default()
}

impl UpdateError {
    pub(crate) fn new(
        kind: UpdateErrorKind,
        action: ErrorAction,
        attribute_type: Option<u8>,
        data: Vec<u8>,
    ) -> Self {
        Self {
            kind,
            action,
            attribute_type,
            data,
        }
    }

    /// The NOTIFICATION for this error (used when the session is reset, or
    /// by a speaker that does not implement RFC 7606).
    pub fn to_notification(&self) -> Notification {
        Notification::new(code::UPDATE_MESSAGE, self.kind.subcode(), self.data.clone())
    }
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message would exceed the 4096-octet maximum.
    #[error("message of {0} octets exceeds the 4096-octet maximum")]
    MessageTooLong(usize),
    /// A path attribute value exceeds 65535 octets.
    #[error("path attribute {0} is longer than 65535 octets")]
    AttributeTooLong(u8),
    /// A capability value exceeds 255 octets.
    #[error("capability {0} is longer than 255 octets")]
    CapabilityTooLong(u8),
    /// The optional parameters exceed the maximum encodable length.
    #[error("OPEN optional parameters are too long")]
    OptionalParametersTooLong,
    /// An AS_PATH segment is empty or holds more than 255 AS numbers.
    #[error("AS_PATH segment must hold 1..=255 AS numbers, has {0}")]
    InvalidAsPathSegment(usize),
    /// A field holds a value that cannot be represented on the wire.
    #[error("{0} is out of range")]
    OutOfRange(&'static str),
}
