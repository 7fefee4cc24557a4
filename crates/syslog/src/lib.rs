//! Lenient syslog parsing: RFC 5424, RFC 3164 (BSD) with real-world variants,
//! and RFC 6587 TCP framing.
//!
//! This crate turns bytes into types: no I/O, no clock, no logging. The
//! caller passes the receive time explicitly (RFC 3164 timestamps have no
//! year, so it is inferred from the receive time).
//!
//! [`parse`] never fails: any input, including non-UTF-8 bytes, yields a
//! [`Message`] holding the raw bytes, whatever could be parsed, and
//! [`Anomalies`] flags saying what was malformed.
//!
//! ```
//! let m = yagura_syslog::parse(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed", 1_697_000_000);
//! assert_eq!(m.hostname.as_deref(), Some("mymachine"));
//! assert_eq!(m.app_name.as_deref(), Some("su"));
//! assert_eq!(m.severity, yagura_syslog::Severity::Critical);
//! ```

pub mod framing;
mod message;
mod priority;
pub mod rfc3164;
pub mod rfc5424;
mod timestamp;

pub use framing::{FrameDecoder, FramingError, FramingMode};
pub use message::{
    parse, parse_with, Anomalies, Format, Message, ParseOptions, SdElement, SdParam,
};
pub use priority::{Facility, Severity};
pub use timestamp::Timestamp;
