//! The rendered tree in memory: relative paths to bytes, written atomically (a sibling temp directory renamed
//! over the target) and compared with a tree on disk for `--check`.

use crate::RenderError;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// One rendered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Contents.
    pub bytes: Vec<u8>,
    /// Executable (scripts).
    pub executable: bool,
}

/// Every rendered file by relative path (`/`-separated), in path order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    files: BTreeMap<String, File>,
}

/// How a file on disk differs from the rendered one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffKind {
    /// Rendered but absent on disk.
    Missing,
    /// On disk but not rendered.
    Extra,
    /// Different contents (a unified diff, disk → rendered).
    Changed(String),
    /// Same contents, different executable bit.
    Mode,
}

/// A difference for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    /// The relative path.
    pub path: String,
    /// What differs.
    pub kind: DiffKind,
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DiffKind::Missing => writeln!(f, "missing: {} (rendered, not on disk)", self.path),
            DiffKind::Extra => writeln!(f, "extra:   {} (on disk, not rendered)", self.path),
            DiffKind::Mode => writeln!(f, "mode:    {} (executable bit differs)", self.path),
            DiffKind::Changed(d) => {
                writeln!(f, "changed: {}", self.path)?;
                f.write_str(d)
            }
        }
    }
}

impl Tree {
    /// Adds a regular file.
    pub fn add(&mut self, path: impl Into<String>, text: impl Into<String>) {
        self.files.insert(
            path.into(),
            File {
                bytes: text.into().into_bytes(),
                executable: false,
            },
        );
    }

    /// Adds an executable file.
    pub fn add_executable(&mut self, path: impl Into<String>, text: impl Into<String>) {
        self.files.insert(
            path.into(),
            File {
                bytes: text.into().into_bytes(),
                executable: true,
            },
        );
    }

    /// A file's text, if rendered.
    pub fn get(&self, path: &str) -> Option<&str> {
        self.files
            .get(path)
            .and_then(|f| std::str::from_utf8(&f.bytes).ok())
    }

    /// Every path and file, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &File)> {
        self.files.iter().map(|(p, f)| (p.as_str(), f))
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when nothing was rendered.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Writes the tree to `dir`: everything goes into a temporary sibling directory first, which then replaces
    /// `dir` by rename, so `dir` holds either the old tree or the whole new one, never half of either. An
    /// existing `dir` that is not a directory is refused.
    pub fn write_atomic(&self, dir: &Path) -> Result<(), RenderError> {
        let io = |action: &'static str, path: &Path| {
            let path = path.display().to_string();
            move |source| RenderError::Io {
                action,
                path,
                source,
            }
        };
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dir
            .file_name()
            .ok_or_else(|| {
                RenderError::Target(format!("{} is not a directory name", dir.display()))
            })?
            .to_string_lossy()
            .into_owned();
        if dir.exists() && !dir.is_dir() {
            return Err(RenderError::Target(format!(
                "{} exists and is not a directory",
                dir.display()
            )));
        }
        std::fs::create_dir_all(&parent).map_err(io("creating", &parent))?;
        let pid = std::process::id();
        let tmp = parent.join(format!(".{name}.render-{pid}"));
        let old = parent.join(format!(".{name}.old-{pid}"));
        // A leftover from a crashed run with the same pid is ours to remove.
        for p in [&tmp, &old] {
            if p.exists() {
                std::fs::remove_dir_all(p).map_err(io("removing", p))?;
            }
        }
        let result = (|| {
            std::fs::create_dir(&tmp).map_err(io("creating", &tmp))?;
            for (rel, f) in &self.files {
                let p = tmp.join(rel);
                if let Some(d) = p.parent() {
                    std::fs::create_dir_all(d).map_err(io("creating", d))?;
                }
                std::fs::write(&p, &f.bytes).map_err(io("writing", &p))?;
                set_mode(&p, f.executable).map_err(io("setting the mode of", &p))?;
            }
            if dir.exists() {
                std::fs::rename(dir, &old).map_err(io("moving aside", dir))?;
                if let Err(e) = std::fs::rename(&tmp, dir) {
                    // Put the old tree back so the target is never left empty.
                    let _ = std::fs::rename(&old, dir);
                    return Err(io("replacing", dir)(e));
                }
                std::fs::remove_dir_all(&old).map_err(io("removing", &old))?;
            } else {
                std::fs::rename(&tmp, dir).map_err(io("creating", dir))?;
            }
            Ok(())
        })();
        if result.is_err() && tmp.exists() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    /// Compares the tree with `dir` on disk: every missing, extra or changed file, in path order. Empty when
    /// they are the same.
    pub fn check(&self, dir: &Path) -> Result<Vec<Diff>, RenderError> {
        let mut on_disk = BTreeMap::new();
        if dir.is_dir() {
            walk(dir, dir, &mut on_disk)?;
        }
        let mut out = Vec::new();
        for (p, f) in &self.files {
            match on_disk.get(p) {
                None => out.push(Diff {
                    path: p.clone(),
                    kind: DiffKind::Missing,
                }),
                Some((bytes, exec)) if *bytes != f.bytes => out.push(Diff {
                    path: p.clone(),
                    kind: DiffKind::Changed(unified(p, bytes, &f.bytes)),
                }),
                Some((_, exec)) if *exec != f.executable => out.push(Diff {
                    path: p.clone(),
                    kind: DiffKind::Mode,
                }),
                Some(_) => {}
            }
        }
        for p in on_disk.keys() {
            if !self.files.contains_key(p) {
                out.push(Diff {
                    path: p.clone(),
                    kind: DiffKind::Extra,
                });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

fn unified(path: &str, old: &[u8], new: &[u8]) -> String {
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    similar::TextDiff::from_lines(old.as_ref(), new.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("a/{path} (on disk)"),
            &format!("b/{path} (rendered)"),
        )
        .to_string()
}

type DiskFiles = BTreeMap<String, (Vec<u8>, bool)>;

fn walk(root: &Path, dir: &Path, out: &mut DiskFiles) -> Result<(), RenderError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| RenderError::Io {
            action: "reading",
            path,
            source,
        }
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let ft = e.file_type().map_err(io(&p))?;
        if ft.is_dir() {
            walk(root, &p, out)?;
        } else {
            let rel = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .replace('\\', "/");
            let bytes = std::fs::read(&p).map_err(io(&p))?;
            out.insert(rel, (bytes, is_executable(&p)));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(p: &Path, exec: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        p,
        std::fs::Permissions::from_mode(if exec { 0o755 } else { 0o644 }),
    )
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: bool) -> std::io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(_: &Path) -> bool {
    false
}
