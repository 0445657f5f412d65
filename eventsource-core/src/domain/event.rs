//! Events and the event enums the `Aggregate` derive generates.

use serde::Serialize;
use serde::de::DeserializeOwned;

use uuid::Uuid;

use crate::domain::personal::{DataSubject, ForgottenEvent};
use crate::error::{CodecError, DecodeError, UpcastError};
use crate::persistence::codec::Codec;

/// A domain event: a fact that happened, stored under a name and a schema version.
///
/// Implement it with `#[derive(Event)]`, which also writes the upcaster chain that decodes
/// payloads stored at older schema versions:
///
/// ```
/// use eventsource_core::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, PartialEq)]
/// #[event(name = "Deposited", version = 1)]
/// struct DepositedV1 { amount: u64 }
///
/// #[derive(Event, Serialize, Deserialize, Debug, PartialEq)]
/// #[event(version = 2, upcast_from = DepositedV1)]
/// struct Deposited { amount: u64, currency: String }
///
/// impl From<DepositedV1> for Deposited {
///     fn from(old: DepositedV1) -> Self {
///         Deposited { amount: old.amount, currency: "EUR".into() }
///     }
/// }
///
/// let old = Deposited::decode_stored(&Json, 1, br#"{"amount":5}"#).unwrap();
/// assert_eq!(old, Deposited { amount: 5, currency: "EUR".into() });
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event",
    label = "`{Self}` does not implement `Event`",
    note = "derive it: `#[derive(Event, Serialize, Deserialize)]` on `{Self}`"
)]
pub trait Event: Payload + Send + Sync + 'static {
    /// The name the event is stored under. Defaults to the type's name.
    const NAME: &'static str;

    /// The schema version new payloads are written at (from 1).
    const VERSION: u32;

    /// The oldest stored version this type's upcaster chain decodes (1 for a complete chain).
    const OLDEST_VERSION: u32 = Self::VERSION;

    /// Names this event was stored under before it was renamed (`#[event(aliases("Old"))]`).
    /// A record stored under one of them at schema version N decodes as this event's version
    /// N, through its upcaster chain; new records are always written under [`Event::NAME`].
    const ALIASES: &'static [&'static str] = &[];

    /// What this event decodes as once its data subject is forgotten:
    /// [`Forgotten<Self>`](crate::Forgotten) for an event marked `#[event(personal)]`,
    /// [`NotPersonal<Self>`](crate::NotPersonal) (which never happens) for the rest. See
    /// [`domain::personal`](crate::domain::personal).
    type Forgotten: ForgottenEvent;

    /// Whether the event names its data subject in a field (`#[event(personal(subject = f))]`):
    /// then an aggregate's state built from it holds another person's data.
    const SUBJECT_IN_FIELD: bool = false;

    /// Whose personal data this event holds, which decides the key it is encrypted with.
    fn data_subject(&self) -> DataSubject {
        DataSubject::None
    }

    /// Decodes a payload stored at `schema_version`, upcasting it to this version.
    fn decode_stored<C: Codec>(
        codec: &C,
        schema_version: u32,
        payload: &[u8],
    ) -> Result<Self, DecodeError>;
}

/// What an event's payload is made of: a type serde can serialize and deserialize. Implemented
/// for every `Serialize + DeserializeOwned` type; the derived code reaches serde only through it,
/// so an event type without `Serialize` or `Deserialize` gets one error, this trait's, that says
/// what to add (not serde's list of every type that does implement them).
#[diagnostic::on_unimplemented(
    message = "`{Self}` can't be stored as an event: it needs `Serialize` and `Deserialize`",
    label = "`{Self}` needs `#[derive(Serialize, Deserialize)]`",
    note = "events are stored as serde payloads: `#[derive(Event, Serialize, Deserialize)]` on `{Self}`, with `use serde::{{Deserialize, Serialize}};`"
)]
pub trait Payload: Sized {
    /// Encodes the value with `codec`.
    fn encode_payload<C: Codec>(&self, codec: &C) -> Result<Vec<u8>, CodecError>;
    /// Decodes a value encoded with `codec`.
    fn decode_payload<C: Codec>(codec: &C, bytes: &[u8]) -> Result<Self, CodecError>;
    /// The value as JSON (for a function upcaster's output, a catalog, a test's comparison).
    fn to_json(&self) -> Result<serde_json::Value, serde_json::Error>;
    /// The value from JSON.
    fn from_json(value: serde_json::Value) -> Result<Self, serde_json::Error>;
}

