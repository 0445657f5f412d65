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
//!   metadata jsonb, recorded_at timestamptz, position int8, event_id uuid, category text)`,
//!   primary key `(stream_id, version)`, unique index on `position`, index on
//!   `(category, position)` for category-filtered log reads. `event_id` is NULL for events
//!   stored before schema version 3 (they read back with
//!   [`legacy_event_id`](crate::legacy_event_id)), `category` is `''` for them.
//! - `snapshots(stream_id, version, aggregate, fingerprint, state, recorded_at)`, primary key
//!   `(stream_id, version)`.
//! - `tracking(tracker text primary key, position int8)`.
//! - `events_data_keys(subject uuid, key_id int8, wrapped bytea, forgotten_through int8,
//!   recorded_at timestamptz)`, primary key `(subject, key_id)`: the data keys of encrypted
//!   payloads, each wrapped by a master key ([`PostgresKeyStore`]); row 0 of each subject is
//!   its tombstone once it is forgotten.
//! - `events_tickets(pid int4)`, unlogged and always empty outside a running
//!   [`PostgresStore::append_in`]: it inserts and deletes one row to take a transaction id of
//!   its own (see [`horizon`]).
//!
//! # Appends
//!
//! An [`EventStore::append`] is one transaction and, without a tracking record, **one round
//! trip and one statement**, alone in its (implicit) transaction: it announces the appender,
//! checks every stream's expected version and inserts all events of all streams with
//! one `INSERT … SELECT FROM unnest($1::uuid[], $2::int8[], …)`, whatever their number — never
//! an `INSERT` per event. If the check refuses the batch it inserts nothing and its
//! transaction commits empty; the store then reads the versions (a second round trip, only on
//! refusal) and reports [`Error::Conflict`] naming the stream, the expected and the actual
//! version. A writer that races past the check
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
//! # Wake-ups
//!
//! A [`Subscription`](crate::Subscription) that has caught up waits for a wake-up, or at most its
//! poll interval, before it reads the log again. Every commit of this store is followed by a
//! `NOTIFY` on a channel named for the store ([`PostgresStore::notify_channel`]), which
//! PostgreSQL delivers to every listening session. [`EventStore::append`] (with or without a
//! tracking record) doesn't send it inside its transaction: once its `COMMIT` is acknowledged it
//! pokes the store's **notifier**, a task on a connection of its own (the pool's config with
//! `application_name` set to `<yours>-notifier`, or `eventsource-notifier`) that sends one
//! `NOTIFY` for all the commits made since its last one, so appends never wait for it and a
//! burst of appends costs a few notifications. [`PostgresStore::append_in`] can't know when
//! your transaction commits and sends its `NOTIFY` inside its savepoint. The notification
//! carries nothing; readers always read the log, so a lost, late or spurious wake-up costs
//! latency or a read, never an event (a process that dies between its `COMMIT` and its
//! notifier's `NOTIFY` wakes no other process: they see its events after their poll interval).
//!
//! - **Who listens.** The first [`EventStore::wake_ups`] call inside a tokio runtime (what a
//!   `Subscription` does when it is created) starts one background task per store, shared by
//!   its clones, on a connection of its own (not from the pool; the pool's config with
//!   `application_name` set to `<yours>-listener`, or `eventsource-listener` if the config sets
//!   none). It runs `LISTEN` and wakes the store's readers on each notification. It stops when
//!   the last clone of the store is dropped. Outside a runtime `wake_ups` returns none: readers
//!   poll. This process's own appends also wake its readers directly once their `COMMIT` is
//!   acknowledged.
//! - **When the connection drops** (a server restart, `pg_terminate_backend`, a network
//!   failure), the listener wakes the readers once so they re-read, logs a `tracing` warning,
//!   and reconnects with backoff (250 ms doubling to 30 s). While it is down, readers see other
//!   processes' commits after their poll interval. Right after each reconnect's `LISTEN`
//!   succeeds it wakes them again, since commits made meanwhile were not heard. A network path
//!   that dies silently is only noticed by TCP keepalives: set `keepalives_idle` in the URL if
//!   that matters to you.
//! - **An appender that rolls back** sends nothing: `NOTIFY` inside a transaction or a savepoint
//!   that rolls back is dropped. Readers it held back (see above: the log doesn't move past an
//!   open appender) were woken by the commits behind it, read, and found nothing past it; they
//!   catch up at the next commit's wake-up or their next poll. Likewise, a wake-up can reach a
//!   reader a moment before the server has released the committing transaction's locks; that
//!   read comes up short and the next wake-up or poll completes it.
//! - **The cost.** PostgreSQL adds a committing transaction's notifications to one queue under
//!   a lock shared by the whole cluster, held until that transaction's commit is flushed:
//!   transactions that notify commit one at a time. Appends that notified inside their own
//!   transaction therefore took turns for their WAL flush, and on a server shared with other
//!   programs that notify, waited for theirs. That is why [`EventStore::append`] leaves the
//!   `NOTIFY` to the notifier, whose transaction flushes nothing; appends commit concurrently
//!   (see `BENCHMARKS.md`). [`PostgresStore::append_in`] still notifies inside your
//!   transaction. If the notification queue fills (8 GB by default; a session that listens and
//!   then stays in one transaction keeps it from draining), the notifier's `NOTIFY` fails (it
//!   logs a `tracing` warning and retries; appends are not affected) and `append_in` fails.
//!   [`PostgresOptions::notify`]`(false)` turns the `NOTIFY`, the notifier and the listener
//!   off: readers then hear only this process's own appends and see the rest after their poll
//!   interval.
//!
//! # One active runner per projection
//!
//! A projector with [`PostgresWork`] takes its projection's [`PostgresClaim`] before it
//! processes anything: a session-level advisory lock ([`PostgresStore::projection_lock`]) on a
//! connection of its own (the pool's config with `application_name` set to `<yours>-projector`,
//! or `eventsource-projector`). Other projectors of the same projection on the same database,
//! in any process, wait on standby and try again every
//! [`Projector::standby_interval`](crate::Projector::standby_interval); when the holder stops,
//! crashes or its connection is killed, the server releases the lock and one of them takes over
//! from the recorded tracking position. A holder whose connection ends goes back to standby.
//! Each running projector uses one such connection beside the pool.
//!
//! # Failures
//!
//! Connection failures, pool timeouts and SQL errors are [`Error::Backend`] with what the store
//! was doing; a row that breaks the store's invariants (a negative version, metadata that is not
//! a JSON object of strings, …) is [`Error::Corrupt`] naming the stream and version. A dead
//! connection is dropped from the pool when it is handed back. If the connection fails while
//! `COMMIT` is in flight the append's outcome is unknown: the error says so
//! ([`Error::OutcomeUnknown`]), and a retry with the same expected version either succeeds or
//! reports a conflict. An append without a tracking record sends its `COMMIT` with its
//! statements (one round trip), so for it that is any connection failure before the answers
//! come back; with a tracking record, `COMMIT` is sent once the statements have succeeded, and
//! a connection failure before that means nothing was written.
//!
//! Connections are made without TLS (`NoTls`): use a local socket, a private network or a TLS
//! proxy.
//!
//! [`EventStore`]: crate::EventStore
//! [`EventStore::append`]: crate::EventStore::append
//! [`EventStore::read_log`]: crate::EventStore::read_log
//! [`EventStore::last_position`]: crate::EventStore::last_position
//! [`EventStore::read_stream`]: crate::EventStore::read_stream
//! [`EventStore::stream_version`]: crate::EventStore::stream_version
//! [`EventStore::wake_ups`]: crate::EventStore::wake_ups
//! [`Error::Conflict`]: crate::Error::Conflict
//! [`Error::TrackingConflict`]: crate::Error::TrackingConflict
//! [`Error::Backend`]: crate::Error::Backend
//! [`Error::OutcomeUnknown`]: crate::Error::OutcomeUnknown
//! [`Error::Corrupt`]: crate::Error::Corrupt
//! [`Error::Config`]: crate::Error::Config

