//! Snapshots in the repository: when to take one, and where a load may start from one.
//!
//! A snapshot is an optimisation, never the truth: the events are. So everything here is best
//! effort. A snapshot that can't be read, was taken of another shape of the aggregate (its
//! fingerprint differs) or doesn't decode is ignored with a warning and the state is replayed
//! from the events; a snapshot that can't be written is logged and the command still succeeds.

use std::num::NonZeroU64;
use std::time::SystemTime;

use uuid::Uuid;

use crate::domain::aggregate::Aggregate;
use crate::persistence::codec::Codec;
use crate::persistence::record::Snapshot;
use crate::persistence::store::EventStore;

/// Whether a save that moved a stream from `old` to `new` crossed a multiple of `every`.
pub(crate) fn crosses(old: u64, new: u64, every: NonZeroU64) -> bool {
    new / every.get() > old / every.get()
}

/// What a load found in the snapshot store.
pub(crate) enum Found<A> {
    /// No snapshot at or below the version asked for (or the aggregate keeps none).
    Nothing,
    /// A snapshot to start from.
    Usable {
        /// The version the state reflects.
        version: u64,
        /// The decoded state.
        state: A,
    },
    /// A snapshot that can't be used: replay from the events, and write a fresh one.
    Unusable,
}

/// The newest usable snapshot of `id` at or below `at_or_below`.
pub(crate) async fn find<A: Aggregate, S: EventStore + ?Sized, C: Codec>(
    store: &S,
    codec: &C,
    id: Uuid,
    at_or_below: Option<u64>,
) -> Found<A> {
    let Some(settings) = A::SNAPSHOTS else {
        return Found::Nothing;
    };
    let snapshot = match store.load_snapshot(id, at_or_below).await {
        Ok(Some(snapshot)) => snapshot,
        Ok(None) => return Found::Nothing,
        Err(error) => {
            tracing::warn!(
                aggregate = A::NAME, stream = %id, %error,
                "cannot read the snapshot; replaying from the events"
            );
            return Found::Unusable;
        }
    };
    let version = snapshot.version;
    if at_or_below.is_some_and(|limit| version > limit) || version == 0 {
        tracing::warn!(
            aggregate = A::NAME, stream = %id, version, ?at_or_below,
            "the store returned a snapshot outside the versions asked for; ignoring it"
        );
        return Found::Unusable;
    }
    if snapshot.fingerprint == DISOWNED && snapshot.state.is_empty() {
        tracing::debug!(
            aggregate = A::NAME, stream = %id, version,
            "the newest snapshot was disowned (it was ahead of the stream); replaying from the events"
        );
        return Found::Unusable;
    }
    if snapshot.aggregate != A::NAME || snapshot.fingerprint != settings.fingerprint {
        tracing::warn!(
            aggregate = A::NAME,
            stream = %id,
            version,
            stored_aggregate = %snapshot.aggregate,
            stored_fingerprint = format_args!("{:#018x}", snapshot.fingerprint),
            expected_fingerprint = format_args!("{:#018x}", settings.fingerprint),
            "the snapshot was taken of another shape of the aggregate; ignoring it and replaying from the events"
        );
        return Found::Unusable;
    }
    match A::decode_snapshot(codec, &snapshot.state) {
        Some(Ok(state)) => Found::Usable { version, state },
        Some(Err(error)) => {
            tracing::warn!(
                aggregate = A::NAME, stream = %id, version, %error,
                "the snapshot does not decode; ignoring it and replaying from the events"
            );
            Found::Unusable
        }
        None => Found::Nothing,
    }
}

/// The snapshot of `state` at `version`, or `None` if the aggregate keeps no snapshots.
pub(crate) fn encode<A: Aggregate, C: Codec>(
    codec: &C,
    id: Uuid,
    version: u64,
    state: &A,
) -> Option<crate::Result<Snapshot>> {
    let settings = A::SNAPSHOTS?;
    let encoded = state.encode_snapshot(codec)?;
    Some(
        encoded
            .map(|bytes| Snapshot {
                stream_id: id,
                version,
                aggregate: A::NAME.to_owned(),
                fingerprint: settings.fingerprint,
                state: bytes,
                recorded_at: SystemTime::now(),
            })
            .map_err(|source| crate::Error::Encode {
                what: format!("snapshot of {} {id} at version {version}", A::NAME),
                source,
            }),
    )
}

/// Writes a snapshot, logging (not returning) a failure: the events are already safe.
pub(crate) async fn write_best_effort<A: Aggregate, S: EventStore + ?Sized, C: Codec>(
    store: &S,
    codec: &C,
    id: Uuid,
    version: u64,
    state: &A,
) {
    let result = match encode(codec, id, version, state) {
        None => return,
        Some(Ok(snapshot)) => store.save_snapshot(snapshot).await,
        Some(Err(error)) => Err(error),
    };
    match result {
        Ok(()) => tracing::debug!(aggregate = A::NAME, stream = %id, version, "snapshot taken"),
        Err(error) => tracing::warn!(
            aggregate = A::NAME, stream = %id, version, %error,
            "cannot write the snapshot; the events are saved, loads replay them instead"
        ),
    }
}

/// Overwrites a snapshot that is ahead of its stream (the events were restored from an older
/// backup, say) with an empty one that no aggregate's fingerprint matches, so that it is never
/// used, even once the stream reaches its version again with other events. Best effort.
pub(crate) async fn disown<A: Aggregate, S: EventStore + ?Sized>(
    store: &S,
    id: Uuid,
    version: u64,
) {
    let disowned = Snapshot {
        stream_id: id,
        version,
        aggregate: A::NAME.to_owned(),
        fingerprint: DISOWNED,
        state: Vec::new(),
        recorded_at: SystemTime::now(),
    };
    if let Err(error) = store.save_snapshot(disowned).await {
        tracing::warn!(
            aggregate = A::NAME, stream = %id, version, %error,
            "cannot overwrite the snapshot that is ahead of the stream"
        );
    }
}

/// The fingerprint of a disowned snapshot.
const DISOWNED: u64 = 0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_save_takes_a_snapshot_when_it_crosses_a_multiple() {
        let every = NonZeroU64::new(10).unwrap();
        assert!(!crosses(0, 9, every));
        assert!(crosses(9, 10, every));
        assert!(crosses(8, 12, every)); // a batch jumping over the multiple still counts
        assert!(!crosses(10, 19, every));
        assert!(crosses(0, 25, every));
        assert!(crosses(0, 1, NonZeroU64::MIN));
    }
}
