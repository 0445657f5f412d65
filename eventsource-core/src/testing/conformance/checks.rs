//! The checks. Each one is a public function taking a fresh, empty store.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Barrier;
use uuid::Uuid;

use super::support::{
    Context, Expected, Outcome, append, batch, bytes_difference, check_page, check_recorded_at,
    compare, ensure, ensure_eq, ensure_nothing_written, event, events, fail, metadata, read,
    read_whole_log, same_time, visit,
};
use super::{CheckResult, Failure};
use crate::error::Error;
use crate::persistence::record::{
    AppendBatch, LogQuery, NewEvent, Snapshot, StoredEvent, StreamRange, Tracking,
};
use crate::persistence::store::EventStore;

/// Names the failure of a check body after the check.
async fn named(name: &'static str, body: impl Future<Output = Outcome>) -> CheckResult {
    body.await.map_err(|message| Failure::new(name, message))
}

/// A batch that only records a tracking position.
fn tracking_only(tracker: impl Into<String>, position: u64) -> AppendBatch {
    AppendBatch {
        streams: Vec::new(),
        tracking: Some(Tracking {
            tracker: tracker.into(),
            position,
        }),
    }
}

/// Bytes 0..=255 repeated, so every byte value (including NUL and invalid UTF-8) is stored.
fn all_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 256) as u8).collect()
}

