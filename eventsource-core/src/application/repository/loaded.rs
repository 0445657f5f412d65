//! What the repository hands out: a [`Loaded`] aggregate, a [`Recorded`] event of its history,
//! and the [`CommandError`] of a refused or failed command.

use std::fmt;
use std::ops::Deref;

use uuid::Uuid;

use crate::persistence::position::Position;

use crate::application::context::{
    ACTOR, CAUSATION_ID, CORRELATION_ID, CommandContext, MetadataError,
};
use crate::domain::aggregate::Aggregate;
use crate::domain::event::IntoEvents;
use crate::error::Error;
use crate::persistence::record::{Metadata, StoredEvent};

/// An aggregate loaded from its stream: its id, its version, its state, and the events recorded
/// on it since loading that are not saved yet.
///
/// Derefs to the state, so `account.balance` reads the aggregate's field.
#[derive(Debug, Clone)]
pub struct Loaded<A: Aggregate> {
    pub(crate) id: Uuid,
    pub(crate) version: u64,
    pub(crate) state: A,
    pub(crate) pending: Vec<A::Event>,
}

impl<A: Aggregate> Loaded<A> {
    /// The empty state of a stream at version 0 (nothing loaded, nothing pending).
    pub(crate) fn empty(id: Uuid) -> Self {
        Self::at(id, 0, A::default())
    }

    /// A state at a version, with nothing pending.
    pub(crate) fn at(id: Uuid, version: u64, state: A) -> Self {
        Self {
            id,
            version,
            state,
            pending: Vec::new(),
        }
    }

    /// The aggregate's id (its stream id).
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The version of the last saved event applied to the state (0 for none).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The state, including pending events.
    pub fn state(&self) -> &A {
        &self.state
    }

    /// The state, taken out.
    pub fn into_state(self) -> A {
        self.state
    }

    /// Events recorded with [`Loaded::record`] and not saved yet.
    pub fn pending(&self) -> &[A::Event] {
        &self.pending
    }

    /// Applies events to the state and queues them for the next [`Repository::save`].
    ///
    /// [`Repository::save`]: crate::Repository::save
    pub fn record(&mut self, events: impl IntoEvents<A::Event>) {
        for event in events.into_events() {
            self.state.apply_event(&event);
            self.pending.push(event);
        }
    }

    /// Marks the pending events as saved: the version moves past them. Returns the version
    /// before.
    pub(crate) fn mark_saved(&mut self) -> u64 {
        let before = self.version;
        self.version += self.pending.len() as u64;
        self.pending.clear();
        before
    }
}

impl<A: Aggregate> Deref for Loaded<A> {
    type Target = A;
    fn deref(&self) -> &A {
        &self.state
    }
}

/// A decoded event with where and when it was stored: what an aggregate's history lists and
/// what a projection's handlers receive.
#[derive(Debug, Clone)]
pub struct Recorded<E> {
    /// The event.
    pub event: E,
    /// The event's own id: what a later event names as its cause.
    pub id: Uuid,
    /// Its stream (the aggregate's id).
    pub stream_id: Uuid,
    /// Its stream's category (the aggregate type's name; empty if stored without one).
    pub category: String,
    /// Its version in the stream.
    pub version: u64,
    /// Its position in the global log.
    pub position: Position,
    /// The schema version it was stored at (before upcasting).
    pub stored_schema_version: u32,
    /// Its metadata.
    pub metadata: Metadata,
    /// When it was recorded.
    pub recorded_at: std::time::SystemTime,
}

impl<E> Recorded<E> {
    /// `event` with the record of `stored` (which it was decoded from).
    pub fn new(event: E, stored: StoredEvent) -> Self {
        Self {
            event,
            id: stored.id,
            stream_id: stored.stream_id,
            category: stored.category,
            version: stored.version,
            position: stored.position,
            stored_schema_version: stored.schema_version,
            metadata: stored.metadata,
            recorded_at: stored.recorded_at,
        }
    }

    /// The same record around another event (a variant taken out of an event enum).
    pub fn map<F>(self, f: impl FnOnce(E) -> F) -> Recorded<F> {
        Recorded {
            event: f(self.event),
            id: self.id,
            stream_id: self.stream_id,
            category: self.category,
            version: self.version,
            position: self.position,
            stored_schema_version: self.stored_schema_version,
            metadata: self.metadata,
            recorded_at: self.recorded_at,
        }
    }

    /// The record without its event: for comparing the records of different event types.
    pub fn without_event(self) -> Recorded<()> {
        self.map(|_| ())
    }

    /// The correlation id the event was written with ([`CORRELATION_ID`] in its metadata), or
    /// `None` if it has none or it isn't a UUID (see [`context`](Self::context) for the error).
    pub fn correlation_id(&self) -> Option<Uuid> {
        self.uuid_at(CORRELATION_ID)
    }

    /// The causation id the event was written with ([`CAUSATION_ID`]), if any.
    pub fn causation_id(&self) -> Option<Uuid> {
        self.uuid_at(CAUSATION_ID)
    }

    /// The actor the event was written by ([`ACTOR`]), if any.
    pub fn actor(&self) -> Option<&str> {
        self.metadata.get(ACTOR).map(String::as_str)
    }

    /// The whole [`CommandContext`] the event was written in, read back from its metadata;
    /// a correlation or causation id that isn't a UUID is an error.
    pub fn context(&self) -> Result<CommandContext, MetadataError> {
        CommandContext::from_metadata(&self.metadata)
    }

    fn uuid_at(&self, key: &str) -> Option<Uuid> {
        self.metadata
            .get(key)
            .and_then(|value| Uuid::parse_str(value).ok())
    }
}

/// Why a command failed: the domain refused it, or the store did.
#[derive(Debug)]
pub enum CommandError<E> {
    /// The aggregate's decision returned an error; nothing was written.
    Rejected(E),
    /// Loading or saving failed.
    Store(Error),
}

impl<E: fmt::Display> fmt::Display for CommandError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Rejected(e) => write!(f, "command rejected: {e}"),
            CommandError::Store(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CommandError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CommandError::Rejected(e) => Some(e),
            CommandError::Store(e) => Some(e),
        }
    }
}

impl<E> From<Error> for CommandError<E> {
    fn from(error: Error) -> Self {
        CommandError::Store(error)
    }
}
