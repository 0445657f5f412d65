//! An in-memory store: for tests, examples and caches of nothing. Everything is lost on drop.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::persistence::position::Position;
use crate::persistence::record::{
    AppendBatch, LogPage, LogQuery, Snapshot, StoredEvent, StreamRange,
};
use crate::persistence::store::{EventStore, EventStream, StreamVisitor};
use crate::persistence::wake::{CommitSignal, WakeUps};

/// How many events a stream read copies out per lock acquisition.
const READ_CHUNK: usize = 1024;

/// An event store in process memory.
///
/// Cloning shares the log: every clone reads and appends the same events, snapshots and
/// tracking positions, and a subscription on one clone is woken by an append through another,
/// like clones of `SqliteStore` and `PostgresStore`. Give each repository
/// or processor its own clone; the data is dropped with the last one.
///
/// ```
/// # tokio_test_block(async {
/// use eventsource_core::{AppendBatch, EventStore, MemoryStore, NewEvent, StreamRange};
/// use futures_util::TryStreamExt;
///
/// let store = MemoryStore::new();
/// let id = uuid::Uuid::now_v7();
/// let event = NewEvent::new("Opened", 1, b"{}".to_vec());
/// store.append(AppendBatch::single_in("Account", id, 0, vec![event])).await.unwrap();
/// let events: Vec<_> = store.read_stream(id, StreamRange::all()).try_collect().await.unwrap();
/// assert_eq!(events[0].version, 1);
/// # });
/// # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

/// What the clones of one store share.
#[derive(Debug, Default)]
struct Shared {
    inner: RwLock<Inner>,
    /// Wakes subscriptions after each append.
    commits: CommitSignal,
}

#[derive(Debug, Default)]
struct Inner {
    /// The global log; an event's position is its index + 1.
    log: Vec<StoredEvent>,
    /// For each stream, the log indexes of its events in version order.
    streams: HashMap<Uuid, Vec<usize>>,
    snapshots: HashMap<Uuid, BTreeMap<u64, Snapshot>>,
    tracking: HashMap<String, Position>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    // A panic while holding the lock can only happen before any mutation (every check runs
    // first), so the data behind a poisoned lock is still consistent.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.shared
            .inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.shared
            .inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    fn version(&self, stream: &Uuid) -> u64 {
        self.streams.get(stream).map_or(0, |s| s.len() as u64)
    }

    /// Copies up to `READ_CHUNK` events of `stream` in `range`, continuing after `cursor`
    /// (the last version returned, 0/None at the start).
    fn read_chunk(
        &self,
        stream: &Uuid,
        range: &StreamRange,
        cursor: Option<u64>,
        remaining: usize,
    ) -> Vec<StoredEvent> {
        self.chunk(stream, range, cursor, remaining)
            .cloned()
            .collect()
    }

    /// The next up to `READ_CHUNK` events of `stream` in `range` after `cursor` (the last
    /// version handed out), borrowed from the log.
    fn chunk<'a>(
        &'a self,
        stream: &Uuid,
        range: &StreamRange,
        cursor: Option<u64>,
        remaining: usize,
    ) -> impl Iterator<Item = &'a StoredEvent> + 'a {
        let indexes: &'a [usize] = self.streams.get(stream).map_or(&[], Vec::as_slice);
        let len = indexes.len() as u64;
        let lo = range.from.max(1);
        let hi = range.to.unwrap_or(len).min(len);
        let take = remaining.min(READ_CHUNK);
        // Versions to hand out, as an empty range when there are none.
        let (versions, backwards): (std::ops::RangeInclusive<u64>, bool) = if range.backwards {
            let start = cursor.map_or(hi, |c| c.saturating_sub(1));
            (lo..=start, true)
        } else {
            let start = cursor.map_or(lo, |c| c + 1);
            (start..=hi, false)
        };
        let versions: Box<dyn Iterator<Item = u64>> = if backwards {
            Box::new(versions.rev())
        } else {
            Box::new(versions)
        };
        versions
            .take(take)
            .map(move |v| &self.log[indexes[(v - 1) as usize]])
    }
}

