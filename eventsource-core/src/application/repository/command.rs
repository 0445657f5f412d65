//! Commands: creating aggregates, running decisions (sync or async, on an existing aggregate or
//! one that may not exist yet) with retry on version conflicts, and saving pending events.
//!
//! Every command shares one loop ([`Repository::run_command`]): load, decide, append with the
//! loaded version as the expected version; on a conflict, wait the backoff and go again with
//! fresh state. Every event written carries the [`CommandContext`] as metadata.

use std::future::Future;

use futures_util::future::BoxFuture;
use uuid::Uuid;

use super::{CommandError, Loaded, Repository};
use crate::application::context::CommandContext;
use crate::application::snapshot;
use crate::domain::aggregate::Aggregate;
use crate::domain::event::{EventEnum, IntoEvents};
use crate::domain::id::new_id;
use crate::error::{Error, Result};
use crate::persistence::codec::PayloadCodec;
use crate::persistence::position::Position;
use crate::persistence::record::{AppendBatch, Metadata, NewEvent, StreamAppend};
use crate::persistence::store::EventStore;

/// What a command does when its stream has no events yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WhenMissing {
    /// Fail with [`Error::NotFound`] (`execute`).
    NotFound,
    /// Decide against `A::default()` at version 0 and append with "stream must not exist"
    /// (`execute_or_create`).
    StartEmpty,
}

/// A decision the command loop can call once per attempt: a sync closure or an async one.
trait Decision<A> {
    /// What the decision returns on success.
    type Events;
    /// The domain's refusal.
    type Rejection;
    /// Decides against `state`.
    fn decide<'a>(
        &'a mut self,
        state: &'a A,
    ) -> impl Future<Output = Result<Self::Events, Self::Rejection>> + Send;
}

/// A decision that returns at once.
struct Sync<F>(F);

impl<A, T, E, F> Decision<A> for Sync<F>
where
    F: FnMut(&A) -> Result<T, E>,
    T: Send,
    E: Send,
{
    type Events = T;
    type Rejection = E;
    fn decide<'a>(&'a mut self, state: &'a A) -> impl Future<Output = Result<T, E>> + Send {
        std::future::ready((self.0)(state))
    }
}

/// A decision that may await services.
struct Async<F>(F);

impl<A, T, E, F> Decision<A> for Async<F>
where
    F: for<'a> FnMut(&'a A) -> BoxFuture<'a, Result<T, E>>,
{
    type Events = T;
    type Rejection = E;
    fn decide<'a>(&'a mut self, state: &'a A) -> impl Future<Output = Result<T, E>> + Send {
        (self.0)(state)
    }
}

impl<A: Aggregate, S: EventStore> Repository<A, S> {
    /// Creates a new aggregate with a fresh time-ordered id from its first event(s).
    pub async fn create(&self, events: impl IntoEvents<A::Event>) -> Result<Uuid> {
        let id = new_id();
        self.create_with_id(id, events).await?;
        Ok(id)
    }

    /// Creates an aggregate with a chosen id (for example from [`id_from_name`](crate::id_from_name)).
    /// Fails with a conflict if the stream already has events; to decide against whatever is
    /// there instead, use [`execute_or_create`](Self::execute_or_create).
    pub async fn create_with_id(
        &self,
        id: Uuid,
        events: impl IntoEvents<A::Event>,
    ) -> Result<Loaded<A>> {
        let mut loaded = Loaded::<A>::empty(id);
        loaded.record(events);
        self.save(&mut [&mut loaded]).await?;
        Ok(loaded)
    }

    /// Runs a command: loads the aggregate, calls `decide` with its state, applies and appends
    /// the events it returns with the loaded version as the expected version. On a conflict
    /// (another writer got there first) it waits the [`backoff`](Self::backoff), reloads and
    /// decides again, up to [`max_attempts`](Self::max_attempts) times, then fails with
    /// [`Error::TooManyConflicts`]. Returns the aggregate after the command.
    ///
    /// `decide` returns one event, several (`Vec`, array, `Option`), or a domain error, which
    /// comes back as [`CommandError::Rejected`] with nothing written. The events carry the
    /// [`CommandContext`] of the enclosing [`scope`](CommandContext::scope) as metadata. Fails
    /// with [`Error::NotFound`] if the stream has no events.
    pub async fn execute<T, E, F>(&self, id: Uuid, decide: F) -> Result<Loaded<A>, CommandError<E>>
    where
        F: FnMut(&A) -> Result<T, E>,
        T: IntoEvents<A::Event> + Send,
        E: Send,
    {
        self.run_command(id, WhenMissing::NotFound, Sync(decide))
            .await
    }

