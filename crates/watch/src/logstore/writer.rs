//! The log store writer: owned by one thread, it fills a block, appends it to the active segment when it holds
//! ~1 MiB or its first message is a second old, rolls segments, enforces retention, and on ENOSPC/EDQUOT stops
//! storing (dropping and counting) until a retry succeeds.

use super::codec::{self, BlockBuilder, FrameHeader, FRAME_HEADER};
use super::{
    list_segments, record_failure, record_success, Outage, Part, SharedUsage, SEGMENT_EXT,
};
use crate::metrics::{Deleted, Kind, Metrics};
use crate::store::{now_ms, LogRow, StoreMsg, StoreStatus, WriteFailure, WriterCmd, WriterLimits};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A block is written once it holds this many uncompressed bytes…
const BLOCK_BYTES: usize = 1 << 20;
/// …or its first message is this old (also the most a crash loses).
const BLOCK_AGE: Duration = Duration::from_secs(1);
/// A block holding at least this much is written as soon as input pauses for [`IDLE_PAUSE`], instead of
/// waiting out its second: the end of a burst becomes searchable (and counted as stored) at once, while a
/// trickle of messages still fills blocks for up to a second.
const IDLE_WRITE_MIN: usize = 64 * 1024;
/// How long input must pause for a block of at least [`IDLE_WRITE_MIN`] to be written early.
const IDLE_PAUSE: Duration = Duration::from_millis(20);
/// Messages of one block lie within this span of receive time.
const BLOCK_SPAN_MS: i64 = 1000;
/// Largest segment.
const SEGMENT_BYTES: u64 = 64 << 20;

#[derive(Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
    bytes: u64,
    t_min: i64,
    t_max: i64,
    /// Messages in the segment.
    rows: u64,
}

#[derive(Debug)]
struct Active {
    seg: Segment,
    file: File,
    /// No block written yet.
    empty: bool,
}

/// The log store writer (one per directory, owned by one thread).
#[derive(Debug)]
pub struct LogStore {
    dir: PathBuf,
    limits: WriterLimits,
    metrics: Arc<Metrics>,
    shared: Arc<SharedUsage>,
    block: BlockBuilder,
    block_started: Option<Instant>,
    /// Senders of the block's messages (for counting what a failed write drops), consecutive runs merged.
    block_peers: Vec<(IpAddr, u64)>,
    frame: Vec<u8>,
    closed: VecDeque<Segment>,
    active: Option<Active>,
    next_seq: u64,
    degraded: Option<Outage>,
    last_sync: Instant,
    last_retention: Instant,
    dirty: bool,
}

/// A block found by [`walk`]: its offset, header and summary.
pub(crate) type BlockAt = (u64, FrameHeader, codec::Summary);

/// Walks the frame headers and summaries of a segment file (seeking over payloads, no CRC check): what the
/// reader and the opening writer need to know of closed segments. Stops at the first frame that is incomplete.
pub(crate) fn walk(path: &Path) -> std::io::Result<(Vec<BlockAt>, u64)> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut out = Vec::new();
    let mut pos = 0u64;
    let mut hdr = [0u8; FRAME_HEADER];
    let mut sum = Vec::new();
    while pos + FRAME_HEADER as u64 <= len {
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut hdr)?;
        let Ok(h) = FrameHeader::decode(&hdr) else {
            break;
        };
        if pos + h.frame_len() as u64 > len {
            break;
        }
        sum.resize(h.summary_len, 0);
        f.read_exact(&mut sum)?;
        let Ok(s) = codec::Summary::decode(&sum) else {
            break;
        };
        out.push((pos, h, s));
        pos += h.frame_len() as u64;
    }
    Ok((out, pos))
}

