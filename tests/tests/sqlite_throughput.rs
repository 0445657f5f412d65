//! Rough SQLite store throughput figures. Not run by default (it asserts no timings):
//!
//! ```text
//! cargo test --release -p eventsource-tests --test sqlite_throughput -- --ignored --nocapture
//! ```

use std::time::Instant;

use eventsource_core::{
    AppendBatch, EventStore, LogQuery, NewEvent, Position, SqliteOptions, StreamRange, Synchronous,
    Uuid,
};
use futures_util::TryStreamExt;

const PAYLOAD: &[u8] = br#"{"amount":1250,"currency":"EUR","memo":"coffee beans"}"#;

fn events(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|_| NewEvent::new("Deposited", 1, PAYLOAD))
        .collect()
}

/// The same inserts with plain rusqlite: one transaction per batch of 10, a cached statement.
fn raw_inserts(path: &std::path::Path, synchronous: &str, batches: usize) -> f64 {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .unwrap();
    conn.pragma_update(None, "synchronous", synchronous)
        .unwrap();
    conn.execute_batch(
        "CREATE TABLE raw (position INTEGER PRIMARY KEY AUTOINCREMENT, stream_id TEXT NOT NULL,
         version INTEGER NOT NULL, name TEXT NOT NULL, schema_version INTEGER NOT NULL,
         payload BLOB NOT NULL, metadata TEXT, recorded_at INTEGER NOT NULL,
         UNIQUE (stream_id, version))",
    )
    .unwrap();
    let started = Instant::now();
    for b in 0..batches {
        let stream = Uuid::now_v7().to_string();
        let tx = conn.transaction().unwrap();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO raw (stream_id, version, name, schema_version, payload, metadata, recorded_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .unwrap();
            for v in 1..=10i64 {
                insert
                    .execute(rusqlite::params![
                        stream,
                        v,
                        "Deposited",
                        1,
                        PAYLOAD,
                        None::<String>,
                        b as i64
                    ])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "prints throughput figures; run in release mode with --ignored --nocapture"]
async fn sqlite_throughput() {
    let dir = tempfile::tempdir().unwrap();
    const BATCHES: usize = 2_000;

    for (sync, level) in [(Synchronous::Normal, "NORMAL"), (Synchronous::Full, "FULL")] {
        let store = SqliteOptions::file(dir.path().join(format!("append-{level}.db")))
            .synchronous(sync)
            .open()
            .await
            .unwrap();
        let started = Instant::now();
        for _ in 0..BATCHES {
            store
                .append(AppendBatch::single(Uuid::now_v7(), 0, events(10)))
                .await
                .unwrap();
        }
        let ours = started.elapsed().as_secs_f64();
        let raw = raw_inserts(&dir.path().join(format!("raw-{level}.db")), level, BATCHES);
        println!(
            "append, synchronous={level}: {BATCHES} batches of 10 events: store {:.0} batches/s, raw rusqlite {:.0} batches/s, ratio {:.2}x",
            BATCHES as f64 / ours,
            BATCHES as f64 / raw,
            ours / raw
        );
    }

    const EVENTS: u64 = 1_000_000;
    let store = SqliteOptions::file(dir.path().join("replay.db"))
        .synchronous(Synchronous::Normal)
        .open()
        .await
        .unwrap();
    let stream = Uuid::now_v7();
    let started = Instant::now();
    for chunk in 0..(EVENTS / 10_000) {
        store
            .append(AppendBatch::single(stream, chunk * 10_000, events(10_000)))
            .await
            .unwrap();
    }
    println!(
        "append in batches of 10,000: {:.0} events/s",
        EVENTS as f64 / started.elapsed().as_secs_f64()
    );

    for _ in 0..2 {
        let started = Instant::now();
        let (count, bytes) = store
            .read_stream(stream, StreamRange::all())
            .try_fold((0u64, 0usize), |(n, b), e| async move {
                Ok((n + 1, b + e.payload.len()))
            })
            .await
            .unwrap();
        assert_eq!(count, EVENTS);
        assert_eq!(bytes, PAYLOAD.len() * EVENTS as usize);
        println!(
            "replay one stream of {EVENTS} events: {:.0} events/s",
            EVENTS as f64 / started.elapsed().as_secs_f64()
        );
    }

    for page in [1_000usize, 10_000] {
        let started = Instant::now();
        let mut after = Position::START;
        let mut count = 0u64;
        loop {
            let events = store.read_log(LogQuery::after(after, page)).await.unwrap();
            if events.is_empty() {
                break;
            }
            after = events.next;
            count += events.len() as u64;
        }
        assert_eq!(count, EVENTS);
        println!(
            "read the global log in pages of {page}: {:.0} events/s",
            EVENTS as f64 / started.elapsed().as_secs_f64()
        );
    }
}
