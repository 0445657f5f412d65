//! Subscriptions on PostgreSQL: wake-ups by `LISTEN`/`NOTIFY`, a listener connection that is
//! killed and comes back, an open appender that holds a subscription back, and polling when
//! notifications are off.
//!
//! Events are appended through a *second* store on the same schema, as another process would:
//! a store's own appends also wake its readers directly, which would hide a broken `NOTIFY`.
//! The server is shared with other tests and programs: every wait is for a condition, with a
//! generous deadline.

use std::time::{Duration, Instant};

use eventsource_core::stores::postgres::tokio_postgres::Client;
use eventsource_core::stores::postgres::{PostgresStore, tokio_postgres};
use eventsource_core::{AppendBatch, EventStore, LogQuery, StoredEvent, Subscription, Uuid};

mod support;
use support::postgres::*;

/// How long any one condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(30);

/// A poll interval no test waits out: an event that arrives proves a wake-up.
const NEVER: Duration = Duration::from_secs(3600);

/// The `application_name` of a store's listener when the URL sets none.
const LISTENER: &str = "eventsource-listener";

/// Another store on `store`'s schema: a writer whose appends reach `store`'s readers only
/// through the server.
async fn other_process(store: &PostgresStore) -> PostgresStore {
    PostgresStore::options(url())
        .schema(store.schema())
        .connect()
        .await
        .expect("connect a second store to the same schema")
}

/// Appends `count` events to a new stream, in one append.
async fn append_new(store: &PostgresStore, count: u64) -> Uuid {
    let id = Uuid::now_v7();
    store
        .append(AppendBatch::single(id, 0, events_for(id, 1, count)))
        .await
        .expect("append");
    id
}

/// The next event, failing the test if none arrives within the deadline.
async fn next_within(subscription: &mut Subscription<PostgresStore>) -> StoredEvent {
    tokio::time::timeout(DEADLINE, subscription.next())
        .await
        .expect("an event within the deadline")
        .expect("read the log")
}

/// The pid of `store`'s listener once it is listening (idle after its `LISTEN`), other than
/// `not`.
async fn listener_pid(admin: &Client, store: &PostgresStore, not: Option<i32>) -> i32 {
    let listen = format!("LISTEN \"{}\"", store.notify_channel().expect("notifies"));
    let started = Instant::now();
    loop {
        let rows = admin
            .query(
                "SELECT pid FROM pg_stat_activity \
                 WHERE application_name = $1 AND query = $2 AND state = 'idle'",
                &[&LISTENER, &listen],
            )
            .await
            .expect("read pg_stat_activity");
        let pids: Vec<i32> = rows.iter().map(|row| row.get(0)).collect();
        if let Some(pid) = pids.iter().copied().find(|pid| Some(*pid) != not) {
            if not.is_none() {
                assert_eq!(pids.len(), 1, "one listener per store, shared by clones");
            }
            return pid;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "no listener on `{listen}` after {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether a backend still listens on `store`'s channel.
async fn listening(admin: &Client, channel: &str) -> bool {
    let row = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query = $2",
            &[&LISTENER, &format!("LISTEN \"{channel}\"")],
        )
        .await
        .expect("read pg_stat_activity");
    row.get::<_, i64>(0) > 0
}

fn ids(events: &[StoredEvent]) -> Vec<(Uuid, u64)> {
    events.iter().map(|e| (e.stream_id, e.version)).collect()
}

/// A subscription that would poll once an hour still gets each commit of another process
/// promptly: the `NOTIFY` woke it. When the store is dropped, its listener goes away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_wakes_a_caught_up_subscription() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server.store("wake").await;
    let writer = other_process(&store).await;
    let channel = store
        .notify_channel()
        .expect("notify is on by default")
        .to_owned();
    let mut subscription =
        Subscription::new(store.clone(), LogQuery::from_start(100)).poll_interval(NEVER);
    assert!(subscription.is_live());

    let first = append_new(&writer, 1).await;
    assert_eq!(next_within(&mut subscription).await.stream_id, first);
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        // Caught up: the next read finds nothing and the subscription waits for a wake-up.
        let started = Instant::now();
        let (event, id) = tokio::join!(next_within(&mut subscription), async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            append_new(&writer, 1).await
        });
        assert_eq!((event.stream_id, event.version), (id, 1));
        slowest = slowest.max(started.elapsed());
    }
    assert!(
        slowest < Duration::from_secs(5),
        "woken, not polled: the slowest event took {slowest:?}"
    );

    listener_pid(&server.admin, &store, None).await;
    drop(subscription);
    drop(store);
    let started = Instant::now();
    while listening(&server.admin, &channel).await {
        assert!(
            started.elapsed() < DEADLINE,
            "the listener outlived its store"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.finish().await;
}

/// The listener's connection is killed; events commit while it is down and after it is back.
/// A subscription that polls every 200 ms gets every one exactly once, in log order, and once
/// the listener has reconnected, wake-ups work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_listener_reconnects_and_nothing_is_skipped() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server.store("listener_killed").await;
    let writer = other_process(&store).await;
    let mut subscription = Subscription::new(store.clone(), LogQuery::from_start(7))
        .poll_interval(Duration::from_millis(200));
    let killed = listener_pid(&server.admin, &store, None).await;

    let row = server
        .admin
        .query_one("SELECT pg_terminate_backend($1)", &[&killed])
        .await
        .expect("terminate the listener");
    assert!(row.get::<_, bool>(0), "the listener was terminated");
    // While it is down (it waits at least 250 ms before reconnecting), and after.
    let mut written = Vec::new();
    for count in [1, 3, 2, 5] {
        written.push((append_new(&writer, count).await, count));
    }
    let back = listener_pid(&server.admin, &store, Some(killed)).await;
    assert_ne!(back, killed);
    for count in [4, 1, 2] {
        written.push((append_new(&writer, count).await, count));
    }
    let expected: Vec<(Uuid, u64)> = written
        .iter()
        .flat_map(|(id, count)| (1..=*count).map(move |version| (*id, version)))
        .collect();

    let mut received = Vec::new();
    while received.len() < expected.len() {
        received.push(next_within(&mut subscription).await);
    }
    assert_eq!(ids(&received), expected, "every event once, in order");
    assert_strictly_increasing(&received);
    let log = read_all(&store).await;
    assert_eq!(ids(&log), expected, "the log holds exactly these events");
    assert!(
        subscription
            .try_next_batch()
            .await
            .expect("read")
            .is_empty(),
        "nothing twice"
    );

    // Wake-ups again: a subscription that would poll once an hour.
    let mut woken = Subscription::new(store.clone(), LogQuery::after(subscription.position(), 100))
        .poll_interval(NEVER);
    assert!(woken.try_next_batch().await.expect("read").is_empty());
    let (event, id) = tokio::join!(next_within(&mut woken), append_new(&writer, 1));
    assert_eq!((event.stream_id, event.version), (id, 1));
    server.finish().await;
}

