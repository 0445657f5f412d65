//! A projector killed with SIGKILL in the middle of its work, in a child process, and then
//! restarted, on a SQLite file and on PostgreSQL: the read model ends equal to a rebuild from zero and no event was applied twice
//! (each event id is recorded under a unique key, so a second application fails the run).
//!
//! The child is this test binary run again with `ES_CRASH_CHILD` set: it runs the projector
//! with a handler slowed down so the kill lands while batches are being written.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use eventsource_core::prelude::*;
use eventsource_core::stores::postgres::{PostgresStore, PostgresWork};
use eventsource_core::stores::sqlite::SqliteWork;
use eventsource_core::{AppendBatch, NewEvent, Position, SqliteStore};
use serde::{Deserialize, Serialize};

mod support;
use support::postgres::{Server, url};

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(name = "CrashCounted")]
struct Counted {
    n: i64,
}

/// Sums every `Counted` into a table, recording each event id once.
#[derive(Projection, Debug)]
#[projection(name = "crash_sums", events(Counted), context = SqliteWork)]
struct Sums {
    /// How long each event takes (the child is slow, so the kill lands mid-batch).
    delay: Duration,
}

impl Handle<Counted, SqliteWork> for Sums {
    async fn handle(
        &mut self,
        e: &Recorded<Counted>,
        work: &mut SqliteWork,
    ) -> Result<(), HandlerError> {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        let connection = work.connection();
        connection.execute(
            "INSERT INTO applied (event) VALUES (?1)",
            [e.id.to_string()],
        )?;
        connection.execute(
            "INSERT INTO sums (stream, total) VALUES (?1, ?2) \
             ON CONFLICT (stream) DO UPDATE SET total = total + excluded.total",
            rusqlite::params![e.stream_id.to_string(), e.event.n],
        )?;
        Ok(())
    }
}

const STREAMS: usize = 20;
const PER_STREAM: usize = 100;

/// The child: runs the projector until killed. Not a test of its own: the test below runs it
/// in a child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of a_projector_killed_mid_batch_resumes_with_nothing_applied_twice"]
async fn child_runs_the_projector_until_killed() {
    let path = std::env::var("ES_CRASH_CHILD").expect("ES_CRASH_CHILD names the database");
    let store = SqliteStore::open(&path).await.expect("open");
    let mut projector = Projector::new(
        store,
        Sums {
            delay: Duration::from_millis(2),
        },
    )
    .page_size(25);
    projector.catch_up().await.expect("the child's run");
    // If it finishes before the kill, the parent notices: the kill must land mid-run.
    eprintln!("the child finished before it was killed");
}

/// Appends `STREAMS` streams of `PER_STREAM` counted events; returns the last position and the
/// sum a rebuild must reach.
async fn write_counted(store: &impl EventStore) -> (Position, i64) {
    let mut expected_total = 0;
    for _ in 0..STREAMS {
        let events = (1..=PER_STREAM as i64)
            .map(|n| {
                expected_total += n;
                NewEvent::new("CrashCounted", 1, format!("{{\"n\":{n}}}"))
            })
            .collect();
        store
            .append(AppendBatch::single_in("Counter", Uuid::now_v7(), 0, events))
            .await
            .expect("append");
    }
    (
        store.last_position().await.expect("the last position"),
        expected_total,
    )
}

