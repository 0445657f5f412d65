//! Personal data and forgetting it (crypto-shredding), as the types see it.
//!
//! An event that holds a person's data is marked `#[event(personal)]` (the person is the
//! aggregate's stream) or `#[event(personal(subject = field))]` (the person is the id in
//! `field`). With encryption configured (see [`PayloadCodec`](crate::persistence::codec::PayloadCodec)) such an
//! event is encrypted with a key of its data subject's own; forgetting the subject deletes the
//! key, and from then on the event decodes as a [`Forgotten`] value instead of itself.
//!
//! The types make that impossible to overlook: an aggregate that lists a personal event `E`
//! must implement `Apply<Forgotten<E>>` as well as `Apply<E>` (a projection `Handle<Forgotten<E>>`,
//! a process `React<Forgotten<E>>`), or it does not compile. For the other events
//! [`Event::Forgotten`] is [`NotPersonal<E>`], which no value ever has,
//! and the impls for it are written here once.

use std::convert::Infallible;
use std::fmt;
use std::marker::PhantomData;

use uuid::Uuid;

use crate::domain::aggregate::Apply;
use crate::domain::event::Event;
use crate::error::{CodecError, DecodeError};

/// Whose personal data an event holds: the key its payload is encrypted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataSubject {
    /// None: the event is encrypted (if at all) with the application's key, which is never
    /// forgotten.
    None,
    /// The aggregate whose stream the event is in (`#[event(personal)]`).
    Stream,
    /// The person with this id (`#[event(personal(subject = field))]`).
    Id(Uuid),
}

impl DataSubject {
    /// The subject of an event in `stream`: `None` for an event without personal data.
    pub fn resolve(self, stream: Uuid) -> Option<Uuid> {
        match self {
            DataSubject::None => None,
            DataSubject::Stream => Some(stream),
            DataSubject::Id(id) => Some(id),
        }
    }
}

/// A type that can name a data subject (`#[event(personal(subject = field))]` reads it).
#[diagnostic::on_unimplemented(
    message = "`{Self}` can't name a data subject",
    label = "the field named by `personal(subject = ...)` must be a `Uuid`",
    note = "a data subject is a person's id: make the field a `Uuid` (the id their own aggregate or your user table has)"
)]
pub trait SubjectId {
    /// The subject's id.
    fn subject_id(&self) -> Uuid;
}

impl SubjectId for Uuid {
    fn subject_id(&self) -> Uuid {
        *self
    }
}

impl<T: SubjectId + ?Sized> SubjectId for &T {
    fn subject_id(&self) -> Uuid {
        (**self).subject_id()
    }
}

/// A stored event whose data subject was forgotten: what the event enums hold in place of it.
///
/// Its payload can no longer be read; what is left is the record's event name, schema version
/// and the subject. [`Forgotten<E>`] is the typed view the `Apply`/`Handle`/`React` impls get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgottenRecord {
    /// The event's name (its current one, if it was stored under an alias).
    pub name: &'static str,
    /// The schema version the payload was stored at.
    pub schema_version: u32,
    /// The forgotten data subject.
    pub subject: Uuid,
}

/// What an event with personal data decodes as once its subject was forgotten.
///
/// An aggregate (projection, process) that lists a personal event `E` implements
/// `Apply<Forgotten<E>>` (`Handle<Forgotten<E>>`, `React<Forgotten<E>>`) to say what happens
/// then: usually what `E` would have done, without the person's data.
///
/// ```
/// use eventsource_core::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone)]
/// #[event(personal)]
/// struct Registered { name: String, email: String }
///
/// #[derive(Aggregate, Default, Debug)]
/// #[aggregate(events(Registered))]
/// struct Customer { registered: bool, name: Option<String> }
///
/// impl Apply<Registered> for Customer {
///     fn apply(&mut self, e: &Registered) {
///         self.registered = true;
///         self.name = Some(e.name.clone());
///     }
/// }
///
/// // Without this impl, `Customer` does not compile.
/// impl Apply<Forgotten<Registered>> for Customer {
///     fn apply(&mut self, _: &Forgotten<Registered>) {
///         self.registered = true;
///         self.name = None;
///     }
/// }
/// ```
pub struct Forgotten<E> {
    /// The forgotten data subject.
    pub subject: Uuid,
    /// The schema version the payload was stored at.
    pub schema_version: u32,
    event: PhantomData<fn() -> E>,
}

impl<E> Forgotten<E> {
    /// The forgotten value of a record.
    pub fn new(subject: Uuid, schema_version: u32) -> Self {
        Self {
            subject,
            schema_version,
            event: PhantomData,
        }
    }
}

