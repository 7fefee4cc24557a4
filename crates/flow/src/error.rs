//! Error type shared by all decoders in this crate.

/// Why (part of) a datagram could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended before a structure was complete.
    #[error("truncated input: needed {needed} bytes at offset {offset}, {available} available")]
    Truncated {
        /// Offset (within the structure being decoded) where the read started.
        offset: usize,
        /// Bytes that were needed.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// The datagram announces a protocol version this decoder does not handle.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u32),
    /// A field holds a value that is not valid for it.
    #[error("invalid {what}: {value}")]
    Invalid {
        /// Which field.
        what: &'static str,
        /// The offending value.
        value: u64,
    },
    /// A configured safety limit was exceeded.
    #[error("limit exceeded: {what} is {value}, limit {limit}")]
    LimitExceeded {
        /// Which limit.
        what: &'static str,
        /// The value seen.
        value: u64,
        /// The configured limit.
        limit: u64,
    },
}
