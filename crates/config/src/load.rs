//! Deserializes a [`Source`] into a config type and reports every unknown key (with "did you mean"), every
//! literal secret and the first syntax or type error — all at once, each with its place.

use crate::diag::Diagnostic;
use crate::path::{KeyPath, Segment};
use crate::secret::looks_like_secret_key;
use crate::source::Source;
use serde::de::DeserializeOwned;
use std::path::Path;

/// Tells [`load`] which keys are valid at a place (the parent of an unknown key), for "did you mean".
/// Typically a `match` on [`KeyPath::shape`] returning [`crate::fields_of`] of the struct found there.
pub type FieldsAt<'a> = &'a dyn Fn(&KeyPath) -> &'static [&'static str];

/// A config file could not be read at all (as opposed to being invalid, which is diagnostics).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path as given.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Reads `path` and [`load`]s it. The returned [`Source`] is what the diagnostics are rendered against.
pub fn load_file<T: DeserializeOwned>(
    path: &Path,
    fields_at: FieldsAt<'_>,
) -> Result<(Source, Option<T>, Vec<Diagnostic>), LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let source = Source::new(path.display().to_string(), text);
    let (value, diags) = load(&source, fields_at);
    Ok((source, value, diags))
}

/// Deserializes `source` into `T`. Returns the value when the file has the right shape (it may still carry
/// unknown-key errors, so check the diagnostics) and every problem found.
pub fn load<T: DeserializeOwned>(
    source: &Source,
    fields_at: FieldsAt<'_>,
) -> (Option<T>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    if let Some(e) = source.syntax_error() {
        let mut d = Diagnostic::error(
            "syntax",
            format!("TOML syntax error: {}", e.message().trim()),
        )
        .hint("see https://toml.io/en/v1.0.0 for the syntax");
        if let Some(span) = e.span() {
            d = d.with_span(span);
        }
        diags.push(d);
        return (None, diags);
    }
    let mut unknown: Vec<KeyPath> = Vec::new();
    let de = toml::Deserializer::new(source.text());
    let result: Result<T, toml::de::Error> = serde_ignored::deserialize(de, |p| {
        let mut segs = Vec::new();
        convert(&p, &mut segs);
        unknown.push(KeyPath(segs));
    });
    for path in &unknown {
        diags.push(unknown_key(path, fields_at(&path.parent())));
    }
    match result {
        Ok(v) => (Some(v), diags),
        Err(e) => {
            let msg = e.message().trim().to_string();
            let mut d = Diagnostic::error("invalid-value", msg.clone());
            if let Some(span) = e.span() {
                d = d.with_span(span);
            }
            if let Some(h) = hint_for_serde_message(&msg) {
                d = d.hint(h);
            }
            diags.push(d);
            (None, diags)
        }
    }
}

fn convert(p: &serde_ignored::Path<'_>, out: &mut Vec<Segment>) {
    use serde_ignored::Path as P;
    match p {
        P::Root => {}
        P::Seq { parent, index } => {
            convert(parent, out);
            out.push(Segment::Index(*index));
        }
        P::Map { parent, key } => {
            convert(parent, out);
            out.push(Segment::Key(key.clone()));
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            convert(parent, out)
        }
    }
}

