//! Typed errors.
//!
//! Every error that concerns a stored record carries what a person needs to find that record:
//! the stream id, the version, the event name and the schema version it was stored with.

use uuid::Uuid;

use crate::persistence::position::Position;

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Why a stored payload could not be turned back into an event, without saying where the payload
/// came from. The repository wraps it in [`Error::Decode`] together with the record's location.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The stored event name is not one of the events this aggregate (or registry) knows.
    #[error("unknown event name `{name}`; known names: {}", known.join(", "))]
    UnknownEvent {
        /// The name found in storage.
        name: String,
        /// The names that can be decoded here.
        known: Vec<&'static str>,
    },
    /// The stored schema version is not reachable by this event's upcaster chain.
    #[error(
        "event `{name}` was stored with schema version {found}, but this build knows versions 1..={latest}"
    )]
    UnknownVersion {
        /// The event name.
        name: &'static str,
        /// The schema version found in storage.
        found: u32,
        /// The newest version this build knows.
        latest: u32,
    },
    /// The payload bytes did not decode (corrupt, or a shape the type does not accept).
    #[error("payload does not decode: {0}")]
    Payload(#[from] CodecError),
    /// An upcaster refused the stored value.
    #[error("upcasting event `{name}` from version {from} to {to} failed: {source}")]
    Upcast {
        /// The event name.
        name: &'static str,
        /// The version the failing step started from.
        from: u32,
        /// The version it was producing.
        to: u32,
        /// What the upcaster said.
        source: UpcastError,
    },
    /// The record was encrypted with a data subject's key, which was deleted (the subject was
    /// forgotten), and this event is not marked `#[event(personal)]` here, so it has no
    /// forgotten value to decode as.
    #[error(
        "the data subject {subject} of event `{name}` was forgotten, but `{name}` is not marked `#[event(personal)]` here, so it has no forgotten value; mark it personal and handle `Forgotten<{name}>`"
    )]
    Forgotten {
        /// The event name.
        name: String,
        /// The forgotten subject.
        subject: Uuid,
    },
    /// The payload's envelope (its encoding, compression or encryption) could not be opened.
    #[error(transparent)]
    Envelope(#[from] crate::persistence::codec::EnvelopeError),
}

/// The error a function upcaster returns when a stored value can't be brought forward.
///
/// ```
/// use eventsource_core::UpcastError;
/// use serde_json::Value;
///
/// fn v1_to_v2(mut value: Value) -> Result<Value, UpcastError> {
///     let object = value.as_object_mut().ok_or_else(|| UpcastError::new("expected an object"))?;
///     object.insert("currency".into(), "EUR".into());
///     Ok(value)
/// }
/// # assert!(v1_to_v2(Value::Null).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UpcastError {
    message: String,
}

impl UpcastError {
    /// An upcast failure with a message that says what was wrong with the stored value.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<serde_json::Error> for UpcastError {
    fn from(error: serde_json::Error) -> Self {
        Self::new(error.to_string())
    }
}

/// A codec failed to encode or decode bytes.
#[derive(Debug, thiserror::Error)]
#[error("{format}: {message}")]
pub struct CodecError {
    /// The codec that failed (for example `json`).
    pub format: &'static str,
    /// What went wrong.
    pub message: String,
}

impl CodecError {
    /// A codec failure.
    pub fn new(format: &'static str, message: impl ToString) -> Self {
        Self {
            format,
            message: message.to_string(),
        }
    }
}

