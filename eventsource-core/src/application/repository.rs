//! The replaying repository.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use futures_util::TryStreamExt;
use uuid::Uuid;

use crate::domain::aggregate::Aggregate;
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
pub struct Repository<A, S, C = Json> {
    store: S,
    codec: C,
    max_attempts: u32,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A, S: fmt::Debug, C: fmt::Debug> fmt::Debug for Repository<A, S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("aggregate", &std::any::type_name::<A>())
            .field("store", &self.store)
            .field("codec", &self.codec)
            .field("max_attempts", &self.max_attempts)
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
            _aggregate: PhantomData,
        }
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
        let loaded = self.replay(id, StreamRange::all()).await?;
        if loaded.version == 0 {
            return Err(Error::NotFound {
                aggregate: A::NAME,
                stream: id,
            });
        }
        Ok(loaded)
    }

    /// Loads the aggregate's state as it was at `version`.
    pub async fn get_at(&self, id: Uuid, version: u64) -> Result<Loaded<A>> {
        let loaded = self.replay(id, StreamRange::all().to(version)).await?;
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
            loaded.version += loaded.pending.len() as u64;
            loaded.pending.clear();
        }
        Ok(position)
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

    async fn replay(&self, id: Uuid, range: StreamRange) -> Result<Loaded<A>> {
        let mut loaded = Loaded {
            id,
            version: 0,
            state: A::default(),
            pending: Vec::new(),
        };
        let mut events = self.store.read_stream(id, range);
        while let Some(stored) = events.try_next().await? {
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
            let event = self.decode(&stored)?;
            loaded.state.apply_event(&event);
            loaded.version = stored.version;
        }
        Ok(loaded)
    }
}
