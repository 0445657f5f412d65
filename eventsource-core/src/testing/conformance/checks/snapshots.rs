//! Snapshots saved and loaded byte for byte.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use uuid::Uuid;

use super::super::CheckResult;
use super::super::support::{
    Context, Outcome, Replayed, abbreviate, append, bytes_difference, ensure, ensure_eq, events,
    fail, same_time, visit,
};
use super::all_bytes;
use super::named;
use crate::persistence::record::{Replay, Snapshot, StreamRange};
use crate::persistence::store::EventStore;

pub(super) fn snapshot(stream: Uuid, version: u64, state: Vec<u8>) -> Snapshot {
    Snapshot {
        stream_id: stream,
        version,
        aggregate: "Account".into(),
        fingerprint: u64::MAX - version,
        state,
        // Not a round number of anything, to catch precision loss beyond milliseconds.
        recorded_at: SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000 + version, 123_456_789),
    }
}

pub(super) fn compare_snapshot(
    actual: Option<Snapshot>,
    expected: &Snapshot,
    doing: &str,
) -> Outcome {
    let Some(actual) = actual else {
        fail!(
            "{doing}: expected the snapshot at version {}, got none",
            expected.version
        );
    };
    ensure_eq!(actual.stream_id, expected.stream_id, "{doing}: stream id");
    ensure_eq!(actual.version, expected.version, "{doing}: version");
    ensure_eq!(
        actual.aggregate,
        expected.aggregate,
        "{doing}: aggregate name"
    );
    ensure_eq!(
        actual.fingerprint,
        expected.fingerprint,
        "{doing}: fingerprint (all 64 bits must round-trip)"
    );
    if actual.state != expected.state {
        fail!(
            "{doing}: state differs: {}",
            bytes_difference(&expected.state, &actual.state)
        );
    }
    ensure!(
        same_time(actual.recorded_at, expected.recorded_at),
        "{doing}: recorded_at: expected {:?}, got {:?}",
        expected.recorded_at,
        actual.recorded_at
    );
    Ok(())
}

/// Snapshots save and load byte for byte: the latest, the latest at or below a version, none
/// below the first or for an unknown stream; saving at an existing version replaces it.
pub async fn snapshots_save_and_load<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("snapshots_save_and_load", async move {
        let stream = Uuid::now_v7();
        let other = Uuid::now_v7();
        append(&*store, stream, 0, events("Counted", "snap", 12)).await?;
        let s5 = snapshot(stream, 5, all_bytes(300));
        let s10 = snapshot(stream, 10, b"ten".to_vec());
        let s7 = snapshot(stream, 7, Vec::new());
        for s in [&s5, &s10, &s7] {
            store
                .save_snapshot(s.clone())
                .await
                .context(format_args!("saving the snapshot at version {}", s.version))?;
        }
        store
            .save_snapshot(snapshot(other, 50, b"other".to_vec()))
            .await
            .context("saving another stream's snapshot")?;

        let load = |at: Option<u64>| {
            let store = Arc::clone(&store);
            async move {
                store
                    .load_snapshot(stream, at)
                    .await
                    .context(format_args!("loading the snapshot at or below {at:?}"))
            }
        };
        compare_snapshot(load(None).await?, &s10, "loading the latest snapshot")?;
        compare_snapshot(load(Some(12)).await?, &s10, "loading at or below 12")?;
        compare_snapshot(load(Some(10)).await?, &s10, "loading at or below 10")?;
        compare_snapshot(load(Some(9)).await?, &s7, "loading at or below 9")?;
        compare_snapshot(load(Some(7)).await?, &s7, "loading at or below 7")?;
        compare_snapshot(load(Some(6)).await?, &s5, "loading at or below 6")?;
        let none = load(Some(4)).await?;
        ensure!(
            none.is_none(),
            "loading at or below 4 (the first snapshot is at 5) returned the one at {:?}",
            none.map(|s| s.version)
        );
        let unknown = store
            .load_snapshot(Uuid::now_v7(), None)
            .await
            .context("loading an unknown stream's snapshot")?;
        ensure!(
            unknown.is_none(),
            "an unknown stream has a snapshot at version {:?}",
            unknown.map(|s| s.version)
        );

        let replaced = Snapshot {
            state: b"ten, again".to_vec(),
            fingerprint: 42,
            ..s10.clone()
        };
        store
            .save_snapshot(replaced.clone())
            .await
            .context("saving a snapshot at an existing version")?;
        compare_snapshot(
            load(None).await?,
            &replaced,
            "loading after replacing the snapshot at version 10",
        )?;
        compare_snapshot(
            store
                .load_snapshot(other, None)
                .await
                .context("loading the other stream's snapshot")?,
            &snapshot(other, 50, b"other".to_vec()),
            "loading another stream's snapshot",
        )?;
        Ok(())
    })
    .await
}

