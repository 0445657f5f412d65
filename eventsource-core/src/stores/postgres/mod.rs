//! The PostgreSQL store (feature `postgres`): production persistence on a connection pool.
//!
//! ```no_run
//! # async fn demo() -> eventsource_core::Result<()> {
//! use eventsource_core::stores::postgres::PostgresStore;
//!
//! // Creates (or migrates) the schema `eventsource` on connect.
//! let store = PostgresStore::connect("postgres://postgres@127.0.0.1:5432/test").await?;
//!
//! // Or with options: another schema, a bigger pool.
//! let store = PostgresStore::options("postgres://postgres@127.0.0.1:5432/test")
//!     .schema("bank")
//!     .pool_size(32)
//!     .connect()
//!     .await?;
//! # let _ = store; Ok(()) }
//! ```
//!
//! # Tables
//!
//! On connect the store creates its schema (default `eventsource`) and brings it to
//! [`SCHEMA_VERSION`] with versioned, idempotent migrations recorded in
//! `<schema>.eventsource_migrations`, under a transaction-scoped advisory lock so that processes
//! connecting at the same time don't race. The schema and the three tables (default `events`,
//! `snapshots`, `tracking`) can be renamed in [`PostgresOptions`]; names are checked against
//! PostgreSQL's identifier rules and always quoted.
//!
//! - `events(stream_id uuid, version int8, name text, schema_version int8, payload bytea,
//!   metadata jsonb, recorded_at timestamptz, position int8)`, primary key `(stream_id, version)`,
//!   unique index on `position`.
//! - `snapshots(stream_id, version, aggregate, fingerprint, state, recorded_at)`, primary key
//!   `(stream_id, version)`.
//! - `tracking(tracker text primary key, position int8)`.
//! - `events_tickets(pid int4)`, unlogged and always empty outside a running
//!   [`PostgresStore::append_in`]: it inserts and deletes one row to take a transaction id of
//!   its own (see [`horizon`]).
//!
//! # Appends
//!
//! An [`EventStore::append`] is one transaction and, without a tracking record, **one round
//! trip**: `BEGIN`, a single statement and `COMMIT` are sent together (pipelined). That
//! statement checks every stream's expected version and inserts all events of all streams with
//! one `INSERT … SELECT FROM unnest($1::uuid[], $2::int8[], …)`, whatever their number — never
//! an `INSERT` per event. If the check refuses the batch it inserts nothing and the `COMMIT`
//! ends an empty transaction; the store then reads the versions and reports [`Error::Conflict`]
//! naming the stream, the expected and the actual version. A writer that races past the check
//! hits the `(stream_id, version)` primary key, the transaction rolls back, and the store
//! reports the same conflict. With a tracking record, the append is `BEGIN`, the statement and
//! the tracking upsert together, then `COMMIT`: a position that does not move forward is
//! [`Error::TrackingConflict`] and rolls everything back.
//! [`PostgresStore::append_in`] runs the same statements inside a transaction of your own.
//!
//! # The global log, and why a follower never skips
//!
//! Positions handed out before commit (a sequence) let a follower skip events for good:
//! transaction A takes position 10, B takes 11 and commits first, a follower reads 11 and pages
//! on with `after = 11`, then A commits 10 behind it. Locking the table on every append avoids
//! that but serializes all writers. This store keeps writers on different streams concurrent and
//! instead orders the log by **transaction id**:
//!
//! - every event's `position` is `xid << 20 | n`, where `xid` is the writing transaction's 64-bit
//!   id (`pg_current_xact_id()`, which never wraps) and `n` the event's index within that
//!   transaction. Positions are therefore strictly increasing, unique and **sparse** (the store
//!   contract allows gaps). A transaction may write at most [`MAX_EVENTS_PER_TRANSACTION`]
//!   events; more is refused with [`BatchTooLarge`] before anything is written.
//! - [`EventStore::read_log`] and [`EventStore::last_position`] only return rows below the
//!   log's **horizon**: the smallest transaction id under which an appender *of this store* may
//!   still commit. Every appender announces itself (a shared advisory lock naming the store)
//!   before it takes the transaction id its positions come from, and the horizon is taken over
//!   announced appenders only, in the same statement as the rows it returns. The set of rows
//!   below it is final: nothing can later commit at a position a follower has already passed,
//!   so a follower paging with `after = last position seen` sees every committed event exactly
//!   once, in position order. The [`horizon`] module says why this holds, also
//!   for [`PostgresStore::append_in`] in a transaction that wrote to your own tables first.
//!
//! Transactions that don't append to this store (a report or a migration in another database
//! or schema, a session idle in a transaction elsewhere) **don't** hold the log back. An
//! appender of this store that stays open does: followers *wait* for it, they never skip.
//! [`PostgresStore::horizon`] names the oldest open appender (pid, `application_name`, age,
//! query) and how many committed events wait behind it, and a follower that waits on one longer
//! than [`PostgresOptions::appender_warning`] (30 s) logs a `tracing` warning that names it. In
//! production, give each program an `application_name` (`?application_name=orders-api` in the
//! URL) so the warning names the culprit, and set `idle_in_transaction_session_timeout` for the
//! roles that call [`PostgresStore::append_in`], so that a client that forgets its transaction
//! can't stop the log for long. An append is readable as soon as every appender of this store
//! that started before it has finished — usually microseconds later.
//!
//! Positions are large numbers (about a million times the transaction count) and fit PostgreSQL's
//! `int8` until the cluster has run 2^43 transactions. Because they come from the cluster's
//! transaction counter, events copied into *another* cluster (a `pg_dump` restore, logical
//! replication) may be ahead of that cluster's counter, and new events would sort before them:
//! the store checks this on connect and refuses with [`Error::Config`] saying how to advance the
//! counter. `pg_upgrade` and physical replicas keep the counter and need nothing.
//!
//! Stream reads ([`EventStore::read_stream`]) and [`EventStore::stream_version`] read committed
//! rows directly and are not held back.
//!
//! # Failures
//!
//! Connection failures, pool timeouts and SQL errors are [`Error::Backend`] with what the store
//! was doing; a row that breaks the store's invariants (a negative version, metadata that is not
//! a JSON object of strings, …) is [`Error::Corrupt`] naming the stream and version. A dead
//! connection is dropped from the pool when it is handed back. If the connection fails while
//! `COMMIT` is in flight the append's outcome is unknown: the error says so, and a retry with the
//! same expected version either succeeds or reports a conflict.
//!
//! Connections are made without TLS (`NoTls`): use a local socket, a private network or a TLS
//! proxy.

