//! Units of work: load aggregates of any types, decide (awaiting services if need be), and save
//! all their new events in one atomic append, retrying the whole unit on a version conflict.
//!
//! # Snapshots and caches
//!
//! A unit of work loads from snapshots like a repository does, and after it saves, takes a
//! snapshot of each aggregate whose stream crossed a multiple of its derive's
//! `snapshot_every` (a repository's [`snapshot_every`](crate::Repository::snapshot_every)
//! override does not apply here). It bypasses repositories' caches: it neither reads nor
//! writes them. That can't make a cache wrong: a cached entry is a state the stream really had,
//! so after a unit of work appends, the entry is merely behind and the repository's next load
//! reads the events after it.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Index;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::BoxFuture;
use uuid::Uuid;

use super::context::CommandContext;
use super::repository::load::load;
use super::repository::{CommandError, Loaded, encode, subjects};
use super::retry::{Backoff, RetryPolicy};
use super::snapshot;
use crate::domain::aggregate::Aggregate;
use crate::domain::event::IntoEvents;
use crate::error::{Error, Result};
use crate::persistence::codec::PayloadCodec;
use crate::persistence::position::Position;
use crate::persistence::record::{AppendBatch, Metadata, StreamAppend, Tracking};
use crate::persistence::store::EventStore;

/// Runs a closure that loads aggregates of any types and records events on them, then appends
/// all the events in one atomic [`EventStore::append`]: every stream changes, or none does.
///
/// On a version conflict (another writer moved one of the streams) nothing of the attempt is
/// written; the unit waits its [`Backoff`] and runs the closure again on fresh state, up to its
/// attempts, then fails with [`Error::TooManyConflicts`]. The closure may therefore run more
/// than once. It runs inside the [`CommandContext`] of the unit, and every event carries that
/// context as metadata. See the module docs for snapshots and caches.
///
/// Get one from a repository ([`Repository::unit_of_work`](crate::Repository::unit_of_work),
/// which shares its store, codec and retry policy) or with [`UnitOfWork::new`].
///
/// ```
/// use eventsource_core::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone)]
/// struct Ordered { customer: Uuid, cents: u64 }
/// #[derive(Aggregate, Default, Debug)]
/// #[aggregate(events(Ordered))]
/// struct Order { cents: u64 }
/// impl Apply<Ordered> for Order {
///     fn apply(&mut self, e: &Ordered) { self.cents = e.cents; }
/// }
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone)]
/// struct Spent { cents: u64 }
/// #[derive(Aggregate, Default, Debug)]
/// #[aggregate(events(Spent))]
/// struct Customer { spent: u64 }
/// impl Apply<Spent> for Customer {
///     fn apply(&mut self, e: &Spent) { self.spent += e.cents; }
/// }
///
/// #[derive(Debug)]
/// struct OverBudget;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let (customer, order) = (Uuid::now_v7(), Uuid::now_v7());
/// UnitOfWork::new(&store)
///     .run(|work| Box::pin(async move {
///         let buyer = work.load_or_default::<Customer>(customer).await?;
///         let placed = work.load_or_default::<Order>(order).await?;
///         if work[buyer].spent + 30 > 100 {
///             return Err(CommandError::Rejected(OverBudget));
///         }
///         work.record(buyer, Spent { cents: 30 });
///         work.record(placed, Ordered { customer, cents: 30 });
///         Ok(())
///     }))
///     .await
///     .unwrap();
/// assert_eq!(store.stream_version(customer).await?, 1);   // both streams, one append
/// assert_eq!(store.stream_version(order).await?, 1);
/// # Ok::<_, eventsource_core::Error>(()) }).unwrap();
/// ```
pub struct UnitOfWork<'r, S> {
    store: &'r S,
    codec: PayloadCodec,
    retry: RetryPolicy,
}

impl<S: fmt::Debug> fmt::Debug for UnitOfWork<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnitOfWork")
            .field("store", &self.store)
            .field("codec", &self.codec)
            .field("retry", &self.retry)
            .finish()
    }
}

