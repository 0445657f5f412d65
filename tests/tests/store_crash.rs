//! Crash tests of the SQL stores (issue 18): what a store holds after the process writing to it
//! dies without warning, and after its server crashes under load.
//!
//! - **A writer killed with SIGKILL, 100 times per store.** A child process (this test binary
//!   run again with `ES_STORE_CRASH_CHILD` set) appends batches in a loop straight through
//!   [`EventStore::append`]: single-stream batches, batches over 2 to 4 streams, batches on a
//!   fresh stream, and about a third of them with a tracking record. Each event's payload names
//!   its batch, its index in it, the batch's size, its stream and version and the batch's
//!   tracking position. The child prints a batch's id before it appends it and again once
//!   `append` returned `Ok`; the parent kills it 20 to 150 ms after it started appending, at a
//!   random point, then reopens the store and checks that it opens (SQLite: the WAL recovers,
//!   and `PRAGMA integrity_check` passes), that every batch is all or nothing with the versions
//!   its events name, that every acknowledged batch is there at the position `append` returned,
//!   that nothing is there the child did not try, that the log read from the start page by page
//!   gives each event once in increasing positions with every stream's versions without a gap
//!   (and a follower paging on from the previous trial reads exactly the new events), and that
//!   the tracking position is the one the last stored tracked batch recorded, itself the
//!   position of a stored batch. The next trial's child carries on on the same store from the
//!   versions it finds. On a SQLite file and on a schema of the shared PostgreSQL server.
//!   `EVENTSOURCE_CRASH_TRIALS` sets the number of trials, `EVENTSOURCE_CRASH_SEED` replays the
//!   kill delays and the batches.
//! - **A PostgreSQL server restarted under load.** A cluster of the test's own (`initdb` in a
//!   temporary directory, a port of its own: see `support/cluster.rs`) is crashed three times with
//!   `pg_ctl restart -m immediate` and once stopped (`-m immediate`) and started again, while
//!   writers keep appending through one `PostgresStore`. Appends during an outage fail with a
//!   typed error within a bounded time; after each restart the same store's pool recovers and
//!   every writer's appends succeed again. Then every acknowledged batch is stored exactly once,
//!   every batch whose error said nothing was written is absent, one whose outcome is unknown
//!   ([`Error::OutcomeUnknown`]) is all or nothing, and the log is contiguous as above.
//! - **A connection lost after an append reached the server.** Through a proxy that loses the
//!   server's answers and then cuts the connection once the batch is committed: the append
//!   must say its outcome is unknown. It said nothing was written: a defect found while writing
//!   these tests, which a server crash on loopback almost never shows (the answers to the
//!   statements before `COMMIT` arrive before the crash), and a network failure would.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use eventsource_core::stores::postgres::tokio_postgres;
use eventsource_core::stores::postgres::{PostgresOptions, PostgresStore};
use eventsource_core::{
    AppendBatch, Error, EventStore, LogQuery, NewEvent, Position, SqliteStore, StoredEvent,
    StreamAppend, Uuid,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

mod support;
use support::child::ChildRun;
use support::cluster::Cluster;
use support::postgres::{Server, unique_schema, url};
use support::proxy::Proxy;
use support::rng::{Rng, seed};

/// Trials per store unless `EVENTSOURCE_CRASH_TRIALS` says otherwise.
const DEFAULT_TRIALS: u64 = 100;
const TRIALS_ENV: &str = "EVENTSOURCE_CRASH_TRIALS";
const SEED_ENV: &str = "EVENTSOURCE_CRASH_SEED";

/// The child test, and what it is told: the store (`sqlite:<path>` or `postgres:<schema>`), the
/// trial (its batch ids start with `t<trial>-`) and the seed of its batches.
const CHILD: &str = "child_appends_until_killed";
const CHILD_STORE_ENV: &str = "ES_STORE_CRASH_CHILD";
const CHILD_TRIAL_ENV: &str = "ES_STORE_CRASH_TRIAL";
const CHILD_SEED_ENV: &str = "ES_STORE_CRASH_SEED";
/// What the child prints: once it is about to append, then each batch id before its append and
/// after its acknowledgement (with the position `append` returned).
const READY: &str = "store-crash-child: appending";
const TRYING: &str = "store-crash-child: trying";
const ACKED: &str = "store-crash-child: acked";
/// The child's tracker.
const CHILD_TRACKER: &str = "store-crash-child";

/// The kill lands this many milliseconds after the child said it is appending.
const KILL_DELAY_MS: (u64, u64) = (20, 150);
/// Streams every writer keeps appending to (besides a fresh stream now and then).
const POOL_STREAMS: u64 = 6;
const EVENT_NAME: &str = "CrashAppended";
const CATEGORY: &str = "CrashStream";
/// Events per log page when reading the log back.
const PAGE: usize = 200;
/// The longest any one wait of these tests may take.
const DEADLINE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The batches: what each event says about the batch it belongs to.

/// The payload of every event: enough to check its batch without knowing what was appended.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Mark {
    /// The batch id: `t<trial>-<n>` from a child, `w<writer>-<n>` from a writer.
    batch: String,
    /// How many events the batch holds.
    of: usize,
    /// This event's index within the batch.
    index: usize,
    /// The stream and version this event must have been stored at.
    stream: Uuid,
    version: u64,
    /// The tracking position the batch recorded, if it recorded one.
    tracking: Option<u64>,
}