// Not recommended in diagnostics: a missing `Payload` is reported as itself, with its own
// message, instead of as serde's missing `Serialize` with every type that has one.
#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> Payload for T {
    fn encode_payload<C: Codec>(&self, codec: &C) -> Result<Vec<u8>, CodecError> {
        codec.encode(self)
    }
    fn decode_payload<C: Codec>(codec: &C, bytes: &[u8]) -> Result<Self, CodecError> {
        codec.decode(bytes)
    }
    fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }
    fn from_json(value: serde_json::Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(value)
    }
}

/// A function upcaster: turns a stored value at version `K` into the value at version `K + 1`.
pub type UpcastFn = fn(serde_json::Value) -> Result<serde_json::Value, UpcastError>;

/// The enum of an aggregate's events, generated by `#[derive(Aggregate)]`.
pub trait EventEnum: Sized + Send + Sync + 'static {
    /// The stored names of the events, in the order they were listed.
    const NAMES: &'static [&'static str];

    /// Whether any of these events holds personal data (is marked `#[event(personal)]`).
    const PERSONAL: bool;

    /// Whether any of these events holds the data of a subject named in a field (not the
    /// stream's own): a snapshot of the state could hold other people's data, which forgetting
    /// them could not reach, so such aggregates take no snapshots while payloads are encrypted.
    const OTHER_SUBJECTS: bool = false;

    /// This event's stored name.
    fn name(&self) -> &'static str;

    /// Whose personal data this event holds (see [`Event::data_subject`]).
    fn data_subject(&self) -> DataSubject;

    /// This event's schema version.
    fn schema_version(&self) -> u32;

    /// Encodes the event's payload.
    fn encode<C: Codec>(&self, codec: &C) -> Result<Vec<u8>, CodecError>;

    /// Decodes a stored event by its name and schema version.
    fn decode<C: Codec>(
        codec: &C,
        name: &str,
        schema_version: u32,
        payload: &[u8],
    ) -> Result<Self, DecodeError>;

    /// The value of a stored event whose data subject was forgotten (its key deleted): the
    /// `Forgotten` variant, if `name` is one of these events and is marked personal. Fails with
    /// [`DecodeError::UnknownEvent`] for a name this enum doesn't know, and with
    /// [`DecodeError::Forgotten`] for an event that is not (or no longer) marked personal.
    fn forgotten(name: &str, schema_version: u32, subject: Uuid) -> Result<Self, DecodeError>;
}

/// What a command may return: one event, several, or none.
///
/// Implemented for each event of an aggregate (by the derive), for the aggregate's event enum,
/// and for `Vec`s, arrays and `Option`s of those.
pub trait IntoEvents<E> {
    /// The events, in order.
    fn into_events(self) -> Vec<E>;
}

impl<E: EventEnum> IntoEvents<E> for E {
    fn into_events(self) -> Vec<E> {
        vec![self]
    }
}

impl<E: EventEnum, T: Into<E>> IntoEvents<E> for Vec<T> {
    fn into_events(self) -> Vec<E> {
        self.into_iter().map(Into::into).collect()
    }
}

impl<E: EventEnum, T: Into<E>, const N: usize> IntoEvents<E> for [T; N] {
    fn into_events(self) -> Vec<E> {
        self.into_iter().map(Into::into).collect()
    }
}

impl<E: EventEnum, T: Into<E>> IntoEvents<E> for Option<T> {
    fn into_events(self) -> Vec<E> {
        self.into_iter().map(Into::into).collect()
    }
}

/// Walks a chain of function upcasters: decodes `payload` (stored at `stored`) into a JSON
/// value, applies `steps[stored - 1]`, …, `steps[latest - 2]`, and decodes the result as `T`.
/// Used by the code `#[derive(Event)]` generates. Bound by `Event` rather than
/// `DeserializeOwned`: the derived impl always satisfies it, so a type missing `Deserialize` is
/// reported once, on the impl's `Payload` bound, not again inside the macro's expansion.
#[doc(hidden)]
pub fn decode_through_steps<T: Event, C: Codec>(
    codec: &C,
    name: &'static str,
    latest: u32,
    stored: u32,
    payload: &[u8],
    steps: &[UpcastFn],
) -> Result<T, DecodeError> {
    if stored == 0 || stored > latest || (stored as usize) > steps.len() + 1 {
        return Err(DecodeError::UnknownVersion {
            name,
            found: stored,
            latest,
        });
    }
    if stored == latest {
        return Ok(T::decode_payload(codec, payload)?);
    }
    let mut value: serde_json::Value = codec.decode(payload)?;
    for from in stored..latest {
        let step = steps[(from - 1) as usize];
        value = step(value).map_err(|source| DecodeError::Upcast {
            name,
            from,
            to: from + 1,
            source,
        })?;
    }
    T::from_json(value).map_err(|e| DecodeError::Upcast {
        name,
        from: latest - 1,
        to: latest,
        source: UpcastError::from(e),
    })
}
