//! The SQLite store's row decoding: arbitrary values (any SQLite type, text that is not UTF-8,
//! metadata that is not JSON, out-of-range integers) written straight into a real store's
//! `events` and `snapshots` tables, then read back through `read_stream`, `read_log`,
//! `stream_version` and `load_snapshot`, and decoded as the fuzz domain's events: typed errors,
//! never a panic.
#![no_main]

use std::sync::{Mutex, OnceLock};

use arbitrary::Arbitrary;
use eventsource_core::{
    Aggregate, EventEnum, EventStore, Json, LogQuery, SqliteStore, StreamRange, Uuid,
};
use eventsource_fuzz::Account;
use futures_util::TryStreamExt;
use libfuzzer_sys::fuzz_target;
use rusqlite::types::Value;

/// A value for one column.
#[derive(Debug, Arbitrary)]
enum Cell<'a> {
    Null,
    Integer(i64),
    Real(f64),
    /// Stored as TEXT, whatever the bytes (SQLite does not check UTF-8).
    Text(&'a [u8]),
    Blob(&'a [u8]),
    /// The stream the target reads (as hyphenated text), so rows land in it.
    Stream,
    /// A plausible value for the column: a small integer, JSON text, a known name.
    Usual(u8),
}

#[derive(Debug, Arbitrary)]
struct EventRow<'a> {
    position: Cell<'a>,
    stream_id: Cell<'a>,
    version: Cell<'a>,
    name: Cell<'a>,
    schema_version: Cell<'a>,
    payload: Cell<'a>,
    metadata: Cell<'a>,
    recorded_at: Cell<'a>,
    event_id: Cell<'a>,
    category: Cell<'a>,
}

#[derive(Debug, Arbitrary)]
struct SnapshotRow<'a> {
    version: Cell<'a>,
    aggregate: Cell<'a>,
    fingerprint: Cell<'a>,
    state: Cell<'a>,
    recorded_at: Cell<'a>,
}

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    events: Vec<EventRow<'a>>,
    snapshot: Option<SnapshotRow<'a>>,
    from: u8,
    backwards: bool,
}

const STREAM: Uuid = Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0001);

struct Fixture {
    runtime: tokio::runtime::Runtime,
    store: SqliteStore,
    raw: Mutex<rusqlite::Connection>,
    _dir: TempDir,
}

/// The directory of the database. A static is never dropped, so libFuzzer's exit leaves it
/// behind: `fuzz/run` removes it after the target (`eventsource-fuzz-rows-<pid>` in the temp
/// directory).
struct TempDir(#[allow(dead_code)] std::path::PathBuf);

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("eventsource-fuzz-rows-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let path = dir.join("rows.db");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let store = runtime
            .block_on(SqliteStore::open(&path))
            .expect("a new store opens");
        let raw = rusqlite::Connection::open(&path).expect("a second connection");
        // Nothing here needs to survive a crash: don't wait for the disk on every input.
        raw.execute_batch("PRAGMA synchronous = OFF")
            .expect("synchronous off");
        Fixture {
            runtime,
            store,
            raw: Mutex::new(raw),
            _dir: TempDir(dir),
        }
    })
}

/// The SQL expression and the parameter for a cell.
fn bind(cell: &Cell<'_>, usual: impl Fn(u8) -> Value) -> (&'static str, Value) {
    match *cell {
        Cell::Null => ("?", Value::Null),
        Cell::Integer(i) => ("?", Value::Integer(i)),
        Cell::Real(r) => ("?", Value::Real(r)),
        Cell::Text(bytes) => ("CAST(? AS TEXT)", Value::Blob(bytes.to_vec())),
        Cell::Blob(bytes) => ("?", Value::Blob(bytes.to_vec())),
        Cell::Stream => ("?", Value::Text(STREAM.hyphenated().to_string())),
        Cell::Usual(n) => ("?", usual(n)),
    }
}

fn small(n: u8) -> Value {
    Value::Integer(i64::from(n % 8))
}

fn insert(raw: &rusqlite::Connection, table: &str, columns: &[(&str, (&str, Value))]) {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let exprs: Vec<&str> = columns.iter().map(|(_, (expr, _))| *expr).collect();
    let sql = format!(
        "INSERT OR IGNORE INTO {table} ({}) VALUES ({})",
        names.join(", "),
        exprs.join(", ")
    );
    let values = columns.iter().map(|(_, (_, value))| value);
    // A NOT NULL or type constraint may refuse the row: then it is simply not there.
    let _ = raw.execute(&sql, rusqlite::params_from_iter(values));
}

