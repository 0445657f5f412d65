//! The replaying repository.
//!
//! A load starts from the best state it can find and reads only the events after it: a cached
//! state (with [`Repository::with_cache`]), else the newest usable snapshot (for aggregates
//! with `#[aggregate(snapshot)]`), else the empty state at version 0.

use std::fmt;
use std::marker::PhantomData;
use std::num::NonZeroU64;
use std::ops::ControlFlow;
use std::ops::Deref;

use futures_util::TryStreamExt;
use uuid::Uuid;

use super::cache::{LruCache, StateCache};
use super::snapshot::{self, Found};
use crate::domain::aggregate::{Aggregate, Snapshotted};
use crate::domain::event::{EventEnum, IntoEvents};
use crate::domain::id::new_id;
use crate::error::{Error, Result};
use crate::persistence::codec::{Codec, Json};
use crate::persistence::record::{
    AppendBatch, Metadata, NewEvent, StoredEvent, StreamAppend, StreamRange,
};
use crate::persistence::store::EventStore;

/// How many times [`Repository::execute`] tries a command that keeps hitting version conflicts.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// An aggregate loaded from its stream: its id, its version, its state, and the events recorded
/// on it since loading that are not saved yet.
///
/// Derefs to the state, so `account.balance` reads the aggregate's field.
#[derive(Debug, Clone)]
pub struct Loaded<A: Aggregate> {
    id: Uuid,
    version: u64,
    state: A,
    pending: Vec<A::Event>,
}

impl<A: Aggregate> Loaded<A> {
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
    pub fn record(&mut self, events: impl IntoEvents<A::Event>) {
        for event in events.into_events() {
            self.state.apply_event(&event);
            self.pending.push(event);
        }
    }
}

impl<A: Aggregate> Deref for Loaded<A> {
    type Target = A;
    fn deref(&self) -> &A {
        &self.state
    }
}

/// A decoded event of an aggregate's stream, with where and when it was stored.
#[derive(Debug, Clone)]
pub struct Recorded<E> {
    /// The event.
    pub event: E,
    /// Its version in the stream.
    pub version: u64,
    /// Its position in the global log.
    pub position: u64,
    /// The schema version it was stored at (before upcasting).
    pub stored_schema_version: u32,
    /// Its metadata.
    pub metadata: Metadata,
    /// When it was recorded.
    pub recorded_at: std::time::SystemTime,
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
pub struct Repository<A, S, C = Json> {
    store: S,
    codec: C,
    max_attempts: u32,
    snapshot_every: Option<NonZeroU64>,
    cache: Option<Box<dyn StateCache<A>>>,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A, S: fmt::Debug, C: fmt::Debug> fmt::Debug for Repository<A, S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("aggregate", &std::any::type_name::<A>())
            .field("store", &self.store)
            .field("codec", &self.codec)
            .field("max_attempts", &self.max_attempts)
            .field("snapshot_every", &self.snapshot_every)
            .field("cache_capacity", &self.cache.as_ref().map(|c| c.capacity()))
            .finish()
    }
}

impl<A: Aggregate, S: EventStore> Repository<A, S, Json> {
    /// A repository over `store`, with JSON payloads.
    pub fn new(store: S) -> Self {
        Self::with_codec(store, Json)
    }
}

