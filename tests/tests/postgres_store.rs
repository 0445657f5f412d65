//! The PostgreSQL store against a real server.
//!
//! The server comes from `EVENTSOURCE_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). Every test works in a fresh, uniquely named schema
//! and drops it at the end. Without a reachable server the tests print why and pass, unless
//! `CI=true`, where they fail.
//!
//! The tests run in parallel with each other and with whatever else uses the server: the log's
//! horizon is held back only by appenders of the same store (schema), so a test holding a
//! transaction open on purpose holds back no other test.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use eventsource_core::persistence::codec::{KeyStore, MasterKey};
use eventsource_core::stores::postgres::tokio_postgres::{self, NoTls};
use eventsource_core::stores::postgres::{PostgresKeyStore, PostgresOptions, PostgresStore};
use eventsource_core::testing::conformance;
use eventsource_core::{
    AppendBatch, Error, EventStore, LogQuery, NewEvent, Position, Snapshot, StoredEvent,
    StreamAppend, StreamRange, Tracking, Uuid, legacy_event_id,
};
use futures_util::TryStreamExt;

mod support;
use support::postgres::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    // Every check and every model case gets a fresh schema; the names are kept to drop them.
    let schemas = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let created = schemas.clone();
    let report = conformance::try_run_with(
        move || {
            let schema = unique_schema("conf");
            created.lock().unwrap().push(schema.clone());
            let options = PostgresStore::options(url()).schema(schema);
            async move { options.connect().await.expect("connect a fresh store") }
        },
        // Each model case creates a schema: fewer cases than the in-process stores.
        conformance::ModelCases::new(32),
    )
    .await;
    server.schemas.extend(schemas.lock().unwrap().drain(..));
    println!("{report}");
    for (check, took) in &report.passed {
        println!("  ok {check} ({took:?})");
    }
    server.finish().await;
    report.assert_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_are_idempotent_and_race_free() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let options = server.options("migrate");
    // Four processes connecting to a new schema at once: the advisory lock serializes them.
    let connects: Vec<_> = (0..4)
        .map(|_| tokio::spawn(options.clone().connect()))
        .collect();
    let mut stores = Vec::new();
    for connect in connects {
        stores.push(connect.await.unwrap().expect("concurrent connect"));
    }
    let schema = stores[0].schema().to_owned();
    let rows = server
        .admin
        .query(
            &format!("SELECT version FROM \"{schema}\".eventsource_migrations"),
            &[],
        )
        .await
        .unwrap();
    let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        versions,
        (1..=eventsource_core::stores::postgres::SCHEMA_VERSION).collect::<Vec<_>>(),
        "each migration applied once, in order"
    );

    // Data written through one store is there for a store connecting later.
    let id = Uuid::now_v7();
    stores[0]
        .append(AppendBatch::single(id, 0, events_for(id, 1, 2)))
        .await
        .unwrap();
    let again = options.connect().await.expect("reconnect");
    assert_eq!(again.stream_version(id).await.unwrap(), 2);

    // The same schema with other table names is refused with a reason.
    let renamed = PostgresStore::options(url())
        .schema(schema.clone())
        .events_table("other_events")
        .connect()
        .await;
    assert!(
        matches!(&renamed, Err(Error::Config { message, .. }) if message.contains("other_events")),
        "{renamed:?}"
    );
    server.finish().await;
}