fn unknown_key(path: &KeyPath, expected: &'static [&'static str]) -> Diagnostic {
    let key = path.last_key().unwrap_or_default().to_string();
    let parent = path.parent();
    let place = if parent.is_root() {
        "at the top level".to_string()
    } else {
        format!("in `{parent}`")
    };
    if looks_like_secret_key(&key) {
        let alternatives: Vec<&str> = expected
            .iter()
            .copied()
            .filter(|f| {
                f.starts_with(key.as_str()) && (f.ends_with("_env") || f.ends_with("_file"))
            })
            .collect();
        let hint = if alternatives.is_empty() {
            "secrets are never values in a config: name an environment variable (`…_env`) or a file (`…_file`)"
                .to_string()
        } else {
            format!(
                "secrets are never values in a config: use {}",
                alternatives
                    .iter()
                    .map(|a| if a.ends_with("_env") {
                        format!("`{a} = \"NAME_OF_VARIABLE\"`")
                    } else {
                        format!("`{a} = \"/path/to/file\"`")
                    })
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
        };
        return Diagnostic::error(
            "secret-literal",
            format!("`{key}` {place} would hold a literal secret"),
        )
        .at_key(path)
        .label("a secret written into the file")
        .hint(hint);
    }
    let d = Diagnostic::error("unknown-key", format!("unknown key `{key}` {place}"))
        .at_key(path)
        .label("not a known key here");
    match did_you_mean(&key, expected) {
        Some(s) => d.hint(format!("did you mean `{s}`?")),
        None if !expected.is_empty() => d.hint(format!("expected one of: {}", expected.join(", "))),
        None => d,
    }
}

/// The closest candidate to `key`, if one is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(key: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(key, c);
        let dist = strsim::damerau_levenshtein(key, c);
        let close = score >= 0.82 || dist <= 2.max(key.len() / 4);
        if close && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

fn hint_for_serde_message(msg: &str) -> Option<String> {
    if msg.starts_with("missing field") {
        Some("add the key; see the example under examples/ for every section".to_string())
    } else if msg.contains("invalid IP address") || msg.contains("invalid IP network") {
        Some(
            "write addresses like \"198.51.100.10\" and networks like \"198.51.100.0/27\""
                .to_string(),
        )
    } else if msg.contains("invalid duration") || msg.contains("time unit") {
        Some("write durations with a unit: \"300ms\", \"3s\", \"5m\", \"6h\"".to_string())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields_of;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Top {
        name: String,
        #[serde(default)]
        items: Vec<Item>,
    }

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Item {
        address: String,
        community_env: Option<String>,
    }

    fn fields(p: &KeyPath) -> &'static [&'static str] {
        match p.shape().as_slice() {
            [] => fields_of::<Top>(),
            ["items"] => fields_of::<Item>(),
            _ => &[],
        }
    }

    #[test]
    fn all_unknown_keys_at_once_with_suggestions() {
        let src = Source::new(
            "x.toml",
            "name = \"a\"\nnmae = 1\n[[items]]\naddress = \"x\"\nadress = \"y\"\ncommunity = \"public\"\n",
        );
        let (v, d) = load::<Top>(&src, &fields);
        assert!(v.is_some());
        assert_eq!(d.len(), 3, "{d:?}");
        let short = crate::Report::new(&src, &d).short();
        assert!(short.contains("x.toml:2:1: error[unknown-key]: unknown key `nmae` at the top level (hint: did you mean `name`?)"), "{short}");
        assert!(short.contains("x.toml:5:1: error[unknown-key]: unknown key `adress` in `items[0]` (hint: did you mean `address`?)"), "{short}");
        assert!(
            short.contains("x.toml:6:1: error[secret-literal]"),
            "{short}"
        );
        assert!(short.contains("community_env"), "{short}");
        assert!(!short.contains("public"), "{short}");
    }

    #[test]
    fn type_and_syntax_errors_have_positions() {
        let src = Source::new("y.toml", "name = 3\n");
        let (v, d) = load::<Top>(&src, &fields);
        assert!(v.is_none());
        let short = crate::Report::new(&src, &d).short();
        assert!(
            short.starts_with("y.toml:1:8: error[invalid-value]"),
            "{short}"
        );

        let src = Source::new("z.toml", "name = \n");
        let (_, d) = load::<Top>(&src, &fields);
        let short = crate::Report::new(&src, &d).short();
        assert!(short.starts_with("z.toml:1:"), "{short}");
        assert!(short.contains("error[syntax]"), "{short}");
    }

    #[test]
    fn human_rendering_names_the_position() {
        let src = Source::new("x.toml", "name = \"a\"\nnmae = 1\n");
        let (_, d) = load::<Top>(&src, &fields);
        let human = crate::Report::new(&src, &d).human(false);
        assert!(human.contains("x.toml:2:1"), "{human}");
        assert!(human.contains("did you mean `name`?"), "{human}");
        assert!(human.contains("1 error, 0 warnings"), "{human}");
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("netmsk", &["netmask", "global"]),
            Some("netmask")
        );
        assert_eq!(did_you_mean("zzzz", &["netmask", "global"]), None);
    }
}
