//! The embedded SQLite store (feature `sqlite`, on by default): one file, nothing to install.
//!
//! ```
//! use eventsource_core::{AppendBatch, EventStore, NewEvent, SqliteStore, StreamRange};
//! use futures_util::TryStreamExt;
//!
//! # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
//! # let dir = std::env::temp_dir().join(format!("es-doc-{}", uuid::Uuid::now_v7()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! let store = SqliteStore::open(dir.join("bank.db")).await?;      // or SqliteStore::in_memory()
//! let id = uuid::Uuid::now_v7();
//! let opened = NewEvent::new("Opened", 1, br#"{"owner":"Ada"}"#.to_vec());
//! store.append(AppendBatch::single_in("Account", id, 0, vec![opened.clone()])).await?;
//! let events: Vec<_> = store.read_stream(id, StreamRange::all()).try_collect().await?;
//! assert_eq!((events[0].version, events[0].name.as_str()), (1, "Opened"));
//! assert_eq!((events[0].id, events[0].category.as_str()), (opened.id, "Account"));
//! # drop(store); std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<_, eventsource_core::Error>(()) }).unwrap();
//! ```
//!
//! # How it works
//!
//! - **Schema.** Created on open by versioned migrations recorded in an `<events>_migrations`
//!   table; opening an up-to-date database runs none. The table layout is described in the
//!   source of `schema.rs`; it is meant to be read with `sqlite3`: stream ids are UUID text,
//!   metadata is JSON text, `recorded_at` is integer microseconds since the Unix epoch.
//! - **Connections.** One writer connection (appends are serialised, as SQLite requires anyway)
//!   and a small pool of reader connections. The database runs in WAL mode, so readers never
//!   block the writer or each other. An in-memory database uses its one connection for both.
//! - **Appends.** One `BEGIN IMMEDIATE` transaction per batch: version checks, inserts and the
//!   tracking record commit together or not at all.
//! - **Durability.** Configurable with [`Synchronous`]; the default, `Full`, syncs every commit.
//! - **Locks.** A connection waits up to the busy timeout (default 5 s) for another process's
//!   lock, then fails with [`Error::Backend`] saying the database stayed
//!   locked.
//! - **Reads.** A stream is read in chunks of at most 1024 events (or 8 MiB of payloads), the
//!   next chunk fetched while the caller consumes the current one, so replaying a stream of any
//!   length holds a bounded amount of memory. A stream's events are one range of a covering
//!   index ordered by stream and version (schema version 5), however their appends interleaved
//!   with other streams'; the table itself stays in log order. A replay
//!   ([`EventStore::visit_stream`]) selects only the columns of a
//!   [`ReplayedEvent`](crate::ReplayedEvent) and is lent each row where it lies in the chunk,
//!   with no allocation or copy per event. The index's price is a second copy of every event:
//!   the file is about 1.8 times as large, and each appended event is written twice (appends
//!   that touch many streams at once took about twice as long in the benchmark; a
//!   single-stream commit is bound by its sync either way). `BENCHMARKS.md` has the figures.
//! - **One active runner per projection or process.** A projector with [`SqliteWork`], or a
//!   process manager, takes its component's [`SqliteClaim`] first: a lease row in
//!   `<events>_projection_leases`, renewed every quarter of the lease while it runs. Runners of
//!   the same component on the same file, in any process, wait on standby; one takes over when
//!   the holder stops (it deletes the row) or, after a crash, once its lease has expired
//!   ([`LEASE`], 10 s by default; [`SqliteOptions::claim_lease`] sets it).
//! - **Keys.** With encrypted payloads, [`SqliteKeyStore`] keeps their data keys in the same
//!   file (table `<events>_data_keys`), each wrapped by a master key kept outside it.
//! - **Async.** SQLite calls block, so each runs on Tokio's blocking thread pool
//!   ([`tokio::task::spawn_blocking`]); the store must be used inside a Tokio runtime (outside
//!   one, every call fails with a typed error).
//!
//! A row that can't be read back (a stored id that isn't a UUID, a negative version, metadata
//! that isn't JSON, a corrupt page) is an [`Error::Backend`] naming the
//! stream and version or the log position, never a panic. A payload is returned as stored;
//! whether it decodes is the repository's concern.

mod claim;
mod keys;
mod options;
mod projection;
mod rows;
mod schema;

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use tokio::task::JoinHandle;
use uuid::Uuid;

pub use claim::{LEASE, RENEW_EVERY, SqliteClaim};
pub use keys::SqliteKeyStore;
pub use options::{SqliteOptions, Synchronous};
pub use projection::SqliteWork;

