//! The schema lock: the stored shape of every event version, kept in an `events.lock` file at
//! the crate root, so that changing a shape that is already stored fails the build.
//!
//! This crate has no dependencies and no macros: it is the model, the canonical text, the
//! fingerprint and the file format, shared by `eventsource-derive` (which reads the lock while
//! compiling) and `eventsource-core` (which writes it from the registry). It is an internal
//! crate of `eventsource`; depend on `eventsource-core`.
//!
//! ```
//! use eventsource_schema::{Field, Lock, LockedEvent, Shape};
//!
//! let shape = Shape { attrs: vec![], fields: vec![Field::new("amount", "u64")] };
//! let mut lock = Lock::default();
//! lock.insert(LockedEvent::new("Deposited", 1, "bank::Deposited", shape.clone()));
//! let text = lock.render();
//! let again = Lock::parse(&text).unwrap();
//! assert_eq!(again.get("Deposited", 1).unwrap().shape, shape);
//!
//! let changed = Shape { attrs: vec![], fields: vec![Field::new("amount", "u32")] };
//! assert_eq!(shape.diff(&changed), ["field `amount` changed type from `u64` to `u32`"]);
//! ```
#![forbid(unsafe_code)]
// Library code never unwraps: data from storage or users gets a typed error instead.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

/// The name of the lock file, at the root of the crate that defines the events.
pub const LOCK_FILE: &str = "events.lock";

/// One field of an event's stored shape (for an enum, one variant or one variant's field,
/// named `Variant` or `Variant.field`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field's name (`0`, `1`, … for tuple fields).
    pub name: String,
    /// Its type as written, whitespace-normalised.
    pub ty: String,
    /// Its `#[serde(...)]` attributes, whitespace-normalised.
    pub attrs: Vec<String>,
}

impl Field {
    /// A field without serde attributes.
    pub fn new(name: impl Into<String>, ty: impl Into<String>) -> Self {
        Field {
            name: name.into(),
            ty: ty.into(),
            attrs: Vec::new(),
        }
    }
}

/// The stored shape of one event version: the container's serde attributes and the fields in
/// order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// The type's `#[serde(...)]` attributes.
    pub attrs: Vec<String>,
    /// The fields, in declaration order.
    pub fields: Vec<Field>,
}

impl Shape {
    /// The canonical text: one line per container attribute, then one per field
    /// (`name: Type #[serde(...)]`). Two shapes are the same iff their texts are.
    pub fn canonical(&self) -> String {
        let mut text = String::new();
        for attr in &self.attrs {
            let _ = writeln!(text, "{attr}");
        }
        for field in &self.fields {
            let _ = write!(text, "{}: {}", field.name, field.ty);
            for attr in &field.attrs {
                let _ = write!(text, " {attr}");
            }
            text.push('\n');
        }
        text
    }

    /// A stable 64-bit fingerprint (FNV-1a) of the canonical text.
    pub fn fingerprint(&self) -> u64 {
        fnv1a(self.canonical().as_bytes())
    }

    /// Parses the canonical text back (the inverse of [`Shape::canonical`]).
    pub fn parse_canonical(text: &str) -> Result<Shape, String> {
        let mut shape = Shape::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if line.starts_with("#[") {
                shape.attrs.push(line.to_owned());
                continue;
            }
            let (name, rest) = line
                .split_once(": ")
                .ok_or_else(|| format!("expected `name: Type`, found `{line}`"))?;
            let (ty, attrs) = match rest.find(" #[") {
                Some(at) => (&rest[..at], split_attrs(&rest[at + 1..])),
                None => (rest, Vec::new()),
            };
            shape.fields.push(Field {
                name: name.to_owned(),
                ty: ty.to_owned(),
                attrs,
            });
        }
        Ok(shape)
    }

    /// What changed from `self` (the locked shape) to `current`, one sentence per change.
    pub fn diff(&self, current: &Shape) -> Vec<String> {
        let mut changes = Vec::new();
        if self.attrs != current.attrs {
            changes.push(format!(
                "the type's serde attributes changed from `{}` to `{}`",
                list_or_none(&self.attrs),
                list_or_none(&current.attrs)
            ));
        }
        let locked: BTreeMap<&str, &Field> =
            self.fields.iter().map(|f| (f.name.as_str(), f)).collect();
        let now: BTreeMap<&str, &Field> = current
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f))
            .collect();
        for field in &current.fields {
            match locked.get(field.name.as_str()) {
                None => changes.push(format!("field `{}` was added (`{}`)", field.name, field.ty)),
                Some(old) if old.ty != field.ty => changes.push(format!(
                    "field `{}` changed type from `{}` to `{}`",
                    field.name, old.ty, field.ty
                )),
                Some(old) if old.attrs != field.attrs => changes.push(format!(
                    "the serde attributes of field `{}` changed from `{}` to `{}`",
                    field.name,
                    list_or_none(&old.attrs),
                    list_or_none(&field.attrs)
                )),
                Some(_) => {}
            }
        }
        for field in &self.fields {
            if !now.contains_key(field.name.as_str()) {
                changes.push(format!(
                    "field `{}` was removed (it was `{}`)",
                    field.name, field.ty
                ));
            }
        }
        if changes.is_empty() && self != current {
            changes.push("the fields were reordered".to_owned());
        }
        changes
    }
}