/// Appended events read back byte for byte (stream, version, name, schema version, payload,
/// metadata), from the stream and from the log, with plausible positions and recorded times.
pub async fn append_and_read_back<S: EventStore + ?Sized + 'static>(store: Arc<S>) -> CheckResult {
    named("append_and_read_back", async move {
        let stream = Uuid::now_v7();
        let appended = vec![
            NewEvent {
                name: "Opened".into(),
                schema_version: 1,
                payload: br#"{"owner":"Ada"}"#.to_vec(),
                metadata: metadata(&[("correlation_id", "c-1"), ("user", "ada")]),
            },
            NewEvent {
                name: "Deposited".into(),
                schema_version: 3,
                payload: all_bytes(1000),
                metadata: metadata(&[("", "empty key"), ("quote\"s", "new\nline\ttab\\")]),
            },
            NewEvent {
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
        check_page(&from_stream, 0, usize::MAX, "reading the stream back")?;

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
        let last = from_log.last().map_or(0, |e| e.position);
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
        ensure_eq!(returned, 0, "an empty batch on an empty store returns position");

        let stream = Uuid::now_v7();
        let returned = append(&*store, stream, 0, Vec::new()).await?;
        ensure_eq!(returned, 0, "appending no events to a new stream returns position");
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
            0,
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
            0,
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
            log.last().map_or(0, |e| e.position),
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

/// `from`, `to`, `backwards` and `limit` select the right versions in the right order.
pub async fn read_stream_ranges<S: EventStore + ?Sized + 'static>(store: Arc<S>) -> CheckResult {
    named("read_stream_ranges", async move {
        let stream = Uuid::now_v7();
        append(&*store, stream, 0, events("Counted", "ranges", 4)).await?;
        append(&*store, stream, 4, events("Counted", "ranges2", 6)).await?;
        let all = StreamRange::all();
        let cases: Vec<(StreamRange, Vec<u64>)> = vec![
            (all, (1..=10).collect()),
            (all.from(4), (4..=10).collect()),
            (all.to(6), (1..=6).collect()),
            (all.from(3).to(7), (3..=7).collect()),
            (all.from(5).to(5), vec![5]),
            (all.from(7).to(3), vec![]),
            (all.from(11), vec![]),
            (all.from(10), vec![10]),
            (all.to(100), (1..=10).collect()),
            (all.limit(3), vec![1, 2, 3]),
            (all.limit(0), vec![]),
            (all.limit(100), (1..=10).collect()),
            (all.from(4).limit(2), vec![4, 5]),
            (all.backwards(), (1..=10).rev().collect()),
            (all.backwards().limit(3), vec![10, 9, 8]),
            (all.backwards().to(6), (1..=6).rev().collect()),
            (all.backwards().from(8), vec![10, 9, 8]),
            (all.backwards().from(4).to(8).limit(2), vec![8, 7]),
            (all.backwards().from(11), vec![]),
            (all.backwards().to(1), vec![1]),
        ];
        for (range, versions) in cases {
            let got: Vec<u64> = read(&*store, stream, range)
                .await?
                .iter()
                .map(|e| e.version)
                .collect();
            ensure_eq!(got, versions, "versions read with {range:?}");
            let visited = visit(&*store, stream, range, usize::MAX).await?;
            let visited: Vec<u64> = visited.iter().map(|e| e.version).collect();
            ensure_eq!(visited, versions, "versions visited with {range:?}");
        }
        // A visitor that breaks stops the visit.
        let first_two = visit(&*store, stream, all.from(2), 2).await?;
        let first_two: Vec<u64> = first_two.iter().map(|e| e.version).collect();
        ensure_eq!(
            first_two,
            vec![2, 3],
            "a visit that breaks after two events"
        );
        // The events read in a range are the stored ones, not just the right version numbers.
        let middle = read(&*store, stream, all.from(3).to(6)).await?;
        let appended: Vec<Expected> =
            Expected::appended(stream, 0, &events("Counted", "ranges", 4))
                .into_iter()
                .chain(Expected::appended(
                    stream,
                    4,
                    &events("Counted", "ranges2", 6),
                ))
                .collect();
        compare(&middle, &appended[2..6], "reading versions 3 to 6")?;
        let visited = visit(&*store, stream, all.from(3).to(6), usize::MAX).await?;
        compare(&visited, &appended[2..6], "visiting versions 3 to 6")?;
        Ok(())
    })
    .await
}

/// A stream longer than a store's read chunk (3,000 events) reads whole and in order, forwards,
/// backwards and in a range that spans chunk boundaries.
pub async fn long_stream_reads_across_chunks<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("long_stream_reads_across_chunks", async move {
        const N: u64 = 3000;
        let stream = Uuid::now_v7();
        let mut expected = Vec::new();
        for part in 0..10u64 {
            let batch = events("Counted", &format!("long-{part}"), 300);
            expected.extend(Expected::appended(stream, part * 300, &batch));
            append(&*store, stream, part * 300, batch).await?;
        }
        let forwards = read(&*store, stream, StreamRange::all()).await?;
        compare(&forwards, &expected, "reading a 3,000-event stream")?;
        let mut backwards = read(&*store, stream, StreamRange::all().backwards()).await?;
        backwards.reverse();
        compare(
            &backwards,
            &expected,
            "reading a 3,000-event stream backwards (shown reversed)",
        )?;
        let middle = read(&*store, stream, StreamRange::all().from(1000).to(2100)).await?;
        compare(
            &middle,
            &expected[999..2100],
            "reading versions 1000 to 2100",
        )?;
        let tail: Vec<u64> = read(
            &*store,
            stream,
            StreamRange::all().backwards().to(2500).limit(1200),
        )
        .await?
        .iter()
        .map(|e| e.version)
        .collect();
        ensure_eq!(
            tail,
            (1301..=2500).rev().collect::<Vec<u64>>(),
            "versions read backwards from 2500, limit 1200"
        );
        ensure_eq!(
            store
                .stream_version(stream)
                .await
                .context("stream_version")?,
            N,
            "stream_version of the long stream"
        );
        Ok(())
    })
    .await
}

/// `stream_version` is 0 for a new stream, then the last appended version.
pub async fn stream_version_tracks_appends<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("stream_version_tracks_appends", async move {
        let stream = Uuid::now_v7();
        let mut version = 0;
        for n in [1, 3, 1, 5] {
            ensure_eq!(
                store
                    .stream_version(stream)
                    .await
                    .context("stream_version")?,
                version,
                "stream_version before appending {n} events"
            );
            append(&*store, stream, version, events("Counted", "v", n)).await?;
            version += n as u64;
        }
        ensure_eq!(
            store
                .stream_version(stream)
                .await
                .context("stream_version")?,
            10,
            "stream_version after appending 10 events"
        );
        Ok(())
    })
    .await
}

/// Streams have their own versions and events; a conflict on one stream leaves the other alone.
pub async fn streams_are_independent<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("streams_are_independent", async move {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut expected_a = Vec::new();
        let mut expected_b = Vec::new();
        for round in 0..3u64 {
            let ea = events("A", &format!("a{round}"), 2);
            let eb = events("B", &format!("b{round}"), 1);
            expected_a.extend(Expected::appended(a, round * 2, &ea));
            expected_b.extend(Expected::appended(b, round, &eb));
            append(&*store, a, round * 2, ea).await?;
            append(&*store, b, round, eb).await?;
        }
        let conflict = store
            .append(AppendBatch::single(a, 0, events("A", "loser", 1)))
            .await;
        ensure!(
            matches!(conflict, Err(Error::Conflict { .. })),
            "appending to stream a at a stale version: expected a Conflict, got {conflict:?}"
        );
        append(&*store, b, 3, events("B", "after-conflict", 1)).await?;
        expected_b.extend(Expected::appended(b, 3, &events("B", "after-conflict", 1)));
        compare(
            &read(&*store, a, StreamRange::all()).await?,
            &expected_a,
            "reading stream a",
        )?;
        compare(
            &read(&*store, b, StreamRange::all()).await?,
            &expected_b,
            "reading stream b",
        )?;
        ensure_eq!(
            (
                store.stream_version(a).await.context("stream_version a")?,
                store.stream_version(b).await.context("stream_version b")?
            ),
            (6, 4),
            "stream versions of a and b"
        );
        Ok(())
    })
    .await
}