use crate::error::{CodecError, Error, Result};
use crate::persistence::position::Position;
use crate::persistence::record::{
    AppendBatch, LogPage, LogQuery, Metadata, Replay, Snapshot, StoredEvent, StreamRange,
};
use crate::persistence::store::{EventStore, EventStream, ReplayVisitor, StreamVisitor};
use crate::persistence::wake::{CommitSignal, WakeUps};
use options::Location;
use rows::{BadRow, Lender, ReplayChunk, RowChunk, StreamRows};
use schema::Sql;

/// The backend name in errors.
const BACKEND: &str = "sqlite";

/// A stream read chunk ends after this many payload bytes, whatever its event count.
const READ_CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// An event store in an SQLite database file.
///
/// Open one with [`SqliteStore::open`], [`SqliteStore::in_memory`], [`SqliteStore::connect`]
/// (a `sqlite://` URL), or [`SqliteOptions`] for durability, busy timeout and table names.
/// Cloning is cheap and shares the connections.
#[derive(Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
    /// Wakes this process's subscriptions after each append through this store (and its
    /// clones). Appends by other processes to the same file are found by polling.
    commits: Arc<CommitSignal>,
}

struct Shared {
    writer: Mutex<Connection>,
    /// Reader connections for a file database; `None` for an in-memory one, which reads through
    /// the writer.
    readers: Option<Mutex<Vec<Connection>>>,
    sql: Sql,
    options: SqliteOptions,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the database file at `path` with the default options: WAL,
    /// `synchronous = FULL`, a 5 second busy timeout, tables `events`, `snapshots`, `tracking`.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        SqliteOptions::file(path).open().await
    }

    /// A private in-memory database, gone when the last clone of the store is dropped.
    pub async fn in_memory() -> Result<Self> {
        SqliteOptions::in_memory().open().await
    }

    /// Opens the database a URL names: `sqlite://path/to/file.db`, `sqlite::memory:`, with
    /// optional `?synchronous=normal&busy_timeout_ms=10000`. See [`SqliteOptions::from_url`].
    pub async fn connect(url: &str) -> Result<Self> {
        SqliteOptions::from_url(url)?.open().await
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &SqliteOptions {
        &self.shared.options
    }

    /// The database file, or `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        self.shared.options.path()
    }

    /// The schema version the database is at (the latest this build knows, after open).
    pub fn schema_version() -> i64 {
        schema::latest_version()
    }

    pub(super) async fn open_with(options: SqliteOptions) -> Result<Self> {
        let shared = blocking(move || {
            let mut writer = open_connection(&options, true)?;
            schema::migrate(&mut writer, &options.tables)?;
            let readers = match options.location {
                Location::File(_) => Some(Mutex::new(Vec::new())),
                Location::Memory => None,
            };
            Ok(Shared {
                writer: Mutex::new(writer),
                readers,
                sql: Sql::new(&options.tables),
                options,
            })
        })
        .await?;
        Ok(Self {
            shared: Arc::new(shared),
            commits: Arc::new(CommitSignal::new()),
        })
    }

    /// Runs `f` on the blocking pool with the shared state.
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Shared) -> Result<T> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        blocking(move || f(&shared)).await
    }
}

/// Runs blocking SQLite work on Tokio's blocking pool.
fn spawn<T, F>(f: F) -> Result<JoinHandle<Result<T>>>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
        Error::backend(
            BACKEND,
            "starting a database call (the SQLite store runs its blocking calls on Tokio's blocking pool, so it must be used inside a Tokio runtime)",
            e,
        )
    })?;
    Ok(runtime.spawn_blocking(f))
}

async fn joined<T>(handle: JoinHandle<Result<T>>) -> Result<T> {
    handle
        .await
        .map_err(|e| Error::backend(BACKEND, "running a database call on the blocking pool", e))?
}

async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    joined(spawn(f)?).await
}

/// The current time in microseconds since the Unix epoch.
fn micros_now() -> Result<i64> {
    rows::micros_from_time(SystemTime::now()).ok_or_else(|| {
        Error::backend(
            BACKEND,
            "reading the clock",
            BadRow("the system clock is outside the range SQLite timestamps can hold".into()),
        )
    })
}