fn list_or_none(attrs: &[String]) -> String {
    if attrs.is_empty() {
        "none".to_owned()
    } else {
        attrs.join(" ")
    }
}

/// Splits `#[serde(a)] #[serde(b)]` into its attributes.
fn split_attrs(text: &str) -> Vec<String> {
    let mut attrs = Vec::new();
    let mut depth = 0usize;
    let mut start = None;
    for (i, c) in text.char_indices() {
        match c {
            '#' if depth == 0 => start = Some(i),
            '[' => depth += 1,
            ']' => {
                depth = depth.saturating_sub(1);
                if depth == 0
                    && let Some(s) = start.take()
                {
                    attrs.push(text[s..=i].to_owned());
                }
            }
            _ => {}
        }
    }
    attrs
}

/// FNV-1a, 64 bits: stable across builds, platforms and compiler versions.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Normalises the whitespace of a token string as `quote` prints it (`Vec < u64 >`) to the way
/// people write it (`Vec<u64>`): a space is kept only between two word characters.
pub fn normalize_tokens(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '\'' || c == '"';
    for (i, &c) in chars.iter().enumerate() {
        if c.is_whitespace() {
            let before = out.chars().last();
            let after = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            if let (Some(b), Some(&a)) = (before, after)
                && word(b)
                && word(a)
                && !out.ends_with(' ')
            {
                out.push(' ');
            }
            continue;
        }
        out.push(c);
    }
    // `=` and `,` read better with spaces in attributes: `rename = "x"`, `a, b`.
    out.replace('=', " = ")
        .replace(',', ", ")
        .replace("  ", " ")
}

/// One locked event version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedEvent {
    /// The stored name.
    pub name: String,
    /// The schema version.
    pub version: u32,
    /// The Rust type that wrote it when it was locked (informational).
    pub type_name: String,
    /// The locked shape.
    pub shape: Shape,
}

impl LockedEvent {
    /// A locked event version.
    pub fn new(
        name: impl Into<String>,
        version: u32,
        type_name: impl Into<String>,
        shape: Shape,
    ) -> Self {
        LockedEvent {
            name: name.into(),
            version,
            type_name: type_name.into(),
            shape,
        }
    }
}

/// The contents of an `events.lock` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lock {
    events: BTreeMap<(String, u32), LockedEvent>,
    aggregates: BTreeMap<String, Vec<(String, u32)>>,
}

/// A lock file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The 1-based line.
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{LOCK_FILE} line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

const HEADER: &str = "\
# eventsource schema lock: the stored shape of every event version.
# Events already stored keep these shapes forever, so a locked version must not change: to
# change an event, raise its version and add an upcaster from the locked shape.
# Refresh with `EVENTSOURCE_LOCK=write cargo test` and commit this file.
";

impl Lock {
    /// The locked version `version` of event `name`.
    pub fn get(&self, name: &str, version: u32) -> Option<&LockedEvent> {
        self.events.get(&(name.to_owned(), version))
    }

