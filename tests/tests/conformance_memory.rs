//! The memory store passes the store conformance suite.

use eventsource_core::MemoryStore;
use eventsource_core::testing::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_the_conformance_suite() {
    // The memory store is cheap to make: more model cases than the default.
    conformance::run_with(
        || async { MemoryStore::new() },
        conformance::ModelCases::new(256),
    )
    .await;
}

/// The suite catches a store that breaks the contract, and says which check and what differed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_reports_a_broken_store() {
    let report = conformance::try_run_only(
        || async { broken::ForgetfulStore::default() },
        &[
            "append_and_read_back",
            "stream_version_tracks_appends",
            "no_such_check",
        ],
    )
    .await;
    assert_eq!(report.passed.len(), 1, "{report}");
    let failed: Vec<&str> = report.failures.iter().map(|f| f.check).collect();
    assert_eq!(failed, ["append_and_read_back", "try_run_only"], "{report}");
    let message = &report.failures[0].message;
    assert!(message.contains("metadata differs"), "{message}");
    assert!(report.to_string().contains("no_such_check"), "{report}");
}

/// The model checks catch a subtle break that no hand-written check looks for (a store that
/// reads a stream backwards from the wrong end when a limit is set), and print the shrunk
/// sequence that shows it.
///
/// A random sequence meets the break only if it appends at least two events to a stream and
/// then reads it backwards with a smaller limit: about one sequence in twenty. The default 64
/// sequences missed it about once in 30 runs; 1,024 miss it with a probability below 10^-20.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_checks_shrink_a_broken_store_to_a_short_sequence() {
    let report = conformance::try_run_only_with(
        || async { broken::OldestFirstStore::default() },
        &["model_sequences"],
        conformance::ModelCases::new(1024),
    )
    .await;
    assert_eq!(report.failures.len(), 1, "{report}");
    let message = &report.failures[0].message;
    println!("{message}");
    assert!(message.contains("EVENTSOURCE_MODEL_SEED="), "{message}");
    assert!(
        message.contains("the stream read differs from the model"),
        "{message}"
    );
    // Shrunk: one append of two events and one limited backwards read show the break.
    let steps = message
        .lines()
        .filter(|line| line.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .count();
    assert!(
        (2..=4).contains(&steps),
        "not shrunk ({steps} steps): {message}"
    );
}

mod broken {
    //! A store that drops metadata: everything else delegates to the memory store.
    use eventsource_core::{
        AppendBatch, Error, EventStore, EventStream, LogPage, LogQuery, MemoryStore, Position,
        Result, Snapshot, StoredEvent, StreamRange, Uuid,
    };
    use futures_util::TryStreamExt as _;

    #[derive(Debug, Default)]
    pub(super) struct ForgetfulStore(MemoryStore);

    /// Reads a limited backwards range from the oldest end (then reverses it): the newest
    /// events of a long stream are never read.
    #[derive(Debug, Default)]
    pub(super) struct OldestFirstStore(MemoryStore);

    #[eventsource_core::async_trait]
    impl EventStore for OldestFirstStore {
        async fn append(&self, batch: AppendBatch) -> Result<Position> {
            self.0.append(batch).await
        }
        fn read_stream(&self, stream_id: Uuid, range: StreamRange) -> EventStream<'_> {
            if !range.backwards || range.limit.is_none() {
                return self.0.read_stream(stream_id, range);
            }
            let forwards = StreamRange {
                backwards: false,
                ..range
            };
            Box::pin(
                futures_util::stream::once(async move {
                    let mut events: Vec<StoredEvent> = self
                        .0
                        .read_stream(stream_id, forwards)
                        .try_collect()
                        .await?;
                    events.reverse();
                    Ok::<_, Error>(events)
                })
                .map_ok(|events| futures_util::stream::iter(events.into_iter().map(Ok)))
                .try_flatten(),
            )
        }
        async fn stream_version(&self, stream_id: Uuid) -> Result<u64> {
            self.0.stream_version(stream_id).await
        }
        async fn read_log(&self, query: LogQuery) -> Result<LogPage> {
            self.0.read_log(query).await
        }
        async fn last_position(&self) -> Result<Position> {
            self.0.last_position().await
        }
        async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
            self.0.save_snapshot(snapshot).await
        }
        async fn delete_snapshots(&self, stream_id: Uuid) -> Result<u64> {
            self.0.delete_snapshots(stream_id).await
        }
        async fn load_snapshot(
            &self,
            stream_id: Uuid,
            at: Option<u64>,
        ) -> Result<Option<Snapshot>> {
            self.0.load_snapshot(stream_id, at).await
        }
        async fn tracking_position(&self, tracker: &str) -> Result<Position> {
            self.0.tracking_position(tracker).await
        }
    }

    #[eventsource_core::async_trait]
    impl EventStore for ForgetfulStore {
        async fn append(&self, mut batch: AppendBatch) -> Result<Position> {
            for stream in &mut batch.streams {
                for event in &mut stream.events {
                    event.metadata.clear();
                }
            }
            self.0.append(batch).await
        }
        fn read_stream(&self, stream_id: Uuid, range: StreamRange) -> EventStream<'_> {
            self.0.read_stream(stream_id, range)
        }
        async fn stream_version(&self, stream_id: Uuid) -> Result<u64> {
            self.0.stream_version(stream_id).await
        }
        async fn read_log(&self, query: LogQuery) -> Result<LogPage> {
            self.0.read_log(query).await
        }
        async fn last_position(&self) -> Result<Position> {
            self.0.last_position().await
        }
        async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
            self.0.save_snapshot(snapshot).await
        }
        async fn delete_snapshots(&self, stream_id: Uuid) -> Result<u64> {
            self.0.delete_snapshots(stream_id).await
        }
        async fn load_snapshot(
            &self,
            stream_id: Uuid,
            at: Option<u64>,
        ) -> Result<Option<Snapshot>> {
            self.0.load_snapshot(stream_id, at).await
        }
        async fn tracking_position(&self, tracker: &str) -> Result<Position> {
            self.0.tracking_position(tracker).await
        }
    }
}
