//! The PostgreSQL log's horizon: only appenders of the same store hold a follower back.
//!
//! Each test opens transactions on purpose (in another database, in another schema, in another
//! store, and appenders of its own store) and checks what a follower sees while they are open.
//! Other programs may hold transactions of their own on the server at the same time
//! (`../shared/tools/with-busy-postgres`): nothing here depends on the server being idle.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsource_core::stores::postgres::tokio_postgres::{self, Client, NoTls};
use eventsource_core::stores::postgres::{OpenAppender, PostgresStore};
use eventsource_core::{AppendBatch, EventStore, LogQuery, Position, Uuid};
use tracing_subscriber::layer::{Context, SubscriberExt};

mod support;
use support::postgres::*;

/// A raw connection to the test server's database `database` (the test database if `None`),
/// with `application_name` set.
async fn connect(database: Option<&str>, application_name: &str) -> Client {
    let mut config: tokio_postgres::Config = url().parse().expect("the test URL parses");
    if let Some(database) = database {
        config.dbname(database);
    }
    config.application_name(application_name);
    let (client, connection) = config.connect(NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
}

/// Appends one event to a new stream and returns the position the store acknowledged.
async fn append_one(store: &PostgresStore) -> (Uuid, Position) {
    let id = Uuid::now_v7();
    let position = store
        .append(AppendBatch::single(id, 0, events_for(id, 1, 1)))
        .await
        .expect("append");
    (id, position)
}

/// Transactions that hold a transaction id but never append to this store (in another
/// database, in another schema of the same database, and an appender of another store) do not
/// hold its log back: an acknowledged append is readable at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrelated_transactions_do_not_hold_the_log_back() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server.store("unrelated").await;
    let other_store = server.store("unrelated_other").await;
    let scratch = unique_schema("unrelated_scratch");
    server.schemas.push(scratch.clone());
    server
        .admin
        .batch_execute(&format!(
            "CREATE SCHEMA \"{scratch}\"; CREATE TABLE \"{scratch}\".report (n int)"
        ))
        .await
        .unwrap();

    // In database `postgres`: a transaction that took an id and stays open.
    let mut elsewhere = connect(Some("postgres"), "es_test_other_database").await;
    let elsewhere_tx = elsewhere.transaction().await.unwrap();
    elsewhere_tx
        .query_one("SELECT pg_current_xact_id()", &[])
        .await
        .unwrap();
    // In another schema of this database: a write left uncommitted.
    let mut reporter = connect(None, "es_test_other_schema").await;
    let report_tx = reporter.transaction().await.unwrap();
    report_tx
        .execute(&format!("INSERT INTO \"{scratch}\".report VALUES (1)"), &[])
        .await
        .unwrap();
    // An appender of another store, held open.
    let mut other_appender = connect(None, "es_test_other_store").await;
    let mut other_tx = other_appender.transaction().await.unwrap();
    let other_id = Uuid::now_v7();
    other_store
        .append_in(
            &mut other_tx,
            AppendBatch::single(other_id, 0, events_for(other_id, 1, 2)),
        )
        .await
        .unwrap();

    for round in 0..3 {
        let (id, position) = append_one(&store).await;
        let page = store.read_log(LogQuery::from_start(100)).await.unwrap();
        assert_eq!(
            page.events.last().map(|e| (e.stream_id, e.position)),
            Some((id, position)),
            "round {round}: the acknowledged append is readable at once"
        );
        assert_eq!(page.len(), round + 1);
        assert_eq!(store.last_position().await.unwrap(), position);
    }
    let status = store.horizon().await.unwrap();
    assert_eq!(status.oldest_appender, None, "{status:?}");
    assert_eq!(status.events_waiting, 0);
    assert_eq!(status.lag(), Duration::ZERO);

    // The other store's own follower does wait for its appender.
    assert!(
        other_store
            .read_log(LogQuery::from_start(10))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        other_store.horizon().await.unwrap().events_waiting,
        0,
        "its appender has not committed"
    );
    other_tx.commit().await.unwrap();
    assert_eq!(
        other_store
            .read_log(LogQuery::from_start(10))
            .await
            .unwrap()
            .len(),
        2
    );
    elsewhere_tx.rollback().await.unwrap();
    report_tx.rollback().await.unwrap();
    server.finish().await;
}

