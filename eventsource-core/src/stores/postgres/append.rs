//! Writing: an append in its own transaction (one round trip), with a tracking record, or
//! inside a caller's transaction ([`PostgresStore::append_in`]); telling a version race from
//! other failures, and a commit whose outcome is unknown.

use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Transaction};

use super::plan::{Appended, AppendedOwn, Plan, Scope, check_versions, rejected};
use super::{BACKEND, PostgresStore, pg_error, rows};
use crate::error::{Error, Result};
use crate::persistence::position::Position;
use crate::persistence::record::AppendBatch;
use crate::persistence::store::EventStore;

/// Why an append stopped inside its transaction.
enum Refusal {
    /// A typed error to return as it is.
    Error(Error),
    /// Another writer took one of the versions first (a unique violation on
    /// `(stream_id, version)`): [`PostgresStore::version_taken`] says which stream.
    VersionTaken(tokio_postgres::Error),
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Self {
        Refusal::Error(error)
    }
}

/// Whether `error` is the server's answer refusing a statement (rather than no answer: the
/// connection closed or broke, and what the server did is unknown).
fn refused(error: &tokio_postgres::Error) -> bool {
    error.as_db_error().is_some()
}

/// A failure after which the append may or may not have committed.
pub(super) fn in_doubt(context: &str) -> impl FnOnce(tokio_postgres::Error) -> Error {
    move |error| Error::outcome_unknown(BACKEND, format!("committing ({context})"), error)
}

impl PostgresStore {
    /// Appends `batch` inside a transaction of your own, so that the events commit (or roll
    /// back) together with your other writes — a read model, an outbox row.
    ///
    /// The same rules as [`EventStore::append`] apply; a failed append rolls back to a savepoint
    /// and leaves your transaction usable. Returns the position the last event will have once
    /// your transaction commits (the current last position if the batch holds no events). Until
    /// your transaction finishes, the store's log does not move past it (see the
    /// [module docs](super)): commit promptly.
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
    pub async fn append_in(
        &self,
        tx: &mut Transaction<'_>,
        batch: AppendBatch,
    ) -> Result<Position> {
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
    /// that takes the subtransaction's id from a ticket row, the ticket's deletion, the
    /// tracking upsert and the `NOTIFY`, one after the other.
    async fn write_in(
        &self,
        tx: &Transaction<'_>,
        plan: &Plan<'_>,
        context: &str,
    ) -> Result<Option<Position>, Refusal> {
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
        // Inside the savepoint: a rollback to it, or of the caller's transaction, drops it.
        if let Some(notify) = &self.sql.notify {
            tx.batch_execute(notify).await.map_err(pg_error(format!(
                "{context}: sending the commit notification"
            )))?;
        }
        Ok(appended.last_position(plan)?)
    }

    /// The append's own transaction when it records a tracking position: BEGIN, then the
    /// announcement, the append statement and the tracking upsert together, then COMMIT or
    /// ROLLBACK. As without tracking, the notifier tells other processes once it committed.
    pub(super) async fn write_tracked(
        &self,
        client: &mut deadpool_postgres::Object,
        plan: &Plan<'_>,
        (tracker, position, offered): (&str, i64, Position),
        context: &str,
    ) -> Result<Option<Position>> {
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

    /// The append's own transaction without tracking: one statement
    /// ([`Sql::append_own`](super::schema::Sql)) in an implicit transaction, which announces
    /// the appender (`horizon.rs`), checks the expected versions and inserts; the server commits
    /// it when it reaches the statement's Sync, before it answers `ReadyForQuery`, and the
    /// driver reads up to that answer, so a commit that fails comes back as the statement's
    /// error. One round trip, one message for the server to parse and one to answer. If the
    /// server refuses the statement (a version race, or another error), nothing was written.
    /// If its checks refuse the batch, it inserted nothing (the store then reads the streams'
    /// versions to say which one was not at its expected version). Other processes are told
    /// of the commit by the store's notifier afterwards (`notify.rs`), not by a `NOTIFY` in
    /// this transaction.
    ///
    /// There is no transaction block to leave open: a cancelled append leaves the pooled
    /// connection with at most the statement in flight, which commits or not on its own. A
    /// statement that gets no answer because the connection failed leaves the outcome unknown
    /// ([`Error::OutcomeUnknown`]): the server may have run and committed it.
    pub(super) async fn write_own(
        &self,
        client: &deadpool_postgres::Object,
        plan: &Plan<'_>,
        context: &str,
    ) -> Result<Option<Position>> {
        let append = client
            .prepare_cached(&self.sql.append_own)
            .await
            .map_err(pg_error(context))?;
        let row = match client.query_one(&append, &plan.params()).await {
            Ok(row) => row,
            // The server refused the statement or its commit: nothing was written.
            Err(error) if refused(&error) => {
                return Err(match self.refusal(error, context) {
                    Refusal::VersionTaken(cause) => {
                        self.version_taken(&***client, plan, cause).await
                    }
                    Refusal::Error(error) => error,
                });
            }
            // No answer: the connection failed, and the server may have committed.
            Err(error) => return Err(in_doubt(context)(error)),
        };
        let appended = AppendedOwn::read(&row, context)?;
        if !appended.passed() {
            let versions = self.stream_versions(&***client, plan).await?;
            return Err(appended.refusal(plan, &versions));
        }
        appended.last_position(plan)
    }

    /// The versions `plan`'s streams are at now, in batch order.
    async fn stream_versions<C: GenericClient>(
        &self,
        client: &C,
        plan: &Plan<'_>,
    ) -> Result<Vec<i64>> {
        let context = format!("{}: reading the streams' versions", plan.describe());
        let row = client
            .query_one(&self.sql.stream_versions, &[&plan.streams])
            .await
            .map_err(pg_error(&context))?;
        row.try_get(0).map_err(pg_error(context))
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
            Refusal::Error(pg_error(context)(error))
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
        offered: Position,
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
                recorded: Position::new(recorded.unwrap_or(0)),
            },
            Err(error) => error,
        }
    }
}
