//! The replaying repository: one aggregate type over one store.
//!
//! A load starts from the best state it can find and reads only the events after it: a cached
//! state (with [`Repository::with_cache`]), else the newest usable snapshot (for aggregates
//! with `#[aggregate(snapshot)]`), else the empty state at version 0.
//!
//! The repository's jobs live one per file:
//! - this file: the [`Repository`] itself and its settings (snapshots, cache, retries);
//! - `loaded.rs`: what it hands out ([`Loaded`], [`Recorded`], [`CommandError`]);
//! - `load.rs`: loading, time travel, history and decoding;
//! - `command.rs`: creating aggregates, running commands (sync and async decisions,
//!   create-or-execute) with retry on conflict, and saving.

mod command;
pub(crate) mod load;
mod loaded;

use std::fmt;
use std::marker::PhantomData;
use std::num::{NonZeroU64, NonZeroUsize};

use uuid::Uuid;

pub(crate) use self::command::{encode, subjects};
pub use self::loaded::{CommandError, Loaded, Recorded};
use super::cache::{ShardedCache, StateCache, snapshot_bytes};
use super::retry::{Backoff, RetryPolicy};
use super::snapshot;
use super::unit_of_work::UnitOfWork;
use crate::domain::aggregate::{Aggregate, Snapshotted};
use crate::error::{Error, Result};
use crate::persistence::codec::PayloadCodec;
use crate::persistence::store::EventStore;

pub use super::retry::DEFAULT_MAX_ATTEMPTS;

/// Loads aggregates by replaying their events, runs commands against them and appends the
/// events they decide, with optimistic concurrency.
///
/// ```
/// use eventsource_core::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone)]
/// struct Incremented { by: u32 }
///
/// #[derive(Aggregate, Default, Debug)]
/// #[aggregate(events(Incremented))]
/// struct Counter { total: u32 }
///
/// impl Apply<Incremented> for Counter {
///     fn apply(&mut self, event: &Incremented) { self.total += event.by; }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let counters = Repository::<Counter, _>::new(MemoryStore::new());
/// let id = counters.create(Incremented { by: 1 }).await?;
/// counters.execute(id, |c| Ok::<_, std::convert::Infallible>(Incremented { by: c.total + 1 })).await.unwrap();
/// let counter = counters.get(id).await?;
/// assert_eq!((counter.total, counter.version()), (3, 2));
/// assert_eq!(counters.get_at(id, 1).await?.total, 1);
/// # Ok::<_, eventsource_core::Error>(()) }).unwrap();
/// ```
///
/// # Snapshots and the cache
///
/// So that a command costs the same on a long stream as on a short one, a repository can start a
/// load from a snapshot (an aggregate with `#[aggregate(snapshot_every = N)]` or
/// `#[aggregate(snapshot)]`, see [`snapshot_every`](Self::snapshot_every)) and from a cache of
/// loaded states ([`with_cache`](Self::with_cache)). Either way it reads the events after that
/// state, so it always returns the stream's latest state, whoever appended.
///
/// ```
/// use eventsource_core::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone)]
/// struct Incremented { by: u32 }
///
/// #[derive(Aggregate, Default, Debug, Clone, Serialize, Deserialize)]
/// #[aggregate(events(Incremented), snapshot_every = 100)]
/// struct Counter { total: u32 }
///
/// impl Apply<Incremented> for Counter {
///     fn apply(&mut self, event: &Incremented) { self.total += event.by; }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let counters = Repository::<Counter, _>::new(MemoryStore::new())
///     .snapshot_every(2)       // overrides the derive's 100
///     .with_cache(10_000);     // keeps the latest state of up to 10,000 counters
/// let id = counters.create(Incremented { by: 1 }).await?;
/// for _ in 0..4 {
///     counters.execute(id, |_| Ok::<_, std::convert::Infallible>(Incremented { by: 1 })).await.unwrap();
/// }
/// let snapshot = counters.store().load_snapshot(id, None).await?.expect("taken at version 4");
/// assert_eq!((snapshot.version, counters.cached_version(id)), (4, Some(5)));
/// assert_eq!(counters.get_at(id, 3).await?.total, 3);   // from no snapshot: the one at 4 is newer
/// # Ok::<_, eventsource_core::Error>(()) }).unwrap();
/// ```
pub struct Repository<A, S> {
    store: S,
    codec: PayloadCodec,
    retry: RetryPolicy,
    snapshot_every: Option<NonZeroU64>,
    cache: Option<Box<dyn StateCache<A>>>,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A, S: fmt::Debug> fmt::Debug for Repository<A, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("aggregate", &std::any::type_name::<A>())
            .field("store", &self.store)
            .field("codec", &self.codec)
            .field("retry", &self.retry)
            .field("snapshot_every", &self.snapshot_every)
            .field("cache_capacity", &self.cache.as_ref().map(|c| c.capacity()))
            .field(
                "cache_max_bytes",
                &self.cache.as_ref().and_then(|c| c.max_bytes()),
            )
            .finish()
    }
}

