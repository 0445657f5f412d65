//! Appends: read back, empty batches, conflicts, atomic and duplicate-stream batches.

use std::sync::Arc;
use std::time::SystemTime;

use uuid::Uuid;

use super::super::CheckResult;
use super::super::support::{
    CATEGORY, Context, Expected, append, batch, check_positions, check_recorded_at, compare,
    ensure, ensure_eq, ensure_nothing_written, events, fail, metadata, read, read_whole_log,
    same_time,
};
use super::all_bytes;
use super::named;
use crate::error::Error;
use crate::persistence::position::Position;
use crate::persistence::record::{AppendBatch, NewEvent, StreamRange};
use crate::persistence::store::EventStore;

/// Appended events read back byte for byte (stream, version, name, schema version, payload,
/// metadata), from the stream and from the log, with plausible positions and recorded times.
pub async fn append_and_read_back<S: EventStore + ?Sized + 'static>(store: Arc<S>) -> CheckResult {
    named("append_and_read_back", async move {
        let stream = Uuid::now_v7();
        let appended = vec![
            NewEvent {
                id: Uuid::now_v7(),
                name: "Opened".into(),
                schema_version: 1,
                payload: br#"{"owner":"Ada"}"#.to_vec(),
                metadata: metadata(&[("correlation_id", "c-1"), ("user", "ada")]),
            },
            NewEvent {
                id: Uuid::now_v7(),
                name: "Deposited".into(),
                schema_version: 3,
                payload: all_bytes(1000),
                metadata: metadata(&[("", "empty key"), ("quote\"s", "new\nline\ttab\\")]),
            },
            NewEvent {
                id: Uuid::now_v7(),
                name: "Empty".into(),
                schema_version: u32::MAX,
                payload: Vec::new(),
                metadata: metadata(&[]),
            },
        ];
        let before = SystemTime::now();
        let returned = append(&*store, stream, 0, appended.clone()).await?;
        let after = SystemTime::now();
        let expected = Expected::appended(stream, 0, &appended);

        let from_stream = read(&*store, stream, StreamRange::all()).await?;
        compare(&from_stream, &expected, "reading the stream back")?;
        let from_log = read_whole_log(&*store, 100).await?;
        compare(&from_log, &expected, "reading the log back")?;
        check_positions(&from_stream, Position::START, "reading the stream back")?;
        for event in from_stream.iter().chain(&from_log) {
            ensure_eq!(
                event.category,
                CATEGORY,
                "version {}: the stream's category",
                event.version
            );
        }

        for (s, l) in from_stream.iter().zip(&from_log) {
            ensure_eq!(
                s.position,
                l.position,
                "version {}: the position read from the stream and from the log",
                s.version
            );
            ensure!(
                same_time(s.recorded_at, l.recorded_at),
                "version {}: recorded_at read from the stream ({:?}) and from the log ({:?}) differ",
                s.version,
                s.recorded_at,
                l.recorded_at
            );
            check_recorded_at(s.recorded_at, before, after, &format!("version {}", s.version))?;
        }
        let last = from_log.last().map_or(Position::START, |e| e.position);
        ensure_eq!(
            returned,
            last,
            "append must return the position of the last event it wrote"
        );
        ensure_eq!(
            store.last_position().await.context("reading last_position")?,
            last,
            "last_position after one append"
        );

        // A second append continues the versions.
        let more = events("Deposited", "second", 2);
        append(&*store, stream, 3, more.clone()).await?;
        let mut expected = expected;
        expected.extend(Expected::appended(stream, 3, &more));
        compare(
            &read(&*store, stream, StreamRange::all()).await?,
            &expected,
            "reading the stream after a second append",
        )?;
        Ok(())
    })
    .await
}

