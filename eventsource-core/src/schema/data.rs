//! [`EventData`]: the stored shape of every type an event holds, so that the schema lock sees
//! inside `address: Address` and `currency: Currency`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::rc::Rc;
use std::sync::Arc;

use eventsource_schema::fingerprint::{START, number, text};

/// A type that events may store in their fields, with a fingerprint of its stored shape.
///
/// `#[derive(Event)]` requires it of every field's type, and records each field's
/// [`FINGERPRINT`](EventData::FINGERPRINT) in `events.lock`: a fingerprint covers everything the
/// type holds, however deep, so changing a struct used inside a locked event (a field of
/// `Address` in `Opened`) fails the build like changing the event itself.
///
/// It is implemented here for what events usually hold (numbers, `bool`, `char`, `String`,
/// [`Uuid`](uuid::Uuid), `Option`, `Box`, `Vec` and the other sequences, maps, sets, arrays,
/// tuples, `SystemTime`, `Duration`, and [`serde_json::Value`], which is locked as "any JSON").
/// Fingerprints follow the stored format, not the Rust type: `Vec<T>` and `BTreeSet<T>` are
/// both a sequence of `T`, `HashMap` and `BTreeMap` both a map.
///
/// For your own structs and enums, derive it:
///
/// ```
/// use eventsource_core::{Event, EventData};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(EventData, Serialize, Deserialize)]
/// struct Address { street: String, postcode: String }
///
/// #[derive(Event, Serialize, Deserialize)]
/// struct Opened { owner: String, address: Address }
/// ```
///
/// A type from another crate can't get this trait from your crate (Rust's orphan rule): mark the
/// field `#[event(opaque)]` (`#[event_data(opaque)]` in a nested type). It is then locked by its
/// type as written, as every field was before nested types were locked, and changes inside it go
/// unseen. A field with `#[serde(skip)]` or `#[serde(with = "…")]` (or `serialize_with`,
/// `deserialize_with`) is locked that way too: its type doesn't decide what is stored.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is stored in an event, but the schema lock can't see its shape",
    label = "`{Self}` is not `EventData`",
    note = "derive it where `{Self}` is defined: `#[derive(EventData, Serialize, Deserialize)]` (`use eventsource_core::EventData;`), so that changing `{Self}` fails the build like changing the event that stores it",
    note = "for a type from another crate, mark the field `#[event(opaque)]` (in a nested type: `#[event_data(opaque)]`); it is then locked by its type as written, and changes inside it go unseen"
)]
pub trait EventData {
    /// A fingerprint of the stored shape: for a derived type, its kind, serde attributes, and
    /// each field's name, serde attributes and type fingerprint (the type's own name is not part
    /// of it: renaming a type doesn't change what is stored).
    const FINGERPRINT: u64;

    /// Adds the derived types this type holds (itself, for a derived type; `T`'s for `Vec<T>`;
    /// none for a number), so the lock writer can record where each is stored.
    fn reach(types: &mut Vec<&'static DataShape>) {
        let _ = types;
    }
}

/// The stored shape of a `#[derive(EventData)]` type, for writing its `type` block in the lock.
/// Written by the derive.
#[derive(Debug)]
pub struct DataShape {
    /// The name it is locked under: the type's name or `#[event_data(name = "…")]`.
    pub name: &'static str,
    /// The Rust type, as `module::Type`.
    pub type_name: &'static str,
    /// `struct`, `tuple_struct`, `unit_struct` or `enum`.
    pub kind: &'static str,
    /// Its fields in the lock's canonical text, as the derive saw them.
    pub shape: &'static str,
    /// One entry per line of `shape`: the fingerprint of the field's type and the types it
    /// reaches.
    pub fields: &'static [FieldShape],
    /// [`EventData::FINGERPRINT`].
    pub fingerprint: u64,
}

/// The type of one field of a stored shape (an event's or a nested type's). Written by the
/// derives.
#[derive(Debug, Clone, Copy)]
pub struct FieldShape {
    /// `<FieldType as EventData>::FINGERPRINT`; `None` for a variant line or a field locked by
    /// its type as written (opaque).
    pub fingerprint: Option<u64>,
    /// `<FieldType as EventData>::reach`.
    pub reach: fn(&mut Vec<&'static DataShape>),
}

impl FieldShape {
    /// A field of type `T`.
    pub const fn of<T: EventData + ?Sized>() -> Self {
        FieldShape {
            fingerprint: Some(T::FINGERPRINT),
            reach: T::reach,
        }
    }

