//! The event catalog: every aggregate, event, version, field and upcaster step of a program, as
//! Markdown and as one self-contained HTML page, for the people who read and write its events.
//!
//! The catalog is built from the [registry](crate::registry::events) (what the code registers: each event
//! type's stored name, version, fields, aliases, personal data and upcaster steps; each
//! aggregate's events) and, optionally, the [schema lock](crate::schema) (`events.lock`, which
//! keeps the stored shape of every version, including versions whose Rust type is gone). Each
//! version shows its fields, where they come from (the code or the lock), and, next to the
//! version before it, what changed: fields added, removed and changed, side by side.
//!
//! ```
//! use eventsource_core::catalog::{Catalog, RowStatus};
//! use eventsource_core::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! /// Money was paid in (version 1 counted whole euros).
//! #[derive(Event, Serialize, Deserialize, Debug, Clone)]
//! #[event(name = "Paid", version = 2, upcast(from = 1, with = to_cents))]
//! struct Paid { cents: u64 }
//!
//! fn to_cents(mut v: serde_json::Value) -> Result<serde_json::Value, UpcastError> {
//!     let euros = v["euros"].take().as_u64().unwrap_or(0);
//!     Ok(serde_json::json!({ "cents": euros * 100 }))
//! }
//!
//! #[derive(Aggregate, Default, Debug)]
//! #[aggregate(events(Paid))]
//! struct Till;
//! impl Apply<Paid> for Till { fn apply(&mut self, _: &Paid) {} }
//!
//! // The lock remembers version 1's shape, which no type in the code has any more.
//! let lock = eventsource_core::schema::Lock::parse(
//!     "event \"Paid\" v1 type=shop::PaidV1\n    euros: u64\n",
//! )?;
//! let catalog = Catalog::from_registry(Some(&lock))?;
//! let paid = catalog.event("Paid").expect("registered");
//! assert_eq!(paid.versions.len(), 2);
//! assert_eq!(paid.versions[1].upcast.map(|s| s.with), Some("to_cents"));
//! let diff = paid.versions[1].diff.as_ref().expect("both shapes are known");
//! let statuses: Vec<RowStatus> = diff.rows.iter().map(|r| r.status).collect();
//! assert_eq!(statuses, [RowStatus::Removed, RowStatus::Added]);
//!
//! assert!(catalog.to_markdown().contains("| `to_cents` |"));
//! assert!(catalog.to_html().starts_with("<!DOCTYPE html>"));
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```
//!
//! The admin CLI (`eventsource_core::admin`, feature `cli`) writes it as its `catalog` command; the bank
//! example's with `cargo run -p eventsource-examples --bin bank-admin -- catalog --format html
//! --out bank.html`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::registry::{
    self, AggregateRegistration, EventRegistration, PersonalData, UpcastKind, UpcastStep,
};
use crate::schema::{Field, Lock, LockedType, Shape, registered_shape};

mod diff;
mod html;
mod markdown;

pub use diff::{DiffRow, RowStatus, VersionDiff};
pub use html::escape_html;
pub use markdown::{code_span, escape_markdown};

/// Why a catalog could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// A registered type's shape text could not be read (a bug of the derive that wrote it).
    #[error("the registered shape of `{type_name}` is unreadable: {message}")]
    Shape {
        /// The Rust type.
        type_name: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The lock file could not be read.
    #[error("cannot read the schema lock {path}: {message}")]
    Lock {
        /// The file.
        path: String,
        /// What was wrong (the I/O error, or the line that does not parse).
        message: String,
    },
}

/// Every aggregate and event of a program, with every version of every event.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// The aggregates, by name.
    pub aggregates: Vec<AggregateEntry>,
    /// The events, one per stored name, by name.
    pub events: Vec<EventEntry>,
    /// The nested types the lock records (`type` blocks), by name; empty without a lock.
    pub types: Vec<LockedType>,
    /// Whether a schema lock was read.
    pub with_lock: bool,
}

/// One aggregate type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateEntry {
    /// Its name.
    pub name: String,
    /// A unique fragment identifier for links within the catalog (`aggregate-bankaccount`).
    pub anchor: String,
    /// The Rust type, as `module::Type`.
    pub type_name: String,
    /// The events it lists: stored name and the version it writes.
    pub events: Vec<(String, u32)>,
}