#[async_trait::async_trait]
impl EventStore for MemoryStore {
    async fn append(&self, batch: AppendBatch) -> Result<Position> {
        let mut inner = self.write();
        let mut seen = HashSet::with_capacity(batch.streams.len());
        for append in &batch.streams {
            if !seen.insert(append.stream_id) {
                return Err(Error::DuplicateStreamInBatch {
                    stream: append.stream_id,
                });
            }
            let actual = inner.version(&append.stream_id);
            if actual != append.expected_version {
                return Err(Error::Conflict {
                    stream: append.stream_id,
                    expected: append.expected_version,
                    actual,
                });
            }
        }
        if let Some(tracking) = &batch.tracking {
            let recorded = inner
                .tracking
                .get(&tracking.tracker)
                .copied()
                .unwrap_or(Position::START);
            if tracking.position <= recorded {
                return Err(Error::TrackingConflict {
                    tracker: tracking.tracker.clone(),
                    position: tracking.position,
                    recorded,
                });
            }
        }
        let now = SystemTime::now();
        for append in batch.streams {
            for (offset, event) in append.events.into_iter().enumerate() {
                let index = inner.log.len();
                inner.log.push(StoredEvent {
                    id: event.id,
                    stream_id: append.stream_id,
                    category: append.category.clone(),
                    version: append.expected_version + offset as u64 + 1,
                    name: event.name,
                    schema_version: event.schema_version,
                    payload: event.payload,
                    metadata: event.metadata,
                    recorded_at: now,
                    position: Position::new(index as u64 + 1),
                });
                inner
                    .streams
                    .entry(append.stream_id)
                    .or_default()
                    .push(index);
            }
        }
        if let Some(tracking) = batch.tracking {
            inner.tracking.insert(tracking.tracker, tracking.position);
        }
        let last = Position::new(inner.log.len() as u64);
        drop(inner);
        self.shared.commits.notify();
        Ok(last)
    }

