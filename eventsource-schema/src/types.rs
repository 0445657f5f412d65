//! Nested types in the lock: a struct or an enum stored inside events (`Address` in `Opened`)
//! is locked once, as a `type` block, with the events and paths that store it.

use std::fmt;

use crate::fingerprint::{START, number, text};
use crate::{Field, Shape};

/// What kind of type a nested type is; part of its stored shape (a unit struct is stored as
/// `null`, an empty braced struct as `{}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TypeKind {
    /// `struct A { .. }`.
    Struct,
    /// `struct A(..);`.
    TupleStruct,
    /// `struct A;`.
    UnitStruct,
    /// `enum A { .. }`.
    Enum,
}

impl TypeKind {
    /// The word the lock file uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            TypeKind::Struct => "struct",
            TypeKind::TupleStruct => "tuple_struct",
            TypeKind::UnitStruct => "unit_struct",
            TypeKind::Enum => "enum",
        }
    }

    /// The kind named by `word`.
    pub fn parse(word: &str) -> Option<TypeKind> {
        [
            TypeKind::Struct,
            TypeKind::TupleStruct,
            TypeKind::UnitStruct,
            TypeKind::Enum,
        ]
        .into_iter()
        .find(|k| k.as_str() == word)
    }
}

impl fmt::Display for TypeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a locked nested type is stored: in event `event` version `version`, at `path`
/// (`Opened.address`, starting with the event's stored name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoredAt {
    /// The event's stored name.
    pub event: String,
    /// Its schema version.
    pub version: u32,
    /// The field path from the event to the type: `Opened.address.home`.
    pub path: String,
}

impl fmt::Display for StoredAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` (`{}` version {})",
            self.path, self.event, self.version
        )
    }
}

/// One locked nested type: its stored shape (kind, serde attributes, fields or variants, each
/// field with the fingerprint of its own type) and where events store it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedType {
    /// The name it is locked under: the type's name, or `#[event_data(name = "…")]`.
    pub name: String,
    /// The Rust type that had this shape when it was locked (informational).
    pub type_name: String,
    /// Struct, tuple struct, unit struct or enum.
    pub kind: TypeKind,
    /// Its fields (for an enum, its variants and their fields, as for an enum event).
    pub shape: Shape,
    /// Where locked events store it.
    pub stored_at: Vec<StoredAt>,
}

impl LockedType {
    /// The fingerprint of the type's stored shape: what `EventData::FINGERPRINT` is for the type
    /// in `eventsource-core`, computed the same way (see [`shape_fingerprint`]).
    pub fn fingerprint(&self) -> u64 {
        shape_fingerprint(self.kind, &self.shape)
    }
}

/// The fingerprint of a nested type's stored shape, from its kind, serde attributes and fields
/// (names, serde attributes, and each field's type fingerprint or, where it has none, its type
/// as written). The type's own name is not part of it: renaming a type doesn't change what is
/// stored. `#[derive(EventData)]` emits this same fold as a constant, piece by piece
/// ([`crate::fingerprint`]).
pub fn shape_fingerprint(kind: TypeKind, shape: &Shape) -> u64 {
    let mut hash = text(START, kind.as_str());
    hash = number(hash, shape.attrs.len() as u64);
    for attr in &shape.attrs {
        hash = text(hash, attr);
    }
    hash = number(hash, shape.fields.len() as u64);
    for field in &shape.fields {
        hash = field_fingerprint(hash, field);
    }
    hash
}

fn field_fingerprint(mut hash: u64, field: &Field) -> u64 {
    hash = text(hash, &field.name);
    hash = number(hash, field.attrs.len() as u64);
    for attr in &field.attrs {
        hash = text(hash, attr);
    }
    match field.shape {
        Some(shape) => number(number(hash, 1), shape),
        None => text(number(hash, 0), &field.ty),
    }
}
