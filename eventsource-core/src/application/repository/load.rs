//! Loading: rebuilding an aggregate's state from the best starting point (a cached state, a
//! snapshot, or nothing) and the events after it; time travel; history; decoding stored events.
//!
//! The functions at the bottom take the store, codec and (optional) cache as arguments, so a
//! [`UnitOfWork`](crate::UnitOfWork) loads exactly as a repository does.

use std::ops::ControlFlow;

use futures_util::TryStreamExt;
use uuid::Uuid;

use super::{Loaded, Recorded, Repository};
use crate::application::cache::StateCache;
use crate::application::snapshot::{self, Found};
use crate::domain::aggregate::Aggregate;
use crate::domain::event::EventEnum;
use crate::error::DecodeError;
use crate::error::{Error, Result};
use crate::persistence::codec::{APPLICATION_SUBJECT, PayloadCodec, Pending};
use crate::persistence::record::{Replay, ReplayedCopy, ReplayedEvent, StoredEvent, StreamRange};
use crate::persistence::store::EventStore;

impl<A: Aggregate, S: EventStore> Repository<A, S> {
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
        if loaded.version < version {
            return Err(Error::VersionNotFound {
                aggregate: A::NAME,
                stream: id,
                requested: version,
                latest: loaded.version,
            });
        }
        Ok(loaded)
    }

    /// The aggregate's decoded events with their versions, positions, times and metadata (the
    /// [`CommandContext`](crate::CommandContext) each was written in: see
    /// [`Recorded::correlation_id`] and [`Recorded::actor`]).
    pub async fn history(&self, id: Uuid) -> Result<Vec<Recorded<A::Event>>> {
        let mut events = self.store.read_stream(id, StreamRange::all());
        let mut history = Vec::new();
        while let Some(stored) = events.try_next().await? {
            let event = self.decode(&stored).await?;
            history.push(Recorded::new(event, stored));
        }
        Ok(history)
    }

    /// Decodes a stored event of this aggregate (whatever its format, compression and
    /// encryption), naming the record on failure.
    pub async fn decode(&self, stored: &StoredEvent) -> Result<A::Event> {
        self.codec
            .decode::<A::Event>(stored)
            .await
            .map_err(|source| decode_error(stored.replayed(), source))
    }

    /// Loads the state at `upto` (the latest with `None`), through the cache.
    pub(super) async fn load(&self, id: Uuid, upto: Option<u64>) -> Result<Loaded<A>> {
        load(&self.store, &self.codec, self.cache.as_deref(), id, upto).await
    }
}

/// The error for a stored event that does not decode, naming the record.
pub(crate) fn decode_error(event: ReplayedEvent<'_>, source: DecodeError) -> Error {
    Error::Decode {
        stream: event.stream_id,
        version: event.version,
        event: event.name.to_owned(),
        schema_version: event.schema_version,
        source,
    }
}

/// A replayed event whose payload's key wasn't in memory, copied out of the visit that met it
/// (the store's row lives only as long as the visit): the replay loads the key, then goes on
/// from this event.
struct AwaitingKey {
    subject: Uuid,
    event: ReplayedCopy,
}

impl AwaitingKey {
    fn new(subject: Uuid, event: ReplayedEvent<'_>) -> Self {
        Self {
            subject,
            event: event.into(),
        }
    }
}

