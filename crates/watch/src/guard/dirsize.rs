//! Incremental size of a directory tree, for the disk guard's `budget`: the first measurement walks the tree
//! and puts an inotify watch on every directory; later ones re-read only the directories the kernel reported
//! changes in (a file written, created, removed or renamed), so an unchanged tree is not walked again. Without
//! inotify (or after the kernel's event queue overflowed) it falls back to a full walk.
//!
//! Sizes are allocated bytes (`st_blocks × 512`), what quotas charge, not apparent lengths.

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Default)]
struct DirState {
    /// Allocated bytes of the directory's own entries that are not directories (and of the directory itself).
    bytes: u64,
    subdirs: Vec<PathBuf>,
    wd: Option<WatchDescriptor>,
}

/// Measures one directory tree incrementally.
#[derive(Debug)]
pub struct DirMeter {
    root: PathBuf,
    dirs: HashMap<PathBuf, DirState>,
    wds: HashMap<WatchDescriptor, PathBuf>,
    inotify: Option<Inotify>,
    inotify_failed: bool,
    max_dirs: usize,
    /// Directories read so far (a full walk reads all of them; an incremental pass only the changed ones).
    pub dirs_read: u64,
    /// Full walks so far.
    pub full_walks: u64,
}

const WATCH: AddWatchFlags = AddWatchFlags::IN_MODIFY
    .union(AddWatchFlags::IN_ATTRIB)
    .union(AddWatchFlags::IN_CREATE)
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_DELETE_SELF)
    .union(AddWatchFlags::IN_MOVE_SELF)
    .union(AddWatchFlags::IN_ONLYDIR);

impl DirMeter {
    /// A meter for the tree under `root` that watches at most `max_dirs` directories; subtrees past that are
    /// counted as of the last walk of their parent (the caller's periodic [`DirMeter::full_walk`] catches up).
    pub fn new(root: impl Into<PathBuf>, max_dirs: usize) -> Self {
        Self {
            root: root.into(),
            dirs: HashMap::new(),
            wds: HashMap::new(),
            inotify: None,
            inotify_failed: false,
            max_dirs: max_dirs.max(1),
            dirs_read: 0,
            full_walks: 0,
        }
    }

    /// Whether changes are followed with inotify (otherwise every measurement is a full walk).
    pub fn incremental(&self) -> bool {
        self.inotify.is_some()
    }

    /// The tree's allocated bytes now.
    pub fn measure(&mut self) -> io::Result<u64> {
        if self.dirs.is_empty() || self.inotify.is_none() {
            return self.full_walk();
        }
        let mut dirty: HashSet<PathBuf> = HashSet::new();
        if let Some(ino) = &self.inotify {
            loop {
                match ino.read_events() {
                    Ok(events) if events.is_empty() => break,
                    Ok(events) => {
                        for e in events {
                            if e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                                return self.full_walk();
                            }
                            if e.mask.contains(AddWatchFlags::IN_IGNORED) {
                                self.wds.remove(&e.wd);
                                continue;
                            }
                            if let Some(dir) = self.wds.get(&e.wd) {
                                dirty.insert(dir.clone());
                            }
                        }
                    }
                    Err(nix::errno::Errno::EAGAIN) => break,
                    Err(_) => return self.full_walk(),
                }
            }
        }
        // Parents first, so a removed subtree is dropped before its children would be re-read.
        let mut dirty: Vec<PathBuf> = dirty.into_iter().collect();
        dirty.sort_by_key(|p| p.components().count());
        for d in dirty {
            if self.dirs.contains_key(&d) {
                for new in self.reread(&d) {
                    self.add_tree(&new);
                }
            }
        }
        if !self.root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is not a directory", self.root.display()),
            ));
        }
        Ok(self.total())
    }

    fn total(&self) -> u64 {
        self.dirs.values().map(|d| d.bytes).sum()
    }

    /// Forgets everything and walks the whole tree again.
    pub fn full_walk(&mut self) -> io::Result<u64> {
        self.full_walks += 1;
        self.dirs.clear();
        self.wds.clear();
        self.inotify = None;
        if !self.inotify_failed {
            match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
                Ok(i) => self.inotify = Some(i),
                Err(e) => {
                    self.inotify_failed = true;
                    tracing::warn!(error = %e, root = %self.root.display(), "no inotify: the budget directory is walked in full every time");
                }
            }
        }
        let meta = std::fs::symlink_metadata(&self.root)?;
        if !meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", self.root.display()),
            ));
        }
        let root = self.root.clone();
        self.add_tree(&root);
        Ok(self.total())
    }

    /// Reads `dir` and every directory below it that is not tracked yet.
    fn add_tree(&mut self, dir: &Path) {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let new = self.reread(&d);
            stack.extend(new);
        }
    }

    /// Re-reads one directory: its entries' sizes and subdirectories. Subdirectories that vanished are dropped
    /// with their subtree; new ones are returned (and read, when called from `measure`).
    fn reread(&mut self, dir: &Path) -> Vec<PathBuf> {
        self.dirs_read += 1;
        let mut bytes = std::fs::symlink_metadata(dir)
            .map(|m| m.blocks() * 512)
            .unwrap_or(0);
        let mut subdirs = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for entry in rd.flatten() {
                let Ok(meta) = entry.metadata() else {
                    continue; // removed meanwhile: the next event re-reads this directory
                };
                if meta.is_dir() {
                    subdirs.push(entry.path());
                } else {
                    bytes += meta.blocks() * 512;
                }
            }
        }
        let known = self.dirs.len();
        let state = self.dirs.entry(dir.to_path_buf()).or_default();
        if state.wd.is_none() && known < self.max_dirs {
            if let Some(ino) = &self.inotify {
                if let Ok(wd) = ino.add_watch(dir, WATCH) {
                    state.wd = Some(wd);
                    self.wds.insert(wd, dir.to_path_buf());
                }
            }
        }
        let old: HashSet<PathBuf> = state.subdirs.iter().cloned().collect();
        let now: HashSet<PathBuf> = subdirs.iter().cloned().collect();
        state.bytes = bytes;
        state.subdirs = subdirs;
        let watched = state.wd.is_some();
        for gone in old.difference(&now) {
            self.drop_tree(gone);
        }
        let mut new: Vec<PathBuf> = now
            .into_iter()
            .filter(|p| !self.dirs.contains_key(p))
            .collect();
        if !watched {
            // An unwatched directory (past `max_dirs`): its subtree cannot be followed, so it is read again in
            // full; fold its size into this entry so nothing is lost.
            let mut extra = 0;
            for p in new.drain(..) {
                extra += walk_bytes(&p);
            }
            if let Some(s) = self.dirs.get_mut(dir) {
                s.bytes += extra;
                s.subdirs.clear();
            }
            return Vec::new();
        }
        new
    }

    fn drop_tree(&mut self, dir: &Path) {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            if let Some(s) = self.dirs.remove(&d) {
                if let (Some(wd), Some(ino)) = (s.wd, &self.inotify) {
                    self.wds.remove(&wd);
                    let _ = ino.rm_watch(wd);
                }
                stack.extend(s.subdirs);
            }
        }
    }
}

