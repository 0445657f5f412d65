//! A SQLite file written by the previous release (schema version 1: no event ids, no
//! categories) opens with this one: the migration adds the columns and the category index, the
//! old events read back unchanged with a stable id and no category, and new events get both;
//! the data keys table is added too, so the upgraded file takes a key store.
//!
//! The version-1 tables below are that release's DDL, verbatim, so the test does not depend on
//! this build's own migrations to produce an "old" file.

use eventsource_core::persistence::codec::{KeyStore, MasterKey};
use eventsource_core::stores::sqlite::SqliteKeyStore;
use eventsource_core::{
    AppendBatch, EventStore, LogQuery, NewEvent, Position, SqliteStore, StreamRange, Uuid,
    legacy_event_id,
};
use futures_util::TryStreamExt;

const VERSION_1: &str = "
    CREATE TABLE events (
        position INTEGER PRIMARY KEY AUTOINCREMENT,
        stream_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        name TEXT NOT NULL,
        schema_version INTEGER NOT NULL,
        payload BLOB NOT NULL,
        metadata TEXT,
        recorded_at INTEGER NOT NULL,
        UNIQUE (stream_id, version)
    );
    CREATE TABLE snapshots (
        stream_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        aggregate TEXT NOT NULL,
        fingerprint INTEGER NOT NULL,
        state BLOB NOT NULL,
        recorded_at INTEGER NOT NULL,
        PRIMARY KEY (stream_id, version)
    ) WITHOUT ROWID;
    CREATE TABLE tracking (
        tracker TEXT PRIMARY KEY NOT NULL,
        position INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE events_migrations (
        version INTEGER PRIMARY KEY NOT NULL,
        description TEXT NOT NULL,
        applied_at INTEGER NOT NULL
    );
    INSERT INTO events_migrations VALUES (1, 'events, snapshots and tracking tables', 0);
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_file_upgrades_and_reads_every_old_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let stream = Uuid::now_v7();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(VERSION_1).unwrap();
        for version in 1..=3_i64 {
            conn.execute(
                "INSERT INTO events (stream_id, version, name, schema_version, payload, metadata, recorded_at)
                 VALUES (?1, ?2, 'Deposited', 1, ?3, '{\"actor\":\"ada\"}', 1700000000000000)",
                rusqlite::params![stream.to_string(), version, format!("{{\"n\":{version}}}")],
            )
            .unwrap();
        }
        conn.execute("INSERT INTO tracking VALUES ('balances', 2)", [])
            .unwrap();
    }

    let store = SqliteStore::open(&path).await.expect("the upgrade");
    let old: Vec<_> = store
        .read_stream(stream, StreamRange::all())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(old.len(), 3);
    for (event, version) in old.iter().zip(1..) {
        assert_eq!(event.version, version);
        assert_eq!(event.name, "Deposited");
        assert_eq!(event.payload, format!("{{\"n\":{version}}}").into_bytes());
        assert_eq!(event.metadata["actor"], "ada");
        assert_eq!(event.position, Position::new(version));
        assert_eq!(event.category, "", "stored before categories");
        assert_eq!(event.id, legacy_event_id(stream, version), "a stable id");
    }
    assert_eq!(
        store.tracking_position("balances").await.unwrap(),
        Position::new(2)
    );

    // New events carry their ids and categories, after the old ones in the log.
    let new = NewEvent::new("Deposited", 1, "{\"n\":4}");
    let position = store
        .append(AppendBatch::single_in(
            "BankAccount",
            stream,
            3,
            vec![new.clone()],
        ))
        .await
        .unwrap();
    assert_eq!(position, Position::new(4));
    let log = store.read_log(LogQuery::from_start(10)).await.unwrap();
    assert_eq!(log.len(), 4);
    assert_eq!(
        (log.events[3].id, log.events[3].category.as_str()),
        (new.id, "BankAccount")
    );
    let accounts = store
        .read_log(LogQuery::from_start(10).categories(["BankAccount"]))
        .await
        .unwrap();
    assert_eq!(
        accounts
            .events
            .iter()
            .map(|e| e.version)
            .collect::<Vec<_>>(),
        vec![4]
    );
    drop(store);

    // Reopening neither migrates again nor changes the ids.
    let again = SqliteStore::open(&path).await.unwrap();
    let reread: Vec<_> = again
        .read_stream(stream, StreamRange::all())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(reread[..3], old[..]);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM events_migrations ORDER BY version")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(versions, vec![1, 2, 3, 4]);

    // Schema version 4 added the data keys: the upgraded file keeps keys.
    let keys = SqliteKeyStore::new(&again, MasterKey::generate());
    let subject = Uuid::now_v7();
    let (id, key) = keys.current_key(subject).await.unwrap();
    assert_eq!(keys.keys(subject).await.unwrap().get(id), Some(&key));
}
