//! Tracking records written in the same transaction as the events.

use std::sync::Arc;

use uuid::Uuid;

use super::super::CheckResult;
use super::super::support::{Context, batch, ensure, ensure_eq, events, fail, read_whole_log};
use super::named;
use crate::error::Error;
use crate::persistence::position::Position;
use crate::persistence::record::{AppendBatch, NewEvent, Tracking};
use crate::persistence::store::EventStore;

/// A batch that only records a tracking position.
pub(super) fn tracking_only(tracker: impl Into<String>, position: u64) -> AppendBatch {
    AppendBatch {
        streams: Vec::new(),
        tracking: Some(Tracking {
            tracker: tracker.into(),
            position: Position::new(position),
        }),
    }
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
                position: Position::new(position),
            });
            b
        };
        store
            .append(tracked(stream, 0, events("Projected", "t5", 2), 5))
            .await
            .context("appending 2 events with tracking position 5")?;
        ensure_eq!(
            store.tracking_position("projector").await.context("tracking_position")?,
            Position::new(5),
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
                }) if tracker == "projector"
                    && p == Position::new(position)
                    && r == Position::new(recorded) => {}
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
            Position::new(5),
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
            Position::new(9),
            "tracking position after a batch without events"
        );
        store
            .append({
                let mut b = batch(vec![(stream, 2, events("Projected", "t10", 1))]);
                b.tracking = Some(Tracking {
                    tracker: "projector".into(),
                    position: Position::new(10),
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
            (Position::new(10), Position::new(1)),
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

/// A tracker without a record is at [`Position::START`]: offering that position is not after
/// it, so it is a TrackingConflict (recorded 0) that writes nothing, as for any recorded
/// position. Found by the model checks: the PostgreSQL store inserted the record instead.
pub async fn tracking_at_the_start_position_is_a_conflict<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("tracking_at_the_start_position_is_a_conflict", async move {
        let stream = Uuid::now_v7();
        let mut at_start = batch(vec![(stream, 0, events("Projected", "start", 1))]);
        at_start.tracking = Some(Tracking {
            tracker: "fresh".into(),
            position: Position::START,
        });
        match store.append(at_start).await {
            Err(Error::TrackingConflict {
                tracker,
                position,
                recorded,
            }) => {
                ensure_eq!(tracker, "fresh", "the conflict's tracker");
                ensure_eq!(position, Position::START, "the conflict's offered position");
                ensure_eq!(recorded, Position::START, "the conflict's recorded position");
            }
            Err(other) => fail!(
                "tracking a fresh tracker at position 0 should be a TrackingConflict, got {other} ({other:?})"
            ),
            Ok(position) => fail!(
                "tracking a fresh tracker at position 0 was accepted (position {position}); 0 is not after the position a tracker without a record is at (0)"
            ),
        }
        ensure_eq!(
            store.stream_version(stream).await.context("stream_version")?,
            0,
            "stream_version after the refused append (it must write nothing)"
        );
        ensure!(
            read_whole_log(&*store, 100).await?.is_empty(),
            "the log holds events after the refused append (it must write nothing)"
        );
        store
            .append(tracking_only("fresh", 1))
            .await
            .context("tracking the fresh tracker at position 1")?;
        ensure_eq!(
            store.tracking_position("fresh").await.context("tracking_position")?,
            Position::new(1),
            "the tracker's position after recording 1"
        );
        Ok(())
    })
    .await
}