/// A version or position as SQLite's signed integer; values past `i64::MAX` clamp (no stored
/// row can be there).
fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn open_connection(options: &SqliteOptions, writer: bool) -> Result<Connection> {
    let failed = |doing: String| {
        let timeout = options.busy_timeout;
        move |e: rusqlite::Error| sqlite_error(e, doing, timeout)
    };
    let conn = match &options.location {
        Location::File(path) => {
            let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            if writer {
                flags |= OpenFlags::SQLITE_OPEN_CREATE;
            }
            Connection::open_with_flags(path, flags)
                .map_err(failed(format!("opening {}", path.display())))?
        }
        Location::Memory => Connection::open_in_memory()
            .map_err(failed("opening an in-memory database".to_owned()))?,
    };
    let setting = |what: &str| failed(format!("setting {what} on {}", describe(options)));
    conn.busy_timeout(options.busy_timeout)
        .map_err(setting("the busy timeout"))?;
    conn.set_prepared_statement_cache_capacity(32);
    if writer {
        if let Location::File(path) = &options.location {
            // The first statement reads the file header: a file that isn't a database fails here.
            let mode: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
                .map_err(setting("the WAL journal mode"))?;
            if !mode.eq_ignore_ascii_case("wal") {
                tracing::warn!(
                    path = %path.display(),
                    journal_mode = %mode,
                    "SQLite refused WAL mode; readers will block the writer"
                );
            }
        }
        conn.pragma_update(None, "synchronous", options.synchronous.pragma_value())
            .map_err(setting("the synchronous level"))?;
    } else {
        conn.pragma_update(None, "query_only", true)
            .map_err(setting("query_only on a reader connection"))?;
        if options.mmap_size > 0 {
            conn.pragma_update(None, "mmap_size", clamp(options.mmap_size))
                .map_err(setting("mmap_size on a reader connection"))?;
        }
    }
    Ok(conn)
}

fn describe(options: &SqliteOptions) -> String {
    match &options.location {
        Location::File(path) => path.display().to_string(),
        Location::Memory => "an in-memory database".to_owned(),
    }
}

/// A driver error with what the store was doing, and what a busy or corrupt database means.
fn sqlite_error(e: rusqlite::Error, doing: String, timeout: std::time::Duration) -> Error {
    use rusqlite::ErrorCode;
    let hint = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            return Error::busy(
                BACKEND,
                format!(
                    "{doing} (another connection held the database lock for longer than the busy timeout of {timeout:?})"
                ),
                e,
            );
        }
        Some(ErrorCode::NotADatabase) => " (the file is not an SQLite database)".to_owned(),
        Some(ErrorCode::DatabaseCorrupt) => " (the database file is corrupt)".to_owned(),
        _ => String::new(),
    };
    Error::backend(BACKEND, format!("{doing}{hint}"), e)
}

