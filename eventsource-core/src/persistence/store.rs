//! The store contract every backend implements.

use std::ops::ControlFlow;

use futures_core::stream::BoxStream;
use futures_util::TryStreamExt;
use uuid::Uuid;

use super::position::Position;
use super::record::{
    AppendBatch, LogPage, LogQuery, Replay, ReplayedEvent, Snapshot, StoredEvent, StreamRange,
};
use super::wake::WakeUps;
use crate::error::Result;

/// A stream of stored events, read lazily (a store need not hold a whole stream in memory).
pub type EventStream<'a> = BoxStream<'a, Result<StoredEvent>>;

/// What [`EventStore::visit_stream`] calls with each event, lent as a [`ReplayedEvent`] that
/// lives only for the call: `Break` stops the visit.
pub type StreamVisitor<'v> =
    dyn for<'e> FnMut(ReplayedEvent<'e>) -> Result<ControlFlow<()>> + Send + 'v;

/// What [`EventStore::replay_from_snapshot`] calls with the snapshot it found and then with
/// each event after it: `Break` stops the visit.
pub type ReplayVisitor<'v> = dyn for<'e> FnMut(Replay<'e>) -> Result<ControlFlow<()>> + Send + 'v;

/// An event store: streams of events with optimistic concurrency, a global log, snapshots and
/// tracking records.
///
/// The conformance suite (feature `testing`) checks every rule below against a real store.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync {
    /// Appends events to any number of streams in one atomic transaction.
    ///
    /// For each stream the first event gets version `expected_version + 1`. If any stream is not
    /// at its expected version, the whole batch fails with [`Error::Conflict`] naming the stream,
    /// the expected and the actual version, and nothing is written. A stream listed twice fails
    /// with [`Error::DuplicateStreamInBatch`]. A tracking record whose position is not greater
    /// than the recorded one fails with [`Error::TrackingConflict`], again writing nothing.
    ///
    /// Returns the global position of the last event written (or the current last position if
    /// the batch held no events).
    ///
    /// Each event is stored with its id and its stream's category. A failure that leaves the
    /// outcome unknown (the connection dropped while committing) is [`Error::OutcomeUnknown`];
    /// a store too busy to take the append now is [`Error::Busy`], with nothing written.
    ///
    /// [`Error::Conflict`]: crate::Error::Conflict
    /// [`Error::DuplicateStreamInBatch`]: crate::Error::DuplicateStreamInBatch
    /// [`Error::TrackingConflict`]: crate::Error::TrackingConflict
    /// [`Error::OutcomeUnknown`]: crate::Error::OutcomeUnknown
    /// [`Error::Busy`]: crate::Error::Busy
    async fn append(&self, batch: AppendBatch) -> Result<Position>;

    /// Reads a stream's events in `range`, oldest first unless the range says backwards. An
    /// unknown stream reads empty.
    fn read_stream(&self, stream_id: Uuid, range: StreamRange) -> EventStream<'_>;

    /// Calls `visit` with each event of the stream in `range`, in order, until it returns
    /// `Break` or an error. This is how the repository replays (and how it looks for the
    /// subjects a snapshot must be sealed for): each event is lent as a [`ReplayedEvent`], its
    /// stream, version, name, schema version and payload, with the same values
    /// [`read_stream`](Self::read_stream) returns. The default reads `read_stream` and lends
    /// each event it returns; the stores of this crate override it to read only those columns
    /// and lend them from their rows, without an allocation per event.
    async fn visit_stream(
        &self,
        stream_id: Uuid,
        range: StreamRange,
        visit: &mut StreamVisitor<'_>,
    ) -> Result<()> {
        let mut events = self.read_stream(stream_id, range);
        while let Some(event) = events.try_next().await? {
            if visit(event.replayed())?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Finds the newest snapshot of a stream (the newest at or below `upto` if given) and
    /// replays the events from it in one request: `visit` is called first with
    /// [`Replay::Snapshot`] (the snapshot, or `None`), then, unless that returned `Break`,
    /// with [`Replay::Event`] for each event of the stream from the snapshot's own version
    /// (from version 1 without a snapshot) up to `upto`, in order, until it returns `Break` or
    /// an error. The event at the snapshot's version is lent too, so that the caller can check
    /// the stream really reached it (a snapshot may be ahead of a stream restored from an older
    /// backup).
    ///
    /// This is how the repository loads an aggregate that keeps snapshots, without a second
    /// round trip. The snapshot and the events are those [`load_snapshot`](Self::load_snapshot)
    /// and [`visit_stream`](Self::visit_stream) return. The default calls the two in turn; the
    /// SQL stores override it to read both in one request.
    async fn replay_from_snapshot(
        &self,
        stream_id: Uuid,
        upto: Option<u64>,
        visit: &mut ReplayVisitor<'_>,
    ) -> Result<()> {
        let snapshot = self.load_snapshot(stream_id, upto).await?;
        let first = snapshot
            .as_ref()
            .map_or(1, |snapshot| snapshot.version.max(1));
        if visit(Replay::Snapshot(snapshot))?.is_break() {
            return Ok(());
        }
        let mut range = StreamRange::all().from(first);
        if let Some(upto) = upto {
            if first > upto {
                return Ok(());
            }
            range = range.to(upto);
        }
        self.visit_stream(stream_id, range, &mut |event| visit(Replay::Event(event)))
            .await
    }

    /// The stream's current version (0 for an unknown stream).
    async fn stream_version(&self, stream_id: Uuid) -> Result<u64>;

    /// Reads the global log: events with `position > query.after` of the query's categories
    /// and names, in position order, at most `query.limit`, and where the next read starts
    /// ([`LogPage::next`]). A follower that pages with `after = page.next` never skips an event,
    /// even one committed late by a concurrent writer, and never reads an event twice.
    async fn read_log(&self, query: LogQuery) -> Result<LogPage>;

    /// The position of the newest event a follower can read (0 for an empty store).
    async fn last_position(&self) -> Result<Position>;

    /// Saves a snapshot (replacing one at the same stream and version).
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()>;

    /// Loads the newest snapshot of a stream, or the newest at or below `at_or_below`.
    async fn load_snapshot(
        &self,
        stream_id: Uuid,
        at_or_below: Option<u64>,
    ) -> Result<Option<Snapshot>>;

    /// Deletes every snapshot of a stream (its data subject was forgotten, say). Returns how
    /// many were deleted.
    async fn delete_snapshots(&self, stream_id: Uuid) -> Result<u64>;

    /// The last position recorded for a tracker (0 if it has none).
    async fn tracking_position(&self, tracker: &str) -> Result<Position>;

    /// Wake-ups after this store's commits, for readers waiting for new events (see
    /// [`WakeUps`]). The default sends none, and readers poll.
    fn wake_ups(&self) -> WakeUps {
        WakeUps::none()
    }
}

/// Implements [`EventStore`] for a pointer type by handing every call to the store it points at.
macro_rules! forward_event_store {
    ($(#[$doc:meta])* $pointer:ty) => {
        $(#[$doc])*
        #[async_trait::async_trait]
        impl<S: EventStore + ?Sized> EventStore for $pointer {
        async fn append(&self, batch: AppendBatch) -> Result<Position> {
            (**self).append(batch).await
        }
        fn read_stream(&self, stream_id: Uuid, range: StreamRange) -> EventStream<'_> {
            (**self).read_stream(stream_id, range)
        }
        async fn visit_stream(
            &self,
            stream_id: Uuid,
            range: StreamRange,
            visit: &mut StreamVisitor<'_>,
        ) -> Result<()> {
            (**self).visit_stream(stream_id, range, visit).await
        }
        async fn replay_from_snapshot(
            &self,
            stream_id: Uuid,
            upto: Option<u64>,
            visit: &mut ReplayVisitor<'_>,
        ) -> Result<()> {
            (**self).replay_from_snapshot(stream_id, upto, visit).await
        }
        async fn stream_version(&self, stream_id: Uuid) -> Result<u64> {
            (**self).stream_version(stream_id).await
        }
        async fn read_log(&self, query: LogQuery) -> Result<LogPage> {
            (**self).read_log(query).await
        }
        async fn last_position(&self) -> Result<Position> {
            (**self).last_position().await
        }
        async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
            (**self).save_snapshot(snapshot).await
        }
        async fn load_snapshot(
            &self,
            stream_id: Uuid,
            at_or_below: Option<u64>,
        ) -> Result<Option<Snapshot>> {
            (**self).load_snapshot(stream_id, at_or_below).await
        }
        async fn delete_snapshots(&self, stream_id: Uuid) -> Result<u64> {
            (**self).delete_snapshots(stream_id).await
        }
        async fn tracking_position(&self, tracker: &str) -> Result<Position> {
            (**self).tracking_position(tracker).await
        }
        fn wake_ups(&self) -> WakeUps {
            (**self).wake_ups()
        }
        }
    };
}

forward_event_store!(std::sync::Arc<S>);
forward_event_store!(
    /// A borrowed store is a store: two repositories (or a repository and a subscription) can
    /// share one without an `Arc`.
    &S
);