mod append;
mod claim;
pub mod horizon;
mod keys;
mod listen;
mod notify;
mod options;
mod plan;
mod projection;
mod read;
mod rows;
mod schema;
mod store;

use std::fmt;
use std::sync::Arc;

use deadpool_postgres::Pool;

pub use claim::PostgresClaim;
pub use deadpool_postgres;
pub use horizon::{HorizonStatus, OpenAppender};
pub use keys::PostgresKeyStore;
pub use options::PostgresOptions;
pub use plan::BatchTooLarge;
pub use projection::PostgresWork;
pub use schema::SCHEMA_VERSION;
pub use tokio_postgres;

use horizon::HorizonWatch;
use listen::Wake;
use schema::{Names, Sql};

use crate::error::{Error, Result};

/// The backend name in this store's errors.
const BACKEND: &str = "postgres";

/// How many low bits of a position hold the event's index within its transaction.
const POSITION_SHIFT: u32 = 20;

/// The most events one transaction can write: a position keeps the event's index within its
/// transaction in its low 20 bits.
pub const MAX_EVENTS_PER_TRANSACTION: usize = 1 << POSITION_SHIFT;

/// Maps a driver error to a typed error with what the store was doing: [`Error::Busy`] when
/// the server refused for now (a serialization failure or deadlock, a lock not available, too
/// many connections, starting up), [`Error::Backend`] otherwise.
fn pg_error(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
    move |e| {
        if is_busy(&e) {
            Error::busy(BACKEND, context, e)
        } else {
            Error::backend(BACKEND, context, e)
        }
    }
}