pub mod horizon;
mod rows;
mod schema;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, NoTls, Transaction};
use uuid::Uuid;

pub use deadpool_postgres;
pub use horizon::{HorizonStatus, OpenAppender};
pub use schema::SCHEMA_VERSION;
pub use tokio_postgres;

use horizon::HorizonWatch;
use schema::{Names, Sql};

use crate::error::{CodecError, Error, Result};
use crate::persistence::record::{AppendBatch, LogQuery, Snapshot, StoredEvent, StreamRange};
use crate::persistence::store::{EventStore, EventStream};

/// The backend name in this store's errors.
const BACKEND: &str = "postgres";

/// How many low bits of a position hold the event's index within its transaction.
const POSITION_SHIFT: u32 = 20;

/// The most events one transaction can write: a position keeps the event's index within its
/// transaction in its low 20 bits.
pub const MAX_EVENTS_PER_TRANSACTION: usize = 1 << POSITION_SHIFT;

/// How many events a stream read fetches per query.
const READ_CHUNK: i64 = 512;

/// An append holds more events than one transaction can write ([`MAX_EVENTS_PER_TRANSACTION`]).
/// It is the source of the [`Error::Backend`] the append returns; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{events} events in one transaction, but at most {max} fit; split the append into several")]
pub struct BatchTooLarge {
    /// The events the transaction would have held.
    pub events: usize,
    /// [`MAX_EVENTS_PER_TRANSACTION`].
    pub max: usize,
}

/// Maps a driver error to [`Error::Backend`] with what the store was doing.
fn pg_error(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
    move |e| Error::backend(BACKEND, context, e)
}

/// How to reach the server.
#[derive(Clone)]
enum Target {
    Url(String),
    Config(Box<tokio_postgres::Config>),
}

/// Options for [`PostgresStore`]: where the server is, the schema and table names, and the pool.
///
/// ```
/// use eventsource_core::stores::postgres::PostgresOptions;
/// use std::time::Duration;
///
/// let options = PostgresOptions::new("postgres://app@db.internal/orders")
///     .schema("orders_events")
///     .pool_size(20)
///     .wait_timeout(Duration::from_secs(5));
/// # let _ = options;
/// ```
#[derive(Clone)]
pub struct PostgresOptions {
    target: Target,
    names: Names,
    pool_size: usize,
    wait_timeout: Duration,
    connect_timeout: Duration,
    appender_warning: Duration,
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The parsed config's Debug hides the password; a URL is never printed as given.
        let target = match &self.target {
            Target::Url(url) => url
                .parse::<tokio_postgres::Config>()
                .map(|c| format!("{c:?}"))
                .unwrap_or_else(|_| "<unparseable connection string>".into()),
            Target::Config(config) => format!("{config:?}"),
        };
        f.debug_struct("PostgresOptions")
            .field("target", &target)
            .field("names", &self.names)
            .field("pool_size", &self.pool_size)
            .field("wait_timeout", &self.wait_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("appender_warning", &self.appender_warning)
            .finish()
    }
}

