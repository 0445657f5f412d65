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
    /// One row per field of either version: the older version's fields in their order (each
    /// next to the same field in the newer version, or alone if it was removed), then the
    /// fields the newer version added, in its order.
    pub rows: Vec<DiffRow>,
    /// Every change in a sentence, in the schema lock's words (including what rows can't show:
    /// the type's serde attributes, a reordering).
    pub changes: Vec<String>,
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
        let mut rows: Vec<DiffRow> = before
            .fields
            .iter()
            .map(|old| match after.fields.iter().find(|f| f.name == old.name) {
                Some(new) => DiffRow {
                    before: Some(old.clone()),
                    after: Some(new.clone()),
                    status: if same_field(old, new) {
                        RowStatus::Same
                    } else {
                        RowStatus::Changed
                    },
                },
                None => DiffRow {
                    before: Some(old.clone()),
                    after: None,
                    status: RowStatus::Removed,
                },
            })
            .collect();
        rows.extend(
            after
                .fields
                .iter()
                .filter(|new| !before.fields.iter().any(|old| old.name == new.name))
                .map(|new| DiffRow {
                    before: None,
                    after: Some(new.clone()),
                    status: RowStatus::Added,
                }),
        );
        VersionDiff {
            from,
            to,
            rows,
            changes: before.changes(after).iter().map(Change::sentence).collect(),
        }
    }

    /// Whether nothing changed (a version raised without changing the shape: the upcaster
    /// changed the values, not the fields).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// The same field as far as stored events are concerned: type, attributes, and, where both
/// sides know it, what the type holds.
fn same_field(old: &Field, new: &Field) -> bool {
    let reshaped = matches!((old.shape, new.shape), (Some(a), Some(b)) if a != b);
    old.ty == new.ty && old.attrs == new.attrs && !reshaped
}
