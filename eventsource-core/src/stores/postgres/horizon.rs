//! The log's horizon: the position below which no appender of this store can still commit.
//!
//! Positions are `xid << 20 | n` (see the [module docs](super)). A follower may only be handed
//! rows whose transaction can no longer be joined by a row at a smaller position, or it would
//! page past an event that commits late. The horizon is the smallest transaction id that an
//! appender **of this store** may still commit rows under; transactions that never append here
//! (a report in another database, a migration in another schema, a session idle in a
//! transaction) do not count, so they no longer stop every follower on the server.
//!
//! # How appenders are told apart from the rest
//!
//! Every appender *announces* itself before it takes the transaction id its positions come from:
//! it takes a shared, transaction-scoped advisory lock whose key names this store (its database,
//! schema and events table). Shared locks don't conflict with each other, so writers stay
//! concurrent; the lock is released when the transaction ends, after it has left the server's
//! list of running transactions.
//!
//! A log read computes, in the same statement as the rows it returns and over one consistent
//! read of `pg_locks`:
//!
//! ```text
//! horizon = min( xmax of the statement's snapshot,                    -- ids not handed out yet
//!                every transaction id held by an announced appender,  -- appenders still open
//!                every id the snapshot saw running, unless it belongs -- finished since the
//!                  to a transaction that is still running and has not --   snapshot, or about
//!                  announced itself )                                 --   to be announced
//! ```
//!
//! Why that is enough: a row below the horizon was written under a transaction id `x`. Either
//! `x` had finished when the statement's snapshot was taken (so the read sees its rows), or `x`
//! was running and, when `pg_locks` was read, belonged to a transaction that had not announced
//! itself. Such a transaction can only append *after* announcing, and then its positions come
//! from a transaction id taken after the announcement, which is at least the snapshot's `xmax`:
//! above any horizon computed before. [`PostgresStore::append`](super::PostgresStore) announces
//! in its own transaction before its first statement. [`PostgresStore::append_in`] runs in a
//! caller's transaction that may already hold an id (it wrote to its own tables first), so it
//! announces and then takes a fresh id from a subtransaction (a savepoint that inserts one row
//! into the store's `…_tickets` table) and numbers its events from that.
//!
//! PostgreSQL releases a transaction's regular locks (its transaction-id lock among them) before
//! its advisory locks, so `pg_locks` never shows a finished announced appender's id as held by
//! a transaction that did not announce. The status check `pg_xact_status(x) = 'in progress'`
//! makes the rule hold without relying on that order.
//!
//! [`PostgresStore::append_in`]: super::PostgresStore::append_in

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::schema::{Names, stable_hash};
use super::{BACKEND, POSITION_SHIFT, PostgresStore, pg_error};
use crate::error::{Error, Result};

/// First key of the advisory lock an appender takes to announce itself (`"ESAP"` in ASCII); the
/// second is a hash of the schema and events table, so stores in different schemas (and the
/// same names in different databases, which `pg_locks` tells apart) don't wait for each other.
const ANNOUNCE_CLASS: i32 = 0x4553_4150;

/// The greatest transaction id whose positions fit in a positive int8.
pub(super) const MAX_XID: i64 = (1_i64 << (63 - POSITION_SHIFT)) - 2;

/// The second advisory-lock key of a store.
fn announce_key(names: &Names) -> i32 {
    stable_hash(&format!("{}.{}", names.schema, names.events))
}

/// `pg_locks` rows of this store's announcement lock, as a condition on a `pg_locks` alias `l`.
fn announced_by(names: &Names, l: &str) -> String {
    // pg_locks shows the two int4 keys as unsigned oids.
    let class = ANNOUNCE_CLASS as u32;
    let key = u32::from_ne_bytes(announce_key(names).to_ne_bytes());
    format!(
        "{l}.locktype = 'advisory' AND {l}.granted AND {l}.objsubid = 2 \
         AND {l}.classid = {class}::oid AND {l}.objid = {key}::oid \
         AND {l}.database = (SELECT d.oid FROM pg_catalog.pg_database AS d WHERE d.datname = current_database())"
    )
}

/// The statement an appender runs first in its transaction, before anything takes an id.
pub(super) fn announce_sql(names: &Names) -> String {
    format!(
        "SELECT pg_catalog.pg_advisory_xact_lock_shared({ANNOUNCE_CLASS}, {})",
        announce_key(names)
    )
}

