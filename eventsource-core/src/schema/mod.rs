//! The schema lock: keeping every stored event version decodable.
//!
//! `events.lock`, at the root of the crate that defines the events, records the stored shape of
//! every event version: its fields in order, their types as written, and its serde attributes.
//! `#[derive(Event)]` reads it while compiling: if a locked version's shape changes, the build
//! fails on the struct, naming the fields that changed and the fix (keep the shape, or raise the
//! version and add an upcaster from the locked shape).
//!
//! The lock is written from the [registry] by a test in the crate that owns the
//! events. Add one:
//!
//! ```no_run
//! #[test]
//! fn schema_lock_is_up_to_date() {
//!     eventsource_core::check_schema_lock!();
//! }
//! ```
//!
//! and run it in one of three modes, chosen by the `EVENTSOURCE_LOCK` environment variable:
//!
//! | command | what it does |
//! |---|---|
//! | `cargo test` | fails if an event version is not locked yet, or the lock disagrees with the code |
//! | `EVENTSOURCE_LOCK=write cargo test` | adds new event versions to the lock; never rewrites a locked one |
//! | `EVENTSOURCE_LOCK=overwrite cargo test` | also rewrites locked versions whose shape changed (only when no such event was ever stored) |
//!
//! What one macro expansion can't see is checked here as well, every problem at once: a locked
//! version that no upcaster chain reaches any more (an upcaster was removed), a locked event name
//! that no type carries (renamed without `#[event(name = "…")]`), and two types claiming one name
//! and version.
//!
//! **Nested types.** Every type an event's fields hold is part of its locked shape. Each field's
//! type must be [`EventData`] (derive it on your structs and enums; the common std types, `Uuid`
//! and `serde_json::Value` have it), and the lock records, per field, a fingerprint of
//! everything the type holds, and, once per nested type, a `type` block with its fields and the
//! events that store it:
//!
//! ```text
//! event "Opened" v1 type=bank::Opened fingerprint=…
//!     owner: String shape=…
//!     address: Address shape=…
//!
//! type "Address" struct type=bank::Address fingerprint=…
//!     in "Opened" v1 at Opened.address
//!     street: String shape=…
//!     postcode: String shape=…
//! ```
//!
//! Changing `Address` then fails the build on `Address` (which fields changed, and which stored
//! events hold it), and on every locked event whose field reaches it. A type from another crate
//! is locked by its type as written: mark the field `#[event(opaque)]`. A lock written before
//! nested types were locked still reads, and its events are checked as before; `cargo test`
//! asks for `EVENTSOURCE_LOCK=write cargo test` once, which adds the fingerprints and type
//! blocks without changing any locked shape.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::registry::{self, EventRegistration};

mod data;

pub use data::{DataShape, EventData, FieldShape};
/// The lock's model, for tools that read `events.lock` (the [event catalog](crate::catalog)).
pub use eventsource_schema::{
    Change, Field, LOCK_FILE, Lock, LockedEvent, LockedType, ParseError, Shape, StoredAt, TypeKind,
};

/// How [`check_lock`] treats differences between the code and the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Report every difference as an error.
    Check,
    /// Add new event versions; report locked versions that changed.
    Write,
    /// Add new versions and rewrite changed ones.
    Overwrite,
}

impl LockMode {
    /// The mode named by `EVENTSOURCE_LOCK` (`write`, `overwrite`; anything else checks).
    pub fn from_env() -> Self {
        match std::env::var("EVENTSOURCE_LOCK").as_deref() {
            Ok("write") => LockMode::Write,
            Ok("overwrite") => LockMode::Overwrite,
            _ => LockMode::Check,
        }
    }
}

/// What is wrong between the code and its schema lock. Its `Display` lists everything and says
/// what to do.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LockReport {
    /// The lock file.
    pub path: PathBuf,
    /// Event versions in the code that the lock doesn't have yet.
    pub unlocked: Vec<(String, u32)>,
    /// Locked versions whose shape in the code differs, with the changes.
    pub changed: Vec<(String, u32, Vec<String>)>,
    /// Locked versions whose fields' type fingerprints are not recorded yet (a lock written
    /// before nested types were locked).
    pub incomplete: Vec<(String, u32)>,
    /// Nested types stored in events that the lock doesn't have yet.
    pub unlocked_types: Vec<String>,
    /// Locked nested types whose shape in the code differs, with the changes, each at the
    /// paths of the events that store it.
    pub changed_types: Vec<(String, Vec<String>)>,
    /// Locked versions that no registered type's upcaster chain decodes any more.
    pub unreachable: Vec<(String, u32)>,
    /// Locked event names that no registered type writes or lists in `aliases(...)`.
    pub orphaned: Vec<String>,
    /// Problems of the registry itself (duplicate names and versions, …).
    pub registry: Vec<String>,
    /// The lock file could not be read or written.
    pub io: Option<String>,
}

