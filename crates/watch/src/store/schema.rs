//! Opening the database: pragmas (WAL, incremental vacuum, journal size limit) and the schema.

use super::StoreError;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// Schema version stored in `PRAGMA user_version`. Version 3: syslog moved out to the log store
/// ([`crate::logstore`]); the `logs` table of versions 1 and 2 is migrated and dropped by the writer on open.
pub(crate) const VERSION: i64 = 3;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS flows (
    ts INTEGER NOT NULL, exporter TEXT NOT NULL, domain INTEGER NOT NULL, kind INTEGER NOT NULL,
    src TEXT, dst TEXT, sport INTEGER, dport INTEGER, proto INTEGER, tcp_flags INTEGER,
    bytes INTEGER NOT NULL, packets INTEGER NOT NULL, in_if INTEGER, out_if INTEGER,
    rate INTEGER NOT NULL, vlan INTEGER
);
-- Raw flows are appended in receive order; instead of an index on ts (which costs a fifth of the insert
-- time), a sparse index maps each receive minute to the rowids committed in it.
CREATE TABLE IF NOT EXISTS flow_blocks (
    minute INTEGER PRIMARY KEY, first_id INTEGER NOT NULL, last_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rollups (
    minute INTEGER NOT NULL, exporter TEXT NOT NULL, src TEXT NOT NULL, dst TEXT NOT NULL,
    sport INTEGER NOT NULL, dport INTEGER NOT NULL, proto INTEGER NOT NULL,
    in_if INTEGER NOT NULL, out_if INTEGER NOT NULL,
    bytes INTEGER NOT NULL, packets INTEGER NOT NULL, flows INTEGER NOT NULL,
    PRIMARY KEY (minute, exporter, src, dst, sport, dport, proto, in_if, out_if)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (
    ts INTEGER NOT NULL, exporter TEXT NOT NULL, if_index INTEGER NOT NULL, speed INTEGER NOT NULL,
    in_octets INTEGER NOT NULL, out_octets INTEGER NOT NULL, in_packets INTEGER NOT NULL,
    out_packets INTEGER NOT NULL, in_errors INTEGER NOT NULL, out_errors INTEGER NOT NULL,
    in_discards INTEGER NOT NULL, out_discards INTEGER NOT NULL, oper_up INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS counters_ts ON counters(ts);
"#;

/// Opens (creating if needed) the database for writing.
pub(crate) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // auto_vacuum must be chosen before the first table exists.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL in WAL mode: commits survive a process crash; a power loss may lose the last commits but never
    // corrupts the database.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // The WAL is truncated back to this size after checkpoints.
    conn.pragma_update(None, "journal_size_limit", 16 * 1024 * 1024)?;
    conn.pragma_update(None, "wal_autocheckpoint", 2000)?;
    conn.pragma_update(None, "cache_size", -16_000)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version < VERSION {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(SCHEMA)?;
        tx.pragma_update(None, "user_version", VERSION)?;
        tx.commit()?;
    }
    Ok(conn)
}

/// Opens the database read-only for queries (many at once; they never block the writer in WAL mode).
pub fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}