impl LogStore {
    /// Opens (creating if needed) the log store in `dir`: cuts a torn tail off the newest segment, deletes empty
    /// segments, and starts a new segment for what comes.
    pub fn open(
        dir: &Path,
        limits: WriterLimits,
        metrics: Arc<Metrics>,
        shared: Arc<SharedUsage>,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let segs = list_segments(dir)?;
        let mut closed = VecDeque::new();
        let last = segs.len().saturating_sub(1);
        for (i, (seq, path)) in segs.iter().enumerate() {
            let (frames, valid) = if i == last {
                // The newest segment may end in a torn block: check every CRC and cut there.
                let mut bytes = Vec::new();
                File::open(path)?.read_to_end(&mut bytes)?;
                let (frames, valid) = codec::scan(&bytes);
                if valid < bytes.len() {
                    tracing::warn!(
                        segment = %path.display(),
                        cut_bytes = bytes.len() - valid,
                        "log segment ended in an incomplete or corrupted block; cut off"
                    );
                    OpenOptions::new()
                        .write(true)
                        .open(path)?
                        .set_len(valid as u64)?;
                }
                (
                    frames
                        .into_iter()
                        .map(|f| (f.offset as u64, f.header, f.summary))
                        .collect(),
                    valid as u64,
                )
            } else {
                walk(path)?
            };
            if frames.is_empty() {
                let _ = std::fs::remove_file(path);
                continue;
            }
            closed.push_back(Segment {
                seq: *seq,
                path: path.clone(),
                bytes: valid,
                t_min: frames.iter().map(|f| f.2.recv_min).min().unwrap_or(0),
                t_max: frames.iter().map(|f| f.2.recv_max).max().unwrap_or(0),
                rows: frames.iter().map(|f| u64::from(f.2.count)).sum(),
            });
        }
        let next_seq = segs.last().map_or(1, |(s, _)| s + 1);
        let s = Self {
            dir: dir.to_path_buf(),
            limits,
            metrics,
            shared,
            block: BlockBuilder::default(),
            block_started: None,
            block_peers: Vec::new(),
            frame: Vec::with_capacity(BLOCK_BYTES),
            closed,
            active: None,
            next_seq,
            degraded: None,
            last_sync: Instant::now(),
            last_retention: Instant::now(),
            dirty: false,
        };
        s.publish(now_ms());
        Ok(s)
    }