/// Log positions are >= 1 and strictly increasing, every appended event is in the log once, and
/// append returns the position of the last event it wrote.
pub async fn log_positions_strictly_increase<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("log_positions_strictly_increase", async move {
        let streams: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let mut versions = [0u64; 3];
        let mut expected = Vec::new();
        let mut returned = Vec::new();
        for round in 0..6usize {
            let i = round % 3;
            let batch = events("Counted", &format!("r{round}"), round % 3 + 1);
            expected.extend(Expected::appended(streams[i], versions[i], &batch));
            let position = append(&*store, streams[i], versions[i], batch).await?;
            versions[i] += (round % 3 + 1) as u64;
            returned.push((position, expected.len()));
        }
        let log = read_whole_log(&*store, 1000).await?;
        compare(&log, &expected, "reading the whole log")?;
        ensure!(
            log.first().is_none_or(|e| e.position >= 1),
            "the first position is {:?}; positions start at 1",
            log.first().map(|e| e.position)
        );
        for (position, count) in returned {
            let event = &log[count - 1];
            ensure_eq!(
                position,
                event.position,
                "append returned a position, but the last event it wrote (stream {} version {}) is at another one",
                event.stream_id,
                event.version
            );
        }
        for stream in &streams {
            for e in read(&*store, *stream, StreamRange::all()).await? {
                ensure!(
                    log.iter().any(|l| l.position == e.position
                        && l.stream_id == e.stream_id
                        && l.version == e.version),
                    "stream {stream} version {} has position {}, which the log doesn't hold",
                    e.version,
                    e.position
                );
            }
        }
        Ok(())
    })
    .await
}

/// Paging the log with `after`/`limit` at any page size reassembles exactly the whole log.
pub async fn log_paging_reassembles_the_log<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("log_paging_reassembles_the_log", async move {
        let streams: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
        let mut versions = [0u64; 4];
        let mut expected = Vec::new();
        for round in 0..20usize {
            let i = (round * 7) % 4;
            let n = round % 5;
            let batch = events("Counted", &format!("p{round}"), n);
            expected.extend(Expected::appended(streams[i], versions[i], &batch));
            append(&*store, streams[i], versions[i], batch).await?;
            versions[i] += n as u64;
        }
        let whole = read_whole_log(&*store, 10_000).await?;
        compare(&whole, &expected, "reading the whole log in one page")?;
        for page in [1, 2, 3, 7, 10, 39, 40, 41] {
            let paged = read_whole_log(&*store, page).await?;
            let key = |e: &StoredEvent| (e.position, e.stream_id, e.version);
            ensure_eq!(
                paged.iter().map(key).collect::<Vec<_>>(),
                whole.iter().map(key).collect::<Vec<_>>(),
                "(position, stream, version) of the log read in pages of {page}"
            );
            compare(
                &paged,
                &expected,
                &format!("the log read in pages of {page}"),
            )?;
        }
        // A page is full when more events follow.
        if let Some(first) = whole.first() {
            let page = store
                .read_log(LogQuery::after(first.position, 5))
                .await
                .context("reading a page of 5")?;
            ensure_eq!(page.len(), 5, "events in a page of 5 when more follow");
        }
        // Paging from an arbitrary position inside the log.
        let middle = whole[whole.len() / 2].position;
        let rest = store
            .read_log(LogQuery::after(middle, 10_000))
            .await
            .context("reading the log after its middle")?;
        let tail: Vec<u64> = whole
            .iter()
            .map(|e| e.position)
            .filter(|p| *p > middle)
            .collect();
        ensure_eq!(
            rest.iter().map(|e| e.position).collect::<Vec<_>>(),
            tail,
            "positions read after position {middle}"
        );
        Ok(())
    })
    .await
}