/// One event, by stored name, with all its versions.
#[derive(Debug, Clone)]
pub struct EventEntry {
    /// The stored name.
    pub name: String,
    /// A unique fragment identifier for links within the catalog (`event-deposited`).
    pub anchor: String,
    /// The Rust type that writes the newest version.
    pub type_name: String,
    /// The newest version, the one new events are written at.
    pub latest: u32,
    /// The doc comment of the newest version's type.
    pub doc: String,
    /// The names records were stored under before a rename (`#[event(aliases(...))]`).
    pub aliases: Vec<String>,
    /// Whose personal data it holds (as the newest version declares).
    pub personal: PersonalData,
    /// The aggregates that list it.
    pub aggregates: Vec<String>,
    /// Every version, oldest first.
    pub versions: Vec<VersionEntry>,
}

/// Where a version's fields in the catalog come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeSource {
    /// A registered type writes this version: its fields as the code has them.
    Code,
    /// No type writes it any more: its fields as the schema lock recorded them.
    Lock,
    /// No type writes it and the lock has no record of it (or no lock was read).
    Unknown,
}

impl ShapeSource {
    /// Where the fields come from, in a sentence.
    pub fn sentence(self) -> &'static str {
        match self {
            ShapeSource::Code => "Fields from the code.",
            ShapeSource::Lock => {
                "Fields from the schema lock: no type writes this version any more."
            }
            ShapeSource::Unknown => {
                "Fields unknown: no type writes this version and the schema lock has no record of it."
            }
        }
    }
}

/// One version of an event.
#[derive(Debug, Clone)]
pub struct VersionEntry {
    /// The schema version.
    pub version: u32,
    /// The Rust type that writes it or, for a version only the lock knows
    /// ([`ShapeSource::Lock`]), the type that wrote it when it was locked.
    pub type_name: Option<String>,
    /// Its stored shape, if known (see [`source`](Self::source)).
    pub shape: Option<Shape>,
    /// Where [`shape`](Self::shape) comes from.
    pub source: ShapeSource,
    /// Whether the schema lock records this version.
    pub locked: bool,
    /// Where the code's shape differs from the locked one, one sentence per change (the lock
    /// check fails on these; empty when they agree or one side is missing).
    pub lock_differs: Vec<String>,
    /// The upcaster step that turns the previous version's records into this version.
    pub upcast: Option<UpcastStep>,
    /// What changed from the previous version, when both shapes are known.
    pub diff: Option<VersionDiff>,
}

impl Catalog {
    /// The catalog of every event and aggregate registered in this program, with the shapes of
    /// older versions from `lock` (read it with [`read_lock`]).
    pub fn from_registry(lock: Option<&Lock>) -> Result<Catalog, CatalogError> {
        Catalog::from_registrations(registry::events(), registry::aggregates(), lock)
    }

