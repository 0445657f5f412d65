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

pub mod fingerprint;
mod types;

pub use fingerprint::fnv1a;
pub use types::{LockedType, StoredAt, TypeKind, shape_fingerprint};

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
    /// The fingerprint of its type's stored shape (`EventData::FINGERPRINT` in
    /// `eventsource-core`), which covers every type the field reaches. `None` where only the
    /// type as written is locked: an enum's variant line, an opaque field, or a lock written
    /// before nested types were locked.
    pub shape: Option<u64>,
}

impl Field {
    /// A field without serde attributes.
    pub fn new(name: impl Into<String>, ty: impl Into<String>) -> Self {
        Field {
            name: name.into(),
            ty: ty.into(),
            attrs: Vec::new(),
            shape: None,
        }
    }

    /// The same field with the fingerprint of its type's shape.
    pub fn with_shape(mut self, shape: u64) -> Self {
        self.shape = Some(shape);
        self
    }
}

/// The text that follows a field line when its type's shape is recorded: ` shape=…`. Types and
/// attributes as normalised never hold `=` without spaces around it, so it can't be confused
/// with them.
const SHAPE_MARK: &str = " shape=";

/// An enum's variant line has one of these as its "type": `Variant: {..}`.
const VARIANT_MARKERS: [&str; 3] = ["()", "{..}", "(..)"];

/// One difference between a locked shape and the code's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The container's serde attributes changed.
    ContainerAttrs {
        /// Locked.
        from: Vec<String>,
        /// Now.
        to: Vec<String>,
    },
    /// A field (or an enum's variant) was added.
    Added {
        /// Its name.
        field: String,
        /// Its type as written.
        ty: String,
        /// It is an enum's variant.
        variant: bool,
    },
    /// A field (or an enum's variant) was removed.
    Removed {
        /// Its name.
        field: String,
        /// Its type as written.
        ty: String,
        /// It was an enum's variant.
        variant: bool,
    },
    /// A field's type as written changed (for a variant: its kind, `{..}`, `(..)` or `()`).
    Retyped {
        /// The field.
        field: String,
        /// Locked.
        from: String,
        /// Now.
        to: String,
    },
    /// A field's serde attributes changed.
    FieldAttrs {
        /// The field.
        field: String,
        /// Locked.
        from: Vec<String>,
        /// Now.
        to: Vec<String>,
    },
    /// A field's type reads the same but its stored shape differs: a type it holds changed
    /// (a nested type, a type alias, a type from another crate).
    Reshaped {
        /// The field.
        field: String,
        /// Its type as written.
        ty: String,
    },
    /// The same fields in another order.
    Reordered,
}

