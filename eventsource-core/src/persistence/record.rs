//! What a store keeps: events to append, stored events, snapshots and tracking records.

use std::collections::BTreeMap;
use std::time::SystemTime;

use uuid::Uuid;

use super::position::Position;

/// Free-form key/value metadata stored beside an event (correlation id, causation id, user, …).
pub type Metadata = BTreeMap<String, String>;

/// An encoded event, ready to be appended to a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The event's own id, unique across the store: a later event names it as its cause
    /// (`causation_id`). The repository gives each event a time-ordered UUID v7.
    pub id: Uuid,
    /// The event's stored name.
    pub name: String,
    /// The schema version the payload was encoded at.
    pub schema_version: u32,
    /// The encoded payload.
    pub payload: Vec<u8>,
    /// Metadata stored beside the payload.
    pub metadata: Metadata,
}

impl NewEvent {
    /// An event with a fresh id (UUID v7) and no metadata.
    pub fn new(name: impl Into<String>, schema_version: u32, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            id: Uuid::now_v7(),
            name: name.into(),
            schema_version,
            payload: payload.into(),
            metadata: Metadata::new(),
        }
    }

    /// The same event with `metadata`.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }
}

/// Events to append to one stream, with the version the writer expects the stream to be at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAppend {
    /// The stream (aggregate id).
    pub stream_id: Uuid,
    /// The stream's category: the aggregate type's name (`BankAccount`), stored with each event
    /// so the log can be filtered by it. Empty for a stream without one.
    pub category: String,
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
    pub position: Position,
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
    /// A batch for one stream without a category.
    pub fn single(stream_id: Uuid, expected_version: u64, events: Vec<NewEvent>) -> Self {
        Self::single_in("", stream_id, expected_version, events)
    }

    /// A batch for one stream of `category` (the aggregate type's name).
    pub fn single_in(
        category: impl Into<String>,
        stream_id: Uuid,
        expected_version: u64,
        events: Vec<NewEvent>,
    ) -> Self {
        Self {
            streams: vec![StreamAppend {
                stream_id,
                category: category.into(),
                expected_version,
                events,
            }],
            tracking: None,
        }
    }

    /// The same batch, also recording `tracker` at `position` in the same transaction.
    pub fn tracked(mut self, tracker: impl Into<String>, position: Position) -> Self {
        self.tracking = Some(Tracking {
            tracker: tracker.into(),
            position,
        });
        self
    }

    /// How many events the batch holds.
    pub fn event_count(&self) -> usize {
        self.streams.iter().map(|s| s.events.len()).sum()
    }
}

/// An event as a store returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The event's own id. Events stored before ids existed (an upgraded store) get a stable id
    /// derived from their stream and version ([`legacy_event_id`]).
    pub id: Uuid,
    /// The stream (aggregate id).
    pub stream_id: Uuid,
    /// The stream's category (the aggregate type's name); empty if it was appended without one
    /// or before categories were stored.
    pub category: String,
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
    /// The event's position in the store's global log (the notification log).
    pub position: Position,
}

impl StoredEvent {
    /// The event as a replay sees it (see [`ReplayedEvent`]), borrowed from this one.
    pub fn replayed(&self) -> ReplayedEvent<'_> {
        ReplayedEvent {
            stream_id: self.stream_id,
            version: self.version,
            name: &self.name,
            schema_version: self.schema_version,
            payload: &self.payload,
        }
    }
}

/// An event as a replay ([`EventStore::visit_stream`]) is lent it: the columns that rebuild an
/// aggregate's state and no more, borrowed from the store's row. A store reads only these for
/// a replay (no id, category, metadata, time or position to send, copy or parse), and lends
/// them without an allocation per event. What must outlive the visit is copied out of it.
///
/// [`EventStore::visit_stream`]: crate::EventStore::visit_stream
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayedEvent<'a> {
    /// The stream (aggregate id).
    pub stream_id: Uuid,
    /// The event's version within its stream, from 1, without gaps.
    pub version: u64,
    /// The event's stored name.
    pub name: &'a str,
    /// The schema version the payload was encoded at.
    pub schema_version: u32,
    /// The encoded payload, byte for byte as appended.
    pub payload: &'a [u8],
}

/// A [`ReplayedEvent`] copied out of the visit that lent it, for what must outlive the store's
/// row: a replay paused to load a key, a conformance check comparing after the visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplayedCopy {
    pub(crate) stream_id: Uuid,
    pub(crate) version: u64,
    pub(crate) name: String,
    pub(crate) schema_version: u32,
    pub(crate) payload: Vec<u8>,
}

impl ReplayedCopy {
    /// The copy lent as a [`ReplayedEvent`] again.
    pub(crate) fn lend(&self) -> ReplayedEvent<'_> {
        ReplayedEvent {
            stream_id: self.stream_id,
            version: self.version,
            name: &self.name,
            schema_version: self.schema_version,
            payload: &self.payload,
        }
    }
}

impl From<ReplayedEvent<'_>> for ReplayedCopy {
    fn from(event: ReplayedEvent<'_>) -> Self {
        Self {
            stream_id: event.stream_id,
            version: event.version,
            name: event.name.to_owned(),
            schema_version: event.schema_version,
            payload: event.payload.to_vec(),
        }
    }
}

impl From<&StoredEvent> for ReplayedCopy {
    fn from(event: &StoredEvent) -> Self {
        event.replayed().into()
    }
}

/// What [`EventStore::replay_from_snapshot`] lends its visitor: first the newest snapshot it
/// found (or `None`), then the stream's events from that snapshot's version on.
///
/// [`EventStore::replay_from_snapshot`]: crate::EventStore::replay_from_snapshot
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay<'a> {
    /// The newest snapshot at or below the version asked for, or `None`: always lent first,
    /// exactly once.
    Snapshot(Option<Snapshot>),
    /// An event of the stream, lent for the call only.
    Event(ReplayedEvent<'a>),
}

