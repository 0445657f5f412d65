//! One active runner per projection: two (or three) projectors of one projection on one
//! database, each through a store of its own as separate processes would have, take turns. One
//! processes events while the others wait on standby; when it stops (or, on PostgreSQL, its lock
//! connection is killed) a standby takes over from the recorded position. The read model keys
//! every event id and names the runner that applied it, so an event applied twice fails at once
//! and the test can tell who did the work.

use std::time::{Duration, Instant};

use eventsource_core::prelude::*;
use eventsource_core::projection::{HandlerError, RunnerRole, RunningProjection};
use eventsource_core::stores::postgres::{PostgresStore, PostgresWork};
use eventsource_core::stores::sqlite::SqliteWork;
use eventsource_core::{Position, SqliteStore};
use serde::{Deserialize, Serialize};

mod support;
use support::postgres::Server;

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(name = "TakeoverTicked")]
struct Ticked {
    n: u32,
}

#[derive(Aggregate, Default, Debug)]
#[aggregate(name = "TakeoverClock", events(Ticked))]
struct Clock;

impl Apply<Ticked> for Clock {
    fn apply(&mut self, _: &Ticked) {}
}

/// Appends `count` events (one stream each); returns the log's last position.
async fn tick<S: EventStore + Clone + 'static>(store: &S, count: u32) -> Position {
    let clocks = Repository::<Clock, _>::new(store.clone());
    for n in 0..count {
        clocks.create(Ticked { n }).await.expect("append");
    }
    store.last_position().await.expect("last position")
}

/// Stops `active`; `standby` takes over and processes 5 events appended to `store` afterwards.
/// Returns the runner that took over.
async fn hand_over<P, S, W>(
    active: RunningProjection<P, S>,
    standby: RunningProjection<P, S>,
    store: &W,
) -> RunningProjection<P, S>
where
    P: Projection,
    W: EventStore + Clone + 'static,
{
    let (_, outcome) = active.stop().await;
    outcome.unwrap();
    let taken_over = standby;
    until("the standby to take over", Duration::from_secs(60), || {
        taken_over.status().role == RunnerRole::Active
    })
    .await;
    let last = tick(store, 5).await;
    assert!(
        taken_over
            .wait_for(last, Duration::from_secs(60))
            .await
            .unwrap()
    );
    taken_over
}

