//! BFD Control packet codec (RFC 5880 §4.1 and §4.2), with the reception
//! checks of §6.8.6 that depend on the packet alone.
//!
//! [`ControlPacket::decode`] takes the UDP payload and either returns a
//! packet or the reason it must be discarded;
//! [`ControlPacket::encode`] writes one.

use std::fmt;

/// The BFD protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Length of a Control packet without authentication.
pub const MIN_LEN: usize = 24;
/// UDP destination port for single-hop BFD Control packets (RFC 5881).
pub const SINGLE_HOP_PORT: u16 = 3784;
/// UDP destination port for multihop BFD Control packets (RFC 5883).
pub const MULTI_HOP_PORT: u16 = 4784;

/// Session state (RFC 5880 §4.1 "Sta").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// AdminDown (0).
    AdminDown,
    /// Down (1).
    Down,
    /// Init (2).
    Init,
    /// Up (3).
    Up,
}

impl State {
    fn from_bits(v: u8) -> Self {
        match v & 0x3 {
            0 => Self::AdminDown,
            1 => Self::Down,
            2 => Self::Init,
            _ => Self::Up,
        }
    }

    fn bits(self) -> u8 {
        match self {
            Self::AdminDown => 0,
            Self::Down => 1,
            Self::Init => 2,
            Self::Up => 3,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AdminDown => "AdminDown",
            Self::Down => "Down",
            Self::Init => "Init",
            Self::Up => "Up",
        })
    }
}

/// Diagnostic code (RFC 5880 §4.1 "Diag").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Diagnostic {
    /// 0: No Diagnostic.
    #[default]
    None,
    /// 1: Control Detection Time Expired.
    ControlDetectionTimeExpired,
    /// 2: Echo Function Failed.
    EchoFunctionFailed,
    /// 3: Neighbor Signaled Session Down.
    NeighborSignaledSessionDown,
    /// 4: Forwarding Plane Reset.
    ForwardingPlaneReset,
    /// 5: Path Down.
    PathDown,
    /// 6: Concatenated Path Down.
    ConcatenatedPathDown,
    /// 7: Administratively Down.
    AdministrativelyDown,
    /// 8: Reverse Concatenated Path Down.
    ReverseConcatenatedPathDown,
    /// 9-31: reserved values, kept as received.
    Reserved(u8),
}

impl Diagnostic {
    /// The diagnostic for a 5-bit code.
    pub fn from_code(code: u8) -> Self {
        match code & 0x1f {
            0 => Self::None,
            1 => Self::ControlDetectionTimeExpired,
            2 => Self::EchoFunctionFailed,
            3 => Self::NeighborSignaledSessionDown,
            4 => Self::ForwardingPlaneReset,
            5 => Self::PathDown,
            6 => Self::ConcatenatedPathDown,
            7 => Self::AdministrativelyDown,
            8 => Self::ReverseConcatenatedPathDown,
            other => Self::Reserved(other),
        }
    }

    /// The 5-bit code (reserved values are masked to 5 bits).
    pub fn code(self) -> u8 {
        match self {
            Self::None => 0,
            Self::ControlDetectionTimeExpired => 1,
            Self::EchoFunctionFailed => 2,
            Self::NeighborSignaledSessionDown => 3,
            Self::ForwardingPlaneReset => 4,
            Self::PathDown => 5,
            Self::ConcatenatedPathDown => 6,
            Self::AdministrativelyDown => 7,
            Self::ReverseConcatenatedPathDown => 8,
            Self::Reserved(c) => c & 0x1f,
        }
    }
}

/// The P, F, C, D and M flag bits. The A bit is not stored here: it is set
/// exactly when [`ControlPacket::auth`] is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags {
    /// Poll (P): the sender asks for verification of a parameter change.
    pub poll: bool,
    /// Final (F): the response to a Poll.
    pub final_: bool,
    /// Control Plane Independent (C).
    pub control_plane_independent: bool,
    /// Demand (D): the sender wishes to use Demand mode.
    pub demand: bool,
    /// Multipoint (M): must be zero; packets with it set are rejected.
    pub multipoint: bool,
}