impl<'r, S: EventStore> UnitOfWork<'r, S> {
    /// A unit of work over `store` writing plain JSON payloads, with the default
    /// [`RetryPolicy`].
    pub fn new(store: &'r S) -> Self {
        Self {
            store,
            codec: PayloadCodec::default(),
            retry: RetryPolicy::default(),
        }
    }

    /// How payloads are written: format, compression, encryption (see [`PayloadCodec`]).
    pub fn codec(mut self, codec: PayloadCodec) -> Self {
        self.codec = codec;
        self
    }

    /// How many times the unit is tried before it gives up on conflicts (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.retry = self.retry.with_max_attempts(attempts);
        self
    }

    /// How long the unit waits before retrying after a conflict.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.retry = self.retry.with_backoff(backoff);
        self
    }

    /// Sets attempts and backoff at once.
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Runs the unit: calls `body` with a fresh [`Work`], then appends every event it recorded
    /// in one atomic append, each stream expecting the version it was loaded at. Returns what
    /// `body` returned.
    ///
    /// `body` returns `Err(CommandError::Rejected(_))` to refuse (nothing is written; `?` on a
    /// load's [`Error`] gives `CommandError::Store`). Its future is boxed so that it can borrow
    /// the work: `|work| Box::pin(async move { … })`.
    pub async fn run<T, E, F>(&self, mut body: F) -> Result<T, CommandError<E>>
    where
        F: for<'w> FnMut(&'w mut Work<'r, S>) -> BoxFuture<'w, Result<T, CommandError<E>>>,
    {
        let context = CommandContext::for_command();
        let metadata = context.to_metadata();
        let mut attempt = 1;
        loop {
            let mut work = Work::new(
                self.store,
                self.codec.clone(),
                WorkState::new(metadata.clone()),
            );
            let value = context.clone().enter(body(&mut work)).await?;
            match work.commit(None).await {
                Ok(_) => return Ok(value),
                Err(error) => {
                    self.retry.after_failure(attempt, error).await?;
                    attempt += 1;
                }
            }
        }
    }
}

/// The aggregates one attempt of a [`UnitOfWork`] (or one batch of a
/// [`ProcessManager`](crate::process::ProcessManager)) loaded, and the events recorded on them.
///
/// [`load`](Self::load) and [`load_or_default`](Self::load_or_default) return a [`Handle`];
/// read the aggregate with `work[handle]` (a [`Loaded`]) and record events with
/// [`record`](Self::record).
pub struct Work<'r, S: ?Sized> {
    store: &'r S,
    codec: PayloadCodec,
    state: WorkState<S>,
}

/// What a [`Work`] holds apart from its store and codec: the loaded aggregates, and the
/// metadata each recorded event is written with. A process keeps it between the reactions of
/// one batch.
pub(crate) struct WorkState<S: ?Sized> {
    serial: u64,
    slots: Vec<Entry<S>>,
    /// The metadata of the events recorded so far, one per context the work ran in (one for a
    /// unit of work; one per upstream event for a process).
    contexts: Vec<Metadata>,
}

/// A loaded aggregate, and for each of its pending events the index of its metadata in
/// [`WorkState::contexts`].
struct Entry<S: ?Sized> {
    slot: Box<dyn Slot<S>>,
    contexts: Vec<usize>,
}

impl<S: ?Sized> fmt::Debug for Work<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for entry in &self.state.slots {
            let slot = &entry.slot;
            list.entry(&format_args!(
                "{} {} at version {} (+{} pending)",
                slot.aggregate(),
                slot.stream(),
                slot.version(),
                slot.pending_len()
            ));
        }
        list.finish()
    }
}

/// Which aggregate of a [`Work`] to read or record on: returned by [`Work::load`]. Cheap to
/// copy; only valid in the attempt of the unit that loaded it.
pub struct Handle<A> {
    slot: usize,
    serial: u64,
    stream: Uuid,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A> Handle<A> {
    /// The aggregate's id (its stream id).
    pub fn id(&self) -> Uuid {
        self.stream
    }
}

impl<A> Clone for Handle<A> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A> Copy for Handle<A> {}

impl<A: Aggregate> fmt::Debug for Handle<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle<{}>({})", A::NAME, self.stream)
    }
}