    /// A variant line, or a field locked by its type as written.
    pub const AS_WRITTEN: Self = FieldShape {
        fingerprint: None,
        reach: reach_nothing,
    };
}

fn reach_nothing(_: &mut Vec<&'static DataShape>) {}

const fn named(name: &str) -> u64 {
    text(START, name)
}

macro_rules! leaf {
    ($($ty:ty => $name:literal),* $(,)?) => {$(
        impl EventData for $ty {
            const FINGERPRINT: u64 = named($name);
        }
    )*};
}

leaf! {
    () => "unit",
    bool => "bool",
    char => "char",
    u8 => "u8", u16 => "u16", u32 => "u32", u64 => "u64", u128 => "u128", usize => "usize",
    i8 => "i8", i16 => "i16", i32 => "i32", i64 => "i64", i128 => "i128", isize => "isize",
    f32 => "f32", f64 => "f64",
    String => "string", str => "string",
    uuid::Uuid => "uuid",
    serde_json::Value => "any json",
    std::time::SystemTime => "system time",
    std::time::Duration => "duration",
}

/// Stored as the type it points to.
macro_rules! transparent {
    ($($ptr:ident),*) => {$(
        impl<T: EventData + ?Sized> EventData for $ptr<T> {
            const FINGERPRINT: u64 = T::FINGERPRINT;
            fn reach(types: &mut Vec<&'static DataShape>) {
                T::reach(types);
            }
        }
    )*};
}

transparent!(Box, Arc, Rc);

impl<T: EventData + ?Sized> EventData for &T {
    const FINGERPRINT: u64 = T::FINGERPRINT;
    fn reach(types: &mut Vec<&'static DataShape>) {
        T::reach(types);
    }
}

impl<T: EventData> EventData for Option<T> {
    const FINGERPRINT: u64 = number(named("option"), T::FINGERPRINT);
    fn reach(types: &mut Vec<&'static DataShape>) {
        T::reach(types);
    }
}

/// Stored as a sequence of `T`.
macro_rules! sequence {
    ($($seq:ident<T $(, $s:ident)?>),*) => {$(
        impl<T: EventData $(, $s: BuildHasher)?> EventData for $seq<T $(, $s)?> {
            const FINGERPRINT: u64 = number(named("seq"), T::FINGERPRINT);
            fn reach(types: &mut Vec<&'static DataShape>) {
                T::reach(types);
            }
        }
    )*};
}

sequence!(Vec<T>, VecDeque<T>, BTreeSet<T>, HashSet<T, S>);

impl<T: EventData> EventData for [T] {
    const FINGERPRINT: u64 = number(named("seq"), T::FINGERPRINT);
    fn reach(types: &mut Vec<&'static DataShape>) {
        T::reach(types);
    }
}

impl<T: EventData, const N: usize> EventData for [T; N] {
    const FINGERPRINT: u64 = number(number(named("array"), N as u64), T::FINGERPRINT);
    fn reach(types: &mut Vec<&'static DataShape>) {
        T::reach(types);
    }
}

impl<K: EventData, V: EventData> EventData for BTreeMap<K, V> {
    const FINGERPRINT: u64 = number(number(named("map"), K::FINGERPRINT), V::FINGERPRINT);
    fn reach(types: &mut Vec<&'static DataShape>) {
        K::reach(types);
        V::reach(types);
    }
}

impl<K: EventData, V: EventData, S: BuildHasher> EventData for HashMap<K, V, S> {
    const FINGERPRINT: u64 = <BTreeMap<K, V> as EventData>::FINGERPRINT;
    fn reach(types: &mut Vec<&'static DataShape>) {
        K::reach(types);
        V::reach(types);
    }
}

macro_rules! tuple {
    ($len:literal: $($t:ident),+) => {
        impl<$($t: EventData),+> EventData for ($($t,)+) {
            const FINGERPRINT: u64 = {
                let hash = number(named("tuple"), $len);
                $(let hash = number(hash, $t::FINGERPRINT);)+
                hash
            };
            fn reach(types: &mut Vec<&'static DataShape>) {
                $($t::reach(types);)+
            }
        }
    };
}

tuple!(1: A);
tuple!(2: A, B);
tuple!(3: A, B, C);
tuple!(4: A, B, C, D);
tuple!(5: A, B, C, D, E);
tuple!(6: A, B, C, D, E, F);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_follow_the_stored_format() {
        assert_eq!(
            <Vec<u64> as EventData>::FINGERPRINT,
            <BTreeSet<u64> as EventData>::FINGERPRINT
        );
        assert_eq!(
            <HashMap<String, u8> as EventData>::FINGERPRINT,
            <BTreeMap<String, u8> as EventData>::FINGERPRINT
        );
        assert_eq!(
            <Box<str> as EventData>::FINGERPRINT,
            <String as EventData>::FINGERPRINT
        );
        assert_ne!(
            <Vec<u64> as EventData>::FINGERPRINT,
            <Vec<u32> as EventData>::FINGERPRINT
        );
        assert_ne!(
            <[u8; 2] as EventData>::FINGERPRINT,
            <[u8; 3] as EventData>::FINGERPRINT
        );
        assert_ne!(
            <Option<String> as EventData>::FINGERPRINT,
            <String as EventData>::FINGERPRINT
        );
        assert_ne!(
            <(u8, u16) as EventData>::FINGERPRINT,
            <(u16, u8) as EventData>::FINGERPRINT
        );
    }
}