/// A batch without events writes nothing and returns the last position; a stream listed with no
/// events still has its expected version checked.
pub async fn empty_append<S: EventStore + ?Sized + 'static>(store: Arc<S>) -> CheckResult {
    named("empty_append", async move {
        let returned = store
            .append(AppendBatch::default())
            .await
            .context("appending an empty batch to an empty store")?;
        ensure_eq!(returned, Position::START, "an empty batch on an empty store returns position");

        let stream = Uuid::now_v7();
        let returned = append(&*store, stream, 0, Vec::new()).await?;
        ensure_eq!(returned, Position::START, "appending no events to a new stream returns position");
        ensure_eq!(
            store.stream_version(stream).await.context("reading stream_version")?,
            0,
            "stream_version after appending no events"
        );
        ensure!(
            read(&*store, stream, StreamRange::all()).await?.is_empty(),
            "appending no events created events"
        );

        let written = append(&*store, stream, 0, events("Opened", "a", 2)).await?;
        let returned = store
            .append(AppendBatch::default())
            .await
            .context("appending an empty batch")?;
        ensure_eq!(
            returned,
            written,
            "an empty batch returns the current last position"
        );
        let returned = append(&*store, stream, 2, Vec::new()).await?;
        ensure_eq!(
            returned,
            written,
            "appending no events at the right version returns the current last position"
        );
        match store
            .append(AppendBatch::single(stream, 1, Vec::new()))
            .await
        {
            Err(Error::Conflict {
                stream: s,
                expected: 1,
                actual: 2,
            }) if s == stream => {}
            other => fail!(
                "appending no events at expected version 1 to a stream at version 2: expected Conflict {{ stream: {stream}, expected: 1, actual: 2 }}, got {other:?}"
            ),
        }
        let log = read_whole_log(&*store, 10).await?;
        ensure_eq!(log.len(), 2, "events in the log after empty appends");
        ensure_eq!(
            store.stream_version(stream).await.context("reading stream_version")?,
            2,
            "stream_version after empty appends"
        );
        Ok(())
    })
    .await
}

/// An unknown stream reads empty in every direction, has version 0 and no snapshot; an unknown
/// tracker is at position 0.
pub async fn unknown_stream_reads_empty<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("unknown_stream_reads_empty", async move {
        let unknown = Uuid::now_v7();
        for range in [
            StreamRange::all(),
            StreamRange::all().backwards(),
            StreamRange::all().from(5).to(10),
        ] {
            let events = read(&*store, unknown, range).await?;
            ensure!(
                events.is_empty(),
                "reading unknown stream {unknown} with {range:?} returned {} events",
                events.len()
            );
        }
        ensure_eq!(
            store
                .stream_version(unknown)
                .await
                .context("stream_version")?,
            0,
            "stream_version of an unknown stream"
        );
        ensure!(
            store
                .load_snapshot(unknown, None)
                .await
                .context("load_snapshot")?
                .is_none(),
            "load_snapshot of an unknown stream returned a snapshot"
        );
        ensure_eq!(
            store
                .tracking_position("nobody")
                .await
                .context("tracking_position")?,
            Position::START,
            "tracking_position of an unknown tracker"
        );
        // Another stream's events don't make this one known.
        append(&*store, Uuid::now_v7(), 0, events("Opened", "other", 1)).await?;
        ensure!(
            read(&*store, unknown, StreamRange::all()).await?.is_empty(),
            "an unknown stream read events after another stream was written"
        );
        ensure_eq!(
            store
                .stream_version(unknown)
                .await
                .context("stream_version")?,
            0,
            "stream_version of an unknown stream after another stream was written"
        );
        Ok(())
    })
    .await
}

/// Appending at a version the stream is not at (behind or ahead) is a Conflict naming the stream,
/// the expected and the actual version, and writes nothing.
pub async fn duplicate_version_is_a_conflict<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("duplicate_version_is_a_conflict", async move {
        let stream = Uuid::now_v7();
        let first = events("Opened", "first", 2);
        let last = append(&*store, stream, 0, first.clone()).await?;
        for expected in [0, 1, 3, 10] {
            let result = store
                .append(AppendBatch::single(
                    stream,
                    expected,
                    events("Deposited", "loser", 2),
                ))
                .await;
            match result {
                Err(Error::Conflict {
                    stream: s,
                    expected: e,
                    actual: 2,
                }) if s == stream && e == expected => {}
                other => fail!(
                    "appending at expected version {expected} to stream {stream} at version 2: expected Conflict {{ stream: {stream}, expected: {expected}, actual: 2 }}, got {other:?}"
                ),
            }
        }
        compare(
            &read(&*store, stream, StreamRange::all()).await?,
            &Expected::appended(stream, 0, &first),
            "reading the stream after the conflicts",
        )?;
        ensure_nothing_written(&*store, last, 2, "the conflicts").await?;
        Ok(())
    })
    .await
}