/// `last_position` is 0 for an empty store and the newest position after appends; reading at or
/// past the end is empty, and a zero limit reads nothing.
pub async fn log_last_position_and_reading_past_the_end<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("log_last_position_and_reading_past_the_end", async move {
        ensure_eq!(
            store.last_position().await.context("last_position")?,
            0,
            "last_position of an empty store"
        );
        let empty = store
            .read_log(LogQuery::after(0, 10))
            .await
            .context("reading an empty log")?;
        ensure!(
            empty.is_empty(),
            "an empty store's log has {} events",
            empty.len()
        );

        let stream = Uuid::now_v7();
        append(&*store, stream, 0, events("Counted", "end", 5)).await?;
        let log = read_whole_log(&*store, 100).await?;
        let last = log.last().map_or(0, |e| e.position);
        ensure_eq!(
            store.last_position().await.context("last_position")?,
            last,
            "last_position is the newest event's position"
        );
        for after in [last, last + 1, last + 1000, u64::MAX / 2] {
            let page = store
                .read_log(LogQuery::after(after, 10))
                .await
                .context(format_args!("reading the log after position {after}"))?;
            ensure!(
                page.is_empty(),
                "reading after position {after} (the last is {last}) returned {} events",
                page.len()
            );
        }
        let none = store
            .read_log(LogQuery::after(0, 0))
            .await
            .context("reading the log with limit 0")?;
        ensure!(none.is_empty(), "limit 0 returned {} events", none.len());
        let before_last = log[log.len() - 2].position;
        let one = store
            .read_log(LogQuery::after(before_last, 10))
            .await
            .context("reading the log's last event")?;
        ensure_eq!(
            one.iter().map(|e| e.position).collect::<Vec<_>>(),
            vec![last],
            "reading after the second-to-last position"
        );
        Ok(())
    })
    .await
}

/// A name filter returns only the events with one of those exact names (case and unicode
/// sensitive), in log order, and pages like the unfiltered log.
pub async fn log_filters_by_event_name<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("log_filters_by_event_name", async move {
        let names = ["Opened", "Deposited", "Withdrawn", "opened", "Café", "Cafe\u{301}"];
        let stream = Uuid::now_v7();
        for i in 0..30u64 {
            let name = names[(i as usize * 5) % names.len()];
            append(&*store, stream, i, vec![event(name, format!("{i}"))]).await?;
        }
        let whole = read_whole_log(&*store, 1000).await?;
        let filters: Vec<Vec<&str>> = vec![
            vec!["Opened"],
            vec!["Deposited", "Withdrawn"],
            vec!["Café"],
            vec!["Cafe\u{301}"],
            vec!["opened", "Café"],
            vec!["NeverStored"],
            vec!["Opened", "NeverStored"],
        ];
        for filter in filters {
            let wanted: Vec<u64> = whole
                .iter()
                .filter(|e| filter.contains(&e.name.as_str()))
                .map(|e| e.position)
                .collect();
            for page in [1usize, 2, 4, 1000] {
                let mut got = Vec::new();
                let mut after = 0;
                loop {
                    let events = store
                        .read_log(LogQuery::after(after, page).names(filter.iter().copied()))
                        .await
                        .context(format_args!(
                            "reading the log after {after}, limit {page}, names {filter:?}"
                        ))?;
                    check_page(&events, after, page, "reading the filtered log")?;
                    if let Some(bad) = events.iter().find(|e| !filter.contains(&e.name.as_str())) {
                        fail!(
                            "filtering the log by {filter:?} returned an event named {:?} (position {})",
                            bad.name,
                            bad.position
                        );
                    }
                    let Some(last) = events.last() else { break };
                    after = last.position;
                    got.extend(events.iter().map(|e| e.position));
                }
                ensure_eq!(
                    got,
                    wanted,
                    "positions of events named {filter:?} read in pages of {page}"
                );
            }
        }
        Ok(())
    })
    .await
}