/// An appender of this store left open holds its log back (and only that): a follower does not
/// pass it, the health check names it, and once it commits the follower sees its events first,
/// then the later ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_appender_holds_the_log_back_and_is_named() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server.store("open_appender").await;
    let (_, before) = append_one(&store).await;

    let name = format!("es_test_held_{}", std::process::id());
    let mut held = connect(None, &name).await;
    let held_pid: i32 = held
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let mut held_tx = held.transaction().await.unwrap();
    let held_id = Uuid::now_v7();
    let held_last = store
        .append_in(
            &mut held_tx,
            AppendBatch::single(held_id, 0, events_for(held_id, 1, 3)),
        )
        .await
        .unwrap();
    let mut later = Vec::new();
    for _ in 0..4 {
        later.push(append_one(&store).await);
    }
    assert!(later.iter().all(|(_, position)| *position > held_last));

    let waiting = store.read_log(LogQuery::after(before, 100)).await.unwrap();
    assert!(waiting.is_empty(), "the follower passed an open appender");
    assert!(
        waiting.next < held_last,
        "the next read starts past an open appender: {} >= {held_last}",
        waiting.next
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let status = store.horizon().await.unwrap();
    let Some(OpenAppender {
        pid,
        application_name,
        transaction_age,
        state,
        ..
    }) = status.oldest_appender.clone()
    else {
        panic!("the open appender is not reported: {status:?}");
    };
    assert_eq!(pid, Some(held_pid));
    assert_eq!(application_name.as_deref(), Some(name.as_str()));
    assert_eq!(state.as_deref(), Some("idle in transaction"));
    assert!(transaction_age.is_some_and(|age| age >= Duration::from_millis(20)));
    assert!(status.lag() >= Duration::from_millis(20));
    assert_eq!(status.events_waiting, 4, "{status:?}");
    assert!(
        status.readable_below <= held_last && status.readable_below > before,
        "{status:?}"
    );

    held_tx.commit().await.unwrap();
    // A follower reading on from where its empty page said sees everything.
    let page = store
        .read_log(LogQuery::after(waiting.next, 100))
        .await
        .unwrap();
    let streams: Vec<Uuid> = page.events.iter().map(|e| e.stream_id).collect();
    let mut expected = vec![held_id; 3];
    expected.extend(later.iter().map(|(id, _)| *id));
    assert_eq!(
        streams, expected,
        "the held events first, then the later ones"
    );
    let status = store.horizon().await.unwrap();
    assert_eq!((status.oldest_appender, status.events_waiting), (None, 0));
    server.finish().await;
}

/// A caller's transaction that wrote to its own tables (and so took its transaction id) before
/// `append_in` is never skipped, though appends that started later committed first and a
/// follower passed them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_in_after_the_callers_own_writes_is_never_skipped() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server.store("callers_writes").await;
    let schema = store.schema().to_owned();
    server
        .admin
        .batch_execute(&format!(
            "CREATE TABLE \"{schema}\".read_model (n int PRIMARY KEY)"
        ))
        .await
        .unwrap();

    let mut caller = connect(None, "es_test_caller").await;
    let mut tx = caller.transaction().await.unwrap();
    tx.execute(
        &format!("INSERT INTO \"{schema}\".read_model VALUES (1)"),
        &[],
    )
    .await
    .unwrap();
    let callers_xid: i64 = tx
        .query_one("SELECT pg_current_xact_id()::text::int8", &[])
        .await
        .unwrap()
        .get(0);

    // Later transactions commit; the follower reads them and moves on.
    let (_, first) = append_one(&store).await;
    assert!(first.get() >> 20 > u64::try_from(callers_xid).unwrap());
    let page = store.read_log(LogQuery::from_start(100)).await.unwrap();
    assert_eq!(page.len(), 1, "the caller has not announced itself yet");
    assert_eq!(page.events[0].position, first);
    assert!(page.next >= first);
    let mut after = page.next;

    let id = Uuid::now_v7();
    let last = store
        .append_in(&mut tx, AppendBatch::single(id, 0, events_for(id, 1, 2)))
        .await
        .unwrap();
    assert!(last > after, "numbered after everything a follower passed");
    let (_, second) = append_one(&store).await;
    let waiting = store.read_log(LogQuery::after(after, 100)).await.unwrap();
    assert!(waiting.is_empty());
    assert!(
        waiting.next < last,
        "the next read starts past the caller's events: {} >= {last}",
        waiting.next
    );
    after = waiting.next;
    tx.commit().await.unwrap();

    let page = store.read_log(LogQuery::after(after, 100)).await.unwrap();
    let seen: Vec<(Uuid, u64)> = page
        .events
        .iter()
        .map(|e| (e.stream_id, e.version))
        .collect();
    assert_eq!(seen[..2], [(id, 1), (id, 2)]);
    assert_eq!(page.len(), 3);
    assert_eq!(page.events[1].position, last);
    assert_eq!(page.events[2].position, second);
    assert!(page.next >= second);
    after = page.next;
    assert!(
        store
            .read_log(LogQuery::after(after, 100))
            .await
            .unwrap()
            .is_empty()
    );
    server.finish().await;
}

/// Captures the messages and fields of `WARN` events.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={value:?} ", field.name()));
            }
        }
        if *event.metadata().level() == tracing::Level::WARN {
            let mut fields = Fields(String::new());
            event.record(&mut fields);
            self.0.lock().unwrap().push(fields.0);
        }
    }
}

/// A follower waiting on an appender open longer than `appender_warning` logs a warning that
/// names it, at most once per threshold.
#[tokio::test(flavor = "current_thread")]
async fn a_long_open_appender_is_named_in_a_warning() {
    let warnings = Warnings::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(warnings.clone()));
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server
        .options("warning")
        .appender_warning(Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    let name = format!("es_test_forgotten_{}", std::process::id());
    let mut held = connect(None, &name).await;
    let mut held_tx = held.transaction().await.unwrap();
    let id = Uuid::now_v7();
    store
        .append_in(
            &mut held_tx,
            AppendBatch::single(id, 0, events_for(id, 1, 1)),
        )
        .await
        .unwrap();

    // Young: a check finds nothing to report.
    store.read_log(LogQuery::from_start(10)).await.unwrap();
    assert!(warnings.0.lock().unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(350)).await;
    // Older than the threshold, and a check is due again.
    for _ in 0..3 {
        store.read_log(LogQuery::from_start(10)).await.unwrap();
    }
    let seen = warnings.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "one warning per threshold: {seen:?}");
    assert!(seen[0].contains(&name), "{seen:?}");
    assert!(seen[0].contains("holds the event log back"), "{seen:?}");
    held_tx.rollback().await.unwrap();
    server.finish().await;
}
