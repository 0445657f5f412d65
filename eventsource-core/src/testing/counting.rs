//! A store that counts what it is asked for: for tests that check what a load or a command
//! costs, not only what it returns (feature `testing`).
//!
//! A repository that returns the right state may still have replayed the whole stream when it
//! had a snapshot, ignored its cache, or retried an append that could never succeed. The state
//! is the same; the cost is not. [`CountingStore`] wraps a real store (a [`MemoryStore`] by
//! default), hands every call to it, and counts: appends tried and failed, events appended,
//! stream reads and the events each one handed out, log reads, snapshots loaded and saved. It
//! can also fail the next appends with an error of the test's choosing (a busy store, a lost
//! connection, a conflict), so a test can check what a command does with each.
//!
//! ```
//! use eventsource_core::prelude::*;
//! use eventsource_core::testing::counting::CountingStore;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Serialize, Deserialize, Debug, Clone)]
//! struct Incremented;
//!
//! #[derive(Aggregate, Default, Debug, Clone, Serialize, Deserialize)]
//! #[aggregate(events(Incremented), snapshot_every = 10)]
//! struct Counter { total: u32 }
//!
//! impl Apply<Incremented> for Counter {
//!     fn apply(&mut self, _: &Incremented) { self.total += 1; }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let counters = Repository::<Counter, _>::new(CountingStore::new(MemoryStore::new()));
//! let id = counters.create(Incremented).await?;
//! for _ in 0..11 {
//!     counters.execute(id, |_| Ok::<_, std::convert::Infallible>(Incremented)).await.unwrap();
//! }
//! counters.store().take_counts();
//!
//! // A load starts from the snapshot taken at version 10: it reads the event at 10 (to check
//! // that the stream reached it) and the two after it, not all twelve.
//! assert_eq!(counters.get(id).await?.total, 12);
//! let counts = counters.store().take_counts();
//! assert_eq!((counts.snapshots_found, counts.stream_reads, counts.events_read), (1, 1, 3));
//! # Ok::<_, eventsource_core::Error>(()) }).unwrap();
//! ```

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::StreamExt;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::persistence::position::Position;
use crate::persistence::record::{AppendBatch, LogPage, LogQuery, Replay, Snapshot, StreamRange};
use crate::persistence::store::{EventStore, EventStream, ReplayVisitor, StreamVisitor};
use crate::persistence::wake::WakeUps;
use crate::stores::memory::MemoryStore;

/// What a [`CountingStore`] was asked for, since it was made or since the last
/// [`take_counts`](CountingStore::take_counts).
///
/// Compare a whole value to say that nothing else was asked for:
/// `assert_eq!(counts, StoreCounts { appends: 1, events_appended: 2, ..StoreCounts::default() })`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCounts {
    /// Appends tried ([`EventStore::append`] calls), whatever their outcome: each attempt of a
    /// command is one.
    pub appends: u64,
    /// Of those, the appends that failed: a conflict from the store, or a failure the test
    /// asked for ([`CountingStore::fail_appends`]).
    pub failed_appends: u64,
    /// Events written by the appends that succeeded.
    pub events_appended: u64,
    /// Stream reads ([`EventStore::read_stream`] and [`EventStore::visit_stream`] calls, and
    /// the replays of [`EventStore::replay_from_snapshot`] calls whose visitor went on after
    /// the snapshot).
    pub stream_reads: u64,
    /// Events the stream reads handed out.
    pub events_read: u64,
    /// [`EventStore::stream_version`] calls.
    pub version_reads: u64,
    /// Log reads ([`EventStore::read_log`] calls).
    pub log_reads: u64,
    /// Events the log reads returned.
    pub log_events_read: u64,
    /// [`EventStore::last_position`] calls.
    pub last_position_reads: u64,
    /// Snapshot loads ([`EventStore::load_snapshot`] and [`EventStore::replay_from_snapshot`]
    /// calls).
    pub snapshot_loads: u64,
    /// Of those, the [`EventStore::replay_from_snapshot`] calls: a snapshot look-up and the
    /// replay after it in one request.
    pub snapshot_replays: u64,
    /// Of those, the loads that found a snapshot (usable or not).
    pub snapshots_found: u64,
    /// Snapshot saves ([`EventStore::save_snapshot`] calls), including the empty snapshots a
    /// repository writes over one that is ahead of its stream.
    pub snapshot_saves: u64,
    /// [`EventStore::delete_snapshots`] calls (a data subject forgotten).
    pub snapshot_deletes: u64,
    /// [`EventStore::tracking_position`] calls.
    pub tracking_reads: u64,
}

/// One stream read, as [`CountingStore::stream_reads`] lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRead {
    /// The stream read.
    pub stream_id: Uuid,
    /// The versions asked for.
    pub range: StreamRange,
    /// How many events the read handed out (so far, for a read still being consumed).
    pub events: u64,
}

/// Makes the error a failing append returns.
type MakeError = Box<dyn Fn(&AppendBatch) -> Error + Send + Sync>;