/// A batch about to be appended.
struct Planned {
    id: String,
    batch: AppendBatch,
}

/// Makes a writer's batches: single-stream, 2 to 4 streams, a fresh stream, and about a third
/// of them with a tracking record. It keeps the versions of its pool of streams (resynced from
/// the store after a failure) and the position of its last acknowledged append, which its next
/// tracked batch records: always a position of a stored batch, and always after the position
/// recorded before (the batch that returned it committed after every earlier tracked batch).
struct Writer {
    prefix: String,
    tracker: String,
    pool: Vec<Uuid>,
    versions: Vec<u64>,
    /// `None` until an append of this writer's current run succeeded (or after a failure).
    track_from: Option<Position>,
    next_batch: u64,
    rng: Rng,
}

impl Writer {
    fn new(prefix: String, tracker: &str, pool: Vec<Uuid>, rng: Rng) -> Self {
        Writer {
            prefix,
            tracker: tracker.to_owned(),
            versions: vec![0; pool.len()],
            pool,
            track_from: None,
            next_batch: 1,
            rng,
        }
    }

    /// Reads the pool's versions from the store.
    async fn resync(&mut self, store: &dyn EventStore) -> eventsource_core::Result<()> {
        for (stream, version) in self.pool.iter().zip(&mut self.versions) {
            *version = store.stream_version(*stream).await?;
        }
        Ok(())
    }

    fn plan(&mut self) -> Planned {
        let id = format!("{}-{}", self.prefix, self.next_batch);
        self.next_batch += 1;
        // (stream, expected version, events)
        let parts: Vec<(Uuid, u64, u64)> = match self.rng.below(8) {
            0 => vec![(Uuid::now_v7(), 0, self.rng.between(1, 3))],
            1..=3 => {
                let at = self.rng.below(self.pool.len() as u64) as usize;
                vec![(self.pool[at], self.versions[at], self.rng.between(1, 4))]
            }
            _ => {
                let streams = self.rng.between(2, 4.min(self.pool.len() as u64)) as usize;
                let mut order: Vec<usize> = (0..self.pool.len()).collect();
                for i in 0..streams {
                    let j = i + self.rng.below((order.len() - i) as u64) as usize;
                    order.swap(i, j);
                }
                order[..streams]
                    .iter()
                    .map(|&at| (self.pool[at], self.versions[at], self.rng.between(1, 3)))
                    .collect()
            }
        };
        let tracking = match self.track_from {
            Some(position) if self.rng.below(3) == 0 => Some(position),
            _ => None,
        };
        let of = parts.iter().map(|&(_, _, n)| n as usize).sum();
        let mut index = 0;
        let streams = parts
            .into_iter()
            .map(|(stream, expected, count)| StreamAppend {
                stream_id: stream,
                category: CATEGORY.into(),
                expected_version: expected,
                events: (1..=count)
                    .map(|n| {
                        let mark = Mark {
                            batch: id.clone(),
                            of,
                            index,
                            stream,
                            version: expected + n,
                            tracking: tracking.map(Position::get),
                        };
                        index += 1;
                        let payload = serde_json::to_vec(&mark).expect("a mark encodes");
                        NewEvent::new(EVENT_NAME, 1, payload)
                    })
                    .collect(),
            })
            .collect();
        let mut batch = AppendBatch {
            streams,
            tracking: None,
        };
        if let Some(position) = tracking {
            batch = batch.tracked(self.tracker.clone(), position);
        }
        Planned { id, batch }
    }

    /// `planned` was acknowledged at `position`.
    fn acked(&mut self, planned: &Planned, position: Position) {
        for append in &planned.batch.streams {
            if let Some(at) = self.pool.iter().position(|s| *s == append.stream_id) {
                self.versions[at] = append.expected_version + append.events.len() as u64;
            }
        }
        self.track_from = Some(position);
    }

    /// An append failed: the versions must be read again, and the next tracked batch waits
    /// for a fresh acknowledgement (a batch whose outcome is unknown may have recorded the
    /// position this writer would use).
    fn failed(&mut self) {
        self.track_from = None;
    }
}

