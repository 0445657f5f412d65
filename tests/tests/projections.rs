//! Projections run by a `Projector` on every store: an in-memory read model (context `()`) and
//! read models in the store's own database (`SqliteWork`, `PostgresWork`) whose writes commit
//! with the tracking position. Each test compares a live or interrupted run with a rebuild
//! from zero; the SQL read models also record every event id under a unique key, so an event
//! applied twice fails the test at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use eventsource_core::prelude::*;
use eventsource_core::projection::{
    ErrorPolicy, HandlerError, ProjectionContext, RunningProjection,
};
use eventsource_core::stores::postgres::PostgresWork;
use eventsource_core::stores::sqlite::SqliteWork;
use eventsource_core::{Position, SqliteStore};
use serde::{Deserialize, Serialize};

mod support;
use support::postgres::Server;

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(name = "ProjOpened")]
struct Opened {
    owner: String,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(name = "ProjDeposited")]
struct Deposited {
    cents: i64,
}

#[derive(Aggregate, Default, Debug)]
#[aggregate(name = "ProjAccount", events(Opened, Deposited))]
struct Account {
    cents: i64,
}

impl Apply<Opened> for Account {
    fn apply(&mut self, _: &Opened) {}
}
impl Apply<Deposited> for Account {
    fn apply(&mut self, e: &Deposited) {
        self.cents += e.cents;
    }
}

/// Writes `accounts` accounts with `deposits` deposits each from 8 concurrent writers; returns
/// the log's last position once they are all done.
async fn write<S: EventStore + Clone + 'static>(
    store: S,
    accounts: usize,
    deposits: usize,
) -> Position {
    let mut writers = Vec::new();
    for writer in 0..8 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let repository = Repository::<Account, _>::new(store);
            for account in (0..accounts).filter(|a| a % 8 == writer) {
                let id = repository
                    .create(Opened {
                        owner: format!("owner {account}"),
                    })
                    .await
                    .expect("open");
                for n in 0..deposits {
                    repository
                        .execute(id, |_| {
                            Ok::<_, std::convert::Infallible>(Deposited {
                                cents: n as i64 + 1,
                            })
                        })
                        .await
                        .expect("deposit");
                }
            }
        }));
    }
    for writer in writers {
        writer.await.expect("a writer");
    }
    // No writer of this store is open now: the last position covers every event.
    store.last_position().await.expect("the last position")
}

/// Spawns `projection` on `store`, writes 10,000 events from 8 writers (80 accounts, 124
/// deposits each) and waits until it has processed them all; returns the last position and
/// the still running projection.
async fn live_under_writers<P, S>(
    store: S,
    projection: P,
    page: usize,
) -> (Position, RunningProjection<P, S>)
where
    P: Projection,
    S: EventStore + Clone + Send + Sync + 'static,
    P::Context: ProjectionContext<S>,
{
    let running = Projector::new(store.clone(), projection)
        .page_size(page)
        .spawn();
    let last = write(store, 80, 124).await;
    assert!(
        running
            .wait_for(last, Duration::from_secs(300))
            .await
            .unwrap(),
        "the live projection did not reach the last position"
    );
    (last, running)
}

// ---------------------------------------------------------------------------------------------
// In memory: context ()

#[derive(Projection, Default, Debug)]
#[projection(name = "memory_balances", events(Opened, Deposited))]
struct MemoryBalances {
    cents: BTreeMap<Uuid, i64>,
    seen: u64,
}

impl Handle<Opened> for MemoryBalances {
    async fn handle(&mut self, e: &Recorded<Opened>, _: &mut ()) -> Result<(), HandlerError> {
        self.cents.insert(e.stream_id, 0);
        self.seen += 1;
        Ok(())
    }
}
impl Handle<Deposited> for MemoryBalances {
    async fn handle(&mut self, e: &Recorded<Deposited>, _: &mut ()) -> Result<(), HandlerError> {
        *self.cents.entry(e.stream_id).or_default() += e.event.cents;
        self.seen += 1;
        Ok(())
    }
}