    /// The catalog of the given registrations (what [`from_registry`](Self::from_registry) passes
    /// the whole registry to; a tool may pass a part of it).
    pub fn from_registrations<'a>(
        events: impl IntoIterator<Item = &'a EventRegistration>,
        aggregates: impl IntoIterator<Item = &'a AggregateRegistration>,
        lock: Option<&Lock>,
    ) -> Result<Catalog, CatalogError> {
        let mut by_name: BTreeMap<&'static str, Vec<&EventRegistration>> = BTreeMap::new();
        for event in events {
            by_name.entry(event.name).or_default().push(event);
        }
        let mut aggregates: Vec<AggregateEntry> = aggregates
            .into_iter()
            .map(|a| AggregateEntry {
                name: a.name.to_owned(),
                anchor: String::new(),
                type_name: a.type_name.to_owned(),
                events: a
                    .events
                    .iter()
                    .map(|(name, version)| ((*name).to_owned(), *version))
                    .collect(),
            })
            .collect();
        aggregates.sort_by(|a, b| (&a.name, &a.type_name).cmp(&(&b.name, &b.type_name)));
        let mut anchors = Anchors::default();
        for aggregate in &mut aggregates {
            aggregate.anchor = anchors.unique(&format!("aggregate-{}", slug(&aggregate.name)));
        }

        let mut entries = Vec::with_capacity(by_name.len());
        for (name, mut types) in by_name {
            types.sort_by_key(|t| t.version);
            let listed_by = aggregates
                .iter()
                .filter(|a| a.events.iter().any(|(n, _)| n == name))
                .map(|a| a.name.clone())
                .collect();
            let anchor = anchors.unique(&format!("event-{}", slug(name)));
            entries.push(event_entry(name, &types, lock, anchor, listed_by)?);
        }
        Ok(Catalog {
            aggregates,
            events: entries,
            types: lock
                .map(|l| l.types().cloned().collect())
                .unwrap_or_default(),
            with_lock: lock.is_some(),
        })
    }

    /// The event stored as `name`.
    pub fn event(&self, name: &str) -> Option<&EventEntry> {
        self.events.iter().find(|e| e.name == name)
    }

    /// Every event once, in the order a reader meets them: each aggregate's events as it lists
    /// them (its lifecycle, usually), then the events no aggregate lists.
    pub fn in_reading_order(&self) -> Vec<&EventEntry> {
        let mut seen = BTreeSet::new();
        let mut order = Vec::with_capacity(self.events.len());
        let listed = self
            .aggregates
            .iter()
            .flat_map(|a| a.events.iter())
            .filter_map(|(name, _)| self.event(name));
        for event in listed.chain(self.unlisted()) {
            if seen.insert(event.name.as_str()) {
                order.push(event);
            }
        }
        order
    }

    /// The events no aggregate lists (a process's or a projection's own, or a stale type).
    pub fn unlisted(&self) -> impl Iterator<Item = &EventEntry> {
        self.events.iter().filter(|e| e.aggregates.is_empty())
    }

    /// What the catalog was built from and how much it holds, in a sentence (its header).
    pub fn summary(&self) -> String {
        format!(
            "Generated from the event registry{}: {} aggregate(s), {} event(s), {} stored version(s).",
            if self.with_lock {
                " and the schema lock"
            } else {
                " (no schema lock: the fields of versions no type writes any more are unknown)"
            },
            self.aggregates.len(),
            self.events.len(),
            self.events.iter().map(|e| e.versions.len()).sum::<usize>(),
        )
    }

    /// The catalog as one Markdown document (GitHub-flavoured: tables, explicit anchors).
    pub fn to_markdown(&self) -> String {
        markdown::render(self)
    }

    /// The catalog as one self-contained HTML page: inline CSS, no script, no external assets.
    pub fn to_html(&self) -> String {
        html::render(self)
    }
}

