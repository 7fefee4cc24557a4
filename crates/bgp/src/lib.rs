//! BGP-4 wire codec for yagura's `edge` daemon.
//!
//! This crate turns bytes into typed BGP messages and back. It does no I/O,
//! keeps no clock and logs nothing, so a session state machine can drive it
//! from any runtime. See [`packet`] for the entry points ([`packet::decode`]
//! and [`packet::Message::encode`]).

pub mod packet;

pub use packet::{decode, Context, Decoded, EncodeError, Error, Message};
