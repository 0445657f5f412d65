//! One active runner per projection: [`SqliteClaim`], a lease row in the file's
//! `<events>_projection_leases` table, renewed while the projector runs.
//!
//! Why a lease and not a lock: SQLite's own locks last one transaction, and a projector must
//! stay active across many; an OS file lock would need a dependency (std has none that is
//! portable) and doesn't cover a file on a network share any better. A row works across
//! processes with the bundled SQLite, and `sqlite3` shows who holds what.
//!
//! A projector takes the lease with one statement (atomic, under SQLite's write lock) that
//! succeeds when no row exists, the row has expired, or it already holds it. While it holds
//! it, a background task renews it every [`RENEW_EVERY`] to expire [`LEASE`] later. Stopping
//! deletes the row, and a standby takes over at its next try; a holder that crashed (or stalled
//! for longer than the lease) is replaced once its lease expires, [`LEASE`] after its last
//! renewal at the most. A holder that finds its lease taken, or can't renew it before it would
//! have expired, treats the claim as lost and goes back to standby. Expiry compares wall-clock
//! times, which is sound for processes on one machine sharing one file.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::params;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::options::Location;
use super::{BACKEND, Shared, SqliteStore, micros_now, open_connection, sqlite_error};
use crate::application::claim::Standby;
use crate::error::{Error, Result};

/// How long a lease lasts after it is taken or renewed, unless
/// [`SqliteOptions::claim_lease`](super::SqliteOptions::claim_lease) says otherwise: the
/// longest a crashed holder keeps a standby waiting.
pub const LEASE: Duration = Duration::from_secs(10);

/// How often the holder renews a lease of the default length (a quarter of the lease).
pub const RENEW_EVERY: Duration = Duration::from_millis(2500);

/// A projection's claim in a SQLite file: the lease row of its tracker, renewed by a background
/// task while it is held. Dropping it stops the renewals (the lease then expires);
/// [`release`](crate::projection::ProjectionContext::release) deletes the row at once.
pub struct SqliteClaim {
    tracker: String,
    holder: String,
    lost: watch::Receiver<bool>,
    heartbeat: JoinHandle<()>,
}

impl fmt::Debug for SqliteClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteClaim")
            .field("tracker", &self.tracker)
            .field("holder", &self.holder)
            .field("lost", &*self.lost.borrow())
            .finish()
    }
}

impl Drop for SqliteClaim {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

/// One statement on a connection of its own, on the blocking pool.
async fn run<T: Send + 'static>(
    shared: &Arc<Shared>,
    doing: String,
    statement: impl FnOnce(&rusqlite::Connection, &Shared) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T> {
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || {
        let connection = open_connection(&shared.options, true)?;
        statement(&connection, &shared)
            .map_err(|e| sqlite_error(e, doing, shared.options.busy_timeout))
    })
    .await
    .map_err(|e| Error::backend(BACKEND, "a projection lease statement", e))?
}

/// Microseconds since the Unix epoch, `lease` from now.
fn expiry(now: i64, lease: Duration) -> i64 {
    now.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX))
}

impl SqliteClaim {
    /// Waits until this runner holds the lease of `tracker`.
    pub(super) async fn take(
        store: &SqliteStore,
        tracker: &str,
        standby: &Standby,
    ) -> Result<Self> {
        if let Location::Memory = store.shared.options.location {
            return Err(Error::Config {
                backend: BACKEND,
                message: format!(
                    "projection `{tracker}` writes its read model in the store's database, but an in-memory SQLite store has none to share; use a file, or a read model with context `()`"
                ),
            });
        }
        let holder = format!("{}:{}", std::process::id(), uuid::Uuid::now_v7());
        let lease = store.shared.options.claim_lease;
        loop {
            let now = micros_now()?;
            let renewed_at = Instant::now();
            let (tracker_owned, holder_owned) = (tracker.to_owned(), holder.clone());
            let taken = run(
                &store.shared,
                format!("taking the lease of projection `{tracker}`"),
                move |connection, shared| {
                    connection.execute(
                        &shared.sql.take_lease,
                        params![tracker_owned, holder_owned, expiry(now, lease), now],
                    )
                },
            )
            .await?;
            if taken == 1 {
                let (lost_tx, lost) = watch::channel(false);
                let heartbeat = tokio::spawn(heartbeat(
                    Arc::clone(&store.shared),
                    tracker.to_owned(),
                    holder.clone(),
                    renewed_at,
                    lost_tx,
                ));
                return Ok(Self {
                    tracker: tracker.to_owned(),
                    holder,
                    lost,
                    heartbeat,
                });
            }
            standby.waiting();
            tokio::time::sleep(standby.interval()).await;
        }
    }

