//! The SQLite store: the conformance suite on a file and in memory, plus what only SQLite has
//! (migrations, table names, corrupt files, locks, malformed rows).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use eventsource_core::testing::conformance;
use eventsource_core::{
    AppendBatch, Error, EventStore, LogQuery, NewEvent, Position, SqliteOptions, SqliteStore,
    StreamRange, Synchronous, Uuid,
};
use futures_util::{StreamExt, TryStreamExt};

fn event(name: &str, payload: &str) -> NewEvent {
    NewEvent::new(name, 1, payload.as_bytes())
        .with_metadata([("user".to_owned(), "ada".to_owned())].into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn file_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let n = AtomicUsize::new(0);
    conformance::run(|| {
        let path = dir
            .path()
            .join(format!("check-{}.db", n.fetch_add(1, Ordering::SeqCst)));
        async move { SqliteStore::open(path).await.unwrap() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn file_store_with_small_read_chunks_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let n = AtomicUsize::new(0);
    conformance::run(|| {
        let path = dir
            .path()
            .join(format!("check-{}.db", n.fetch_add(1, Ordering::SeqCst)));
        async move {
            SqliteOptions::file(path)
                .synchronous(Synchronous::Normal)
                .read_chunk(7)
                .max_idle_readers(1)
                .events_table("bank_events")
                .snapshots_table("bank_snapshots")
                .tracking_table("bank_tracking")
                .open()
                .await
                .unwrap()
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory_store_passes_the_conformance_suite() {
    conformance::run(|| async { SqliteStore::in_memory().await.unwrap() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_the_data_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank.db");
    let stream = Uuid::now_v7();
    {
        let store = SqliteStore::open(&path).await.unwrap();
        store
            .append(AppendBatch::single(stream, 0, vec![event("Opened", "{}")]))
            .await
            .unwrap();
    }
    for _ in 0..3 {
        let store = SqliteStore::open(&path).await.unwrap();
        let events: Vec<_> = store
            .read_stream(stream, StreamRange::all())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].metadata.get("user").map(String::as_str),
            Some("ada")
        );
    }
    let store = SqliteStore::open(&path).await.unwrap();
    store
        .append(AppendBatch::single(
            stream,
            1,
            vec![event("Deposited", "{}")],
        ))
        .await
        .unwrap();
    drop(store);

    // One row per migration, however often the file was opened.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let migrations: Vec<(i64, String)> = conn
        .prepare("SELECT version, description FROM events_migrations ORDER BY version")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(migrations.len() as i64, SqliteStore::schema_version());
    assert_eq!(migrations[0].0, 1);
    // The rows are readable with plain SQL.
    let (id, version, metadata, payload): (String, i64, String, String) = conn
        .query_row(
            "SELECT stream_id, version, metadata, CAST(payload AS TEXT) FROM events ORDER BY position DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!((id, version), (stream.to_string(), 2));
    assert_eq!(
        (metadata.as_str(), payload.as_str()),
        (r#"{"user":"ada"}"#, "{}")
    );
    let journal: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    drop(SqliteStore::open(&path).await.unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO events_migrations (version, description, applied_at) VALUES (99, 'from the future', 0)",
        [],
    )
    .unwrap();
    drop(conn);
    let error = SqliteStore::open(&path).await.unwrap_err();
    assert!(matches!(error, Error::Config { .. }), "{error:?}");
    assert!(error.to_string().contains("schema version 99"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_table_names_are_refused() {
    let cases = [
        SqliteOptions::in_memory().events_table("events; DROP TABLE users"),
        SqliteOptions::in_memory().events_table(""),
        SqliteOptions::in_memory().events_table("1events"),
        SqliteOptions::in_memory().snapshots_table("snap-shots"),
        SqliteOptions::in_memory().tracking_table("sqlite_master"),
        SqliteOptions::in_memory().tracking_table("x".repeat(64)),
        SqliteOptions::in_memory().tracking_table("Ünïcode"),
        SqliteOptions::in_memory().snapshots_table("EVENTS"),
    ];
    for options in cases {
        let described = format!("{options:?}");
        match options.open().await {
            Err(Error::Config {
                backend: "sqlite",
                message,
            }) => {
                assert!(message.contains("table"), "{message}");
            }
            other => panic!("{described}: expected Error::Config, got {other:?}"),
        }
    }
    let ok = SqliteOptions::in_memory()
        .events_table("_Bank_Events_2")
        .open()
        .await;
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_open_stores() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("url.db");
    let store = SqliteStore::connect(&format!(
        "sqlite://{}?synchronous=normal&busy_timeout_ms=250",
        path.display()
    ))
    .await
    .unwrap();
    assert_eq!(store.path(), Some(path.as_path()));
    assert_eq!(store.options().synchronous_mode(), Synchronous::Normal);
    assert!(path.exists());
    let memory = SqliteStore::connect("sqlite::memory:").await.unwrap();
    assert_eq!(memory.path(), None);
    for bad in [
        "postgres://localhost/db",
        "sqlite://",
        "sqlite://x.db?synchronous=sometimes",
        "sqlite://x.db?cache=shared",
    ] {
        let error = SqliteStore::connect(bad).await.unwrap_err();
        assert!(matches!(error, Error::Config { .. }), "{bad}: {error:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_file_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    std::fs::write(
        &path,
        b"this is not an SQLite database, just some bytes".repeat(200),
    )
    .unwrap();
    let error = SqliteStore::open(&path).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Backend {
                backend: "sqlite",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("not an SQLite database"),
        "{error}"
    );
    assert!(error.to_string().contains("garbage.db"), "{error}");

    // A real database whose pages were overwritten after it was opened.
    let path = dir.path().join("damaged.db");
    let stream = Uuid::now_v7();
    {
        let store = SqliteStore::open(&path).await.unwrap();
        for v in 0..200 {
            store
                .append(AppendBatch::single(
                    stream,
                    v,
                    vec![event("Filled", &"x".repeat(500))],
                ))
                .await
                .unwrap();
        }
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    for b in &mut bytes[4096..len] {
        *b = 0xA5;
    }
    std::fs::write(&path, bytes).unwrap();
    // Opening or reading fails with a typed error; nothing panics.
    match SqliteStore::open(&path).await {
        Err(error) => assert!(matches!(error, Error::Backend { .. }), "{error:?}"),
        Ok(store) => {
            let read: Result<Vec<_>, _> = store
                .read_stream(stream, StreamRange::all())
                .try_collect()
                .await;
            let error = read.unwrap_err();
            assert!(matches!(error, Error::Backend { .. }), "{error:?}");
            assert!(store.read_log(LogQuery::from_start(1000)).await.is_err());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_locked_past_the_busy_timeout_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let store = SqliteOptions::file(&path)
        .busy_timeout(Duration::from_millis(100))
        .open()
        .await
        .unwrap();
    let stream = Uuid::now_v7();
    store
        .append(AppendBatch::single(stream, 0, vec![event("Opened", "{}")]))
        .await
        .unwrap();

    // Another process (here: another connection) holds the write lock.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let error = store
        .append(AppendBatch::single(
            stream,
            1,
            vec![event("Deposited", "{}")],
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Busy {
                backend: "sqlite",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("busy timeout"), "{error}");
    assert!(
        error.is_retryable() && !error.may_have_happened(),
        "{error:?}"
    );
    other.execute_batch("ROLLBACK").unwrap();

    // Once the lock is gone the store works again, and the failed append wrote nothing.
    assert_eq!(store.stream_version(stream).await.unwrap(), 1);
    store
        .append(AppendBatch::single(
            stream,
            1,
            vec![event("Deposited", "{}")],
        ))
        .await
        .unwrap();
    assert_eq!(store.stream_version(stream).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_rows_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let stream = Uuid::now_v7();
    store
        .append(AppendBatch::single(stream, 0, vec![event("Opened", "{}")]))
        .await
        .unwrap();

    let conn = rusqlite::Connection::open(&path).unwrap();
    // A payload of garbage bytes is returned as stored: decoding it is the repository's job.
    conn.execute(
        "INSERT INTO events (stream_id, version, name, schema_version, payload, metadata, recorded_at)
         VALUES (?1, 2, 'Deposited', 1, X'FFFE00C3', NULL, 0)",
        [stream.to_string()],
    )
    .unwrap();
    let events: Vec<_> = store
        .read_stream(stream, StreamRange::all())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(events[1].payload, vec![0xFF, 0xFE, 0x00, 0xC3]);

    // Metadata that isn't JSON: an error naming the stream and version.
    conn.execute(
        "INSERT INTO events (stream_id, version, name, schema_version, payload, metadata, recorded_at)
         VALUES (?1, 3, 'Deposited', 1, X'00', 'not json', 0)",
        [stream.to_string()],
    )
    .unwrap();
    let mut read = store.read_stream(stream, StreamRange::all());
    let mut results = Vec::new();
    while let Some(item) = read.next().await {
        results.push(item);
    }
    assert_eq!(
        results.len(),
        3,
        "two good events, then the error, then the end"
    );
    let error = results.pop().unwrap().unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, Error::Backend { .. }), "{error:?}");
    assert!(
        text.contains(&stream.to_string()) && text.contains("version 3"),
        "{text}"
    );
    assert!(text.contains("metadata"), "{text}");

    // A stream id that isn't a UUID, a negative version, a NULL name: typed errors from the log.
    conn.execute(
        "INSERT INTO events (stream_id, version, name, schema_version, payload, metadata, recorded_at)
         VALUES ('not-a-uuid', 1, 'Opened', 1, X'00', NULL, 0)",
        [],
    )
    .unwrap();
    let error = store
        .read_log(LogQuery::after(Position::new(3), 10))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("not-a-uuid"), "{error}");
    assert!(error.to_string().contains("position 4"), "{error}");

    let other = Uuid::now_v7();
    conn.execute(
        "INSERT INTO events (stream_id, version, name, schema_version, payload, metadata, recorded_at)
         VALUES (?1, -1, 'Opened', 1, X'00', NULL, 0)",
        [other.to_string()],
    )
    .unwrap();
    let error = store
        .read_log(LogQuery::after(Position::new(4), 10))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("negative"), "{error}");
    let error = store.stream_version(other).await.unwrap_err();
    assert!(matches!(error, Error::Backend { .. }), "{error:?}");

    conn.execute(
        "INSERT INTO events (stream_id, version, name, schema_version, payload, metadata, recorded_at)
         VALUES (?1, 1, 'Opened', 99999999999, X'00', NULL, 0)",
        [Uuid::now_v7().to_string()],
    )
    .unwrap();
    let error = store
        .read_log(LogQuery::after(Position::new(5), 10))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("schema_version"), "{error}");

    // The error says what the column holds instead.
    let odd = Uuid::now_v7();
    for (version, payload, metadata, message) in [
        (
            1,
            "5",
            "NULL",
            "column `payload` holds the integer 5, not a blob",
        ),
        (
            2,
            "2.5",
            "NULL",
            "column `payload` holds the real number 2.5, not a blob",
        ),
        (
            3,
            "X'00'",
            "X'0102'",
            "column `metadata` holds a 2-byte blob, not JSON text",
        ),
    ] {
        conn.execute(
            &format!(
                "INSERT INTO events (stream_id, version, name, schema_version, payload, metadata, recorded_at)
                 VALUES (?1, {version}, 'Opened', 1, {payload}, {metadata}, 0)"
            ),
            [odd.to_string()],
        )
        .unwrap();
        let error = store
            .read_stream(odd, StreamRange::all().from(version))
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err();
        assert!(error.to_string().contains(message), "{error}");
    }
}

/// A long stream is read in chunks: the first events arrive before the whole stream is read,
/// and the reader can stop early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_streams_are_read_in_chunks() {
    let store = SqliteOptions::in_memory()
        .read_chunk(100)
        .open()
        .await
        .unwrap();
    let stream = Uuid::now_v7();
    for batch in 0..50u64 {
        let events = (0..100)
            .map(|i| event("Counted", &format!("{}", batch * 100 + i)))
            .collect();
        store
            .append(AppendBatch::single(stream, batch * 100, events))
            .await
            .unwrap();
    }
    let mut read = store.read_stream(stream, StreamRange::all());
    let mut expected = 1;
    while let Some(event) = read.try_next().await.unwrap() {
        assert_eq!(event.version, expected);
        expected += 1;
        if expected > 250 {
            break;
        }
    }
    drop(read);
    let count = store
        .read_stream(stream, StreamRange::all())
        .try_fold(0u64, |n, _| async move { Ok(n + 1) })
        .await
        .unwrap();
    assert_eq!(count, 5000);
}

#[test]
fn using_the_store_outside_a_tokio_runtime_is_an_error_not_a_panic() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = runtime.block_on(SqliteStore::in_memory()).unwrap();
    let mut call = std::pin::pin!(store.last_position());
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    let std::task::Poll::Ready(result) = call.as_mut().poll(&mut context) else {
        panic!("outside a runtime the call should fail at once");
    };
    let error = result.unwrap_err();
    assert!(error.to_string().contains("Tokio runtime"), "{error}");
}

/// Reads are streamed chunk by chunk: the events before a bad row arrive, then the error, even
/// when the bad row is several chunks in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_row_deep_in_a_stream_ends_the_read_after_the_good_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.db");
    let store = SqliteOptions::file(&path)
        .read_chunk(10)
        .open()
        .await
        .unwrap();
    let stream = Uuid::now_v7();
    let good: Vec<NewEvent> = (0..35).map(|i| event("Counted", &i.to_string())).collect();
    store
        .append(AppendBatch::single(stream, 0, good))
        .await
        .unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO events (stream_id, version, name, schema_version, payload, metadata, recorded_at)
         VALUES (?1, 36, NULL, 1, X'00', NULL, 0)",
        [stream.to_string()],
    )
    .unwrap_err(); // NOT NULL refuses it; put a blob where the name's text belongs instead.
    conn.execute(
        "INSERT INTO events (stream_id, version, name, schema_version, payload, metadata, recorded_at)
         VALUES (?1, 36, X'C3', 1, X'00', NULL, 0)",
        [stream.to_string()],
    )
    .unwrap();
    let results: Vec<_> = store
        .read_stream(stream, StreamRange::all())
        .collect()
        .await;
    assert_eq!(results.len(), 36);
    assert!(results[..35].iter().all(|r| r.is_ok()));
    let error = results[35].as_ref().unwrap_err().to_string();
    assert!(
        error.contains("version 36") && error.contains("name"),
        "{error}"
    );
}
