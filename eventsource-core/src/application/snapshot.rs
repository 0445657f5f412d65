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
use std::ops::ControlFlow;

use crate::domain::event::EventEnum;
use crate::error::CodecError;
use crate::persistence::codec::{
    APPLICATION_SUBJECT, Format, Json, MessagePack, PayloadCodec, Pending, RecordKind, RecordRef,
};
use crate::persistence::record::Snapshot;
use crate::persistence::record::StreamRange;
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
pub(crate) async fn find<A: Aggregate, S: EventStore + ?Sized>(
    store: &S,
    codec: &PayloadCodec,
    id: Uuid,
    at_or_below: Option<u64>,
) -> Found<A> {
    if A::SNAPSHOTS.is_none() {
        return Found::Nothing;
    }
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
    let Some((version, fingerprint)) = check::<A>(id, at_or_below, &snapshot) else {
        return Found::Unusable;
    };
    let open = || codec.open_snapshot(id, version, A::NAME, fingerprint, &snapshot.state);
    // Each layer may need a subject's keys: load them as they are asked for, each once.
    let mut loaded: Vec<Uuid> = Vec::new();
    let opened = loop {
        match open() {
            Err(Pending::NeedsKeys(named)) if !loaded.contains(&named) => {
                if let Err(error) = codec.load_keys([named]).await {
                    tracing::warn!(
                        aggregate = A::NAME, stream = %id, version, subject = %named, %error,
                        "cannot read a key of the snapshot; replaying from the events"
                    );
                    return Found::Unusable;
                }
                loaded.push(named);
            }
            Err(Pending::NeedsKeys(named)) => {
                break Err(crate::error::DecodeError::Payload(CodecError::new(
                    "snapshot",
                    format!("the key of subject {named} is not in the key store"),
                )));
            }
            Err(Pending::Failed(error)) => break Err(error),
            Ok(opened) => break Ok(opened),
        }
    };
    decode::<A>(id, version, opened)
}

/// Judges a snapshot the store found for `id` (at or below `at_or_below`) without waiting for
/// anything: `None` if opening it needs a key that isn't in memory yet (then [`find`] loads
/// it). This is how a load that reads the snapshot and the events in one request
/// ([`EventStore::replay_from_snapshot`]) decides where to start.
pub(crate) fn judge_now<A: Aggregate>(
    codec: &PayloadCodec,
    id: Uuid,
    at_or_below: Option<u64>,
    snapshot: &Snapshot,
) -> Option<Found<A>> {
    if A::SNAPSHOTS.is_none() {
        return Some(Found::Nothing);
    }
    let Some((version, fingerprint)) = check::<A>(id, at_or_below, snapshot) else {
        return Some(Found::Unusable);
    };
    let opened = match codec.open_snapshot(id, version, A::NAME, fingerprint, &snapshot.state) {
        Err(Pending::NeedsKeys(_)) => return None,
        Err(Pending::Failed(error)) => Err(error),
        Ok(opened) => Ok(opened),
    };
    Some(decode::<A>(id, version, opened))
}

/// The version and fingerprint of a snapshot `A` may start from, or `None` (with a log line
/// saying why) if it is outside the versions asked for, disowned or of another shape.
fn check<A: Aggregate>(
    id: Uuid,
    at_or_below: Option<u64>,
    snapshot: &Snapshot,
) -> Option<(u64, u64)> {
    let settings = A::SNAPSHOTS?;
    let version = snapshot.version;
    if at_or_below.is_some_and(|limit| version > limit) || version == 0 {
        tracing::warn!(
            aggregate = A::NAME, stream = %id, version, ?at_or_below,
            "the store returned a snapshot outside the versions asked for; ignoring it"
        );
        return None;
    }
    if snapshot.fingerprint == DISOWNED && snapshot.state.is_empty() {
        tracing::debug!(
            aggregate = A::NAME, stream = %id, version,
            "the newest snapshot was disowned (it was ahead of the stream); replaying from the events"
        );
        return None;
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
        return None;
    }
    Some((version, settings.fingerprint))
}

