//! What a store keeps: events to append, stored events, snapshots and tracking records.

use std::collections::BTreeMap;
use std::time::SystemTime;

use uuid::Uuid;

/// Free-form key/value metadata stored beside an event (correlation id, causation id, user, …).
pub type Metadata = BTreeMap<String, String>;

/// An encoded event, ready to be appended to a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The event's stored name.
    pub name: String,
    /// The schema version the payload was encoded at.
    pub schema_version: u32,
    /// The encoded payload.
    pub payload: Vec<u8>,
    /// Metadata stored beside the payload.
    pub metadata: Metadata,
}

/// Events to append to one stream, with the version the writer expects the stream to be at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAppend {
    /// The stream (aggregate id).
    pub stream_id: Uuid,
    /// The stream's version the writer saw: `0` for a stream that must not exist yet.
    /// The first appended event gets version `expected_version + 1`.
    pub expected_version: u64,
    /// The events, in order.
    pub events: Vec<NewEvent>,
}

/// A processor's position in an upstream log, written in the same transaction as its output so
/// that each upstream event is processed exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracking {
    /// The processor's name.
    pub tracker: String,
    /// The upstream position just processed. Must be greater than the recorded one.
    pub position: u64,
}

/// One atomic append: events for any number of streams, and optionally a tracking record.
/// Either all of it is written or none of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendBatch {
    /// The streams to append to; each stream at most once.
    pub streams: Vec<StreamAppend>,
    /// A tracking record to write in the same transaction.
    pub tracking: Option<Tracking>,
}

impl AppendBatch {
    /// A batch for one stream.
    pub fn single(stream_id: Uuid, expected_version: u64, events: Vec<NewEvent>) -> Self {
        Self {
            streams: vec![StreamAppend {
                stream_id,
                expected_version,
                events,
            }],
            tracking: None,
        }
    }

    /// How many events the batch holds.
    pub fn event_count(&self) -> usize {
        self.streams.iter().map(|s| s.events.len()).sum()
    }
}

/// An event as a store returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The stream (aggregate id).
    pub stream_id: Uuid,
    /// The event's version within its stream, from 1, without gaps.
    pub version: u64,
    /// The event's stored name.
    pub name: String,
    /// The schema version the payload was encoded at.
    pub schema_version: u32,
    /// The encoded payload, byte for byte as appended.
    pub payload: Vec<u8>,
    /// Metadata stored beside the payload.
    pub metadata: Metadata,
    /// When the store recorded the event.
    pub recorded_at: SystemTime,
    /// The event's position in the store's global log (the notification log), from 1.
    pub position: u64,
}

/// A snapshot of an aggregate's state at a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The stream (aggregate id).
    pub stream_id: Uuid,
    /// The stream version the state reflects.
    pub version: u64,
    /// The aggregate's name.
    pub aggregate: String,
    /// A fingerprint of the aggregate's shape; a snapshot whose fingerprint no longer matches is
    /// ignored and rebuilt.
    pub fingerprint: u64,
    /// The encoded state.
    pub state: Vec<u8>,
    /// When the snapshot was taken.
    pub recorded_at: SystemTime,
}

/// Which part of a stream to read.
///
/// ```
/// use eventsource_core::StreamRange;
/// let all = StreamRange::all();
/// let middle = StreamRange::all().from(10).to(20);
/// let latest_five = StreamRange::all().backwards().limit(5);
/// assert!(middle.contains(15) && !middle.contains(21) && all.contains(1));
/// # let _ = latest_five;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRange {
    /// The first version to read (inclusive, default 1).
    pub from: u64,
    /// The last version to read (inclusive, default: the end).
    pub to: Option<u64>,
    /// Read newest first.
    pub backwards: bool,
    /// Read at most this many events.
    pub limit: Option<usize>,
}

impl StreamRange {
    /// The whole stream, oldest first.
    pub const fn all() -> Self {
        Self {
            from: 1,
            to: None,
            backwards: false,
            limit: None,
        }
    }

    /// Start at `version` (inclusive).
    pub const fn from(mut self, version: u64) -> Self {
        self.from = version;
        self
    }

    /// Stop at `version` (inclusive).
    pub const fn to(mut self, version: u64) -> Self {
        self.to = Some(version);
        self
    }

    /// Read newest first.
    pub const fn backwards(mut self) -> Self {
        self.backwards = true;
        self
    }

    /// Read at most `limit` events.
    pub const fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Whether `version` is inside `from..=to`.
    pub fn contains(&self, version: u64) -> bool {
        version >= self.from && self.to.is_none_or(|to| version <= to)
    }
}

impl Default for StreamRange {
    fn default() -> Self {
        Self::all()
    }
}

/// Which part of the global log to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    /// Read events with a position strictly greater than this (0 reads from the start).
    pub after: u64,
    /// Read at most this many events.
    pub limit: usize,
    /// Only events with one of these names (empty: all events).
    pub names: Vec<String>,
}

impl LogQuery {
    /// Up to `limit` events after `position`.
    pub fn after(position: u64, limit: usize) -> Self {
        Self {
            after: position,
            limit,
            names: Vec::new(),
        }
    }

    /// Only events with one of these names.
    pub fn names<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.names = names.into_iter().map(Into::into).collect();
        self
    }
}
