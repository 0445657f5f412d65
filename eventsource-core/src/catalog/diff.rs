//! What changed between two consecutive versions of an event, as rows for a side-by-side view:
//! each field of the older version next to the same field of the newer one.

use crate::schema::{Change, Field, Shape};

/// The changes from one version of an event to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionDiff {
    /// The older version.
    pub from: u32,
    /// The newer version.
    pub to: u32,
    /// One row per field of either version, each field next to the same field of the other
    /// version: both versions' fields in their order, a removed field where it was, an added
    /// one where it is.
    pub rows: Vec<DiffRow>,
    /// Every change, as the schema lock names them (including what rows can't show: the
    /// type's serde attributes, a reordering); [`Change::sentence`] words each.
    pub changes: Vec<Change>,
}

/// One row of a side-by-side diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffRow {
    /// The field in the older version (`None`: added).
    pub before: Option<Field>,
    /// The field in the newer version (`None`: removed).
    pub after: Option<Field>,
    /// What happened to it.
    pub status: RowStatus,
}

/// What happened to one field between two versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowStatus {
    /// The same name, type and serde attributes.
    Same,
    /// Only the newer version has it.
    Added,
    /// Only the older version has it.
    Removed,
    /// Both have it, with another type, other serde attributes, or a type that holds something
    /// else now (its shape's fingerprint differs).
    Changed,
}

impl RowStatus {
    /// A word for it: `same`, `added`, `removed`, `changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            RowStatus::Same => "same",
            RowStatus::Added => "added",
            RowStatus::Removed => "removed",
            RowStatus::Changed => "changed",
        }
    }
}

impl VersionDiff {
    /// The diff from `before` (version `from`) to `after` (version `to`).
    pub fn between(from: u32, before: &Shape, to: u32, after: &Shape) -> VersionDiff {
        VersionDiff {
            from,
            to,
            rows: rows(before, after),
            changes: before.changes(after),
        }
    }

    /// The changes the rows can't show by themselves, in sentences: the type's serde attributes,
    /// a reordering, a field whose type reads the same but holds something else now.
    pub fn notes(&self) -> impl Iterator<Item = String> + '_ {
        self.changes
            .iter()
            .filter(|c| {
                matches!(
                    c,
                    Change::ContainerAttrs { .. } | Change::Reordered | Change::Reshaped { .. }
                )
            })
            .map(Change::sentence)
    }

    /// Whether nothing changed (a version raised without changing the shape: the upcaster
    /// changed the values, not the fields).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Walks both field lists in order. A field of the older version that the newer one lacks is
/// a removed row where it stood; a field only the newer version has is an added row where it
/// stands; a field both have is one row, at its place in the newer version (a moved field's old
/// place is skipped).
fn rows(before: &Shape, after: &Shape) -> Vec<DiffRow> {
    let in_after = |name: &str| after.fields.iter().any(|f| f.name == name);
    let in_before = |name: &str| before.fields.iter().find(|f| f.name == name);
    let mut rows = Vec::with_capacity(before.fields.len().max(after.fields.len()));
    let mut old = before.fields.iter().peekable();
    for new in &after.fields {
        // The removed fields that stood before this one's old place (or before it, if new).
        while let Some(field) = old.next_if(|f| !in_after(&f.name)) {
            rows.push(DiffRow {
                before: Some(field.clone()),
                after: None,
                status: RowStatus::Removed,
            });
        }
        match in_before(&new.name) {
            Some(field) => {
                if old.peek().is_some_and(|f| f.name == new.name) {
                    old.next();
                }
                rows.push(DiffRow {
                    before: Some(field.clone()),
                    after: Some(new.clone()),
                    status: if same_field(field, new) {
                        RowStatus::Same
                    } else {
                        RowStatus::Changed
                    },
                });
            }
            None => rows.push(DiffRow {
                before: None,
                after: Some(new.clone()),
                status: RowStatus::Added,
            }),
        }
    }
    // What is left: removed fields after the last kept one, and the old places of moved ones.
    rows.extend(old.filter(|f| !in_after(&f.name)).map(|field| DiffRow {
        before: Some(field.clone()),
        after: None,
        status: RowStatus::Removed,
    }));
    rows
}

/// The same field as far as stored events are concerned: type, attributes, and, where both
/// sides know it, what the type holds.
fn same_field(old: &Field, new: &Field) -> bool {
    let reshaped = matches!((old.shape, new.shape), (Some(a), Some(b)) if a != b);
    old.ty == new.ty && old.attrs == new.attrs && !reshaped
}