/// The next appends to fail, and with what.
struct AppendFault {
    /// How many more appends fail (`None`: every one).
    remaining: Option<u64>,
    error: MakeError,
}

/// What the clones of one counting store share.
#[derive(Default)]
struct Ledger {
    counts: StoreCounts,
    reads: Vec<StreamRead>,
    fault: Option<AppendFault>,
}

/// A store that hands every call to `S` and counts what was asked for; it can fail appends on
/// request. See the [module docs](self).
///
/// Clones share the counts, so a test can give one clone to a repository and read the counts
/// from another (or through [`Repository::store`](crate::Repository::store)).
pub struct CountingStore<S = MemoryStore> {
    store: S,
    ledger: Arc<Mutex<Ledger>>,
}

impl<S> CountingStore<S> {
    /// Counts the calls made to `store`.
    pub fn new(store: S) -> Self {
        Self {
            store,
            ledger: Arc::default(),
        }
    }

    /// The store the calls are handed to (calls made on it directly are not counted).
    pub fn inner(&self) -> &S {
        &self.store
    }

    /// What was asked for since the store was made or last [`take_counts`](Self::take_counts).
    pub fn counts(&self) -> StoreCounts {
        self.ledger().counts
    }

    /// What was asked for since the store was made or last taken, and starts counting afresh
    /// (the [`stream_reads`](Self::stream_reads) too): call it before the step a test measures,
    /// and after it to get what that step cost.
    pub fn take_counts(&self) -> StoreCounts {
        let mut ledger = self.ledger();
        ledger.reads.clear();
        std::mem::take(&mut ledger.counts)
    }

    /// Each stream read since the counts were last taken, oldest first: the stream, the
    /// versions asked for, and how many events it handed out.
    pub fn stream_reads(&self) -> Vec<StreamRead> {
        self.ledger().reads.clone()
    }

    /// Fails the next `times` appends with the error `error` makes from the batch, without
    /// handing them to the store (so nothing is written). Replaces any failure asked for
    /// before; the appends after those `times` go through again.
    pub fn fail_appends(
        &self,
        times: u64,
        error: impl Fn(&AppendBatch) -> Error + Send + Sync + 'static,
    ) {
        self.ledger().fault = Some(AppendFault {
            remaining: Some(times),
            error: Box::new(error),
        });
    }

    /// Fails every append from now on with the error `error` makes, until
    /// [`stop_failing`](Self::stop_failing).
    ///
    /// ```
    /// use eventsource_core::testing::counting::CountingStore;
    /// use eventsource_core::{AppendBatch, Error, EventStore, MemoryStore, NewEvent, Uuid};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = CountingStore::new(MemoryStore::new());
    /// store.fail_every_append(|_| Error::busy("test", "appending", "the disk is full"));
    /// let opened = || NewEvent::new("Opened", 1, b"{}".to_vec());
    /// let append = || AppendBatch::single(Uuid::now_v7(), 0, vec![opened()]);
    /// assert!(matches!(store.append(append()).await, Err(Error::Busy { .. })));
    /// assert_eq!(store.inner().last_position().await?.get(), 0, "nothing written");
    /// store.stop_failing();
    /// store.append(append()).await?;
    /// let counts = store.counts();
    /// assert_eq!((counts.appends, counts.failed_appends, counts.events_appended), (2, 1, 1));
    /// # Ok::<_, Error>(()) }).unwrap();
    /// ```
    pub fn fail_every_append(&self, error: impl Fn(&AppendBatch) -> Error + Send + Sync + 'static) {
        self.ledger().fault = Some(AppendFault {
            remaining: None,
            error: Box::new(error),
        });
    }

    /// Lets appends through again.
    pub fn stop_failing(&self) {
        self.ledger().fault = None;
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.ledger)
    }

    /// Records a stream read and returns its index in the ledger's list.
    fn start_read(&self, stream_id: Uuid, range: StreamRange) -> usize {
        let mut ledger = self.ledger();
        ledger.counts.stream_reads += 1;
        ledger.reads.push(StreamRead {
            stream_id,
            range,
            events: 0,
        });
        ledger.reads.len() - 1
    }

    /// The error for this append, if the test asked for it to fail.
    fn injected_failure(&self, batch: &AppendBatch) -> Option<Error> {
        let mut ledger = self.ledger();
        let fault = ledger.fault.as_mut()?;
        if let Some(remaining) = &mut fault.remaining {
            if *remaining == 0 {
                ledger.fault = None;
                return None;
            }
            *remaining -= 1;
        }
        Some((fault.error)(batch))
    }
}

/// Locks the ledger. Every update is a few additions under the lock: a panic elsewhere can't
/// leave it half-written, so a poisoned ledger is still right.
fn lock(ledger: &Mutex<Ledger>) -> MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counts an event handed out by the stream read at `index` in the ledger's list.
fn count_read_event(ledger: &Mutex<Ledger>, index: usize) {
    let mut ledger = lock(ledger);
    ledger.counts.events_read += 1;
    // If `take_counts` cleared the list while the read ran, only the total counts it.
    if let Some(read) = ledger.reads.get_mut(index) {
        read.events += 1;
    }
}