impl Shared {
    fn failed<D: fmt::Display>(
        &self,
        doing: D,
    ) -> impl FnOnce(rusqlite::Error) -> Error + use<'_, D> {
        move |e| sqlite_error(e, doing.to_string(), self.options.busy_timeout)
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while the connection was locked left no transaction open (rusqlite rolls back
        // on drop), so the connection is still usable.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on a reader connection (the writer, for an in-memory database).
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let Some(readers) = &self.readers else {
            return f(&self.writer());
        };
        let idle = readers.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open_connection(&self.options, false)?,
        };
        let result = f(&conn);
        let mut idle = readers.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.options.max_idle_readers {
            idle.push(conn);
        }
        result
    }

    fn append(&self, batch: AppendBatch) -> Result<Position> {
        let mut seen = std::collections::HashSet::with_capacity(batch.streams.len());
        for append in &batch.streams {
            if !seen.insert(append.stream_id) {
                return Err(Error::DuplicateStreamInBatch {
                    stream: append.stream_id,
                });
            }
        }
        let tracking_position = match &batch.tracking {
            Some(t) => Some(i64::try_from(t.position.get()).map_err(|_| {
                Error::backend(
                    BACKEND,
                    format!(
                        "recording tracking position {} for `{}`",
                        t.position, t.tracker
                    ),
                    BadRow(format!(
                        "SQLite stores positions up to {}, and {} is beyond that",
                        i64::MAX,
                        t.position
                    )),
                )
            })?),
            None => None,
        };
        let sql = &self.sql;
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.failed("starting an append transaction"))?;
        let mut id_buffer = Uuid::encode_buffer();
        {
            let mut version = tx
                .prepare_cached(&sql.stream_version)
                .map_err(self.failed("preparing the stream version query"))?;
            for append in &batch.streams {
                let stream = append.stream_id;
                let id = stream.hyphenated().encode_lower(&mut id_buffer);
                let actual: i64 = version
                    .query_row([&*id], |row| row.get(0))
                    .map_err(self.failed(format_args!("reading the version of stream {stream}")))?;
                let actual = u64::try_from(actual).map_err(|_| {
                    Error::backend(
                        BACKEND,
                        format!("reading the version of stream {stream}"),
                        BadRow(format!("the stream's highest version is {actual}")),
                    )
                })?;
                if actual != append.expected_version {
                    return Err(Error::Conflict {
                        stream,
                        expected: append.expected_version,
                        actual,
                    });
                }
            }
        }
        if let (Some(tracking), Some(position)) = (&batch.tracking, tracking_position) {
            let doing = || {
                format!(
                    "recording tracking position {position} for `{}`",
                    tracking.tracker
                )
            };
            let recorded: Option<i64> = tx
                .prepare_cached(&sql.tracking_position)
                .and_then(|mut s| {
                    s.query_row([&tracking.tracker], |row| row.get(0))
                        .map(Some)
                        .or_else(|e| match e {
                            rusqlite::Error::QueryReturnedNoRows => Ok(None),
                            e => Err(e),
                        })
                })
                .map_err(self.failed(Lazy(&doing)))?;
            let recorded = recorded.unwrap_or(0);
            if position <= recorded {
                return Err(Error::TrackingConflict {
                    tracker: tracking.tracker.clone(),
                    position: tracking.position,
                    recorded: Position::new(u64::try_from(recorded).unwrap_or(0)),
                });
            }
            tx.prepare_cached(&sql.save_tracking)
                .and_then(|mut s| s.execute(params![tracking.tracker, position]))
                .map_err(self.failed(Lazy(&doing)))?;
        }
        let mut wrote = false;
        if batch.event_count() > 0 {
            let now = micros_now()?;
            let mut insert = tx
                .prepare_cached(&sql.insert_event)
                .map_err(self.failed("preparing the event insert"))?;
            for append in &batch.streams {
                let stream = append.stream_id;
                let id = stream.hyphenated().encode_lower(&mut id_buffer);
                for (offset, event) in append.events.iter().enumerate() {
                    let version = append.expected_version + offset as u64 + 1;
                    let metadata = encode_metadata(&event.metadata, &event.name)?;
                    insert
                        .execute(params![
                            &*id,
                            clamp(version),
                            event.name,
                            i64::from(event.schema_version),
                            event.payload,
                            metadata,
                            now,
                            event.id.as_bytes(),
                            append.category,
                        ])
                        .map_err(self.failed(format_args!(
                            "inserting event `{}` at version {version} of stream {stream}",
                            event.name
                        )))?;
                    wrote = true;
                }
            }
        }
        let last = if wrote {
            tx.last_insert_rowid()
        } else {
            tx.prepare_cached(&sql.last_position)
                .and_then(|mut s| s.query_row([], |row| row.get(0)))
                .map_err(self.failed("reading the last position"))?
        };
        tx.commit().map_err(self.failed("committing an append"))?;
        Ok(Position::new(u64::try_from(last).unwrap_or(0)))
    }

    /// The newest snapshot of a stream at or below version `at`.
    fn load_snapshot(&self, stream_id: Uuid, at: i64) -> Result<Option<Snapshot>> {
        self.read(|conn| {
            let doing = format!("loading a snapshot of stream {stream_id}");
            let mut statement = conn
                .prepare_cached(&self.sql.load_snapshot)
                .map_err(self.failed(&doing))?;
            let mut rows = statement
                .query(params![stream_id.hyphenated().to_string(), at])
                .map_err(self.failed(&doing))?;
            match rows.next().map_err(self.failed(&doing))? {
                Some(row) => rows::snapshot(row, stream_id).map(Some),
                None => Ok(None),
            }
        })
    }

    /// Reads up to `limit` events of a stream with versions in `lo..=hi`, the columns `R`
    /// holds.
    fn read_stream_chunk<R: StreamRows>(
        &self,
        stream: Uuid,
        lo: i64,
        hi: i64,
        backwards: bool,
        limit: usize,
    ) -> Result<Chunk<R>> {
        self.read(|conn| {
            let sql = R::statement(&self.sql, backwards);
            let doing = || format!("reading stream {stream}");
            let mut statement = conn
                .prepare_cached(sql)
                .map_err(self.failed(Lazy(&doing)))?;
            let mut id_buffer = Uuid::encode_buffer();
            let id = stream.hyphenated().encode_lower(&mut id_buffer);
            let mut rows = statement
                .query(params![&*id, lo, hi, clamp(limit as u64)])
                .map_err(self.failed(Lazy(&doing)))?;
            let mut chunk = R::new(stream, limit.min(1 << 16));
            let mut bytes = 0;
            let mut cut = false;
            loop {
                // A bad row ends the chunk: the events before it are still delivered.
                let pushed = match rows.next() {
                    Ok(Some(row)) => chunk.push(row),
                    Ok(None) => break,
                    Err(e) => Err(self.failed(Lazy(&doing))(e)),
                };
                match pushed {
                    Ok(payload) => bytes += payload,
                    Err(error) => {
                        return Ok(Chunk {
                            rows: chunk,
                            exhausted: true,
                            error: Some(error),
                        });
                    }
                }
                if bytes >= READ_CHUNK_BYTES {
                    cut = true;
                    break;
                }
            }
            let exhausted = !cut && chunk.len() < limit;
            Ok(Chunk {
                rows: chunk,
                exhausted,
                error: None,
            })
        })
    }

    fn read_log(&self, query: &LogQuery) -> Result<LogPage> {
        if query.limit == 0 {
            return Ok(LogPage {
                events: Vec::new(),
                next: query.after,
            });
        }
        let json = |values: &[String], what: &str| -> Result<Option<String>> {
            if values.is_empty() {
                return Ok(None);
            }
            serde_json::to_string(values)
                .map(Some)
                .map_err(|e| Error::Encode {
                    what: format!("the log query's {what}"),
                    source: CodecError::new("json", e),
                })
        };
        let categories = json(&query.categories, "categories")?;
        let names = json(&query.names, "event names")?;
        let variant = usize::from(names.is_some()) + 2 * usize::from(categories.is_some());
        self.read(|conn| {
            let doing = || format!("reading the log after position {}", query.after);
            let after = clamp(query.after.get());
            let limit = clamp(query.limit as u64);
            let to = clamp(query.to.map_or(u64::MAX, Position::get));
            // One read transaction: the page and the last position come from one snapshot.
            let tx = conn
                .unchecked_transaction()
                .map_err(self.failed(Lazy(&doing)))?;
            let mut events = Vec::with_capacity(query.limit.min(1 << 16));
            {
                let mut statement = tx
                    .prepare_cached(&self.sql.read_log[variant])
                    .map_err(self.failed(Lazy(&doing)))?;
                let all: [&dyn rusqlite::ToSql; 5] = [&after, &limit, &categories, &names, &to];
                let mut rows = statement
                    .query(&all[..])
                    .map_err(self.failed(Lazy(&doing)))?;
                while let Some(row) = rows.next().map_err(self.failed(Lazy(&doing)))? {
                    events.push(rows::log_event(row)?);
                }
            }
            let next = match events.last() {
                Some(last) if events.len() == query.limit => last.position,
                // Not a full page: everything up to the end of the log (or the bound) was
                // looked at.
                _ => {
                    let last: i64 = tx
                        .prepare_cached(&self.sql.last_position)
                        .and_then(|mut s| s.query_row([], |row| row.get(0)))
                        .map_err(self.failed(Lazy(&doing)))?;
                    let last = non_negative(last, || "the last position".into())?;
                    let last = Position::new(last);
                    query.after.max(query.to.map_or(last, |to| last.min(to)))
                }
            };
            Ok(LogPage { events, next })
        })
    }

    fn query_integer(&self, sql: &str, param: Option<&str>, doing: &str) -> Result<Option<i64>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(sql).map_err(self.failed(doing))?;
            let result = match param {
                Some(p) => statement.query_row([p], |row| row.get(0)),
                None => statement.query_row([], |row| row.get(0)),
            };
            match result {
                Ok(value) => Ok(Some(value)),
                Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
                Err(e) => Err(self.failed(doing)(e)),
            }
        })
    }
}