/// Several tasks append concurrently, each to its own stream: nothing is lost or duplicated,
/// each event is once in the log, and each stream reads back in order.
pub async fn concurrent_writers_on_distinct_streams<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("concurrent_writers_on_distinct_streams", async move {
        const TASKS: usize = 4;
        const APPENDS: u64 = 200;
        let streams: Vec<Uuid> = (0..TASKS).map(|_| Uuid::now_v7()).collect();
        let start = Arc::new(Barrier::new(TASKS));
        let mut tasks = Vec::new();
        for (t, stream) in streams.iter().copied().enumerate() {
            let store = Arc::clone(&store);
            let start = Arc::clone(&start);
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                let mut returned = Vec::new();
                for i in 0..APPENDS {
                    let e = event("Written", format!("task {t} append {i}"));
                    let position = store
                        .append(AppendBatch::single(stream, i, vec![e]))
                        .await
                        .context(format_args!(
                            "task {t}: appending event {i} to its own stream {stream}"
                        ))?;
                    returned.push(position);
                }
                Ok::<_, String>(returned)
            }));
        }
        let mut returned = HashMap::new();
        for (t, task) in tasks.into_iter().enumerate() {
            match task.await {
                Ok(Ok(positions)) => {
                    returned.insert(t, positions);
                }
                Ok(Err(message)) => fail!("{message}"),
                Err(join) => fail!("writer task {t} failed: {join}"),
            }
        }
        let log = read_whole_log(&*store, 97).await?;
        ensure_eq!(
            log.len(),
            TASKS * APPENDS as usize,
            "events in the log after {TASKS} tasks x {APPENDS} appends"
        );
        let mut seen = HashSet::new();
        for e in &log {
            ensure!(
                seen.insert((e.stream_id, e.version)),
                "stream {} version {} is in the log twice",
                e.stream_id,
                e.version
            );
        }
        for (t, stream) in streams.iter().enumerate() {
            let events = read(&*store, *stream, StreamRange::all()).await?;
            let expected: Vec<Expected> = (0..APPENDS)
                .map(|i| Expected {
                    stream: *stream,
                    version: i + 1,
                    event: event("Written", format!("task {t} append {i}")),
                })
                .collect();
            compare(&events, &expected, &format!("reading task {t}'s stream"))?;
            let positions: Vec<u64> = events.iter().map(|e| e.position).collect();
            ensure_eq!(
                positions,
                returned.get(&t).cloned().unwrap_or_default(),
                "task {t}: the positions its appends returned vs. its events' positions"
            );
        }
        Ok(())
    })
    .await
}

/// Tasks race to append to one stream. In lock-step rounds exactly one wins each round and the
/// others get a Conflict with the right versions; in a free-for-all the successes are contiguous
/// versions, and every loser is a Conflict whose event was not written.
pub async fn concurrent_writers_on_one_stream<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("concurrent_writers_on_one_stream", async move {
        const TASKS: usize = 4;
        const ROUNDS: u64 = 25;
        const ATTEMPTS: usize = 50;
        let stream = Uuid::now_v7();

        // Lock-step rounds: everyone appends at version `round` at once.
        let barrier = Arc::new(Barrier::new(TASKS));
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let store = Arc::clone(&store);
            let barrier = Arc::clone(&barrier);
            tasks.push(tokio::spawn(async move {
                let mut wins = Vec::new();
                for round in 0..ROUNDS {
                    barrier.wait().await;
                    let e = event("Raced", format!("round {round} task {t}"));
                    match store.append(AppendBatch::single(stream, round, vec![e])).await {
                        Ok(_) => wins.push(round),
                        Err(Error::Conflict {
                            stream: s,
                            expected,
                            actual,
                        }) if s == stream && expected == round && actual == round + 1 => {}
                        other => {
                            return Err(format!(
                                "round {round}, task {t}: appending at version {round}: expected success or Conflict {{ stream: {stream}, expected: {round}, actual: {} }}, got {other:?}",
                                round + 1
                            ));
                        }
                    }
                    barrier.wait().await;
                }
                Ok(wins)
            }));
        }
        let mut winners: HashMap<u64, usize> = HashMap::new();
        for (t, task) in tasks.into_iter().enumerate() {
            match task.await {
                Ok(Ok(wins)) => {
                    for round in wins {
                        if let Some(other) = winners.insert(round, t) {
                            fail!("round {round}: both task {other} and task {t} appended at version {round}");
                        }
                    }
                }
                Ok(Err(message)) => fail!("{message}"),
                Err(join) => fail!("racing task {t} failed: {join}"),
            }
        }
        let events = read(&*store, stream, StreamRange::all()).await?;
        ensure_eq!(
            events.len() as u64,
            ROUNDS,
            "events after {ROUNDS} lock-step rounds (one winner each)"
        );
        for round in 0..ROUNDS {
            let Some(t) = winners.get(&round) else {
                fail!("round {round}: no task won (every append at version {round} failed)");
            };
            let e = &events[round as usize];
            ensure_eq!(e.version, round + 1, "version of round {round}'s event");
            ensure!(
                e.payload == format!("round {round} task {t}").into_bytes(),
                "round {round}: version {} holds {:?}, not the winner's (task {t}) event",
                e.version,
                String::from_utf8_lossy(&e.payload)
            );
        }

        // Free-for-all: read the version, try to append, repeat.
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let mut won = Vec::new();
                let mut lost = Vec::new();
                for i in 0..ATTEMPTS {
                    let seen = store
                        .stream_version(stream)
                        .await
                        .context(format_args!("task {t}: stream_version"))?;
                    let payload = format!("free task {t} attempt {i}");
                    let e = event("Raced", payload.clone());
                    match store.append(AppendBatch::single(stream, seen, vec![e])).await {
                        Ok(_) => won.push(payload),
                        Err(Error::Conflict {
                            stream: s,
                            expected,
                            actual,
                        }) if s == stream && expected == seen && actual > seen => {
                            lost.push(payload)
                        }
                        other => {
                            return Err(format!(
                                "task {t}, attempt {i}: appending at version {seen}: expected success or a Conflict naming stream {stream}, expected {seen} and an actual version above it, got {other:?}"
                            ));
                        }
                    }
                    tokio::task::yield_now().await;
                }
                Ok((won, lost))
            }));
        }
        let mut won = HashSet::new();
        let mut lost = HashSet::new();
        for (t, task) in tasks.into_iter().enumerate() {
            match task.await {
                Ok(Ok((w, l))) => {
                    won.extend(w);
                    lost.extend(l);
                }
                Ok(Err(message)) => fail!("{message}"),
                Err(join) => fail!("racing task {t} failed: {join}"),
            }
        }
        let events = read(&*store, stream, StreamRange::all()).await?;
        let free = events.get(ROUNDS as usize..).unwrap_or_default();
        ensure_eq!(
            free.len(),
            won.len(),
            "events written in the free-for-all vs. appends that succeeded"
        );
        for (i, e) in events.iter().enumerate() {
            ensure_eq!(e.version, i as u64 + 1, "versions must be contiguous");
        }
        let mut written = HashSet::new();
        for e in free {
            let payload = String::from_utf8_lossy(&e.payload).into_owned();
            ensure!(
                !lost.contains(&payload),
                "version {} holds {payload:?}, whose append failed with a Conflict",
                e.version
            );
            ensure!(
                won.contains(&payload),
                "version {} holds {payload:?}, which no successful append wrote",
                e.version
            );
            ensure!(
                written.insert(payload.clone()),
                "{payload:?} is stored twice"
            );
        }
        Ok(())
    })
    .await
}

