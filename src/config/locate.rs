//! Where things are in the config text: key paths (`target[0].claims.source`), the spanned TOML
//! tree they are looked up in, and byte offset → line:col.

use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// 1-based line and column (in characters) of byte `offset` in `text`. An offset past the end, or
/// inside a character, is clamped to the nearest earlier character boundary.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A path from the document root, e.g. `schedule[0].personas[1]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    /// The root.
    pub fn root() -> KeyPath {
        KeyPath(Vec::new())
    }

    /// This path extended by a table key.
    pub fn key(&self, key: &str) -> KeyPath {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        KeyPath(segs)
    }

    /// This path extended by an array index.
    pub fn index(&self, index: usize) -> KeyPath {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        KeyPath(segs)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Index(n) => write!(f, "[{n}]")?,
                Seg::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                    if bare {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{k:?}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Which part of an entry a diagnostic points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// The key itself (unknown keys).
    Key,
    /// The value (bad values); a table's value is its header.
    Value,
}

/// The parsed document with spans, used only to find positions.
pub struct Tree<'i> {
    root: Spanned<DeValue<'i>>,
}

impl<'i> Tree<'i> {
    /// Parses `text`; errors are TOML syntax errors.
    pub fn parse(text: &'i str) -> Result<Tree<'i>, toml::de::Error> {
        let table = DeTable::parse(text)?;
        let span = table.span();
        let root = Spanned::new(span, DeValue::Table(table.into_inner()));
        Ok(Tree { root })
    }

    /// The byte span a diagnostic about `path` should point at. When the path does not exist
    /// (a missing key), this is the nearest existing ancestor: the table header that lacks it.
    pub fn span(&self, path: &KeyPath, anchor: Anchor) -> Range<usize> {
        let mut node = &self.root;
        let mut key_span: Option<Range<usize>> = None;
        for seg in &path.0 {
            let next = match (seg, node.get_ref()) {
                (Seg::Key(k), DeValue::Table(t)) => t
                    .iter()
                    .find(|(key, _)| key.get_ref() == k)
                    .map(|(key, value)| (Some(key.span()), value)),
                (Seg::Index(i), DeValue::Array(a)) => a.get(*i).map(|v| (None, v)),
                _ => None,
            };
            match next {
                Some((ks, value)) => {
                    key_span = ks;
                    node = value;
                }
                None => return node.span(),
            }
        }
        match (anchor, key_span) {
            (Anchor::Key, Some(ks)) => ks,
            _ => node.span(),
        }
    }

    /// The deepest key path whose key or value contains byte `offset`.
    pub fn path_at(&self, offset: usize) -> KeyPath {
        let mut path = KeyPath::root();
        let mut node = &self.root;
        loop {
            let next = match node.get_ref() {
                DeValue::Table(t) => t.iter().find_map(|(key, value)| {
                    let hit = contains(&key.span(), offset) || contains_deep(value, offset);
                    hit.then(|| (Seg::Key(key.get_ref().to_string()), value))
                }),
                DeValue::Array(a) => a
                    .iter()
                    .enumerate()
                    .find(|(_, v)| contains_deep(v, offset))
                    .map(|(i, v)| (Seg::Index(i), v)),
                _ => None,
            };
            match next {
                Some((seg, value)) => {
                    path.0.push(seg);
                    node = value;
                }
                None => return path,
            }
        }
    }
}

fn contains(span: &Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

/// Whether `offset` is in the value's own span or in any of its descendants (a table from a
/// header spans only the header, its keys follow it).
fn contains_deep(value: &Spanned<DeValue<'_>>, offset: usize) -> bool {
    if contains(&value.span(), offset) {
        return true;
    }
    match value.get_ref() {
        DeValue::Table(t) => t
            .iter()
            .any(|(k, v)| contains(&k.span(), offset) || contains_deep(v, offset)),
        DeValue::Array(a) => a.iter().any(|v| contains_deep(v, offset)),
        _ => false,
    }
}
