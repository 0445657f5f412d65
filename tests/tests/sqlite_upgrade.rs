//! SQLite files written by earlier releases open with this one:
//!
//! - schema version 1 (no event ids, no categories): the migration adds the columns and the
//!   category index, the old events read back unchanged with a stable id and no category, and
//!   new events get both; the data keys table is added too, so the upgraded file takes a key
//!   store;
//! - schema version 4 (the layout before the covering stream index): the migration adds the
//!   index, and every event (position, version, id, metadata, category, time), snapshot,
//!   tracking record, lease and data key is kept; stream reads then walk the new index.
//!
//! The old tables below are those releases' DDL, verbatim, so the tests do not depend on this
//! build's own migrations to produce an "old" file.

use eventsource_core::persistence::codec::{KeyStore, MasterKey};
use eventsource_core::stores::sqlite::SqliteKeyStore;
use std::ops::ControlFlow;
use std::time::{Duration, SystemTime};

use eventsource_core::{
    AppendBatch, EventStore, LogQuery, NewEvent, Position, ReplayedEvent, SqliteStore, StoredEvent,
    StreamRange, Uuid, legacy_event_id,
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
    assert_eq!(versions, vec![1, 2, 3, 4, 5]);

    // Schema version 4 added the data keys: the upgraded file keeps keys.
    let keys = SqliteKeyStore::new(&again, MasterKey::generate());
    let subject = Uuid::now_v7();
    let (id, key) = keys.current_key(subject).await.unwrap();
    assert_eq!(keys.keys(subject).await.unwrap().get(id), Some(&key));
}