impl PostgresOptions {
    /// Options for the server at `url` (`postgres://user:password@host:port/database`, or the
    /// `host=… user=…` key/value form), with schema `eventsource`, tables `events`, `snapshots`
    /// and `tracking`, a pool of 16 connections, a 30 s wait for a pooled connection and a 10 s
    /// connect timeout (unless the URL sets `connect_timeout`).
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_target(Target::Url(url.into()))
    }

    /// Options for a server described by a `tokio_postgres` config.
    pub fn from_config(config: tokio_postgres::Config) -> Self {
        Self::with_target(Target::Config(Box::new(config)))
    }

    fn with_target(target: Target) -> Self {
        Self {
            target,
            names: Names {
                schema: "eventsource".into(),
                events: "events".into(),
                snapshots: "snapshots".into(),
                tracking: "tracking".into(),
            },
            pool_size: 16,
            wait_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            appender_warning: Duration::from_secs(30),
        }
    }

    /// The schema that holds the store's tables (created if missing). ASCII letters, digits and
    /// `_`, not starting with a digit or `pg_`, at most 63 bytes.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.names.schema = schema.into();
        self
    }

    /// The events table's name (default `events`; at most 48 bytes).
    pub fn events_table(mut self, name: impl Into<String>) -> Self {
        self.names.events = name.into();
        self
    }

    /// The snapshots table's name (default `snapshots`; at most 48 bytes).
    pub fn snapshots_table(mut self, name: impl Into<String>) -> Self {
        self.names.snapshots = name.into();
        self
    }

    /// The tracking table's name (default `tracking`; at most 48 bytes).
    pub fn tracking_table(mut self, name: impl Into<String>) -> Self {
        self.names.tracking = name.into();
        self
    }

    /// The most connections the pool opens (default 16, at least 1).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// How long an operation waits for a free pooled connection before failing (default 30 s).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// How long opening a connection may take, unless the URL sets `connect_timeout`
    /// (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long an appender of this store may keep its transaction open before a follower that
    /// waits for it logs a `tracing` warning naming the backend (pid, `application_name`,
    /// transaction age, state and the start of its query). Default 30 s; zero turns the warning
    /// off. [`PostgresStore::horizon`] reports the same for a health check.
    pub fn appender_warning(mut self, after: Duration) -> Self {
        self.appender_warning = after;
        self
    }

    /// Connects, creating or migrating the schema.
    ///
    /// Fails with [`Error::Config`] for a bad URL, name or pool size, or a schema created by a
    /// newer build; with [`Error::Backend`] if the server can't be reached.
    pub async fn connect(self) -> Result<PostgresStore> {
        self.names.validate()?;
        if self.pool_size == 0 {
            return Err(Error::Config {
                backend: BACKEND,
                message: "the pool size is 0; it needs at least one connection".into(),
            });
        }
        let mut config = match self.target {
            Target::Url(url) => {
                url.parse::<tokio_postgres::Config>()
                    .map_err(|e| Error::Config {
                        backend: BACKEND,
                        message: format!("the connection string is not valid: {e}"),
                    })?
            }
            Target::Config(config) => *config,
        };
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(self.connect_timeout);
        }
        let connect_timeout = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(self.connect_timeout);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(self.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(self.wait_timeout))
            // Opening a connection includes the TCP connect and the startup exchange.
            .create_timeout(Some(connect_timeout.saturating_mul(2)))
            .recycle_timeout(Some(connect_timeout))
            .build()
            .map_err(|e| Error::Config {
                backend: BACKEND,
                message: format!("cannot build the connection pool: {e}"),
            })?;
        let store = PostgresStore {
            pool,
            sql: Arc::new(Sql::render(&self.names)),
            names: Arc::new(self.names),
            watch: Arc::new(HorizonWatch::new(self.appender_warning)),
        };
        store.migrate().await?;
        Ok(store)
    }
}

/// An event store in PostgreSQL, on a connection pool. Cloning shares the pool.
///
/// See the [module docs](self) for the tables, the append protocol and how the global log keeps
/// followers from skipping events.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    names: Arc<Names>,
    sql: Arc<Sql>,
    watch: Arc<HorizonWatch>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.names.schema)
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

/// An append's events as parallel columns, checked before the database is touched.
struct Plan<'a> {
    /// Every stream of the batch, in batch order (also those with no events).
    streams: Vec<Uuid>,
    expected: Vec<u64>,
    /// The expected versions as int8; -1 (which no stream is at) for one beyond int8.
    expected_sql: Vec<i64>,
    /// The number of events.
    count: i64,
    /// One entry per event, in log order.
    event_streams: Vec<Uuid>,
    versions: Vec<i64>,
    names: Vec<&'a str>,
    schema_versions: Vec<i64>,
    payloads: Vec<&'a [u8]>,
    metadata: Vec<String>,
    tracking: Option<(&'a str, i64, u64)>,
}

impl<'a> Plan<'a> {
    fn new(batch: &'a AppendBatch) -> Result<Self> {
        let count = batch.event_count();
        if count > MAX_EVENTS_PER_TRANSACTION {
            return Err(too_large(count));
        }
        let mut seen = HashSet::with_capacity(batch.streams.len());
        let mut plan = Plan {
            streams: Vec::with_capacity(batch.streams.len()),
            expected: Vec::with_capacity(batch.streams.len()),
            expected_sql: Vec::with_capacity(batch.streams.len()),
            count: i64::try_from(count).unwrap_or(i64::MAX),
            event_streams: Vec::with_capacity(count),
            versions: Vec::with_capacity(count),
            names: Vec::with_capacity(count),
            schema_versions: Vec::with_capacity(count),
            payloads: Vec::with_capacity(count),
            metadata: Vec::with_capacity(count),
            tracking: None,
        };
        for append in &batch.streams {
            let stream = append.stream_id;
            if !seen.insert(stream) {
                return Err(Error::DuplicateStreamInBatch { stream });
            }
            plan.streams.push(stream);
            plan.expected.push(append.expected_version);
            plan.expected_sql
                .push(i64::try_from(append.expected_version).unwrap_or(-1));
            for (offset, event) in append.events.iter().enumerate() {
                // Versions beyond int8 can't be stored; such an expected version can't match the
                // stream either, so the append fails as a conflict before these are used.
                let version = append
                    .expected_version
                    .checked_add(offset as u64 + 1)
                    .and_then(|v| i64::try_from(v).ok())
                    .unwrap_or(i64::MAX);
                plan.event_streams.push(stream);
                plan.versions.push(version);
                plan.names.push(&event.name);
                plan.schema_versions.push(i64::from(event.schema_version));
                plan.payloads.push(&event.payload);
                plan.metadata
                    .push(
                        serde_json::to_string(&event.metadata).map_err(|e| Error::Encode {
                            what: format!("metadata of event `{}`", event.name),
                            source: CodecError::new("json", e),
                        })?,
                    );
            }
        }
        if let Some(tracking) = &batch.tracking {
            let position = i64::try_from(tracking.position).map_err(|_| {
                Error::backend(
                    BACKEND,
                    format!("recording tracker `{}`", tracking.tracker),
                    format!(
                        "position {} does not fit in PostgreSQL's int8",
                        tracking.position
                    ),
                )
            })?;
            plan.tracking = Some((&tracking.tracker, position, tracking.position));
        }
        Ok(plan)
    }