/// An appender of this store holds its transaction open (`append_in`) while others append and
/// commit: a subscription gets nothing past it until it commits, then its events first, then
/// the others'. The held commit's own `NOTIFY` wakes the subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_appender_holds_a_subscription_back_until_it_commits() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server.store("held_appender").await;
    let writer = other_process(&store).await;
    let mut subscription =
        Subscription::new(store.clone(), LogQuery::from_start(100)).poll_interval(NEVER);
    // Listening (and its wake-up after `LISTEN` sent) before anything else happens.
    listener_pid(&server.admin, &store, None).await;
    let before = append_new(&writer, 1).await;
    assert_eq!(next_within(&mut subscription).await.stream_id, before);

    let (mut caller, connection) = url()
        .parse::<tokio_postgres::Config>()
        .expect("the test URL parses")
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect the caller");
    tokio::spawn(connection);
    let mut tx = caller.transaction().await.expect("begin");
    let held = Uuid::now_v7();
    store
        .append_in(
            &mut tx,
            AppendBatch::single(held, 0, events_for(held, 1, 2)),
        )
        .await
        .expect("append_in");
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(append_new(&writer, 1).await);
    }
    // Those three are committed (acknowledged), and still nothing is readable past the held
    // transaction.
    for _ in 0..3 {
        assert!(
            subscription
                .try_next_batch()
                .await
                .expect("read")
                .is_empty(),
            "nothing is handed over past an open appender"
        );
    }

    let (sender, mut events) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        for _ in 0..5 {
            let event = next_within(&mut subscription).await;
            if sender.send(event).is_err() {
                return;
            }
        }
    });
    // Not needed for correctness: lets the subscription read (nothing) and wait, so that the
    // held transaction's own notification is what wakes it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(events.try_recv().is_err(), "still held back");
    tx.commit().await.expect("commit the held transaction");

    let mut received = Vec::new();
    while received.len() < 5 {
        let event = tokio::time::timeout(DEADLINE, events.recv())
            .await
            .expect("an event within the deadline")
            .expect("the reader is running");
        received.push(event);
    }
    reader.await.expect("the reader finished");
    let expected = [
        (held, 1),
        (held, 2),
        (others[0], 1),
        (others[1], 1),
        (others[2], 1),
    ];
    assert_eq!(
        ids(&received),
        expected,
        "the held events first, then the rest"
    );
    assert_strictly_increasing(&received);
    server.finish().await;
}

/// With notifications off, appends send no `NOTIFY` and no listener starts, and a subscription
/// still receives another process's events by polling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_notify_a_subscription_polls() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server
        .options("no_notify")
        .notify(false)
        .connect()
        .await
        .expect("connect");
    assert_eq!(store.notify_channel(), None);
    let writer = PostgresStore::options(url())
        .schema(store.schema())
        .notify(false)
        .connect()
        .await
        .expect("connect a second store");
    let mut subscription = Subscription::new(store.clone(), LogQuery::from_start(100))
        .poll_interval(Duration::from_millis(100));
    let mut expected = Vec::new();
    for count in [1, 2, 1] {
        let id = append_new(&writer, count).await;
        expected.extend((1..=count).map(|version| (id, version)));
    }
    let mut received = Vec::new();
    while received.len() < expected.len() {
        received.push(next_within(&mut subscription).await);
    }
    assert_eq!(ids(&received), expected);
    server.finish().await;
}
