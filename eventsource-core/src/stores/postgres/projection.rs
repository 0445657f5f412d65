//! Exactly-once projections into the store's PostgreSQL database: [`PostgresWork`], the
//! transaction a projection's handlers write their read model through, committed with the
//! projection's tracking position.

use std::fmt;

use deadpool_postgres::Object;

use super::append::in_doubt;
use super::claim::PostgresClaim;
use super::{BACKEND, PostgresStore, pg_error};
use crate::application::projection::{ProjectionContext, Standby};
use crate::error::{Error, Result};
use crate::persistence::position::Position;
use crate::persistence::store::EventStore;

/// The transaction a projection with `#[projection(context = PostgresWork)]` gets for a batch
/// of events: a pooled connection inside `BEGIN`. Write the read model through
/// [`client`](Self::client); the projector commits those writes and the projection's tracking
/// position together, so after a crash it resumes right after the last committed event
/// (exactly once).
///
/// Its projector is the projection's only active runner on the database: it holds a
/// [`PostgresClaim`] while it runs, and others wait on standby.
///
/// A batch that ends without a commit or rollback (a cancelled task) closes its connection
/// instead of handing it back to the pool, so the server rolls it back.
///
/// This type exposes `tokio_postgres` in the public API, only for this purpose.
pub struct PostgresWork {
    client: Option<Object>,
}

impl fmt::Debug for PostgresWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresWork")
            .field("open", &self.client.is_some())
            .finish()
    }
}

impl PostgresWork {
    /// The connection, inside the batch's transaction: run the read model's statements on it
    /// (`work.client().execute(…).await?`).
    pub fn client(&self) -> &tokio_postgres::Client {
        // Present until commit or rollback, which consume the work.
        match &self.client {
            Some(client) => client,
            None => unreachable!("a PostgresWork is used after it ended"),
        }
    }
}

impl Drop for PostgresWork {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Still inside its transaction: don't give it back to the pool.
            drop(Object::take(client));
        }
    }
}

impl ProjectionContext<PostgresStore> for PostgresWork {
    type Claim = PostgresClaim;

    async fn claim(
        store: &PostgresStore,
        tracker: &str,
        standby: &Standby,
    ) -> Result<PostgresClaim> {
        PostgresClaim::take(store, tracker, standby).await
    }

    async fn claim_lost(claim: &mut PostgresClaim) {
        claim.lost().await;
    }

    async fn release(claim: PostgresClaim, _: &PostgresStore) {
        claim.release().await;
    }

    async fn resume_position(store: &PostgresStore, tracker: &str) -> Result<Position> {
        store.tracking_position(tracker).await
    }

    async fn begin(store: &PostgresStore, tracker: &str) -> Result<Self> {
        let context = format!("starting a batch of projection `{tracker}`");
        let client = store.client(&context).await?;
        client
            .batch_execute("BEGIN")
            .await
            .map_err(pg_error(context))?;
        Ok(Self {
            client: Some(client),
        })
    }

    async fn commit(
        mut self,
        store: &PostgresStore,
        tracker: &str,
        position: Position,
    ) -> Result<()> {
        let Some(client) = self.client.take() else {
            return Ok(());
        };
        let context = format!("recording position {position} of projection `{tracker}`");
        let offered = i64::try_from(position.get()).map_err(|_| {
            Error::backend(BACKEND, context.clone(), "the position does not fit int8")
        })?;
        // Only forward: 0 rows means another runner recorded this position (or a later one).
        let written = client
            .execute(&store.sql.upsert_tracking, &[&tracker, &offered])
            .await
            .map_err(pg_error(context.clone()));
        match written {
            Ok(0) => {
                let recorded = store.tracking_position(tracker).await;
                let _ = client.batch_execute("ROLLBACK").await;
                Err(Error::TrackingConflict {
                    tracker: tracker.to_owned(),
                    position,
                    recorded: recorded?,
                })
            }
            Ok(_) => {
                client
                    .batch_execute("COMMIT")
                    .await
                    .map_err(in_doubt(&context))?;
                Ok(())
            }
            Err(error) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(error)
            }
        }
    }

    async fn rollback(mut self) {
        if let Some(client) = self.client.take()
            && client.batch_execute("ROLLBACK").await.is_err()
        {
            // A broken connection: close it rather than return it to the pool.
            drop(Object::take(client));
        }
    }

    async fn forget(mut self, store: &PostgresStore, tracker: &str) -> Result<()> {
        let Some(client) = self.client.take() else {
            return Ok(());
        };
        let context = format!("forgetting the position of projection `{tracker}`");
        let deleted = client
            .execute(&store.sql.delete_tracking, &[&tracker])
            .await
            .map_err(pg_error(context.clone()));
        if let Err(error) = deleted {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(error);
        }
        client
            .batch_execute("COMMIT")
            .await
            .map_err(in_doubt(&context))
    }
}