impl Change {
    fn noun(variant: bool) -> &'static str {
        if variant { "variant" } else { "field" }
    }

    /// What follows an added or removed line's name: its type, or a variant's kind.
    fn what(ty: &str, variant: bool, removed: bool) -> String {
        let open = if removed { "it was " } else { "" };
        match (variant, ty) {
            (true, "()") => String::new(),
            (true, "{..}") => format!(" ({open}a struct variant)"),
            (true, _) => format!(" ({open}a tuple variant)"),
            (false, ty) => format!(" ({open}`{ty}`)"),
        }
    }

    /// The change as a sentence about the type itself: "field `amount` changed type from `u64`
    /// to `u32`".
    pub fn sentence(&self) -> String {
        match self {
            Change::ContainerAttrs { from, to } => format!(
                "the type's serde attributes changed from `{}` to `{}`",
                list_or_none(from),
                list_or_none(to)
            ),
            Change::Added { field, ty, variant } => format!(
                "{} `{field}` was added{}",
                Change::noun(*variant),
                Change::what(ty, *variant, false)
            ),
            Change::Removed { field, ty, variant } => format!(
                "{} `{field}` was removed{}",
                Change::noun(*variant),
                Change::what(ty, *variant, true)
            ),
            Change::Retyped { field, from, to } => {
                format!("field `{field}` changed type from `{from}` to `{to}`")
            }
            Change::FieldAttrs { field, from, to } => format!(
                "the serde attributes of field `{field}` changed from `{}` to `{}`",
                list_or_none(from),
                list_or_none(to)
            ),
            Change::Reshaped { field, ty } => format!(
                "field `{field}` still reads `{ty}`, but what `{ty}` holds changed (a nested type, a type alias or a type from another crate)"
            ),
            Change::Reordered => "the fields were reordered".to_owned(),
        }
    }

    /// The change as seen from a stored event, where `path` reaches the changed type:
    /// `` `Opened.address.postcode: String -> u32` ``.
    pub fn at(&self, path: &str) -> String {
        match self {
            Change::ContainerAttrs { from, to } => format!(
                "`{path}`: serde attributes `{}` -> `{}`",
                list_or_none(from),
                list_or_none(to)
            ),
            Change::Added {
                field,
                ty,
                variant: true,
            } => format!(
                "`{path}`: variant `{field}` added{}",
                Change::what(ty, true, false)
            ),
            Change::Removed {
                field,
                ty,
                variant: true,
            } => format!(
                "`{path}`: variant `{field}` removed{}",
                Change::what(ty, true, true)
            ),
            Change::Added { field, ty, .. } => format!("`{path}.{field}`: added (`{ty}`)"),
            Change::Removed { field, ty, .. } => {
                format!("`{path}.{field}`: removed (was `{ty}`)")
            }
            Change::Retyped { field, from, to } => format!("`{path}.{field}: {from} -> {to}`"),
            Change::FieldAttrs { field, from, to } => format!(
                "`{path}.{field}`: serde attributes `{}` -> `{}`",
                list_or_none(from),
                list_or_none(to)
            ),
            Change::Reshaped { field, ty } => {
                format!("`{path}.{field}`: what `{ty}` holds changed")
            }
            Change::Reordered => format!("`{path}`: fields reordered"),
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
            write_field(&mut text, field);
            text.push('\n');
        }
        text
    }

    /// The same shape without the fingerprints of its fields' types: what the derives see while
    /// compiling, before rustc has computed them.
    pub fn as_written(&self) -> Shape {
        let mut shape = self.clone();
        for field in &mut shape.fields {
            field.shape = None;
        }
        shape
    }

    /// Whether this is an enum's shape: every top-level line is a variant (`Name: {..}`).
    pub fn is_enum(&self) -> bool {
        let mut top = self.fields.iter().filter(|f| !f.name.contains('.'));
        let mut any = false;
        let all = top.all(|f| {
            any = true;
            VARIANT_MARKERS.contains(&f.ty.as_str())
        });
        any && all
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
            let line_with_mark = line;
            let (line, type_shape) = match line.rsplit_once(SHAPE_MARK) {
                Some((before, hex)) => (
                    before,
                    Some(
                        u64::from_str_radix(hex, 16)
                            .map_err(|_| format!("bad shape fingerprint `{hex}` in `{line}`"))?,
                    ),
                ),
                None => (line, None),
            };
            let (name, rest) = line
                .split_once(": ")
                .ok_or_else(|| format!("expected `name: Type`, found `{line}`"))?;
            let (ty, attrs) = match rest.find(" #[") {
                Some(at) => (&rest[..at], split_attrs(&rest[at + 1..])),
                None => (rest, Vec::new()),
            };
            let field = Field {
                name: name.to_owned(),
                ty: ty.to_owned(),
                attrs,
                shape: type_shape,
            };
            // Only the text `canonical` writes is accepted: anything else (a type with stray
            // spaces, an attribute cut short, a short fingerprint) would be read as a shape that
            // writes back differently, so the fingerprint the lock checks would not be of the
            // text in the file.
            let mut written = String::new();
            write_field(&mut written, &field);
            if written != line_with_mark {
                return Err(format!(
                    "`{line_with_mark}` is not a field line as the lock writes it \
                     (`name: Type #[serde(...)]{SHAPE_MARK}<16 hex digits>`); the file was edited by hand: restore it from version control"
                ));
            }
            shape.fields.push(field);
        }
        Ok(shape)
    }

    /// What changed from `self` (the locked shape) to `current`, one sentence per change.
    pub fn diff(&self, current: &Shape) -> Vec<String> {
        self.changes(current).iter().map(Change::sentence).collect()
    }

    /// What changed from `self` (the locked shape) to `current`. A field's type fingerprint is
    /// compared only where both sides have one.
    pub fn changes(&self, current: &Shape) -> Vec<Change> {
        let mut changes = Vec::new();
        if self.attrs != current.attrs {
            changes.push(Change::ContainerAttrs {
                from: self.attrs.clone(),
                to: current.attrs.clone(),
            });
        }
        let variant = |shape: &Shape, field: &Field| shape.is_enum() && !field.name.contains('.');
        let locked: BTreeMap<&str, &Field> =
            self.fields.iter().map(|f| (f.name.as_str(), f)).collect();
        let now: BTreeMap<&str, &Field> = current
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f))
            .collect();
        for field in &current.fields {
            match locked.get(field.name.as_str()) {
                None => changes.push(Change::Added {
                    field: field.name.clone(),
                    ty: field.ty.clone(),
                    variant: variant(current, field),
                }),
                Some(old) if old.ty != field.ty => changes.push(Change::Retyped {
                    field: field.name.clone(),
                    from: old.ty.clone(),
                    to: field.ty.clone(),
                }),
                Some(old) if old.attrs != field.attrs => changes.push(Change::FieldAttrs {
                    field: field.name.clone(),
                    from: old.attrs.clone(),
                    to: field.attrs.clone(),
                }),
                Some(old) => {
                    if let (Some(a), Some(b)) = (old.shape, field.shape)
                        && a != b
                    {
                        changes.push(Change::Reshaped {
                            field: field.name.clone(),
                            ty: field.ty.clone(),
                        });
                    }
                }
            }
        }
        for field in &self.fields {
            if !now.contains_key(field.name.as_str()) {
                changes.push(Change::Removed {
                    field: field.name.clone(),
                    ty: field.ty.clone(),
                    variant: variant(self, field),
                });
            }
        }
        if changes.is_empty() && self.as_written() != current.as_written() {
            let order = |s: &Shape| s.fields.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
            if order(self) != order(current) {
                changes.push(Change::Reordered);
            }
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
/// A field's line of the canonical text, without the newline.
fn write_field(text: &mut String, field: &Field) {
    let _ = write!(text, "{}: {}", field.name, field.ty);
    for attr in &field.attrs {
        let _ = write!(text, " {attr}");
    }
    if let Some(shape) = field.shape {
        let _ = write!(text, "{SHAPE_MARK}{shape:016x}");
    }
}

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
    types: BTreeMap<String, LockedType>,
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

    /// The locked nested type `name`.
    pub fn get_type(&self, name: &str) -> Option<&LockedType> {
        self.types.get(name)
    }

    /// Every locked nested type, ordered by name.
    pub fn types(&self) -> impl Iterator<Item = &LockedType> {
        self.types.values()
    }

    /// Adds or replaces a locked nested type.
    pub fn insert_type(&mut self, locked: LockedType) {
        self.types.insert(locked.name.clone(), locked);
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
        for locked in self.types.values() {
            let _ = writeln!(
                text,
                "\ntype {} {} type={} fingerprint={:016x}",
                quote(&locked.name),
                locked.kind,
                locked.type_name,
                locked.fingerprint()
            );
            for at in &locked.stored_at {
                let _ = writeln!(
                    text,
                    "    {STORED_AT}{} v{} at {}",
                    quote(&at.event),
                    at.version,
                    at.path
                );
            }
            for line in locked.shape.canonical().lines() {
                let _ = writeln!(text, "    {line}");
            }
        }
        text
    }

    /// Reads a lock file's text.
    pub fn parse(text: &str) -> Result<Lock, ParseError> {
        let mut lock = Lock::default();
        let mut current: Option<Block> = None;
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let err = |message: String| ParseError {
                line: line_no,
                message,
            };
            if raw.starts_with("    ") || raw.starts_with('\t') {
                let body = raw.trim();
                match current.as_mut() {
                    Some(Block::Type { stored_at, .. }) if body.starts_with(STORED_AT) => {
                        stored_at.push(parse_stored_at(&body[STORED_AT.len()..]).map_err(err)?);
                    }
                    Some(Block::Event { body: text, .. } | Block::Type { body: text, .. }) => {
                        text.push_str(body);
                        text.push('\n');
                    }
                    None => {
                        return Err(err(
                            "an indented line outside an `event` or `type` block".into()
                        ));
                    }
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
                let (type_name, fingerprint) = header_words(words).map_err(err)?;
                let event = LockedEvent {
                    name,
                    version,
                    type_name,
                    shape: Shape::default(),
                };
                current = Some(Block::Event {
                    line: line_no,
                    event,
                    fingerprint,
                    body: String::new(),
                });
                continue;
            }
            if let Some(rest) = line.strip_prefix("type ") {
                finish(&mut lock, current.take())?;
                let (name, rest) = unquote(rest).map_err(err)?;
                let mut words = rest.split_whitespace();
                let kind = words.next().unwrap_or_default();
                let kind = TypeKind::parse(kind).ok_or_else(|| {
                    err(format!(
                        "expected `struct`, `tuple_struct`, `unit_struct` or `enum` after the type name, found `{kind}`"
                    ))
                })?;
                let (type_name, fingerprint) = header_words(words).map_err(err)?;
                current = Some(Block::Type {
                    line: line_no,
                    locked: LockedType {
                        name,
                        type_name,
                        kind,
                        shape: Shape::default(),
                        stored_at: Vec::new(),
                    },
                    fingerprint,
                    stored_at: Vec::new(),
                    body: String::new(),
                });
                continue;
            }
            return Err(err(format!(
                "expected `event \"Name\" vN …`, `type \"Name\" …` or `aggregate \"Name\": …`, found `{line}`"
            )));
        }
        finish(&mut lock, current.take())?;
        Ok(lock)
    }
}

