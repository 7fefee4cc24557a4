//! BFD (RFC 5880) building blocks for yagura's `edge` daemon.
//!
//! [`packet`] encodes and decodes BFD Control packets; [`fsm`] holds the
//! session state machine, detection time and Poll/Final logic as pure
//! functions and a timer-free [`fsm::Session`]. No I/O, no clock, no logging:
//! the daemon owns sockets and timers and feeds this crate values.

pub mod fsm;
pub mod packet;

pub use packet::{ControlPacket, Diagnostic, State};