/// A follower pages the log while writers commit; afterwards what it saw is exactly the final
/// log: no event skipped, none repeated, in order.
pub async fn follower_never_skips_concurrent_commits<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("follower_never_skips_concurrent_commits", async move {
        const WRITERS: usize = 3;
        const APPENDS: u64 = 100;
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut writers = Vec::new();
        for t in 0..WRITERS {
            let store = Arc::clone(&store);
            let done = Arc::clone(&done);
            writers.push(tokio::spawn(async move {
                let stream = Uuid::now_v7();
                for i in 0..APPENDS {
                    let n = (i % 3 + 1) as usize;
                    let version = store
                        .stream_version(stream)
                        .await
                        .context(format_args!("writer {t}: stream_version"))?;
                    store
                        .append(AppendBatch::single(
                            stream,
                            version,
                            events("Followed", &format!("w{t}-{i}"), n),
                        ))
                        .await
                        .context(format_args!("writer {t}: append {i}"))?;
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok::<_, String>(())
            }));
        }
        let follower = {
            let store = Arc::clone(&store);
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let mut seen: Vec<(u64, Uuid, u64)> = Vec::new();
                let mut after = 0;
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                loop {
                    let finished = done.load(std::sync::atomic::Ordering::SeqCst) == WRITERS;
                    let page = store
                        .read_log(LogQuery::after(after, 7))
                        .await
                        .context(format_args!("follower: reading the log after {after}"))?;
                    check_page(&page, after, 7, "the follower reading the log")?;
                    match page.last() {
                        Some(last) => after = last.position,
                        None if finished => {
                            // Nothing more after the writers finished, and nothing pending.
                            let last = store
                                .last_position()
                                .await
                                .context("follower: last_position")?;
                            if after >= last {
                                return Ok(seen);
                            }
                        }
                        None => {
                            if tokio::time::Instant::now() > deadline {
                                return Err("the follower saw no new events for a minute".to_owned());
                            }
                            tokio::task::yield_now().await;
                        }
                    }
                    seen.extend(page.iter().map(|e| (e.position, e.stream_id, e.version)));
                }
            })
        };
        for (t, writer) in writers.into_iter().enumerate() {
            match writer.await {
                Ok(Ok(())) => {}
                Ok(Err(message)) => fail!("{message}"),
                Err(join) => fail!("writer {t} failed: {join}"),
            }
        }
        let seen = match follower.await {
            Ok(Ok(seen)) => seen,
            Ok(Err(message)) => fail!("{message}"),
            Err(join) => fail!("the follower failed: {join}"),
        };
        let log: Vec<(u64, Uuid, u64)> = read_whole_log(&*store, 1000)
            .await?
            .iter()
            .map(|e| (e.position, e.stream_id, e.version))
            .collect();
        ensure_eq!(
            seen.len(),
            log.len(),
            "events the follower saw vs. events in the final log"
        );
        if let Some(i) = (0..log.len()).find(|&i| seen[i] != log[i]) {
            fail!(
                "the follower's event #{i} is (position, stream, version) {:?}, but the final log has {:?} there: the follower skipped or reordered an event",
                seen[i],
                log[i]
            );
        }
        Ok(())
    })
    .await
}

