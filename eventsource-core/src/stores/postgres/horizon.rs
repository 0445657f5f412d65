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
//! A log read is two statements sent together (one round trip). The first reads `pg_locks` once
//! (a consistent view) and keeps, in a session setting, the next transaction id at that moment
//! `n`, the smallest id held by an announced appender `a`, and the ids held by running
//! transactions that have *not* announced themselves `U`. The second statement takes its
//! snapshot after that, reads the rows, and bounds them by
//!
//! ```text
//! horizon = min( n, a, every id its snapshot sees running that is not in U )
//! ```
//!
//! Why no follower can skip: take a row below the horizon, written under id `x < n`, so `x` was
//! handed out before `pg_locks` was read. If `x` finished before the second statement's
//! snapshot, the read sees its rows. Otherwise `x` is still running: if it is a top-level id it
//! is in `U` (an announced holder would give `a ≤ x`, an unseen holder would leave `x` out of
//! `U` and bound the horizon by it), so its transaction had not announced itself, and ids it
//! numbers events from are taken *after* it announces: at least `n`. If `x` is a
//! subtransaction's id, its parent announced before taking it and holds a smaller id, which
//! bounds the horizon. [`PostgresStore::append`](super::PostgresStore) runs one statement in a
//! transaction of its own, which takes the lock before it takes the transaction id (the id is
//! read from the row of the CTE that took the lock; a tracked append sends the announcement
//! first in its transaction block); [`PostgresStore::append_in`] runs in a caller's
//! transaction that may already hold an id (it wrote to its own tables first), so it announces
//! and then numbers its events from a fresh subtransaction id (its savepoint inserts one row
//! into the store's `…_tickets` table, whose `xmin` is that id).
//!
//! Because the snapshot is taken after `pg_locks` is read, a transaction that finished while the
//! read ran never holds it back: an acknowledged append is readable by the next read, unless an
//! appender of this store that started before it is still open.
//!
//! [`PostgresStore::append_in`]: super::PostgresStore::append_in

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::schema::{Names, stable_hash};
use super::{BACKEND, POSITION_SHIFT, PostgresStore, pg_error};
use crate::error::{Error, Result};
use crate::persistence::position::Position;

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

/// The session setting that carries what [`observe_sql`] saw to [`horizon_sql`].
const SETTING: &str = "eventsource.horizon";

/// The first of a log read's two statements: reads `pg_locks` once and keeps
/// `n:a:u1,u2,…` in a session setting (see the module docs); `a` is `n` when no appender is
/// open. Returns nothing the caller needs.
pub(super) fn observe_sql(names: &Names) -> String {
    let announced = announced_by(names, "l");
    // A 32-bit xid as pg_locks shows it, widened to the 64-bit id nearest `n` (running
    // transactions are always within 2^31 of it).
    let widen = "lim.n + (((own.xid32 - (lim.n & 4294967295) + 2147483648) % 4294967296 \
                 + 4294967296) % 4294967296 - 2147483648)";
    format!(
        "WITH lim AS (SELECT pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text::int8 AS n), \
              locks AS MATERIALIZED ( \
                 SELECT l.locktype, l.mode, l.granted, l.virtualtransaction, \
                        l.transactionid::text::int8 AS xid32, ({announced}) AS announcement \
                 FROM pg_catalog.pg_locks AS l), \
              own AS ( \
                 SELECT xid32, virtualtransaction IN \
                          (SELECT virtualtransaction FROM locks WHERE announcement) AS announced \
                 FROM locks \
                 WHERE locktype = 'transactionid' AND mode = 'ExclusiveLock' AND granted) \
         SELECT pg_catalog.set_config('{SETTING}', \
                  lim.n::text || ':' || \
                  coalesce((SELECT min({widen}) FROM own WHERE own.announced), lim.n)::text || ':' || \
                  coalesce((SELECT string_agg(own.xid32::text, ',') FROM own WHERE NOT own.announced), ''), \
                  false) \
         FROM lim"
    )
}

/// A scalar subquery for the second statement: the first position a follower must not be
/// handed yet (`i64::MAX` once no transaction id can be shifted into a position any more).
/// Without what [`observe_sql`] saw (a statement sent on its own), it falls back to the whole
/// cluster's oldest running transaction, which is safe but held back by everything.
pub(super) fn horizon_sql() -> String {
    format!(
        "(WITH seen AS (SELECT string_to_array(current_setting('{SETTING}', true), ':') AS p), \
               v AS (SELECT p[1]::int8 AS n, p[2]::int8 AS a, \
                            coalesce(string_to_array(nullif(p[3], ''), ',')::int8[], '{{}}') AS u \
                     FROM seen WHERE cardinality(p) = 3), \
               now AS (SELECT pg_catalog.pg_current_snapshot() AS snap), \
               bounds AS ( \
                  SELECT v.n AS xid FROM v \
                  UNION ALL SELECT v.a FROM v \
                  UNION ALL \
                  SELECT x.xid::text::int8 FROM v, now, pg_catalog.pg_snapshot_xip(now.snap) AS x(xid) \
                  WHERE NOT ((x.xid::text::int8 & 4294967295) = ANY (v.u)) \
                  UNION ALL \
                  SELECT pg_catalog.pg_snapshot_xmin(now.snap)::text::int8 FROM now \
                  WHERE NOT EXISTS (SELECT 1 FROM v)) \
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
pub(super) fn status_sql(events: &str) -> String {
    let horizon = horizon_sql();
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
    pub readable_below: Position,
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
        let rows = self
            .below_horizon(&client, &self.sql.horizon_status, &[], context)
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| Error::backend(BACKEND, context, "the status query returned no row"))?;
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
            readable_below: Position::new(
                u64::try_from(bound).map_err(|_| invalid("horizon", bound))?,
            ),
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

    /// Runs `sql`, whose conditions use [`horizon_sql`], right after [`observe_sql`]: both sent
    /// together, one round trip.
    pub(super) async fn below_horizon(
        &self,
        client: &deadpool_postgres::Object,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        context: &str,
    ) -> Result<Vec<tokio_postgres::Row>> {
        let observe = client
            .prepare_cached(&self.sql.observe_horizon)
            .await
            .map_err(pg_error(context))?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(pg_error(context))?;
        let (observed, rows) = tokio::join!(
            client.execute(&observe, &[]),
            client.query(&statement, params)
        );
        observed.map_err(pg_error(format!("{context}: reading pg_locks")))?;
        rows.map_err(pg_error(context))
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
