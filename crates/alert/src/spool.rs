//! The on-disk spool: every notification is written here before it is sent and removed only after the receiver
//! answered 2xx, so a notification survives a receiver that is down and a restart of the daemon.
//!
//! Layout: `SPOOL/<notifier>/<group-id>.json`, one file per receiver and group. Writes are atomic (temp file,
//! fsync, rename, fsync of the directory). Coalescing: a group has at most one pending notification per
//! receiver; a newer one replaces it through [`crate::policy::coalesce`] (the newer carries the group's whole
//! state; resolutions only the older one mentions are kept).

use crate::policy::{Notification, Snapshot};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One pending notification for one receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Format version (1).
    pub version: u32,
    /// Increases with every write for this receiver (newest wins when comparing).
    pub seq: u64,
    /// When it was first queued.
    pub queued: SystemTime,
    /// The notification.
    pub notification: Notification,
}

/// Why the spool could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file system error.
    #[error("alert spool {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The entry could not be encoded.
    #[error("alert spool: encoding: {0}")]
    Encode(#[from] serde_json::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// One receiver's spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

/// The file id of a group (16 hex digits of its key's hash).
pub fn file_id(group_key: &str) -> String {
    crate::payload::short_fingerprint(group_key)
}

impl Spool {
    /// Opens (creating) `root/<notifier>`.
    pub fn open(root: &Path, notifier: &str) -> Result<Self, SpoolError> {
        let dir = root.join(notifier);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every readable entry, oldest first. Unreadable files are renamed `*.bad` (kept for a human, logged) and
    /// leftover temp files from a crash are removed.
    pub fn load(&self) -> Result<Vec<Entry>, SpoolError> {
        let mut out = Vec::new();
        for de in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let de = de.map_err(io(&self.dir))?;
            let p = de.path();
            let name = de.file_name().to_string_lossy().to_string();
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(&p);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            let parsed = std::fs::read(&p)
                .ok()
                .and_then(|b| serde_json::from_slice::<Entry>(&b).ok());
            match parsed {
                Some(e) if file_id(&e.notification.group_key) == name.trim_end_matches(".json") => {
                    out.push(e)
                }
                _ => {
                    tracing::error!(file = %p.display(), "unreadable alert spool entry kept as .bad");
                    let _ = std::fs::rename(&p, p.with_extension("bad"));
                }
            }
        }
        out.sort_by_key(|e| e.seq);
        Ok(out)
    }

    /// Writes (or replaces) the entry of its group atomically.
    pub fn write(&self, e: &Entry) -> Result<(), SpoolError> {
        let id = file_id(&e.notification.group_key);
        let path = self.dir.join(format!("{id}.json"));
        let tmp = self.dir.join(format!("{id}.json.tmp"));
        let bytes = serde_json::to_vec(e)?;
        {
            let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(&bytes).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        self.sync_dir()
    }

    /// Removes the entry of a group (after a 2xx).
    pub fn remove(&self, group_key: &str) -> Result<(), SpoolError> {
        let path = self.dir.join(format!("{}.json", file_id(group_key)));
        match std::fs::remove_file(&path) {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn sync_dir(&self) -> Result<(), SpoolError> {
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))
    }
}

/// The file holding the dispatcher's [`Snapshot`] between a shutdown and the next start.
pub const STATE_FILE: &str = "state.json";

/// Writes the snapshot to `root/state.json` atomically (at shutdown).
pub fn save_snapshot(root: &Path, snap: &Snapshot) -> Result<(), SpoolError> {
    std::fs::create_dir_all(root).map_err(io(root))?;
    let path = root.join(STATE_FILE);
    let tmp = root.join("state.json.tmp");
    let bytes = serde_json::to_vec(snap)?;
    {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    std::fs::File::open(root)
        .and_then(|d| d.sync_all())
        .map_err(io(root))
}

/// Reads and removes `root/state.json` (at start; used once, so a crash later never resurrects it). An
/// unreadable file is renamed `state.bad` and logged.
pub fn take_snapshot(root: &Path) -> Option<Snapshot> {
    let path = root.join(STATE_FILE);
    let bytes = std::fs::read(&path).ok()?;
    match serde_json::from_slice::<Snapshot>(&bytes) {
        Ok(s) => {
            let _ = std::fs::remove_file(&path);
            Some(s)
        }
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "unreadable alert state kept as state.bad");
            let _ = std::fs::rename(&path, root.join("state.bad"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::collections::BTreeMap;

    fn entry(key: &str, seq: u64) -> Entry {
        Entry {
            version: 1,
            seq,
            queued: SystemTime::UNIX_EPOCH,
            notification: Notification {
                group_key: key.into(),
                group_labels: BTreeMap::new(),
                alerts: vec![],
            },
        }
    }

    #[test]
    fn write_replace_load_remove() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path(), "ops").unwrap();
        s.write(&entry("a", 1)).unwrap();
        s.write(&entry("b", 2)).unwrap();
        s.write(&entry("a", 3)).unwrap();
        std::fs::write(s.dir().join("junk.json"), b"{").unwrap();
        std::fs::write(s.dir().join("x.json.tmp"), b"{").unwrap();
        let l = s.load().unwrap();
        assert_eq!(l.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
        assert!(s.dir().join("junk.bad").exists());
        assert!(!s.dir().join("x.json.tmp").exists());
        s.remove("a").unwrap();
        s.remove("a").unwrap();
        assert_eq!(s.load().unwrap().len(), 1);
    }
}