    /// The writer's state.
    pub fn status(&self) -> StoreStatus {
        match &self.degraded {
            None => StoreStatus::Writable,
            Some(d) => StoreStatus::Failing(d.failure),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Replaces the limits (on reload).
    pub fn set_limits(&mut self, limits: WriterLimits) {
        self.limits = limits;
    }

    /// Live bytes of all segments.
    pub fn bytes(&self) -> u64 {
        self.closed.iter().map(|s| s.bytes).sum::<u64>()
            + self.active.as_ref().map_or(0, |a| a.seg.bytes)
    }

    fn segment_limit(&self) -> u64 {
        (self.limits.max_bytes / 16).clamp(64 << 10, SEGMENT_BYTES)
    }

    fn block_limit(&self) -> usize {
        ((self.segment_limit() / 2) as usize).min(BLOCK_BYTES)
    }

    /// A segment covers at most this span of receive time (so age retention, which deletes whole segments,
    /// keeps at most ~1/24 of the window too much).
    fn segment_span_ms(&self) -> i64 {
        (self.limits.logs.as_millis() as i64 / 24).clamp(60_000, 3_600_000)
    }

    /// Adds messages (writing blocks as they fill).
    pub fn push_rows<'a>(&mut self, rows: impl IntoIterator<Item = &'a LogRow>) {
        for row in rows {
            if let Some(d) = &mut self.degraded {
                if Instant::now() < d.retry_at {
                    d.dropped += 1;
                    self.metrics.drop_n(
                        &self.metrics.exporters.label(row.peer),
                        "syslog",
                        "disk",
                        1,
                    );
                    continue;
                }
            }
            if !self.block.is_empty()
                && (row.received_ms - self.block.recv_min() > BLOCK_SPAN_MS
                    || self.block.recv_max() - row.received_ms > BLOCK_SPAN_MS)
            {
                self.write_block();
            }
            if self.block.is_empty() {
                self.block_started = Some(Instant::now());
            }
            self.block.push(row);
            match self.block_peers.last_mut() {
                Some((p, n)) if *p == row.peer => *n += 1,
                _ => self.block_peers.push((row.peer, 1)),
            }
            if self.block.len() >= self.block_limit() {
                self.write_block();
            }
        }
    }

    /// Adds a store message (only syslog messages are stored here; anything else is ignored).
    pub fn push(&mut self, msg: StoreMsg) {
        match msg {
            StoreMsg::Log(l) => self.push_rows(std::iter::once(&*l)),
            StoreMsg::Logs(mut b) => {
                b.ticket = None;
                self.push_rows(b.rows.iter());
            }
            _ => {}
        }
    }

    /// Writes the block being filled, if any.
    pub fn flush(&mut self) {
        self.write_block();
        self.sync();
    }

    fn sync(&mut self) {
        if self.dirty {
            if let Some(a) = &self.active {
                if let Err(e) = a.file.sync_data() {
                    tracing::warn!(error = %e, "log segment sync failed: the last second of syslog may not survive a crash");
                }
            }
            self.dirty = false;
            self.last_sync = Instant::now();
        }
    }

    fn write_block(&mut self) {
        if self.block.is_empty() {
            return;
        }
        let (t_min, t_max, count) = (
            self.block.recv_min(),
            self.block.recv_max(),
            self.block.count(),
        );
        self.frame.clear();
        self.block.finish_into(&mut self.frame, true);
        self.block_started = None;
        let peers = std::mem::take(&mut self.block_peers);
        let started = Instant::now();
        match self.append(t_min, t_max, count) {
            Ok(()) => {
                self.metrics
                    .store_commit_seconds
                    .observe(started.elapsed().as_secs_f64());
                self.metrics
                    .store_rows
                    .get_or_create(&Kind { kind: "logs" })
                    .inc_by(u64::from(count));
                record_success(&mut self.degraded, Part::Logs, &self.shared, &self.metrics);
                if self.last_sync.elapsed() >= BLOCK_AGE {
                    self.sync();
                }
                let total = self.bytes();
                self.shared.set_bytes(Part::Logs, total);
                if self.over_cap(0.9) {
                    self.enforce_size(now_ms());
                }
            }
            Err(e) => {
                for (p, n) in peers {
                    self.metrics
                        .drop_n(&self.metrics.exporters.label(p), "syslog", "disk", n);
                }
                record_failure(
                    &mut self.degraded,
                    &e,
                    WriteFailure::of_io(&e),
                    u64::from(count),
                    self.limits.retry_interval,
                    (Part::Logs, &self.dir),
                    &self.shared,
                    &self.metrics,
                );
            }
        }
    }

    /// Appends the frame in `self.frame` to the active segment (rolling first if due). On failure the segment is
    /// cut back to where it was, so a partial frame never stays.
    fn append(&mut self, t_min: i64, t_max: i64, count: u32) -> std::io::Result<()> {
        let span = self.segment_span_ms();
        let roll = self.active.as_ref().is_some_and(|a| {
            !a.empty
                && (a.seg.bytes + self.frame.len() as u64 > self.segment_limit()
                    || t_max - a.seg.t_min > span)
        });
        if roll {
            self.roll();
        }
        if self.active.is_none() {
            let seq = self.next_seq;
            let path = self.dir.join(format!("{seq:016}.{SEGMENT_EXT}"));
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            self.next_seq += 1;
            self.active = Some(Active {
                seg: Segment {
                    seq,
                    path,
                    bytes: 0,
                    t_min,
                    t_max,
                    rows: 0,
                },
                file,
                empty: true,
            });
        }
        let Some(a) = self.active.as_mut() else {
            return Ok(());
        };
        if let Err(e) = a.file.write_all(&self.frame) {
            // Never leave a partial frame behind (readers and the next open would stop there).
            if let Err(e2) = a.file.set_len(a.seg.bytes) {
                // The partial frame stays at this segment's end (readers stop there): continue in a new one.
                tracing::warn!(error = %e2, "could not cut a partial block off the log segment");
                if let Some(a) = self.active.take() {
                    if !a.empty {
                        self.closed.push_back(a.seg);
                    }
                }
            }
            return Err(e);
        }
        a.seg.bytes += self.frame.len() as u64;
        a.seg.rows += u64::from(count);
        if a.empty {
            a.seg.t_min = t_min;
            a.seg.t_max = t_max;
            a.empty = false;
        } else {
            a.seg.t_min = a.seg.t_min.min(t_min);
            a.seg.t_max = a.seg.t_max.max(t_max);
        }
        self.dirty = true;
        Ok(())
    }

    /// Closes the active segment (the next block starts a new one).
    fn roll(&mut self) {
        self.sync();
        if let Some(a) = self.active.take() {
            if a.empty {
                let _ = std::fs::remove_file(&a.seg.path);
            } else {
                self.closed.push_back(a.seg);
            }
        }
    }

    fn over_cap(&self, frac: f64) -> bool {
        let total = self.bytes() + self.shared.bytes(Part::Flows) + self.limits.wal_reserve_bytes();
        total as f64 > self.limits.max_bytes as f64 * frac
    }

    fn oldest_fraction(&self, now_ms: i64) -> f64 {
        let oldest = self.closed.front().map(|s| s.t_min).or_else(|| {
            self.active
                .as_ref()
                .filter(|a| !a.empty)
                .map(|a| a.seg.t_min)
        });
        oldest.map_or(0.0, |o| {
            (now_ms - o).max(1) as f64 / self.limits.logs.as_millis().max(1) as f64
        })
    }

    fn publish(&self, now_ms: i64) {
        let bytes = self.bytes();
        self.shared.set_bytes(Part::Logs, bytes);
        self.metrics
            .store_used_bytes
            .set((bytes + self.shared.bytes(Part::Flows)) as i64);
        self.shared
            .set_age(Part::Logs, self.oldest_fraction(now_ms));
    }

    fn delete_oldest(&mut self, reason: &'static str) -> bool {
        let Some(seg) = self.closed.pop_front() else {
            return false;
        };
        match std::fs::remove_file(&seg.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(error = %e, segment = %seg.path.display(), "could not delete a log segment");
                self.closed.push_front(seg);
                return false;
            }
        }
        tracing::debug!(segment = seg.seq, reason, "log segment deleted");
        self.metrics
            .retention_deleted
            .get_or_create(&Deleted {
                table: "logs",
                reason,
            })
            .inc_by(seg.rows);
        true
    }