/// Serial numbers of works, so a handle from another work (or attempt) is never mistaken for
/// one of this work's.
static WORKS: AtomicU64 = AtomicU64::new(1);

impl<S: ?Sized> WorkState<S> {
    /// An empty work whose events are written with `metadata` until
    /// [`Work::enter_context`] says otherwise.
    pub(crate) fn new(metadata: Metadata) -> Self {
        Self {
            serial: WORKS.fetch_add(1, Ordering::Relaxed),
            slots: Vec::new(),
            contexts: vec![metadata],
        }
    }
}

impl<'r, S: EventStore + ?Sized> Work<'r, S> {
    pub(crate) fn new(store: &'r S, codec: PayloadCodec, state: WorkState<S>) -> Self {
        Self {
            store,
            codec,
            state,
        }
    }

    /// The loaded aggregates and pending events, taken out (to be put back in a later `Work`
    /// over the same store with [`new`](Self::new)).
    pub(crate) fn into_state(self) -> WorkState<S> {
        self.state
    }

    /// Events recorded from now on are written with `metadata`.
    pub(crate) fn enter_context(&mut self, metadata: Metadata) {
        self.state.contexts.push(metadata);
    }

    /// Loads an aggregate of type `A` (from its newest usable snapshot and the events after
    /// it). Fails with [`Error::NotFound`] if its stream has no events. Loading the same id
    /// again returns the same handle.
    pub async fn load<A: Aggregate>(&mut self, id: Uuid) -> Result<Handle<A>> {
        let handle = self.load_or_default::<A>(id).await?;
        if self[handle].version() == 0 && self[handle].pending().is_empty() {
            return Err(Error::NotFound {
                aggregate: A::NAME,
                stream: id,
            });
        }
        Ok(handle)
    }

    /// Loads an aggregate of type `A`, or its empty state at version 0 if its stream has no
    /// events: saving it then appends with "the stream must not exist" (create-or-execute).
    pub async fn load_or_default<A: Aggregate>(&mut self, id: Uuid) -> Result<Handle<A>> {
        let slots = &self.state.slots;
        if let Some(slot) = slots.iter().position(|entry| entry.slot.stream() == id) {
            if slots[slot].slot.as_any().is::<Loaded<A>>() {
                return Ok(self.handle(slot, id));
            }
            return Err(Error::StreamLoadedAsAnotherType {
                stream: id,
                loaded_as: slots[slot].slot.aggregate(),
                requested: A::NAME,
            });
        }
        let loaded = load::<A, S>(self.store, &self.codec, None, id, None).await?;
        self.state.slots.push(Entry {
            slot: Box::new(loaded),
            contexts: Vec::new(),
        });
        Ok(self.handle(self.state.slots.len() - 1, id))
    }

    fn handle<A>(&self, slot: usize, stream: Uuid) -> Handle<A> {
        Handle {
            slot,
            serial: self.state.serial,
            stream,
            _aggregate: PhantomData,
        }
    }

    /// The loaded aggregate, or `None` if the handle comes from another work.
    pub fn get<A: Aggregate>(&self, handle: Handle<A>) -> Option<&Loaded<A>> {
        if handle.serial != self.state.serial {
            return None;
        }
        self.state
            .slots
            .get(handle.slot)
            .and_then(|entry| entry.slot.as_any().downcast_ref())
    }

    /// Applies events to the aggregate's state and queues them for the unit's append.
    ///
    /// # Panics
    ///
    /// If the handle comes from another work (for example an earlier attempt of the unit),
    /// like indexing a slice out of bounds: handles are only valid in the attempt that loaded
    /// them.
    pub fn record<A: Aggregate>(&mut self, handle: Handle<A>, events: impl IntoEvents<A::Event>) {
        let context = self.state.contexts.len() - 1;
        let entry = (handle.serial == self.state.serial)
            .then(|| self.state.slots.get_mut(handle.slot))
            .flatten();
        let Some(entry) = entry else {
            foreign_handle(A::NAME, handle.stream)
        };
        let Some(loaded) = entry.slot.as_any_mut().downcast_mut::<Loaded<A>>() else {
            foreign_handle(A::NAME, handle.stream)
        };
        loaded.record(events);
        entry.contexts.resize(loaded.pending.len(), context);
    }

