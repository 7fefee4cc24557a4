//! Shared TOML loading for yagura: the platform spec and every daemon config are read through here, so every
//! file gets the same treatment — all problems reported at once, each at `file:line:col` with a hint.
//!
//! The flow is: [`Source::new`] parses the text once (keeping spans), [`load`] deserializes it with serde while
//! collecting unknown keys, and the caller's semantic checks return more [`Diagnostic`]s that point at a
//! [`KeyPath`]; [`Report`] resolves paths to positions and renders them.

mod diag;
mod introspect;
mod load;
mod path;
mod secret;
mod source;

pub use diag::{Diagnostic, Report, Severity};
pub use introspect::{fields_of, variants_of};
pub use load::{load, load_file, FieldsAt, LoadError};
pub use path::{KeyPath, Segment};
pub use secret::{EnvName, FilePath, SecretRef};
pub use source::{Location, Source};

/// Durations in configs are written as humane strings (`"300ms"`, `"9s"`, `"6h"`).
pub mod duration {
    pub use humantime_serde::{deserialize, serialize};
}