/// Allocated bytes under `dir`, walked in full (for subtrees past the watch limit).
fn walk_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        total += std::fs::symlink_metadata(&d)
            .map(|m| m.blocks() * 512)
            .unwrap_or(0);
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                match e.metadata() {
                    Ok(m) if m.is_dir() => stack.push(e.path()),
                    Ok(m) => total += m.blocks() * 512,
                    Err(_) => {}
                }
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::io::Write;

    fn write(p: &Path, n: usize) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap();
        f.write_all(&vec![7u8; n]).unwrap();
        f.sync_all().unwrap();
    }

    #[test]
    fn follows_changes_without_rewalking() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(root.join("c")).unwrap();
        write(&root.join("a/b/f1"), 100_000);
        write(&root.join("c/f2"), 50_000);
        let mut m = DirMeter::new(root, 1000);
        let first = m.measure().unwrap();
        assert_eq!(first, walk_bytes(root));
        assert!(m.incremental());
        let read_after_walk = m.dirs_read;
        assert_eq!(read_after_walk, 4);

        // Nothing changed: nothing is read again.
        assert_eq!(m.measure().unwrap(), first);
        assert_eq!(m.dirs_read, read_after_walk);

        // Appending to a file re-reads only its directory.
        write(&root.join("a/b/f1"), 200_000);
        let grown = m.measure().unwrap();
        assert_eq!(grown, walk_bytes(root));
        assert!(grown > first);
        assert_eq!(m.dirs_read, read_after_walk + 1);

        // A new subtree is picked up, a removed one dropped.
        std::fs::create_dir_all(root.join("c/d/e")).unwrap();
        write(&root.join("c/d/e/f3"), 30_000);
        m.measure().unwrap();
        // The new directories' own events may arrive in the same pass; measure again to settle.
        assert_eq!(m.measure().unwrap(), walk_bytes(root));
        std::fs::remove_dir_all(root.join("a")).unwrap();
        assert_eq!(m.measure().unwrap(), walk_bytes(root));
        assert_eq!(m.full_walks, 1);
    }

    #[test]
    fn past_the_watch_limit_still_counts_everything() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for i in 0..5 {
            std::fs::create_dir_all(root.join(format!("d{i}/x"))).unwrap();
            write(&root.join(format!("d{i}/x/f")), 10_000);
        }
        let mut m = DirMeter::new(root, 2);
        assert_eq!(m.measure().unwrap(), walk_bytes(root));
    }

    #[test]
    fn missing_root_is_an_error() {
        let mut m = DirMeter::new("/nonexistent/yagura-probe", 10);
        assert!(m.measure().is_err());
    }
}