/// Flag bit masks in the second octet.
pub mod flag_bits {
    /// Poll.
    pub const P: u8 = 0x20;
    /// Final.
    pub const F: u8 = 0x10;
    /// Control Plane Independent.
    pub const C: u8 = 0x08;
    /// Authentication Present.
    pub const A: u8 = 0x04;
    /// Demand.
    pub const D: u8 = 0x02;
    /// Multipoint.
    pub const M: u8 = 0x01;
}

/// The authentication section (RFC 5880 §4.2-§4.4). This crate parses and
/// exposes it; verifying digests is left to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Authentication {
    /// Simple Password (type 1): 1 to 16 octets.
    SimplePassword {
        /// Key ID.
        key_id: u8,
        /// The password.
        password: Vec<u8>,
    },
    /// Keyed MD5 (type 2) or Meticulous Keyed MD5 (type 3).
    KeyedMd5 {
        /// Meticulous variant (type 3).
        meticulous: bool,
        /// Key ID.
        key_id: u8,
        /// Sequence number.
        sequence: u32,
        /// The digest.
        digest: [u8; 16],
    },
    /// Keyed SHA1 (type 4) or Meticulous Keyed SHA1 (type 5).
    KeyedSha1 {
        /// Meticulous variant (type 5).
        meticulous: bool,
        /// Key ID.
        key_id: u8,
        /// Sequence number.
        sequence: u32,
        /// The hash.
        hash: [u8; 20],
    },
    /// An authentication type this crate does not know, kept raw.
    Other {
        /// Auth Type.
        auth_type: u8,
        /// Everything after the Auth Len octet.
        data: Vec<u8>,
    },
}

impl Authentication {
    /// The Auth Type code.
    pub fn auth_type(&self) -> u8 {
        match self {
            Self::SimplePassword { .. } => 1,
            Self::KeyedMd5 {
                meticulous: false, ..
            } => 2,
            Self::KeyedMd5 {
                meticulous: true, ..
            } => 3,
            Self::KeyedSha1 {
                meticulous: false, ..
            } => 4,
            Self::KeyedSha1 {
                meticulous: true, ..
            } => 5,
            Self::Other { auth_type, .. } => *auth_type,
        }
    }

    fn decode(auth_type: u8, body: &[u8]) -> Result<Self, Error> {
        let bad = Error::BadAuthentication;
        Ok(match auth_type {
            1 => {
                let (key_id, password) = body.split_first().ok_or(bad)?;
                if password.is_empty() || password.len() > 16 {
                    return Err(bad);
                }
                Self::SimplePassword {
                    key_id: *key_id,
                    password: password.to_vec(),
                }
            }
            2 | 3 => {
                let [key_id, _reserved, s0, s1, s2, s3, digest @ ..] = body else {
                    return Err(bad);
                };
                Self::KeyedMd5 {
                    meticulous: auth_type == 3,
                    key_id: *key_id,
                    sequence: u32::from_be_bytes([*s0, *s1, *s2, *s3]),
                    digest: digest.try_into().map_err(|_| bad)?,
                }
            }
            4 | 5 => {
                let [key_id, _reserved, s0, s1, s2, s3, hash @ ..] = body else {
                    return Err(bad);
                };
                Self::KeyedSha1 {
                    meticulous: auth_type == 5,
                    key_id: *key_id,
                    sequence: u32::from_be_bytes([*s0, *s1, *s2, *s3]),
                    hash: hash.try_into().map_err(|_| bad)?,
                }
            }
            _ => Self::Other {
                auth_type,
                data: body.to_vec(),
            },
        })
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut body = Vec::new();
        match self {
            Self::SimplePassword { key_id, password } => {
                if password.is_empty() || password.len() > 16 {
                    return Err(EncodeError::PasswordLength(password.len()));
                }
                body.push(*key_id);
                body.extend_from_slice(password);
            }
            Self::KeyedMd5 {
                key_id,
                sequence,
                digest,
                ..
            } => {
                body.extend_from_slice(&[*key_id, 0]);
                body.extend_from_slice(&sequence.to_be_bytes());
                body.extend_from_slice(digest);
            }
            Self::KeyedSha1 {
                key_id,
                sequence,
                hash,
                ..
            } => {
                body.extend_from_slice(&[*key_id, 0]);
                body.extend_from_slice(&sequence.to_be_bytes());
                body.extend_from_slice(hash);
            }
            Self::Other { data, .. } => body.extend_from_slice(data),
        }
        let len = u8::try_from(body.len() + 2)
            .ok()
            .filter(|l| usize::from(*l) + MIN_LEN <= usize::from(u8::MAX))
            .ok_or(EncodeError::AuthenticationTooLong)?;
        out.push(self.auth_type());
        out.push(len);
        out.extend_from_slice(&body);
        Ok(())
    }
}