fn encode_metadata(metadata: &Metadata, event: &str) -> Result<Option<String>> {
    if metadata.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(metadata)
        .map(Some)
        .map_err(|e| Error::Encode {
            what: format!("the metadata of event `{event}`"),
            source: CodecError::new("json", e),
        })
}

fn non_negative(value: i64, what: impl FnOnce() -> String) -> Result<u64> {
    u64::try_from(value).map_err(|_| {
        Error::backend(
            BACKEND,
            what(),
            BadRow(format!("the stored value is {value}, which is negative")),
        )
    })
}

/// A description formatted only if an error needs it (not once per row).
struct Lazy<F>(F);

impl<F: Fn() -> String> fmt::Display for Lazy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&(self.0)())
    }
}

/// One chunk of a stream read: every column ([`RowChunk`]) or a replay's ([`ReplayChunk`]).
struct Chunk<R> {
    rows: R,
    /// The query returned fewer rows than asked for: nothing more to read.
    exhausted: bool,
    /// A row after `rows` could not be read; the read ends with this error.
    error: Option<Error>,
}

/// The state of a stream read between polls.
struct Reading {
    read: StreamRead,
    /// The fetched rows not yet handed out: the chunk and the next row's index.
    buffer: Option<(RowChunk, usize)>,
    /// Builds each handed-out event (a copy of the one it lends).
    lender: Lender,
    /// The error to hand out after `buffer`.
    error: Option<Error>,
    /// The next chunk, being fetched.
    pending: Option<JoinHandle<Result<Chunk<RowChunk>>>>,
}