impl<E> fmt::Debug for Forgotten<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forgotten")
            .field("event", &std::any::type_name::<E>())
            .field("subject", &self.subject)
            .field("schema_version", &self.schema_version)
            .finish()
    }
}

impl<E> Clone for Forgotten<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for Forgotten<E> {}

impl<E> PartialEq for Forgotten<E> {
    fn eq(&self, other: &Self) -> bool {
        self.subject == other.subject && self.schema_version == other.schema_version
    }
}

impl<E> Eq for Forgotten<E> {}

/// What stands for an event without personal data once "forgotten": nothing, since such an
/// event is never encrypted with a subject's key. No value of this type exists, and every
/// aggregate, projection and process "handles" it already.
pub struct NotPersonal<E> {
    pub(crate) never: Infallible,
    event: PhantomData<fn() -> E>,
}

impl<E> fmt::Debug for NotPersonal<E> {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.never {}
    }
}

/// The two things an event's [`Event::Forgotten`] can be:
/// [`Forgotten<E>`] or [`NotPersonal<E>`].
pub trait ForgottenEvent: Sized + Send + Sync + 'static {
    /// Whether the event holds personal data.
    const PERSONAL: bool;

    /// The typed forgotten value of `record`; `None` for an event without personal data.
    fn from_record(record: &ForgottenRecord) -> Option<Self>;
}

impl<E: 'static> ForgottenEvent for Forgotten<E> {
    const PERSONAL: bool = true;

    fn from_record(record: &ForgottenRecord) -> Option<Self> {
        Some(Self::new(record.subject, record.schema_version))
    }
}

impl<E: 'static> ForgottenEvent for NotPersonal<E> {
    const PERSONAL: bool = false;

    fn from_record(_: &ForgottenRecord) -> Option<Self> {
        None
    }
}

impl<A: ?Sized, E> Apply<NotPersonal<E>> for A {
    fn apply(&mut self, event: &NotPersonal<E>) {
        match event.never {}
    }
}

/// Applying the forgotten value of a listed event: what the `Aggregate` derive calls for a
/// forgotten record. Implemented for every aggregate that implements `Apply<E::Forgotten>`,
/// which for an event without personal data is always.
#[diagnostic::on_unimplemented(
    message = "`{E}` holds personal data, but `{Self}` does not say what is left of it once its subject is forgotten",
    label = "`{Self}` needs an `Apply<Forgotten<{E}>>` impl",
    note = "`{E}` is marked `#[event(personal)]`: once its data subject is forgotten it decodes as `Forgotten<{E}>`, which every aggregate that lists it must apply; add:\n    impl Apply<Forgotten<{E}>> for {Self} {{\n        fn apply(&mut self, event: &Forgotten<{E}>) {{ /* update the state, without the person's data */ }}\n    }}"
)]
pub trait ApplyForgotten<E: Event> {
    /// Applies the forgotten value of `record` (a record of `E`).
    fn apply_forgotten(&mut self, record: &ForgottenRecord);
}

// Not recommended in diagnostics: a missing impl is reported as `ApplyForgotten`'s own message,
// which names the event as personal, not as `Apply`'s "lists the event" message.
#[diagnostic::do_not_recommend]
impl<A: Apply<E::Forgotten> + ?Sized, E: Event> ApplyForgotten<E> for A {
    fn apply_forgotten(&mut self, record: &ForgottenRecord) {
        if let Some(forgotten) = E::Forgotten::from_record(record) {
            self.apply(&forgotten);
        }
    }
}

/// The `Forgotten` variant's record for a stored `E` whose subject was forgotten, or
/// [`DecodeError::Forgotten`] if `E` is not marked personal (it was once, or the record was
/// encrypted with a subject's key by another program).
pub fn forgotten_record<E: Event>(
    schema_version: u32,
    subject: Uuid,
) -> Result<ForgottenRecord, DecodeError> {
    if !<E::Forgotten as ForgottenEvent>::PERSONAL {
        return Err(DecodeError::Forgotten {
            name: E::NAME.to_owned(),
            subject,
        });
    }
    Ok(ForgottenRecord {
        name: E::NAME,
        schema_version,
        subject,
    })
}

/// The error for encoding a forgotten event: its payload is gone, so it can't be stored again.
pub fn forgotten_cannot_be_stored(record: &ForgottenRecord) -> CodecError {
    CodecError::new(
        "forgotten",
        format!(
            "event `{}` of forgotten subject {} has no payload left to store",
            record.name, record.subject
        ),
    )
}