    /// Resolves when the heartbeat found the lease taken, or couldn't renew it in time.
    pub(super) async fn lost(&mut self) {
        let _ = self.lost.wait_for(|lost| *lost).await;
    }

    /// Stops renewing and deletes the lease row.
    pub(super) async fn release(self, store: &SqliteStore) {
        self.heartbeat.abort();
        let (tracker, holder) = (self.tracker.clone(), self.holder.clone());
        let released = run(
            &store.shared,
            format!("releasing the lease of projection `{}`", self.tracker),
            move |connection, shared| {
                connection.execute(&shared.sql.release_lease, params![tracker, holder])
            },
        )
        .await;
        if let Err(error) = released {
            tracing::warn!(
                projection = %self.tracker, %error,
                "eventsource: could not release a projection lease; a standby takes over when it expires"
            );
        }
    }
}

/// Renews the lease every quarter of its length ([`RENEW_EVERY`] for the default [`LEASE`])
/// until it is lost (taken by another runner, or not renewed before it expired), then says so
/// on `lost`.
async fn heartbeat(
    shared: Arc<Shared>,
    tracker: String,
    holder: String,
    mut renewed_at: Instant,
    lost: watch::Sender<bool>,
) {
    let lease = shared.options.claim_lease;
    loop {
        tokio::time::sleep(lease / 4).await;
        let attempt = Instant::now();
        let (t, h) = (tracker.clone(), holder.clone());
        let renewed = async {
            let now = micros_now()?;
            run(
                &shared,
                format!("renewing the lease of projection `{tracker}`"),
                move |connection, shared| {
                    connection.execute(&shared.sql.renew_lease, params![t, h, expiry(now, lease)])
                },
            )
            .await
        }
        .await;
        match renewed {
            Ok(1) => renewed_at = attempt,
            Ok(_) => {
                tracing::warn!(projection = %tracker, "eventsource: another runner took this projection's lease");
                let _ = lost.send(true);
                return;
            }
            Err(error) if renewed_at.elapsed() >= lease => {
                tracing::warn!(projection = %tracker, %error, "eventsource: this projection's lease expired before it could be renewed");
                let _ = lost.send(true);
                return;
            }
            Err(error) => {
                tracing::warn!(projection = %tracker, %error, "eventsource: could not renew this projection's lease; trying again");
            }
        }
    }
}

/// A lease row per tracker in the store's file. An in-memory store lives in one process, so
/// its runners claim nothing (`None`).
impl crate::application::claim::Claims for SqliteStore {
    type Claim = Option<SqliteClaim>;

    async fn claim(&self, tracker: &str, standby: &Standby) -> Result<Option<SqliteClaim>> {
        if let Location::Memory = self.shared.options.location {
            return Ok(None);
        }
        SqliteClaim::take(self, tracker, standby).await.map(Some)
    }

    async fn claim_lost(claim: &mut Option<SqliteClaim>) {
        match claim {
            Some(claim) => claim.lost().await,
            None => std::future::pending().await,
        }
    }

    async fn release(&self, claim: Option<SqliteClaim>) {
        if let Some(claim) = claim {
            claim.release(self).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::sqlite::SqliteOptions;

    /// Dropping a claim (a runner that ends without releasing it) stops its renewals, so its
    /// lease expires and another runner takes over. The second take polls every 10 ms and gets
    /// the lease once it has expired (200 ms); the minute is only an upper bound.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_claim_stops_renewing_and_a_standby_takes_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteOptions::file(dir.path().join("claims.db"))
            .claim_lease(Duration::from_millis(200))
            .open()
            .await
            .unwrap();
        let standby = Standby::new("ledger", Duration::from_millis(10), || {});
        let first = SqliteClaim::take(&store, "ledger", &standby).await.unwrap();
        drop(first);
        let second = tokio::time::timeout(
            Duration::from_secs(60),
            SqliteClaim::take(&store, "ledger", &standby),
        )
        .await
        .expect("the dropped claim's lease was still renewed a minute later")
        .unwrap();
        second.release(&store).await;
    }
}