    /// [`execute`](Self::execute) with a decision that can `.await` (a price, a limit, a
    /// uniqueness check). The decision borrows the state and returns a boxed future:
    /// `|state| Box::pin(async move { … })`. On a conflict it runs again against the fresh
    /// state, so it may be called more than once; it runs inside the command's context, so
    /// commands it runs share the correlation id.
    ///
    /// The returned future may borrow the state, but nothing else from outside the closure:
    /// move owned values in (clone an `Arc` of a service per call). To borrow services, use a
    /// [`unit_of_work`](Self::unit_of_work), whose closure may borrow anything that outlives
    /// the repository. A decision built by a helper function must name its signature
    /// (`-> impl for<'a> FnMut(&'a A) -> BoxFuture<'a, Result<T, E>>`); a closure passed
    /// directly needs nothing.
    ///
    /// ```
    /// use eventsource_core::prelude::*;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Event, Serialize, Deserialize, Debug, Clone)]
    /// struct Reserved { seats: u32 }
    ///
    /// #[derive(Aggregate, Default, Debug)]
    /// #[aggregate(events(Reserved))]
    /// struct Flight { reserved: u32 }
    ///
    /// impl Apply<Reserved> for Flight {
    ///     fn apply(&mut self, e: &Reserved) { self.reserved += e.seats; }
    /// }
    ///
    /// /// A service the decision asks: how many seats the aircraft has today.
    /// async fn capacity() -> u32 { 3 }
    ///
    /// #[derive(Debug)]
    /// struct Full;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let flights = Repository::<Flight, _>::new(MemoryStore::new());
    /// let id = flights.create(Reserved { seats: 2 }).await?;
    /// let reserved = flights
    ///     .execute_async(id, |flight| Box::pin(async move {
    ///         if flight.reserved + 1 > capacity().await { return Err(Full) }
    ///         Ok(Reserved { seats: 1 })
    ///     }))
    ///     .await
    ///     .unwrap();
    /// assert_eq!(reserved.reserved, 3);
    /// let refused = flights
    ///     .execute_async(id, |flight| Box::pin(async move {
    ///         if flight.reserved + 1 > capacity().await { return Err(Full) }
    ///         Ok(Reserved { seats: 1 })
    ///     }))
    ///     .await;
    /// assert!(matches!(refused, Err(CommandError::Rejected(Full))));
    /// # Ok::<_, eventsource_core::Error>(()) }).unwrap();
    /// ```
    pub async fn execute_async<T, E, F>(
        &self,
        id: Uuid,
        decide: F,
    ) -> Result<Loaded<A>, CommandError<E>>
    where
        F: for<'a> FnMut(&'a A) -> BoxFuture<'a, Result<T, E>>,
        T: IntoEvents<A::Event>,
    {
        self.run_command(id, WhenMissing::NotFound, Async(decide))
            .await
    }

    /// Create-or-execute: [`execute`](Self::execute) on an aggregate that may not exist yet.
    ///
    /// If the stream has no events, `decide` sees `A::default()` at version 0 and its events
    /// are appended with "the stream must not exist". Of two callers creating one new id at
    /// once, one wins; the other gets a conflict and decides again against the winner's state,
    /// like any retry. For idempotent registration, or aggregates whose id comes from a name
    /// ([`id_from_name`](crate::id_from_name)).
    ///
    /// ```
    /// use eventsource_core::prelude::*;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Event, Serialize, Deserialize, Debug, Clone)]
    /// struct Registered { email: String }
    ///
    /// #[derive(Aggregate, Default, Debug)]
    /// #[aggregate(events(Registered))]
    /// struct User { email: Option<String> }
    ///
    /// impl Apply<Registered> for User {
    ///     fn apply(&mut self, e: &Registered) { self.email = Some(e.email.clone()); }
    /// }
    ///
    /// impl User {
    ///     /// Registering twice is not an error, and writes nothing the second time.
    ///     fn register(&self, email: &str) -> Result<Option<Registered>, std::convert::Infallible> {
    ///         Ok(self.email.is_none().then(|| Registered { email: email.into() }))
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let users = Repository::<User, _>::new(MemoryStore::new());
    /// let id = eventsource_core::id_from_name("users", "ada@example.com");
    /// let first = users.execute_or_create(id, |u| u.register("ada@example.com")).await.unwrap();
    /// let again = users.execute_or_create(id, |u| u.register("ada@example.com")).await.unwrap();
    /// assert_eq!((first.version(), again.version()), (1, 1));
    /// # Ok::<_, eventsource_core::Error>(()) }).unwrap();
    /// ```
    pub async fn execute_or_create<T, E, F>(
        &self,
        id: Uuid,
        decide: F,
    ) -> Result<Loaded<A>, CommandError<E>>
    where
        F: FnMut(&A) -> Result<T, E>,
        T: IntoEvents<A::Event> + Send,
        E: Send,
    {
        self.run_command(id, WhenMissing::StartEmpty, Sync(decide))
            .await
    }

    /// [`execute_or_create`](Self::execute_or_create) with an async decision, as in
    /// [`execute_async`](Self::execute_async).
    pub async fn execute_or_create_async<T, E, F>(
        &self,
        id: Uuid,
        decide: F,
    ) -> Result<Loaded<A>, CommandError<E>>
    where
        F: for<'a> FnMut(&'a A) -> BoxFuture<'a, Result<T, E>>,
        T: IntoEvents<A::Event>,
    {
        self.run_command(id, WhenMissing::StartEmpty, Async(decide))
            .await
    }

    /// The one command loop: load, decide (in the command's context), append; on a conflict,
    /// back off and go again.
    ///
    /// With the latest state of the stream in the cache, the first attempt decides on it
    /// without reading the stream: the append's expected version is the check (one round trip
    /// to the store instead of two). If another writer appended meanwhile, the append is
    /// refused as a conflict and the loop reads the new events and decides again at once, with
    /// no backoff and without counting the attempt. What the cached state can't prove alone is
    /// checked against the stream before it is returned: a rejection, or a decision of no
    /// events, stands only if the stream was still at the cached version.
    async fn run_command<D>(
        &self,
        id: Uuid,
        when_missing: WhenMissing,
        mut decision: D,
    ) -> Result<Loaded<A>, CommandError<D::Rejection>>
    where
        D: Decision<A>,
        D::Events: IntoEvents<A::Event>,
    {
        // Resolved once: every attempt, and so every event the command writes, shares it.
        let context = CommandContext::for_command();
        let metadata = context.to_metadata();
        let mut attempt = 1;
        // The cached state the previous pass decided on without reading the stream, and what it
        // decided if that was a rejection.
        let mut unverified: Option<(u64, Option<D::Rejection>)> = None;
        let mut from_cache = true;
        loop {
            let cached = match from_cache {
                true => self.cached_latest(id),
                false => None,
            };
            from_cache = false;
            let verified = cached.is_none();
            let mut loaded = match cached {
                Some(loaded) => loaded,
                None => self.load(id, None).await?,
            };
            if let Some((version, rejection)) = unverified.take()
                && loaded.version == version
            {
                // The stream had not moved: what the cached state gave stands.
                return match rejection {
                    Some(rejection) => Err(CommandError::Rejected(rejection)),
                    None => Ok(loaded),
                };
            }
            if loaded.version == 0 && when_missing == WhenMissing::NotFound {
                return Err(Error::NotFound {
                    aggregate: A::NAME,
                    stream: id,
                }
                .into());
            }
            let decided = context.clone().enter(decision.decide(&loaded.state)).await;
            let events = match decided {
                Ok(events) => events,
                Err(rejection) if !verified => {
                    unverified = Some((loaded.version, Some(rejection)));
                    continue;
                }
                Err(rejection) => return Err(CommandError::Rejected(rejection)),
            };
            loaded.record(events);
            if loaded.pending.is_empty() && !verified {
                unverified = Some((loaded.version, None));
                continue;
            }
            match self.save_with(&mut [&mut loaded], &metadata).await {
                Ok(_) => return Ok(loaded),
                // Decided on a cached state that another writer has moved past: read the new
                // events and decide again, as if the cache had been read through.
                Err(Error::Conflict { .. }) if !verified => {}
                Err(error) => {
                    self.retry.after_failure(attempt, error).await?;
                    attempt += 1;
                }
            }
        }
    }

    /// The cached latest state of stream `id`, to decide on without reading the stream.
    fn cached_latest(&self, id: Uuid) -> Option<Loaded<A>> {
        let (version, state) = self.cache.as_ref()?.get(id)?;
        Some(Loaded::at(id, version, state))
    }

    /// Appends the pending events of several aggregates in one atomic batch: all are saved, or
    /// none (for example a transfer between two accounts). Returns the last global position.
    /// The events carry the current [`CommandContext`]. For aggregates of different types, use
    /// a [`unit_of_work`](Self::unit_of_work).
    pub async fn save(&self, aggregates: &mut [&mut Loaded<A>]) -> Result<Position> {
        let metadata = CommandContext::for_command().to_metadata();
        self.save_with(aggregates, &metadata).await
    }

    async fn save_with(
        &self,
        aggregates: &mut [&mut Loaded<A>],
        metadata: &Metadata,
    ) -> Result<Position> {
        let mut batch = AppendBatch::default();
        let keyed: Vec<Uuid> = aggregates
            .iter()
            .flat_map(|loaded| subjects::<A>(loaded.id, &loaded.pending))
            .collect();
        self.codec.load_keys_for_writing(keyed).await?;
        for loaded in aggregates.iter() {
            if loaded.pending.is_empty() {
                continue;
            }
            batch.streams.push(StreamAppend {
                stream_id: loaded.id,
                category: A::NAME.to_owned(),
                expected_version: loaded.version,
                events: encode::<A>(
                    &self.codec,
                    loaded.id,
                    loaded.version,
                    &loaded.pending,
                    &|_| metadata,
                )?,
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
            let before = loaded.mark_saved();
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

    /// Encodes events for appending to stream `id` after version `after` (an encrypted
    /// payload is bound to its stream and version), with the current [`CommandContext`] as
    /// their metadata (a fresh correlation id per call outside a scope).
    pub async fn encode(&self, id: Uuid, after: u64, events: &[A::Event]) -> Result<Vec<NewEvent>> {
        let metadata = CommandContext::for_command().to_metadata();
        let keyed: Vec<Uuid> = subjects::<A>(id, events).collect();
        self.codec.load_keys_for_writing(keyed).await?;
        encode::<A>(&self.codec, id, after, events, &|_| &metadata)
    }
}

/// The data subjects whose keys encrypt `events` of stream `stream`.
pub(crate) fn subjects<A: Aggregate>(
    stream: Uuid,
    events: &[A::Event],
) -> impl Iterator<Item = Uuid> + '_ {
    events
        .iter()
        .filter_map(move |event| event.data_subject().resolve(stream))
}

/// Encodes events of `A` for appending to `stream` after version `after`, each with a fresh id
/// (UUID v7) and its metadata (`metadata(i)` for the `i`th). The keys of their
/// [`subjects`] must be loaded.
pub(crate) fn encode<'m, A: Aggregate>(
    codec: &PayloadCodec,
    stream: Uuid,
    after: u64,
    events: &[A::Event],
    metadata: &dyn Fn(usize) -> &'m Metadata,
) -> Result<Vec<NewEvent>> {
    events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            let version = after + index as u64 + 1;
            let payload = codec
                .encode_event(event, stream, version)
                .map_err(|source| Error::Encode {
                    what: event.name().to_owned(),
                    source,
                })?;
            Ok(NewEvent {
                id: Uuid::now_v7(),
                name: event.name().to_owned(),
                schema_version: event.schema_version(),
                payload,
                metadata: metadata(index).clone(),
            })
        })
        .collect()
}