impl<A: Aggregate, S: EventStore> Repository<A, S> {
    /// A repository over `store`, writing plain JSON payloads (see [`codec`](Self::codec)).
    pub fn new(store: S) -> Self {
        Self {
            store,
            codec: PayloadCodec::default(),
            retry: RetryPolicy::default(),
            snapshot_every: A::SNAPSHOTS.and_then(|settings| settings.every),
            cache: None,
            _aggregate: PhantomData,
        }
    }

    /// How payloads are written: format, compression, encryption (see [`PayloadCodec`]). Every
    /// stored payload decodes whatever this is set to (encrypted ones need its key store).
    ///
    /// ```
    /// use eventsource_core::persistence::codec::{Compression, Format, MemoryKeyStore, PayloadCodec};
    /// use eventsource_core::{MemoryStore, Repository};
    /// # #[derive(eventsource_core::Event, serde::Serialize, serde::Deserialize, Debug, Clone)]
    /// # struct Incremented;
    /// # #[derive(eventsource_core::Aggregate, Default, Debug)]
    /// # #[aggregate(events(Incremented))]
    /// # struct Counter;
    /// # impl eventsource_core::Apply<Incremented> for Counter { fn apply(&mut self, _: &Incremented) {} }
    /// let codec = PayloadCodec::new()
    ///     .format(Format::MessagePack)
    ///     .compress(Compression::lz4())
    ///     .encrypt(MemoryKeyStore::new());
    /// let counters = Repository::<Counter, _>::new(MemoryStore::new()).codec(codec);
    /// assert_eq!(counters.payload_codec().written_format(), Format::MessagePack);
    /// ```
    pub fn codec(mut self, codec: PayloadCodec) -> Self {
        self.codec = codec;
        self
    }

    /// The codec payloads are written and read with.
    pub fn payload_codec(&self) -> &PayloadCodec {
        &self.codec
    }

    /// Takes a snapshot whenever a save makes the stream cross a multiple of `every` events
    /// (overriding the derive's `snapshot_every`); `0` turns automatic snapshots off (loads still
    /// start from existing snapshots, and [`take_snapshot`](Self::take_snapshot) still works).
    ///
    /// Writing a snapshot is best effort: if it fails, the failure is logged with `tracing` and
    /// the command still succeeds, since its events are saved.
    pub fn snapshot_every(mut self, every: u64) -> Self
    where
        A: Snapshotted,
    {
        self.snapshot_every = NonZeroU64::new(every);
        self
    }

    /// The current automatic snapshot policy: every how many events, or `None` for none.
    pub fn snapshot_policy(&self) -> Option<NonZeroU64> {
        self.snapshot_every
    }