/// A batch where one stream conflicts writes nothing, not even the events of the streams that
/// were at their expected version.
pub async fn conflict_in_batch_writes_nothing<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("conflict_in_batch_writes_nothing", async move {
        let existing = Uuid::now_v7();
        let last = append(&*store, existing, 0, events("Opened", "existing", 3)).await?;
        let fresh = Uuid::now_v7();
        let other = Uuid::now_v7();
        // The conflicting stream in the middle, so a store writing stream by stream would
        // already have written the first one.
        let result = store
            .append(batch(vec![
                (fresh, 0, events("Opened", "fresh", 2)),
                (existing, 1, events("Deposited", "loser", 1)),
                (other, 0, events("Opened", "other", 1)),
            ]))
            .await;
        match result {
            Err(Error::Conflict {
                stream,
                expected: 1,
                actual: 3,
            }) if stream == existing => {}
            other => fail!(
                "a batch whose second stream {existing} is at version 3, not 1: expected Conflict {{ stream: {existing}, expected: 1, actual: 3 }}, got {other:?}"
            ),
        }
        for stream in [fresh, other] {
            ensure_eq!(
                store.stream_version(stream).await.context("stream_version")?,
                0,
                "stream {stream} of the failed batch must not exist; stream_version"
            );
            ensure!(
                read(&*store, stream, StreamRange::all()).await?.is_empty(),
                "stream {stream} of the failed batch has events"
            );
        }
        ensure_eq!(
            store.stream_version(existing).await.context("stream_version")?,
            3,
            "stream_version of the conflicting stream"
        );
        ensure_nothing_written(&*store, last, 3, "the failed batch").await?;
        Ok(())
    })
    .await
}

/// A batch that names the same stream twice (even with consistent versions) is
/// DuplicateStreamInBatch and writes nothing.
pub async fn duplicate_stream_in_batch_writes_nothing<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("duplicate_stream_in_batch_writes_nothing", async move {
        let stream = Uuid::now_v7();
        let bystander = Uuid::now_v7();
        for (first, second) in [(0, 0), (0, 1)] {
            let result = store
                .append(batch(vec![
                    (bystander, 0, events("Opened", "bystander", 1)),
                    (stream, first, events("Opened", "twice-a", 1)),
                    (stream, second, events("Deposited", "twice-b", 1)),
                ]))
                .await;
            match result {
                Err(Error::DuplicateStreamInBatch { stream: s }) if s == stream => {}
                other => fail!(
                    "a batch listing stream {stream} twice (expected versions {first} and {second}): expected DuplicateStreamInBatch {{ stream: {stream} }}, got {other:?}"
                ),
            }
        }
        ensure!(
            read_whole_log(&*store, 100).await?.is_empty(),
            "a refused batch wrote events to the log"
        );
        ensure_eq!(
            store.stream_version(bystander).await.context("stream_version")?,
            0,
            "stream_version of the other stream in the refused batch"
        );
        ensure_eq!(
            store.last_position().await.context("last_position")?,
            Position::START,
            "last_position after refused batches"
        );
        Ok(())
    })
    .await
}

/// One batch appends to several streams; every stream gets its versions, the log holds the
/// events in batch order, and append returns the last position.
pub async fn multi_stream_append_is_atomic<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("multi_stream_append_is_atomic", async move {
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        append(&*store, b, 0, events("Opened", "b", 2)).await?;
        let parts = vec![
            (a, 0, events("Opened", "a", 2)),
            (b, 2, events("Deposited", "b", 3)),
            (c, 0, events("Opened", "c", 1)),
        ];
        let mut expected = Vec::new();
        for (stream, version, events) in &parts {
            expected.extend(Expected::appended(*stream, *version, events));
        }
        let returned = store
            .append(batch(parts))
            .await
            .context("appending one batch to three streams")?;
        let log = read_whole_log(&*store, 100).await?;
        let batch_events = log.get(2..).unwrap_or_default();
        compare(batch_events, &expected, "the batch's events in the log")?;
        ensure_eq!(
            returned,
            log.last().map_or(Position::START, |e| e.position),
            "append must return the position of the batch's last event"
        );
        for (stream, version) in [(a, 2), (b, 5), (c, 1)] {
            ensure_eq!(
                store
                    .stream_version(stream)
                    .await
                    .context("stream_version")?,
                version,
                "stream_version of {stream} after the batch"
            );
        }
        let from_b = read(&*store, b, StreamRange::all().from(3)).await?;
        compare(
            &from_b,
            &expected[2..5],
            "reading the batch's events of stream b",
        )?;
        Ok(())
    })
    .await
}
