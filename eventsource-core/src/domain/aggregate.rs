//! Aggregates: state rebuilt by applying events.

use std::num::NonZeroU64;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::event::EventEnum;
use crate::error::CodecError;
use crate::persistence::codec::Codec;

/// An aggregate: a consistency boundary whose state is the fold of its events.
///
/// Implement it with `#[derive(Aggregate)]`, listing the events, and write one [`Apply`] impl
/// per event. Decisions are ordinary methods that read the state and return events.
///
/// With `#[aggregate(snapshot)]` or `#[aggregate(snapshot_every = N)]` the derive also fills in
/// [`SNAPSHOTS`](Aggregate::SNAPSHOTS), [`encode_snapshot`](Aggregate::encode_snapshot) and
/// [`decode_snapshot`](Aggregate::decode_snapshot) and implements [`Snapshotted`]; the state must
/// then be `Serialize + Deserialize`. Without those keys the defaults say "no snapshots", and the
/// repository replays (or uses its cache) as before.
pub trait Aggregate: Default + Send + Sync + 'static {
    /// The aggregate's name, used in errors, snapshots and the registry.
    const NAME: &'static str;

    /// Whether and how the aggregate keeps snapshots: `None` (the default) for no snapshots.
    const SNAPSHOTS: Option<SnapshotSettings> = None;

    /// The enum of this aggregate's events.
    type Event: EventEnum;

    /// Applies one event of any kind to the state, dispatching to the `Apply<E>` impl.
    fn apply_event(&mut self, event: &Self::Event);

    /// Encodes the state for a snapshot, or `None` if the aggregate keeps no snapshots.
    fn encode_snapshot<C: Codec>(&self, codec: &C) -> Option<Result<Vec<u8>, CodecError>> {
        let _ = codec;
        None
    }

    /// Decodes a snapshot's state, or `None` if the aggregate keeps no snapshots.
    fn decode_snapshot<C: Codec>(codec: &C, state: &[u8]) -> Option<Result<Self, CodecError>> {
        let _ = (codec, state);
        None
    }
}

/// How an aggregate keeps snapshots, as `#[derive(Aggregate)]` sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotSettings {
    /// A fingerprint of the state's shape: an FNV-1a hash of the struct's fields, their types and
    /// serde attributes, the struct's serde attributes and the listed events. A stored snapshot
    /// with another fingerprint was taken of another shape: it is ignored and rebuilt.
    pub fingerprint: u64,
    /// The default policy from `snapshot_every = N`: snapshot when a save crosses a multiple of
    /// `N` events. `None` (plain `snapshot`): only on request, or as the repository sets it.
    pub every: Option<NonZeroU64>,
}

/// An aggregate whose state can be snapshotted: `#[derive(Aggregate)]` implements it when the
/// attribute has `snapshot` or `snapshot_every = N`.
///
/// [`Repository::snapshot_every`](crate::Repository::snapshot_every) and
/// [`Repository::take_snapshot`](crate::Repository::take_snapshot) require it, so asking for
/// snapshots of an aggregate that can't keep them is a compile error.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not keep snapshots",
    label = "`{Self}` is not `Snapshotted`",
    note = "add `snapshot` (or `snapshot_every = N`) to its `#[aggregate(...)]` attribute; the state must then be `Serialize + Deserialize`"
)]
pub trait Snapshotted: Aggregate + Serialize + DeserializeOwned {}

/// Encodes a snapshot's state (the derive's `encode_snapshot`). Bounded by [`Snapshotted`] rather
/// than serde so that a state without serde impls is reported once, at the derive's
/// `impl Snapshotted`, not again in every generated method.
#[doc(hidden)]
pub fn encode_snapshot_state<C: Codec, A: Snapshotted>(
    codec: &C,
    state: &A,
) -> Result<Vec<u8>, CodecError> {
    codec.encode(state)
}

/// Decodes a snapshot's state (the derive's `decode_snapshot`).
#[doc(hidden)]
pub fn decode_snapshot_state<C: Codec, A: Snapshotted>(
    codec: &C,
    state: &[u8],
) -> Result<A, CodecError> {
    codec.decode(state)
}

/// Applying one event type to an aggregate's state.
///
/// Applying must not fail: the event already happened. Validation belongs in the command that
/// decides to record the event.
#[diagnostic::on_unimplemented(
    message = "`{Self}` lists the event `{E}` but does not implement `Apply<{E}>`",
    label = "`{Self}` needs an `Apply<{E}>` impl to replay this event",
    note = "every event in `#[aggregate(events(...))]` must be applied to the state; add:\n    impl Apply<{E}> for {Self} {{\n        fn apply(&mut self, event: &{E}) {{ /* update the state */ }}\n    }}"
)]
pub trait Apply<E> {
    /// Updates the state with the event.
    fn apply(&mut self, event: &E);
}