fuzz_target!(|input: Input<'_>| {
    let fixture = fixture();
    {
        let mut raw = fixture.raw.lock().expect("not poisoned");
        let raw = raw.transaction().expect("a transaction");
        raw.execute_batch("DELETE FROM events; DELETE FROM snapshots;")
            .expect("the tables empty");
        for row in input.events.iter().take(16) {
            insert(
                &raw,
                "events",
                &[
                    (
                        "position",
                        bind(&row.position, |n| Value::Integer(i64::from(n) + 1)),
                    ),
                    (
                        "stream_id",
                        bind(&row.stream_id, |_| Value::Text(Uuid::nil().to_string())),
                    ),
                    ("version", bind(&row.version, small)),
                    (
                        "name",
                        bind(&row.name, |n| {
                            Value::Text(eventsource_fuzz::pick_name(n % 5, "Unknown").to_owned())
                        }),
                    ),
                    (
                        "schema_version",
                        bind(&row.schema_version, |n| small(n % 4)),
                    ),
                    (
                        "payload",
                        bind(&row.payload, |_| {
                            Value::Blob(br#"{"cents":5,"currency":"EUR"}"#.to_vec())
                        }),
                    ),
                    (
                        "metadata",
                        bind(&row.metadata, |_| Value::Text(r#"{"actor":"fuzz"}"#.into())),
                    ),
                    (
                        "recorded_at",
                        bind(&row.recorded_at, |n| Value::Integer(i64::from(n) << 40)),
                    ),
                    (
                        "event_id",
                        bind(&row.event_id, |n| Value::Blob(vec![n; 16])),
                    ),
                    (
                        "category",
                        bind(&row.category, |_| Value::Text("account".into())),
                    ),
                ],
            );
        }
        if let Some(snapshot) = &input.snapshot {
            insert(
                &raw,
                "snapshots",
                &[
                    (
                        "stream_id",
                        ("?", Value::Text(STREAM.hyphenated().to_string())),
                    ),
                    ("version", bind(&snapshot.version, small)),
                    (
                        "aggregate",
                        bind(&snapshot.aggregate, |_| Value::Text(Account::NAME.into())),
                    ),
                    (
                        "fingerprint",
                        bind(&snapshot.fingerprint, |n| Value::Integer(i64::from(n))),
                    ),
                    (
                        "state",
                        bind(&snapshot.state, |_| {
                            Value::Blob(
                                br#"{"owner":"a","currency":"EUR","balance":1,"sent_to":[]}"#
                                    .to_vec(),
                            )
                        }),
                    ),
                    (
                        "recorded_at",
                        bind(&snapshot.recorded_at, |n| Value::Integer(i64::from(n))),
                    ),
                ],
            );
        }
        raw.commit().expect("the rows commit");
    }

    fixture.runtime.block_on(async {
        let store = &fixture.store;
        let decode = |stored: &eventsource_core::StoredEvent| {
            let _ = <Account as Aggregate>::Event::decode(
                &Json,
                &stored.name,
                stored.schema_version,
                &stored.payload,
            );
        };

        let range = StreamRange {
            from: u64::from(input.from % 4),
            backwards: input.backwards,
            ..StreamRange::all()
        };
        let mut events = store.read_stream(STREAM, range);
        while let Ok(Some(stored)) = events.try_next().await {
            decode(&stored);
        }
        drop(events);

        let _ = store.stream_version(STREAM).await;

        let mut query = LogQuery::from_start(4);
        for _ in 0..8 {
            let Ok(page) = store.read_log(query.clone()).await else {
                break;
            };
            if page.is_empty() {
                break;
            }
            let next = page.next;
            for stored in page {
                decode(&stored);
            }
            query = LogQuery::after(next, 4);
        }

        if let Ok(Some(snapshot)) = store.load_snapshot(STREAM, None).await {
            let _ = Account::decode_snapshot(&Json, &snapshot.state);
        }
        let _ = store
            .load_snapshot(STREAM, Some(u64::from(input.from)))
            .await;
    });
});
