//! Subscriptions on the memory and SQLite stores: woken by this process's commits, polling for
//! another process's, resumable from their position. (Every store's subscription is also held
//! to the conformance suite's `subscription_follows_commits`; PostgreSQL's wake-ups have tests of
//! their own.)

use std::time::Duration;

use eventsource_core::{
    AppendBatch, EventStore, LogQuery, MemoryStore, NewEvent, Position, SqliteStore, Subscription,
    Uuid,
};
use futures_util::StreamExt;

/// Far longer than any test waits: a subscription that receives an event before it can only
/// have been woken.
const NEVER: Duration = Duration::from_secs(3600);
/// How long a test waits for an event it expects.
const DEADLINE: Duration = Duration::from_secs(30);

async fn append(store: &impl EventStore, stream: Uuid, version: u64, name: &str) -> Position {
    store
        .append(AppendBatch::single_in(
            "Account",
            stream,
            version,
            vec![NewEvent::new(name, 1, format!("{version}"))],
        ))
        .await
        .expect("append")
}

/// Caught up, the subscription waits without polling; a commit wakes it at once.
async fn woken_by_commits(store: &impl EventStore) {
    let stream = Uuid::now_v7();
    let start = store.last_position().await.unwrap();
    append(store, stream, 0, "Opened").await;
    let mut subscription =
        Subscription::new(store, LogQuery::after(start, 10)).poll_interval(NEVER);
    assert!(subscription.is_live());
    assert_eq!(subscription.next().await.unwrap().version, 1);
    let (event, position) =
        tokio::join!(tokio::time::timeout(DEADLINE, subscription.next()), async {
            tokio::time::sleep(Duration::from_millis(20)).await; // the subscriber is waiting
            append(store, stream, 1, "Deposited").await
        });
    let event = event.expect("woken by the commit, not by polling").unwrap();
    assert_eq!((event.version, event.position), (2, position));
    assert_eq!(subscription.position(), position);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_store_wakes_its_subscriptions() {
    woken_by_commits(&MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_store_wakes_its_subscriptions() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("wake.db")).await.unwrap();
    woken_by_commits(&store).await;
    woken_by_commits(&store.clone()).await;
}

/// Another process writing the same SQLite file can't wake this one's subscriptions: they find
/// its events at their next poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_writer_of_the_same_sqlite_file_is_found_by_polling() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let reader = SqliteStore::open(&path).await.unwrap();
    let other = SqliteStore::open(&path).await.unwrap(); // as another process would
    let stream = Uuid::now_v7();
    let mut subscription = Subscription::new(&reader, LogQuery::from_start(10))
        .poll_interval(Duration::from_millis(20));
    let (events, written) = tokio::join!(
        async {
            let mut events = Vec::new();
            while events.len() < 5 {
                let event = tokio::time::timeout(DEADLINE, subscription.next())
                    .await
                    .expect("found by polling");
                events.push(event.unwrap().version);
            }
            events
        },
        async {
            for version in 0..5 {
                append(&other, stream, version, "Deposited").await;
            }
        }
    );
    let () = written;
    assert_eq!(events, vec![1, 2, 3, 4, 5]);
}

/// A subscription stopped and started again from its position hands over each event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_resumes_from_its_position() {
    let store = MemoryStore::new();
    let stream = Uuid::now_v7();
    for version in 0..10 {
        append(&store, stream, version, "Deposited").await;
    }
    let mut first = Subscription::new(&store, LogQuery::from_start(4));
    let mut versions = Vec::new();
    for _ in 0..6 {
        versions.push(first.next().await.unwrap().version);
    }
    let resume_at = first.position();
    assert_eq!(
        resume_at,
        Position::new(6),
        "after the sixth event, though ten were read"
    );
    drop(first);
    let store = std::sync::Arc::new(store);
    let second = Subscription::new(store, LogQuery::after(resume_at, 4)).poll_interval(NEVER);
    let mut stream_of_events = Box::pin(second.into_stream());
    for _ in 0..4 {
        versions.push(stream_of_events.next().await.unwrap().unwrap().version);
    }
    assert_eq!(versions, (1..=10).collect::<Vec<_>>());
}