impl<A: Aggregate, S: EventStore, C: Codec> Repository<A, S, C> {
    /// A repository over `store`, encoding payloads with `codec`.
    pub fn with_codec(store: S, codec: C) -> Self {
        Self {
            store,
            codec,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            snapshot_every: A::SNAPSHOTS.and_then(|settings| settings.every),
            cache: None,
            _aggregate: PhantomData,
        }
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

    /// Keeps the latest loaded or saved state of up to `capacity` aggregates in memory (least
    /// recently used out first); `0` turns the cache off.
    ///
    /// A load then reads only the events after the cached version, so it stays correct when
    /// another process (or repository) appended to the stream meanwhile. A cached entry is
    /// always a state the store really had: only saved states are cached, and a version conflict
    /// leaves the entry as it was, just behind, for the retry to fast-forward.
    pub fn with_cache(mut self, capacity: usize) -> Self
    where
        A: Clone,
    {
        self.cache = match capacity {
            0 => None,
            capacity => Some(Box::new(LruCache::<A>::new(capacity))),
        };
        self
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

    /// Loads the aggregate's latest state and stores a snapshot of it now, whatever the policy.
    /// Returns the snapshot's version. Unlike automatic snapshots, a failure is returned.
    pub async fn take_snapshot(&self, id: Uuid) -> Result<u64>
    where
        A: Snapshotted,
    {
        let loaded = self.get(id).await?;
        let snapshot = snapshot::encode(&self.codec, id, loaded.version, &loaded.state)
            .ok_or_else(|| Error::Encode {
                what: format!("snapshot of {} {id}", A::NAME),
                source: crate::error::CodecError::new(
                    C::NAME,
                    "the aggregate's `Aggregate::SNAPSHOTS` is `None`, but it implements `Snapshotted`: implement both with `#[derive(Aggregate)]` and `#[aggregate(snapshot)]`",
                ),
            })??;
        self.store.save_snapshot(snapshot).await?;
        Ok(loaded.version)
    }

    /// How many times [`execute`](Self::execute) tries a command before giving up on conflicts
    /// (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Creates a new aggregate with a fresh time-ordered id from its first event(s).
    pub async fn create(&self, events: impl IntoEvents<A::Event>) -> Result<Uuid> {
        let id = new_id();
        self.create_with_id(id, events).await?;
        Ok(id)
    }

    /// Creates an aggregate with a chosen id (for example from [`id_from_name`](crate::id_from_name)).
    /// Fails with a conflict if the stream already has events.
    pub async fn create_with_id(
        &self,
        id: Uuid,
        events: impl IntoEvents<A::Event>,
    ) -> Result<Loaded<A>> {
        let mut loaded = Loaded {
            id,
            version: 0,
            state: A::default(),
            pending: Vec::new(),
        };
        loaded.record(events);
        self.save(&mut [&mut loaded]).await?;
        Ok(loaded)
    }

    /// Loads the aggregate's current state by replaying its stream.
    ///
    /// Fails with [`Error::NotFound`] if the stream is empty.
    #[tracing::instrument(level = "debug", skip(self), fields(aggregate = A::NAME))]
    pub async fn get(&self, id: Uuid) -> Result<Loaded<A>> {
        let loaded = self.load(id, None).await?;
        if loaded.version == 0 {
            return Err(Error::NotFound {
                aggregate: A::NAME,
                stream: id,
            });
        }
        Ok(loaded)
    }

    /// Loads the aggregate's state as it was at `version` (time travel).
    ///
    /// Starts from the newest usable snapshot at or below `version`, or from the cached state if
    /// that is at or below `version` and newer, and applies the events up to `version`. The
    /// cache is left as it is. Fails with [`Error::VersionNotFound`] if the stream has not
    /// reached `version` (or `version` is 0).
    pub async fn get_at(&self, id: Uuid, version: u64) -> Result<Loaded<A>> {
        if version == 0 {
            let latest = self.store.stream_version(id).await?;
            if latest == 0 {
                return Err(Error::NotFound {
                    aggregate: A::NAME,
                    stream: id,
                });
            }
            return Err(Error::VersionNotFound {
                aggregate: A::NAME,
                stream: id,
                requested: version,
                latest,
            });
        }
        let loaded = self.load(id, Some(version)).await?;
        if loaded.version == 0 {
            return Err(Error::NotFound {
                aggregate: A::NAME,
                stream: id,
            });
        }
        if loaded.version < version || version == 0 {
            return Err(Error::VersionNotFound {
                aggregate: A::NAME,
                stream: id,
                requested: version,
                latest: loaded.version,
            });
        }
        Ok(loaded)
    }

    /// The aggregate's decoded events with their versions, positions and times.
    pub async fn history(&self, id: Uuid) -> Result<Vec<Recorded<A::Event>>> {
        let mut events = self.store.read_stream(id, StreamRange::all());
        let mut history = Vec::new();
        while let Some(stored) = events.try_next().await? {
            let event = self.decode(&stored)?;
            history.push(Recorded {
                event,
                version: stored.version,
                position: stored.position,
                stored_schema_version: stored.schema_version,
                metadata: stored.metadata,
                recorded_at: stored.recorded_at,
            });
        }
        Ok(history)
    }

    /// Runs a command: loads the aggregate, calls `decide` with its state, applies and appends
    /// the events it returns with the loaded version as the expected version. On a conflict
    /// (another writer got there first) it reloads and decides again, up to
    /// [`max_attempts`](Self::max_attempts) times. Returns the aggregate after the command.
    ///
    /// `decide` returns one event, several (`Vec`, array, `Option`), or a domain error, which
    /// comes back as [`CommandError::Rejected`] with nothing written.
    pub async fn execute<T, E, F>(
        &self,
        id: Uuid,
        mut decide: F,
    ) -> Result<Loaded<A>, CommandError<E>>
    where
        F: FnMut(&A) -> Result<T, E>,
        T: IntoEvents<A::Event>,
    {
        for attempt in 1..=self.max_attempts {
            let mut loaded = self.get(id).await?;
            let events = decide(&loaded.state).map_err(CommandError::Rejected)?;
            loaded.record(events);
            match self.save(&mut [&mut loaded]).await {
                Ok(_) => return Ok(loaded),
                Err(error) if error.is_conflict() && attempt < self.max_attempts => {
                    tracing::debug!(%id, attempt, %error, "version conflict; retrying the command");
                }
                Err(error) if error.is_conflict() => {
                    return Err(Error::TooManyConflicts {
                        stream: id,
                        attempts: attempt,
                    }
                    .into());
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(Error::TooManyConflicts {
            stream: id,
            attempts: self.max_attempts,
        }
        .into())
    }

    /// Appends the pending events of several aggregates in one atomic batch: all are saved, or
    /// none (for example a transfer between two accounts). Returns the last global position.
    pub async fn save(&self, aggregates: &mut [&mut Loaded<A>]) -> Result<u64> {
        let mut batch = AppendBatch::default();
        for loaded in aggregates.iter() {
            if loaded.pending.is_empty() {
                continue;
            }
            batch.streams.push(StreamAppend {
                stream_id: loaded.id,
                expected_version: loaded.version,
                events: self.encode(&loaded.pending)?,
            });
        }
        if batch.streams.is_empty() {
            return self.store.last_position().await;
        }
        let position = self.store.append(batch).await?;
        for loaded in aggregates.iter_mut() {
            if loaded.pending.is_empty() {
                continue;
            }
            let before = loaded.version;
            loaded.version += loaded.pending.len() as u64;
            loaded.pending.clear();
            self.after_save(loaded, before).await;
        }
        Ok(position)
    }

    /// Caches the saved state and takes a snapshot if the save crossed the policy's multiple.
    async fn after_save(&self, loaded: &Loaded<A>, before: u64) {
        if let Some(cache) = &self.cache {
            cache.put(loaded.id, loaded.version, &loaded.state);
        }
        if let Some(every) = self.snapshot_every
            && snapshot::crosses(before, loaded.version, every)
        {
            snapshot::write_best_effort(
                &self.store,
                &self.codec,
                loaded.id,
                loaded.version,
                &loaded.state,
            )
            .await;
        }
    }

    /// Encodes events for appending.
    pub fn encode(&self, events: &[A::Event]) -> Result<Vec<NewEvent>> {
        events
            .iter()
            .map(|event| {
                let payload = event.encode(&self.codec).map_err(|source| Error::Encode {
                    what: event.name().to_owned(),
                    source,
                })?;
                Ok(NewEvent {
                    name: event.name().to_owned(),
                    schema_version: event.schema_version(),
                    payload,
                    metadata: Metadata::new(),
                })
            })
            .collect()
    }

    /// Decodes a stored event of this aggregate, naming the record on failure.
    pub fn decode(&self, stored: &StoredEvent) -> Result<A::Event> {
        A::Event::decode(
            &self.codec,
            &stored.name,
            stored.schema_version,
            &stored.payload,
        )
        .map_err(|source| Error::Decode {
            stream: stored.stream_id,
            version: stored.version,
            event: stored.name.clone(),
            schema_version: stored.schema_version,
            source,
        })
    }

    /// Loads the state at `upto` (the latest with `None`): from the best starting point (the
    /// cache, a snapshot, or nothing), then the events after it.
    async fn load(&self, id: Uuid, upto: Option<u64>) -> Result<Loaded<A>> {
        let cached = self
            .cache
            .as_ref()
            .and_then(|cache| cache.get(id))
            .filter(|(version, _)| upto.is_none_or(|upto| *version <= upto));
        // With the latest state cached, the cache is the best start. For time travel a snapshot
        // between the cached version and `upto` is better, so look for one too.
        let found = match (&cached, upto) {
            (Some(_), None) => Found::Nothing,
            (Some((version, _)), Some(upto)) if *version == upto => Found::Nothing,
            _ => snapshot::find::<A, S, C>(&self.store, &self.codec, id, upto).await,
        };
        let mut rebuild_snapshot = false;
        let mut from_snapshot = false;
        let (version, state) = match (found, cached) {
            (Found::Usable { version, .. }, Some(cached)) if cached.0 > version => cached,
            (Found::Usable { version, state }, _) => {
                from_snapshot = true;
                (version, state)
            }
            (Found::Unusable, cached) => {
                rebuild_snapshot = upto.is_none();
                cached.unwrap_or_default()
            }
            (Found::Nothing, cached) => cached.unwrap_or_default(),
        };
        let mut loaded = Loaded {
            id,
            version,
            state,
            pending: Vec::new(),
        };
        if !self.fold(&mut loaded, upto, from_snapshot).await? {
            tracing::warn!(
                aggregate = A::NAME, stream = %id, snapshot_version = version,
                "the snapshot is ahead of the stream (events restored from an older backup?); ignoring it and replaying from the events"
            );
            snapshot::disown::<A, S>(&self.store, id, version).await;
            loaded = Loaded {
                id,
                version: 0,
                state: A::default(),
                pending: Vec::new(),
            };
            rebuild_snapshot = upto.is_none();
            self.fold(&mut loaded, upto, false).await?;
        }
        if upto.is_none() && loaded.version > 0 {
            if let Some(cache) = &self.cache {
                cache.put(id, loaded.version, &loaded.state);
            }
            if rebuild_snapshot {
                snapshot::write_best_effort(
                    &self.store,
                    &self.codec,
                    id,
                    loaded.version,
                    &loaded.state,
                )
                .await;
            }
        }
        Ok(loaded)
    }

    /// Applies the stream's events after `loaded.version` (up to `upto`) to `loaded`.
    ///
    /// With `check_start` (the state came from a snapshot) it also reads the event at
    /// `loaded.version` itself, to make sure the stream really reached the snapshot's version,
    /// and returns `false` without applying anything if it didn't.
    async fn fold(
        &self,
        loaded: &mut Loaded<A>,
        upto: Option<u64>,
        mut check_start: bool,
    ) -> Result<bool> {
        let first = if check_start {
            loaded.version
        } else {
            loaded.version + 1
        };
        if upto.is_some_and(|upto| first > upto) {
            return Ok(true);
        }
        let mut range = StreamRange::all().from(first);
        if let Some(upto) = upto {
            range = range.to(upto);
        }
        let id = loaded.id;
        let mut matched = true;
        self.store
            .visit_stream(id, range, &mut |stored| {
                if check_start {
                    // The event at the snapshot's own version: the stream must have reached it.
                    if stored.version != loaded.version {
                        matched = false;
                        return Ok(ControlFlow::Break(()));
                    }
                    check_start = false;
                    return Ok(ControlFlow::Continue(()));
                }
                if stored.version != loaded.version + 1 {
                    return Err(Error::Corrupt {
                        stream: id,
                        version: stored.version,
                        message: format!(
                            "expected version {} next, the store returned {}",
                            loaded.version + 1,
                            stored.version
                        ),
                    });
                }
                let event = self.decode(stored)?;
                loaded.state.apply_event(&event);
                loaded.version = stored.version;
                Ok(ControlFlow::Continue(()))
            })
            .await?;
        Ok(matched && !check_start)
    }
}
