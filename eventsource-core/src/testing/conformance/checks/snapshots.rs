//! Snapshots saved and loaded byte for byte.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use uuid::Uuid;

use super::super::CheckResult;
use super::super::support::{
    Context, Outcome, append, bytes_difference, ensure, ensure_eq, events, fail, same_time,
};
use super::all_bytes;
use super::named;
use crate::persistence::record::Snapshot;
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