    /// Keeps the latest loaded or saved state of up to `capacity` aggregates in memory; `0`
    /// turns the cache off. When it is full, the aggregates loaded least often lately go first
    /// (CLOCK-PRO: one loaded again and again outlives a burst of aggregates loaded once).
    ///
    /// A load then reads only the events after the cached version, so it stays correct when
    /// another process (or repository) appended to the stream meanwhile. A command on a cached
    /// aggregate reads nothing first: it decides on the cached state and appends with the cached
    /// version as the expected version, which the store checks. If another writer appended
    /// meanwhile, that append is refused as a conflict, and the command reads the new events
    /// and decides again at once (no backoff, not counted in
    /// [`max_attempts`](Self::max_attempts)); a rejection or a decision of no events on the
    /// cached state is returned only once the stream is read and found still at that version.
    /// A cached entry is always a state the store really had: only saved states are cached,
    /// a version conflict leaves the entry as it was, just behind, for the retry to
    /// fast-forward, and of two concurrent commands the older state never replaces the newer.
    /// The cache is sharded, so concurrent commands on different aggregates rarely wait for one
    /// another.
    ///
    /// To bound it by bytes as well, see [`with_cache_budget`](Self::with_cache_budget).
    pub fn with_cache(mut self, capacity: usize) -> Self
    where
        A: Clone,
    {
        self.cache = match capacity {
            0 => None,
            capacity => Some(Box::new(ShardedCache::<A>::by_entries(capacity))),
        };
        self
    }

    /// Like [`with_cache`](Self::with_cache), and the cached states weigh at most `max_bytes`
    /// in all; `0` for either turns the cache off.
    ///
    /// A cached state weighs its inline size (`size_of` the aggregate, plus its stream id and
    /// version), plus, for an aggregate that keeps snapshots (`#[aggregate(snapshot)]`), the
    /// length of its JSON snapshot, which stands for the strings, vectors and maps it owns. The
    /// cache can't see inside an aggregate that keeps no snapshots: only its inline size
    /// counts. Whichever bound is reached first applies: each entry also counts as at least
    /// `max_bytes / capacity`. The cache is split into shards (a few per core, of at least 32
    /// entries), each with its part of both bounds; a state heavier than its shard's part of the
    /// budget is not cached, and loads it as without a cache.
    ///
    /// Weighing encodes the state once per saved or newly loaded version, so a byte budget costs
    /// a little on each command; [`with_cache`](Self::with_cache) weighs nothing.
    ///
    /// Fails with [`Error::Config`] if `max_bytes` can't hold even one state.
    ///
    /// ```
    /// use eventsource_core::prelude::*;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Event, Serialize, Deserialize, Debug, Clone)]
    /// struct Noted { text: String }
    ///
    /// #[derive(Aggregate, Default, Debug, Clone, Serialize, Deserialize)]
    /// #[aggregate(events(Noted), snapshot)]
    /// struct Notebook { notes: Vec<String> }
    ///
    /// impl Apply<Noted> for Notebook {
    ///     fn apply(&mut self, event: &Noted) { self.notes.push(event.text.clone()); }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// // Up to 10,000 notebooks, and no more than 64 MiB of them.
    /// let notebooks = Repository::<Notebook, _>::new(MemoryStore::new())
    ///     .with_cache_budget(10_000, 64 << 20)?;
    /// let id = notebooks.create(Noted { text: "first".into() }).await?;
    /// assert_eq!(notebooks.cached_version(id), Some(1));
    ///
    /// // A budget too small for one notebook is a configuration error.
    /// let refused = Repository::<Notebook, _>::new(MemoryStore::new()).with_cache_budget(10, 8);
    /// assert!(matches!(refused, Err(eventsource_core::Error::Config { backend: "cache", .. })));
    /// # Ok::<_, eventsource_core::Error>(()) }).unwrap();
    /// ```
    pub fn with_cache_budget(mut self, capacity: usize, max_bytes: usize) -> Result<Self>
    where
        A: Clone,
    {
        self.cache = match NonZeroUsize::new(max_bytes) {
            Some(max_bytes) if capacity > 0 => {
                Some(Box::new(ShardedCache::<A>::by_entries_and_bytes(
                    capacity,
                    max_bytes,
                    A::NAME,
                    snapshot_bytes::<A>,
                )?))
            }
            _ => None,
        };
        Ok(self)
    }

    /// The version of the aggregate's state in the cache, if it is cached.
    pub fn cached_version(&self, id: Uuid) -> Option<u64> {
        self.cache.as_ref().and_then(|cache| cache.version(id))
    }

