//! The yagura platform spec: one TOML file describing every cluster of the platform, read into [`model::Spec`],
//! checked by [`validate`], and turned into concrete addresses by [`plan`]. No network or process I/O here:
//! every other part of yagura (render, inventory, the daemons) starts from a [`Plan`].
//!
//! ```
//! let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/ictsc2020.toml")).unwrap();
//! let checked = yagura_spec::check("ictsc2020.toml", &text);
//! let plan = checked.plan.expect("the example is valid");
//! assert_eq!(plan.clusters[0].name, "prd");
//! ```

pub mod addr;
pub mod model;
pub mod plan;
pub mod provider;
pub mod synth;
pub mod text;
pub mod validate;

pub use model::Spec;
pub use plan::{Plan, PlanError, SCHEMA_VERSION};
pub use yagura_config::{Diagnostic, Report, Severity, Source};

/// The outcome of reading a spec: its source (to render diagnostics against), the spec if it has the right shape,
/// every diagnostic, and the plan if there were no errors.
#[derive(Debug)]
pub struct Checked {
    /// The text and its parsed document.
    pub source: Source,
    /// The spec, when it deserialized.
    pub spec: Option<Spec>,
    /// Every problem found (errors and warnings).
    pub diagnostics: Vec<Diagnostic>,
    /// The plan, when there were no errors.
    pub plan: Option<Plan>,
}

impl Checked {
    /// True when there is at least one error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// A report over the diagnostics.
    pub fn report(&self) -> Report<'_> {
        Report::new(&self.source, &self.diagnostics)
    }
}

/// Reads, validates and plans the spec in `text` (named `name` in diagnostics).
pub fn check(name: &str, text: &str) -> Checked {
    check_source(Source::new(name, text))
}

/// Like [`check`] for a file on disk.
pub fn check_file(path: &std::path::Path) -> Result<Checked, yagura_config::LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| yagura_config::LoadError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(check_source(Source::new(path.display().to_string(), text)))
}

/// Validates and plans an already loaded source.
pub fn check_source(source: Source) -> Checked {
    let (spec, mut diagnostics) = yagura_config::load::<Spec>(&source, &model::fields_at);
    let mut plan = None;
    if let Some(s) = &spec {
        diagnostics.extend(validate::validate(s));
        if !diagnostics.iter().any(Diagnostic::is_error) {
            match plan::plan(s) {
                Ok(p) => plan = Some(p),
                Err(e) => {
                    diagnostics.push(Diagnostic::error("plan", e.to_string()).hint(
                        "this is a bug in yagura's validation; please report it with the spec",
                    ))
                }
            }
        }
    }
    Checked {
        source,
        spec,
        diagnostics,
        plan,
    }
}