fn snapshot(stream: Uuid, version: u64, state: Vec<u8>) -> Snapshot {
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

fn compare_snapshot(actual: Option<Snapshot>, expected: &Snapshot, doing: &str) -> Outcome {
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

/// A tracking position is written atomically with the events of its batch; a position not
/// greater than the recorded one is a TrackingConflict that writes nothing (events included);
/// a batch that fails on a stream conflict doesn't record its tracking position either.
pub async fn tracking_is_written_with_the_append<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("tracking_is_written_with_the_append", async move {
        let stream = Uuid::now_v7();
        let tracked = |stream: Uuid, expected: u64, events: Vec<NewEvent>, position: u64| {
            let mut b = batch(vec![(stream, expected, events)]);
            b.tracking = Some(Tracking {
                tracker: "projector".into(),
                position,
            });
            b
        };
        store
            .append(tracked(stream, 0, events("Projected", "t5", 2), 5))
            .await
            .context("appending 2 events with tracking position 5")?;
        ensure_eq!(
            store.tracking_position("projector").await.context("tracking_position")?,
            5,
            "tracking position after the append"
        );
        ensure_eq!(
            store.stream_version(stream).await.context("stream_version")?,
            2,
            "stream_version after the tracked append"
        );

        for (position, recorded) in [(5, 5), (3, 5), (0, 5)] {
            match store
                .append(tracked(stream, 2, events("Projected", "again", 1), position))
                .await
            {
                Err(Error::TrackingConflict {
                    tracker,
                    position: p,
                    recorded: r,
                }) if tracker == "projector" && p == position && r == recorded => {}
                other => fail!(
                    "appending with tracking position {position} after {recorded} was recorded: expected TrackingConflict {{ tracker: \"projector\", position: {position}, recorded: {recorded} }}, got {other:?}"
                ),
            }
        }
        ensure_eq!(
            store.stream_version(stream).await.context("stream_version")?,
            2,
            "stream_version after tracking conflicts (their events must not be written)"
        );
        ensure_eq!(
            read_whole_log(&*store, 100).await?.len(),
            2,
            "events in the log after tracking conflicts"
        );

        // A stream conflict fails the whole batch, tracking included.
        let result = store
            .append(tracked(stream, 0, events("Projected", "stale", 1), 9))
            .await;
        ensure!(
            matches!(result, Err(Error::Conflict { .. })),
            "appending at a stale version with tracking: expected a Conflict, got {result:?}"
        );
        ensure_eq!(
            store.tracking_position("projector").await.context("tracking_position")?,
            5,
            "tracking position after a batch that failed on a stream conflict"
        );

        // Tracking without events, gaps allowed, and trackers are independent.
        let only_tracking = tracking_only("projector", 9);
        store
            .append(only_tracking)
            .await
            .context("appending a batch that holds only tracking position 9")?;
        ensure_eq!(
            store.tracking_position("projector").await.context("tracking_position")?,
            9,
            "tracking position after a batch without events"
        );
        store
            .append({
                let mut b = batch(vec![(stream, 2, events("Projected", "t10", 1))]);
                b.tracking = Some(Tracking {
                    tracker: "projector".into(),
                    position: 10,
                });
                b
            })
            .await
            .context("appending with tracking position 10")?;
        let other = tracking_only("emailer", 1);
        store
            .append(other)
            .await
            .context("recording position 1 for a second tracker")?;
        ensure_eq!(
            (
                store.tracking_position("projector").await.context("tracking_position")?,
                store.tracking_position("emailer").await.context("tracking_position")?,
            ),
            (10, 1),
            "tracking positions of two trackers"
        );
        ensure_eq!(
            store.stream_version(stream).await.context("stream_version")?,
            3,
            "stream_version at the end"
        );
        Ok(())
    })
    .await
}

/// 1 MiB payloads, large metadata values and a 1 MiB snapshot state round-trip byte for byte.
pub async fn large_payloads<S: EventStore + ?Sized + 'static>(store: Arc<S>) -> CheckResult {
    named("large_payloads", async move {
        const MIB: usize = 1024 * 1024;
        let stream = Uuid::now_v7();
        let mut big = all_bytes(MIB);
        // Not just a repeating pattern: a pseudo-random tail.
        let mut x: u32 = 0x9e37_79b9;
        for b in big.iter_mut().skip(MIB / 2) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = (x >> 24) as u8;
        }
        let appended = vec![
            NewEvent {
                name: "Big".into(),
                schema_version: 1,
                payload: big.clone(),
                metadata: metadata(&[("note", &"m".repeat(64 * 1024))]),
            },
            NewEvent {
                name: "Big".into(),
                schema_version: 2,
                payload: big.iter().rev().copied().collect(),
                metadata: metadata(&[]),
            },
        ];
        append(&*store, stream, 0, appended.clone()).await?;
        let expected = Expected::appended(stream, 0, &appended);
        compare(
            &read(&*store, stream, StreamRange::all()).await?,
            &expected,
            "reading 1 MiB events from the stream",
        )?;
        compare(
            &read_whole_log(&*store, 10).await?,
            &expected,
            "reading 1 MiB events from the log",
        )?;
        let snap = snapshot(stream, 2, big);
        store
            .save_snapshot(snap.clone())
            .await
            .context("saving a 1 MiB snapshot")?;
        compare_snapshot(
            store
                .load_snapshot(stream, None)
                .await
                .context("loading a 1 MiB snapshot")?,
            &snap,
            "loading a 1 MiB snapshot",
        )?;
        Ok(())
    })
    .await
}

