//! The cost of one command as a stream grows, with and without snapshots and the cache: a
//! measurement to print, not a timed test (it is `#[ignore]`d and asserts no timings).
//!
//! ```text
//! cargo test --release -p eventsource-tests --test command_cost -- --ignored --nocapture
//! ```
//!
//! For each store (memory, SQLite file with the default options) and stream length (100, 10,000,
//! 100,000 events), it builds one aggregate's stream with batched appends, then runs commands
//! (load, decide, append with optimistic concurrency) through a repository that:
//! - `replay`: replays the whole stream every time;
//! - `snapshots`: snapshots every 100 events (one taken first, as a long-lived aggregate has);
//! - `cache`: keeps the state in its cache (warmed by one load first) and fast-forwards;
//! - `both`: snapshots every 100 and the cache.
//!
//! Set `COMMAND_COST_LENGTHS=100,10000` to choose the lengths.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventsource_core::prelude::*;
use eventsource_core::{AppendBatch, SqliteStore};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Deposited {
    cents: u64,
    note: String,
}

#[derive(Aggregate, Default, Debug, Clone, Serialize, Deserialize)]
#[aggregate(events(Deposited), snapshot)]
struct Account {
    balance: u64,
    deposits: u64,
    last_note: String,
}

impl Apply<Deposited> for Account {
    fn apply(&mut self, event: &Deposited) {
        self.balance += event.cents;
        self.deposits += 1;
        self.last_note.clone_from(&event.note);
    }
}

fn deposit(n: u64) -> Deposited {
    Deposited {
        cents: 100 + n % 7,
        note: format!("deposit number {n}"),
    }
}

#[derive(Clone, Copy, Debug)]
enum Variant {
    Replay,
    Snapshots,
    Cache,
    Both,
}

impl Variant {
    const ALL: [Variant; 4] = [
        Variant::Replay,
        Variant::Snapshots,
        Variant::Cache,
        Variant::Both,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::Replay => "replay",
            Variant::Snapshots => "snapshots/100",
            Variant::Cache => "cache",
            Variant::Both => "snapshots+cache",
        }
    }

    fn repository(self, store: Arc<dyn EventStore>) -> Repository<Account, Arc<dyn EventStore>> {
        let repo = Repository::new(store);
        match self {
            Variant::Replay => repo.snapshot_every(0),
            Variant::Snapshots => repo.snapshot_every(100),
            Variant::Cache => repo.snapshot_every(0).with_cache(1024),
            Variant::Both => repo.snapshot_every(100).with_cache(1024),
        }
    }
}

/// One aggregate with `length` events, appended in batches.
async fn build(store: &Arc<dyn EventStore>, length: u64) -> Uuid {
    let repo = Variant::Replay.repository(store.clone());
    let id = repo.create(deposit(0)).await.unwrap();
    let mut version = 1;
    while version < length {
        let batch = (length - version).min(1000);
        let events: Vec<AccountEvent> = (version..version + batch)
            .map(|n| deposit(n).into())
            .collect();
        store
            .append(AppendBatch::single(
                id,
                version,
                repo.encode(id, version, &events).await.unwrap(),
            ))
            .await
            .unwrap();
        version += batch;
    }
    id
}

/// The time of one command: after two warm-up commands, five rounds of enough commands to take
/// about half a second each (3 to 200); the median round's mean. The median keeps a round
/// disturbed by other work on the machine out of the figure.
async fn per_command(variant: Variant, store: Arc<dyn EventStore>, id: Uuid) -> (Duration, u32) {
    let repo = variant.repository(store);
    match variant {
        Variant::Snapshots | Variant::Both => {
            repo.take_snapshot(id).await.unwrap();
        }
        Variant::Replay | Variant::Cache => {}
    }
    let mut n = 0u64;
    let mut command = async || {
        n += 1;
        let after = repo
            .execute(id, |_| Ok::<_, std::convert::Infallible>(deposit(n)))
            .await
            .unwrap();
        assert_eq!(after.deposits, after.version());
    };
    // Warm up: fills the cache, the store's page cache and the connection's statements; the
    // second command's time sets how many to run.
    command().await;
    let started = Instant::now();
    command().await;
    let second = started.elapsed();
    let commands =
        (Duration::from_millis(500).as_nanos() / second.as_nanos().max(1)).clamp(3, 200) as u32;
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        for _ in 0..commands {
            command().await;
        }
        rounds.push(started.elapsed() / commands);
    }
    rounds.sort();
    (rounds[rounds.len() / 2], commands)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --release -- --ignored --nocapture"]
async fn command_cost_by_stream_length() {
    let lengths: Vec<u64> = std::env::var("COMMAND_COST_LENGTHS")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 10_000, 100_000]);
    println!(
        "per-command cost (load + decide + append); reproduce with:\n  cargo test --release -p eventsource-tests --test command_cost -- --ignored --nocapture\n"
    );
    println!(
        "{:<8} {:>8} {:<16} {:>11} {:>14} {:>10}",
        "store", "events", "variant", "commands", "per command", "vs first"
    );
    let dir = tempfile::tempdir().unwrap();
    for store_name in ["memory", "sqlite"] {
        let mut first: Vec<Option<Duration>> = vec![None; Variant::ALL.len()];
        for &length in &lengths {
            let store: Arc<dyn EventStore> = match store_name {
                "memory" => Arc::new(MemoryStore::new()),
                _ => Arc::new(
                    SqliteStore::open(dir.path().join(format!("cost-{length}.db")))
                        .await
                        .unwrap(),
                ),
            };
            for (i, variant) in Variant::ALL.into_iter().enumerate() {
                // A fresh stream per variant, so one variant's snapshots don't help another.
                let id = build(&store, length).await;
                let (cost, commands) = per_command(variant, store.clone(), id).await;
                let base = *first[i].get_or_insert(cost);
                println!(
                    "{:<8} {:>8} {:<16} {:>7} × 5 {:>11.1} µs {:>9.2}×",
                    store_name,
                    length,
                    variant.name(),
                    commands,
                    cost.as_secs_f64() * 1e6,
                    cost.as_secs_f64() / base.as_secs_f64(),
                );
            }
        }
        println!();
    }
}