    /// Appends every pending event in one batch, with `tracking` if given; on success marks
    /// them saved and takes the snapshots due. Returns the position of the append (`None` if
    /// there was nothing to append).
    pub(crate) async fn commit(&mut self, tracking: Option<Tracking>) -> Result<Option<Position>> {
        let mut batch = AppendBatch::default();
        let subjects: Vec<Uuid> = self
            .state
            .slots
            .iter()
            .flat_map(|entry| entry.slot.subjects())
            .collect();
        self.codec.load_keys_for_writing(subjects).await?;
        for entry in &self.state.slots {
            let metadata = |event: usize| &self.state.contexts[entry.contexts[event]];
            if let Some(append) = entry.slot.append(&self.codec, &metadata)? {
                batch.streams.push(append);
            }
        }
        batch.tracking = tracking;
        if batch.streams.is_empty() && batch.tracking.is_none() {
            return Ok(None);
        }
        let position = self.store.append(batch).await?;
        for entry in &mut self.state.slots {
            entry.slot.saved(self.store, &self.codec).await;
            entry.contexts.clear();
        }
        Ok(Some(position))
    }
}

impl<A: Aggregate, S: EventStore + ?Sized> Index<Handle<A>> for Work<'_, S> {
    type Output = Loaded<A>;

    /// # Panics
    ///
    /// If the handle comes from another work; see [`Work::record`].
    fn index(&self, handle: Handle<A>) -> &Loaded<A> {
        match self.get(handle) {
            Some(loaded) => loaded,
            None => foreign_handle(A::NAME, handle.stream),
        }
    }
}

#[cold]
#[track_caller]
fn foreign_handle(aggregate: &str, stream: Uuid) -> ! {
    panic!(
        "the handle of {aggregate} {stream} belongs to another unit of work (or an earlier attempt of this one); load the aggregate in this work"
    )
}

/// A loaded aggregate of some type, as the work keeps it.
trait Slot<S: ?Sized>: Send + Sync {
    fn stream(&self) -> Uuid;
    fn aggregate(&self) -> &'static str;
    fn version(&self) -> u64;
    fn pending_len(&self) -> usize;
    /// The data subjects whose keys encrypt the pending events.
    fn subjects(&self) -> Vec<Uuid>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// The append of the pending events, if any; `metadata(i)` is the metadata of the `i`th.
    fn append<'m>(
        &self,
        codec: &PayloadCodec,
        metadata: &dyn Fn(usize) -> &'m Metadata,
    ) -> Result<Option<StreamAppend>>;
    /// After a successful append: marks the events saved, and snapshots if the derive's policy
    /// says so.
    fn saved<'a>(&'a mut self, store: &'a S, codec: &'a PayloadCodec) -> BoxFuture<'a, ()>;
}

impl<A: Aggregate, S: EventStore + ?Sized> Slot<S> for Loaded<A> {
    fn stream(&self) -> Uuid {
        self.id
    }
    fn aggregate(&self) -> &'static str {
        A::NAME
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn pending_len(&self) -> usize {
        self.pending.len()
    }
    fn subjects(&self) -> Vec<Uuid> {
        subjects::<A>(self.id, &self.pending).collect()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn append<'m>(
        &self,
        codec: &PayloadCodec,
        metadata: &dyn Fn(usize) -> &'m Metadata,
    ) -> Result<Option<StreamAppend>> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        Ok(Some(StreamAppend {
            stream_id: self.id,
            category: A::NAME.to_owned(),
            expected_version: self.version,
            events: encode::<A>(codec, self.id, self.version, &self.pending, metadata)?,
        }))
    }
    fn saved<'a>(&'a mut self, store: &'a S, codec: &'a PayloadCodec) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if self.pending.is_empty() {
                return;
            }
            let before = self.mark_saved();
            if let Some(every) = A::SNAPSHOTS.and_then(|settings| settings.every)
                && snapshot::crosses(before, self.version, every)
            {
                snapshot::write_best_effort(store, codec, self.id, self.version, &self.state).await;
            }
        })
    }
}