impl futures_core::Stream for Reading {
    type Item = Result<StoredEvent>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        loop {
            if let Some((rows, next)) = &mut this.buffer {
                if *next < rows.len() {
                    let index = *next;
                    *next += 1;
                    match this.lender.lend(rows, index) {
                        Ok(event) => return Poll::Ready(Some(Ok(event.clone()))),
                        Err(error) => {
                            this.read.done = true;
                            this.pending = None;
                            this.buffer = None;
                            this.error = None;
                            return Poll::Ready(Some(Err(error)));
                        }
                    }
                }
                this.buffer = None;
            }
            if let Some(error) = this.error.take() {
                this.read.done = true;
                this.pending = None;
                return Poll::Ready(Some(Err(error)));
            }
            let handle = match &mut this.pending {
                Some(handle) => handle,
                None if this.read.done => return Poll::Ready(None),
                None => match this.read.fetch() {
                    Ok(handle) => this.pending.insert(handle),
                    Err(error) => {
                        this.read.done = true;
                        return Poll::Ready(Some(Err(error)));
                    }
                },
            };
            let joined = match std::pin::Pin::new(handle).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(joined) => joined,
            };
            this.pending = None;
            let chunk = joined
                .map_err(|e| {
                    Error::backend(BACKEND, "running a database call on the blocking pool", e)
                })
                .and_then(|chunk| chunk);
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) => {
                    this.read.done = true;
                    return Poll::Ready(Some(Err(error)));
                }
            };
            this.read.advance(&chunk);
            if !this.read.done {
                // Fetch the next chunk while the caller works through this one. A failure to
                // start it shows up when it is started again.
                this.pending = this.read.fetch().ok();
            }
            this.error = chunk.error;
            this.buffer = Some((chunk.rows, 0));
        }
    }
}

/// Replays a stream for [`EventStore::visit_stream`]: each chunk of the columns a replay needs
/// is read on the blocking pool (the next one while the visitor works through the current one)
/// and its rows are lent to the visitor where they lie in the chunk, with no copy per row.
async fn visit_rows(read: StreamRead, visit: &mut StreamVisitor<'_>) -> Result<()> {
    visit_chunks(read, None, visit).await
}

/// Visits a read's rows chunk by chunk, starting with `fetched` if its first chunk was read
/// already (with the snapshot, by [`EventStore::replay_from_snapshot`]).
async fn visit_chunks(
    mut read: StreamRead,
    mut fetched: Option<Chunk<ReplayChunk>>,
    visit: &mut StreamVisitor<'_>,
) -> Result<()> {
    let mut pending = if read.done || fetched.is_some() {
        None
    } else {
        Some(read.fetch::<ReplayChunk>()?)
    };
    loop {
        let chunk = match (fetched.take(), pending.take()) {
            (Some(chunk), _) => chunk,
            (None, Some(handle)) => joined(handle).await?,
            (None, None) => return Ok(()),
        };
        read.advance(&chunk);
        // Fetching the next chunk can only fail to start outside a runtime, and this runs in
        // one; if it does fail, it fails after the chunk in hand is visited.
        let next = if read.done { None } else { Some(read.fetch()) };
        for index in 0..chunk.rows.len() {
            if visit(chunk.rows.event(index)?)?.is_break() {
                return Ok(());
            }
        }
        if let Some(error) = chunk.error {
            return Err(error);
        }
        pending = next.transpose()?;
    }
}

/// Where a stream read has got to.
struct StreamRead {
    shared: Arc<Shared>,
    stream: Uuid,
    backwards: bool,
    /// The versions still to read, inclusive.
    lo: i64,
    hi: i64,
    remaining: usize,
    done: bool,
}

impl StreamRead {
    fn new(shared: Arc<Shared>, stream: Uuid, range: StreamRange) -> Self {
        let lo = clamp(range.from.max(1));
        let hi = range.to.map_or(i64::MAX, clamp);
        let remaining = range.limit.unwrap_or(usize::MAX);
        Self {
            shared,
            stream,
            backwards: range.backwards,
            lo,
            hi,
            remaining,
            done: lo > hi || remaining == 0,
        }
    }