    fn describe(&self) -> String {
        format!(
            "appending {} events to {} streams",
            self.names.len(),
            self.streams.len()
        )
    }

    /// The parameters of [`Sql::append`](schema::Sql).
    fn params(&self) -> [&(dyn ToSql + Sync); 9] {
        [
            &self.event_streams,
            &self.versions,
            &self.names,
            &self.schema_versions,
            &self.payloads,
            &self.metadata,
            &self.count,
            &self.streams,
            &self.expected_sql,
        ]
    }
}

fn too_large(events: usize) -> Error {
    Error::backend(
        BACKEND,
        "appending",
        BatchTooLarge {
            events,
            max: MAX_EVENTS_PER_TRANSACTION,
        },
    )
}

/// What the append statement reported.
#[derive(Debug)]
struct Appended {
    /// Every stream was at its expected version and the events fit in the transaction.
    passed: bool,
    inserted: i64,
    /// The last event's position (0 if none).
    last: i64,
    /// The versions the streams were at when the statement checked them, in batch order.
    versions: Vec<i64>,
}

impl Appended {
    fn read(row: &tokio_postgres::Row, context: &str) -> Result<Self> {
        Ok(Self {
            passed: row.try_get(0).map_err(pg_error(context))?,
            inserted: row.try_get(1).map_err(pg_error(context))?,
            last: row.try_get(2).map_err(pg_error(context))?,
            versions: row.try_get(3).map_err(pg_error(context))?,
        })
    }

    /// The last position, after checking that every event was written.
    fn last_position(&self, plan: &Plan<'_>) -> Result<Option<u64>> {
        if self.inserted != plan.count {
            return Err(Error::backend(
                BACKEND,
                plan.describe(),
                format!(
                    "{} rows were inserted instead of {}",
                    self.inserted, plan.count
                ),
            ));
        }
        if plan.count == 0 {
            return Ok(None);
        }
        u64::try_from(self.last).map(Some).map_err(|_| {
            Error::backend(
                BACKEND,
                plan.describe(),
                format!("the database returned position {}", self.last),
            )
        })
    }
}

/// Where an append ran, for telling why it was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Its own transaction: the events always fit, only the transaction id can be too large.
    Own,
    /// The caller's transaction, which may already hold events.
    Callers,
}

impl PostgresStore {
    /// Connects to `url` with default [`PostgresOptions`] (schema `eventsource`), creating or
    /// migrating the schema.
    pub async fn connect(url: &str) -> Result<Self> {
        PostgresOptions::new(url).connect().await
    }

    /// [`PostgresOptions`] for `url`, to set the schema, table names or pool before connecting.
    pub fn options(url: impl Into<String>) -> PostgresOptions {
        PostgresOptions::new(url)
    }

    /// The schema holding the store's tables.
    pub fn schema(&self) -> &str {
        &self.names.schema
    }