    /// Every locked event version, ordered by name and version.
    pub fn events(&self) -> impl Iterator<Item = &LockedEvent> {
        self.events.values()
    }

    /// Adds or replaces a locked event version.
    pub fn insert(&mut self, event: LockedEvent) {
        self.events
            .insert((event.name.clone(), event.version), event);
    }

    /// Records an aggregate's events (name and version).
    pub fn set_aggregate(&mut self, name: impl Into<String>, events: Vec<(String, u32)>) {
        self.aggregates.insert(name.into(), events);
    }

    /// Every recorded aggregate with its events.
    pub fn aggregates(&self) -> impl Iterator<Item = (&String, &Vec<(String, u32)>)> {
        self.aggregates.iter()
    }

    /// The file's text: stable order, one block per event version, diff-friendly.
    pub fn render(&self) -> String {
        let mut text = String::from(HEADER);
        for (name, events) in &self.aggregates {
            let list: Vec<String> = events
                .iter()
                .map(|(n, v)| format!("{} v{v}", quote(n)))
                .collect();
            let _ = writeln!(text, "\naggregate {}: {}", quote(name), list.join(", "));
        }
        for event in self.events.values() {
            let _ = writeln!(
                text,
                "\nevent {} v{} type={} fingerprint={:016x}",
                quote(&event.name),
                event.version,
                event.type_name,
                event.shape.fingerprint()
            );
            for line in event.shape.canonical().lines() {
                let _ = writeln!(text, "    {line}");
            }
        }
        text
    }

