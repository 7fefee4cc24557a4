//! Loading a daemon's TOML config: every problem at once with `file:line:col`, unknown keys refused, then the
//! config's own checks. Used at start and on every SIGHUP.

use std::path::{Path, PathBuf};
use yagura_config::{Diagnostic, KeyPath, LoadError, Report, Source};

/// A daemon's configuration type.
pub trait DaemonConfig: serde::de::DeserializeOwned + Send + Sync + 'static {
    /// The keys valid at `path` (for "did you mean"); usually a `match` on `path.shape()` returning
    /// [`yagura_config::fields_of`] of the struct found there.
    fn fields_at(path: &KeyPath) -> &'static [&'static str];

    /// Semantic checks beyond the types; every problem, each at its key path.
    fn validate(&self) -> Vec<Diagnostic> {
        Vec::new()
    }
}

/// A config that loaded, with the warnings it produced (already rendered, one per line).
#[derive(Debug)]
pub struct Loaded<T> {
    /// The config.
    pub config: T,
    /// Rendered warnings (`file:line:col: warning[code]: …`), empty when none.
    pub warnings: String,
    /// Where it came from.
    pub path: PathBuf,
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error(transparent)]
    Read(#[from] LoadError),
    /// The file is invalid; `report` has every problem, one per line with `file:line:col`.
    #[error("{name}: invalid configuration ({errors} error{s})\n{report}", s = if *errors == 1 { "" } else { "s" })]
    Invalid {
        /// The file name.
        name: String,
        /// Number of errors.
        errors: usize,
        /// One line per problem.
        report: String,
        /// The graphical report (source excerpts), for a terminal.
        human: String,
    },
}

impl ConfigError {
    /// The graphical report for a terminal, or the plain message for I/O errors.
    pub fn human(&self) -> String {
        match self {
            ConfigError::Invalid { human, .. } => human.clone(),
            other => other.to_string(),
        }
    }
}

/// Reads and checks the config at `path`.
pub fn load<T: DaemonConfig>(path: &Path) -> Result<Loaded<T>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut loaded = parse::<T>(&path.display().to_string(), &text)?;
    loaded.path = path.to_path_buf();
    Ok(loaded)
}

/// Checks a config given as text (`name` is used in diagnostics).
pub fn parse<T: DaemonConfig>(name: &str, text: &str) -> Result<Loaded<T>, ConfigError> {
    let source = Source::new(name, text);
    let (value, mut diags) = yagura_config::load::<T>(&source, &T::fields_at);
    if let Some(v) = &value {
        diags.extend(v.validate());
    }
    let report = Report::new(&source, &diags);
    match value {
        Some(config) if report.errors() == 0 => Ok(Loaded {
            config,
            warnings: report.short(),
            path: PathBuf::from(name),
        }),
        _ => Err(ConfigError::Invalid {
            name: name.to_string(),
            errors: report.errors().max(1),
            report: report.short(),
            human: report.human(false),
        }),
    }
}