/// Reads and parses a schema lock file (`events.lock`).
pub fn read_lock(path: impl AsRef<Path>) -> Result<Lock, CatalogError> {
    let path = path.as_ref();
    let failed = |message: String| CatalogError::Lock {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
    Lock::parse(&text).map_err(|e| failed(e.to_string()))
}

/// Builds one event's entry from the types that write its name (sorted by version).
fn event_entry(
    name: &str,
    types: &[&EventRegistration],
    lock: Option<&Lock>,
    anchor: String,
    aggregates: Vec<String>,
) -> Result<EventEntry, CatalogError> {
    // Every version some type decodes, and every version the lock recorded under this name.
    let mut versions: BTreeSet<u32> = types
        .iter()
        .flat_map(|t| t.oldest_version.max(1)..=t.version)
        .collect();
    if let Some(lock) = lock {
        versions.extend(lock.events().filter(|e| e.name == name).map(|e| e.version));
    }
    let steps: Vec<UpcastStep> = types
        .iter()
        .flat_map(|t| t.upcasts.iter().copied())
        .collect();

    let mut entries: Vec<VersionEntry> = Vec::with_capacity(versions.len());
    for version in versions {
        let writer = types.iter().find(|t| t.version == version);
        let locked = lock.and_then(|l| l.get(name, version));
        let code = match writer {
            Some(t) => Some(registered_shape(t.shape, t.fields).map_err(|message| {
                CatalogError::Shape {
                    type_name: t.type_name,
                    message,
                }
            })?),
            None => None,
        };
        let lock_differs = match (&code, locked) {
            (Some(code), Some(locked)) => locked.shape.diff(code),
            _ => Vec::new(),
        };
        let (shape, source) = match (code, locked) {
            (Some(code), _) => (Some(code), ShapeSource::Code),
            (None, Some(locked)) => (Some(locked.shape.clone()), ShapeSource::Lock),
            (None, None) => (None, ShapeSource::Unknown),
        };
        let previous = entries.last();
        let diff = match (previous.and_then(|p| p.shape.as_ref()), &shape) {
            (Some(before), Some(after)) => {
                previous.map(|p| VersionDiff::between(p.version, before, version, after))
            }
            _ => None,
        };
        entries.push(VersionEntry {
            version,
            type_name: writer.map(|t| t.type_name.to_owned()).or_else(|| {
                locked
                    .map(|l| l.type_name.clone())
                    .filter(|t| !t.is_empty())
            }),
            shape,
            source,
            locked: locked.is_some(),
            lock_differs,
            upcast: steps.iter().find(|s| s.to == version).copied(),
            diff,
        });
    }

    // The newest type speaks for the event; there is at least one, as the name came from it.
    let newest = types.last();
    let mut aliases: Vec<String> = types
        .iter()
        .flat_map(|t| t.aliases.iter().map(|a| (*a).to_owned()))
        .collect();
    aliases.sort();
    aliases.dedup();
    Ok(EventEntry {
        name: name.to_owned(),
        anchor,
        type_name: newest.map(|t| t.type_name.to_owned()).unwrap_or_default(),
        latest: newest.map_or(0, |t| t.version),
        doc: newest.map(|t| t.doc.to_owned()).unwrap_or_default(),
        aliases,
        personal: newest.map_or(PersonalData::None, |t| t.personal),
        aggregates,
        versions: entries,
    })
}

/// An upcaster step's kind and what it runs, as the catalog words them (with `` `code` ``).
pub(crate) fn upcast_words(step: &UpcastStep) -> (&'static str, String) {
    match step.kind {
        UpcastKind::Function => ("function over the stored JSON", format!("`{}`", step.with)),
        UpcastKind::Typed => ("typed, through `From`", format!("`From<{}>`", step.with)),
    }
}

/// One field as the catalog writes it: `name: Type #[serde(...)]`.
pub(crate) fn field_text(field: &Field) -> String {
    let mut text = format!("{}: {}", field.name, field.ty);
    for attr in &field.attrs {
        text.push(' ');
        text.push_str(attr);
    }
    text
}

/// Renders a sentence with `` `code` `` spans (as the lock words changes): `text` renders the
/// parts between spans, `code` the spans; with an unpaired backtick, it is all text.
pub(crate) fn with_code_spans(
    sentence: &str,
    text: impl Fn(&str) -> String,
    code: impl Fn(&str) -> String,
) -> String {
    let parts: Vec<&str> = sentence.split('`').collect();
    if !parts.len().is_multiple_of(2) {
        return parts
            .iter()
            .enumerate()
            .map(|(i, part)| if i % 2 == 1 { code(part) } else { text(part) })
            .collect();
    }
    text(sentence)
}

/// A doc comment as the catalog shows it: rustdoc's intra-doc links (`` [`Type`] ``), which
/// lead nowhere outside rustdoc, become plain code (`` `Type` ``); Markdown links stay.
pub(crate) fn doc_for_catalog(doc: &str) -> String {
    let mut out = String::with_capacity(doc.len());
    let mut rest = doc;
    while let Some(start) = rest.find("[`") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("`]") else { break };
        let inner = &after[..end];
        let tail = &after[end + 2..];
        out.push_str(&rest[..start]);
        if inner.contains('`') || tail.starts_with('(') || tail.starts_with('[') {
            // Not an intra-doc link: keep it as written.
            out.push_str(&rest[start..start + 2 + end + 2]);
        } else {
            out.push('`');
            out.push_str(inner);
            out.push('`');
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// `v1–v3` or `v1`.
pub(crate) fn versions_span(event: &EventEntry) -> String {
    match (event.versions.first(), event.versions.last()) {
        (Some(first), Some(last)) if first.version != last.version => {
            format!("v{}–v{}", first.version, last.version)
        }
        (Some(only), _) => format!("v{}", only.version),
        _ => String::new(),
    }
}

/// `Deposited` → `deposited`: lower-case letters and digits, other runs as one `-`.
fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-');
    if out.is_empty() {
        "x".to_owned()
    } else {
        out.to_owned()
    }
}

/// Hands out fragment identifiers, each once (`a`, `a-2`, …): two names may slug alike.
#[derive(Default)]
struct Anchors {
    used: BTreeSet<String>,
}

impl Anchors {
    fn unique(&mut self, wanted: &str) -> String {
        let mut candidate = wanted.to_owned();
        let mut n = 1;
        while self.used.contains(&candidate) {
            n += 1;
            candidate = format!("{wanted}-{n}");
        }
        self.used.insert(candidate.clone());
        candidate
    }
}

#[cfg(test)]
mod tests;