impl<S: Default> Default for CountingStore<S> {
    fn default() -> Self {
        Self::new(S::default())
    }
}

impl<S: Clone> Clone for CountingStore<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            ledger: Arc::clone(&self.ledger),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for CountingStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ledger = self.ledger();
        f.debug_struct("CountingStore")
            .field("store", &self.store)
            .field("counts", &ledger.counts)
            .field(
                "failing_appends",
                &ledger.fault.as_ref().map(|fault| fault.remaining),
            )
            .finish()
    }
}

#[async_trait::async_trait]
impl<S: EventStore> EventStore for CountingStore<S> {
    async fn append(&self, batch: AppendBatch) -> Result<Position> {
        self.ledger().counts.appends += 1;
        let events: u64 = batch.streams.iter().map(|s| s.events.len() as u64).sum();
        let outcome = match self.injected_failure(&batch) {
            Some(error) => Err(error),
            None => self.store.append(batch).await,
        };
        let mut ledger = self.ledger();
        match &outcome {
            Ok(_) => ledger.counts.events_appended += events,
            Err(_) => ledger.counts.failed_appends += 1,
        }
        outcome
    }

    fn read_stream(&self, stream_id: Uuid, range: StreamRange) -> EventStream<'_> {
        let index = self.start_read(stream_id, range);
        let ledger = Arc::clone(&self.ledger);
        Box::pin(
            self.store
                .read_stream(stream_id, range)
                .inspect(move |item| {
                    if item.is_ok() {
                        count_read_event(&ledger, index);
                    }
                }),
        )
    }

    async fn visit_stream(
        &self,
        stream_id: Uuid,
        range: StreamRange,
        visit: &mut StreamVisitor<'_>,
    ) -> Result<()> {
        let index = self.start_read(stream_id, range);
        let mut counting = |event: crate::persistence::record::ReplayedEvent<'_>| {
            count_read_event(&self.ledger, index);
            visit(event)
        };
        self.store
            .visit_stream(stream_id, range, &mut counting)
            .await
    }

    async fn replay_from_snapshot(
        &self,
        stream_id: Uuid,
        upto: Option<u64>,
        visit: &mut ReplayVisitor<'_>,
    ) -> Result<()> {
        {
            let mut ledger = self.ledger();
            ledger.counts.snapshot_loads += 1;
            ledger.counts.snapshot_replays += 1;
        }
        let mut index = None;
        let mut counting = |replay: Replay<'_>| {
            match &replay {
                Replay::Snapshot(snapshot) => {
                    let first = snapshot
                        .as_ref()
                        .map_or(1, |snapshot| snapshot.version.max(1));
                    if snapshot.is_some() {
                        self.ledger().counts.snapshots_found += 1;
                    }
                    let flow = visit(replay)?;
                    if flow.is_continue() {
                        let mut range = StreamRange::all().from(first);
                        if let Some(upto) = upto {
                            range = range.to(upto);
                        }
                        index = Some(self.start_read(stream_id, range));
                    }
                    return Ok(flow);
                }
                Replay::Event(_) => {
                    if let Some(index) = index {
                        count_read_event(&self.ledger, index);
                    }
                }
            }
            visit(replay)
        };
        self.store
            .replay_from_snapshot(stream_id, upto, &mut counting)
            .await
    }

    async fn stream_version(&self, stream_id: Uuid) -> Result<u64> {
        self.ledger().counts.version_reads += 1;
        self.store.stream_version(stream_id).await
    }

    async fn read_log(&self, query: LogQuery) -> Result<LogPage> {
        self.ledger().counts.log_reads += 1;
        let page = self.store.read_log(query).await?;
        self.ledger().counts.log_events_read += page.events.len() as u64;
        Ok(page)
    }

    async fn last_position(&self) -> Result<Position> {
        self.ledger().counts.last_position_reads += 1;
        self.store.last_position().await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        self.ledger().counts.snapshot_saves += 1;
        self.store.save_snapshot(snapshot).await
    }

    async fn delete_snapshots(&self, stream_id: Uuid) -> Result<u64> {
        self.ledger().counts.snapshot_deletes += 1;
        self.store.delete_snapshots(stream_id).await
    }

    async fn load_snapshot(
        &self,
        stream_id: Uuid,
        at_or_below: Option<u64>,
    ) -> Result<Option<Snapshot>> {
        self.ledger().counts.snapshot_loads += 1;
        let found = self.store.load_snapshot(stream_id, at_or_below).await?;
        if found.is_some() {
            self.ledger().counts.snapshots_found += 1;
        }
        Ok(found)
    }

    async fn tracking_position(&self, tracker: &str) -> Result<Position> {
        self.ledger().counts.tracking_reads += 1;
        self.store.tracking_position(tracker).await
    }

    fn wake_ups(&self) -> WakeUps {
        self.store.wake_ups()
    }
}