/// Loads the state at `upto` (the latest with `None`): from the best starting point (the
/// cache, a snapshot, or nothing), then the events after it. A stream with no events loads as
/// the empty state at version 0.
///
/// An aggregate that keeps snapshots and isn't cached is loaded in one request to the store
/// ([`EventStore::replay_from_snapshot`]); when its snapshot can't be used, it is loaded as
/// below, the snapshot looked up and the events replayed in turn.
pub(crate) async fn load<A, S>(
    store: &S,
    codec: &PayloadCodec,
    cache: Option<&dyn StateCache<A>>,
    id: Uuid,
    upto: Option<u64>,
) -> Result<Loaded<A>>
where
    A: Aggregate,
    S: EventStore + ?Sized,
{
    let cached = cache
        .and_then(|cache| cache.get(id))
        .filter(|(version, _)| upto.is_none_or(|upto| *version <= upto));
    let mut found = None;
    if cached.is_none() && A::SNAPSHOTS.is_some() {
        match load_in_one_request(store, codec, id, upto).await? {
            OneRequest::Loaded(loaded) => {
                return Ok(finish(store, codec, cache, loaded, upto, false).await);
            }
            OneRequest::Ahead(version) => {
                let loaded = replay_without_snapshot(store, codec, id, version, upto).await?;
                return Ok(finish(store, codec, cache, loaded, upto, upto.is_none()).await);
            }
            OneRequest::Unused(unused) => found = unused,
        }
    }
    // With the latest state cached, the cache is the best start. For time travel a snapshot
    // between the cached version and `upto` is better, so look for one too.
    let found = match (found, &cached, upto) {
        (Some(found), _, _) => found,
        (None, Some(_), None) => Found::Nothing,
        (None, Some((version, _)), Some(upto)) if *version == upto => Found::Nothing,
        (None, _, _) => snapshot::find::<A, S>(store, codec, id, upto).await,
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
    let mut loaded = Loaded::at(id, version, state);
    if !fold(store, codec, &mut loaded, upto, from_snapshot).await? {
        loaded = replay_without_snapshot(store, codec, id, version, upto).await?;
        rebuild_snapshot = upto.is_none();
    }
    Ok(finish(store, codec, cache, loaded, upto, rebuild_snapshot).await)
}

/// Replays the stream from its start, after finding the snapshot at `version` ahead of it
/// (and disowning that snapshot).
async fn replay_without_snapshot<A, S>(
    store: &S,
    codec: &PayloadCodec,
    id: Uuid,
    version: u64,
    upto: Option<u64>,
) -> Result<Loaded<A>>
where
    A: Aggregate,
    S: EventStore + ?Sized,
{
    tracing::warn!(
        aggregate = A::NAME, stream = %id, snapshot_version = version,
        "the snapshot is ahead of the stream (events restored from an older backup?); ignoring it and replaying from the events"
    );
    snapshot::disown::<A, S>(store, id, version).await;
    let mut loaded = Loaded::empty(id);
    fold(store, codec, &mut loaded, upto, false).await?;
    Ok(loaded)
}

/// Keeps the latest state loaded in the cache and, if asked, writes a fresh snapshot of it.
async fn finish<A, S>(
    store: &S,
    codec: &PayloadCodec,
    cache: Option<&dyn StateCache<A>>,
    loaded: Loaded<A>,
    upto: Option<u64>,
    rebuild_snapshot: bool,
) -> Loaded<A>
where
    A: Aggregate,
    S: EventStore + ?Sized,
{
    if upto.is_none() && loaded.version > 0 {
        if let Some(cache) = cache {
            cache.put(loaded.id, loaded.version, &loaded.state);
        }
        if rebuild_snapshot {
            snapshot::write_best_effort(store, codec, loaded.id, loaded.version, &loaded.state)
                .await;
        }
    }
    loaded
}

/// What a load in one request came to.
enum OneRequest<A: Aggregate> {
    /// The state, from the snapshot (or from nothing, if there was none) and the events after
    /// it.
    Loaded(Loaded<A>),
    /// The snapshot at this version is ahead of the stream.
    Ahead(u64),
    /// The snapshot can't be started from (what it was, if judged; `None` if opening it needs
    /// a key): load as before, looking it up and replaying in turn.
    Unused(Option<Found<A>>),
}

/// Loads the state at `upto` from the newest snapshot and the events after it, read in one
/// request ([`EventStore::replay_from_snapshot`]).
async fn load_in_one_request<A, S>(
    store: &S,
    codec: &PayloadCodec,
    id: Uuid,
    upto: Option<u64>,
) -> Result<OneRequest<A>>
where
    A: Aggregate,
    S: EventStore + ?Sized,
{
    load_likely_keys::<A>(codec, id).await;
    let mut loaded: Option<Loaded<A>> = None;
    let mut unused = None;
    // The snapshot's version while the event at it (the stream must have reached it) is due.
    let mut check_start = None;
    let mut ahead = false;
    let mut needs_keys = None;
    let outcome = store
        .replay_from_snapshot(id, upto, &mut |replay| match replay {
            Replay::Snapshot(None) => {
                loaded = Some(Loaded::empty(id));
                Ok(ControlFlow::Continue(()))
            }
            Replay::Snapshot(Some(found)) => {
                match snapshot::judge_now::<A>(codec, id, upto, &found) {
                    Some(Found::Usable { version, state }) => {
                        loaded = Some(Loaded::at(id, version, state));
                        check_start = Some(version);
                        Ok(ControlFlow::Continue(()))
                    }
                    // The events lent next start at the snapshot's version, not at 1.
                    judged => {
                        unused = Some(judged);
                        Ok(ControlFlow::Break(()))
                    }
                }
            }
            Replay::Event(stored) => {
                let Some(loaded) = loaded.as_mut() else {
                    return Err(Error::Corrupt {
                        stream: id,
                        version: stored.version,
                        message: "the store lent an event before the snapshot".to_owned(),
                    });
                };
                if let Some(version) = check_start.take() {
                    if stored.version != version {
                        ahead = true;
                        return Ok(ControlFlow::Break(()));
                    }
                    return Ok(ControlFlow::Continue(()));
                }
                apply(codec, loaded, stored, &mut needs_keys)
            }
        })
        .await;
    if let Some(judged) = unused {
        return Ok(OneRequest::Unused(judged));
    }
    if let Err(error) = outcome {
        if loaded.is_none() {
            // The snapshot couldn't be read: load as before, which says so and replays.
            return Ok(OneRequest::Unused(None));
        }
        return Err(error);
    }
    let Some(mut loaded) = loaded else {
        return Err(Error::Corrupt {
            stream: id,
            version: 0,
            message: "the store's replay lent no snapshot (nor its absence)".to_owned(),
        });
    };
    if ahead || check_start.is_some() {
        return Ok(OneRequest::Ahead(loaded.version));
    }
    if let Some(awaiting) = needs_keys {
        codec
            .load_keys_or_fail(&awaiting.event.payload, awaiting.subject)
            .await
            .map_err(|source| decode_error(awaiting.event.lend(), source))?;
        fold(store, codec, &mut loaded, upto, false).await?;
    }
    Ok(OneRequest::Loaded(loaded))
}

/// Loads the keys `A`'s payloads in stream `id` are most likely encrypted with, so that a
/// replay rarely has to stop for one (it stops and resumes for any other).
async fn load_likely_keys<A: Aggregate>(codec: &PayloadCodec, id: Uuid) {
    let likely = [APPLICATION_SUBJECT, id];
    let likely = if <A::Event as EventEnum>::PERSONAL {
        &likely[..]
    } else {
        &likely[..1]
    };
    // Best effort: a key that fails to load here fails again for the record that needs it,
    // and that error names the record.
    let _ = codec.load_keys(likely.iter().copied()).await;
}

/// Applies the next event of a replay to `loaded`; stops (with the event copied into
/// `needs_keys`) if its payload needs a key that isn't in memory.
fn apply<A: Aggregate>(
    codec: &PayloadCodec,
    loaded: &mut Loaded<A>,
    stored: ReplayedEvent<'_>,
    needs_keys: &mut Option<AwaitingKey>,
) -> Result<ControlFlow<()>> {
    if stored.version != loaded.version + 1 {
        return Err(Error::Corrupt {
            stream: loaded.id,
            version: stored.version,
            message: format!(
                "expected version {} next, the store returned {}",
                loaded.version + 1,
                stored.version
            ),
        });
    }
    let event = match codec.decode_now::<A::Event>(stored) {
        Ok(event) => event,
        Err(Pending::Failed(source)) => return Err(decode_error(stored, source)),
        Err(Pending::NeedsKeys(subject)) => {
            // Stop here, load the key, and go on from this event.
            *needs_keys = Some(AwaitingKey::new(subject, stored));
            return Ok(ControlFlow::Break(()));
        }
    };
    loaded.state.apply_event(&event);
    loaded.version = stored.version;
    Ok(ControlFlow::Continue(()))
}

/// Applies the stream's events after `loaded.version` (up to `upto`) to `loaded`.
///
/// With `check_start` (the state came from a snapshot) it also reads the event at
/// `loaded.version` itself, to make sure the stream really reached the snapshot's version,
/// and returns `false` without applying anything if it didn't.
async fn fold<A, S>(
    store: &S,
    codec: &PayloadCodec,
    loaded: &mut Loaded<A>,
    upto: Option<u64>,
    mut check_start: bool,
) -> Result<bool>
where
    A: Aggregate,
    S: EventStore + ?Sized,
{
    load_likely_keys::<A>(codec, loaded.id).await;
    let id = loaded.id;
    let mut matched = true;
    loop {
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
        let mut needs_keys = None;
        store
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
                apply(codec, loaded, stored, &mut needs_keys)
            })
            .await?;
        match needs_keys {
            None => break,
            Some(awaiting) => codec
                .load_keys_or_fail(&awaiting.event.payload, awaiting.subject)
                .await
                .map_err(|source| decode_error(awaiting.event.lend(), source))?,
        }
    }
    Ok(matched && !check_start)
}