    /// Starts fetching the next chunk on the blocking pool.
    fn fetch<R: StreamRows>(&self) -> Result<JoinHandle<Result<Chunk<R>>>> {
        let shared = Arc::clone(&self.shared);
        let (stream, lo, hi, backwards) = (self.stream, self.lo, self.hi, self.backwards);
        let limit = self.remaining.min(shared.options.read_chunk);
        spawn(move || shared.read_stream_chunk(stream, lo, hi, backwards, limit))
    }

    /// Moves past a fetched chunk.
    fn advance<R: StreamRows>(&mut self, chunk: &Chunk<R>) {
        self.remaining = self.remaining.saturating_sub(chunk.rows.len());
        if let Some(last) = chunk.rows.last_version() {
            let version = clamp(last);
            if self.backwards {
                self.hi = version - 1;
            } else {
                self.lo = version.saturating_add(1);
            }
        }
        self.done =
            chunk.exhausted || chunk.rows.is_empty() || self.remaining == 0 || self.lo > self.hi;
    }
}

#[async_trait::async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, batch: AppendBatch) -> Result<Position> {
        if batch.streams.is_empty() && batch.tracking.is_none() {
            return self.last_position().await;
        }
        let last = self.run(move |shared| shared.append(batch)).await?;
        self.commits.notify();
        Ok(last)
    }

    fn wake_ups(&self) -> WakeUps {
        self.commits.wake_ups()
    }

    fn read_stream(&self, stream_id: Uuid, range: StreamRange) -> EventStream<'_> {
        let read = StreamRead::new(Arc::clone(&self.shared), stream_id, range);
        Box::pin(Reading {
            read,
            buffer: None,
            lender: Lender::new(stream_id),
            error: None,
            pending: None,
        })
    }

    async fn visit_stream(
        &self,
        stream_id: Uuid,
        range: StreamRange,
        visit: &mut StreamVisitor<'_>,
    ) -> Result<()> {
        let read = StreamRead::new(Arc::clone(&self.shared), stream_id, range);
        visit_rows(read, visit).await
    }

    /// The snapshot look-up and the first chunk of the events after it in one call on the
    /// blocking pool; a longer stream's further chunks are read as [`visit_stream`] reads them.
    ///
    /// [`visit_stream`]: EventStore::visit_stream
    async fn replay_from_snapshot(
        &self,
        stream_id: Uuid,
        upto: Option<u64>,
        visit: &mut ReplayVisitor<'_>,
    ) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        let hi = upto.map_or(i64::MAX, clamp);
        let (snapshot, first) = blocking(move || {
            let snapshot = shared.load_snapshot(stream_id, hi)?;
            let lo = snapshot.as_ref().map_or(1, |s| clamp(s.version.max(1)));
            if lo > hi {
                return Ok((snapshot, None));
            }
            let limit = shared.options.read_chunk;
            let chunk = shared.read_stream_chunk::<ReplayChunk>(stream_id, lo, hi, false, limit)?;
            Ok((snapshot, Some(chunk)))
        })
        .await?;
        let from = snapshot.as_ref().map_or(1, |s| s.version.max(1));
        if visit(Replay::Snapshot(snapshot))?.is_break() {
            return Ok(());
        }
        let Some(first) = first else {
            return Ok(());
        };
        let mut range = StreamRange::all().from(from);
        if let Some(upto) = upto {
            range = range.to(upto);
        }
        let read = StreamRead::new(Arc::clone(&self.shared), stream_id, range);
        visit_chunks(read, Some(first), &mut |event| visit(Replay::Event(event))).await
    }

    async fn stream_version(&self, stream_id: Uuid) -> Result<u64> {
        self.run(move |shared| {
            let doing = format!("reading the version of stream {stream_id}");
            let id = stream_id.hyphenated().to_string();
            let version = shared
                .query_integer(&shared.sql.stream_version, Some(&id), &doing)?
                .unwrap_or(0);
            non_negative(version, || doing)
        })
        .await
    }

    async fn read_log(&self, query: LogQuery) -> Result<LogPage> {
        self.run(move |shared| shared.read_log(&query)).await
    }

    async fn last_position(&self) -> Result<Position> {
        self.run(|shared| {
            let doing = "reading the last position";
            let position = shared
                .query_integer(&shared.sql.last_position, None, doing)?
                .unwrap_or(0);
            non_negative(position, || doing.to_owned()).map(Position::new)
        })
        .await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        self.run(move |shared| {
            let stream = snapshot.stream_id;
            let doing = format!(
                "saving the snapshot at version {} of stream {stream}",
                snapshot.version
            );
            let recorded_at = rows::micros_from_time(snapshot.recorded_at).ok_or_else(|| {
                Error::backend(
                    BACKEND,
                    doing.clone(),
                    BadRow(format!(
                        "recorded_at {:?} is outside the range SQLite timestamps can hold",
                        snapshot.recorded_at
                    )),
                )
            })?;
            let version = i64::try_from(snapshot.version).map_err(|_| {
                Error::backend(
                    BACKEND,
                    doing.clone(),
                    BadRow(format!(
                        "version {} is beyond {}",
                        snapshot.version,
                        i64::MAX
                    )),
                )
            })?;
            let conn = shared.writer();
            let mut statement = conn
                .prepare_cached(&shared.sql.save_snapshot)
                .map_err(shared.failed(&doing))?;
            statement
                .execute(params![
                    stream.hyphenated().to_string(),
                    version,
                    snapshot.aggregate,
                    // The same 64 bits as a signed integer: every fingerprint round-trips.
                    snapshot.fingerprint.cast_signed(),
                    snapshot.state,
                    recorded_at,
                ])
                .map_err(shared.failed(&doing))?;
            Ok(())
        })
        .await
    }

    async fn delete_snapshots(&self, stream_id: Uuid) -> Result<u64> {
        self.run(move |shared| {
            let doing = format!("deleting the snapshots of stream {stream_id}");
            let conn = shared.writer();
            let mut statement = conn
                .prepare_cached(&shared.sql.delete_snapshots)
                .map_err(shared.failed(&doing))?;
            let deleted = statement
                .execute(params![stream_id.hyphenated().to_string()])
                .map_err(shared.failed(&doing))?;
            Ok(deleted as u64)
        })
        .await
    }

    async fn load_snapshot(
        &self,
        stream_id: Uuid,
        at_or_below: Option<u64>,
    ) -> Result<Option<Snapshot>> {
        let at = at_or_below.map_or(i64::MAX, clamp);
        self.run(move |shared| shared.load_snapshot(stream_id, at))
            .await
    }

    async fn tracking_position(&self, tracker: &str) -> Result<Position> {
        let tracker = tracker.to_owned();
        self.run(move |shared| {
            let doing = format!("reading the tracking position of `{tracker}`");
            let position = shared
                .query_integer(&shared.sql.tracking_position, Some(&tracker), &doing)?
                .unwrap_or(0);
            non_negative(position, || doing).map(Position::new)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn pragma(conn: &Connection, name: &str) -> i64 {
        conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn connections_run_at_the_durability_and_mapping_the_options_ask_for() {
        let dir = tempfile::tempdir().unwrap();
        let file = SqliteOptions::file(dir.path().join("settings.db"));
        // SQLite's numbers for OFF, NORMAL, FULL and EXTRA.
        for (synchronous, level) in [
            (Synchronous::Off, 0),
            (Synchronous::Normal, 1),
            (Synchronous::Full, 2),
            (Synchronous::Extra, 3),
        ] {
            let writer = open_connection(&file.clone().synchronous(synchronous), true).unwrap();
            assert_eq!(pragma(&writer, "synchronous"), level, "{synchronous:?}");
        }
        let reader = open_connection(&file, false).unwrap();
        assert_eq!(
            pragma(&reader, "mmap_size"),
            256 * 1024 * 1024,
            "the default"
        );
        assert_eq!(pragma(&reader, "query_only"), 1);
        let reader = open_connection(&file.clone().mmap_size(1 << 20), false).unwrap();
        assert_eq!(pragma(&reader, "mmap_size"), 1 << 20);
    }

    #[test]
    fn a_driver_error_says_what_a_busy_corrupt_or_foreign_file_means() {
        let failure = |code| {
            let error = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
            sqlite_error(error, "reading stream 7".into(), Duration::from_secs(5))
        };
        match failure(rusqlite::ffi::SQLITE_BUSY) {
            Error::Busy { context, .. } => assert_eq!(
                context,
                "reading stream 7 (another connection held the database lock for longer than the busy timeout of 5s)"
            ),
            other => panic!("{other:?}"),
        }
        for (code, hint) in [
            (
                rusqlite::ffi::SQLITE_CORRUPT,
                " (the database file is corrupt)",
            ),
            (
                rusqlite::ffi::SQLITE_NOTADB,
                " (the file is not an SQLite database)",
            ),
            (rusqlite::ffi::SQLITE_FULL, ""),
        ] {
            match failure(code) {
                Error::Backend { context, .. } => {
                    assert_eq!(context, format!("reading stream 7{hint}"));
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