/// A boxed error from a store's driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in a repository or a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another writer appended to the stream first. Nothing of the failed append was written.
    #[error(
        "version conflict on stream {stream}: expected version {expected}, but the stream is at version {actual}; nothing was written"
    )]
    Conflict {
        /// The stream that moved.
        stream: Uuid,
        /// The version the writer expected the stream to be at.
        expected: u64,
        /// The version the stream is actually at.
        actual: u64,
    },
    /// The same stream appears twice in one atomic append.
    #[error("stream {stream} appears more than once in one append; nothing was written")]
    DuplicateStreamInBatch {
        /// The repeated stream.
        stream: Uuid,
    },
    /// A tracking record for this position (or a later one) was already written: this upstream
    /// event has been processed before.
    #[error(
        "tracking conflict for `{tracker}`: position {position} is not after the recorded position {recorded}; nothing was written"
    )]
    TrackingConflict {
        /// The processor's tracking name.
        tracker: String,
        /// The position offered.
        position: Position,
        /// The position already recorded.
        recorded: Position,
    },
    /// No events are stored for this aggregate.
    #[error("{aggregate} {stream} not found: its stream has no events")]
    NotFound {
        /// The aggregate's name.
        aggregate: &'static str,
        /// The stream id.
        stream: Uuid,
    },
    /// A version was asked for that the stream has not reached.
    #[error("{aggregate} {stream} has no version {requested}; its latest version is {latest}")]
    VersionNotFound {
        /// The aggregate's name.
        aggregate: &'static str,
        /// The stream id.
        stream: Uuid,
        /// The version asked for.
        requested: u64,
        /// The stream's latest version.
        latest: u64,
    },
    /// A stored event could not be decoded.
    #[error(
        "cannot decode event `{event}` (schema version {schema_version}) at version {version} of stream {stream}: {source}"
    )]
    Decode {
        /// The stream id.
        stream: Uuid,
        /// The event's version within its stream.
        version: u64,
        /// The stored event name.
        event: String,
        /// The stored schema version.
        schema_version: u32,
        /// Why it failed.
        source: DecodeError,
    },
    /// An event or snapshot could not be encoded before writing. Nothing was written.
    #[error("cannot encode `{what}`: {source}")]
    Encode {
        /// What was being encoded (event name or `snapshot of …`).
        what: String,
        /// Why it failed.
        source: CodecError,
    },
    /// The key store that encrypts payloads failed (see
    /// [`PayloadCodec::encrypt`](crate::persistence::codec::PayloadCodec::encrypt)). Nothing
    /// was written.
    #[error("the key store failed: {0}")]
    Key(#[from] crate::persistence::codec::KeyError),
    /// The stream is not in the shape the store contract requires (for example a gap in versions).
    #[error("stream {stream} is inconsistent at version {version}: {message}")]
    Corrupt {
        /// The stream id.
        stream: Uuid,
        /// Where the problem was seen.
        version: u64,
        /// What was wrong.
        message: String,
    },
    /// A command kept losing optimistic-concurrency races.
    #[error(
        "gave up on stream {stream} after {attempts} attempts: every attempt hit a version conflict"
    )]
    TooManyConflicts {
        /// The contended stream.
        stream: Uuid,
        /// How many attempts were made.
        attempts: u32,
    },
    /// A unit of work was asked to load a stream as one aggregate type after loading it as
    /// another.
    #[error(
        "stream {stream} is already loaded as {loaded_as} in this unit of work; it can't be loaded as {requested} too"
    )]
    StreamLoadedAsAnotherType {
        /// The stream.
        stream: Uuid,
        /// The type it was loaded as first.
        loaded_as: &'static str,
        /// The type asked for now.
        requested: &'static str,
    },
    /// A command context's metadata key or stored value was refused.
    #[error(transparent)]
    Metadata(#[from] crate::application::context::MetadataError),
    /// A store (or the repository's cache, `backend: "cache"`) was configured with something it
    /// can't use (a bad table name, URL, a byte budget too small for one state, …).
    #[error("invalid {backend} store configuration: {message}")]
    Config {
        /// The store backend.
        backend: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
    /// The connection failed while the store was committing: the append may or may not have
    /// been written. Read the stream to find out, or retry with the same expected version,
    /// which either succeeds or reports a [`Conflict`](Error::Conflict) if it was written.
    #[error(
        "{backend} store lost its connection while {context}; the outcome is unknown (it may have been written): {source}"
    )]
    OutcomeUnknown {
        /// The store backend.
        backend: &'static str,
        /// What the store was doing.
        context: String,
        /// The driver's error.
        source: BoxError,
    },
    /// The store could not take the operation now (another process held the database lock
    /// past the busy timeout, the server refused a serialization or deadlock race). Nothing
    /// was written; trying again later may succeed.
    #[error("{backend} store is busy while {context}; nothing was written, try again: {source}")]
    Busy {
        /// The store backend.
        backend: &'static str,
        /// What the store was doing.
        context: String,
        /// The driver's error.
        source: BoxError,
    },
    /// The store can't do this on its engine (a NATS server without atomic batch publish asked
    /// to append several events at once, a message larger than the server takes). Nothing was
    /// written; the reason says what would make it work.
    #[error("{backend} store can't {operation}: {reason}; nothing was written")]
    Unsupported {
        /// The store backend.
        backend: &'static str,
        /// What was asked.
        operation: String,
        /// Why this store can't, and what to change.
        reason: String,
    },
    /// The storage backend failed (connection lost, disk full, …).
    #[error("{backend} store failed while {context}: {source}")]
    Backend {
        /// The store backend.
        backend: &'static str,
        /// What the store was doing.
        context: String,
        /// The driver's error.
        source: BoxError,
    },
}

impl Error {
    /// Whether this is an optimistic-concurrency conflict (a retry with fresh state may succeed).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }

    /// Whether trying the same operation again may succeed: a version conflict (decide again
    /// on fresh state), a busy store, or an append whose outcome is unknown (a retry with the
    /// same expected version either succeeds or turns into a conflict). Not for bad input,
    /// corrupt data, configuration errors or other backend failures.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Conflict { .. } | Error::Busy { .. } | Error::OutcomeUnknown { .. }
        )
    }

    /// Whether the failed write may nevertheless have been stored ([`Error::OutcomeUnknown`]).
    /// Every other error from an append means nothing of it was written.
    pub fn may_have_happened(&self) -> bool {
        matches!(self, Error::OutcomeUnknown { .. })
    }

    /// An append whose outcome is unknown, keeping the driver's error as the source.
    pub fn outcome_unknown(
        backend: &'static str,
        context: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::OutcomeUnknown {
            backend,
            context: context.into(),
            source: source.into(),
        }
    }

    /// A busy store, keeping the driver's error as the source.
    pub fn busy(
        backend: &'static str,
        context: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::Busy {
            backend,
            context: context.into(),
            source: source.into(),
        }
    }

    /// A backend failure, keeping the driver's error as the source.
    pub fn backend(
        backend: &'static str,
        context: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::Backend {
            backend,
            context: context.into(),
            source: source.into(),
        }
    }
}
