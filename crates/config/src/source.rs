//! A TOML file kept with its parsed document, so a [`KeyPath`] can be turned back into a span and a
//! `line:col` long after deserialization.

use crate::path::{KeyPath, Segment};
use std::ops::Range;
use toml_edit::{ImDocument, Item, Table, Value};

/// A position in a source file, 1-based, columns counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Line number, from 1.
    pub line: usize,
    /// Column number, from 1, in characters.
    pub col: usize,
}

/// A named TOML text and, if it parses, its span-carrying document.
pub struct Source {
    name: String,
    text: String,
    doc: Result<ImDocument<String>, toml_edit::TomlError>,
    line_starts: Vec<usize>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a Item),
    Table(&'a Table),
    Value(&'a Value),
}

impl<'a> Node<'a> {
    fn span(&self) -> Option<Range<usize>> {
        match self {
            Node::Item(i) => i.span(),
            Node::Table(t) => t.span(),
            Node::Value(v) => v.span(),
        }
    }

    fn get(&self, seg: &Segment) -> Option<(Option<Range<usize>>, Node<'a>)> {
        match (*self, seg) {
            (Node::Item(Item::Table(t)) | Node::Table(t), Segment::Key(k)) => {
                let (key, item) = t.get_key_value(k)?;
                Some((key.span(), Node::Item(item)))
            }
            (
                Node::Item(Item::Value(Value::InlineTable(t))) | Node::Value(Value::InlineTable(t)),
                Segment::Key(k),
            ) => {
                let (key, item) = t.get_key_value(k)?;
                Some((key.span(), Node::Item(item)))
            }
            (Node::Item(Item::ArrayOfTables(a)), Segment::Index(i)) => {
                let t = a.get(*i)?;
                Some((t.span(), Node::Table(t)))
            }
            (
                Node::Item(Item::Value(Value::Array(a))) | Node::Value(Value::Array(a)),
                Segment::Index(i),
            ) => {
                let v = a.get(*i)?;
                Some((v.span(), Node::Value(v)))
            }
            _ => None,
        }
    }
}

impl Source {
    /// Keeps `text` under `name` (a path as the user gave it) and parses it.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let doc = ImDocument::parse(text.clone());
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            name: name.into(),
            text,
            doc,
            line_starts,
        }
    }

    /// The name given at construction (usually the file path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The full text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The TOML syntax error, if the text does not parse.
    pub fn syntax_error(&self) -> Option<&toml_edit::TomlError> {
        self.doc.as_ref().err()
    }

    /// The span of the key at `path` (or, when it is absent, of its nearest present ancestor).
    pub fn key_span(&self, path: &KeyPath) -> Option<Range<usize>> {
        self.find(path).map(|(k, _)| k)
    }

    /// The span of the value at `path` (or, when it is absent, of its nearest present ancestor's key).
    pub fn value_span(&self, path: &KeyPath) -> Option<Range<usize>> {
        self.find(path).map(|(_, v)| v)
    }

    /// True when `path` exists in the document as written (not filled in by a default).
    pub fn contains(&self, path: &KeyPath) -> bool {
        let Ok(doc) = &self.doc else { return false };
        let mut node = Node::Table(doc.as_table());
        for seg in &path.0 {
            match node.get(seg) {
                Some((_, next)) => node = next,
                None => return false,
            }
        }
        true
    }

    /// Walks `path` as far as it exists; returns (key span, value span) of the deepest node reached that has spans.
    fn find(&self, path: &KeyPath) -> Option<(Range<usize>, Range<usize>)> {
        let doc = self.doc.as_ref().ok()?;
        let mut node = Node::Table(doc.as_table());
        let mut best: Option<(Range<usize>, Range<usize>)> = None;
        for seg in &path.0 {
            let Some((key_span, next)) = node.get(seg) else {
                break;
            };
            let value_span = next.span();
            match (key_span, value_span) {
                (Some(k), Some(v)) => best = Some((k, v)),
                (Some(k), None) => best = Some((k.clone(), k)),
                (None, Some(v)) => best = Some((v.clone(), v)),
                (None, None) => {}
            }
            node = next;
        }
        best
    }

    /// Line and column of a byte offset.
    pub fn location(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let line_idx = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts.get(line_idx).copied().unwrap_or(0);
        let col = self
            .text
            .get(start..offset)
            .map_or(1, |s| s.chars().count() + 1);
        Location {
            line: line_idx + 1,
            col,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str =
        "[a]\nx = 1\n\n[[b]]\nname = \"one\"\n[[b]]\nname = \"two\"\nv = { p = [1, 2] }\n";

    #[test]
    fn locates_keys_values_and_array_elements() {
        let s = Source::new("t.toml", T);
        let p = KeyPath::root().key("b").index(1).key("name");
        let span = s.value_span(&p).unwrap();
        assert_eq!(&T[span.clone()], "\"two\"");
        assert_eq!(s.location(span.start), Location { line: 7, col: 8 });
        let k = s.key_span(&p).unwrap();
        assert_eq!(s.location(k.start), Location { line: 7, col: 1 });
        let inner = KeyPath::root().key("b").index(1).key("v").key("p").index(1);
        let span = s.value_span(&inner).unwrap();
        assert_eq!(&T[span], "2");
        assert!(s.contains(&KeyPath::root().key("a").key("x")));
        assert!(!s.contains(&KeyPath::root().key("a").key("y")));
        // a missing key falls back to its parent
        let missing = KeyPath::root().key("a").key("y");
        assert_eq!(s.location(s.key_span(&missing).unwrap().start).line, 1);
    }

    #[test]
    fn location_handles_multibyte() {
        let s = Source::new("u.toml", "# é\nk = \"ü\"\n");
        assert_eq!(s.location(0), Location { line: 1, col: 1 });
        assert_eq!(
            s.location(s.text().find('k').unwrap()),
            Location { line: 2, col: 1 }
        );
        assert_eq!(s.location(s.text().len()), Location { line: 3, col: 1 });
    }
}