/// A schema written by the first release (version 1: no tickets table, no event ids, no
/// categories, no data keys) is migrated on connect: its events read as before, with no
/// category and a stable id derived from their stream and version, `append_in` works, and it
/// takes a key store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_schema_is_upgraded_on_connect() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let options = server.options("upgrade");
    let store = options.clone().connect().await.unwrap();
    let schema = store.schema().to_owned();
    let id = Uuid::now_v7();
    store
        .append(AppendBatch::single_in(
            "Counter",
            id,
            0,
            events_for(id, 1, 3),
        ))
        .await
        .unwrap();
    let before = read_all(&store).await;
    assert!(before.iter().all(|e| e.category == "Counter"), "{before:?}");
    // Back to what version 1 created.
    server
        .admin
        .batch_execute(&format!(
            "DROP TABLE \"{schema}\".events_tickets; \
             DROP TABLE \"{schema}\".events_data_keys; \
             DROP INDEX \"{schema}\".events_by_category; \
             ALTER TABLE \"{schema}\".events DROP COLUMN event_id, DROP COLUMN category; \
             DELETE FROM \"{schema}\".eventsource_migrations WHERE version > 1"
        ))
        .await
        .unwrap();
    drop(store);

    let upgraded = options.connect().await.expect("the upgrade");
    let versions: Vec<i32> = server
        .admin
        .query(
            &format!("SELECT version FROM \"{schema}\".eventsource_migrations ORDER BY version"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, vec![1, 2, 3, 4]);
    // Version 1 stored neither ids nor categories: the old events read as before, without a
    // category and with the id derived from their stream and version.
    let expected: Vec<StoredEvent> = before
        .iter()
        .map(|e| StoredEvent {
            id: legacy_event_id(e.stream_id, e.version),
            category: String::new(),
            ..e.clone()
        })
        .collect();
    let old = read_all(&upgraded).await;
    assert_eq!(old, expected, "the old events read as before");
    assert_eq!(read_all(&upgraded).await, old, "the same ids on every read");
    let ids: HashSet<Uuid> = old.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), old.len(), "each old event has its own id");
    let (mut raw, connection) = tokio_postgres::connect(&url(), NoTls).await.unwrap();
    tokio::spawn(connection);
    let mut tx = raw.transaction().await.unwrap();
    let new = events_for(id, 4, 1);
    let new_id = new[0].id;
    let last = upgraded
        .append_in(&mut tx, AppendBatch::single_in("Counter", id, 3, new))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let log = read_all(&upgraded).await;
    assert_eq!(log.len(), 4);
    assert_eq!(log[..3], old[..], "the old events are untouched");
    assert_eq!((log[3].version, log[3].position), (4, last));
    assert_eq!((log[3].id, log[3].category.as_str()), (new_id, "Counter"));
    // Version 4 added the data keys: the upgraded schema keeps keys.
    let keys = PostgresKeyStore::new(&upgraded, MasterKey::generate());
    let subject = Uuid::now_v7();
    let (key_id, key) = keys.current_key(subject).await.unwrap();
    assert_eq!(keys.keys(subject).await.unwrap().get(key_id), Some(&key));
    server.finish().await;
}