/// Schema version 4, as migrations 1 to 4 left a file with the default table names.
const VERSION_4: &str = "
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
    ALTER TABLE events ADD COLUMN event_id BLOB;
    ALTER TABLE events ADD COLUMN category TEXT NOT NULL DEFAULT '';
    CREATE INDEX events_by_category ON events (category, position);
    CREATE TABLE events_projection_leases (
        tracker TEXT PRIMARY KEY NOT NULL,
        holder TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE events_data_keys (
        subject TEXT NOT NULL,
        key_id INTEGER NOT NULL CHECK (key_id >= 0),
        wrapped BLOB,
        forgotten_through INTEGER NOT NULL DEFAULT 0,
        recorded_at INTEGER NOT NULL,
        PRIMARY KEY (subject, key_id)
    ) WITHOUT ROWID;
    CREATE TABLE events_migrations (
        version INTEGER PRIMARY KEY NOT NULL,
        description TEXT NOT NULL,
        applied_at INTEGER NOT NULL
    );
    INSERT INTO events_migrations VALUES
        (1, 'events, snapshots and tracking tables', 0),
        (2, 'event ids and categories, and the index for category-filtered log reads', 0),
        (3, 'projection leases: one active runner per projection', 0),
        (4, 'data keys: per-subject encryption keys, wrapped by the master key, and the tombstones of forgotten subjects', 0);
";

/// What a version-4 file holds, written round robin over `STREAMS` streams of `VERSIONS`
/// events, as concurrent aggregates are: each row as the test expects to read it back.
const STREAMS: usize = 3;
const VERSIONS: u64 = 4;

fn expected_event(streams: &[Uuid], position: u64) -> StoredEvent {
    let index = usize::try_from((position - 1) % STREAMS as u64).unwrap();
    let version = (position - 1) / STREAMS as u64 + 1;
    let stream_id = streams[index];
    let mut metadata = eventsource_core::Metadata::new();
    // Some events without metadata, some sharing it with the event before, some their own.
    if !position.is_multiple_of(4) {
        metadata.insert("correlation_id".into(), format!("round {version}"));
    }
    if position.is_multiple_of(5) {
        metadata.insert("actor".into(), format!("actor {position}"));
    }
    StoredEvent {
        // The first row of each stream was stored before events had ids.
        id: if version == 1 {
            legacy_event_id(stream_id, version)
        } else {
            Uuid::from_u128(u128::from(position) << 64 | 0xe7)
        },
        stream_id,
        category: if index == 2 {
            String::new()
        } else {
            format!("Kind{index}")
        },
        version,
        name: format!("Happened{}", position % 2),
        schema_version: u32::try_from(version).unwrap(),
        payload: format!("{{\"position\":{position}}}").into_bytes(),
        metadata,
        recorded_at: SystemTime::UNIX_EPOCH
            + Duration::from_micros(1_700_000_000_000_000 + position),
        position: Position::new(position),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_4_file_gains_the_stream_index_and_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v4.db");
    let streams: Vec<Uuid> = (0..STREAMS).map(|_| Uuid::now_v7()).collect();
    let positions = 1..=STREAMS as u64 * VERSIONS;
    let expected: Vec<StoredEvent> = positions
        .clone()
        .map(|p| expected_event(&streams, p))
        .collect();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(VERSION_4).unwrap();
        for event in &expected {
            let metadata = (!event.metadata.is_empty())
                .then(|| serde_json::to_string(&event.metadata).unwrap());
            let id = (event.version > 1).then(|| event.id.as_bytes().to_vec());
            let micros = event
                .recorded_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_micros();
            conn.execute(
                "INSERT INTO events (stream_id, version, name, schema_version, payload, metadata, recorded_at, event_id, category)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                rusqlite::params![
                    event.stream_id.to_string(),
                    i64::try_from(event.version).unwrap(),
                    event.name,
                    event.schema_version,
                    event.payload,
                    metadata,
                    i64::try_from(micros).unwrap(),
                    id,
                    event.category,
                ],
            )
            .unwrap();
        }
        conn.execute_batch(&format!(
            "INSERT INTO snapshots VALUES ('{}', 2, 'Kind0', -7, x'0102', 1700000000000000);
             INSERT INTO tracking VALUES ('balances', 5);
             INSERT INTO events_projection_leases VALUES ('balances', '1:holder', 9);
             INSERT INTO events_data_keys VALUES ('{}', 0, NULL, 0, 1);",
            streams[0], streams[1]
        ))
        .unwrap();
    }

    let store = SqliteStore::open(&path).await.expect("the upgrade");
    for (index, stream) in streams.iter().enumerate() {
        let mine: Vec<StoredEvent> = expected
            .iter()
            .filter(|e| e.stream_id == *stream)
            .cloned()
            .collect();
        assert_eq!(mine.len(), VERSIONS as usize);
        let read: Vec<StoredEvent> = store
            .read_stream(*stream, StreamRange::all())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(read, mine, "stream {index} read");
        // A replay is lent the columns it needs, with the values the read returned.
        let owned = |e: ReplayedEvent<'_>| {
            let (name, payload) = (e.name.to_owned(), e.payload.to_vec());
            (e.stream_id, e.version, name, e.schema_version, payload)
        };
        let mut visited = Vec::new();
        store
            .visit_stream(*stream, StreamRange::all(), &mut |event| {
                visited.push(owned(event));
                Ok(ControlFlow::Continue(()))
            })
            .await
            .unwrap();
        let expected: Vec<_> = mine.iter().map(|e| owned(e.replayed())).collect();
        assert_eq!(visited, expected, "stream {index} visited");
        let backwards: Vec<StoredEvent> = store
            .read_stream(*stream, StreamRange::all().backwards())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(
            backwards,
            mine.iter().rev().cloned().collect::<Vec<_>>(),
            "stream {index} backwards"
        );
        assert_eq!(store.stream_version(*stream).await.unwrap(), VERSIONS);
    }
    let log = store.read_log(LogQuery::from_start(100)).await.unwrap();
    assert_eq!(log.events, expected, "the log, in position order");
    let kind0 = store
        .read_log(LogQuery::from_start(100).categories(["Kind0"]))
        .await
        .unwrap();
    assert_eq!(
        kind0.events,
        expected
            .iter()
            .filter(|e| e.category == "Kind0")
            .cloned()
            .collect::<Vec<_>>()
    );
    assert_eq!(
        store.tracking_position("balances").await.unwrap(),
        Position::new(5)
    );
    let snapshot = store
        .load_snapshot(streams[0], None)
        .await
        .unwrap()
        .expect("the snapshot");
    assert_eq!(
        (
            snapshot.version,
            snapshot.aggregate.as_str(),
            snapshot.fingerprint,
            snapshot.state.as_slice()
        ),
        (2, "Kind0", (-7_i64).cast_unsigned(), &[1_u8, 2][..])
    );

    // Appends go on after the old events, and read back through the new index.
    let new = NewEvent::new("Later", 1, "{}");
    let position = store
        .append(AppendBatch::single_in(
            "Kind0",
            streams[0],
            VERSIONS,
            vec![new.clone()],
        ))
        .await
        .unwrap();
    assert_eq!(position, Position::new(STREAMS as u64 * VERSIONS + 1));
    let last: Vec<StoredEvent> = store
        .read_stream(streams[0], StreamRange::all().from(VERSIONS + 1))
        .try_collect()
        .await
        .unwrap();
    assert_eq!((last.len(), last[0].id), (1, new.id));
    drop(store);

    let conn = rusqlite::Connection::open(&path).unwrap();
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM events_migrations ORDER BY version")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(versions, vec![1, 2, 3, 4, 5]);
    let kept: (String, i64) = conn
        .query_row(
            "SELECT holder, (SELECT count(*) FROM events_data_keys) FROM events_projection_leases",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(kept, ("1:holder".to_owned(), 1));
    // A stream read is one range of the covering index: no lookup into the table per event.
    let plan: Vec<String> = conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT position, version, name, schema_version, payload, metadata, recorded_at, event_id, category
             FROM events INDEXED BY events_by_stream
             WHERE stream_id = ?1 AND version >= ?2 AND version <= ?3 ORDER BY version LIMIT ?4",
        )
        .unwrap()
        .query_map(rusqlite::params!["x", 1, 9, 9], |row| row.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        plan,
        vec![
            "SEARCH events USING COVERING INDEX events_by_stream (stream_id=? AND version>? AND version<?)"
        ]
    );
}
