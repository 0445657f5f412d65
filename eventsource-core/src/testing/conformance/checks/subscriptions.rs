//! Subscriptions on the store: catch up, then follow commits as concurrent writers make them.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::super::CheckResult;
use super::super::support::{Context, ensure, ensure_eq, event, fail, read_whole_log};
use super::named;
use crate::application::subscription::Subscription;
use crate::persistence::position::Position;
use crate::persistence::record::{AppendBatch, LogQuery, StoredEvent};
use crate::persistence::store::EventStore;

/// How long a check waits for a subscription to see everything before it fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// A subscription started after some events were stored hands over those, then every event
/// that three concurrent writers commit, each once and in log order, the same as the log read
/// afterwards; a category-filtered one sees exactly its category's events. (Stores without
/// wake-ups pass by polling, every 50 ms here.)
pub async fn subscription_follows_commits<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("subscription_follows_commits", async move {
        const WRITERS: usize = 3;
        const PER_WRITER: u64 = 20;
        let early = Uuid::now_v7();
        store
            .append(AppendBatch::single_in("Early", early, 0, vec![event("Before", "0"), event("Before", "1")]))
            .await
            .context("appending before the subscription starts")?;
        let expected_total = 2 + WRITERS * PER_WRITER as usize;

        let mut all = Subscription::new(Arc::clone(&store), LogQuery::from_start(7))
            .poll_interval(Duration::from_millis(50));
        let mut odd = Subscription::new(Arc::clone(&store), LogQuery::from_start(7).categories(["Odd"]))
            .poll_interval(Duration::from_millis(50));
        let first = all.next().await.context("the subscription's first event")?;
        ensure_eq!((first.stream_id, first.version), (early, 1), "the first event handed over");

        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let store = Arc::clone(&store);
            writers.push(tokio::spawn(async move {
                let stream = Uuid::now_v7();
                let category = if w % 2 == 1 { "Odd" } else { "Even" };
                for version in 0..PER_WRITER {
                    let batch = AppendBatch::single_in(
                        category,
                        stream,
                        version,
                        vec![event("Live", format!("{w}:{version}"))],
                    );
                    store
                        .append(batch)
                        .await
                        .context(format_args!("writer {w}: appending version {}", version + 1))?;
                    if version % 5 == 0 {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
                Ok::<_, String>(())
            }));
        }

        let deadline = tokio::time::Instant::now() + DEADLINE;
        let mut seen: Vec<StoredEvent> = vec![first];
        while seen.len() < expected_total {
            match tokio::time::timeout_at(deadline, all.next()).await {
                Ok(event) => seen.push(event.context("the subscription's next event")?),
                Err(_) => fail!(
                    "the subscription handed over {} of {expected_total} events within {DEADLINE:?}",
                    seen.len()
                ),
            }
        }
        for (w, writer) in writers.into_iter().enumerate() {
            match writer.await {
                Ok(Ok(())) => {}
                Ok(Err(message)) => fail!("{message}"),
                Err(join) => fail!("writer {w} failed: {join}"),
            }
        }
        let log = read_whole_log(&*store, 1000).await?;
        let key = |e: &StoredEvent| (e.position, e.stream_id, e.version);
        ensure_eq!(
            seen.iter().map(key).collect::<Vec<_>>(),
            log.iter().map(key).collect::<Vec<_>>(),
            "what the subscription handed over vs. the log read afterwards"
        );
        let last = log.last().map_or(Position::START, |e| e.position);
        ensure_eq!(all.position(), last, "the subscription's position after the last event");
        // Nothing more: a read without waiting finds nothing.
        let more = all.try_next_batch().await.context("reading on without waiting")?;
        ensure!(more.is_empty(), "the subscription found {} events past the end", more.len());

        let odd_expected: Vec<_> = log.iter().filter(|e| e.category == "Odd").map(key).collect();
        let mut odd_seen = Vec::new();
        while odd_seen.len() < odd_expected.len() {
            match tokio::time::timeout_at(deadline, odd.next_batch()).await {
                Ok(batch) => odd_seen.extend(batch.context("the filtered subscription")?.iter().map(key)),
                Err(_) => fail!(
                    "the filtered subscription handed over {} of {} events",
                    odd_seen.len(),
                    odd_expected.len()
                ),
            }
        }
        ensure_eq!(odd_seen, odd_expected, "the filtered subscription's events");
        Ok(())
    })
    .await
}
