//! The embedded flow store: one SQLite database in WAL mode holding raw flows, per-minute flow rollups and sFlow
//! interface counters. Syslog messages live beside it in the log store ([`crate::logstore`]); both share the
//! size cap, the status and the metrics defined here.
//!
//! Why SQLite for flows: one file with transactional commits (a crash loses at most the last commit interval
//! and never corrupts the file), concurrent readers while one writer appends (WAL), SQL aggregation for the
//! query API, incremental vacuum to hand freed pages back to the filesystem, and a distinct error code when the
//! disk is full — all in a library compiled into the binary (`bundled`).
//!
//! The [`Writer`] is owned by one thread: it batches what the decoders send, commits at least every
//! `commit_interval`, enforces retention by age and by size, and on ENOSPC/EDQUOT/I/O errors stops storing
//! (dropping and counting) until a retry succeeds.

pub mod query;
mod schema;
mod writer;

use std::net::IpAddr;

pub use schema::open_reader;
pub use writer::{flow_time, kind_code, now_ms, StoreStatus, Writer, WriterCmd, WriterLimits};

/// One message for the store writer.
#[derive(Debug, Clone)]
pub enum StoreMsg {
    /// Flow records decoded from one datagram.
    Flows {
        /// Receive time, Unix milliseconds.
        received_ms: i64,
        /// Exporter label (the datagram's source address).
        peer: IpAddr,
        /// The records.
        records: Vec<yagura_flow::FlowRecord>,
    },
    /// Interface counters from one sFlow datagram.
    Counters {
        /// Exporter label (the datagram's source address).
        peer: IpAddr,
        /// The counter rows.
        rows: Vec<CounterRow>,
    },
    /// One syslog message.
    Log(Box<LogRow>),
    /// Syslog messages parsed together (one TCP read's worth, from one sender).
    Logs(LogBatch),
}

/// Syslog rows that travel to the writer together (one queue hop for many messages).
#[derive(Debug, Clone, Default)]
pub struct LogBatch {
    /// The rows, in receive order.
    pub rows: Vec<LogRow>,
    /// Held while the batch waits in the store queue: the sender bounds how many batches it has in flight by
    /// the strong count of this `Arc` (the writer drops it on taking the batch).
    pub ticket: Option<std::sync::Arc<()>>,
}

impl StoreMsg {
    /// Rows this message adds (for batch sizing and drop counting).
    pub fn rows(&self) -> usize {
        match self {
            StoreMsg::Flows { records, .. } => records.len(),
            StoreMsg::Counters { rows, .. } => rows.len(),
            StoreMsg::Log(_) => 1,
            StoreMsg::Logs(b) => b.rows.len(),
        }
    }
}

/// One interface's counters from an sFlow counter sample (generic interface counters, format 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterRow {
    /// Receive time, Unix milliseconds.
    pub ts_ms: i64,
    /// sFlow agent address.
    pub exporter: IpAddr,
    /// ifIndex.
    pub if_index: u32,
    /// ifSpeed, bits/s.
    pub if_speed: u64,
    /// ifInOctets.
    pub in_octets: u64,
    /// ifOutOctets.
    pub out_octets: u64,
    /// In unicast + multicast + broadcast packets.
    pub in_packets: u64,
    /// Out unicast + multicast + broadcast packets.
    pub out_packets: u64,
    /// ifInErrors.
    pub in_errors: u32,
    /// ifOutErrors.
    pub out_errors: u32,
    /// ifInDiscards.
    pub in_discards: u32,
    /// ifOutDiscards.
    pub out_discards: u32,
    /// ifOperStatus up.
    pub oper_up: bool,
}

/// One syslog message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRow {
    /// Receive time, Unix milliseconds.
    pub received_ms: i64,
    /// The message's own timestamp, Unix milliseconds, if it had one.
    pub ts_ms: Option<i64>,
    /// Sender address.
    pub peer: IpAddr,
    /// `udp` or `tcp`.
    pub transport: &'static str,
    /// HOSTNAME.
    pub host: Option<String>,
    /// APP-NAME / TAG.
    pub app: Option<String>,
    /// PROCID / pid.
    pub proc_id: Option<String>,
    /// MSGID.
    pub msg_id: Option<String>,
    /// Facility code.
    pub facility: u8,
    /// Severity code.
    pub severity: u8,
    /// `rfc5424`, `rfc3164` or `unknown`.
    pub format: &'static str,
    /// True if the parser flagged anything malformed.
    pub malformed: bool,
    /// MSG text.
    pub msg: String,
    /// The raw line as received.
    pub raw: Vec<u8>,
}

/// Errors the store reports.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An SQLite error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The store directory could not be created.
    #[error("cannot create {path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the log store failed.
    #[error("log store: {0}")]
    Io(#[from] std::io::Error),
    /// A query parameter is invalid.
    #[error("{0}")]
    BadQuery(String),
}

/// What kind of failure a write met, for metrics and for deciding to back off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFailure {
    /// ENOSPC (SQLITE_FULL).
    DiskFull,
    /// EDQUOT and other write/fsync failures (SQLITE_IOERR_*), or a read-only file.
    Io,
    /// Anything else.
    Other,
}

impl WriteFailure {
    /// Classifies an SQLite error.
    pub fn of(e: &rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            Some(C::DiskFull) => Self::DiskFull,
            Some(C::SystemIoFailure | C::ReadOnly | C::CannotOpen) => Self::Io,
            _ => Self::Other,
        }
    }

    /// Classifies an I/O error of the log store's files (ENOSPC is a full disk; EDQUOT and other OS errors
    /// are I/O failures, as SQLite reports them).
    pub fn of_io(e: &std::io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::ENOSPC) => Self::DiskFull,
            Some(_) => Self::Io,
            None => Self::Other,
        }
    }

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::DiskFull => "disk_full",
            Self::Io => "io",
            Self::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::WriteFailure;
    use rusqlite::ffi;

    fn err(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    #[test]
    fn failures_are_classified() {
        // ENOSPC surfaces as SQLITE_FULL; EDQUOT (and other write errors) as SQLITE_IOERR_WRITE / _FSYNC.
        assert_eq!(
            WriteFailure::of(&err(ffi::SQLITE_FULL)),
            WriteFailure::DiskFull
        );
        assert_eq!(
            WriteFailure::of(&err(ffi::SQLITE_IOERR_WRITE)),
            WriteFailure::Io
        );
        assert_eq!(
            WriteFailure::of(&err(ffi::SQLITE_IOERR_FSYNC)),
            WriteFailure::Io
        );
        assert_eq!(
            WriteFailure::of(&err(ffi::SQLITE_READONLY)),
            WriteFailure::Io
        );
        assert_eq!(
            WriteFailure::of(&err(ffi::SQLITE_CONSTRAINT)),
            WriteFailure::Other
        );
    }
}