/// Checks that a replay from a snapshot lent the events a visit of the same range lent.
fn compare_replayed_lists(actual: &[Replayed], expected: &[Replayed], doing: &str) -> Outcome {
    if let Some(i) = (0..actual.len().min(expected.len())).find(|&i| actual[i] != expected[i]) {
        fail!(
            "{doing}: event #{i} differs from the visit's: expected {}, got {}",
            abbreviate(&expected[i]),
            abbreviate(&actual[i])
        );
    }
    ensure_eq!(
        actual.iter().map(|e| e.version).collect::<Vec<_>>(),
        expected.iter().map(|e| e.version).collect::<Vec<_>>(),
        "{doing}: the versions lent"
    );
    Ok(())
}

/// What a [`EventStore::replay_from_snapshot`] call lent: the snapshot and the events after it.
struct Lent {
    snapshot: Option<Snapshot>,
    events: Vec<Replayed>,
}

/// Calls [`EventStore::replay_from_snapshot`], breaking at the snapshot if `stop_at_snapshot`
/// and after `stop_after` events; checks the snapshot is lent first and once.
async fn replay<S: EventStore + ?Sized>(
    store: &S,
    stream: Uuid,
    upto: Option<u64>,
    stop_at_snapshot: bool,
    stop_after: usize,
) -> Outcome<Lent> {
    let mut snapshots = Vec::new();
    let mut events = Vec::new();
    let mut out_of_order = None;
    store
        .replay_from_snapshot(stream, upto, &mut |replay| {
            match replay {
                Replay::Snapshot(snapshot) => {
                    snapshots.push(snapshot);
                    if stop_at_snapshot {
                        return Ok(std::ops::ControlFlow::Break(()));
                    }
                }
                Replay::Event(event) => {
                    if snapshots.is_empty() && out_of_order.is_none() {
                        out_of_order = Some(event.version);
                    }
                    events.push(Replayed::from(event));
                    if events.len() >= stop_after {
                        return Ok(std::ops::ControlFlow::Break(()));
                    }
                }
            }
            Ok(std::ops::ControlFlow::Continue(()))
        })
        .await
        .context(format_args!(
            "replaying stream {stream} from its snapshot up to {upto:?}"
        ))?;
    if let Some(version) = out_of_order {
        fail!(
            "replaying up to {upto:?}: the event at version {version} was lent before the snapshot"
        );
    }
    ensure_eq!(
        snapshots.len(),
        1,
        "replaying up to {upto:?}: how many times the snapshot (or its absence) was lent"
    );
    if stop_at_snapshot {
        ensure!(
            events.is_empty(),
            "replaying up to {upto:?}: the visitor stopped at the snapshot, yet {} events were lent",
            events.len()
        );
    }
    Ok(Lent {
        snapshot: snapshots.pop().flatten(),
        events,
    })
}

/// What [`replay`] must lend, from [`EventStore::load_snapshot`] and
/// [`EventStore::visit_stream`].
async fn expected<S: EventStore + ?Sized>(
    store: &S,
    stream: Uuid,
    upto: Option<u64>,
    stop_after: usize,
) -> Outcome<Lent> {
    let snapshot = store
        .load_snapshot(stream, upto)
        .await
        .context(format_args!("loading the snapshot at or below {upto:?}"))?;
    let first = snapshot.as_ref().map_or(1, |s| s.version.max(1));
    let mut range = StreamRange::all().from(first);
    if let Some(upto) = upto {
        range = range.to(upto);
    }
    let events = if upto.is_some_and(|upto| first > upto) {
        Vec::new()
    } else {
        visit(store, stream, range, stop_after).await?
    };
    Ok(Lent { snapshot, events })
}