/// Unicode event names, metadata, payloads, tracker names and aggregate names round-trip exactly
/// (no normalisation), and a name filter matches them.
pub async fn unicode_names_and_payloads<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("unicode_names_and_payloads", async move {
        let stream = Uuid::now_v7();
        let name = "Überweisung💸送金";
        let appended = vec![
            NewEvent {
                name: name.into(),
                schema_version: 1,
                payload: r#"{"memo":"Grüße aus Köln — 東京 🚀","emoji":"👩‍👩‍👧"}"#.into(),
                metadata: metadata(&[("benutzer", "Zoë"), ("ключ", "значение"), ("🔑", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢")]),
            },
            event("Cafe\u{301}", "decomposed é".as_bytes().to_vec()),
            event("Café", "composed é".as_bytes().to_vec()),
        ];
        append(&*store, stream, 0, appended.clone()).await?;
        let expected = Expected::appended(stream, 0, &appended);
        compare(
            &read(&*store, stream, StreamRange::all()).await?,
            &expected,
            "reading unicode events from the stream",
        )?;
        compare(
            &read_whole_log(&*store, 10).await?,
            &expected,
            "reading unicode events from the log",
        )?;
        let filtered = store
            .read_log(LogQuery::after(0, 10).names([name, "Café"]))
            .await
            .context("filtering the log by unicode names")?;
        ensure_eq!(
            filtered.iter().map(|e| e.version).collect::<Vec<_>>(),
            vec![1, 3],
            "versions of events named {name:?} or \"Café\" (composed; the decomposed one must not match)"
        );

        let tracked = tracking_only("投影-Ω", 7);
        store
            .append(tracked)
            .await
            .context("recording a unicode tracker")?;
        ensure_eq!(
            store.tracking_position("投影-Ω").await.context("tracking_position")?,
            7,
            "tracking position of a unicode tracker"
        );
        ensure_eq!(
            store.tracking_position("投影-Ω ").await.context("tracking_position")?,
            0,
            "tracking position of a different tracker (trailing space)"
        );

        let snap = Snapshot {
            aggregate: "Kontoführung📒".into(),
            state: "État: ✓".as_bytes().to_vec(),
            ..snapshot(stream, 3, Vec::new())
        };
        store
            .save_snapshot(snap.clone())
            .await
            .context("saving a snapshot with a unicode aggregate name")?;
        compare_snapshot(
            store.load_snapshot(stream, None).await.context("load_snapshot")?,
            &snap,
            "loading a snapshot with a unicode aggregate name",
        )?;
        Ok(())
    })
    .await
}
