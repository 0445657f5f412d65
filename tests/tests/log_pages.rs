//! A category-filtered follower over a large log: 100,000 events of which 10 match. It follows
//! `LogPage::next`, so it reads the 10 events in the fewest pages, never receives an event twice,
//! and its later polls start after everything it passed instead of rescanning it. Run on the
//! memory store, a SQLite file and a PostgreSQL schema (skipped with a message when the server
//! is unreachable, except under `CI=true`); for the SQL stores the query plan shows the category
//! index doing the filtering, so the database does not read the other events either.

use std::sync::Arc;

use eventsource_core::{
    AppendBatch, EventStore, LogQuery, MemoryStore, NewEvent, Position, SqliteStore, Uuid,
};

mod support;
use support::postgres::*;

const NOISE: usize = 100_000;
const RARE: usize = 10;
const PAGE: usize = 3;

/// Writes `NOISE` events of category "Noise" in batches of 1,000 (one stream each) and one
/// "Rare" event after every tenth of them. Returns the rare events' positions.
async fn write_log(store: &dyn EventStore) -> Vec<Position> {
    let rare = Uuid::now_v7();
    let mut rare_positions = Vec::new();
    for batch in 0..NOISE / 1000 {
        let events = (0..1000)
            .map(|i| NewEvent::new("Hum", 1, format!("{batch}:{i}")))
            .collect();
        store
            .append(AppendBatch::single_in("Noise", Uuid::now_v7(), 0, events))
            .await
            .expect("append noise");
        if batch % (NOISE / 1000 / RARE) == 0 {
            let version = rare_positions.len() as u64;
            let position = store
                .append(AppendBatch::single_in(
                    "Rare",
                    rare,
                    version,
                    vec![NewEvent::new("Beep", 1, format!("{batch}"))],
                ))
                .await
                .expect("append a rare event");
            rare_positions.push(position);
        }
    }
    rare_positions
}

/// Follows the "Rare" category in pages of `PAGE` from the start until a page comes back empty.
/// Returns the positions received, the reads it took and where the next read starts.
async fn follow(store: &dyn EventStore, after: Position) -> (Vec<Position>, usize, Position) {
    let mut after = after;
    let mut received = Vec::new();
    let mut reads = 0;
    loop {
        let page = store
            .read_log(LogQuery::after(after, PAGE).categories(["Rare"]))
            .await
            .expect("read the log");
        reads += 1;
        assert!(page.events.iter().all(|e| e.category == "Rare"));
        assert!(page.next >= after, "the next read never starts earlier");
        if page.is_empty() {
            return (received, reads, page.next);
        }
        received.extend(page.events.iter().map(|e| e.position));
        after = page.next;
    }
}

async fn scenario(name: &str, store: Arc<dyn EventStore>) {
    let rare = write_log(&*store).await;
    assert_eq!(rare.len(), RARE);
    let last = store.last_position().await.unwrap();

    let (received, reads, next) = follow(&*store, Position::START).await;
    assert_eq!(
        received, rare,
        "{name}: every matching event, once, in order"
    );
    // 10 in pages of 3: three full pages, a page of one (not full: it ends at the log's end),
    // and the empty page that says nothing more is there.
    assert_eq!(reads, 5, "{name}: reads to follow 10 events among 100,010");
    assert_eq!(next, last, "{name}: the follower ends where the log ends");

    // Polling again reads nothing and stays put; new noise is passed in one poll.
    let (again, reads, same) = follow(&*store, next).await;
    assert_eq!(
        (again.len(), reads, same),
        (0, 1, next),
        "{name}: polling again"
    );
    let events = (0..1000)
        .map(|i| NewEvent::new("Hum", 1, format!("{i}")))
        .collect();
    let newest = store
        .append(AppendBatch::single_in("Noise", Uuid::now_v7(), 0, events))
        .await
        .unwrap();
    let (passed, reads, moved) = follow(&*store, next).await;
    assert_eq!(
        (passed.len(), reads, moved),
        (0, 1, newest),
        "{name}: a poll over new noise"
    );

    // A new matching event is the next thing the follower receives.
    let beep = store
        .append(AppendBatch::single_in(
            "Rare",
            Uuid::now_v7(),
            0,
            vec![NewEvent::new("Beep", 1, "late")],
        ))
        .await
        .unwrap();
    let (late, _, end) = follow(&*store, moved).await;
    assert_eq!((late, end), (vec![beep], beep), "{name}: the late event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_follower_on_the_memory_store() {
    scenario("memory", Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_follower_on_sqlite_uses_the_category_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    scenario("sqlite", Arc::new(SqliteStore::open(&path).await.unwrap())).await;
    // The shape of the store's filtered read: SQLite searches the category index and never
    // scans the table.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut plan = conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT position FROM events WHERE position > ?1 \
             AND category IN (SELECT value FROM json_each(?2)) ORDER BY position LIMIT ?3",
        )
        .unwrap();
    let details: Vec<String> = plan
        .query_map(rusqlite::params![0, r#"["Rare"]"#, 3], |row| row.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let plan = details.join("; ");
    assert!(plan.contains("events_by_category"), "{plan}");
    assert!(!plan.contains("SCAN events"), "{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_follower_on_postgres_reads_only_its_category() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server.store("log_pages").await;
    let schema = store.schema().to_owned();
    scenario("postgres", Arc::new(store)).await;
    // The shape of the store's filtered read: one range scan of the category index per
    // category, reading at most a page of rows.
    let rows = server
        .admin
        .query(
            &format!(
                "EXPLAIN (ANALYZE, FORMAT TEXT) \
                 SELECT e.position FROM unnest(ARRAY['Rare']) AS c(category), LATERAL ( \
                    SELECT x.position FROM \"{schema}\".events AS x \
                    WHERE x.category = c.category AND x.position > 0 \
                    ORDER BY x.position LIMIT 3) AS e \
                 ORDER BY e.position LIMIT 3"
            ),
            &[],
        )
        .await
        .unwrap();
    let plan: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    let plan = plan.join("\n");
    let scan = plan
        .lines()
        .find(|line| line.contains("events_by_category"))
        .unwrap_or_else(|| panic!("the category index is not used:\n{plan}"));
    assert!(
        scan.contains("rows=3 loops=1)"),
        "the scan read more than a page:\n{plan}"
    );
    assert!(!plan.contains("Seq Scan"), "{plan}");
    server.finish().await;
}