/// A BFD Control packet. Intervals are in microseconds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ControlPacket {
    /// Diagnostic code.
    pub diag: Diagnostic,
    /// Sender's session state.
    pub state: State,
    /// P, F, C, D, M flags.
    pub flags: Flags,
    /// Detection time multiplier (non-zero).
    pub detect_mult: u8,
    /// Sender's discriminator (non-zero).
    pub my_discriminator: u32,
    /// Receiver's discriminator as known to the sender, or zero.
    pub your_discriminator: u32,
    /// Desired Min TX Interval, µs.
    pub desired_min_tx: u32,
    /// Required Min RX Interval, µs.
    pub required_min_rx: u32,
    /// Required Min Echo RX Interval, µs (0: no echo).
    pub required_min_echo_rx: u32,
    /// Authentication section; its presence is the A bit.
    pub auth: Option<Authentication>,
}

/// Why a received packet must be discarded (RFC 5880 §6.8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// Fewer octets than the minimum packet.
    #[error("packet of {0} octets is too short")]
    TooShort(usize),
    /// Version other than 1.
    #[error("unsupported BFD version {0}")]
    UnsupportedVersion(u8),
    /// Length field below the minimum, above the payload, or inconsistent
    /// with the authentication section.
    #[error("bad length field {length} for a payload of {payload} octets")]
    BadLength {
        /// The Length field.
        length: u8,
        /// Octets received.
        payload: usize,
    },
    /// Detect Mult is zero.
    #[error("detect multiplier is zero")]
    ZeroDetectMult,
    /// The Multipoint bit is set.
    #[error("multipoint bit is set")]
    Multipoint,
    /// My Discriminator is zero.
    #[error("my discriminator is zero")]
    ZeroMyDiscriminator,
    /// Your Discriminator is zero while the state is Init or Up.
    #[error("your discriminator is zero in state {0}")]
    ZeroYourDiscriminator(State),
    /// The authentication section is malformed.
    #[error("malformed authentication section")]
    BadAuthentication,
}

/// Why a packet could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum EncodeError {
    /// Simple passwords are 1 to 16 octets.
    #[error("simple password of {0} octets (must be 1..=16)")]
    PasswordLength(usize),
    /// The authentication section does not fit the 8-bit length field.
    #[error("authentication section too long")]
    AuthenticationTooLong,
}

impl ControlPacket {
    /// A packet with no flags, no diagnostic and no authentication.
    pub fn new(state: State, my_discriminator: u32, your_discriminator: u32) -> Self {
        Self {
            diag: Diagnostic::None,
            state,
            flags: Flags::default(),
            detect_mult: 3,
            my_discriminator,
            your_discriminator,
            desired_min_tx: 1_000_000,
            required_min_rx: 1_000_000,
            required_min_echo_rx: 0,
            auth: None,
        }
    }