/// A scalar subquery: the first position a follower must not be handed yet (`i64::MAX` once no
/// transaction id can be shifted into a position any more).
pub(super) fn horizon_sql(names: &Names) -> String {
    let announced = announced_by(names, "l");
    // A 32-bit xid as seen in pg_locks, widened to the 64-bit id nearest the snapshot's xmax
    // (running transactions are always within 2^31 of it).
    let widen = "lim.xmax + (((own.xid32 - (lim.xmax & 4294967295) + 2147483648) % 4294967296 \
                 + 4294967296) % 4294967296 - 2147483648)";
    format!(
        "(WITH lim AS (SELECT pg_catalog.pg_current_snapshot() AS snap, \
                             pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text::int8 AS xmax), \
               locks AS MATERIALIZED ( \
                  SELECT l.locktype, l.mode, l.granted, l.virtualtransaction, \
                         l.transactionid::text::int8 AS xid32, ({announced}) AS announcement \
                  FROM pg_catalog.pg_locks AS l), \
               announced AS (SELECT virtualtransaction FROM locks WHERE announcement), \
               own AS (SELECT xid32, virtualtransaction, \
                              virtualtransaction IN (SELECT virtualtransaction FROM announced) AS announced \
                       FROM locks \
                       WHERE locktype = 'transactionid' AND mode = 'ExclusiveLock' AND granted), \
               bounds AS ( \
                  SELECT lim.xmax AS xid FROM lim \
                  UNION ALL \
                  SELECT {widen} FROM lim, own WHERE own.announced \
                  UNION ALL \
                  SELECT x.xid::text::int8 FROM lim, pg_catalog.pg_snapshot_xip(lim.snap) AS x(xid) \
                  WHERE NOT EXISTS (SELECT 1 FROM own \
                                    WHERE NOT own.announced \
                                      AND own.xid32 = (x.xid::text::int8 & 4294967295)) \
                     OR pg_catalog.pg_xact_status(x.xid) IS DISTINCT FROM 'in progress') \
          SELECT CASE WHEN min(bounds.xid) <= {MAX_XID} THEN min(bounds.xid) << {POSITION_SHIFT} \
                      ELSE 9223372036854775807 END \
          FROM bounds)"
    )
}

/// `→ pid, application_name, transaction age in seconds, state, query` of the oldest open
/// appender of this store (no row if none is open).
pub(super) fn oldest_appender_sql(names: &Names) -> String {
    let announced = announced_by(names, "l");
    format!(
        "SELECT l.pid, a.application_name, \
                extract(epoch FROM clock_timestamp() - a.xact_start)::float8, a.state, \
                left(a.query, 200) \
         FROM pg_catalog.pg_locks AS l \
         LEFT JOIN pg_catalog.pg_stat_activity AS a ON a.pid = l.pid \
         WHERE {announced} \
         ORDER BY a.xact_start ASC NULLS LAST \
         LIMIT 1"
    )
}

/// `→ horizon, committed events at or above it`.
pub(super) fn status_sql(names: &Names, events: &str) -> String {
    let horizon = horizon_sql(names);
    format!(
        "SELECT h.bound, (SELECT count(*) FROM {events} AS e WHERE e.position >= h.bound) \
         FROM (SELECT {horizon} AS bound) AS h"
    )
}

/// How far the log lags behind what is committed, and who holds it back: what
/// [`PostgresStore::horizon`] returns, for health checks and dashboards.
#[derive(Debug, Clone, PartialEq)]
pub struct HorizonStatus {
    /// Followers are handed events below this position; events at or above it wait until the
    /// appenders that may still commit below them have finished.
    pub readable_below: u64,
    /// Committed events at or above [`readable_below`](Self::readable_below): what followers
    /// can't see yet.
    pub events_waiting: u64,
    /// The oldest transaction that has announced itself as an appender of this store and is
    /// still open, if any.
    pub oldest_appender: Option<OpenAppender>,
}

impl HorizonStatus {
    /// How long the oldest open appender's transaction has run: how long, at most, a new event
    /// has waited to become readable (zero when no appender is open).
    pub fn lag(&self) -> Duration {
        self.oldest_appender
            .as_ref()
            .and_then(|appender| appender.transaction_age)
            .unwrap_or(Duration::ZERO)
    }
}

/// An open transaction appending to this store, as `pg_stat_activity` shows it.
///
/// Fields other than `pid` are `None` when the connected role may not see the other session's
/// activity (grant it `pg_read_all_stats`) or the session ended meanwhile.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAppender {
    /// The backend's process id (`pg_terminate_backend(pid)` ends it). `None` for a prepared
    /// transaction, which has no backend.
    pub pid: Option<i32>,
    /// Its `application_name`: set one per program so that this names the culprit.
    pub application_name: Option<String>,
    /// How long its transaction has been open.
    pub transaction_age: Option<Duration>,
    /// Its state (`active`, `idle in transaction`, …).
    pub state: Option<String>,
    /// The start of its current or last query.
    pub query: Option<String>,
}

