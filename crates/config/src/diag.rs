//! Diagnostics: what is wrong, where (a [`KeyPath`] or a raw span), and a hint — rendered as miette's
//! graphical report for people, one line per problem for logs and tests, or JSON for tools.

use crate::path::KeyPath;
use crate::source::{Location, Source};
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use std::fmt;
use std::ops::Range;

/// How bad a diagnostic is. Errors make a file invalid; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The file is invalid.
    Error,
    /// Worth fixing, but the file is usable.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// A short stable code, e.g. `unknown-key`, `overlap`.
    pub code: &'static str,
    /// What is wrong, in one sentence.
    pub message: String,
    /// Where, as a path; resolved to a span through the [`Source`].
    pub path: Option<KeyPath>,
    /// Point at the key rather than the value.
    pub at_key: bool,
    /// Where, as a byte span (used by syntax and type errors that come with one).
    pub span: Option<Range<usize>>,
    /// A label shown under the span.
    pub label: Option<String>,
    /// How to fix it.
    pub hint: Option<String>,
    /// Other places involved (e.g. the network this one overlaps).
    pub related: Vec<(KeyPath, String)>,
}

impl Diagnostic {
    /// A new error.
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            message: message.into(),
            path: None,
            at_key: false,
            span: None,
            label: None,
            hint: None,
            related: Vec::new(),
        }
    }

    /// A new warning.
    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(code, message)
        }
    }

    /// Points at the value at `path`.
    #[must_use]
    pub fn at(mut self, path: &KeyPath) -> Self {
        self.path = Some(path.clone());
        self.at_key = false;
        self
    }

    /// Points at the key at `path`.
    #[must_use]
    pub fn at_key(mut self, path: &KeyPath) -> Self {
        self.path = Some(path.clone());
        self.at_key = true;
        self
    }

    /// Points at a byte span.
    #[must_use]
    pub fn with_span(mut self, span: Range<usize>) -> Self {
        self.span = Some(span);
        self
    }

    /// Adds a label under the primary span.
    #[must_use]
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Adds a hint.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a secondary place.
    #[must_use]
    pub fn related(mut self, path: &KeyPath, label: impl Into<String>) -> Self {
        self.related.push((path.clone(), label.into()));
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The primary span in `source`.
    pub fn resolve(&self, source: &Source) -> Option<Range<usize>> {
        if let Some(s) = &self.span {
            return Some(s.clone());
        }
        let p = self.path.as_ref()?;
        if self.at_key {
            source.key_span(p)
        } else {
            source.value_span(p)
        }
    }

    /// The primary position in `source`.
    pub fn location(&self, source: &Source) -> Option<Location> {
        self.resolve(source).map(|r| source.location(r.start))
    }
}

/// A set of diagnostics over one source, ready to render.
pub struct Report<'a> {
    source: &'a Source,
    diags: Vec<&'a Diagnostic>,
}

struct Rendered<'a> {
    d: &'a Diagnostic,
    src: &'a NamedSource<String>,
    labels: Vec<LabeledSpan>,
    help: Option<String>,
}

impl fmt::Debug for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.d.message)
    }
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.d.message)
    }
}

impl std::error::Error for Rendered<'_> {}

impl miette::Diagnostic for Rendered<'_> {
    // The code is printed in the `file:line:col: error[code]` line above the excerpt.

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        if self.labels.is_empty() {
            None
        } else {
            Some(self.src)
        }
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }
}

impl<'a> Report<'a> {
    /// Collects `diags` over `source`, ordered by position (then code) so output is stable.
    pub fn new(source: &'a Source, diags: &'a [Diagnostic]) -> Self {
        let mut v: Vec<&Diagnostic> = diags.iter().collect();
        v.sort_by_key(|d| {
            (
                d.resolve(source).map_or(usize::MAX, |r| r.start),
                d.severity,
                d.code,
            )
        });
        Self { source, diags: v }
    }

    /// Number of errors.
    pub fn errors(&self) -> usize {
        self.diags.iter().filter(|d| d.is_error()).count()
    }

    /// Number of warnings.
    pub fn warnings(&self) -> usize {
        self.diags.len() - self.errors()
    }

    fn position(&self, d: &Diagnostic) -> String {
        match d.location(self.source) {
            Some(l) => format!("{}:{}:{}", self.source.name(), l.line, l.col),
            None => self.source.name().to_string(),
        }
    }