/// Positions come from transaction ids: events restored into a cluster whose transaction counter
/// is behind them would make new events sort first, so connecting refuses with a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_ahead_of_the_transaction_counter_are_refused_on_connect() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let options = server.options("restored");
    let store = options.clone().connect().await.unwrap();
    // As if restored from a cluster a billion transactions ahead.
    let schema = store.schema().to_owned();
    server
        .admin
        .execute(
            &format!(
                "INSERT INTO \"{schema}\".events (stream_id, version, name, schema_version, payload, position) \
                 VALUES ($1, 1, 'Restored', 1, '', (pg_current_xact_id()::text::int8 + 1000000000) << 20)"
            ),
            &[&Uuid::now_v7()],
        )
        .await
        .unwrap();
    drop(store);
    let again = options.connect().await;
    assert!(
        matches!(&again, Err(Error::Config { message, .. }) if message.contains("pg_resetwal")),
        "{again:?}"
    );
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_is_validated() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    for bad in [
        "",
        "1x",
        "a-b",
        "x\"; DROP SCHEMA public; --",
        "pg_x",
        &"s".repeat(64),
    ] {
        let outcome = PostgresStore::options(url()).schema(bad).connect().await;
        assert!(
            matches!(
                outcome,
                Err(Error::Config {
                    backend: "postgres",
                    ..
                })
            ),
            "schema {bad:?}: {outcome:?}"
        );
    }
    let same = server
        .options("cfg")
        .events_table("t")
        .tracking_table("t")
        .connect()
        .await;
    assert!(matches!(same, Err(Error::Config { .. })), "{same:?}");
    let zero = server.options("cfg").pool_size(0).connect().await;
    assert!(matches!(zero, Err(Error::Config { .. })), "{zero:?}");
    let url = PostgresStore::connect("postgres://[not a url").await;
    assert!(matches!(url, Err(Error::Config { .. })), "{url:?}");

    // Custom table names work end to end.
    let store = server
        .options("cfg")
        .events_table("ledger")
        .snapshots_table("ledger_snapshots")
        .tracking_table("ledger_tracking")
        .connect()
        .await
        .unwrap();
    let id = Uuid::now_v7();
    store
        .append(AppendBatch::single(id, 0, events_for(id, 1, 1)))
        .await
        .unwrap();
    let row = server
        .admin
        .query_one(
            &format!("SELECT count(*) FROM \"{}\".ledger", store.schema()),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_a_typed_backend_error() {
    let Some(server) = Server::start().await else {
        return;
    };
    // Port 1 on loopback: nothing listens there.
    let outcome = PostgresStore::options("postgres://postgres@127.0.0.1:1/test")
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await;
    match outcome {
        Err(Error::Backend {
            backend, context, ..
        }) => {
            assert_eq!(backend, "postgres");
            assert!(context.contains("connection"), "{context}");
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_timeout_is_a_typed_backend_error() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server
        .options("pool")
        .pool_size(1)
        .wait_timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let id = Uuid::now_v7();
    // Hold the pool's only connection.
    let held = store.pool().get().await.unwrap();
    let outcome = store
        .append(AppendBatch::single(id, 0, events_for(id, 1, 1)))
        .await;
    // Every connection stayed busy for the whole wait: a busy store, and nothing was written.
    match outcome {
        Err(
            ref error @ Error::Busy {
                backend: "postgres",
                ref context,
                ..
            },
        ) => {
            assert!(context.contains("pooled connection"), "{context}");
            assert!(
                error.is_retryable() && !error.may_have_happened(),
                "{error:?}"
            );
        }
        other => panic!("expected a pool timeout, got {other:?}"),
    }
    drop(held);
    // The connection is back: the store works again.
    store
        .append(AppendBatch::single(id, 0, events_for(id, 1, 1)))
        .await
        .unwrap();
    assert_eq!(store.stream_version(id).await.unwrap(), 1);
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_race_past_the_check_is_a_conflict_and_writes_nothing() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server.store("race").await;
    // Once through the one-statement append, once through the append that records a tracking
    // position (a separate code path).
    for tracking in [
        None,
        Some(Tracking {
            tracker: "racer".into(),
            position: Position::new(1),
        }),
    ] {
        let (contested, other) = (Uuid::now_v7(), Uuid::now_v7());
        let logged = read_all(&store).await.len();

        // A transaction of our own takes version 1 of the stream and stays open.
        let (mut raw, connection) = tokio_postgres::connect(&url(), NoTls).await.unwrap();
        tokio::spawn(connection);
        let mut tx = raw.transaction().await.unwrap();
        store
            .append_in(
                &mut tx,
                AppendBatch::single(contested, 0, events_for(contested, 1, 1)),
            )
            .await
            .unwrap();

        // A store append expecting version 0 passes the version check (the row is
        // uncommitted), then waits on the primary key until the open transaction commits.
        let racing = {
            let store = store.clone();
            let tracking = tracking.clone();
            tokio::spawn(async move {
                store
                    .append(AppendBatch {
                        streams: vec![
                            StreamAppend {
                                stream_id: other,
                                category: String::new(),
                                expected_version: 0,
                                events: events_for(other, 1, 2),
                            },
                            StreamAppend {
                                stream_id: contested,
                                category: String::new(),
                                expected_version: 0,
                                events: events_for(contested, 1, 1),
                            },
                        ],
                        tracking,
                    })
                    .await
            })
        };
        // Wait (bounded) until the racing append blocks on the open transaction's row lock.
        let mut waited = false;
        for _ in 0..200 {
            let row = server
                .admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap();
            if row.get::<_, i64>(0) > 0 {
                waited = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            waited,
            "the racing append never waited on the open transaction"
        );
        tx.commit().await.unwrap();
        let outcome = racing.await.unwrap();
        assert!(
            matches!(
                outcome,
                Err(Error::Conflict { stream, expected: 0, actual: 1 }) if stream == contested
            ),
            "{outcome:?}"
        );
        // Nothing of the losing batch was written: not the other stream's events, not the
        // tracking position.
        assert_eq!(store.stream_version(other).await.unwrap(), 0);
        assert_eq!(read_all(&store).await.len(), logged + 1);
        assert_eq!(
            store.tracking_position("racer").await.unwrap(),
            Position::START
        );
    }
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_in_shares_the_callers_transaction() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server.store("appendin").await;
    let id = Uuid::now_v7();
    let (mut raw, connection) = tokio_postgres::connect(&url(), NoTls).await.unwrap();
    tokio::spawn(connection);

    // Rolled back with the caller's transaction.
    let mut tx = raw.transaction().await.unwrap();
    store
        .append_in(&mut tx, AppendBatch::single(id, 0, events_for(id, 1, 2)))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(store.stream_version(id).await.unwrap(), 0);

    // Two appends in one transaction, a refused one between them: the caller's transaction
    // stays usable and the events commit together, in order.
    let mut tx = raw.transaction().await.unwrap();
    let first = store
        .append_in(&mut tx, AppendBatch::single(id, 0, events_for(id, 1, 2)))
        .await
        .unwrap();
    let refused = store
        .append_in(&mut tx, AppendBatch::single(id, 7, events_for(id, 8, 1)))
        .await;
    assert!(
        matches!(
            refused,
            Err(Error::Conflict {
                expected: 7,
                actual: 2,
                ..
            })
        ),
        "{refused:?}"
    );
    let second = store
        .append_in(&mut tx, AppendBatch::single(id, 2, events_for(id, 3, 1)))
        .await
        .unwrap();
    assert!(second > first);
    tx.commit().await.unwrap();
    let log = read_all(&store).await;
    let versions: Vec<u64> = log.iter().map(|e| e.version).collect();
    assert_eq!(versions, vec![1, 2, 3]);
    assert_eq!(log[2].position, second);
    assert_eq!(log[1].position, first);
    assert_strictly_increasing(&log);
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rows_are_typed_errors_not_panics() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server.store("corrupt").await;
    let id = Uuid::now_v7();
    store
        .append(AppendBatch::single(id, 0, events_for(id, 1, 2)))
        .await
        .unwrap();
    let schema = store.schema().to_owned();
    server
        .admin
        .execute(
            &format!(
                "UPDATE \"{schema}\".events SET metadata = '{{\"n\": 1}}' WHERE stream_id = $1 AND version = 2"
            ),
            &[&id],
        )
        .await
        .unwrap();
    let read: Result<Vec<_>, _> = store
        .read_stream(id, StreamRange::all())
        .try_collect()
        .await;
    assert!(
        matches!(&read, Err(Error::Corrupt { stream, version: 2, message }) if *stream == id && message.contains("metadata")),
        "{read:?}"
    );
    let log = store.read_log(LogQuery::from_start(10)).await;
    assert!(
        matches!(log, Err(Error::Corrupt { version: 2, .. })),
        "{log:?}"
    );

    // A gap in a stream (a row deleted behind the store's back) is reported, not skipped.
    server
        .admin
        .batch_execute(&format!(
            "UPDATE \"{schema}\".events SET metadata = '{{}}';
             DELETE FROM \"{schema}\".events WHERE version = 2;"
        ))
        .await
        .unwrap();
    server
        .admin
        .execute(
            &format!(
                "INSERT INTO \"{schema}\".events (stream_id, version, name, schema_version, payload, position) VALUES ($1, 3, 'X', 1, '', 1)"
            ),
            &[&id],
        )
        .await
        .unwrap();
    let read: Result<Vec<_>, _> = store
        .read_stream(id, StreamRange::all())
        .try_collect()
        .await;
    assert!(
        matches!(&read, Err(Error::Corrupt { version: 3, .. })),
        "{read:?}"
    );
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_and_tracking() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server.store("snap").await;
    let id = Uuid::now_v7();
    for version in [2_u64, 5, 9] {
        store
            .save_snapshot(Snapshot {
                stream_id: id,
                version,
                aggregate: "Account".into(),
                fingerprint: u64::MAX - version,
                state: format!("state@{version}").into_bytes(),
                recorded_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            })
            .await
            .unwrap();
    }
    let latest = store.load_snapshot(id, None).await.unwrap().unwrap();
    assert_eq!((latest.version, latest.fingerprint), (9, u64::MAX - 9));
    assert_eq!(
        store
            .load_snapshot(id, Some(8))
            .await
            .unwrap()
            .unwrap()
            .version,
        5
    );
    assert_eq!(
        store
            .load_snapshot(id, Some(5))
            .await
            .unwrap()
            .unwrap()
            .state,
        b"state@5"
    );
    assert!(store.load_snapshot(id, Some(1)).await.unwrap().is_none());
    assert!(
        store
            .load_snapshot(id, Some(u64::MAX))
            .await
            .unwrap()
            .is_some()
    );

    let batch = |position: u64| AppendBatch {
        streams: vec![StreamAppend {
            stream_id: Uuid::now_v7(),
            category: String::new(),
            expected_version: 0,
            events: events_for(id, 1, 1),
        }],
        tracking: Some(Tracking {
            tracker: "projector".into(),
            position: Position::new(position),
        }),
    };
    store.append(batch(10)).await.unwrap();
    let before = read_all(&store).await.len();
    let again = store.append(batch(10)).await;
    assert!(
        matches!(
            &again,
            Err(Error::TrackingConflict {
                position,
                recorded,
                ..
            }) if (position.get(), recorded.get()) == (10, 10)
        ),
        "{again:?}"
    );
    assert_eq!(read_all(&store).await.len(), before, "nothing written");
    assert_eq!(
        store.tracking_position("projector").await.unwrap(),
        Position::new(10)
    );
    let too_big = store.append(batch(u64::MAX)).await;
    assert!(matches!(too_big, Err(Error::Backend { .. })), "{too_big:?}");
    server.finish().await;
}

/// 8 writers append 10,000 events in small batches while a follower pages the log with small
/// pages: it sees every event exactly once, in strictly increasing position order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_sees_every_event_once_under_eight_writers() {
    const WRITERS: usize = 8;
    const TOTAL: usize = 10_000;
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server
        .options("follow")
        .pool_size(12)
        .connect()
        .await
        .unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    // The greatest position an append returned: the follower is done when it has passed it.
    let acknowledged = Arc::new(AtomicU64::new(0));

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let store = store.clone();
        let done = done.clone();
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            let streams: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
            let mut versions: HashMap<Uuid, u64> = streams.iter().map(|s| (*s, 0)).collect();
            let mut written = 0;
            let mut round = 0usize;
            let quota = TOTAL / WRITERS;
            while written < quota {
                // Batches of 1 to 5 events; every third one spans two streams.
                let size = (1 + (round + writer) % 5).min(quota - written);
                let first = streams[round % streams.len()];
                let second = streams[(round + 1) % streams.len()];
                let mut batch = AppendBatch::default();
                let split = if round.is_multiple_of(3) && size > 1 {
                    size / 2
                } else {
                    size
                };
                for (stream, count) in [(first, split), (second, size - split)] {
                    if count == 0 {
                        continue;
                    }
                    let expected = versions[&stream];
                    batch.streams.push(StreamAppend {
                        stream_id: stream,
                        category: String::new(),
                        expected_version: expected,
                        events: events_for(stream, expected + 1, count as u64),
                    });
                }
                let position = store.append(batch.clone()).await.expect("append");
                acknowledged.fetch_max(position.get(), Ordering::SeqCst);
                for append in &batch.streams {
                    *versions.get_mut(&append.stream_id).unwrap() += append.events.len() as u64;
                }
                written += size;
                round += 1;
            }
            done.fetch_add(1, Ordering::SeqCst);
            versions
        }));
    }

    // The follower pages as a real one does, and stops once it has passed the last acknowledged
    // append (or, failing the test, at a deadline far beyond any healthy run).
    let follower = {
        let store = store.clone();
        let done = done.clone();
        let acknowledged = acknowledged.clone();
        tokio::spawn(async move {
            let mut seen: Vec<StoredEvent> = Vec::with_capacity(TOTAL);
            let mut after = Position::START;
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let page = store
                    .read_log(LogQuery::after(after, 17))
                    .await
                    .expect("follower read");
                if let Some(last) = page.events.last() {
                    assert!(page.next >= last.position, "{page:?}");
                }
                assert!(page.next >= after, "the next read goes back: {page:?}");
                after = page.next;
                let empty = page.is_empty();
                seen.extend(page);
                if empty {
                    let target = acknowledged.load(Ordering::SeqCst);
                    if done.load(Ordering::SeqCst) == WRITERS && after.get() >= target {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "the follower is at position {after} after 120 s; the last acknowledged append is at {target}"
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            seen
        })
    };

    let mut expected: HashSet<(Uuid, u64)> = HashSet::new();
    for writer in writers {
        for (stream, version) in writer.await.unwrap() {
            expected.extend((1..=version).map(|v| (stream, v)));
        }
    }
    let seen = follower.await.unwrap();
    assert_eq!(expected.len(), TOTAL);
    assert_eq!(seen.len(), TOTAL, "the follower saw every event once");
    assert_strictly_increasing(&seen);
    let pairs: HashSet<(Uuid, u64)> = seen.iter().map(|e| (e.stream_id, e.version)).collect();
    assert_eq!(pairs.len(), TOTAL, "no event seen twice");
    assert_eq!(
        pairs, expected,
        "the follower saw exactly the appended events"
    );
    // Checksum of the payloads: each names its own stream and version.
    for event in &seen {
        assert_eq!(
            event.payload,
            format!("{}:{}", event.stream_id, event.version).into_bytes()
        );
    }
    let full = read_all(&store).await;
    assert_eq!(
        full, seen,
        "the final full read matches what the follower saw"
    );
    assert_eq!(
        store.last_position().await.unwrap(),
        full.last().unwrap().position
    );
    server.finish().await;
}

/// A writer's transaction is held open while others commit: the follower does not pass it, and
/// sees its events (then the others') once it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_waits_for_a_transaction_held_open() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server.store("held").await;
    let before = Uuid::now_v7();
    store
        .append(AppendBatch::single(before, 0, events_for(before, 1, 2)))
        .await
        .unwrap();
    let log = read_all(&store).await;
    assert_eq!(log.len(), 2);
    let mut after = log[1].position;

    // The held writer: a raw client, BEGIN, the store's own append SQL, kept open.
    let (mut raw, connection) = tokio_postgres::connect(&url(), NoTls).await.unwrap();
    tokio::spawn(connection);
    let mut held_tx = raw.transaction().await.unwrap();
    let held = Uuid::now_v7();
    let held_last = store
        .append_in(
            &mut held_tx,
            AppendBatch::single(held, 0, events_for(held, 1, 3)),
        )
        .await
        .unwrap();

    // Others commit after it.
    let mut later = Vec::new();
    for _ in 0..5 {
        let id = Uuid::now_v7();
        let position = store
            .append(AppendBatch::single(id, 0, events_for(id, 1, 2)))
            .await
            .unwrap();
        assert!(
            position > held_last,
            "later transactions get later positions"
        );
        later.push(id);
    }
    // Their events are committed (stream reads see them), but the log does not pass the held
    // transaction.
    assert_eq!(store.stream_version(later[4]).await.unwrap(), 2);
    for _ in 0..3 {
        let page = store.read_log(LogQuery::after(after, 100)).await.unwrap();
        assert!(
            page.is_empty(),
            "the follower passed an open transaction: {page:?}"
        );
        assert!(
            page.next < held_last,
            "the next read starts past an open transaction: {page:?}"
        );
        after = page.next;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.last_position().await.unwrap(), log[1].position);

    held_tx.commit().await.unwrap();
    let mut seen = Vec::new();
    loop {
        let page = store.read_log(LogQuery::after(after, 4)).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.next;
        seen.extend(page);
    }
    assert_eq!(seen.len(), 3 + 5 * 2, "every event once");
    assert_strictly_increasing(&seen);
    let streams: Vec<Uuid> = seen.iter().map(|e| e.stream_id).collect();
    assert_eq!(
        streams[..3],
        [held; 3],
        "the held transaction's events come first"
    );
    assert_eq!(seen[2].position, held_last);
    let mut expected_later = Vec::new();
    for id in &later {
        expected_later.extend([*id, *id]);
    }
    assert_eq!(streams[3..], expected_later[..]);
    server.finish().await;
}