/// Waits until `done` holds, at most `deadline`; panics naming `what` otherwise.
async fn until(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until exactly one of `runners` is active and the others are on standby; returns the
/// active one's index.
async fn one_active<P: Projection, S>(runners: &[&RunningProjection<P, S>]) -> usize {
    until(
        "one active runner, the others on standby",
        Duration::from_secs(60),
        || {
            let roles: Vec<_> = runners.iter().map(|r| r.status().role).collect();
            roles.iter().filter(|r| **r == RunnerRole::Active).count() == 1
                && roles.iter().filter(|r| **r == RunnerRole::Standby).count() == runners.len() - 1
        },
    )
    .await;
    runners
        .iter()
        .position(|r| r.status().role == RunnerRole::Active)
        .unwrap_or_else(|| unreachable!("checked above"))
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

#[derive(Projection, Debug)]
#[projection(name = "takeover", events(Ticked), context = PostgresWork)]
struct PgApplied {
    schema: String,
    runner: &'static str,
}

impl Handle<Ticked, PostgresWork> for PgApplied {
    async fn handle(
        &mut self,
        e: &Recorded<Ticked>,
        work: &mut PostgresWork,
    ) -> Result<(), HandlerError> {
        // A unique key: an event applied twice fails here.
        work.client()
            .execute(
                &format!(
                    "INSERT INTO \"{}\".applied (event, runner) VALUES ($1, $2)",
                    self.schema
                ),
                &[&e.id, &self.runner],
            )
            .await?;
        Ok(())
    }
}

fn pg_projector(
    store: &PostgresStore,
    runner: &'static str,
    standby: Duration,
) -> RunningProjection<PgApplied, PostgresStore> {
    let applied = PgApplied {
        schema: store.schema().to_owned(),
        runner,
    };
    Projector::new(store.clone(), applied)
        .poll_interval(Duration::from_millis(100))
        .standby_interval(standby)
        .spawn()
}

/// How many events each runner applied, and how many in all.
async fn pg_applied(server: &Server, schema: &str, runner: &str) -> (i64, i64) {
    let row = server
        .admin
        .query_one(
            &format!(
                "SELECT count(*) FILTER (WHERE runner = $1), count(*) FROM \"{schema}\".applied"
            ),
            &[&runner],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// The backend holding the projection's lock in `store`'s database, if one does.
async fn pg_lock_holder(server: &Server, store: &PostgresStore) -> Option<i32> {
    let (class, key) = store.projection_lock("takeover");
    // pg_locks shows the two int4 keys as unsigned oids.
    let (class, key) = (i64::from(class as u32), i64::from(key as u32));
    server
        .admin
        .query_opt(
            "SELECT pid FROM pg_catalog.pg_locks \
             WHERE locktype = 'advisory' AND granted AND objsubid = 2 \
             AND classid::int8 = $1 AND objid::int8 = $2 \
             AND database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())",
            &[&class, &key],
        )
        .await
        .unwrap()
        .map(|row| row.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_projectors_take_turns_and_apply_every_event_once() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let first = server.store("takeover").await;
    let schema = first.schema().to_owned();
    // A second store (its own pool), as a second process would have.
    let second = PostgresStore::options(support::postgres::url())
        .schema(schema.clone())
        .connect()
        .await
        .unwrap();
    server
        .admin
        .batch_execute(&format!(
            "CREATE TABLE \"{schema}\".applied (event uuid PRIMARY KEY, runner text NOT NULL);"
        ))
        .await
        .unwrap();
    tick(&first, 5).await;

    // Two runners: one active, one on standby; only the active one applies anything.
    let mut a = Some(pg_projector(&first, "a", Duration::from_secs(1)));
    let mut b = Some(pg_projector(&second, "b", Duration::from_secs(1)));
    let active = one_active(&[a.as_ref().unwrap(), b.as_ref().unwrap()]).await;
    let (active, standby, active_name, standby_name) = match active {
        0 => (a.take().unwrap(), b.take().unwrap(), "a", "b"),
        _ => (b.take().unwrap(), a.take().unwrap(), "b", "a"),
    };
    let last = tick(&second, 5).await;
    assert!(
        active
            .wait_for(last, Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert_eq!(standby.status().role, RunnerRole::Standby);
    assert_eq!(
        standby.status().position,
        Position::START,
        "the standby applied nothing"
    );
    assert_eq!(pg_applied(&server, &schema, active_name).await, (10, 10));

    // The active one stops: the standby takes over, from the recorded position.
    let taken_over = hand_over(active, standby, &first).await;
    assert_eq!(pg_applied(&server, &schema, standby_name).await, (5, 15));

    // A third runner waits; the active one's lock connection is killed. The lock goes with
    // the session, the killed runner goes back to standby (after giving the standbys an
    // interval), and the third one takes over.
    let third = pg_projector(&first, "c", Duration::from_millis(50));
    until(
        "the third runner on standby",
        Duration::from_secs(60),
        || third.status().role == RunnerRole::Standby,
    )
    .await;
    let killed = pg_lock_holder(&server, &first)
        .await
        .expect("a lock holder");
    let terminated: bool = server
        .admin
        .query_one("SELECT pg_catalog.pg_terminate_backend($1)", &[&killed])
        .await
        .unwrap()
        .get(0);
    assert!(terminated);
    until(
        "the third runner to take over",
        Duration::from_secs(60),
        || third.status().role == RunnerRole::Active,
    )
    .await;
    until(
        "the killed runner back on standby",
        Duration::from_secs(60),
        || taken_over.status().role == RunnerRole::Standby,
    )
    .await;
    let holder = pg_lock_holder(&server, &first)
        .await
        .expect("a lock holder");
    assert_ne!(holder, killed, "a new session holds the lock");
    let last = tick(&second, 5).await;
    assert!(third.wait_for(last, Duration::from_secs(60)).await.unwrap());
    assert_eq!(pg_applied(&server, &schema, "c").await, (5, 20));

    for running in [taken_over, third] {
        let (_, outcome) = running.stop().await;
        outcome.unwrap();
    }
    // Every event exactly once (the primary key refuses a second time), and each by one runner.
    let (a_count, total) = pg_applied(&server, &schema, "a").await;
    let (b_count, _) = pg_applied(&server, &schema, "b").await;
    assert_eq!(total, 20);
    assert_eq!(a_count + b_count, 15);
    assert_eq!(
        pg_lock_holder(&server, &first).await,
        None,
        "stopping released the lock"
    );
    drop((first, second));
    server.finish().await;
}

// ---------------------------------------------------------------------------------------------
// SQLite

#[derive(Projection, Debug)]
#[projection(name = "takeover", events(Ticked), context = SqliteWork)]
struct SqliteApplied {
    runner: &'static str,
}

impl Handle<Ticked, SqliteWork> for SqliteApplied {
    async fn handle(
        &mut self,
        e: &Recorded<Ticked>,
        work: &mut SqliteWork,
    ) -> Result<(), HandlerError> {
        work.connection().execute(
            "INSERT INTO applied (event, runner) VALUES (?1, ?2)",
            [e.id.to_string(), self.runner.to_owned()],
        )?;
        Ok(())
    }
}

fn sqlite_projector(
    store: &SqliteStore,
    runner: &'static str,
) -> RunningProjection<SqliteApplied, SqliteStore> {
    Projector::new(store.clone(), SqliteApplied { runner })
        .poll_interval(Duration::from_millis(100))
        .standby_interval(Duration::from_millis(100))
        .spawn()
}

fn sqlite_applied(path: &std::path::Path, runner: &str) -> (i64, i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        "SELECT count(*) FILTER (WHERE runner = ?1), count(*) FROM applied",
        [runner],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_projectors_take_turns_and_apply_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("takeover.db");
    // Two stores on one file, as two processes would have.
    let first = SqliteStore::open(&path).await.unwrap();
    let second = SqliteStore::open(&path).await.unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE applied (event TEXT PRIMARY KEY, runner TEXT NOT NULL);")
        .unwrap();
    tick(&first, 5).await;

    let a = sqlite_projector(&first, "a");
    let b = sqlite_projector(&second, "b");
    let (active, standby, active_name, standby_name) = match one_active(&[&a, &b]).await {
        0 => (a, b, "a", "b"),
        _ => (b, a, "b", "a"),
    };
    let last = tick(&second, 5).await;
    assert!(
        active
            .wait_for(last, Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert_eq!(standby.status().role, RunnerRole::Standby);
    assert_eq!(
        standby.status().position,
        Position::START,
        "the standby applied nothing"
    );
    assert_eq!(sqlite_applied(&path, active_name), (10, 10));

    let taken_over = hand_over(active, standby, &first).await;
    assert_eq!(sqlite_applied(&path, standby_name), (5, 15));

    let (_, outcome) = taken_over.stop().await;
    outcome.unwrap();
    let leases: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM events_projection_leases", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(leases, 0, "stopping released the lease");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sqlite_runner_whose_lease_is_taken_goes_back_to_standby() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stolen.db");
    let store = SqliteStore::open(&path).await.unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE applied (event TEXT PRIMARY KEY, runner TEXT NOT NULL);")
        .unwrap();
    let running = sqlite_projector(&store, "a");
    until("the runner to be active", Duration::from_secs(60), || {
        running.status().role == RunnerRole::Active
    })
    .await;
    // Another holder, as if this one had stalled past its lease and been replaced: the next
    // renewal finds it, and the runner stands by until that lease expires.
    let far = i64::MAX;
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE events_projection_leases SET holder = 'someone else', expires_at = ?1",
            [far],
        )
        .unwrap();
    until(
        "the runner to notice and stand by",
        Duration::from_secs(60),
        || running.status().role == RunnerRole::Standby,
    )
    .await;
    let (_, outcome) = running.stop().await;
    outcome.unwrap();
}