/// The id of an event stored before events had ids of their own: a UUID v5 of its version in
/// the namespace of its stream id, the same on every read and in every store.
pub fn legacy_event_id(stream_id: Uuid, version: u64) -> Uuid {
    Uuid::new_v5(&stream_id, &version.to_be_bytes())
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

/// Which part of the global log to read: events after a position, optionally up to a position,
/// and optionally only those of some categories (aggregate types) and event names.
///
/// ```
/// use eventsource_core::{LogQuery, Position};
///
/// let everything = LogQuery::from_start(1000);
/// let accounts = LogQuery::after(Position::new(42), 100)
///     .categories(["BankAccount"])
///     .names(["Deposited", "Withdrawn"]);
/// // Positions 43 to 99, both included: what a report "as of position 99" reads.
/// let as_of = LogQuery::after(Position::new(42), 100).up_to(Position::new(99));
/// # let _ = (everything, accounts, as_of);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    /// Read events with a position strictly greater than this.
    pub after: Position,
    /// Read events with a position at most this (inclusive); `None`: up to the end of the log.
    /// A page that stops at this bound has [`LogPage::next`] at most this position.
    pub to: Option<Position>,
    /// Read at most this many events.
    pub limit: usize,
    /// Only events of one of these categories (empty: every category).
    pub categories: Vec<String>,
    /// Only events with one of these names (empty: every name).
    pub names: Vec<String>,
}

impl LogQuery {
    /// Up to `limit` events after `position`.
    pub fn after(position: Position, limit: usize) -> Self {
        Self {
            after: position,
            to: None,
            limit,
            categories: Vec::new(),
            names: Vec::new(),
        }
    }

    /// Up to `limit` events from the beginning of the log.
    pub fn from_start(limit: usize) -> Self {
        Self::after(Position::START, limit)
    }

    /// Only events up to `position`, inclusive: nothing after it is returned, and the page's
    /// [`next`](LogPage::next) is never past it (unless [`after`](Self::after) already was), so
    /// a reader that stops here and later continues from `next` without a bound misses nothing.
    pub fn up_to(mut self, position: Position) -> Self {
        self.to = Some(position);
        self
    }

    /// Only events of one of these categories (aggregate type names).
    pub fn categories<I, S>(mut self, categories: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.categories = categories.into_iter().map(Into::into).collect();
        self
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

    /// Whether `event` passes the category and name filters (not the positions `after` and
    /// `to`).
    pub fn matches(&self, event: &StoredEvent) -> bool {
        (self.categories.is_empty() || self.categories.contains(&event.category))
            && (self.names.is_empty() || self.names.contains(&event.name))
    }
}

/// A page of the global log, and where the next read starts.
///
/// `next` is at least the position of the last event in the page. When the page is not full, the
/// store has looked at everything a follower may read so far, and `next` is the last position it
/// passed, matching or not: a filtered follower that reads with `after = page.next` never looks
/// at the events it skipped again. With [`LogQuery::to`] set, the store looks no further than
/// that bound, and `next` is at most the bound (never past it; unless `after` already was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    /// The events, in position order.
    pub events: Vec<StoredEvent>,
    /// Pass this as [`LogQuery::after`] to read on.
    pub next: Position,
}

impl LogPage {
    /// No events.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// How many events.
    pub fn len(&self) -> usize {
        self.events.len()
    }
}

impl IntoIterator for LogPage {
    type Item = StoredEvent;
    type IntoIter = std::vec::IntoIter<StoredEvent>;
    fn into_iter(self) -> Self::IntoIter {
        self.events.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_legacy_event_id_is_fixed_by_its_stream_and_version() {
        let stream = Uuid::parse_str("0191d4b2-7c00-7000-8000-000000000001").unwrap();
        // Pinned: events stored before ids existed are read with these ids by every store and
        // every release, so the derivation must never change.
        assert_eq!(
            legacy_event_id(stream, 1).to_string(),
            "f45e4a96-a83f-5648-a737-75456fb9a504"
        );
        assert_eq!(
            legacy_event_id(stream, 2).to_string(),
            "e666beb2-d307-5c64-bc47-525bf7b4af9b"
        );
        assert_ne!(legacy_event_id(Uuid::nil(), 1), legacy_event_id(stream, 1));
    }

    fn stored(category: &str, name: &str) -> StoredEvent {
        StoredEvent {
            id: Uuid::nil(),
            stream_id: Uuid::nil(),
            category: category.into(),
            version: 1,
            name: name.into(),
            schema_version: 1,
            payload: Vec::new(),
            metadata: Metadata::new(),
            recorded_at: SystemTime::UNIX_EPOCH,
            position: Position::new(1),
        }
    }

    #[test]
    fn a_log_query_filters_by_category_and_by_name_and_without_filters_takes_all() {
        let opened = stored("Account", "Opened");
        let shipped = stored("Order", "Shipped");
        let all = LogQuery::from_start(10);
        assert!(all.matches(&opened) && all.matches(&shipped));
        let accounts = LogQuery::from_start(10).categories(["Account"]);
        assert!(accounts.matches(&opened) && !accounts.matches(&shipped));
        let shipping = LogQuery::from_start(10).names(["Shipped", "Returned"]);
        assert!(!shipping.matches(&opened) && shipping.matches(&shipped));
        let both = accounts.names(["Shipped"]);
        assert!(
            !both.matches(&opened) && !both.matches(&shipped),
            "both must hold"
        );
    }
}
