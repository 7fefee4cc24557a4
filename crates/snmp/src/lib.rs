//! SNMP interface polling for `yagura watch`: one device at a time over v2c or v3 ([`client`]), varbinds turned
//! into a typed [`Sample`] ([`table`], pure), counter deltas turned into rates with wrap, restart and
//! discontinuity handling ([`rate`], pure), and many devices polled at once with bounded concurrency and a
//! per-device deadline ([`poller`]).
//!
//! The wire protocol (BER, USM authentication and privacy) is the `snmp2` crate's; this crate adds walking,
//! timeouts and retries, and the meaning of the IF-MIB numbers.

pub mod client;
pub mod oid;
pub mod poller;
pub mod rate;
pub mod table;

pub use client::Client;
pub use rate::{counter_delta, IfRates, RateTracker, Rates};
pub use table::{Counter, Counters, Interface, Sample, Val};

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// SNMPv3 authentication protocol (USM HMAC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthProtocol {
    /// HMAC-MD5-96 (legacy).
    Md5,
    /// HMAC-SHA-96.
    Sha1,
    /// HMAC-SHA-224.
    Sha224,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-384.
    Sha384,
    /// HMAC-SHA-512.
    Sha512,
}

/// SNMPv3 privacy protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivProtocol {
    /// CBC-DES (legacy).
    Des,
    /// CFB128-AES-128 (RFC 3826).
    Aes128,
    /// AES-192 with Blumenthal key extension.
    Aes192,
    /// AES-256 with Blumenthal key extension.
    Aes256,
}

/// How to talk to a device. Secrets are held in memory only and never printed.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// SNMPv2c with a community string.
    V2c {
        /// The community.
        community: Vec<u8>,
    },
    /// SNMPv3 USM (authNoPriv or authPriv).
    V3 {
        /// The user name.
        user: String,
        /// Authentication protocol.
        auth: AuthProtocol,
        /// Authentication pass phrase.
        auth_password: Vec<u8>,
        /// Privacy protocol and pass phrase; `None` is authNoPriv.
        privacy: Option<(PrivProtocol, Vec<u8>)>,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V2c { .. } => f.write_str("V2c { community: <redacted> }"),
            Self::V3 {
                user,
                auth,
                privacy,
                ..
            } => f
                .debug_struct("V3")
                .field("user", user)
                .field("auth", auth)
                .field("privacy", &privacy.as_ref().map(|p| p.0))
                .finish_non_exhaustive(),
        }
    }
}

/// One device to poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Name used in metrics and alerts.
    pub name: String,
    /// Agent address and UDP port.
    pub addr: SocketAddr,
    /// Version and secrets.
    pub credentials: Credentials,
    /// Time to wait for one response.
    pub timeout: Duration,
    /// Extra attempts after a request timed out.
    pub retries: u32,
    /// GETBULK max-repetitions per column.
    pub max_repetitions: u32,
}

/// Why a poll failed.
#[derive(Debug, thiserror::Error)]
pub enum SnmpError {
    /// No response within the timeout, after every retry.
    #[error("no response within {timeout:?} ({attempts} attempts)")]
    Timeout {
        /// Per-attempt timeout.
        timeout: Duration,
        /// Attempts made.
        attempts: u32,
    },
    /// The whole poll exceeded its deadline.
    #[error("poll exceeded its deadline of {0:?}")]
    Deadline(Duration),
    /// A socket error.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// USM authentication or privacy failed (wrong user, pass phrase or protocol).
    #[error("SNMPv3 security: {0}")]
    Security(String),
    /// The agent answered with an error status.
    #[error("agent error status {status} at varbind {index}")]
    Agent {
        /// SNMP error-status.
        status: u32,
        /// SNMP error-index.
        index: u32,
    },
    /// A malformed or unexpected response.
    #[error("protocol: {0}")]
    Protocol(String),
}

impl SnmpError {
    /// A short, bounded reason for metrics: `timeout`, `socket`, `security`, `agent`, `protocol`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Timeout { .. } | Self::Deadline(_) => "timeout",
            Self::Io(_) => "socket",
            Self::Security(_) => "security",
            Self::Agent { .. } => "agent",
            Self::Protocol(_) => "protocol",
        }
    }
}