    /// The connection pool, for queries of your own (read models, diagnostics).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    async fn client(&self, context: &str) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| {
            Error::backend(
                BACKEND,
                format!("getting a pooled connection for {context}"),
                e,
            )
        })
    }

    async fn migrate(&self) -> Result<()> {
        let context = format!("migrating schema `{}`", self.names.schema);
        let mut client = self.client(&context).await?;
        let tx = client
            .transaction()
            .await
            .map_err(pg_error(context.clone()))?;
        schema::migrate(&tx, &self.names).await?;
        tx.commit().await.map_err(pg_error(context))
    }

    /// Appends `batch` inside a transaction of your own, so that the events commit (or roll
    /// back) together with your other writes — a read model, an outbox row.
    ///
    /// The same rules as [`EventStore::append`] apply; a failed append rolls back to a savepoint
    /// and leaves your transaction usable. Returns the position the last event will have once
    /// your transaction commits (the current last position if the batch holds no events). Until
    /// your transaction finishes, the store's log does not move past it (see the
    /// [module docs](self)): commit promptly.
    ///
    /// ```no_run
    /// # async fn demo(store: eventsource_core::PostgresStore, batch: eventsource_core::AppendBatch)
    /// # -> Result<(), Box<dyn std::error::Error>> {
    /// let mut client = store.pool().get().await?;
    /// let mut tx = client.transaction().await?;
    /// store.append_in(&mut tx, batch).await?;
    /// tx.execute("UPDATE balances SET amount = amount + 10 WHERE id = 1", &[]).await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn append_in(&self, tx: &mut Transaction<'_>, batch: AppendBatch) -> Result<u64> {
        let plan = Plan::new(&batch)?;
        let context = plan.describe();
        let savepoint = tx
            .savepoint("eventsource_append")
            .await
            .map_err(pg_error(&context))?;
        let outcome = self.write_in(&savepoint, &plan, &context).await;
        match outcome {
            Ok(last) => {
                savepoint.commit().await.map_err(pg_error(&context))?;
                match last {
                    Some(position) => Ok(position),
                    None => self.last_position().await,
                }
            }
            Err(refusal) => {
                savepoint.rollback().await.map_err(pg_error(&context))?;
                Err(match refusal {
                    Refusal::Error(error) => error,
                    Refusal::VersionTaken(cause) => self.version_taken(&*tx, &plan, cause).await,
                })
            }
        }
    }

    /// In `tx`, a savepoint of the caller's transaction: the announcement, the append statement
    /// that takes the subtransaction's id from a ticket row, the ticket's deletion and the
    /// tracking upsert, one after the other.
    async fn write_in(
        &self,
        tx: &Transaction<'_>,
        plan: &Plan<'_>,
        context: &str,
    ) -> Result<Option<u64>, Refusal> {
        let announce = tx
            .prepare(&self.sql.announce)
            .await
            .map_err(pg_error(context))?;
        let append = tx
            .prepare(&self.sql.append_in)
            .await
            .map_err(pg_error(context))?;
        // The announcement must come before anything that takes a transaction id.
        tx.execute(&announce, &[])
            .await
            .map_err(pg_error(format!("{context}: announcing the appender")))?;
        let row = tx
            .query_one(&append, &plan.params())
            .await
            .map_err(|e| self.refusal(e, context))?;
        tx.execute(&self.sql.delete_tickets, &[])
            .await
            .map_err(pg_error(format!("{context}: deleting the ticket row")))?;
        let appended = Appended::read(&row, context)?;
        if !appended.passed {
            return Err(Refusal::Error(rejected(
                plan,
                &appended.versions,
                Scope::Callers,
            )));
        }
        if let Some((tracker, position, offered)) = plan.tracking {
            let upsert = tx
                .prepare(&self.sql.upsert_tracking)
                .await
                .map_err(pg_error(context))?;
            let written = tx
                .execute(&upsert, &[&tracker, &position])
                .await
                .map_err(pg_error(format!("recording tracker `{tracker}`")))?;
            if written == 0 {
                return Err(Refusal::Error(
                    self.tracking_conflict(tx, tracker, offered).await,
                ));
            }
        }
        Ok(appended.last_position(plan)?)
    }

    /// The append's own transaction when it records a tracking position: BEGIN, then the
    /// announcement, the append statement and the tracking upsert together, then COMMIT or
    /// ROLLBACK.
    async fn write_tracked(
        &self,
        client: &mut deadpool_postgres::Object,
        plan: &Plan<'_>,
        (tracker, position, offered): (&str, i64, u64),
        context: &str,
    ) -> Result<Option<u64>> {
        let append = client
            .prepare_cached(&self.sql.append)
            .await
            .map_err(pg_error(context))?;
        let upsert = client
            .prepare_cached(&self.sql.upsert_tracking)
            .await
            .map_err(pg_error(context))?;
        let announce = client
            .prepare_cached(&self.sql.announce)
            .await
            .map_err(pg_error(context))?;
        let params = plan.params();
        // Dropping the transaction (an error below, or a cancelled append) rolls it back.
        let tx = client.transaction().await.map_err(pg_error(context))?;
        let tracking_params: [&(dyn ToSql + Sync); 2] = [&tracker, &position];
        let (announced, appended, written) = tokio::join!(
            tx.execute(&announce, &[]),
            tx.query_one(&append, &params),
            tx.execute(&upsert, &tracking_params),
        );
        let refusal = match (announced, appended) {
            (Err(error), _) => Refusal::Error(Error::backend(
                BACKEND,
                format!("{context}: announcing the appender"),
                error,
            )),
            (Ok(_), appended) => match appended {
                Err(error) => self.refusal(error, context),
                Ok(row) => match Appended::read(&row, context) {
                    Err(error) => Refusal::Error(error),
                    Ok(appended) if !appended.passed => {
                        Refusal::Error(rejected(plan, &appended.versions, Scope::Own))
                    }
                    Ok(appended) => match written {
                        Err(error) => Refusal::Error(Error::backend(
                            BACKEND,
                            format!("recording tracker `{tracker}`"),
                            error,
                        )),
                        Ok(0) => {
                            Refusal::Error(self.tracking_conflict(&*tx, tracker, offered).await)
                        }
                        Ok(_) => {
                            let last = appended.last_position(plan)?;
                            tx.commit().await.map_err(in_doubt(context))?;
                            return Ok(last);
                        }
                    },
                },
            },
        };
        // The error is what matters: a failed rollback means the connection is gone, and the
        // server rolls back on its own.
        let _ = tx.rollback().await;
        Err(match refusal {
            Refusal::VersionTaken(cause) => self.version_taken(&***client, plan, cause).await,
            Refusal::Error(error) => error,
        })
    }

    /// The append's own transaction without tracking: BEGIN, the announcement (`horizon.rs`),
    /// the append statement and COMMIT are sent together, one round trip. If the statement fails, the transaction is aborted
    /// and the COMMIT rolls it back; if its checks refuse the batch, it inserted nothing and the
    /// COMMIT ends an empty transaction.
    ///
    /// All three messages are queued on the connection when the future is first polled, so a
    /// cancelled append can't leave the pooled connection inside a transaction.
    async fn write_pipelined(
        &self,
        client: &deadpool_postgres::Object,
        plan: &Plan<'_>,
        context: &str,
    ) -> Result<Option<u64>> {
        let announce = client
            .prepare_cached(&self.sql.announce)
            .await
            .map_err(pg_error(context))?;
        let append = client
            .prepare_cached(&self.sql.append)
            .await
            .map_err(pg_error(context))?;
        let params = plan.params();
        let (begun, announced, appended, committed) = tokio::join!(
            client.batch_execute("BEGIN"),
            client.execute(&announce, &[]),
            client.query_one(&append, &params),
            client.batch_execute("COMMIT"),
        );
        let row = match (begun, announced, appended) {
            (Ok(()), Ok(_), Ok(row)) => row,
            // A failed announcement aborts the transaction; it is the cause to report.
            (Ok(()), Err(error), _) => {
                return Err(Error::backend(
                    BACKEND,
                    format!("{context}: announcing the appender"),
                    error,
                ));
            }
            (_, _, Err(error)) => {
                return Err(match self.refusal(error, context) {
                    Refusal::VersionTaken(cause) => {
                        self.version_taken(&***client, plan, cause).await
                    }
                    Refusal::Error(error) => error,
                });
            }
            // A failed BEGIN with a statement that worked: it ran on its own and may have
            // committed. (The connection failing fails all of them instead.)
            (Err(error), _, Ok(_)) => return Err(in_doubt(context)(error)),
        };
        let appended = Appended::read(&row, context)?;
        if !appended.passed {
            return Err(rejected(plan, &appended.versions, Scope::Own));
        }
        committed.map_err(in_doubt(context))?;
        appended.last_position(plan)
    }

    /// Tells a version race (a unique violation on `(stream_id, version)`) from other failures.
    fn refusal(&self, error: tokio_postgres::Error, context: &str) -> Refusal {
        let taken = error.as_db_error().is_some_and(|db| {
            *db.code() == SqlState::UNIQUE_VIOLATION
                && db.constraint() == Some(self.names.stream_version_constraint().as_str())
        });
        if taken {
            Refusal::VersionTaken(error)
        } else {
            Refusal::Error(Error::backend(BACKEND, context, error))
        }
    }

    /// The conflict to report after a writer raced past the version check (a unique violation
    /// on `(stream_id, version)`): reads the versions now and names the first stream that is no
    /// longer at its expected version. Versions never move back, so it is still there.
    async fn version_taken<C: GenericClient>(
        &self,
        client: &C,
        plan: &Plan<'_>,
        cause: tokio_postgres::Error,
    ) -> Error {
        let context = plan.describe();
        let versions = match client
            .query_one(&self.sql.stream_versions, &[&plan.streams])
            .await
        {
            Ok(row) => row.try_get::<_, Vec<i64>>(0),
            Err(error) => Err(error),
        };
        match versions {
            Ok(versions) => match check_versions(plan, &versions) {
                Err(conflict) => conflict,
                Ok(()) => Error::backend(BACKEND, context, cause),
            },
            Err(error) => Error::backend(
                BACKEND,
                format!("{context}: reading the streams' versions after a conflict"),
                error,
            ),
        }
    }

    async fn tracking_conflict<C: GenericClient>(
        &self,
        client: &C,
        tracker: &str,
        offered: u64,
    ) -> Error {
        let recorded = client
            .query_opt(&self.sql.tracking_position, &[&tracker])
            .await
            .map_err(pg_error(format!("reading tracker `{tracker}`")))
            .and_then(|row| {
                row.map(|row| rows::count(&row, "a tracking position"))
                    .transpose()
            });
        match recorded {
            Ok(recorded) => Error::TrackingConflict {
                tracker: tracker.to_owned(),
                position: offered,
                recorded: recorded.unwrap_or(0),
            },
            Err(error) => error,
        }
    }

    fn event_stream(&self, stream_id: Uuid, range: StreamRange) -> EventStream<'_> {
        struct Cursor {
            lo: i64,
            hi: i64,
            remaining: usize,
            buffer: std::vec::IntoIter<StoredEvent>,
            previous: Option<u64>,
            exhausted: bool,
        }
        let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let start = Cursor {
            lo: to_i64(range.from.max(1)),
            hi: range.to.map_or(i64::MAX, to_i64),
            remaining: range.limit.unwrap_or(usize::MAX),
            buffer: Vec::new().into_iter(),
            previous: None,
            exhausted: false,
        };
        let backwards = range.backwards;
        Box::pin(futures_util::stream::unfold(
            start,
            move |mut cursor| async move {
                loop {
                    if let Some(event) = cursor.buffer.next() {
                        cursor.remaining -= 1;
                        return Some((Ok(event), cursor));
                    }
                    if cursor.exhausted || cursor.remaining == 0 || cursor.lo > cursor.hi {
                        return None;
                    }
                    let limit = READ_CHUNK.min(i64::try_from(cursor.remaining).unwrap_or(i64::MAX));
                    match self
                        .read_chunk(stream_id, cursor.lo, cursor.hi, limit, backwards)
                        .await
                    {
                        Ok(chunk) => {
                            if let Err(error) =
                                check_contiguous(stream_id, &chunk, &mut cursor.previous, backwards)
                            {
                                cursor.exhausted = true;
                                return Some((Err(error), cursor));
                            }
                            cursor.exhausted = (chunk.len() as i64) < limit;
                            if let Some(last) = chunk.last() {
                                let last = to_i64(last.version);
                                if backwards {
                                    cursor.hi = last - 1;
                                } else {
                                    cursor.lo = last.saturating_add(1);
                                }
                            } else {
                                return None;
                            }
                            cursor.buffer = chunk.into_iter();
                        }
                        Err(error) => {
                            cursor.exhausted = true;
                            return Some((Err(error), cursor));
                        }
                    }
                }
            },
        ))
    }

    async fn read_chunk(
        &self,
        stream_id: Uuid,
        lo: i64,
        hi: i64,
        limit: i64,
        backwards: bool,
    ) -> Result<Vec<StoredEvent>> {
        let context = format!("reading stream {stream_id}");
        let client = self.client(&context).await?;
        let sql = match backwards {
            true => &self.sql.read_stream_backwards,
            false => &self.sql.read_stream_forwards,
        };
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(pg_error(&context))?;
        let rows = client
            .query(&statement, &[&stream_id, &lo, &hi, &limit])
            .await
            .map_err(pg_error(context))?;
        rows.iter().map(rows::event).collect()
    }

    async fn query_count(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        what: &str,
    ) -> Result<u64> {
        let context = format!("reading {what}");
        let client = self.client(&context).await?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(pg_error(&context))?;
        let row = client
            .query_one(&statement, params)
            .await
            .map_err(pg_error(&context))?;
        rows::count(&row, what)
    }
}