    /// Reads a lock file's text.
    pub fn parse(text: &str) -> Result<Lock, ParseError> {
        let mut lock = Lock::default();
        let mut current: Option<(usize, LockedEvent, Option<u64>, String)> = None;
        let finish = |lock: &mut Lock,
                      entry: Option<(usize, LockedEvent, Option<u64>, String)>|
         -> Result<(), ParseError> {
            let Some((line, mut event, fingerprint, body)) = entry else {
                return Ok(());
            };
            event.shape =
                Shape::parse_canonical(&body).map_err(|message| ParseError { line, message })?;
            if let Some(expected) = fingerprint
                && expected != event.shape.fingerprint()
            {
                return Err(ParseError {
                    line,
                    message: format!(
                        "the fingerprint of `{}` v{} does not match its fields; the file was edited by hand: restore it from version control",
                        event.name, event.version
                    ),
                });
            }
            lock.insert(event);
            Ok(())
        };
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let err = |message: String| ParseError {
                line: line_no,
                message,
            };
            if raw.starts_with("    ") || raw.starts_with('\t') {
                match current.as_mut() {
                    Some((_, _, _, body)) => {
                        body.push_str(raw.trim());
                        body.push('\n');
                    }
                    None => return Err(err("an indented line outside an `event` block".into())),
                }
                continue;
            }
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("aggregate ") {
                finish(&mut lock, current.take())?;
                let (name, rest) = unquote(rest).map_err(err)?;
                let rest = rest
                    .trim_start()
                    .strip_prefix(':')
                    .ok_or_else(|| err("expected `:` after the aggregate name".into()))?;
                let mut events = Vec::new();
                let mut rest = rest.trim();
                while !rest.is_empty() {
                    let (event, after) = unquote(rest).map_err(err)?;
                    let after = after.trim_start();
                    let version_text = after
                        .strip_prefix('v')
                        .ok_or_else(|| err("expected `vN` after an event name".into()))?;
                    let end = version_text.find(',').unwrap_or(version_text.len());
                    let version = version_text[..end]
                        .trim()
                        .parse()
                        .map_err(|_| err("a version must be a number".into()))?;
                    events.push((event, version));
                    rest = version_text[end..].trim_start_matches(',').trim();
                }
                lock.set_aggregate(name, events);
                continue;
            }
            if let Some(rest) = line.strip_prefix("event ") {
                finish(&mut lock, current.take())?;
                let (name, rest) = unquote(rest).map_err(err)?;
                let mut words = rest.split_whitespace();
                let version = words
                    .next()
                    .and_then(|w| w.strip_prefix('v'))
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| err("expected `vN` after the event name".into()))?;
                let mut type_name = String::new();
                let mut fingerprint = None;
                for word in words {
                    if let Some(t) = word.strip_prefix("type=") {
                        type_name = t.to_owned();
                    } else if let Some(f) = word.strip_prefix("fingerprint=") {
                        fingerprint = Some(
                            u64::from_str_radix(f, 16)
                                .map_err(|_| err(format!("bad fingerprint `{f}`")))?,
                        );
                    }
                }
                let event = LockedEvent {
                    name,
                    version,
                    type_name,
                    shape: Shape::default(),
                };
                current = Some((line_no, event, fingerprint, String::new()));
                continue;
            }
            return Err(err(format!(
                "expected `event \"Name\" vN …` or `aggregate \"Name\": …`, found `{line}`"
            )));
        }
        finish(&mut lock, current.take())?;
        Ok(lock)
    }
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Reads a leading `"quoted"` string; returns it and the rest.
fn unquote(text: &str) -> Result<(String, &str), String> {
    let text = text.trim_start();
    let body = text
        .strip_prefix('"')
        .ok_or_else(|| format!("expected a quoted name, found `{text}`"))?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, escaped)) => out.push(escaped),
                None => break,
            },
            '"' => return Ok((out, &body[i + 1..])),
            c => out.push(c),
        }
    }
    Err(format!("unterminated name in `{text}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Shape {
        Shape {
            attrs: vec!["#[serde(rename_all = \"camelCase\")]".into()],
            fields: vec![
                Field::new("amount", "u64"),
                Field {
                    name: "note".into(),
                    ty: "Option<String>".into(),
                    attrs: vec!["#[serde(default)]".into()],
                },
            ],
        }
    }

    #[test]
    fn fnv1a_matches_the_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn normalizes_token_spacing() {
        assert_eq!(
            normalize_tokens("Option < Vec < u64 > >"),
            "Option<Vec<u64>>"
        );
        assert_eq!(normalize_tokens("& 'static str"), "&'static str");
        assert_eq!(
            normalize_tokens("# [serde (rename = \"x\" , default)]"),
            "#[serde(rename = \"x\", default)]"
        );
    }

    #[test]
    fn round_trips_the_file() {
        let mut lock = Lock::default();
        lock.insert(LockedEvent::new(
            "Deposited",
            2,
            "bank::Deposited",
            sample(),
        ));
        lock.insert(LockedEvent::new(
            "Odd \"name\"",
            1,
            "bank::Odd",
            Shape::default(),
        ));
        lock.set_aggregate(
            "Account",
            vec![("Deposited".into(), 2), ("Odd \"name\"".into(), 1)],
        );
        let text = lock.render();
        assert!(
            text.contains("event \"Deposited\" v2 type=bank::Deposited fingerprint="),
            "{text}"
        );
        assert!(
            text.contains("    note: Option<String> #[serde(default)]\n"),
            "{text}"
        );
        assert_eq!(Lock::parse(&text).unwrap(), lock);
    }

    #[test]
    fn a_hand_edited_block_is_refused() {
        let mut lock = Lock::default();
        lock.insert(LockedEvent::new(
            "Deposited",
            1,
            "bank::Deposited",
            sample(),
        ));
        let text = lock.render().replace("amount: u64", "amount: u32");
        let error = Lock::parse(&text).unwrap_err();
        assert!(error.message.contains("edited by hand"), "{error}");
    }

    #[test]
    fn diff_names_every_change() {
        let locked = sample();
        let mut current = sample();
        current.fields[0].ty = "u32".into();
        current.fields.remove(1);
        current.fields.push(Field::new("currency", "String"));
        assert_eq!(
            locked.diff(&current),
            [
                "field `amount` changed type from `u64` to `u32`",
                "field `currency` was added (`String`)",
                "field `note` was removed (it was `Option<String>`)",
            ]
        );
        let mut reordered = sample();
        reordered.fields.reverse();
        assert_eq!(locked.diff(&reordered), ["the fields were reordered"]);
        assert!(locked.diff(&sample()).is_empty());
    }

    #[test]
    fn reports_bad_lines_with_their_number() {
        let error = Lock::parse("# comment\n\nnonsense here\n").unwrap_err();
        assert_eq!(error.line, 3);
    }
}