/// Decodes an opened snapshot's state.
fn decode<A: Aggregate>(
    id: Uuid,
    version: u64,
    opened: Result<Option<(Format, Vec<u8>)>, crate::error::DecodeError>,
) -> Found<A> {
    let decoded = match opened {
        // Its subject was forgotten: the state held their data, replay gives what is left.
        Ok(None) => return Found::Unusable,
        Ok(Some((Format::Json, body))) => A::decode_snapshot(&Json, &body),
        Ok(Some((Format::MessagePack, body))) => A::decode_snapshot(&MessagePack, &body),
        Err(error) => Some(Err(CodecError::new("snapshot", error))),
    };
    match decoded {
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

/// The subjects other than the stream's own whose data `A`'s state at `version` may hold (its
/// `personal(subject = field)` events name them; their envelopes say so in the clear), with
/// their keys loaded: a snapshot is sealed once more for each, so forgetting any of them makes
/// it unreadable. Empty unless `A` has such events and payloads are encrypted. Reads the
/// stream's records up to `version` (only when a snapshot is written).
pub(crate) async fn other_subjects<A: Aggregate, S: EventStore + ?Sized>(
    store: &S,
    codec: &PayloadCodec,
    id: Uuid,
    version: u64,
) -> crate::Result<Vec<Uuid>> {
    if !<A::Event as EventEnum>::OTHER_SUBJECTS || codec.key_store().is_none() {
        return Ok(Vec::new());
    }
    let mut others: Vec<Uuid> = Vec::new();
    store
        .visit_stream(id, StreamRange::all().to(version), &mut |stored| {
            if let Some(subject) = PayloadCodec::subject_of(stored.payload)
                && subject != id
                && subject != APPLICATION_SUBJECT
                && !others.contains(&subject)
            {
                others.push(subject);
            }
            Ok(ControlFlow::Continue(()))
        })
        .await?;
    codec.load_keys_for_writing(others.iter().copied()).await?;
    Ok(others)
}

/// Loads the key a snapshot of `A` in stream `id` is encrypted with: the stream's own if the
/// aggregate has personal events (forgetting the stream's subject then loses its snapshots
/// too), else the application's.
pub(crate) async fn load_key<A: Aggregate>(
    codec: &PayloadCodec,
    id: Uuid,
) -> Result<(), crate::persistence::codec::KeyError> {
    let subject = if <A::Event as EventEnum>::PERSONAL {
        id
    } else {
        APPLICATION_SUBJECT
    };
    codec.load_keys_for_writing([subject]).await
}

/// The snapshot of `state` at `version` (its keys loaded by [`load_key`] and
/// [`other_subjects`]), or `None` if the aggregate keeps no snapshots.
pub(crate) fn encode<A: Aggregate>(
    codec: &PayloadCodec,
    id: Uuid,
    version: u64,
    state: &A,
    others: &[Uuid],
) -> Option<crate::Result<Snapshot>> {
    let settings = A::SNAPSHOTS?;
    let encoded = match codec.written_format() {
        Format::Json => state.encode_snapshot(&Json)?,
        Format::MessagePack => state.encode_snapshot(&MessagePack)?,
    };
    // The stream's own key if the aggregate has personal events, else the application's.
    let subject = if <A::Event as EventEnum>::PERSONAL {
        id
    } else {
        APPLICATION_SUBJECT
    };
    let record = RecordRef {
        kind: RecordKind::Snapshot,
        stream_id: id,
        version,
        name: A::NAME,
        schema: settings.fingerprint,
    };
    let encoded = encoded.and_then(|body| codec.seal_snapshot(&record, subject, others, body));
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
pub(crate) async fn write_best_effort<A: Aggregate, S: EventStore + ?Sized>(
    store: &S,
    codec: &PayloadCodec,
    id: Uuid,
    version: u64,
    state: &A,
) {
    let others = match other_subjects::<A, S>(store, codec, id, version).await {
        Ok(others) => others,
        Err(error) => {
            tracing::warn!(
                aggregate = A::NAME, stream = %id, version, %error,
                "cannot find whose data the snapshot holds; the events are saved, loads replay them instead"
            );
            return;
        }
    };
    if let Err(error) = load_key::<A>(codec, id).await {
        tracing::warn!(
            aggregate = A::NAME, stream = %id, version, %error,
            "cannot get the snapshot's key; the events are saved, loads replay them instead"
        );
        return;
    }
    let result = match encode(codec, id, version, state, &others) {
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