/// Connections are killed with `pg_terminate_backend` while writers append: the failures are
/// typed errors, the pool recovers, and every append that returned `Ok` is in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_connections_surface_as_errors_and_the_pool_recovers() {
    const WRITERS: usize = 6;
    const APPENDS: usize = 120;
    let Some(mut server) = Server::start().await else {
        return;
    };
    let app_name = format!("es_kill_{}", std::process::id());
    let mut config: tokio_postgres::Config = url().parse().unwrap();
    config.application_name(&app_name);
    let schema = unique_schema("kill");
    server.schemas.push(schema.clone());
    let store = PostgresOptions::from_config(config)
        .schema(schema)
        .pool_size(WRITERS)
        .connect()
        .await
        .unwrap();
    let finished = Arc::new(AtomicUsize::new(0));

    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let store = store.clone();
        let finished = finished.clone();
        writers.push(tokio::spawn(async move {
            let stream = Uuid::now_v7();
            let mut version = 0;
            let mut acknowledged: Vec<(u64, Vec<u8>)> = Vec::new();
            let mut errors = Vec::new();
            for attempt in 0..APPENDS {
                let events: Vec<NewEvent> = (0..3)
                    .map(|i| event("Counted", format!("{stream}:{attempt}:{i}")))
                    .collect();
                let payloads: Vec<Vec<u8>> = events.iter().map(|e| e.payload.clone()).collect();
                match store
                    .append(AppendBatch::single(stream, version, events))
                    .await
                {
                    Ok(_) => {
                        for payload in payloads {
                            version += 1;
                            acknowledged.push((version, payload));
                        }
                    }
                    Err(error) => {
                        let (expected, in_doubt) = (version, error.may_have_happened());
                        let failed = errors.len();
                        errors.push(error);
                        // The outcome may be unknown (a failed COMMIT): resynchronise.
                        loop {
                            match store.stream_version(stream).await {
                                Ok(current) => {
                                    version = current;
                                    break;
                                }
                                Err(error) => errors.push(error),
                            }
                        }
                        // Only an error whose outcome is unknown may have written anything.
                        assert!(
                            in_doubt || version == expected,
                            "stream {stream} moved from {expected} to {version} after an \
                             append that failed with {:?}",
                            errors[failed]
                        );
                    }
                }
            }
            finished.fetch_add(1, Ordering::SeqCst);
            (stream, version, acknowledged, errors)
        }));
    }

    // Kill one of the store's connections at a time, busy or idle, every 20 ms.
    let mut killed = 0;
    while finished.load(Ordering::SeqCst) < WRITERS {
        let row = server
            .admin
            .query_one(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM ( \
                     SELECT pid FROM pg_stat_activity \
                     WHERE application_name = $1 AND pid <> pg_backend_pid() \
                     ORDER BY random() LIMIT 1) AS victim",
                &[&app_name],
            )
            .await
            .unwrap();
        killed += row.get::<_, i64>(0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut all_errors = 0;
    let mut in_doubt = 0;
    let mut checked = 0;
    let mut acknowledged_payloads = Vec::new();
    let mut stored_total = 0;
    for writer in writers {
        let (stream, version, acknowledged, errors) = writer.await.unwrap();
        for error in &errors {
            assert!(
                matches!(
                    error,
                    Error::Backend {
                        backend: "postgres",
                        ..
                    } | Error::OutcomeUnknown {
                        backend: "postgres",
                        ..
                    } | Error::Busy {
                        backend: "postgres",
                        ..
                    } | Error::Conflict { .. }
                ),
                "an untyped failure: {error:?}"
            );
        }
        all_errors += errors.len();
        in_doubt += errors.iter().filter(|e| e.may_have_happened()).count();
        // The pool recovered: a fresh append succeeds.
        let next = store
            .append(AppendBatch::single(
                stream,
                version,
                events_for(stream, version + 1, 1),
            ))
            .await
            .expect("append after the kills");
        assert!(next > Position::START);
        // Every acknowledged event is in its stream, at its version, byte for byte.
        let stored: Vec<StoredEvent> = store
            .read_stream(stream, StreamRange::all())
            .try_collect()
            .await
            .unwrap();
        let by_version: HashMap<u64, &StoredEvent> =
            stored.iter().map(|e| (e.version, e)).collect();
        for (version, payload) in &acknowledged {
            let event = by_version
                .get(version)
                .unwrap_or_else(|| panic!("acknowledged version {version} of {stream} is lost"));
            assert_eq!(&event.payload, payload);
        }
        checked += acknowledged.len();
        stored_total += stored.len();
        acknowledged_payloads.extend(acknowledged.into_iter().map(|(_, payload)| payload));
    }
    // …and in the log.
    let log = read_all(&store).await;
    assert_strictly_increasing(&log);
    assert_eq!(
        log.len(),
        stored_total,
        "the log holds every stored event once"
    );
    let logged: HashSet<&[u8]> = log.iter().map(|e| e.payload.as_slice()).collect();
    for payload in &acknowledged_payloads {
        assert!(
            logged.contains(payload.as_slice()),
            "acknowledged event {} is not in the log",
            String::from_utf8_lossy(payload)
        );
    }
    println!(
        "killed {killed} connections; {all_errors} typed errors surfaced ({in_doubt} with an unknown outcome); {checked} acknowledged events all stored"
    );
    assert!(killed > 0, "no connection was killed");
    assert!(all_errors > 0, "killing connections surfaced no error");
    assert!(
        checked > WRITERS * APPENDS,
        "only {checked} events were acknowledged: the pool did not keep up"
    );
    server.finish().await;
}

/// Append throughput, 10-event batches through the store vs the same rows written as one raw
/// multi-row INSERT per transaction (BEGIN, INSERT, COMMIT) into a table of the same shape and
/// indexes, with positions from a sequence. Each is measured twice, interleaved. Run with
/// `cargo test --release -p eventsource-tests --test postgres_store -- --ignored --nocapture append_throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement, not a test: run it in release mode"]
async fn append_throughput() {
    const BATCHES: usize = 2_000;
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server
        .options("bench")
        .pool_size(8)
        .connect()
        .await
        .unwrap();
    let schema = store.schema().to_owned();
    server
        .admin
        .batch_execute(&format!(
            "CREATE TABLE \"{schema}\".raw (LIKE \"{schema}\".events INCLUDING ALL);
             CREATE SEQUENCE \"{schema}\".raw_position;
             ALTER TABLE \"{schema}\".raw ALTER COLUMN position
                 SET DEFAULT nextval('\"{schema}\".raw_position');"
        ))
        .await
        .unwrap();

    for writers in [1usize, 4] {
        for round in 1..=2 {
            let store_rate = store_throughput(&store, writers, BATCHES / writers).await;
            let raw_rate = raw_throughput(&schema, writers, BATCHES / writers).await;
            println!(
                "{writers} writer(s), {BENCH_BATCH}-event batches, round {round}: store {store_rate:.0} events/s, raw batched INSERT {raw_rate:.0} events/s ({:.0}%)",
                100.0 * store_rate / raw_rate
            );
        }
    }
    assert!(!read_all(&store).await.is_empty());
    server.finish().await;
}

const BENCH_BATCH: usize = 10;

async fn store_throughput(store: &PostgresStore, writers: usize, per_writer: usize) -> f64 {
    let payload = vec![b'x'; 200];
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let store = store.clone();
            let payload = payload.clone();
            tokio::spawn(async move {
                let stream = Uuid::now_v7();
                for i in 0..per_writer {
                    let events = (0..BENCH_BATCH)
                        .map(|_| NewEvent {
                            id: Uuid::now_v7(),
                            name: "Benchmarked".into(),
                            schema_version: 1,
                            payload: payload.clone(),
                            metadata: Default::default(),
                        })
                        .collect();
                    store
                        .append(AppendBatch::single(
                            stream,
                            (i * BENCH_BATCH) as u64,
                            events,
                        ))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (per_writer * writers * BENCH_BATCH) as f64 / started.elapsed().as_secs_f64()
}

async fn raw_throughput(schema: &str, writers: usize, per_writer: usize) -> f64 {
    let payload = vec![b'x'; 200];
    let mut clients = Vec::new();
    for _ in 0..writers {
        let (client, connection) = tokio_postgres::connect(&url(), NoTls).await.unwrap();
        tokio::spawn(connection);
        let values: Vec<String> = (0..BENCH_BATCH)
            .map(|i| format!("($1::uuid, $2::int8 + {i}, 'Benchmarked', 1, $3::bytea, '{{}}')"))
            .collect();
        let insert = client
            .prepare(&format!(
                "INSERT INTO \"{schema}\".raw (stream_id, version, name, schema_version, payload, metadata) VALUES {}",
                values.join(", ")
            ))
            .await
            .unwrap();
        clients.push((client, insert));
    }
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|(mut client, insert)| {
            let payload = payload.clone();
            tokio::spawn(async move {
                let stream = Uuid::now_v7();
                for i in 0..per_writer {
                    let tx = client.transaction().await.unwrap();
                    let first = (i * BENCH_BATCH) as i64 + 1;
                    tx.execute(&insert, &[&stream, &first, &payload])
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (per_writer * writers * BENCH_BATCH) as f64 / started.elapsed().as_secs_f64()
}