    /// Decode a packet from a UDP payload, applying the packet-only checks
    /// of RFC 5880 §6.8.6. Octets after the Length field are ignored.
    pub fn decode(buf: &[u8]) -> Result<Self, Error> {
        let fixed: [u8; MIN_LEN] = buf
            .get(..MIN_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(Error::TooShort(buf.len()))?;
        let [b0, b1, detect_mult, length, rest @ ..] = fixed;
        let word = |i: usize| -> u32 {
            let b = rest
                .get(i * 4..i * 4 + 4)
                .and_then(|s| <[u8; 4]>::try_from(s).ok())
                .unwrap_or_default();
            u32::from_be_bytes(b)
        };
        let version = b0 >> 5;
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let auth_present = b1 & flag_bits::A != 0;
        let min = if auth_present { MIN_LEN + 2 } else { MIN_LEN };
        let bad_length = Error::BadLength {
            length,
            payload: buf.len(),
        };
        if usize::from(length) < min || usize::from(length) > buf.len() {
            return Err(bad_length);
        }
        if !auth_present && usize::from(length) != MIN_LEN {
            return Err(bad_length);
        }
        if detect_mult == 0 {
            return Err(Error::ZeroDetectMult);
        }
        if b1 & flag_bits::M != 0 {
            return Err(Error::Multipoint);
        }
        let state = State::from_bits(b1 >> 6);
        let my_discriminator = word(0);
        let your_discriminator = word(1);
        if my_discriminator == 0 {
            return Err(Error::ZeroMyDiscriminator);
        }
        if your_discriminator == 0 && !matches!(state, State::Down | State::AdminDown) {
            return Err(Error::ZeroYourDiscriminator(state));
        }
        let auth = if auth_present {
            let section = buf.get(MIN_LEN..usize::from(length)).ok_or(bad_length)?;
            let [auth_type, auth_len, body @ ..] = section else {
                return Err(bad_length);
            };
            if usize::from(*auth_len) != section.len() {
                return Err(Error::BadAuthentication);
            }
            Some(Authentication::decode(*auth_type, body)?)
        } else {
            None
        };
        Ok(Self {
            diag: Diagnostic::from_code(b0),
            state,
            flags: Flags {
                poll: b1 & flag_bits::P != 0,
                final_: b1 & flag_bits::F != 0,
                control_plane_independent: b1 & flag_bits::C != 0,
                demand: b1 & flag_bits::D != 0,
                multipoint: false,
            },
            detect_mult,
            my_discriminator,
            your_discriminator,
            desired_min_tx: word(2),
            required_min_rx: word(3),
            required_min_echo_rx: word(4),
            auth,
        })
    }

    /// Append the encoded packet to `out`. Field values are written as
    /// given (the §6.8.6 checks are for received packets).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut auth = Vec::new();
        if let Some(a) = &self.auth {
            a.encode(&mut auth)?;
        }
        let length =
            u8::try_from(MIN_LEN + auth.len()).map_err(|_| EncodeError::AuthenticationTooLong)?;
        let f = &self.flags;
        let mut b1 = self.state.bits() << 6;
        for (set, bit) in [
            (f.poll, flag_bits::P),
            (f.final_, flag_bits::F),
            (f.control_plane_independent, flag_bits::C),
            (self.auth.is_some(), flag_bits::A),
            (f.demand, flag_bits::D),
            (f.multipoint, flag_bits::M),
        ] {
            if set {
                b1 |= bit;
            }
        }
        out.extend_from_slice(&[
            (VERSION << 5) | self.diag.code(),
            b1,
            self.detect_mult,
            length,
        ]);
        for w in [
            self.my_discriminator,
            self.your_discriminator,
            self.desired_min_tx,
            self.required_min_rx,
            self.required_min_echo_rx,
        ] {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out.extend_from_slice(&auth);
        Ok(())
    }

    /// The encoded packet as a new buffer.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(MIN_LEN);
        self.encode(&mut out)?;
        Ok(out)
    }
}