/// `replay_from_snapshot` lends what `load_snapshot` then `visit_stream` return: the newest
/// snapshot (at or below a version), then the events from its version (from 1 without one);
/// none past the stream's end for a snapshot beyond it; a visitor can stop at the snapshot or
/// after any event.
pub async fn replay_from_snapshot_agrees<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("replay_from_snapshot_agrees", async move {
        let stream = Uuid::now_v7();
        let bare = Uuid::now_v7();
        let unknown = Uuid::now_v7();
        append(&*store, stream, 0, events("Counted", "load", 12)).await?;
        append(&*store, bare, 0, events("Counted", "bare", 6)).await?;
        let check = |id: Uuid, upto: Option<u64>, stop_at_snapshot: bool, stop_after: usize| {
            let store = Arc::clone(&store);
            async move {
                let doing = format!(
                    "replaying stream {id} up to {upto:?} (stopping {})",
                    if stop_at_snapshot {
                        "at the snapshot".to_owned()
                    } else {
                        format!("after {stop_after} events")
                    }
                );
                let lent = replay(&*store, id, upto, stop_at_snapshot, stop_after).await?;
                let wanted = expected(&*store, id, upto, stop_after).await?;
                match (&lent.snapshot, &wanted.snapshot) {
                    (None, None) => {}
                    (actual, Some(wanted)) => {
                        compare_snapshot(actual.clone(), wanted, &doing)?;
                    }
                    (Some(actual), None) => fail!(
                        "{doing}: lent the snapshot at version {}, load_snapshot finds none",
                        actual.version
                    ),
                }
                if !stop_at_snapshot {
                    compare_replayed_lists(&lent.events, &wanted.events, &doing)?;
                }
                Ok(lent)
            }
        };
        // No snapshot: the whole stream, or up to a version; an unknown stream lends nothing.
        let lent = check(bare, None, false, usize::MAX).await?;
        ensure_eq!(lent.events.len(), 6, "replaying a stream without snapshots");
        check(bare, Some(4), false, usize::MAX).await?;
        let lent = check(unknown, None, false, usize::MAX).await?;
        ensure!(
            lent.snapshot.is_none() && lent.events.is_empty(),
            "an unknown stream lent a snapshot or events"
        );

        for version in [5, 10] {
            let s = snapshot(stream, version, all_bytes(40 + version as usize));
            store
                .save_snapshot(s)
                .await
                .context(format_args!("saving the snapshot at version {version}"))?;
        }
        // The newest snapshot, then the events from its version.
        let lent = check(stream, None, false, usize::MAX).await?;
        ensure_eq!(
            lent.events.first().map(|e| e.version),
            Some(10),
            "replaying from the snapshot at 10: the first event lent"
        );
        ensure_eq!(lent.events.len(), 3, "replaying from the snapshot at 10");
        for upto in [12, 10, 9, 5, 4, 1] {
            check(stream, Some(upto), false, usize::MAX).await?;
        }
        // Visitors that stop.
        check(stream, None, true, usize::MAX).await?;
        check(bare, None, true, usize::MAX).await?;
        let lent = check(stream, Some(9), false, 2).await?;
        ensure_eq!(lent.events.len(), 2, "a visitor stopping after 2 events");

        // A snapshot beyond the stream's end (a stream restored from an older backup): the
        // snapshot, and no event.
        store
            .save_snapshot(snapshot(stream, 20, b"ahead".to_vec()))
            .await
            .context("saving a snapshot beyond the stream's end")?;
        let lent = check(stream, None, false, usize::MAX).await?;
        ensure!(
            lent.events.is_empty(),
            "replaying from a snapshot beyond the stream's end lent versions {:?}",
            lent.events.iter().map(|e| e.version).collect::<Vec<_>>()
        );
        check(stream, Some(15), false, usize::MAX).await?;
        Ok(())
    })
    .await
}