/// Compares the versions read at the start of the transaction with the expected ones.
fn check_versions(plan: &Plan<'_>, versions: &[i64]) -> Result<()> {
    if versions.len() != plan.streams.len() {
        return Err(Error::backend(
            BACKEND,
            plan.describe(),
            format!(
                "{} stream versions came back for {} streams",
                versions.len(),
                plan.streams.len()
            ),
        ));
    }
    for ((stream, expected), actual) in plan.streams.iter().zip(&plan.expected).zip(versions) {
        let actual = u64::try_from(*actual).map_err(|_| Error::Corrupt {
            stream: *stream,
            version: 0,
            message: format!("the stream's greatest version is {actual}"),
        })?;
        if actual != *expected {
            return Err(Error::Conflict {
                stream: *stream,
                expected: *expected,
                actual,
            });
        }
    }
    Ok(())
}

/// Why an append stopped inside its transaction.
enum Refusal {
    /// A typed error to return as it is.
    Error(Error),
    /// Another writer took one of the versions first (a unique violation on
    /// `(stream_id, version)`): [`PostgresStore::version_taken`] says which stream.
    VersionTaken(tokio_postgres::Error),
}

/// Why the append statement refused a batch, from the versions it saw: the first stream not at
/// its expected version; if all were, the events did not fit in the transaction's positions.
fn rejected(plan: &Plan<'_>, versions: &[i64], scope: Scope) -> Error {
    if let Err(error) = check_versions(plan, versions) {
        return error;
    }
    match scope {
        Scope::Callers => too_large(usize::try_from(plan.count).unwrap_or(usize::MAX)),
        Scope::Own => Error::backend(
            BACKEND,
            plan.describe(),
            "the transaction id is too large to be encoded in a position (2^43 transactions have run)",
        ),
    }
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Self {
        Refusal::Error(error)
    }
}