    /// One line per diagnostic: `file:line:col: error[code]: message (hint: …)`.
    pub fn short(&self) -> String {
        let mut out = String::new();
        for d in &self.diags {
            out.push_str(&format!(
                "{}: {}[{}]: {}",
                self.position(d),
                d.severity,
                d.code,
                d.message
            ));
            if let Some(h) = &d.hint {
                out.push_str(&format!(" (hint: {h})"));
            }
            out.push('\n');
        }
        out
    }

    /// The graphical report: a source excerpt per diagnostic with labels and help, and a summary line.
    pub fn human(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme).with_width(110);
        let named = NamedSource::new(self.source.name(), self.masked_text()).with_language("toml");
        let mut out = String::new();
        for d in &self.diags {
            let mut labels = Vec::new();
            let primary = d.resolve(self.source);
            let primary_line = primary.as_ref().map(|r| self.source.location(r.start).line);
            if let Some(span) = primary {
                let label = d.label.clone().or_else(|| Some(d.message.clone()));
                labels.push(LabeledSpan::new_primary_with_span(
                    label,
                    SourceSpan::from(span),
                ));
            }
            let mut notes = Vec::new();
            for (p, l) in &d.related {
                if let Some(span) = self.source.value_span(p) {
                    let loc = self.source.location(span.start);
                    // Nearby places share the excerpt; far ones are named, so the excerpt stays short.
                    if primary_line.is_some_and(|pl| pl.abs_diff(loc.line) <= 6) {
                        labels.push(LabeledSpan::new_with_span(
                            Some(l.clone()),
                            SourceSpan::from(span),
                        ));
                    } else {
                        notes.push(format!(
                            "{l}: {}:{}:{}",
                            self.source.name(),
                            loc.line,
                            loc.col
                        ));
                    }
                }
            }
            let help = match (&d.hint, notes.is_empty()) {
                (Some(h), true) => Some(h.clone()),
                (Some(h), false) => Some(format!("{h}\nsee {}", notes.join("; "))),
                (None, false) => Some(format!("see {}", notes.join("; "))),
                (None, true) => None,
            };
            let r = Rendered {
                d,
                src: &named,
                labels,
                help,
            };
            // The position first, so every problem can be found with a plain `file:line:col`.
            out.push_str(&format!(
                "{}: {}[{}]\n",
                self.position(d),
                d.severity,
                d.code
            ));
            if handler.render_report(&mut out, &r).is_err() {
                out.push_str(&d.message);
                out.push('\n');
            }
        }
        let (e, w) = (self.errors(), self.warnings());
        if e + w > 0 {
            out.push_str(&format!(
                "{}: {} error{}, {} warning{}\n",
                self.source.name(),
                e,
                if e == 1 { "" } else { "s" },
                w,
                if w == 1 { "" } else { "s" }
            ));
        }
        out
    }

    /// The source text with the values of literal secrets starred out (byte offsets unchanged), so a report
    /// that quotes the file never repeats a secret into a terminal or a CI log.
    fn masked_text(&self) -> String {
        let mut bytes = self.source.text().as_bytes().to_vec();
        for d in self.diags.iter().filter(|d| d.code == "secret-literal") {
            let Some(p) = &d.path else { continue };
            let Some(span) = self.source.value_span(p) else {
                continue;
            };
            let Some(slice) = bytes.get_mut(span) else {
                continue;
            };
            let n = slice.len();
            for (i, b) in slice.iter_mut().enumerate() {
                let quote = (i == 0 || i + 1 == n) && (*b == b'"' || *b == b'\'');
                if !quote {
                    *b = b'*';
                }
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The diagnostics as JSON objects (`file`, `line`, `col`, `severity`, `code`, `message`, `hint`, `path`).
    pub fn json(&self) -> serde_json::Value {
        let items: Vec<serde_json::Value> = self
            .diags
            .iter()
            .map(|d| {
                let loc = d.location(self.source);
                serde_json::json!({
                    "file": self.source.name(),
                    "line": loc.map(|l| l.line),
                    "col": loc.map(|l| l.col),
                    "severity": d.severity,
                    "code": d.code,
                    "message": d.message,
                    "hint": d.hint,
                    "path": d.path.as_ref().map(ToString::to_string),
                })
            })
            .collect();
        serde_json::Value::Array(items)
    }
}
