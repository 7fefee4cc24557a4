//! The SQLite store writer: batches, commits at least every `commit_interval`, rolls flows up per minute,
//! enforces retention by age and size, and survives a full disk (stop storing, count, log, retry, recover).
//! Syslog messages go to the log store ([`crate::logstore::LogStore`]), which a `Writer` opens beside its
//! database; the daemon runs it on its own thread ([`Writer::take_logs`]), tests may keep it inside.

use super::schema;
use super::{CounterRow, LogRow, StoreError, StoreMsg, WriteFailure};
use crate::logstore::{
    logs_dir, record_failure, record_success, LogStore, Outage, Part, SharedUsage,
};
use crate::metrics::{Deleted, Kind, Metrics};
use rusqlite::{params, Connection};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use yagura_flow::FlowRecord;

/// A batch is committed early when it holds this many rows.
const MAX_BATCH_ROWS: usize = 50_000;
/// With nothing queued, pending rows are committed once the last commit is this old (see [`Writer::run`]).
const IDLE_COMMIT_AFTER: Duration = Duration::from_millis(200);
/// Rows deleted per statement by retention (keeps each delete transaction small).
const DELETE_CHUNK: i64 = 20_000;

/// What the writer enforces; can change on reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterLimits {
    /// Cap on database + WAL bytes.
    pub max_bytes: u64,
    /// Store raw flow rows (rollups are always stored).
    pub raw_flows: bool,
    /// Age limit of raw flows.
    pub flows_raw: Duration,
    /// Age limit of rollups.
    pub flows_rollup: Duration,
    /// Age limit of syslog messages.
    pub logs: Duration,
    /// Age limit of interface counters.
    pub counters: Duration,
    /// Longest time between commits.
    pub commit_interval: Duration,
    /// How often retention runs.
    pub retention_interval: Duration,
    /// Back-off after a failed write.
    pub retry_interval: Duration,
}

impl WriterLimits {
    /// From the daemon config.
    pub fn from_config(c: &crate::config::WatchConfig) -> Self {
        Self {
            max_bytes: c.storage.max_size.0,
            raw_flows: c.storage.raw_flows,
            flows_raw: c.retention.flows_raw,
            flows_rollup: c.retention.flows_rollup,
            logs: c.retention.logs,
            counters: c.retention.counters,
            commit_interval: c.storage.commit_interval,
            retention_interval: c.storage.retention_interval,
            retry_interval: c.storage.retry_interval,
        }
    }

    /// Bytes kept free for the WAL inside the cap.
    fn wal_reserve(&self) -> u64 {
        (self.max_bytes / 4).min(16 << 20)
    }

    /// Bytes of live pages the database may hold.
    fn data_budget(&self) -> u64 {
        self.max_bytes - self.wal_reserve()
    }

    /// Bytes kept free for the WAL inside the cap (the log store counts them too).
    pub(crate) fn wal_reserve_bytes(&self) -> u64 {
        self.wal_reserve()
    }
}

/// Commands for the writer thread.
#[derive(Debug)]
pub enum WriterCmd {
    /// Data to store.
    Data(StoreMsg),
    /// New limits (reload).
    Limits(WriterLimits),
    /// Commit now and acknowledge (tests, drain).
    Flush(std::sync::mpsc::Sender<()>),
}

/// The writer's state as seen from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreStatus {
    /// Writes succeed.
    Writable,
    /// Writes fail; data is dropped and counted until a retry succeeds.
    Failing(WriteFailure),
}