/// A failure after which the append may or may not have committed.
fn in_doubt(context: &str) -> impl FnOnce(tokio_postgres::Error) -> Error {
    move |error| {
        Error::backend(
            BACKEND,
            format!("committing ({context}); the connection failed, so the outcome is unknown"),
            error,
        )
    }
}

/// Checks that a stream read has no gaps (versions move by exactly one).
fn check_contiguous(
    stream: Uuid,
    chunk: &[StoredEvent],
    previous: &mut Option<u64>,
    backwards: bool,
) -> Result<()> {
    for event in chunk {
        if let Some(prev) = *previous {
            let expected = match backwards {
                true => prev.checked_sub(1),
                false => prev.checked_add(1),
            };
            if expected != Some(event.version) {
                return Err(Error::Corrupt {
                    stream,
                    version: event.version,
                    message: format!(
                        "version {} follows version {prev}: the stream has a gap",
                        event.version
                    ),
                });
            }
        }
        *previous = Some(event.version);
    }
    Ok(())
}

#[async_trait::async_trait]
impl EventStore for PostgresStore {
    async fn append(&self, batch: AppendBatch) -> Result<u64> {
        let plan = Plan::new(&batch)?;
        if plan.streams.is_empty() && plan.tracking.is_none() {
            return self.last_position().await;
        }
        let context = plan.describe();
        let mut client = self.client(&context).await?;
        let last = match plan.tracking {
            Some(tracking) => {
                self.write_tracked(&mut client, &plan, tracking, &context)
                    .await?
            }
            None if plan.count == 0 => {
                // Only expected versions to check, nothing to write.
                let statement = client
                    .prepare_cached(&self.sql.stream_versions)
                    .await
                    .map_err(pg_error(&context))?;
                let row = client
                    .query_one(&statement, &[&plan.streams])
                    .await
                    .map_err(pg_error(&context))?;
                let versions: Vec<i64> = row.try_get(0).map_err(pg_error(&context))?;
                check_versions(&plan, &versions)?;
                None
            }
            None => self.write_pipelined(&client, &plan, &context).await?,
        };
        drop(client);
        match last {
            Some(position) => Ok(position),
            None => self.last_position().await,
        }
    }