    /// How many aggregates the cache holds (0 without a cache).
    pub fn cached_len(&self) -> usize {
        self.cache.as_ref().map_or(0, |cache| cache.len())
    }

    /// Drops the aggregate's cached state, if any: the next load starts from a snapshot or the
    /// first event.
    pub fn evict(&self, id: Uuid) {
        if let Some(cache) = &self.cache {
            cache.remove(id);
        }
    }

    /// Forgets a data subject (crypto-shredding; see
    /// [`application::forget`](crate::application::forget)): deletes its keys, so its
    /// personal events decode as [`Forgotten`](crate::Forgotten) from now on, the snapshots of
    /// its stream, and every cached state of this repository (any of them may hold its data),
    /// and records [`SubjectForgotten`](crate::application::forget::SubjectForgotten). Fails
    /// with [`Error::Key`] if this repository's [`codec`](Self::codec) encrypts nothing.
    pub async fn forget(&self, subject: Uuid) -> Result<crate::application::forget::Forgetting> {
        let forgetting =
            crate::application::forget::forget_subject(&self.store, &self.codec, subject).await;
        if let Some(cache) = &self.cache {
            cache.clear();
        }
        forgetting
    }

    /// Loads the aggregate's latest state and stores a snapshot of it now, whatever the policy.
    /// Returns the snapshot's version. Unlike automatic snapshots, a failure is returned.
    pub async fn take_snapshot(&self, id: Uuid) -> Result<u64>
    where
        A: Snapshotted,
    {
        let loaded = self.get(id).await?;
        snapshot::load_key::<A>(&self.codec, id).await?;
        let others =
            snapshot::other_subjects::<A, S>(&self.store, &self.codec, id, loaded.version).await?;
        let snapshot = snapshot::encode(&self.codec, id, loaded.version, &loaded.state, &others)
            .ok_or_else(|| Error::Encode {
                what: format!("snapshot of {} {id}", A::NAME),
                source: crate::error::CodecError::new(
                    "snapshot",
                    "the aggregate's `Aggregate::SNAPSHOTS` is `None`, but it implements `Snapshotted`: implement both with `#[derive(Aggregate)]` and `#[aggregate(snapshot)]`",
                ),
            })??;
        self.store.save_snapshot(snapshot).await?;
        Ok(loaded.version)
    }

    /// How many times a command ([`execute`](Self::execute) and its siblings, and a
    /// [`unit_of_work`](Self::unit_of_work)) is tried before it gives up on version conflicts
    /// with [`Error::TooManyConflicts`] (at least 1; default [`DEFAULT_MAX_ATTEMPTS`]).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.retry = self.retry.with_max_attempts(attempts);
        self
    }

    /// How long a command waits before retrying after a version conflict (default
    /// [`Backoff::default`]: full jitter up to 1 ms, doubling up to 100 ms).
    ///
    /// ```
    /// use std::time::Duration;
    /// use eventsource_core::{Backoff, MemoryStore, Repository};
    /// # #[derive(eventsource_core::Event, serde::Serialize, serde::Deserialize, Debug, Clone)]
    /// # struct Incremented;
    /// # #[derive(eventsource_core::Aggregate, Default, Debug)]
    /// # #[aggregate(events(Incremented))]
    /// # struct Counter;
    /// # impl eventsource_core::Apply<Incremented> for Counter { fn apply(&mut self, _: &Incremented) {} }
    /// let counters = Repository::<Counter, _>::new(MemoryStore::new())
    ///     .max_attempts(10)
    ///     .backoff(Backoff::exponential(Duration::from_millis(2), Duration::from_millis(250)));
    /// assert_eq!(counters.retry_policy().max_attempts(), 10);
    /// ```
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.retry = self.retry.with_backoff(backoff);
        self
    }

    /// The attempts and backoff commands retry with.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// A unit of work over this repository's store and codec, with its retry policy: load
    /// aggregates of any types, decide, and save them all in one atomic append. See
    /// [`UnitOfWork`].
    pub fn unit_of_work(&self) -> UnitOfWork<'_, S> {
        UnitOfWork::new(&self.store)
            .codec(self.codec.clone())
            .retry_policy(self.retry)
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }
}