/// The store writer (one per database, owned by one thread).
#[derive(Debug)]
pub struct Writer {
    conn: Connection,
    path: PathBuf,
    limits: WriterLimits,
    metrics: Arc<Metrics>,
    pending: Vec<StoreMsg>,
    pending_rows: usize,
    degraded: Option<Outage>,
    last_commit: Instant,
    last_retention: Instant,
    /// The log store, while this writer owns it (until [`Writer::take_logs`]).
    logs: Option<LogStore>,
    shared: Arc<SharedUsage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct RollKey {
    minute: i64,
    exporter: IpAddr,
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    sport: u16,
    dport: u16,
    proto: u8,
    in_if: u32,
    out_if: u32,
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The time a flow is filed under: its end time when the exporter sent a plausible one, else the receive time.
pub fn flow_time(r: &FlowRecord, received_ms: i64) -> i64 {
    match r.end_ms.and_then(|e| i64::try_from(e).ok()) {
        // Never after its receipt (the flow search and retention rely on it), at most an hour before.
        Some(e) if e <= received_ms && received_ms - e <= 3_600_000 => e,
        _ => received_ms,
    }
}

/// Addresses as text, formatted once per batch (talkers repeat a lot).
#[derive(Default)]
struct AddrText(HashMap<IpAddr, String>);

impl AddrText {
    fn add(&mut self, ip: Option<IpAddr>) {
        if let Some(ip) = ip {
            self.0
                .entry(ip)
                .or_insert_with(|| crate::metrics::canonical(ip).to_string());
        }
    }

    fn get(&self, ip: IpAddr) -> &str {
        self.0.get(&ip).map_or("", String::as_str)
    }
}

impl Writer {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(
        path: &Path,
        limits: WriterLimits,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StoreError> {
        let conn = schema::open_writer(path)?;
        metrics.store_writable.set(1);
        metrics.store_max_bytes.set(limits.max_bytes as i64);
        let shared = Arc::new(SharedUsage::default());
        let logs = LogStore::open(
            &logs_dir(path),
            limits.clone(),
            metrics.clone(),
            shared.clone(),
        )
        .map_err(|source| StoreError::Dir {
            path: logs_dir(path).display().to_string(),
            source,
        })?;
        let mut w = Self {
            conn,
            path: path.to_path_buf(),
            limits,
            metrics,
            pending: Vec::new(),
            pending_rows: 0,
            degraded: None,
            last_commit: Instant::now(),
            last_retention: Instant::now(),
            logs: Some(logs),
            shared,
        };
        w.migrate_logs()?;
        w.apply_wal_limits()?;
        w.update_size_metrics();
        Ok(w)
    }

    /// Moves syslog messages of a store from before the log store (schema versions 1 and 2: a `logs` table
    /// with a full-text index) into the log store, then drops those tables.
    fn migrate_logs(&mut self) -> Result<(), StoreError> {
        let has: Option<String> = self
            .conn
            .query_row(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'logs'",
                [],
                |r| r.get(0),
            )
            .ok();
        if has.is_none() {
            return Ok(());
        }
        let Some(logs) = self.logs.as_mut() else {
            return Ok(());
        };
        let mut moved = 0u64;
        {
            let mut st = self.conn.prepare(
                "SELECT received, ts, peer, transport, host, app, procid, msgid, facility, severity, format, \
                 malformed, msg, raw FROM logs ORDER BY id",
            )?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let peer: String = r.get(2)?;
                let transport: String = r.get(3)?;
                let format: String = r.get(10)?;
                let row = LogRow {
                    received_ms: r.get(0)?,
                    ts_ms: r.get(1)?,
                    peer: peer.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
                    transport: if transport == "tcp" { "tcp" } else { "udp" },
                    host: r.get(4)?,
                    app: r.get(5)?,
                    proc_id: r.get(6)?,
                    msg_id: r.get(7)?,
                    facility: r.get(8)?,
                    severity: r.get(9)?,
                    format: match format.as_str() {
                        "rfc5424" => "rfc5424",
                        "rfc3164" => "rfc3164",
                        _ => "unknown",
                    },
                    malformed: r.get(11)?,
                    msg: r.get(12)?,
                    raw: r.get(13)?,
                };
                logs.push_rows(std::iter::once(&row));
                moved += 1;
            }
        }
        logs.flush();
        self.conn.execute_batch(
            "BEGIN; DROP TABLE IF EXISTS logs_fts; DROP TABLE IF EXISTS logs; COMMIT;",
        )?;
        tracing::info!(
            messages = moved,
            "syslog messages moved from the database into the log store"
        );
        Ok(())
    }

    /// Hands the log store to its own thread (the daemon); syslog pushed here afterwards is dropped.
    pub fn take_logs(&mut self) -> Option<LogStore> {
        self.logs.take()
    }

    fn apply_wal_limits(&mut self) -> Result<(), StoreError> {
        let reserve = self.limits.wal_reserve();
        self.conn
            .pragma_update(None, "journal_size_limit", reserve as i64)?;
        let page: i64 = self
            .conn
            .pragma_query_value(None, "page_size", |r| r.get(0))?;
        let pages = ((reserve as i64 / 2) / page.max(512)).max(16);
        self.conn.pragma_update(None, "wal_autocheckpoint", pages)?;
        Ok(())
    }

    /// Replaces the limits (on reload).
    pub fn set_limits(&mut self, limits: WriterLimits) {
        if let Some(l) = &mut self.logs {
            l.set_limits(limits.clone());
        }
        self.limits = limits;
        self.metrics
            .store_max_bytes
            .set(self.limits.max_bytes as i64);
        if let Err(e) = self.apply_wal_limits() {
            tracing::warn!(error = %e, "could not apply WAL limits");
        }
    }

    /// The writer's state.
    pub fn status(&self) -> StoreStatus {
        match &self.degraded {
            None => StoreStatus::Writable,
            Some(d) => StoreStatus::Failing(d.failure),
        }
    }

    /// Queues a message; commits when the batch is large.
    pub fn push(&mut self, msg: StoreMsg) {
        if let StoreMsg::Log(_) | StoreMsg::Logs(_) = &msg {
            match &mut self.logs {
                Some(l) => l.push(msg),
                None => tracing::debug!("syslog message sent to the flow store writer; dropped"),
            }
            return;
        }
        self.pending_rows += msg.rows();
        self.pending.push(msg);
        if self.pending_rows >= MAX_BATCH_ROWS {
            self.flush();
        }
    }

    /// Runs the writer until `rx` is closed (all senders dropped), committing at least every commit interval
    /// and running retention every retention interval. Commits what is pending before returning.
    ///
    /// Group commit: while data keeps arriving, rows gather into large transactions; once the queue is empty,
    /// what is pending is committed as soon as the last commit is `IDLE_COMMIT_AFTER` (200 ms) old, so rows
    /// reach the store without waiting out the commit interval when input pauses.
    pub fn run(mut self, rx: Receiver<WriterCmd>) {
        loop {
            let cmd = match rx.try_recv() {
                Ok(c) => Some(c),
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    let idle_commit = self.last_commit + IDLE_COMMIT_AFTER;
                    if self.pending_rows > 0 && Instant::now() >= idle_commit {
                        self.flush();
                    }
                    let mut next_commit = self.last_commit + self.limits.commit_interval;
                    if self.pending_rows > 0 {
                        next_commit = next_commit.min(self.last_commit + IDLE_COMMIT_AFTER);
                    }
                    if let Some(due) = self.logs.as_ref().and_then(LogStore::due) {
                        next_commit = next_commit.min(due);
                    }
                    match rx.recv_timeout(next_commit.saturating_duration_since(Instant::now())) {
                        Ok(c) => Some(c),
                        Err(RecvTimeoutError::Timeout) => {
                            if self.pending_rows > 0 {
                                self.flush();
                            }
                            None
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            match cmd {
                Some(WriterCmd::Data(m)) => self.push(m),
                Some(WriterCmd::Limits(l)) => self.set_limits(l),
                Some(WriterCmd::Flush(ack)) => {
                    self.flush();
                    let _ = ack.send(());
                }
                None => {}
            }
            if let Some(l) = &mut self.logs {
                l.tick();
            }
            let now = Instant::now();
            if now >= self.last_commit + self.limits.commit_interval {
                self.flush();
            }
            if now >= self.last_retention + self.limits.retention_interval {
                self.last_retention = now;
                self.run_retention(now_ms());
            }
        }
        self.flush();
        if let Err(e) = checkpoint(&self.conn) {
            tracing::debug!(error = %e, "final checkpoint failed");
        }
        tracing::info!("store writer stopped");
    }

    /// Commits everything pending (or drops and counts it while the store is failing).
    pub fn flush(&mut self) {
        if let Some(l) = &mut self.logs {
            l.flush();
        }
        self.last_commit = Instant::now();
        if self.pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        self.pending_rows = 0;
        if let Some(d) = &mut self.degraded {
            if Instant::now() < d.retry_at {
                d.dropped += batch.iter().map(|m| m.rows() as u64).sum::<u64>();
                self.count_dropped(&batch);
                return;
            }
        }
        let started = Instant::now();
        match self.write(&batch) {
            Ok(()) => {
                self.metrics
                    .store_commit_seconds
                    .observe(started.elapsed().as_secs_f64());
                self.bound_wal();
                record_success(&mut self.degraded, Part::Flows, &self.shared, &self.metrics);
            }
            Err(e) => {
                let failure = WriteFailure::of(&e);
                self.count_dropped(&batch);
                let rows: u64 = batch.iter().map(|m| m.rows() as u64).sum();
                record_failure(
                    &mut self.degraded,
                    &e,
                    failure,
                    rows,
                    self.limits.retry_interval,
                    (Part::Flows, &self.path),
                    &self.shared,
                    &self.metrics,
                );
                if failure == WriteFailure::DiskFull {
                    // Free pages inside the file so that the next attempt can reuse them.
                    self.enforce_size(now_ms(), 0.7);
                }
            }
        }
    }

    fn count_dropped(&self, batch: &[StoreMsg]) {
        for m in batch {
            let (peer, input) = match m {
                StoreMsg::Flows { peer, .. } | StoreMsg::Counters { peer, .. } => (*peer, "flow"),
                StoreMsg::Log(l) => (l.peer, "syslog"),
                StoreMsg::Logs(b) => match b.rows.first() {
                    Some(l) => (l.peer, "syslog"),
                    None => continue,
                },
            };
            let n = m.rows() as u64;
            if n > 0 {
                self.metrics
                    .drop_n(&self.metrics.exporters.label(peer), input, "disk", n);
            }
        }
    }

    fn write(&mut self, batch: &[StoreMsg]) -> Result<(), rusqlite::Error> {
        let raw = self.limits.raw_flows;
        let tx = self.conn.transaction()?;
        let (mut n_flows, mut n_counters) = (0u64, 0u64);
        let mut rollups: HashMap<RollKey, (u64, u64, u64)> = HashMap::new();
        let mut names = AddrText::default();
        let mut raw_rows: Vec<RawRow<'_>> = Vec::new();
        {
            let mut ins_flow = tx.prepare_cached(
                "INSERT INTO flows (ts, exporter, domain, kind, src, dst, sport, dport, proto, tcp_flags, bytes, \
                 packets, in_if, out_if, rate, vlan) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)",
            )?;
            let mut ins_ctr = tx.prepare_cached(
                "INSERT INTO counters VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)",
            )?;
            for m in batch {
                match m {
                    StoreMsg::Flows {
                        received_ms,
                        records,
                        ..
                    } => {
                        for r in records {
                            let ts = flow_time(r, *received_ms);
                            let bytes = r.estimated_bytes().unwrap_or(0);
                            let packets = r.estimated_packets().unwrap_or(0);
                            let exporter = crate::metrics::canonical(r.exporter);
                            if raw {
                                names.add(Some(exporter));
                                names.add(r.src_addr);
                                names.add(r.dst_addr);
                                raw_rows.push(RawRow {
                                    ts,
                                    exporter,
                                    rec: r,
                                    bytes,
                                    packets,
                                });
                            }
                            let key = RollKey {
                                minute: ts - ts.rem_euclid(60_000),
                                exporter,
                                src: r.src_addr.map(crate::metrics::canonical),
                                dst: r.dst_addr.map(crate::metrics::canonical),
                                sport: r.src_port.unwrap_or(0),
                                dport: r.dst_port.unwrap_or(0),
                                proto: r.protocol.unwrap_or(0),
                                in_if: r.input_if.unwrap_or(0),
                                out_if: r.output_if.unwrap_or(0),
                            };
                            let e = rollups.entry(key).or_default();
                            e.0 = e.0.saturating_add(bytes);
                            e.1 = e.1.saturating_add(packets);
                            e.2 += 1;
                        }
                    }
                    StoreMsg::Counters { rows, .. } => {
                        for c in rows {
                            insert_counter(&mut ins_ctr, c)?;
                            n_counters += 1;
                        }
                    }
                    StoreMsg::Log(_) | StoreMsg::Logs(_) => {}
                }
            }
            // Raw flows go in FLOW_ROWS_PER_INSERT rows per statement (far fewer VM round trips per row).
            let mut many = tx.prepare_cached(&many_flows_sql())?;
            let mut chunks = raw_rows.chunks_exact(FLOW_ROWS_PER_INSERT);
            for chunk in &mut chunks {
                for (i, row) in chunk.iter().enumerate() {
                    bind_flow(&mut many, i * FLOW_COLUMNS, row, &names)?;
                }
                many.raw_execute()?;
            }
            for row in chunks.remainder() {
                bind_flow(&mut ins_flow, 0, row, &names)?;
                ins_flow.raw_execute()?;
            }
            n_flows += raw_rows.len() as u64;
            if !raw_rows.is_empty() {
                // Rows of one statement sequence get consecutive rowids (one writer, appends only).
                let last = tx.last_insert_rowid();
                let first = last - raw_rows.len() as i64 + 1;
                let newest = batch
                    .iter()
                    .filter_map(|m| match m {
                        StoreMsg::Flows { received_ms, .. } => Some(*received_ms),
                        _ => None,
                    })
                    .max()
                    .unwrap_or(0);
                tx.execute(
                    "INSERT INTO flow_blocks VALUES (?1, ?2, ?3) ON CONFLICT(minute) DO UPDATE SET \
                     first_id = MIN(first_id, excluded.first_id), last_id = MAX(last_id, excluded.last_id)",
                    params![newest - newest.rem_euclid(60_000), first, last],
                )?;
            }
            let mut up = tx.prepare_cached(
                "INSERT INTO rollups VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12) ON CONFLICT DO UPDATE SET \
                 bytes = bytes + excluded.bytes, packets = packets + excluded.packets, flows = flows + excluded.flows",
            )?;
            for (k, (b, p, f)) in &rollups {
                names.add(Some(k.exporter));
                names.add(k.src);
                names.add(k.dst);
                up.execute(params![
                    k.minute,
                    names.get(k.exporter),
                    k.src.map_or("", |a| names.get(a)),
                    k.dst.map_or("", |a| names.get(a)),
                    k.sport,
                    k.dport,
                    k.proto,
                    k.in_if,
                    k.out_if,
                    clamp(*b),
                    clamp(*p),
                    clamp(*f),
                ])?;
            }
        }
        tx.commit()?;
        for (table, n) in [
            ("flows", n_flows),
            ("rollups", rollups.len() as u64),
            ("counters", n_counters),
        ] {
            if n > 0 {
                self.metrics
                    .store_rows
                    .get_or_create(&Kind { kind: table })
                    .inc_by(n);
            }
        }
        Ok(())
    }

    /// Deletes data older than its age limit, then the oldest data while the store is over its size cap, and
    /// hands free pages back to the filesystem. Errors are logged (and counted), never fatal.
    pub fn run_retention(&mut self, now_ms: i64) {
        if let Some(l) = &mut self.logs {
            l.run_retention(now_ms);
        }
        if let Err(e) = self.enforce_age(now_ms) {
            self.note_retention_error(&e);
        }
        self.enforce_size(now_ms, 0.85);
        self.update_size_metrics();
    }

    fn note_retention_error(&self, e: &rusqlite::Error) {
        let f = WriteFailure::of(e);
        self.metrics
            .store_errors
            .get_or_create(&Kind { kind: f.label() })
            .inc();
        tracing::warn!(error = %e, "retention failed; will retry");
    }

    fn enforce_age(&mut self, now_ms: i64) -> Result<(), rusqlite::Error> {
        let l = self.limits.clone();
        for (table, col, age) in [
            ("flows", "ts", l.flows_raw),
            ("rollups", "minute", l.flows_rollup),
            ("counters", "ts", l.counters),
        ] {
            let cutoff = now_ms - age.as_millis() as i64;
            let n = self.delete_before(table, col, cutoff)?;
            if n > 0 {
                self.metrics
                    .retention_deleted
                    .get_or_create(&Deleted {
                        table,
                        reason: "age",
                    })
                    .inc_by(n);
                tracing::debug!(table, rows = n, "retention by age");
            }
        }
        Ok(())
    }

    /// Deletes rows of `table` with `col < cutoff`, in chunks; returns how many.
    fn delete_before(
        &mut self,
        table: &'static str,
        col: &str,
        cutoff: i64,
    ) -> Result<u64, rusqlite::Error> {
        let mut total = 0u64;
        loop {
            let tx = self.conn.transaction()?;
            let n = if table == "flows" {
                // Whole receive minutes that ended before the cutoff (a flow's time is never after its receipt).
                let upto: Option<i64> = tx.query_row(
                    "SELECT MAX(last_id) FROM flow_blocks WHERE minute + 60000 <= ?1",
                    params![cutoff],
                    |r| r.get(0),
                )?;
                let min: Option<i64> =
                    tx.query_row("SELECT MIN(rowid) FROM flows", [], |r| r.get(0))?;
                match (upto, min) {
                    (Some(upto), Some(min)) if min <= upto => {
                        let end = upto.min(min + DELETE_CHUNK - 1);
                        let n = tx.execute("DELETE FROM flows WHERE rowid <= ?1", params![end])?;
                        tx.execute("DELETE FROM flow_blocks WHERE last_id <= ?1", params![end])?;
                        n.max(1)
                    }
                    (Some(_), _) => {
                        tx.execute(
                            "DELETE FROM flow_blocks WHERE minute + 60000 <= ?1",
                            params![cutoff],
                        )?;
                        0
                    }
                    _ => 0,
                }
            } else if table == "rollups" {
                tx.execute(
                    "DELETE FROM rollups WHERE minute < ?1 AND minute IN \
                     (SELECT DISTINCT minute FROM rollups WHERE minute < ?1 ORDER BY minute LIMIT 5)",
                    params![cutoff],
                )?
            } else {
                tx.execute(
                    &format!(
                        "DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {col} < ?1 LIMIT ?2)"
                    ),
                    params![cutoff, DELETE_CHUNK],
                )?
            };
            tx.commit()?;
            total += n as u64;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// Live bytes (pages in use) of the database.
    fn used_bytes(&self) -> Result<u64, rusqlite::Error> {
        let page: i64 = self
            .conn
            .pragma_query_value(None, "page_size", |r| r.get(0))?;
        let count: i64 = self
            .conn
            .pragma_query_value(None, "page_count", |r| r.get(0))?;
        let free: i64 = self
            .conn
            .pragma_query_value(None, "freelist_count", |r| r.get(0))?;
        Ok(((count - free).max(0) * page) as u64)
    }

    /// While live data exceeds the budget, deletes the oldest slice of the table whose oldest row is furthest
    /// into its retention window (so every kind of data shrinks in proportion to how long it is kept), until
    /// it is under `target` × budget. Then returns free pages to the filesystem.
    fn enforce_size(&mut self, now_ms: i64, target: f64) {
        let budget = self.limits.data_budget();
        let mut deleted_any = false;
        for _round in 0..64 {
            // The log store's segments count against the same cap.
            let logs = self.shared.bytes(Part::Logs);
            let used = match self.used_bytes() {
                Ok(u) => u + logs,
                Err(e) => {
                    self.note_retention_error(&e);
                    return;
                }
            };
            let limit = if deleted_any || target < 0.85 {
                (budget as f64 * target) as u64
            } else {
                (budget as f64 * 0.9) as u64
            };
            if used <= limit {
                break;
            }
            // The data furthest into its retention window goes first: when that is the logs', the log store
            // (which sees the same totals) deletes its oldest segments, except when the disk is full.
            let yield_to_logs = target >= 0.85 && logs >= (64 << 10);
            match self.delete_oldest_slice(now_ms, yield_to_logs) {
                Ok(true) => deleted_any = true,
                Ok(false) => break,
                Err(e) => {
                    self.note_retention_error(&e);
                    break;
                }
            }
        }
        if deleted_any {
            tracing::info!(
                max_bytes = self.limits.max_bytes,
                "retention by size removed the oldest data"
            );
        }
        // Return free pages to the filesystem, a bounded amount at a time.
        if let Err(e) = self.incremental_vacuum(4096) {
            tracing::debug!(error = %e, "incremental vacuum failed");
        }
        if deleted_any {
            if let Err(e) = checkpoint(&self.conn) {
                tracing::debug!(error = %e, "checkpoint failed");
            }
        }
    }

    /// A large batch can grow the WAL past its share of the cap; checkpoint and truncate it then.
    fn bound_wal(&self) {
        let mut p = self.path.clone().into_os_string();
        p.push("-wal");
        let wal = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        if wal > self.limits.wal_reserve() {
            if let Err(e) = checkpoint(&self.conn) {
                tracing::debug!(error = %e, "checkpoint failed");
            }
        }
    }

    /// `PRAGMA incremental_vacuum` frees one page per step: step it to the end.
    fn incremental_vacuum(&self, pages: u32) -> Result<(), rusqlite::Error> {
        let mut st = self
            .conn
            .prepare(&format!("PRAGMA incremental_vacuum({pages})"))?;
        let mut rows = st.query([])?;
        while rows.next()?.is_some() {}
        Ok(())
    }

    /// The table whose oldest row is furthest into its retention window: (fraction, table, column, oldest).
    fn oldest_table(
        &self,
        now_ms: i64,
    ) -> Result<Option<(f64, &'static str, &'static str, i64)>, rusqlite::Error> {
        let l = self.limits.clone();
        let mut best: Option<(f64, &'static str, &'static str, i64)> = None;
        for (table, col, age) in [
            ("flows", "ts", l.flows_raw),
            ("rollups", "minute", l.flows_rollup),
            ("counters", "ts", l.counters),
        ] {
            let (min_table, min_col) = if table == "flows" {
                ("flow_blocks", "minute")
            } else {
                (table, col)
            };
            let oldest: Option<i64> = self.conn.query_row(
                &format!("SELECT MIN({min_col}) FROM {min_table}"),
                [],
                |r| r.get(0),
            )?;
            if let Some(o) = oldest {
                let frac = (now_ms - o).max(1) as f64 / age.as_millis().max(1) as f64;
                if best.is_none_or(|(f, ..)| frac > f) {
                    best = Some((frac, table, col, o));
                }
            }
        }
        Ok(best)
    }

    fn delete_oldest_slice(
        &mut self,
        now_ms: i64,
        yield_to_logs: bool,
    ) -> Result<bool, rusqlite::Error> {
        let Some((frac, table, col, oldest)) = self.oldest_table(now_ms)? else {
            return Ok(false);
        };
        if yield_to_logs && self.shared.age(Part::Logs) > frac {
            return Ok(false);
        }
        let span = (now_ms - oldest).max(0);
        let cutoff = oldest + (span / 10).max(60_000);
        let n = self.delete_before(table, col, cutoff)?;
        if n > 0 {
            self.metrics
                .retention_deleted
                .get_or_create(&Deleted {
                    table,
                    reason: "size",
                })
                .inc_by(n);
        }
        Ok(n > 0)
    }

    fn update_size_metrics(&self) {
        let mut file = 0u64;
        for suffix in ["", "-wal"] {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            if let Ok(md) = std::fs::metadata(&p) {
                file += md.len();
            }
        }
        let logs = self
            .logs
            .as_ref()
            .map_or_else(|| self.shared.bytes(Part::Logs), LogStore::bytes);
        self.metrics.store_file_bytes.set((file + logs) as i64);
        if let Ok(u) = self.used_bytes() {
            self.shared.set_bytes(Part::Flows, u);
            self.metrics.store_used_bytes.set((u + logs) as i64);
        }
        let age = self
            .oldest_table(now_ms())
            .ok()
            .flatten()
            .map_or(0.0, |b| b.0);
        self.shared.set_age(Part::Flows, age);
    }
}

const FLOW_COLUMNS: usize = 16;
const FLOW_ROWS_PER_INSERT: usize = 64;

/// One raw flow row waiting for insertion.
struct RawRow<'a> {
    ts: i64,
    exporter: IpAddr,
    rec: &'a FlowRecord,
    bytes: u64,
    packets: u64,
}

fn many_flows_sql() -> String {
    let one = format!("({})", vec!["?"; FLOW_COLUMNS].join(","));
    format!(
        "INSERT INTO flows (ts, exporter, domain, kind, src, dst, sport, dport, proto, tcp_flags, bytes, packets, \
         in_if, out_if, rate, vlan) VALUES {}",
        vec![one; FLOW_ROWS_PER_INSERT].join(",")
    )
}

/// Binds one raw flow at parameter offset `base` (0-based; parameters are 1-based).
fn bind_flow(
    st: &mut rusqlite::CachedStatement<'_>,
    base: usize,
    row: &RawRow<'_>,
    names: &AddrText,
) -> Result<(), rusqlite::Error> {
    let r = row.rec;
    st.raw_bind_parameter(base + 1, row.ts)?;
    st.raw_bind_parameter(base + 2, names.get(row.exporter))?;
    st.raw_bind_parameter(base + 3, r.observation_domain)?;
    st.raw_bind_parameter(base + 4, kind_code(r.protocol_source))?;
    st.raw_bind_parameter(base + 5, r.src_addr.map(|a| names.get(a)))?;
    st.raw_bind_parameter(base + 6, r.dst_addr.map(|a| names.get(a)))?;
    st.raw_bind_parameter(base + 7, r.src_port)?;
    st.raw_bind_parameter(base + 8, r.dst_port)?;
    st.raw_bind_parameter(base + 9, r.protocol)?;
    st.raw_bind_parameter(base + 10, r.tcp_flags)?;
    st.raw_bind_parameter(base + 11, clamp(row.bytes))?;
    st.raw_bind_parameter(base + 12, clamp(row.packets))?;
    st.raw_bind_parameter(base + 13, r.input_if)?;
    st.raw_bind_parameter(base + 14, r.output_if)?;
    st.raw_bind_parameter(base + 15, r.sampling_rate.unwrap_or(1))?;
    st.raw_bind_parameter(base + 16, r.vlan)?;
    Ok(())
}

/// Checkpoints the WAL into the database and truncates it.
fn checkpoint(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Numeric code of the wire protocol stored in `flows.kind`.
pub fn kind_code(p: yagura_flow::FlowProtocol) -> i64 {
    match p {
        yagura_flow::FlowProtocol::Sflow5 => 1,
        yagura_flow::FlowProtocol::NetflowV5 => 5,
        yagura_flow::FlowProtocol::NetflowV9 => 9,
        yagura_flow::FlowProtocol::Ipfix => 10,
    }
}

fn insert_counter(
    st: &mut rusqlite::CachedStatement<'_>,
    c: &CounterRow,
) -> Result<(), rusqlite::Error> {
    st.execute(params![
        c.ts_ms,
        crate::metrics::canonical(c.exporter).to_string(),
        c.if_index,
        clamp(c.if_speed),
        clamp(c.in_octets),
        clamp(c.out_octets),
        clamp(c.in_packets),
        clamp(c.out_packets),
        c.in_errors,
        c.out_errors,
        c.in_discards,
        c.out_discards,
        c.oper_up,
    ])?;
    Ok(())
}