    /// Deletes segments whose newest message is past the age limit.
    fn enforce_age(&mut self, now_ms: i64) {
        let cutoff = now_ms - self.limits.logs.as_millis() as i64;
        if self
            .active
            .as_ref()
            .is_some_and(|a| !a.empty && a.seg.t_max < cutoff)
        {
            self.roll();
        }
        while self.closed.front().is_some_and(|s| s.t_max < cutoff) {
            if !self.delete_oldest("age") {
                break;
            }
        }
    }

    /// While the whole store is over the cap and the logs' oldest data is further into its retention window than
    /// the flows' (or the flow store cannot give more), deletes the oldest segments down to 85 % of the cap.
    fn enforce_size(&mut self, now_ms: i64) {
        let mut deleted = false;
        for _ in 0..10_000 {
            if !self.over_cap(if deleted { 0.85 } else { 0.9 }) {
                break;
            }
            let flows_bytes = self.shared.bytes(Part::Flows);
            let give_way = flows_bytes < (64 << 10)
                || self.oldest_fraction(now_ms) >= self.shared.age(Part::Flows);
            if !give_way {
                break;
            }
            if self.closed.is_empty() {
                // Only the active segment is left and it alone is over: close it so that it can go.
                if self.active.as_ref().is_some_and(|a| !a.empty)
                    && self.bytes() > self.segment_limit()
                {
                    self.roll();
                } else {
                    break;
                }
            }
            if !self.delete_oldest("size") {
                break;
            }
            deleted = true;
        }
        if deleted {
            tracing::info!(
                max_bytes = self.limits.max_bytes,
                "retention by size removed the oldest log segments"
            );
        }
        self.publish(now_ms);
    }

    /// Age and size retention, and the size metrics.
    pub fn run_retention(&mut self, now_ms: i64) {
        self.enforce_age(now_ms);
        self.enforce_size(now_ms);
        self.publish(now_ms);
    }

    /// When the block being filled is due to be written (its first message a second old).
    pub fn due(&self) -> Option<Instant> {
        self.block_started
            .map(|t| t + BLOCK_AGE.min(self.limits.commit_interval))
    }

    /// Writes the block being filled if it is due.
    pub fn tick(&mut self) {
        if self.due().is_some_and(|d| Instant::now() >= d) {
            self.write_block();
        }
    }

    /// Runs until `rx` closes: stores what arrives, writes a block at least every second, runs retention every
    /// retention interval; writes what is pending before returning.
    pub fn run(mut self, rx: Receiver<WriterCmd>) {
        let mut last_data = Instant::now();
        loop {
            let now = Instant::now();
            let mut wake = self.last_retention + self.limits.retention_interval;
            if let Some(due) = self.due() {
                wake = wake.min(due);
            }
            if self.block.len() >= IDLE_WRITE_MIN {
                wake = wake.min(last_data + IDLE_PAUSE);
            }
            if self.dirty {
                // What was written gets synced within a second even when nothing follows it.
                wake = wake.min(self.last_sync + BLOCK_AGE);
            }
            match rx.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(WriterCmd::Data(m)) => {
                    self.push(m);
                    last_data = Instant::now();
                }
                Ok(WriterCmd::Limits(l)) => self.set_limits(l),
                Ok(WriterCmd::Flush(ack)) => {
                    self.flush();
                    let _ = ack.send(());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            if self.due().is_some_and(|d| now >= d)
                || (self.block.len() >= IDLE_WRITE_MIN && now >= last_data + IDLE_PAUSE)
            {
                self.write_block();
            }
            if self.dirty && now >= self.last_sync + BLOCK_AGE {
                self.sync();
            }
            if now >= self.last_retention + self.limits.retention_interval {
                self.last_retention = now;
                self.run_retention(now_ms());
            }
        }
        self.flush();
        tracing::info!("log store writer stopped");
    }
}

impl Drop for LogStore {
    fn drop(&mut self) {
        // What is pending is written on the way out (tests drop writers; the daemon's run() flushed already).
        self.write_block();
        self.sync();
    }
}
