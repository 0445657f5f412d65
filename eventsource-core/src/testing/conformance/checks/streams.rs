//! Stream reads: ranges, long streams, versions, independence.

use std::sync::Arc;

use uuid::Uuid;

use super::super::CheckResult;
use super::super::support::{
    Context, Expected, append, compare, compare_replayed, compare_with_read, ensure, ensure_eq,
    events, read, visit,
};
use super::named;
use crate::error::Error;
use crate::persistence::record::{AppendBatch, StreamRange};
use crate::persistence::store::EventStore;

/// `from`, `to`, `backwards` and `limit` select the right versions in the right order.
pub async fn read_stream_ranges<S: EventStore + ?Sized + 'static>(store: Arc<S>) -> CheckResult {
    named("read_stream_ranges", async move {
        let stream = Uuid::now_v7();
        let (first, second) = (
            events("Counted", "ranges", 4),
            events("Counted", "ranges2", 6),
        );
        append(&*store, stream, 0, first.clone()).await?;
        append(&*store, stream, 4, second.clone()).await?;
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
            let events = read(&*store, stream, range).await?;
            let got: Vec<u64> = events.iter().map(|e| e.version).collect();
            ensure_eq!(got, versions, "versions read with {range:?}");
            // A replay is lent the values the read returned, whatever the range.
            let visited = visit(&*store, stream, range, usize::MAX).await?;
            compare_with_read(&visited, &events, &format!("visiting with {range:?}"))?;
        }
        // A visitor that breaks stops the visit, backwards too.
        let last_two = visit(&*store, stream, all.backwards(), 2).await?;
        let last_two: Vec<u64> = last_two.iter().map(|e| e.version).collect();
        ensure_eq!(
            last_two,
            vec![10, 9],
            "a backwards visit that breaks after two events"
        );
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
        let appended: Vec<Expected> = Expected::appended(stream, 0, &first)
            .into_iter()
            .chain(Expected::appended(stream, 4, &second))
            .collect();
        compare(&middle, &appended[2..6], "reading versions 3 to 6")?;
        let visited = visit(&*store, stream, all.from(3).to(6), usize::MAX).await?;
        compare_replayed(&visited, &appended[2..6], "visiting versions 3 to 6")?;
        Ok(())
    })
    .await
}

/// A stream longer than a store's read chunk (3,000 events) reads and visits whole and in
/// order, forwards, backwards and in a range that spans chunk boundaries.
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
        // A visit, the repository's replay, reads the same (PostgreSQL: one query streamed).
        let visited = visit(&*store, stream, StreamRange::all(), usize::MAX).await?;
        compare_replayed(&visited, &expected, "visiting a 3,000-event stream")?;
        let mut visited_backwards =
            visit(&*store, stream, StreamRange::all().backwards(), usize::MAX).await?;
        visited_backwards.reverse();
        compare_replayed(
            &visited_backwards,
            &expected,
            "visiting a 3,000-event stream backwards (shown reversed)",
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
        let after_conflict = events("B", "after-conflict", 1);
        append(&*store, b, 3, after_conflict.clone()).await?;
        expected_b.extend(Expected::appended(b, 3, &after_conflict));
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