impl LockReport {
    fn is_clean(&self) -> bool {
        self.unlocked.is_empty()
            && self.changed.is_empty()
            && self.incomplete.is_empty()
            && self.unlocked_types.is_empty()
            && self.changed_types.is_empty()
            && self.unreachable.is_empty()
            && self.orphaned.is_empty()
            && self.registry.is_empty()
            && self.io.is_none()
    }
}

impl fmt::Display for LockReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        writeln!(f, "the schema lock {path} does not match the code:")?;
        if let Some(io) = &self.io {
            writeln!(f, "  - {io}")?;
        }
        for (name, version) in &self.unlocked {
            writeln!(f, "  - `{name}` version {version} is not locked yet")?;
        }
        for (name, version, changes) in &self.changed {
            writeln!(
                f,
                "  - `{name}` version {version} changed shape: {}",
                changes.join("; ")
            )?;
        }
        for (name, version) in &self.incomplete {
            writeln!(
                f,
                "  - `{name}` version {version} is locked without the shapes of its fields' types (a lock from before nested types were locked)"
            )?;
        }
        for name in &self.unlocked_types {
            writeln!(
                f,
                "  - type `{name}` is stored in events but not locked yet"
            )?;
        }
        for (name, changes) in &self.changed_types {
            writeln!(f, "  - type `{name}` changed shape: {}", changes.join("; "))?;
        }
        for (name, version) in &self.unreachable {
            writeln!(
                f,
                "  - `{name}` version {version} is locked (so it may be stored) but no upcaster chain decodes it any more: restore the upcaster from version {version}"
            )?;
        }
        for name in &self.orphaned {
            writeln!(
                f,
                "  - `{name}` is locked (so events may be stored under it) but no event type decodes that name any more: if the type was renamed, keep the stored name with `#[event(name = \"{name}\")]` or list it in `#[event(aliases(\"{name}\"))]`; if the event was retired, keep its type (its `Apply` may do nothing) so stored records still decode"
            )?;
        }
        for problem in &self.registry {
            writeln!(f, "  - {problem}")?;
        }
        if !self.unlocked.is_empty()
            || !self.incomplete.is_empty()
            || !self.unlocked_types.is_empty()
        {
            writeln!(
                f,
                "Lock new event versions and types with `EVENTSOURCE_LOCK=write cargo test` and commit {LOCK_FILE}."
            )?;
        }
        if !self.changed_types.is_empty() {
            writeln!(
                f,
                "A nested type has no version of its own: keep the locked type as it is, and store the new shape as a new type in a new version of each event that holds it, with an upcaster."
            )?;
        }
        if !self.changed.is_empty() {
            writeln!(
                f,
                "A locked version's shape must not change once events are stored: raise the version and add an upcaster. \
                 If no event of that version was ever stored, `EVENTSOURCE_LOCK=overwrite cargo test` rewrites it."
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for LockReport {}

/// Checks (or writes, per [`LockMode::from_env`]) the lock of the package whose test calls it.
/// Panics with the full report, as a test assertion should.
#[macro_export]
macro_rules! check_schema_lock {
    () => {
        if let ::core::result::Result::Err(report) = $crate::schema::check_lock(
            ::core::env!("CARGO_MANIFEST_DIR"),
            ::core::env!("CARGO_PKG_NAME"),
            $crate::schema::LockMode::from_env(),
        ) {
            ::core::panic!("{report}");
        }
    };
}

/// Compares the registered events of `package` (the events whose Rust type is defined in that
/// package's library) with `<manifest_dir>/events.lock`, writing the lock as `mode` allows.
// The report is large, but this runs once per test run; keeping it unboxed keeps its fields
// easy to match on.
#[allow(clippy::result_large_err)]
pub fn check_lock(
    manifest_dir: impl AsRef<Path>,
    package: &str,
    mode: LockMode,
) -> Result<(), LockReport> {
    let crate_prefix = format!("{}::", package.replace('-', "_"));
    let events: Vec<&'static EventRegistration> = registry::events()
        .filter(|e| e.type_name.starts_with(&crate_prefix))
        .collect();
    let aggregates: Vec<_> = registry::aggregates()
        .filter(|a| a.type_name.starts_with(&crate_prefix))
        .collect();
    let path = manifest_dir.as_ref().join(LOCK_FILE);
    let mut report = LockReport {
        path: path.clone(),
        ..LockReport::default()
    };

    let mut lock = match std::fs::read_to_string(&path) {
        Ok(text) => match Lock::parse(&text) {
            Ok(lock) => lock,
            Err(error) => {
                report.io = Some(error.to_string());
                return Err(report);
            }
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Lock::default(),
        Err(error) => {
            report.io = Some(format!("cannot read {}: {error}", path.display()));
            return Err(report);
        }
    };

    if let Err(problems) = registry::validate() {
        report.registry = problems.0.iter().map(ToString::to_string).collect();
    }

    let mut changed_lock = false;
    let mut reached = Reached::default();
    for event in &events {
        let shape = match registered_shape(event.shape, event.fields) {
            Ok(shape) => shape,
            Err(error) => {
                report.io = Some(format!(
                    "the registered shape of `{}` is unreadable: {error}",
                    event.type_name
                ));
                continue;
            }
        };
        for (field, types) in shape.fields.iter().zip(event.fields) {
            let path = format!("{}.{}", event.name, field.name);
            reached.walk(types, event.name, event.version, &path);
        }
        let current = LockedEvent::new(event.name, event.version, event.type_name, shape);
        match lock.get(event.name, event.version) {
            None if mode == LockMode::Check => {
                report.unlocked.push((event.name.to_owned(), event.version))
            }
            None => {
                lock.insert(current);
                changed_lock = true;
            }
            Some(locked) => {
                let changes = locked.shape.diff(&current.shape);
                if changes.is_empty() {
                    // The same shape; a lock from before nested types were locked lacks the
                    // fingerprints of the fields' types, which writing adds.
                    if locked.shape != current.shape {
                        if mode == LockMode::Check {
                            report
                                .incomplete
                                .push((event.name.to_owned(), event.version));
                        } else {
                            lock.insert(current);
                            changed_lock = true;
                        }
                    }
                    continue;
                }
                if mode == LockMode::Overwrite {
                    lock.insert(current);
                    changed_lock = true;
                } else {
                    report
                        .changed
                        .push((event.name.to_owned(), event.version, changes));
                }
            }
        }
    }

    changed_lock |= reached.lock_types(&mut lock, mode, &mut report);

    // Reachability: every locked version of a name must be decodable by some registered type.
    let mut ranges: BTreeMap<&str, Vec<(u32, u32)>> = BTreeMap::new();
    for event in registry::events() {
        // A name the event was renamed from reaches the same versions through its chain.
        for name in std::iter::once(event.name).chain(event.aliases.iter().copied()) {
            ranges
                .entry(name)
                .or_default()
                .push((event.oldest_version, event.version));
        }
    }
    let mut orphaned = BTreeSet::new();
    for locked in lock.events() {
        match ranges.get(locked.name.as_str()) {
            None => {
                orphaned.insert(locked.name.clone());
            }
            Some(spans)
                if !spans
                    .iter()
                    .any(|(lo, hi)| (*lo..=*hi).contains(&locked.version)) =>
            {
                report
                    .unreachable
                    .push((locked.name.clone(), locked.version));
            }
            Some(_) => {}
        }
    }
    report.orphaned = orphaned.into_iter().collect();
    report.unlocked.sort();
    report.changed.sort();
    report.incomplete.sort();

    if mode != LockMode::Check {
        for aggregate in &aggregates {
            let listed: Vec<(String, u32)> = aggregate
                .events
                .iter()
                .map(|(n, v)| ((*n).to_owned(), *v))
                .collect();
            if lock
                .aggregates()
                .find(|(name, _)| name.as_str() == aggregate.name)
                .map(|(_, e)| e)
                != Some(&listed)
            {
                lock.set_aggregate(aggregate.name, listed);
                changed_lock = true;
            }
        }
        if changed_lock && let Err(error) = std::fs::write(&path, lock.render()) {
            report.io = Some(format!("cannot write {}: {error}", path.display()));
        }
    }
    if report.is_clean() {
        Ok(())
    } else {
        Err(report)
    }
}

/// A registered shape (the derive's canonical text) with the fingerprints of its fields' types.
pub(crate) fn registered_shape(text: &str, fields: &[FieldShape]) -> Result<Shape, String> {
    let mut shape = Shape::parse_canonical(text)?;
    if shape.fields.len() != fields.len() {
        return Err(format!(
            "{} fields but {} field types",
            shape.fields.len(),
            fields.len()
        ));
    }
    for (field, types) in shape.fields.iter_mut().zip(fields) {
        field.shape = types.fingerprint;
    }
    Ok(shape)
}

/// The nested types the package's events store, each with where.
#[derive(Default)]
struct Reached {
    types: BTreeMap<&'static str, (&'static DataShape, BTreeSet<StoredAt>)>,
    /// Two Rust types locked under one name.
    clashes: BTreeSet<(&'static str, &'static str, &'static str)>,
}

impl Reached {
    /// Records the types `field` reaches, stored at `path` in (`event`, `version`), and what
    /// they reach in turn.
    fn walk(&mut self, field: &FieldShape, event: &str, version: u32, path: &str) {
        let mut types = Vec::new();
        (field.reach)(&mut types);
        for data in types {
            let at = StoredAt {
                event: event.to_owned(),
                version,
                path: path.to_owned(),
            };
            let entry = self
                .types
                .entry(data.name)
                .or_insert_with(|| (data, BTreeSet::new()));
            if entry.0.type_name != data.type_name {
                let (a, b) = if entry.0.type_name < data.type_name {
                    (entry.0.type_name, data.type_name)
                } else {
                    (data.type_name, entry.0.type_name)
                };
                self.clashes.insert((data.name, a, b));
                continue;
            }
            // A recursive type reaches itself: each path is walked once.
            if !entry.1.insert(at) || path.matches('.').count() > 32 {
                continue;
            }
            let Ok(shape) = Shape::parse_canonical(data.shape) else {
                continue;
            };
            for (inner, types) in shape.fields.iter().zip(data.fields) {
                self.walk(types, event, version, &format!("{path}.{}", inner.name));
            }
        }
    }

    /// Compares the reached types with the lock's `type` blocks, writing them as `mode` allows.
    /// Returns whether the lock changed.
    fn lock_types(self, lock: &mut Lock, mode: LockMode, report: &mut LockReport) -> bool {
        let mut changed_lock = false;
        for (name, a, b) in self.clashes {
            report.registry.push(format!(
                "types `{a}` and `{b}` are both locked as `{name}`: give one `#[event_data(name = \"…\")]`"
            ));
        }
        for (name, (data, stored_at)) in self.types {
            let shape = match registered_shape(data.shape, data.fields) {
                Ok(shape) => shape,
                Err(error) => {
                    report.io = Some(format!(
                        "the registered shape of `{}` is unreadable: {error}",
                        data.type_name
                    ));
                    continue;
                }
            };
            let Some(kind) = TypeKind::parse(data.kind) else {
                report.io = Some(format!("`{}` has an unknown kind", data.type_name));
                continue;
            };
            let mut current = LockedType {
                name: name.to_owned(),
                type_name: data.type_name.to_owned(),
                kind,
                shape,
                stored_at: stored_at.into_iter().collect(),
            };
            let Some(locked) = lock.get_type(name) else {
                if mode == LockMode::Check {
                    report.unlocked_types.push(name.to_owned());
                } else {
                    lock.insert_type(current);
                    changed_lock = true;
                }
                continue;
            };
            let mut changes = Vec::new();
            if locked.kind != current.kind {
                changes.push(format!(
                    "it was a `{}`, it is now a `{}`",
                    locked.kind, current.kind
                ));
            }
            let at: Vec<String> = locked.stored_at.iter().map(|a| a.path.clone()).collect();
            for change in locked.shape.changes(&current.shape) {
                if at.is_empty() {
                    changes.push(change.sentence());
                } else {
                    changes.extend(at.iter().map(|path| change.at(path)));
                }
            }
            if !changes.is_empty() {
                if mode == LockMode::Overwrite {
                    lock.insert_type(current);
                    changed_lock = true;
                } else {
                    report.changed_types.push((name.to_owned(), changes));
                }
                continue;
            }
            // Where it is stored only grows: a locked event that stored it still may.
            let mut all: BTreeSet<StoredAt> = locked.stored_at.iter().cloned().collect();
            all.extend(current.stored_at);
            current.stored_at = all.into_iter().collect();
            if mode != LockMode::Check && *locked != current {
                lock.insert_type(current);
                changed_lock = true;
            }
        }
        report.unlocked_types.sort();
        changed_lock
    }
}