    fn read_stream(&self, stream_id: Uuid, range: StreamRange) -> EventStream<'_> {
        let remaining = range.limit.unwrap_or(usize::MAX);
        let state = (
            None::<u64>,
            remaining,
            Vec::<StoredEvent>::new().into_iter(),
        );
        Box::pin(futures_util::stream::unfold(
            state,
            move |(mut cursor, mut remaining, mut buffer)| async move {
                loop {
                    if let Some(event) = buffer.next() {
                        return Some((Ok(event), (cursor, remaining, buffer)));
                    }
                    if remaining == 0 {
                        return None;
                    }
                    let chunk = self
                        .read()
                        .read_chunk(&stream_id, &range, cursor, remaining);
                    let last = chunk.last()?.version;
                    cursor = Some(last);
                    remaining -= chunk.len();
                    buffer = chunk.into_iter();
                }
            },
        ))
    }

    async fn visit_stream(
        &self,
        stream_id: Uuid,
        range: StreamRange,
        visit: &mut StreamVisitor<'_>,
    ) -> Result<()> {
        // Borrowed straight from the log, a chunk per lock acquisition: no copies.
        let mut cursor = None;
        let mut remaining = range.limit.unwrap_or(usize::MAX);
        while remaining > 0 {
            let inner = self.read();
            let mut seen = 0;
            for event in inner.chunk(&stream_id, &range, cursor, remaining) {
                seen += 1;
                cursor = Some(event.version);
                if visit(event.replayed())?.is_break() {
                    return Ok(());
                }
            }
            if seen == 0 {
                break;
            }
            remaining -= seen;
        }
        Ok(())
    }

    async fn stream_version(&self, stream_id: Uuid) -> Result<u64> {
        Ok(self.read().version(&stream_id))
    }

    async fn read_log(&self, query: LogQuery) -> Result<LogPage> {
        let inner = self.read();
        let index = |position: Position| usize::try_from(position.get()).unwrap_or(usize::MAX);
        // The log index after the last event the query may read: the bound, or the end.
        let end = query.to.map_or(usize::MAX, index).min(inner.log.len());
        let start = index(query.after).min(end);
        let mut events = Vec::new();
        // The last position looked at: the rest of the log up to the bound, unless the page
        // fills first.
        let mut next = query.after.max(Position::new(start as u64));
        for event in &inner.log[start..end] {
            if events.len() == query.limit {
                break;
            }
            next = event.position;
            if query.matches(event) {
                events.push(event.clone());
            }
        }
        Ok(LogPage { events, next })
    }

    async fn last_position(&self) -> Result<Position> {
        Ok(Position::new(self.read().log.len() as u64))
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        let mut inner = self.write();
        inner
            .snapshots
            .entry(snapshot.stream_id)
            .or_default()
            .insert(snapshot.version, snapshot);
        Ok(())
    }

    async fn delete_snapshots(&self, stream_id: Uuid) -> Result<u64> {
        let mut inner = self.write();
        Ok(inner
            .snapshots
            .remove(&stream_id)
            .map_or(0, |snapshots| snapshots.len() as u64))
    }

    async fn load_snapshot(
        &self,
        stream_id: Uuid,
        at_or_below: Option<u64>,
    ) -> Result<Option<Snapshot>> {
        let inner = self.read();
        let Some(snapshots) = inner.snapshots.get(&stream_id) else {
            return Ok(None);
        };
        let found = match at_or_below {
            Some(version) => snapshots.range(..=version).next_back(),
            None => snapshots.iter().next_back(),
        };
        Ok(found.map(|(_, s)| s.clone()))
    }

    fn wake_ups(&self) -> WakeUps {
        self.shared.commits.wake_ups()
    }

    async fn tracking_position(&self, tracker: &str) -> Result<Position> {
        Ok(self
            .read()
            .tracking
            .get(tracker)
            .copied()
            .unwrap_or(Position::START))
    }
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use futures_util::TryStreamExt;

    use super::*;
    use crate::persistence::record::NewEvent;

    /// Longer than two chunks, so reads and visits cross two chunk boundaries.
    const LONG: u64 = 2 * READ_CHUNK as u64 + 100;

    async fn long_stream() -> (MemoryStore, Uuid) {
        let store = MemoryStore::new();
        let id = Uuid::now_v7();
        let events = (0..LONG)
            .map(|_| NewEvent::new("Ticked", 1, b"{}".to_vec()))
            .collect();
        store
            .append(AppendBatch::single(id, 0, events))
            .await
            .unwrap();
        (store, id)
    }

    async fn read(store: &MemoryStore, id: Uuid, range: StreamRange) -> Vec<u64> {
        store
            .read_stream(id, range)
            .map_ok(|event| event.version)
            .try_collect()
            .await
            .unwrap()
    }

    /// The versions a visit sees, stopping after `stop_after` of them.
    async fn visit(
        store: &MemoryStore,
        id: Uuid,
        range: StreamRange,
        stop_after: usize,
    ) -> Vec<u64> {
        let mut versions = Vec::new();
        store
            .visit_stream(id, range, &mut |event| {
                versions.push(event.version);
                Ok(if versions.len() >= stop_after {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                })
            })
            .await
            .unwrap();
        versions
    }

    #[tokio::test]
    async fn reads_and_visits_cross_chunk_boundaries_in_both_directions() {
        let (store, id) = long_stream().await;
        let cases: [(StreamRange, Vec<u64>); 4] = [
            (StreamRange::all(), (1..=LONG).collect()),
            (StreamRange::all().backwards(), (1..=LONG).rev().collect()),
            (
                StreamRange::all().from(1000).limit(1100),
                (1000..2100).collect(),
            ),
            (
                StreamRange::all().to(2000).backwards().limit(1500),
                (501..=2000).rev().collect(),
            ),
        ];
        for (range, expected) in cases {
            assert_eq!(
                visit(&store, id, range, usize::MAX).await,
                expected,
                "visit {range:?}"
            );
            assert_eq!(read(&store, id, range).await, expected, "read {range:?}");
        }
        // A visit that stops sees no event after it stopped, even in a later chunk.
        assert_eq!(
            visit(&store, id, StreamRange::all(), 1500).await,
            (1..=1500).collect::<Vec<_>>()
        );
        // An unknown stream, and a range past the end, have nothing to read.
        assert!(
            visit(&store, Uuid::now_v7(), StreamRange::all(), usize::MAX)
                .await
                .is_empty()
        );
        assert!(
            read(&store, id, StreamRange::all().from(LONG + 1))
                .await
                .is_empty()
        );
    }
}
