//! Pure decoders for flow telemetry: sFlow v5, NetFlow v5, NetFlow v9 and IPFIX.
//!
//! Everything in this crate turns bytes into types. There is no I/O, no clock,
//! no logging and no async runtime: a collector daemon owns the sockets, the
//! queues and the storage, and hands each received datagram to [`sflow::decode`]
//! or [`netflow::decode`] together with the exporter address and (for the
//! template-based protocols) the current time as a plain number.
//!
//! Both protocol families map their flow data into the common
//! [`FlowRecord`] type so the collector can store them uniformly.
//!
//! Malformed input never panics: errors are returned as [`DecodeError`], and
//! problems inside one part of a packet (one sFlow sample, one NetFlow set)
//! are collected in the decoded packet instead of discarding the whole packet.

mod error;
pub mod netflow;
mod reader;
mod record;
pub mod sflow;

pub use error::DecodeError;
pub use record::{FlowProtocol, FlowRecord, MacAddr};