/// Counts its events, waiting before each for a permit: a projection that can be held back.
#[derive(Projection, Debug)]
#[projection(name = "gated", events(Deposited))]
struct Gated {
    gate: Arc<tokio::sync::Semaphore>,
}

impl Handle<Deposited> for Gated {
    async fn handle(&mut self, _: &Recorded<Deposited>, _: &mut ()) -> Result<(), HandlerError> {
        self.gate.acquire().await?.forget();
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_projection_says_how_many_events_it_is_behind() {
    let store = Arc::new(MemoryStore::new());
    let accounts = Repository::<Account, _>::new(Arc::clone(&store));
    let id = accounts
        .create(Opened {
            owner: "Ada".into(),
        })
        .await
        .unwrap();
    for cents in 1..=10 {
        accounts
            .execute(id, |_| {
                Ok::<_, std::convert::Infallible>(Deposited { cents })
            })
            .await
            .unwrap();
    }
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let running = Projector::new(
        Arc::clone(&store),
        Gated {
            gate: Arc::clone(&gate),
        },
    )
    .page_size(1)
    .spawn();
    // Held at the first deposit: all ten are behind (the `Opened` it doesn't handle is not).
    assert_eq!(running.events_behind(100).await.unwrap(), 10);
    assert_eq!(running.events_behind(4).await.unwrap(), 4, "capped");
    gate.add_permits(6);
    let sixth = accounts.history(id).await.unwrap()[6].position;
    assert!(
        running
            .wait_for(sixth, Duration::from_secs(10))
            .await
            .unwrap()
    );
    assert_eq!(running.events_behind(100).await.unwrap(), 4);
    gate.add_permits(4);
    let last = store.last_position().await.unwrap();
    assert!(
        running
            .wait_for(last, Duration::from_secs(10))
            .await
            .unwrap()
    );
    assert_eq!(running.events_behind(100).await.unwrap(), 0);
    let (_, outcome) = running.stop().await;
    outcome.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_in_memory_projection_ends_equal_to_a_rebuild() {
    let store = Arc::new(MemoryStore::new());
    let (_, running) = live_under_writers(Arc::clone(&store), MemoryBalances::default(), 97).await;
    let (live, outcome) = running.stop().await;
    outcome.unwrap();
    let live = live.unwrap().into_projection();
    let mut rebuild = Projector::new(Arc::clone(&store), MemoryBalances::default());
    rebuild.catch_up().await.unwrap();
    assert_eq!(live.seen, 10_000);
    assert_eq!(live.cents, rebuild.projection().cents);
    assert_eq!(live.cents.len(), 80);
}

/// Fails its first `failures` tries at every deposit of 30; counts the tries there.
#[derive(Projection, Debug, Default)]
#[projection(name = "flaky", events(Deposited))]
struct Flaky {
    failures: u32,
    tries_at_30: u32,
    total: i64,
}

impl Handle<Deposited> for Flaky {
    async fn handle(&mut self, e: &Recorded<Deposited>, _: &mut ()) -> Result<(), HandlerError> {
        if e.event.cents == 30 {
            self.tries_at_30 += 1;
            if self.tries_at_30 <= self.failures {
                return Err(format!("try {} at 30 failed", self.tries_at_30).into());
            }
        }
        self.total += e.event.cents;
        Ok(())
    }
}

#[tokio::test]
async fn the_retry_policy_tries_a_failing_batch_as_many_times_as_it_says() {
    let store = MemoryStore::new();
    let accounts = Repository::<Account, _>::new(store.clone());
    let id = accounts
        .create(Opened {
            owner: "Ada".into(),
        })
        .await
        .unwrap();
    for cents in [10, 20, 30, 40] {
        accounts
            .execute(id, |_| {
                Ok::<_, std::convert::Infallible>(Deposited { cents })
            })
            .await
            .unwrap();
    }
    let retry = || ErrorPolicy::Retry {
        attempts: 3,
        backoff: eventsource_core::Backoff::none(),
    };

    // Two failures, three tries: the third succeeds and the projection goes on.
    let mut recovers = Projector::new(
        store.clone(),
        Flaky {
            failures: 2,
            ..Flaky::default()
        },
    )
    .page_size(1)
    .on_error(retry());
    recovers.catch_up().await.unwrap();
    let flaky = recovers.projection();
    assert_eq!((flaky.tries_at_30, flaky.total), (3, 100));

    // Three failures: the third try is the last, and the projector stops before the 30.
    let mut gives_up = Projector::new(
        store.clone(),
        Flaky {
            failures: 3,
            ..Flaky::default()
        },
    )
    .page_size(1)
    .on_error(retry());
    let error = gives_up.catch_up().await.unwrap_err();
    assert!(error.to_string().contains("try 3 at 30 failed"), "{error}");
    let flaky = gives_up.projection();
    assert_eq!((flaky.tries_at_30, flaky.total), (3, 30));
}

// ---------------------------------------------------------------------------------------------
// In the store's SQLite file: context SqliteWork

#[derive(Projection, Debug)]
#[projection(name = "sqlite_balances", events(Opened, Deposited), context = SqliteWork)]
struct SqliteBalances {
    table: &'static str,
    /// Fail on the deposit of this many cents (the stop-policy test).
    poison: Option<i64>,
}

impl SqliteBalances {
    fn record(&self, work: &SqliteWork, event: Uuid) -> Result<(), HandlerError> {
        // A unique key: an event applied twice fails here.
        work.connection().execute(
            &format!("INSERT INTO {}_applied (event) VALUES (?1)", self.table),
            [event.to_string()],
        )?;
        Ok(())
    }
}

impl Handle<Opened, SqliteWork> for SqliteBalances {
    async fn handle(
        &mut self,
        e: &Recorded<Opened>,
        work: &mut SqliteWork,
    ) -> Result<(), HandlerError> {
        self.record(work, e.id)?;
        work.connection().execute(
            &format!("INSERT INTO {} (account, cents) VALUES (?1, 0)", self.table),
            [e.stream_id.to_string()],
        )?;
        Ok(())
    }
}
impl Handle<Deposited, SqliteWork> for SqliteBalances {
    async fn handle(
        &mut self,
        e: &Recorded<Deposited>,
        work: &mut SqliteWork,
    ) -> Result<(), HandlerError> {
        if self.poison == Some(e.event.cents) {
            return Err(format!("refusing a deposit of {}", e.event.cents).into());
        }
        self.record(work, e.id)?;
        work.connection().execute(
            &format!(
                "UPDATE {} SET cents = cents + ?1 WHERE account = ?2",
                self.table
            ),
            rusqlite::params![e.event.cents, e.stream_id.to_string()],
        )?;
        Ok(())
    }
}

fn sqlite_tables(conn: &rusqlite::Connection, table: &str) {
    conn.execute_batch(&format!(
        "CREATE TABLE {table} (account TEXT PRIMARY KEY, cents INTEGER NOT NULL);
         CREATE TABLE {table}_applied (event TEXT PRIMARY KEY);"
    ))
    .unwrap();
}

fn sqlite_balances(conn: &rusqlite::Connection, table: &str) -> BTreeMap<String, i64> {
    let mut statement = conn
        .prepare(&format!("SELECT account, cents FROM {table}"))
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_sqlite_projection_commits_with_its_position_and_ends_equal_to_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("projections.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    sqlite_tables(&conn, "live");
    sqlite_tables(&conn, "rebuilt");

    let projection = SqliteBalances {
        table: "live",
        poison: None,
    };
    let (last, running) = live_under_writers(store.clone(), projection, 64).await;
    let (_, outcome) = running.stop().await;
    outcome.unwrap();
    assert!(store.tracking_position("sqlite_balances").await.unwrap() >= last);

    // A rebuild from zero under another name into other tables.
    #[derive(Projection, Debug)]
    #[projection(name = "sqlite_rebuild", events(Opened, Deposited), context = SqliteWork)]
    struct Rebuild(SqliteBalances);
    impl Handle<Opened, SqliteWork> for Rebuild {
        async fn handle(
            &mut self,
            e: &Recorded<Opened>,
            w: &mut SqliteWork,
        ) -> Result<(), HandlerError> {
            self.0.handle(e, w).await
        }
    }
    impl Handle<Deposited, SqliteWork> for Rebuild {
        async fn handle(
            &mut self,
            e: &Recorded<Deposited>,
            w: &mut SqliteWork,
        ) -> Result<(), HandlerError> {
            self.0.handle(e, w).await
        }
    }
    let mut rebuild = Projector::new(
        store.clone(),
        Rebuild(SqliteBalances {
            table: "rebuilt",
            poison: None,
        }),
    );
    rebuild.catch_up().await.unwrap();
    let live = sqlite_balances(&conn, "live");
    assert_eq!(live.len(), 80);
    assert_eq!(live, sqlite_balances(&conn, "rebuilt"));
    let applied: i64 = conn
        .query_row("SELECT count(*) FROM live_applied", [], |r| r.get(0))
        .unwrap();
    assert_eq!(applied, 10_000, "every event once");

    // Rebuilt in place: cleared in the projection's own transaction, then caught up again.
    conn.execute("UPDATE live SET cents = -1", []).unwrap(); // a read model gone wrong
    let mut again = Projector::new(
        store.clone(),
        SqliteBalances {
            table: "live",
            poison: None,
        },
    );
    let reached = again
        .rebuild(|_, work| {
            Box::pin(async move {
                work.connection()
                    .execute_batch("DELETE FROM live; DELETE FROM live_applied;")?;
                Ok(())
            })
        })
        .await
        .unwrap();
    assert_eq!(reached, last);
    assert_eq!(
        sqlite_balances(&conn, "live"),
        sqlite_balances(&conn, "rebuilt")
    );
    assert_eq!(
        store.tracking_position("sqlite_balances").await.unwrap(),
        last
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_handler_with_the_stop_policy_leaves_the_position_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("poison.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    sqlite_tables(&conn, "poisoned");
    let accounts = Repository::<Account, _>::new(store.clone());
    let id = accounts
        .create(Opened {
            owner: "Ada".into(),
        })
        .await
        .unwrap();
    let mut positions = Vec::new();
    for cents in [10, 20, 30, 40] {
        accounts
            .execute(id, |_| {
                Ok::<_, std::convert::Infallible>(Deposited { cents })
            })
            .await
            .unwrap();
        positions.push(store.last_position().await.unwrap());
    }
    let projection = SqliteBalances {
        table: "poisoned",
        poison: Some(30),
    };
    let mut projector = Projector::new(store.clone(), projection).on_error(ErrorPolicy::Stop);
    let error = projector.catch_up().await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("ProjDeposited") && message.contains("refusing a deposit of 30"),
        "{message}"
    );
    assert_eq!(
        store.tracking_position("sqlite_balances").await.unwrap(),
        positions[1],
        "on the deposit of 20, before the failing one"
    );
    assert_eq!(projector.position(), Some(positions[1]));
    assert_eq!(
        sqlite_balances(&conn, "poisoned")[&id.to_string()],
        30,
        "10 + 20, not 30"
    );
}

// ---------------------------------------------------------------------------------------------
// In the store's PostgreSQL database: context PostgresWork

#[derive(Projection, Debug)]
#[projection(name = "pg_balances", events(Opened, Deposited), context = PostgresWork)]
struct PgBalances {
    schema: String,
    /// Handlers wait here before this deposit (the interrupted-run test).
    stall_at: Option<(i64, Arc<tokio::sync::Notify>)>,
}

impl PgBalances {
    async fn record(&self, work: &PostgresWork, event: Uuid) -> Result<(), HandlerError> {
        work.client()
            .execute(
                &format!(
                    "INSERT INTO \"{}\".applied (event) VALUES ($1)",
                    self.schema
                ),
                &[&event],
            )
            .await?;
        Ok(())
    }
}

impl Handle<Opened, PostgresWork> for PgBalances {
    async fn handle(
        &mut self,
        e: &Recorded<Opened>,
        work: &mut PostgresWork,
    ) -> Result<(), HandlerError> {
        self.record(work, e.id).await?;
        work.client()
            .execute(
                &format!(
                    "INSERT INTO \"{}\".balances (account, cents) VALUES ($1, 0)",
                    self.schema
                ),
                &[&e.stream_id],
            )
            .await?;
        Ok(())
    }
}
impl Handle<Deposited, PostgresWork> for PgBalances {
    async fn handle(
        &mut self,
        e: &Recorded<Deposited>,
        work: &mut PostgresWork,
    ) -> Result<(), HandlerError> {
        if let Some((cents, reached)) = &self.stall_at
            && *cents == e.event.cents
        {
            reached.notify_one();
            std::future::pending::<()>().await; // until the run is cancelled
        }
        self.record(work, e.id).await?;
        work.client()
            .execute(
                &format!(
                    "UPDATE \"{}\".balances SET cents = cents + $1 WHERE account = $2",
                    self.schema
                ),
                &[&e.event.cents, &e.stream_id],
            )
            .await?;
        Ok(())
    }
}

async fn pg_tables(server: &Server, schema: &str) {
    server
        .admin
        .batch_execute(&format!(
            "CREATE TABLE \"{schema}\".balances (account uuid PRIMARY KEY, cents int8 NOT NULL);
             CREATE TABLE \"{schema}\".applied (event uuid PRIMARY KEY);"
        ))
        .await
        .unwrap();
}

async fn pg_balances(server: &Server, schema: &str) -> BTreeMap<Uuid, i64> {
    server
        .admin
        .query(
            &format!("SELECT account, cents FROM \"{schema}\".balances"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_postgres_projection_under_eight_writers_ends_equal_to_a_rebuild() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server.store("projection_live").await;
    let schema = store.schema().to_owned();
    pg_tables(&server, &schema).await;
    let projection = PgBalances {
        schema: schema.clone(),
        stall_at: None,
    };
    let (last, running) = live_under_writers(store.clone(), projection, 100).await;
    assert_eq!(
        running.events_behind(1_000).await.unwrap(),
        0,
        "caught up: no lag"
    );
    let (_, outcome) = running.stop().await;
    outcome.unwrap();
    let live = pg_balances(&server, &schema).await;
    let applied: i64 = server
        .admin
        .query_one(&format!("SELECT count(*) FROM \"{schema}\".applied"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(applied, 10_000, "every event exactly once");

    // A rebuild from zero into the same tables ends where the live run ended.
    let mut rebuild = Projector::new(
        store.clone(),
        PgBalances {
            schema: schema.clone(),
            stall_at: None,
        },
    );
    let reached = rebuild
        .rebuild(|p, work| {
            let schema = p.schema.clone();
            Box::pin(async move {
                work.client()
                    .batch_execute(&format!(
                        "DELETE FROM \"{schema}\".balances; DELETE FROM \"{schema}\".applied;"
                    ))
                    .await?;
                Ok(())
            })
        })
        .await
        .unwrap();
    assert_eq!(reached, last);
    assert_eq!(pg_balances(&server, &schema).await, live);
    assert_eq!(live.len(), 80);
    assert!(live.values().all(|cents| *cents == (1..=124).sum::<i64>()));
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_projection_interrupted_mid_batch_resumes_exactly_once() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server.store("projection").await;
    let schema = store.schema().to_owned();
    pg_tables(&server, &schema).await;
    let last = write(store.clone(), 16, 10).await;

    // A run that stalls inside a batch (after writing part of it) and is cancelled there, as a
    // crash would end it: nothing of that batch may stay.
    let reached = Arc::new(tokio::sync::Notify::new());
    let stalling = PgBalances {
        schema: schema.clone(),
        stall_at: Some((7, Arc::clone(&reached))),
    };
    let mut projector = Projector::new(store.clone(), stalling).page_size(50);
    tokio::select! {
        outcome = projector.catch_up() => panic!("the run should have stalled: {outcome:?}"),
        () = reached.notified() => {}
    }
    drop(projector);
    let partial = store.tracking_position("pg_balances").await.unwrap();
    assert!(partial < last, "the interrupted run did not finish");

    // Restarted: it resumes after the last committed batch and ends where a rebuild ends.
    let resumed = PgBalances {
        schema: schema.clone(),
        stall_at: None,
    };
    let running = Projector::new(store.clone(), resumed).page_size(50).spawn();
    assert!(
        running
            .wait_for(last, Duration::from_secs(120))
            .await
            .unwrap()
    );
    let (_, outcome) = running.stop().await;
    outcome.unwrap();
    let balances = pg_balances(&server, &schema).await;
    assert_eq!(balances.len(), 16);
    assert!(
        balances.values().all(|cents| *cents == 55),
        "1 + 2 + … + 10 each: {balances:?}"
    );
    let applied: i64 = server
        .admin
        .query_one(&format!("SELECT count(*) FROM \"{schema}\".applied"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(applied, 16 * 11, "every event exactly once");
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_projection_waits_for_a_held_appender_and_skips_nothing() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server.store("projection_held").await;
    let schema = store.schema().to_owned();
    pg_tables(&server, &schema).await;
    let accounts = Repository::<Account, _>::new(store.clone());
    let early = accounts
        .create(Opened {
            owner: "early".into(),
        })
        .await
        .unwrap();

    let running = Projector::new(
        store.clone(),
        PgBalances {
            schema: schema.clone(),
            stall_at: None,
        },
    )
    .poll_interval(Duration::from_millis(50))
    .spawn();
    let first = store.last_position().await.unwrap();
    assert!(
        running
            .wait_for(first, Duration::from_secs(30))
            .await
            .unwrap()
    );

    // An appender held open, then another account that commits after it.
    let (mut raw, connection) = eventsource_core::stores::postgres::tokio_postgres::connect(
        &support::postgres::url(),
        eventsource_core::stores::postgres::tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let mut held = raw.transaction().await.unwrap();
    let held_id = Uuid::now_v7();
    let encoded = accounts
        .encode(
            held_id,
            0,
            &[AccountEvent::from(Opened {
                owner: "held".into(),
            })],
        )
        .await
        .unwrap();
    let held_position = store
        .append_in(
            &mut held,
            eventsource_core::AppendBatch::single_in("ProjAccount", held_id, 0, encoded),
        )
        .await
        .unwrap();
    let later = accounts
        .create(Opened {
            owner: "later".into(),
        })
        .await
        .unwrap();
    let later_position = accounts.history(later).await.unwrap()[0].position;
    assert!(later_position > held_position);
    assert!(
        !running
            .wait_for(held_position, Duration::from_millis(300))
            .await
            .unwrap(),
        "the projection passed an open appender"
    );
    held.commit().await.unwrap();
    assert!(
        running
            .wait_for(later_position, Duration::from_secs(30))
            .await
            .unwrap()
    );
    let (_, outcome) = running.stop().await;
    outcome.unwrap();
    let balances = pg_balances(&server, &schema).await;
    let accounts_seen: Vec<Uuid> = balances.keys().copied().collect();
    let mut expected = vec![early, held_id, later];
    expected.sort();
    assert_eq!(
        accounts_seen, expected,
        "every account, the held one included"
    );
    server.finish().await;
}