/// The start of a `type` block's line that says where the type is stored.
const STORED_AT: &str = "in ";

/// A block of the file being read.
enum Block {
    Event {
        line: usize,
        event: LockedEvent,
        fingerprint: Option<u64>,
        body: String,
    },
    Type {
        line: usize,
        locked: LockedType,
        fingerprint: Option<u64>,
        stored_at: Vec<StoredAt>,
        body: String,
    },
}

/// Ends the block being read: its fields parsed, its fingerprint checked.
fn finish(lock: &mut Lock, block: Option<Block>) -> Result<(), ParseError> {
    let hand_edited = |line: usize, what: String| ParseError {
        line,
        message: format!(
            "the fingerprint of {what} does not match its fields; the file was edited by hand: restore it from version control"
        ),
    };
    match block {
        None => Ok(()),
        Some(Block::Event {
            line,
            mut event,
            fingerprint,
            body,
        }) => {
            event.shape =
                Shape::parse_canonical(&body).map_err(|message| ParseError { line, message })?;
            if let Some(expected) = fingerprint
                && expected != event.shape.fingerprint()
            {
                return Err(hand_edited(
                    line,
                    format!("`{}` v{}", event.name, event.version),
                ));
            }
            lock.insert(event);
            Ok(())
        }
        Some(Block::Type {
            line,
            mut locked,
            fingerprint,
            stored_at,
            body,
        }) => {
            locked.shape =
                Shape::parse_canonical(&body).map_err(|message| ParseError { line, message })?;
            locked.stored_at = stored_at;
            if let Some(expected) = fingerprint
                && expected != locked.fingerprint()
            {
                return Err(hand_edited(line, format!("type `{}`", locked.name)));
            }
            lock.insert_type(locked);
            Ok(())
        }
    }
}