    fn read_stream(&self, stream_id: Uuid, range: StreamRange) -> EventStream<'_> {
        self.event_stream(stream_id, range)
    }

    async fn stream_version(&self, stream_id: Uuid) -> Result<u64> {
        self.query_count(
            &self.sql.stream_version,
            &[&stream_id],
            &format!("the version of stream {stream_id}"),
        )
        .await
    }

    async fn read_log(&self, query: LogQuery) -> Result<Vec<StoredEvent>> {
        let Ok(after) = i64::try_from(query.after) else {
            return Ok(Vec::new()); // no position is that large
        };
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let context = format!("reading the log after position {after}");
        let client = self.client(&context).await?;
        let rows = if query.names.is_empty() {
            self.below_horizon(&client, &self.sql.read_log, &[&after, &limit], &context)
                .await?
        } else {
            self.below_horizon(
                &client,
                &self.sql.read_log_names,
                &[&after, &limit, &query.names],
                &context,
            )
            .await?
        };
        drop(client);
        if (rows.len() as i64) < limit {
            // Caught up with the horizon: say so if an open appender is holding it back.
            self.watch_horizon().await;
        }
        rows.iter().map(rows::event).collect()
    }

    async fn last_position(&self) -> Result<u64> {
        let what = "the last log position";
        let context = format!("reading {what}");
        let client = self.client(&context).await?;
        let rows = self
            .below_horizon(&client, &self.sql.last_position, &[], &context)
            .await?;
        let row = rows.first().ok_or_else(|| {
            Error::backend(BACKEND, context.as_str(), "the query returned no row")
        })?;
        rows::count(row, what)
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        let context = format!(
            "saving the snapshot of stream {} at version {}",
            snapshot.stream_id, snapshot.version
        );
        let version = i64::try_from(snapshot.version).map_err(|_| {
            Error::backend(
                BACKEND,
                context.clone(),
                "the version does not fit in PostgreSQL's int8",
            )
        })?;
        // int8 with the same bits: PostgreSQL has no unsigned 64-bit type.
        let fingerprint = i64::from_ne_bytes(snapshot.fingerprint.to_ne_bytes());
        let client = self.client(&context).await?;
        let statement = client
            .prepare_cached(&self.sql.save_snapshot)
            .await
            .map_err(pg_error(&context))?;
        client
            .execute(
                &statement,
                &[
                    &snapshot.stream_id,
                    &version,
                    &snapshot.aggregate,
                    &fingerprint,
                    &snapshot.state,
                    &snapshot.recorded_at,
                ],
            )
            .await
            .map_err(pg_error(context))?;
        Ok(())
    }

    async fn load_snapshot(
        &self,
        stream_id: Uuid,
        at_or_below: Option<u64>,
    ) -> Result<Option<Snapshot>> {
        let context = format!("loading a snapshot of stream {stream_id}");
        let client = self.client(&context).await?;
        let row = match at_or_below {
            None => {
                let statement = client
                    .prepare_cached(&self.sql.load_snapshot)
                    .await
                    .map_err(pg_error(&context))?;
                client.query_opt(&statement, &[&stream_id]).await
            }
            Some(version) => {
                let version = i64::try_from(version).unwrap_or(i64::MAX);
                let statement = client
                    .prepare_cached(&self.sql.load_snapshot_at)
                    .await
                    .map_err(pg_error(&context))?;
                client.query_opt(&statement, &[&stream_id, &version]).await
            }
        }
        .map_err(pg_error(context))?;
        row.as_ref().map(rows::snapshot).transpose()
    }

    async fn tracking_position(&self, tracker: &str) -> Result<u64> {
        let what = format!("the position of tracker `{tracker}`");
        let context = format!("reading {what}");
        let client = self.client(&context).await?;
        let statement = client
            .prepare_cached(&self.sql.tracking_position)
            .await
            .map_err(pg_error(&context))?;
        let row = client
            .query_opt(&statement, &[&tracker])
            .await
            .map_err(pg_error(context))?;
        match row {
            Some(row) => rows::count(&row, &what),
            None => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistence::record::{NewEvent, StreamAppend, Tracking};
    use std::time::SystemTime;

    fn event() -> NewEvent {
        NewEvent {
            name: "Opened".into(),
            schema_version: 1,
            payload: b"{}".to_vec(),
            metadata: Default::default(),
        }
    }

    #[test]
    fn a_stream_twice_is_refused_before_any_query() {
        let id = Uuid::now_v7();
        let batch = AppendBatch {
            streams: vec![
                StreamAppend {
                    stream_id: id,
                    expected_version: 0,
                    events: vec![event()],
                },
                StreamAppend {
                    stream_id: id,
                    expected_version: 1,
                    events: vec![event()],
                },
            ],
            tracking: None,
        };
        assert!(matches!(
            Plan::new(&batch),
            Err(Error::DuplicateStreamInBatch { stream }) if stream == id
        ));
    }

    #[test]
    fn a_batch_over_the_cap_is_refused_with_a_typed_source() {
        let batch = AppendBatch::single(
            Uuid::now_v7(),
            0,
            vec![event(); MAX_EVENTS_PER_TRANSACTION + 1],
        );
        let Err(Error::Backend { source, .. }) = Plan::new(&batch) else {
            panic!("expected a backend error");
        };
        let too_large = source.downcast_ref::<BatchTooLarge>();
        assert_eq!(
            too_large,
            Some(&BatchTooLarge {
                events: MAX_EVENTS_PER_TRANSACTION + 1,
                max: MAX_EVENTS_PER_TRANSACTION
            })
        );
    }

    #[test]
    fn plan_lays_out_versions_per_stream() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let batch = AppendBatch {
            streams: vec![
                StreamAppend {
                    stream_id: a,
                    expected_version: 3,
                    events: vec![event(), event()],
                },
                StreamAppend {
                    stream_id: b,
                    expected_version: 0,
                    events: vec![event()],
                },
            ],
            tracking: Some(Tracking {
                tracker: "t".into(),
                position: 7,
            }),
        };
        let plan = Plan::new(&batch).unwrap();
        assert_eq!(plan.event_streams, vec![a, a, b]);
        assert_eq!(plan.versions, vec![4, 5, 1]);
        assert_eq!(plan.metadata, vec!["{}"; 3]);
        assert_eq!(plan.tracking, Some(("t", 7, 7)));
    }

    #[test]
    fn gaps_in_a_stream_read_are_corruption() {
        let stored = |version| StoredEvent {
            stream_id: Uuid::nil(),
            version,
            name: "E".into(),
            schema_version: 1,
            payload: Vec::new(),
            metadata: Default::default(),
            recorded_at: SystemTime::UNIX_EPOCH,
            position: version,
        };
        let mut previous = None;
        assert!(
            check_contiguous(Uuid::nil(), &[stored(1), stored(2)], &mut previous, false).is_ok()
        );
        assert!(matches!(
            check_contiguous(Uuid::nil(), &[stored(4)], &mut previous, false),
            Err(Error::Corrupt { version: 4, .. })
        ));
        let mut previous = None;
        assert!(
            check_contiguous(Uuid::nil(), &[stored(3), stored(2)], &mut previous, true).is_ok()
        );
    }

    #[test]
    fn options_debug_hides_the_password() {
        let options = PostgresOptions::new("postgres://app:s3cret@db/orders");
        let shown = format!("{options:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("orders"), "{shown}");
    }
}
