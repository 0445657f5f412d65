//! The memory store passes the store conformance suite.

use eventsource_core::MemoryStore;
use eventsource_core::testing::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_the_conformance_suite() {
    // The memory store is cheap to make: more model cases than the default.
    conformance::run_with(|| async { MemoryStore::new() }, conformance::ModelCases::new(256)).await;
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

mod broken {
    //! A store that drops metadata: everything else delegates to the memory store.
    use eventsource_core::{
        AppendBatch, EventStore, EventStream, LogPage, LogQuery, MemoryStore, Position, Result,
        Snapshot, StreamRange, Uuid,
    };

    #[derive(Debug, Default)]
    pub(super) struct ForgetfulStore(MemoryStore);

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