/// Rate-limits the warning about an appender holding the log back.
#[derive(Debug)]
pub(super) struct HorizonWatch {
    /// Warn when the oldest open appender is older than this.
    pub(super) warn_after: Duration,
    last_check: Mutex<Option<Instant>>,
}

impl HorizonWatch {
    pub(super) fn new(warn_after: Duration) -> Self {
        Self {
            warn_after,
            last_check: Mutex::new(None),
        }
    }

    /// Whether a check is due: at most one every `warn_after` (and never with a zero threshold,
    /// which turns the warning off).
    fn due(&self) -> bool {
        if self.warn_after.is_zero() {
            return false;
        }
        let Ok(mut last) = self.last_check.lock() else {
            return false;
        };
        let now = Instant::now();
        match *last {
            Some(at) if now.duration_since(at) < self.warn_after => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }
}

impl PostgresStore {
    /// Where the log's horizon stands and which open appender holds it back, for a health check.
    ///
    /// Only transactions appending to this store hold the log back (see the
    /// [module docs](super)); one left open (a crashed client's connection, a session idle in
    /// a transaction after [`append_in`](Self::append_in)) stops every follower until it ends.
    /// [`HorizonStatus::lag`] says for how long.
    ///
    /// ```no_run
    /// # async fn demo(store: eventsource_core::PostgresStore) -> eventsource_core::Result<()> {
    /// let status = store.horizon().await?;
    /// if status.lag() > std::time::Duration::from_secs(60) {
    ///     eprintln!("the event log is held back by {:?}", status.oldest_appender);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn horizon(&self) -> Result<HorizonStatus> {
        let context = "reading the log's horizon";
        let client = self.client(context).await?;
        let statement = client
            .prepare_cached(&self.sql.horizon_status)
            .await
            .map_err(pg_error(context))?;
        let row = client
            .query_one(&statement, &[])
            .await
            .map_err(pg_error(context))?;
        let bound: i64 = row.try_get(0).map_err(pg_error(context))?;
        let waiting: i64 = row.try_get(1).map_err(pg_error(context))?;
        let oldest_appender = self.oldest_appender(&client).await?;
        let invalid = |what: &str, value: i64| {
            Error::backend(
                BACKEND,
                context,
                format!("the server returned {what} {value}"),
            )
        };
        Ok(HorizonStatus {
            readable_below: u64::try_from(bound).map_err(|_| invalid("horizon", bound))?,
            events_waiting: u64::try_from(waiting).map_err(|_| invalid("a count of", waiting))?,
            oldest_appender,
        })
    }

    async fn oldest_appender(
        &self,
        client: &deadpool_postgres::Object,
    ) -> Result<Option<OpenAppender>> {
        let context = "looking up the oldest open appender";
        let statement = client
            .prepare_cached(&self.sql.oldest_appender)
            .await
            .map_err(pg_error(context))?;
        let Some(row) = client
            .query_opt(&statement, &[])
            .await
            .map_err(pg_error(context))?
        else {
            return Ok(None);
        };
        let age: Option<f64> = row.try_get(2).map_err(pg_error(context))?;
        Ok(Some(OpenAppender {
            pid: row.try_get(0).map_err(pg_error(context))?,
            application_name: row.try_get(1).map_err(pg_error(context))?,
            transaction_age: age
                .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
                .map(Duration::from_secs_f64),
            state: row.try_get(3).map_err(pg_error(context))?,
            query: row.try_get(4).map_err(pg_error(context))?,
        }))
    }

    /// Called when a follower has read everything below the horizon: at most once per
    /// threshold, warns if an appender has held the log back longer than the threshold.
    pub(super) async fn watch_horizon(&self) {
        if !self.watch.due() {
            return;
        }
        let found = match self.client("checking the log's horizon").await {
            Ok(client) => self.oldest_appender(&client).await,
            Err(error) => Err(error),
        };
        match found {
            Ok(Some(appender))
                if appender
                    .transaction_age
                    .is_some_and(|age| age >= self.watch.warn_after) =>
            {
                tracing::warn!(
                    schema = %self.names.schema,
                    pid = ?appender.pid,
                    application_name = appender.application_name.as_deref().unwrap_or("?"),
                    transaction_age = ?appender.transaction_age,
                    state = appender.state.as_deref().unwrap_or("?"),
                    query = appender.query.as_deref().unwrap_or("?"),
                    "an open transaction appending to this store holds the event log back: \
                     followers wait until it commits or rolls back"
                );
            }
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%error, "could not check the log's horizon");
            }
        }
    }
}