/// Runs the ignored test `child` of this binary in a child process with `env` set, waits until
/// the projection `tracker` has committed something, and kills the child without warning.
/// Returns the tracking position it left.
async fn kill_mid_run(
    store: &impl EventStore,
    child: &str,
    env: (&str, &str),
    tracker: &str,
) -> Position {
    let mut process = Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--exact", child, "--ignored", "--nocapture"])
        .env(env.0, env.1)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the child");
    let deadline = Instant::now() + Duration::from_secs(60);
    while store
        .tracking_position(tracker)
        .await
        .expect("the tracking position")
        == Position::START
    {
        assert!(
            Instant::now() < deadline,
            "the child committed nothing within 60 s"
        );
        assert!(
            process.try_wait().expect("the child").is_none(),
            "the child ended before the kill"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    process.kill().expect("SIGKILL the child");
    let status = process.wait().expect("the child's status");
    assert!(
        !status.success(),
        "the child was killed, not finished: {status:?}"
    );
    store
        .tracking_position(tracker)
        .await
        .expect("the tracking position")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_mid_batch_resumes_with_nothing_applied_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE sums (stream TEXT PRIMARY KEY, total INTEGER NOT NULL);
         CREATE TABLE applied (event TEXT PRIMARY KEY);",
    )
    .unwrap();
    let (last, expected_total) = write_counted(&store).await;
    let at_kill = kill_mid_run(
        &store,
        "child_runs_the_projector_until_killed",
        ("ES_CRASH_CHILD", path.to_str().expect("a UTF-8 path")),
        "crash_sums",
    )
    .await;
    assert!(at_kill < last, "the kill landed before the end");

    // Restarted here: it resumes after the last committed batch.
    let mut projector = Projector::new(
        store.clone(),
        Sums {
            delay: Duration::ZERO,
        },
    );
    let reached = projector
        .catch_up()
        .await
        .expect("the restarted run (a unique key fails on a repeat)");
    assert_eq!(reached, last);
    let applied: i64 = conn
        .query_row("SELECT count(*) FROM applied", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        applied as usize,
        STREAMS * PER_STREAM,
        "every event exactly once"
    );
    let total: i64 = conn
        .query_row("SELECT sum(total) FROM sums", [], |r| r.get(0))
        .unwrap();
    assert_eq!(total, expected_total, "the same as a rebuild from zero");
}

// ---------------------------------------------------------------------------------------------
// The same on PostgreSQL: the read model in the store's schema, context PostgresWork.

/// Sums every `Counted` into the store's schema, recording each event id once.
#[derive(Projection, Debug)]
#[projection(name = "crash_sums_pg", events(Counted), context = PostgresWork)]
struct PgSums {
    schema: String,
    delay: Duration,
}

impl Handle<Counted, PostgresWork> for PgSums {
    async fn handle(
        &mut self,
        e: &Recorded<Counted>,
        work: &mut PostgresWork,
    ) -> Result<(), HandlerError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let schema = &self.schema;
        work.client()
            .execute(
                &format!("INSERT INTO \"{schema}\".applied (event) VALUES ($1)"),
                &[&e.id],
            )
            .await?;
        work.client()
            .execute(
                &format!(
                    "INSERT INTO \"{schema}\".sums (stream, total) VALUES ($1, $2) \
                     ON CONFLICT (stream) DO UPDATE SET total = sums.total + excluded.total"
                ),
                &[&e.stream_id, &e.event.n],
            )
            .await?;
        Ok(())
    }
}

/// The PostgreSQL child: runs the projector until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of a_postgres_projector_killed_mid_batch_resumes_with_nothing_applied_twice"]
async fn child_runs_the_postgres_projector_until_killed() {
    let schema = std::env::var("ES_CRASH_CHILD_PG").expect("ES_CRASH_CHILD_PG names the schema");
    let store = PostgresStore::options(url())
        .schema(schema.clone())
        .connect()
        .await
        .expect("connect");
    let projection = PgSums {
        schema,
        delay: Duration::from_millis(2),
    };
    let mut projector = Projector::new(store, projection).page_size(25);
    projector.catch_up().await.expect("the child's run");
    eprintln!("the child finished before it was killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_projector_killed_mid_batch_resumes_with_nothing_applied_twice() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server.store("crash").await;
    let schema = store.schema().to_owned();
    server
        .admin
        .batch_execute(&format!(
            "CREATE TABLE \"{schema}\".sums (stream uuid PRIMARY KEY, total int8 NOT NULL);
             CREATE TABLE \"{schema}\".applied (event uuid PRIMARY KEY);"
        ))
        .await
        .unwrap();
    let (last, expected_total) = write_counted(&store).await;
    let at_kill = kill_mid_run(
        &store,
        "child_runs_the_postgres_projector_until_killed",
        ("ES_CRASH_CHILD_PG", &schema),
        "crash_sums_pg",
    )
    .await;
    assert!(at_kill < last, "the kill landed before the end");

    // Restarted here (once the server has noticed the dead child's connections and released
    // its claim): it resumes after the last committed batch.
    let projection = PgSums {
        schema: schema.clone(),
        delay: Duration::ZERO,
    };
    let mut projector = Projector::new(store.clone(), projection);
    let reached = projector.catch_up().await.expect("the restarted run");
    assert_eq!(reached, last);
    let row = server
        .admin
        .query_one(
            &format!("SELECT (SELECT count(*) FROM \"{schema}\".applied), (SELECT sum(total) FROM \"{schema}\".sums)::int8"),
            &[],
        )
        .await
        .unwrap();
    let (applied, total): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(
        applied as usize,
        STREAMS * PER_STREAM,
        "every event exactly once"
    );
    assert_eq!(total, expected_total, "the same as a rebuild from zero");
    server.finish().await;
}