/// The pool of streams of writer `writer` (the child's is writer 0): the same ids in every run,
/// so a child carries on where the killed one stopped.
fn pool(writer: u64) -> Vec<Uuid> {
    (0..POOL_STREAMS)
        .map(|i| {
            Uuid::from_u128(
                0x5eed_c2a5_0000_4000_8000_0000_0000_0000 | u128::from((writer << 8) | i),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Reading the log back and checking it.

/// A batch found in the log.
#[derive(Debug, Clone)]
struct Found {
    /// How many of its events were found.
    events: usize,
    /// The position of its last event.
    last: Position,
    tracking: Option<u64>,
}

/// What a whole-log read found.
#[derive(Debug, Default)]
struct LogFacts {
    batches: HashMap<String, Found>,
    /// Each stream's last version in the log.
    streams: HashMap<Uuid, u64>,
    /// The ids and positions of the events, in log order.
    events: Vec<(Uuid, Position)>,
}

/// Reads the log after `after` page by page, as a follower does, until a page comes back
/// short (the store has looked at everything readable so far). Returns the events and the
/// page's `next`. Fails on a position that doesn't increase or a `next` behind the page.
async fn follow(
    store: &dyn EventStore,
    after: Position,
) -> Result<(Vec<StoredEvent>, Position), String> {
    let mut events: Vec<StoredEvent> = Vec::new();
    let mut next = after;
    loop {
        let page = store
            .read_log(LogQuery::after(next, PAGE))
            .await
            .map_err(|e| format!("reading the log after {next}: {e}"))?;
        let full = page.len() == PAGE;
        for event in &page.events {
            let previous = events.last().map_or(next, |e| e.position);
            if event.position <= previous {
                return Err(format!(
                    "the log went from position {previous} to {} (reading after {next})",
                    event.position
                ));
            }
        }
        if let Some(last) = page.events.last()
            && page.next < last.position
        {
            return Err(format!(
                "a page ending at position {} said to read on after {}",
                last.position, page.next
            ));
        }
        if page.next < next {
            return Err(format!(
                "reading after {next} said to read on after {}, behind it",
                page.next
            ));
        }
        events.extend(page.events);
        next = page.next;
        if !full {
            return Ok((events, next));
        }
    }
}

/// Checks every event and batch in `events` (the whole log, in order): each event once, with
/// the stream, version, name and category its mark says; every stream's versions from 1
/// without a gap; every batch complete. Returns every problem found, not just the first.
fn check_log(events: &[StoredEvent]) -> Result<LogFacts, Vec<String>> {
    let mut problems = Vec::new();
    let mut facts = LogFacts::default();
    let mut ids = HashSet::new();
    let mut indexes: HashMap<String, (usize, Vec<usize>)> = HashMap::new();
    for event in events {
        facts.events.push((event.id, event.position));
        if !ids.insert(event.id) {
            problems.push(format!(
                "event {} is in the log twice (again at position {})",
                event.id, event.position
            ));
        }
        let at = format!(
            "the event at position {} (stream {} version {})",
            event.position, event.stream_id, event.version
        );
        let mark: Mark = match serde_json::from_slice(&event.payload) {
            Ok(mark) => mark,
            Err(e) => {
                problems.push(format!("{at}: its payload is not a mark: {e}"));
                continue;
            }
        };
        if (event.stream_id, event.version) != (mark.stream, mark.version) {
            problems.push(format!(
                "{at}, event {} of batch {}, was appended as version {} of stream {}",
                mark.index, mark.batch, mark.version, mark.stream
            ));
        }
        if event.name != EVENT_NAME || event.category != CATEGORY {
            problems.push(format!(
                "{at} is named `{}` in category `{}`",
                event.name, event.category
            ));
        }
        let last = facts.streams.entry(event.stream_id).or_insert(0);
        if event.version != *last + 1 {
            problems.push(format!(
                "{at} follows version {} of its stream in the log: versions must go up by one",
                last
            ));
        }
        *last = event.version;
        let found = facts.batches.entry(mark.batch.clone()).or_insert(Found {
            events: 0,
            last: event.position,
            tracking: mark.tracking,
        });
        found.events += 1;
        found.last = event.position;
        if found.tracking != mark.tracking {
            problems.push(format!(
                "{at}: batch {} records tracking {:?} here and {:?} in another event",
                mark.batch, mark.tracking, found.tracking
            ));
        }
        let (of, seen) = indexes.entry(mark.batch).or_insert((mark.of, Vec::new()));
        if *of != mark.of {
            problems.push(format!("{at}: its batch's size is {} and {of}", mark.of));
        }
        seen.push(mark.index);
    }
    for (batch, (of, mut seen)) in indexes {
        seen.sort_unstable();
        if seen != (0..of).collect::<Vec<_>>() {
            problems.push(format!(
                "batch {batch} of {of} events is in the log with events {seen:?}: a batch is all or nothing"
            ));
        }
    }
    if problems.is_empty() {
        Ok(facts)
    } else {
        problems.sort();
        Err(problems)
    }
}

/// Reads the whole log and checks it (see [`check_log`]); fails the test with every problem.
async fn read_and_check(store: &dyn EventStore, label: &str) -> (LogFacts, Position) {
    let (events, next) = follow(store, Position::START)
        .await
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    match check_log(&events) {
        Ok(facts) => (facts, next),
        Err(problems) => panic!(
            "{label}: the log breaks {} rule(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        ),
    }
}

/// The tracking position of `tracker` must be the one the last stored batch of its writer
/// (batch ids starting with `prefix`) that recorded one recorded, and that must be the position
/// of a stored batch: never a record without its batch, never a batch without its record.
fn check_tracking(facts: &LogFacts, prefix: &str, tracker: &str, recorded: Position) {
    let expected = facts
        .batches
        .iter()
        .filter(|(id, found)| id.starts_with(prefix) && found.tracking.is_some())
        .max_by_key(|(_, found)| found.last)
        .map(|(id, found)| (id.clone(), found.tracking.unwrap_or(0)));
    let (batch, expected) = expected.unwrap_or_else(|| ("(none)".into(), 0));
    assert_eq!(
        recorded.get(),
        expected,
        "tracker `{tracker}` is at {recorded}, but the last stored batch that recorded a position for it is {batch}, which recorded {expected}"
    );
    if recorded > Position::START {
        assert!(
            facts.batches.values().any(|found| found.last == recorded),
            "tracker `{tracker}` is at {recorded}, the position of no stored batch"
        );
    }
}

/// Each stream's version as the store reports it matches its last version in the log.
async fn check_versions(store: &dyn EventStore, facts: &LogFacts, streams: &[Uuid], label: &str) {
    for stream in streams {
        let version = store
            .stream_version(*stream)
            .await
            .unwrap_or_else(|e| panic!("{label}: the version of stream {stream}: {e}"));
        let in_log = facts.streams.get(stream).copied().unwrap_or(0);
        assert_eq!(
            version, in_log,
            "{label}: stream {stream} is at version {version}, but the log holds it up to version {in_log}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Test 1: a child appending, killed with SIGKILL, 100 times per store.

/// The store the trials run on.
enum Target {
    Sqlite(PathBuf),
    Postgres {
        options: Box<PostgresOptions>,
        schema: String,
        admin: tokio_postgres::Client,
    },
}

impl Target {
    /// What the child is told.
    fn spec(&self) -> String {
        match self {
            Target::Sqlite(path) => format!("sqlite:{}", path.to_str().expect("a UTF-8 path")),
            Target::Postgres { schema, .. } => format!("postgres:{schema}"),
        }
    }

    /// Waits until the killed child has left nothing running: its PostgreSQL sessions (which
    /// the server ends once it notices the connection is gone) hold back the log's horizon
    /// until then. A SQLite file has nothing to wait for.
    async fn settle(&self) {
        let Target::Postgres { schema, admin, .. } = self else {
            return;
        };
        let deadline = Instant::now() + DEADLINE;
        loop {
            let row = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                    &[&child_application(schema)],
                )
                .await
                .expect("count the killed child's sessions");
            if row.get::<_, i64>(0) == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the killed child's sessions were still open after {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Opens the store again, as a program starting after the crash would.
    async fn open(&self) -> Arc<dyn EventStore> {
        match self {
            Target::Sqlite(path) => {
                let store = SqliteStore::open(path)
                    .await
                    .expect("the SQLite file opens after the kill");
                // The WAL recovered into a database SQLite itself finds sound.
                let connection = rusqlite::Connection::open(path).expect("open the file");
                let integrity: String = connection
                    .query_row("PRAGMA integrity_check", [], |row| row.get(0))
                    .expect("PRAGMA integrity_check");
                assert_eq!(integrity, "ok", "the SQLite file after the kill");
                Arc::new(store)
            }
            Target::Postgres { options, .. } => Arc::new(
                PostgresOptions::clone(options)
                    .connect()
                    .await
                    .expect("the PostgreSQL store connects after the kill"),
            ),
        }
    }
}

/// The `application_name` of the children on `schema`, so the parent can wait for their
/// sessions to end.
fn child_application(schema: &str) -> String {
    // Kept under PostgreSQL's 63 bytes: the schema ends with what makes it unique.
    let tail = &schema[schema.len().saturating_sub(40)..];
    format!("es-crash-{tail}")
}

/// Where the kill landed in a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// No append was in flight: the child had not tried one, or its last was acknowledged.
    BetweenAppends,
    /// An append was in flight and is not in the store.
    InFlightNotStored,
    /// An append was in flight and is in the store: it committed, but the child died before
    /// it could acknowledge it.
    InFlightStored,
}

/// What the trials saw, for the closing line.
#[derive(Default)]
struct Tally {
    acked: u64,
    phases: BTreeMap<Phase, u64>,
    read_full: Duration,
}

/// Runs the trials on `target`: start a child, kill it, check the store, and again.
async fn crash_trials(label: &str, target: Target, dir: &std::path::Path) {
    let trials: u64 = match std::env::var(TRIALS_ENV) {
        Ok(n) => n.parse().expect("EVENTSOURCE_CRASH_TRIALS is a number"),
        Err(_) => DEFAULT_TRIALS,
    };
    let mut rng = Rng(seed(SEED_ENV, label));
    let spec = target.spec();
    let started = Instant::now();
    let mut tally = Tally::default();
    // A follower that pages on from where the previous trial's read stopped.
    let mut follower = Position::START;
    let mut followed = 0;
    for trial in 1..=trials {
        let child_seed = rng.next().to_string();
        let trial_text = trial.to_string();
        let mut child = ChildRun::start(
            CHILD,
            &[
                (CHILD_STORE_ENV, &spec),
                (CHILD_TRIAL_ENV, &trial_text),
                (CHILD_SEED_ENV, &child_seed),
            ],
            dir.join("child.stderr"),
            Stdio::piped(),
        );
        let mut lines = stdout_lines(&mut child);
        let deadline = Instant::now() + DEADLINE;
        loop {
            let line = tokio::time::timeout_at(deadline.into(), lines.recv())
                .await
                .unwrap_or_else(|_| panic!("{label}, trial {trial}: the child did not start appending within {DEADLINE:?}"));
            match line {
                Some(line) if line.contains(READY) => break,
                Some(_) => {}
                None => panic!(
                    "{label}, trial {trial}: {}",
                    child.alive().err().unwrap_or_default()
                ),
            }
        }
        let delay = rng.between(KILL_DELAY_MS.0, KILL_DELAY_MS.1);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        child.kill();

        // Everything the child printed before it died is still in the pipe.
        let mut tried = Vec::new();
        let mut acked = Vec::new();
        loop {
            let line = tokio::time::timeout(DEADLINE, lines.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("{label}, trial {trial}: the dead child's stdout did not close")
                });
            let Some(line) = line else { break };
            if let Some(at) = line.find(TRYING) {
                tried.push(line[at + TRYING.len()..].trim().to_owned());
            } else if let Some(at) = line.find(ACKED) {
                let mut words = line[at + ACKED.len()..].split_whitespace();
                let (Some(id), Some(position)) = (words.next(), words.next()) else {
                    panic!("{label}, trial {trial}: a cut ack line {line:?}");
                };
                let position = position.parse().expect("an acknowledged position");
                acked.push((id.to_owned(), Position::new(position)));
            }
        }
        tally.acked += acked.len() as u64;
        let in_flight = (tried.len() > acked.len()).then(|| tried[tried.len() - 1].clone());

        target.settle().await;
        let store = target.open().await;
        let label_trial = format!(
            "{label}, trial {trial} (killed {delay} ms in, {} batches acknowledged)",
            acked.len()
        );
        let read = Instant::now();
        let (facts, next) = read_and_check(&*store, &label_trial).await;
        tally.read_full += read.elapsed();

        // Every acknowledged batch, at the position `append` returned.
        for (id, position) in &acked {
            let found = facts.batches.get(id).unwrap_or_else(|| {
                panic!("{label_trial}: batch {id} was acknowledged at {position} but is not in the store")
            });
            assert_eq!(
                found.last, *position,
                "{label_trial}: batch {id} was acknowledged at position {position} but its last event is at {}",
                found.last
            );
        }
        // Nothing of this trial but what the child tried; at most the one in flight unacknowledged.
        let acked_ids: HashSet<&str> = acked.iter().map(|(id, _)| id.as_str()).collect();
        let prefix = format!("t{trial}-");
        for id in facts.batches.keys().filter(|id| id.starts_with(&prefix)) {
            assert!(
                acked_ids.contains(id.as_str()) || in_flight.as_ref() == Some(id),
                "{label_trial}: batch {id} is in the store, but the child neither had it acknowledged nor was appending it when killed (in flight: {in_flight:?})"
            );
        }
        let phase = match &in_flight {
            None => Phase::BetweenAppends,
            Some(id) if facts.batches.contains_key(id) => Phase::InFlightStored,
            Some(_) => Phase::InFlightNotStored,
        };
        *tally.phases.entry(phase).or_default() += 1;

        let recorded = store
            .tracking_position(CHILD_TRACKER)
            .await
            .expect("the tracking position");
        check_tracking(&facts, "t", CHILD_TRACKER, recorded);
        check_versions(&*store, &facts, &pool(0), &label_trial).await;

        // A follower that read up to the previous trial's end reads on to exactly the new events.
        let (new, _) = follow(&*store, follower)
            .await
            .unwrap_or_else(|e| panic!("{label_trial}: the follower: {e}"));
        let new: Vec<(Uuid, Position)> = new.iter().map(|e| (e.id, e.position)).collect();
        assert!(
            new.as_slice() == &facts.events[followed.min(facts.events.len())..],
            "{label_trial}: a follower paging on from {follower} read {} events, not the {} the log holds after the {followed} it had read",
            new.len(),
            facts.events.len().saturating_sub(followed)
        );
        follower = next;
        followed = facts.events.len();
    }
    let elapsed = started.elapsed();
    println!(
        "{label}: {trials} kills in {elapsed:.1?} (reading the whole log back took {:.1?}); {} batches acknowledged, {followed} events stored; kills landing {:?}",
        tally.read_full, tally.acked, tally.phases
    );
    assert!(
        tally.acked > 0,
        "{label}: no child ever had an append acknowledged"
    );
    let in_flight = tally
        .phases
        .get(&Phase::InFlightStored)
        .copied()
        .unwrap_or(0)
        + tally
            .phases
            .get(&Phase::InFlightNotStored)
            .copied()
            .unwrap_or(0);
    assert!(
        trials < 10 || in_flight > 0,
        "{label}: no kill landed while an append was in flight"
    );
}

/// The lines the child writes to stdout, read on a thread of their own until the pipe closes.
fn stdout_lines(child: &mut ChildRun) -> mpsc::UnboundedReceiver<String> {
    let stdout = child.process().stdout.take().expect("the child's stdout");
    let (send, receive) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_file_survives_a_writer_killed_at_random_points() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("crash.db");
    // Created before the first child, so the children only ever open it.
    drop(
        SqliteStore::open(&path)
            .await
            .expect("create the SQLite file"),
    );
    crash_trials("sqlite", Target::Sqlite(path), dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_schema_survives_a_writer_killed_at_random_points() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server.store("store_crash").await;
    let schema = store.schema().to_owned();
    drop(store);
    let options = PostgresStore::options(url()).schema(schema.clone());
    let admin = support::postgres::admin()
        .await
        .expect("the server that was just reachable");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let target = Target::Postgres {
        options: Box::new(options),
        schema,
        admin,
    };
    crash_trials("postgres", target, dir.path()).await;
    server.finish().await;
}

/// The child of the kill tests: appends batches until it is killed, saying which it tries and
/// which were acknowledged. Any failed append ends it, and the parent reports its stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
#[ignore = "the child process of the *_survives_a_writer_killed_at_random_points tests"]
async fn child_appends_until_killed() {
    let spec = std::env::var(CHILD_STORE_ENV).expect("ES_STORE_CRASH_CHILD names the store");
    let trial = std::env::var(CHILD_TRIAL_ENV).expect("ES_STORE_CRASH_TRIAL");
    let seed: u64 = std::env::var(CHILD_SEED_ENV)
        .expect("ES_STORE_CRASH_SEED")
        .parse()
        .expect("a seed");
    let store: Arc<dyn EventStore> = if let Some(path) = spec.strip_prefix("sqlite:") {
        Arc::new(SqliteStore::open(path).await.expect("open the SQLite file"))
    } else if let Some(schema) = spec.strip_prefix("postgres:") {
        let mut config: tokio_postgres::Config = url().parse().expect("the PostgreSQL URL");
        config.application_name(child_application(schema));
        Arc::new(
            PostgresOptions::from_config(config)
                .schema(schema)
                .pool_size(2)
                .connect()
                .await
                .expect("connect to PostgreSQL"),
        )
    } else {
        panic!("ES_STORE_CRASH_CHILD is `sqlite:<path>` or `postgres:<schema>`, not {spec:?}");
    };
    let mut writer = Writer::new(format!("t{trial}"), CHILD_TRACKER, pool(0), Rng(seed));
    writer
        .resync(&*store)
        .await
        .expect("read the versions to carry on from");
    say(READY);
    loop {
        let planned = writer.plan();
        say(&format!("{TRYING} {}", planned.id));
        let position = store
            .append(planned.batch.clone())
            .await
            .unwrap_or_else(|e| panic!("append batch {}: {e}", planned.id));
        writer.acked(&planned, position);
        say(&format!("{ACKED} {} {}", planned.id, position.get()));
    }
}

/// Prints a line and flushes it, so the parent has it even if the next instant kills us.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("write to the parent");
    out.flush().expect("flush to the parent");
}

// ---------------------------------------------------------------------------------------------
// Test 2: a private PostgreSQL cluster crashed and restarted under load.

/// Concurrent writers in the restart test.
const WRITERS: u64 = 3;
/// Acknowledged appends each writer makes between two server events.
const ACKS_PER_PHASE: u64 = 20;
/// The longest one append may take before the test calls it a hang (the pool gives up waiting
/// for a connection after 5 s and connecting after 2 s).
const APPEND_BOUND: Duration = Duration::from_secs(20);

/// What happens to the server, in order, while the writers append.
#[derive(Debug, Clone, Copy)]
enum Outage {
    /// `pg_ctl restart -m immediate`: a crash and a restart with crash recovery.
    Restart,
    /// `pg_ctl stop -m immediate`, appends failing while it is down, then `pg_ctl start`.
    StopAndStart,
}
const OUTAGES: [Outage; 4] = [
    Outage::Restart,
    Outage::Restart,
    Outage::Restart,
    Outage::StopAndStart,
];

/// A writer's progress, for the test to wait on.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    acked: u64,
    failed: u64,
}

/// One failed append or read, as the writer saw it.
#[derive(Debug, Clone)]
struct Failure {
    batch: Option<String>,
    variant: &'static str,
    message: String,
}

/// What a writer did.
#[derive(Debug, Default)]
struct Outcomes {
    acked: Vec<(String, Position)>,
    /// Batches whose append said the outcome is unknown.
    unknown: Vec<String>,
    /// Batches whose append failed with an error that says nothing was written.
    not_written: Vec<String>,
    /// Every failure (appends and version reads), in order.
    failures: Vec<Failure>,
}

fn variant(error: &Error) -> &'static str {
    match error {
        Error::Backend { .. } => "Backend",
        Error::Busy { .. } => "Busy",
        Error::OutcomeUnknown { .. } => "OutcomeUnknown",
        Error::Conflict { .. } => "Conflict",
        Error::TrackingConflict { .. } => "TrackingConflict",
        _ => "another variant",
    }
}

/// Appends until `stop`, through every outage: after a failure it reads its versions again
/// (once the server answers) and carries on.
async fn write_until_stopped(
    store: PostgresStore,
    mut writer: Writer,
    progress: watch::Sender<Progress>,
    stop: Arc<AtomicBool>,
) -> Outcomes {
    let mut outcomes = Outcomes::default();
    let mut resync = true;
    while !stop.load(Ordering::Relaxed) {
        if resync {
            match tokio::time::timeout(APPEND_BOUND, writer.resync(&store)).await {
                Ok(Ok(())) => resync = false,
                Ok(Err(error)) => {
                    outcomes.failures.push(Failure {
                        batch: None,
                        variant: variant(&error),
                        message: error.to_string(),
                    });
                    // The server is down: try again shortly rather than spin.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                Err(_) => panic!("reading the streams' versions hung for {APPEND_BOUND:?}"),
            }
        }
        let planned = writer.plan();
        let outcome = tokio::time::timeout(APPEND_BOUND, store.append(planned.batch.clone()))
            .await
            .unwrap_or_else(|_| panic!("append of batch {} hung for {APPEND_BOUND:?}", planned.id));
        match outcome {
            Ok(position) => {
                writer.acked(&planned, position);
                outcomes.acked.push((planned.id, position));
                progress.send_modify(|p| p.acked += 1);
            }
            Err(error) => {
                writer.failed();
                resync = true;
                if error.may_have_happened() {
                    outcomes.unknown.push(planned.id.clone());
                } else {
                    outcomes.not_written.push(planned.id.clone());
                }
                outcomes.failures.push(Failure {
                    batch: Some(planned.id),
                    variant: variant(&error),
                    message: error.to_string(),
                });
                progress.send_modify(|p| p.failed += 1);
                // The server is down or restarting: try again shortly rather than spin.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    outcomes
}

/// Waits until every writer's progress passes `done`, failing after [`DEADLINE`].
async fn wait_all(
    progress: &mut [watch::Receiver<Progress>],
    what: &str,
    done: impl Fn(usize, &Progress) -> bool,
) {
    for (writer, receiver) in progress.iter_mut().enumerate() {
        let reached = tokio::time::timeout(DEADLINE, receiver.wait_for(|p| done(writer, p)))
            .await
            .map(|waited| waited.map(|_| ()));
        match reached {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("writer {writer} stopped before it got there: {what}"),
            Err(_) => panic!(
                "writer {writer} did not get there within {DEADLINE:?}: {what} (at {:?})",
                *receiver.borrow()
            ),
        }
    }
}

fn snapshot(progress: &[watch::Receiver<Progress>]) -> Vec<Progress> {
    progress.iter().map(|p| *p.borrow()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_postgres_restarted_under_load_keeps_every_acknowledged_batch() {
    let Some(mut cluster) = tokio::task::block_in_place(|| Cluster::start("store_crash")) else {
        return;
    };
    let started = Instant::now();
    let store = PostgresStore::options(cluster.url())
        .schema("crash")
        .pool_size(8)
        .wait_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connect to the private cluster");
    let rng = Rng(seed(SEED_ENV, "private postgres"));
    let stop = Arc::new(AtomicBool::new(false));
    let mut progress = Vec::new();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (send, receive) = watch::channel(Progress::default());
        progress.push(receive);
        let writer = Writer::new(
            format!("w{w}"),
            &format!("writer-{w}"),
            pool(w + 1),
            rng.fork(w),
        );
        writers.push(tokio::spawn(write_until_stopped(
            store.clone(),
            writer,
            send,
            Arc::clone(&stop),
        )));
    }

    wait_all(&mut progress, "appending before any restart", |_, p| {
        p.acked >= ACKS_PER_PHASE
    })
    .await;
    let mut events = Vec::new();
    for outage in OUTAGES {
        let before = snapshot(&progress);
        let down = Instant::now();
        match outage {
            Outage::Restart => tokio::task::block_in_place(|| cluster.restart_immediately()),
            Outage::StopAndStart => {
                tokio::task::block_in_place(|| cluster.stop_immediately());
                // While it is down, every writer's appends fail (and return: none hangs).
                wait_all(
                    &mut progress,
                    "an append failing while the server is down",
                    |w, p| p.failed > before[w].failed,
                )
                .await;
                tokio::task::block_in_place(|| cluster.start_again());
            }
        }
        let back = down.elapsed();
        let restarted = snapshot(&progress);
        // The same store, the same pool: every writer's appends succeed again.
        wait_all(
            &mut progress,
            "an append succeeding after the server came back",
            |w, p| p.acked > restarted[w].acked,
        )
        .await;
        let recovered = down.elapsed() - back;
        wait_all(
            &mut progress,
            "appending on after the server came back",
            |w, p| p.acked >= restarted[w].acked + ACKS_PER_PHASE,
        )
        .await;
        let after = snapshot(&progress);
        let failed: u64 = (0..after.len())
            .map(|w| after[w].failed - before[w].failed)
            .sum();
        events.push(format!(
            "{outage:?}: up again after {back:.1?}, every writer appending again {recovered:.1?} later, {failed} appends failed"
        ));
    }
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for writer in writers {
        let done = tokio::time::timeout(APPEND_BOUND * 2, writer)
            .await
            .expect("the writers stop")
            .expect("a writer panicked");
        outcomes.push(done);
    }

    // Every failure is typed, and of a kind that says what became of the append.
    let mut kinds: BTreeMap<&'static str, (usize, String)> = BTreeMap::new();
    for failure in outcomes.iter().flat_map(|o| &o.failures) {
        let entry = kinds
            .entry(failure.variant)
            .or_insert((0, failure.message.clone()));
        entry.0 += 1;
    }
    let unexpected: Vec<&Failure> = outcomes
        .iter()
        .flat_map(|o| &o.failures)
        .filter(|f| !matches!(f.variant, "Backend" | "Busy" | "OutcomeUnknown"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "an outage should only cause Backend, Busy or OutcomeUnknown errors: {unexpected:#?}"
    );

    let (facts, _) = read_and_check(&store, "private postgres").await;
    let mut unknown_stored = 0;
    for (w, done) in outcomes.iter().enumerate() {
        for (id, position) in &done.acked {
            let found = facts.batches.get(id).unwrap_or_else(|| {
                panic!("batch {id} was acknowledged at {position} but is not in the store")
            });
            assert_eq!(
                found.last, *position,
                "batch {id} was acknowledged at position {position} but its last event is at {}",
                found.last
            );
        }
        for id in &done.not_written {
            let failure = done
                .failures
                .iter()
                .find(|f| f.batch.as_deref() == Some(id));
            assert!(
                !facts.batches.contains_key(id),
                "batch {id} is in the store, but its append failed with an error that says nothing was written: {failure:?}"
            );
        }
        unknown_stored += done
            .unknown
            .iter()
            .filter(|id| facts.batches.contains_key(*id))
            .count();
        let tried: HashSet<String> = done
            .acked
            .iter()
            .map(|(id, _)| id.clone())
            .chain(done.unknown.iter().cloned())
            .chain(done.not_written.iter().cloned())
            .collect();
        let prefix = format!("w{w}-");
        for id in facts.batches.keys().filter(|id| id.starts_with(&prefix)) {
            assert!(
                tried.contains(id),
                "batch {id} is in the store but was never appended"
            );
        }
        let tracker = format!("writer-{w}");
        let recorded = store
            .tracking_position(&tracker)
            .await
            .expect("the tracking position");
        check_tracking(&facts, &prefix, &tracker, recorded);
        check_versions(&store, &facts, &pool(w as u64 + 1), "private postgres").await;
    }
    let streams: Vec<Uuid> = facts.streams.keys().copied().collect();
    check_versions(&store, &facts, &streams, "private postgres").await;

    let acked: usize = outcomes.iter().map(|o| o.acked.len()).sum();
    let unknown: usize = outcomes.iter().map(|o| o.unknown.len()).sum();
    let not_written: usize = outcomes.iter().map(|o| o.not_written.len()).sum();
    println!(
        "private postgres on port {}: {} in {:.1?}; {acked} batches acknowledged, {not_written} failed with nothing written, {unknown} with the outcome unknown ({unknown_stored} of them stored), {} events in the log",
        cluster.port(),
        events.join("; "),
        started.elapsed(),
        facts.events.len()
    );
    for (variant, (count, first)) in &kinds {
        println!("  {count} × {variant}, the first: {first}");
    }
}

// ---------------------------------------------------------------------------------------------
// Test 3: the connection lost after an append reached the server.

/// An append without tracking is sent in one go, `COMMIT` included (see the PostgreSQL store's
/// docs). If the connection is lost after that reached the server, the server commits, and no
/// answer comes back for any of the pipeline's statements: the append must say its outcome is
/// unknown, not that nothing was written. A proxy lets the server's answers get lost, waits
/// until the batch is visibly committed, then cuts the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_append_cut_off_after_it_reached_the_server_says_its_outcome_is_unknown() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let config: tokio_postgres::Config = url().parse().expect("the PostgreSQL URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        other => {
            println!("skipping: the proxy needs a TCP host, and the URL names {other:?}");
            return;
        }
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let proxy = Proxy::start(format!("{host}:{port}"));
    // The same server, user and database, through the proxy.
    let mut proxied = tokio_postgres::Config::new();
    proxied.host("127.0.0.1").port(proxy.port());
    if let Some(user) = config.get_user() {
        proxied.user(user);
    }
    if let Some(password) = config.get_password() {
        proxied.password(password);
    }
    if let Some(database) = config.get_dbname() {
        proxied.dbname(database);
    }
    let schema = unique_schema("cut");
    server.schemas.push(schema.clone());
    let store = PostgresOptions::from_config(proxied)
        .schema(schema.clone())
        .pool_size(1)
        .connect()
        .await
        .expect("connect through the proxy");
    let mut writer = Writer::new("cut".into(), "cut", pool(9), Rng(7));
    // One append that gets through, so the next one's statements are prepared already and the
    // next thing on the connection is the pipeline itself.
    let first = writer.plan();
    let position = store
        .append(first.batch.clone())
        .await
        .expect("an append through the proxy");
    writer.acked(&first, position);

    let mut planned = writer.plan();
    planned.batch.tracking = None; // the one-round-trip path
    let id = planned.batch.streams[0].events[0].id;
    proxy.swallow_answers();
    let append = {
        let store = store.clone();
        let batch = planned.batch.clone();
        tokio::spawn(async move { store.append(batch).await })
    };
    let events = format!("SELECT count(*) FROM \"{schema}\".events WHERE event_id = $1");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let row = server
            .admin
            .query_one(&events, &[&id])
            .await
            .expect("look for the batch");
        if row.get::<_, i64>(0) == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the append did not commit within {DEADLINE:?}"
        );
        assert!(
            !append.is_finished(),
            "the append finished without an answer"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proxy.cut();
    let outcome = tokio::time::timeout(DEADLINE, append)
        .await
        .expect("the append returns once its connection is gone")
        .expect("the append task");
    match outcome {
        Err(error) => assert!(
            error.may_have_happened(),
            "batch {} is committed, but its append said nothing was written: {error:?}",
            planned.id
        ),
        Ok(position) => panic!("the append got no answer, yet returned Ok({position})"),
    }

    // The pool replaces the dead connection: the next append goes through.
    writer.failed();
    writer
        .resync(&store)
        .await
        .expect("read the versions again");
    let next = writer.plan();
    store
        .append(next.batch.clone())
        .await
        .expect("an append after the cut");
    let (facts, _) = read_and_check(&store, "after the cut").await;
    assert!(facts.batches.contains_key(&planned.id));
    server.finish().await;
}
