//! The syslog store: messages appended to segment files in compressed, checksummed blocks, searched by scanning
//! (Loki-style: only low-cardinality fields are summarised per block — time range, hosts, apps, senders,
//! severities, facilities — and the text is matched by decompressing the blocks that may hold a match).
//!
//! Why not SQLite with a full-text index (the first design): one row plus index entries per message made the
//! single SQLite writer the limit at ~4 µs per message; appending a compressed block costs a fraction of that.
//! Flows stay in SQLite ([`crate::store`]); both share the `storage.max_size` cap and the store metrics.
//!
//! Layout: a directory beside the database ([`logs_dir`]: `watch.db` → `watch.db.logs/`) holding segments
//! `NNNNNNNNNNNNNNNN.ylog`, each a sequence of block frames ([`codec`]). A block holds ≤ 1 MiB or ≤ 1 s of
//! messages; a crash loses at most the block being filled, and a torn tail block is cut off on open (length +
//! CRC-32), never touching older blocks. Segments roll by size and time span; retention deletes whole
//! segments, oldest first, by age and by size.

pub mod codec;
pub mod search;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::metrics::{Kind, Metrics};
use crate::store::WriteFailure;

pub use writer::LogStore;

/// The log store directory of the database at `db`.
pub fn logs_dir(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_os_string();
    p.push(".logs");
    PathBuf::from(p)
}

/// Segment file extension.
pub(crate) const SEGMENT_EXT: &str = "ylog";

/// The segments of `dir` (sequence number, path), oldest first. A missing directory has none.
pub(crate) fn list_segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut v = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
        Err(e) => return Err(e),
    };
    for e in rd {
        let p = e?.path();
        if p.extension().and_then(|x| x.to_str()) != Some(SEGMENT_EXT) {
            continue;
        }
        if let Some(seq) = p
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u64>().ok())
        {
            v.push((seq, p));
        }
    }
    v.sort_unstable_by_key(|(s, _)| *s);
    Ok(v)
}

/// What the flow store (SQLite) and the log store tell each other to share one size cap and one
/// `store_writable` state: each publishes its live bytes and how far its oldest data is into its retention
/// window (the one further in gives way first, as tables did inside SQLite).
#[derive(Debug, Default)]
pub struct SharedUsage {
    flows_bytes: AtomicU64,
    logs_bytes: AtomicU64,
    flows_age: AtomicU64,
    logs_age: AtomicU64,
    failing: AtomicU8,
}

/// Which store, for [`SharedUsage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The SQLite flow store.
    Flows,
    /// The log store.
    Logs,
}

impl SharedUsage {
    /// Publishes a store's live bytes.
    pub fn set_bytes(&self, p: Part, n: u64) {
        match p {
            Part::Flows => self.flows_bytes.store(n, Ordering::Relaxed),
            Part::Logs => self.logs_bytes.store(n, Ordering::Relaxed),
        }
    }
    /// A store's live bytes.
    pub fn bytes(&self, p: Part) -> u64 {
        match p {
            Part::Flows => self.flows_bytes.load(Ordering::Relaxed),
            Part::Logs => self.logs_bytes.load(Ordering::Relaxed),
        }
    }
    /// Publishes how far (fraction of its retention, 0 when empty) a store's oldest data is.
    pub fn set_age(&self, p: Part, frac: f64) {
        let v = frac.max(0.0).to_bits();
        match p {
            Part::Flows => self.flows_age.store(v, Ordering::Relaxed),
            Part::Logs => self.logs_age.store(v, Ordering::Relaxed),
        }
    }
    /// A store's published age fraction.
    pub fn age(&self, p: Part) -> f64 {
        f64::from_bits(match p {
            Part::Flows => self.flows_age.load(Ordering::Relaxed),
            Part::Logs => self.logs_age.load(Ordering::Relaxed),
        })
    }
    /// Marks a store failing or writable; returns whether the whole store is writable now.
    pub fn set_failing(&self, p: Part, failing: bool) -> bool {
        let bit = match p {
            Part::Flows => 1u8,
            Part::Logs => 2u8,
        };
        let now = if failing {
            self.failing.fetch_or(bit, Ordering::Relaxed) | bit
        } else {
            self.failing.fetch_and(!bit, Ordering::Relaxed) & !bit
        };
        now == 0
    }
}

/// A store part's outage after a failed write (ENOSPC, EDQUOT, I/O): while it lasts, data is dropped and counted
/// until `retry_at`. Kept by the flow writer and the log store alike, so both report it the same way.
#[derive(Debug)]
pub(crate) struct Outage {
    /// What the first failed write was.
    pub(crate) failure: WriteFailure,
    /// When the next write is tried.
    pub(crate) retry_at: Instant,
    /// Rows dropped since the outage began.
    pub(crate) dropped: u64,
}

/// A write of `rows` of store `part` failed: counts the error, then extends the outage in `slot` or starts one
/// (logged once; `store_writable` and the shared state follow).
#[allow(clippy::too_many_arguments)] // one call site per store; a struct would only rename them
pub(crate) fn record_failure(
    slot: &mut Option<Outage>,
    error: &dyn std::fmt::Display,
    failure: WriteFailure,
    rows: u64,
    retry: Duration,
    (part, path): (Part, &Path),
    shared: &SharedUsage,
    metrics: &Metrics,
) {
    metrics
        .store_errors
        .get_or_create(&Kind {
            kind: failure.label(),
        })
        .inc();
    let retry_at = Instant::now() + retry;
    match slot {
        Some(o) => {
            o.dropped += rows;
            o.retry_at = retry_at;
            tracing::debug!(error = %error, store = ?part, "store still failing");
        }
        None => {
            tracing::error!(
                error = %error,
                kind = failure.label(),
                store = ?part,
                path = %path.display(),
                "store write failed: storing stopped (data is dropped and counted) until a retry succeeds"
            );
            *slot = Some(Outage {
                failure,
                retry_at,
                dropped: rows,
            });
            shared.set_failing(part, true);
            metrics.store_writable.set(0);
        }
    }
}

/// A write of store `part` succeeded: ends the outage in `slot`, if any (logged with what it dropped).
pub(crate) fn record_success(
    slot: &mut Option<Outage>,
    part: Part,
    shared: &SharedUsage,
    metrics: &Metrics,
) {
    if let Some(o) = slot.take() {
        tracing::info!(dropped_rows = o.dropped, store = ?part, "store writable again; storing resumed");
        if shared.set_failing(part, false) {
            metrics.store_writable.set(1);
        }
    }
}

#[cfg(test)]
mod tests;