/// Reads `type=…` and `fingerprint=…` from a block's header.
fn header_words<'a>(words: impl Iterator<Item = &'a str>) -> Result<(String, Option<u64>), String> {
    let mut type_name = String::new();
    let mut fingerprint = None;
    for word in words {
        if let Some(t) = word.strip_prefix("type=") {
            type_name = t.to_owned();
        } else if let Some(f) = word.strip_prefix("fingerprint=") {
            fingerprint =
                Some(u64::from_str_radix(f, 16).map_err(|_| format!("bad fingerprint `{f}`"))?);
        }
    }
    Ok((type_name, fingerprint))
}

/// Reads `"Opened" v1 at Opened.address`.
fn parse_stored_at(text: &str) -> Result<StoredAt, String> {
    let (event, rest) = unquote(text)?;
    let rest = rest.trim_start();
    let (version, path) = rest
        .strip_prefix('v')
        .and_then(|r| r.split_once(" at "))
        .ok_or_else(|| format!("expected `\"Event\" vN at path`, found `{text}`"))?;
    let version = version
        .trim()
        .parse()
        .map_err(|_| format!("a version must be a number, found `{version}`"))?;
    Ok(StoredAt {
        event,
        version,
        path: path.trim().to_owned(),
    })
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
                    shape: None,
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

    fn address() -> LockedType {
        LockedType {
            name: "Address".into(),
            type_name: "bank::Address".into(),
            kind: TypeKind::Struct,
            shape: Shape {
                attrs: vec![],
                fields: vec![
                    Field::new("street", "String")
                        .with_shape(fingerprint::text(fingerprint::START, "string")),
                    Field::new("postcode", "String")
                        .with_shape(fingerprint::text(fingerprint::START, "string")),
                ],
            },
            stored_at: vec![StoredAt {
                event: "Opened".into(),
                version: 1,
                path: "Opened.address".into(),
            }],
        }
    }

    #[test]
    fn round_trips_type_blocks_and_field_shapes() {
        let mut lock = Lock::default();
        let mut opened = Shape::default();
        opened
            .fields
            .push(Field::new("address", "Address").with_shape(address().fingerprint()));
        lock.insert(LockedEvent::new("Opened", 1, "bank::Opened", opened));
        lock.insert_type(address());
        let text = lock.render();
        assert!(
            text.contains("\ntype \"Address\" struct type=bank::Address fingerprint="),
            "{text}"
        );
        assert!(
            text.contains("    in \"Opened\" v1 at Opened.address\n"),
            "{text}"
        );
        assert!(text.contains("    postcode: String shape="), "{text}");
        assert_eq!(Lock::parse(&text).unwrap(), lock);

        let edited = text.replace("    postcode: String", "    zip: String");
        assert!(Lock::parse(&edited).is_err());
    }

    #[test]
    fn a_lock_without_field_shapes_still_parses_and_matches() {
        let old = "event \"Deposited\" v1 type=bank::Deposited fingerprint=d57034d0e40611fa\n    amount: u64\n    note: Option<String> #[serde(default)]\n";
        let lock = Lock::parse(old).unwrap();
        let locked = &lock.get("Deposited", 1).unwrap().shape;
        assert_eq!(locked, &sample().tap_attrs_none());
        let mut now = locked.clone();
        now.fields[0].shape = Some(7);
        assert!(locked.diff(&now).is_empty());
        let mut reshaped = now.clone();
        reshaped.fields[0].shape = Some(8);
        assert_eq!(
            now.changes(&reshaped)[0].at("Deposited"),
            "`Deposited.amount`: what `u64` holds changed"
        );
    }

    #[test]
    fn nested_changes_read_as_paths_and_variants_as_variants() {
        let locked = address().shape;
        let mut now = locked.clone();
        now.fields[1] = Field::new("postcode", "u32");
        let changes = locked.changes(&now);
        assert_eq!(
            changes[0].at("Opened.address"),
            "`Opened.address.postcode: String -> u32`"
        );

        let currency = Shape::parse_canonical("Eur: ()\nUsd: ()\n").unwrap();
        let renamed = Shape::parse_canonical("Eur: ()\nDollar: ()\n").unwrap();
        assert_eq!(
            currency.diff(&renamed),
            ["variant `Dollar` was added", "variant `Usd` was removed"]
        );
    }

    impl Shape {
        fn tap_attrs_none(mut self) -> Shape {
            self.attrs.clear();
            self
        }
    }

    #[test]
    fn reports_bad_lines_with_their_number() {
        let error = Lock::parse("# comment\n\nnonsense here\n").unwrap_err();
        assert_eq!(error.line, 3);
    }

    /// Found by `fuzz/` (`lock_parse`): a field line that is not canonical (a type followed by
    /// stray characters and spaces, an attribute cut short) parsed into a shape that wrote back
    /// as other text, so a lock that parsed rendered to a file that failed its own fingerprint
    /// check. Such a line is now refused with the line number.
    #[test]
    fn refuses_a_field_line_that_would_write_back_differently() {
        let text = "\
type \"Currency\" enum type=bank::Currency
    Eur: ()
    Usd: ()\u{8}    #[f: ()
";
        let error = Lock::parse(text).unwrap_err();
        assert_eq!(error.line, 1, "{error}");
        assert!(error.message.contains("not a field line"), "{error}");

        for line in [
            "a: ()    #[f: ()",
            "a: u64 #[serde(default)",
            "a: u64 shape=2b03",
        ] {
            let error = Shape::parse_canonical(line).unwrap_err();
            assert!(error.contains("not a field line"), "{line}: {error}");
        }
        let written = sample();
        assert_eq!(Shape::parse_canonical(&written.canonical()), Ok(written));
    }
}
