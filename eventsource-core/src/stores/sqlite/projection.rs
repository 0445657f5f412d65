//! Exactly-once projections into the store's SQLite file: [`SqliteWork`], the transaction a
//! projection's handlers write their read model through, committed with the projection's
//! tracking position.

use std::fmt;

use rusqlite::{Connection, params};

use super::claim::SqliteClaim;
use super::options::Location;
use super::{BACKEND, Shared, SqliteStore, open_connection, sqlite_error};
use crate::application::projection::{ProjectionContext, Standby};
use crate::error::{Error, Result};
use crate::persistence::position::Position;
use crate::persistence::store::EventStore;

/// The transaction a projection with `#[projection(context = SqliteWork)]` gets for a batch of
/// events: an `IMMEDIATE` transaction on a connection of its own to the store's file. Write
/// the read model through [`connection`](Self::connection); the projector commits those writes
/// and the projection's tracking position together, so after a crash it resumes right after
/// the last committed event (exactly once).
///
/// The transaction holds SQLite's write lock while the batch runs, so the store's appends wait
/// (up to the busy timeout) until it commits: keep handlers quick, or the batches small
/// ([`Projector::page_size`](crate::Projector::page_size)). Handlers run on the async runtime's
/// thread and call SQLite synchronously; don't hold the connection across an `.await`.
/// Its projector is the projection's only active runner on the file: it holds a
/// [`SqliteClaim`] (a lease) while it runs, and others wait on standby.
/// An in-memory SQLite store has no file to share: it can't take such projections.
///
/// This type exposes `rusqlite` in the public API, only for this purpose.
pub struct SqliteWork {
    connection: Option<Connection>,
}

impl fmt::Debug for SqliteWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteWork")
            .field("open", &self.connection.is_some())
            .finish()
    }
}

impl SqliteWork {
    /// The connection, inside the batch's transaction.
    pub fn connection(&self) -> &Connection {
        // Present until commit or rollback, which consume the work.
        self.connection
            .as_ref()
            .unwrap_or_else(|| unreachable!("a SqliteWork is used after it ended"))
    }

    fn take(mut self) -> Option<Connection> {
        self.connection.take()
    }

    /// Ends the batch with `end` (its last statements and `COMMIT`), run on a blocking thread.
    async fn finish<F>(self, store: &SqliteStore, doing: &'static str, end: F) -> Result<()>
    where
        F: FnOnce(&Connection, &Shared) -> Result<()> + Send + 'static,
    {
        let Some(connection) = self.take() else {
            return Ok(());
        };
        let shared = std::sync::Arc::clone(&store.shared);
        tokio::task::spawn_blocking(move || end(&connection, &shared))
            .await
            .map_err(|e| Error::backend(BACKEND, doing, e))?
    }
}

impl ProjectionContext<SqliteStore> for SqliteWork {
    type Claim = SqliteClaim;

    async fn claim(store: &SqliteStore, tracker: &str, standby: &Standby) -> Result<SqliteClaim> {
        SqliteClaim::take(store, tracker, standby).await
    }

    async fn claim_lost(claim: &mut SqliteClaim) {
        claim.lost().await;
    }

    async fn release(claim: SqliteClaim, store: &SqliteStore) {
        claim.release(store).await;
    }

    async fn resume_position(store: &SqliteStore, tracker: &str) -> Result<Position> {
        store.tracking_position(tracker).await
    }

    async fn begin(store: &SqliteStore, tracker: &str) -> Result<Self> {
        let options = store.shared.options.clone();
        if let Location::Memory = options.location {
            return Err(Error::Config {
                backend: BACKEND,
                message: format!(
                    "projection `{tracker}` writes its read model in the store's database, but an in-memory SQLite store has none to share; use a file, or a read model with context `()`"
                ),
            });
        }
        let doing = format!("starting a batch of projection `{tracker}`");
        let connection = tokio::task::spawn_blocking(move || {
            let connection = open_connection(&options, true)?;
            connection
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| sqlite_error(e, doing, options.busy_timeout))?;
            Ok::<_, Error>(connection)
        })
        .await
        .map_err(|e| Error::backend(BACKEND, "starting a projection batch", e))??;
        Ok(Self {
            connection: Some(connection),
        })
    }

    async fn commit(self, store: &SqliteStore, tracker: &str, position: Position) -> Result<()> {
        let tracker = tracker.to_owned();
        self.finish(
            store,
            "committing a projection batch",
            move |connection, shared| {
                let doing = format!("recording position {position} of projection `{tracker}`");
                let offered = i64::try_from(position.get()).map_err(|_| {
                    Error::backend(
                        BACKEND,
                        doing.clone(),
                        "the position does not fit SQLite's integer",
                    )
                })?;
                let recorded: Option<i64> =
                    match connection
                        .query_row(&shared.sql.tracking_position, [&tracker], |row| row.get(0))
                    {
                        Ok(value) => Some(value),
                        Err(rusqlite::Error::QueryReturnedNoRows) => None,
                        Err(e) => return Err(shared.failed(doing)(e)),
                    };
                if let Some(recorded) = recorded.filter(|recorded| *recorded >= offered) {
                    let _ = connection.execute_batch("ROLLBACK");
                    return Err(Error::TrackingConflict {
                        tracker,
                        position,
                        recorded: Position::new(u64::try_from(recorded).unwrap_or(0)),
                    });
                }
                connection
                    .execute(&shared.sql.save_tracking, params![tracker, offered])
                    .map_err(shared.failed(doing))?;
                connection
                    .execute_batch("COMMIT")
                    .map_err(shared.failed(format!("committing a batch of projection `{tracker}`")))
            },
        )
        .await
    }

    async fn rollback(self) {
        if let Some(connection) = self.take() {
            // Dropping the connection rolls back too; this only says it sooner.
            let _ = tokio::task::spawn_blocking(move || connection.execute_batch("ROLLBACK")).await;
        }
    }

    async fn forget(self, store: &SqliteStore, tracker: &str) -> Result<()> {
        let tracker = tracker.to_owned();
        self.finish(
            store,
            "forgetting a projection's position",
            move |connection, shared| {
                connection
                    .execute(&shared.sql.delete_tracking, [&tracker])
                    .map_err(
                        shared.failed(format!("forgetting the position of projection `{tracker}`")),
                    )?;
                connection.execute_batch("COMMIT").map_err(
                    shared.failed(format!("committing the rebuild of projection `{tracker}`")),
                )
            },
        )
        .await
    }
}
