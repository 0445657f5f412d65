//! One active runner per projection: [`PostgresClaim`], a session-level advisory lock held on a
//! connection of its own for as long as the projector runs.
//!
//! The lock's keys are [`CLAIM_CLASS`] and a hash of the schema, events table and tracker name
//! ([`PostgresStore::projection_lock`]), so projections of different stores on one server don't
//! wait for each other. A projector takes it with `pg_try_advisory_lock`; while another
//! session holds it, the projector is on standby and tries again every
//! [`Projector::standby_interval`](crate::Projector::standby_interval). The lock goes with the
//! session: when the holder stops (it unlocks and closes its connection), crashes, or its
//! connection is killed (`pg_terminate_backend`, a network failure noticed by the server), the
//! server releases it and a standby takes over. The connection is not from the pool (a pooled
//! connection handed back would keep the lock): it is the pool's config with `application_name`
//! set to `<yours>-projector`, or `eventsource-projector` if the config sets none.

use std::fmt;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

use super::schema::{Names, stable_hash};
use super::{PostgresStore, pg_error};
use crate::application::claim::Standby;
use crate::error::Result;

/// First key of the advisory lock that marks a projection's active runner (`"ESPJ"` in ASCII).
pub(super) const CLAIM_CLASS: i32 = 0x4553_504A;

/// The claim connection's `application_name` when the connection config sets none; with one,
/// it uses `<that name>-projector`.
pub(super) const CLAIM_APPLICATION_NAME: &str = "eventsource-projector";

/// The pool's `config`, renamed so that `pg_stat_activity` tells claim connections apart.
pub(super) fn claim_config(mut config: tokio_postgres::Config) -> tokio_postgres::Config {
    let name = match config.get_application_name() {
        Some(name) => format!("{name}-projector"),
        None => CLAIM_APPLICATION_NAME.to_owned(),
    };
    config.application_name(name);
    config
}

/// The second advisory-lock key of tracker `tracker` in the store named by `names`.
pub(super) fn claim_key(names: &Names, tracker: &str) -> i32 {
    stable_hash(&format!("{}.{}.{tracker}", names.schema, names.events))
}

/// A projection's claim in PostgreSQL: a connection of its own holding the projection's
/// session-level advisory lock (see [`PostgresStore::projection_lock`]). Dropping it closes the
/// connection, which releases the lock.
pub struct PostgresClaim {
    client: Option<Client>,
    /// Turns `true` (or closes) when the connection ends.
    ended: watch::Receiver<bool>,
    connection: Option<JoinHandle<()>>,
    keys: (i32, i32),
}

impl fmt::Debug for PostgresClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresClaim")
            .field("keys", &self.keys)
            .field("ended", &*self.ended.borrow())
            .finish()
    }
}

impl Drop for PostgresClaim {
    fn drop(&mut self) {
        drop(self.client.take());
        if let Some(connection) = self.connection.take() {
            // Dropping the connection closes the socket: the server ends the session.
            connection.abort();
        }
    }
}

impl PostgresClaim {
    /// Waits until this session holds the lock of `tracker`.
    pub(super) async fn take(
        store: &PostgresStore,
        tracker: &str,
        standby: &Standby,
    ) -> Result<Self> {
        let keys = store.projection_lock(tracker);
        let context = format!("taking the claim of projection `{tracker}`");
        let (client, connection) = store
            .claim_config
            .connect(NoTls)
            .await
            .map_err(pg_error(format!("{context}: connecting")))?;
        let (ended_tx, ended) = watch::channel(false);
        let connection = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "eventsource: a projection claim connection ended");
            }
            let _ = ended_tx.send(true);
        });
        let statement = "SELECT pg_catalog.pg_try_advisory_lock($1, $2)";
        // On an error return, dropping `client` closes the connection and ends its task.
        loop {
            let row = client
                .query_one(statement, &[&keys.0, &keys.1])
                .await
                .map_err(pg_error(context.clone()))?;
            let held: bool = row.try_get(0).map_err(pg_error(context.clone()))?;
            if held {
                return Ok(Self {
                    client: Some(client),
                    ended,
                    connection: Some(connection),
                    keys,
                });
            }
            standby.waiting();
            tokio::time::sleep(standby.interval()).await;
        }
    }

    /// Resolves when the connection (and with it the lock) is gone.
    pub(super) async fn lost(&mut self) {
        // An error means the sender is gone: the connection task ended too.
        let _ = self.ended.wait_for(|ended| *ended).await;
    }

    /// Unlocks and closes the connection.
    pub(super) async fn release(mut self) {
        if let Some(client) = self.client.take() {
            let (class, key) = self.keys;
            let _ = client
                .execute(
                    "SELECT pg_catalog.pg_advisory_unlock($1, $2)",
                    &[&class, &key],
                )
                .await;
        }
        if let Some(connection) = self.connection.take() {
            // The client is dropped: the connection sends Terminate and ends.
            if tokio::time::timeout(std::time::Duration::from_secs(5), connection)
                .await
                .is_err()
            {
                tracing::debug!("eventsource: a projection claim connection was slow to close");
            }
        }
    }
}

/// A session advisory lock per tracker, on a connection of its own.
impl crate::application::claim::Claims for PostgresStore {
    type Claim = PostgresClaim;

    async fn claim(&self, tracker: &str, standby: &Standby) -> Result<PostgresClaim> {
        PostgresClaim::take(self, tracker, standby).await
    }

    async fn claim_lost(claim: &mut PostgresClaim) {
        claim.lost().await;
    }

    async fn release(&self, claim: PostgresClaim) {
        claim.release().await;
    }
}