/// Whether the server refused an operation that may succeed if tried again.
fn is_busy(error: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    error.code().is_some_and(|code| {
        [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::CANNOT_CONNECT_NOW,
        ]
        .contains(code)
    })
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
    wake: Arc<Wake>,
    /// The config of projection claim connections (see [`PostgresClaim`]).
    claim_config: Arc<tokio_postgres::Config>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.names.schema)
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
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

    /// The channel this store's appends `NOTIFY` on (`es_` and eight hex digits, named for
    /// its schema and events table), or `None` with
    /// [`PostgresOptions::notify(false)`](PostgresOptions::notify). A program of your own can
    /// `LISTEN` on it to learn that events may have committed; a notification carries no
    /// payload.
    pub fn notify_channel(&self) -> Option<&str> {
        self.sql
            .notify
            .as_deref()
            .and_then(|sql| sql.strip_prefix("NOTIFY \""))
            .and_then(|quoted| quoted.strip_suffix('"'))
    }

    /// The advisory lock keys `(class, key)` that the active runner of projection `tracker`
    /// holds on this store (see [`PostgresClaim`]): in `pg_locks`, `locktype = 'advisory'`,
    /// `objsubid = 2`, `classid` and `objid` the two keys as unsigned 32-bit numbers. Find the
    /// active runner's session with it (its `pid`, then `pg_stat_activity`).
    pub fn projection_lock(&self, tracker: &str) -> (i32, i32) {
        (claim::CLAIM_CLASS, claim::claim_key(&self.names, tracker))
    }

    /// The connection pool, for queries of your own (read models, diagnostics).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    async fn client(&self, context: &str) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| {
            let context = format!("getting a pooled connection for {context}");
            match &e {
                // Every connection stayed busy for the whole wait: nothing was done.
                deadpool_postgres::PoolError::Timeout(_) => Error::busy(BACKEND, context, e),
                deadpool_postgres::PoolError::Backend(driver) if is_busy(driver) => {
                    Error::busy(BACKEND, context, e)
                }
                _ => Error::backend(BACKEND, context, e),
            }
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
}
