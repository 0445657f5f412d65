//! Model-based checks: random command sequences run against the store and against a plain
//! in-memory model of the contract's rules, compared step by step.
//!
//! - [`model_sequences`]: each case is a random sequence of appends (one or several streams, right
//!   and wrong expected versions, a stream listed twice, tracking positions right and stale),
//!   stream reads (ranges, backwards, limits, visits), log reads (after a position, limits,
//!   category and name filters, an upper bound), `stream_version` and `tracking_position`. Every
//!   result is compared with the model's; a failing case is shrunk (proptest) to a minimal
//!   sequence, which the failure prints step by step.
//! - [`model_concurrent_appends`]: tasks append concurrently; afterwards the log must be *some
//!   serial order* of the successful appends, consistent with every success and every conflict.
//!
//! Positions are compared by their order only (stores may leave gaps): the model keeps the store
//! position of each event it holds and resolves "after the 3rd event" to that position.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::future::Future;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use uuid::Uuid;

use super::support::{Context, Outcome, ensure, ensure_eq, fail, panic_message, read_whole_log};
use super::{CheckResult, Failure};
use crate::error::Error;
use crate::persistence::position::Position;
use crate::persistence::record::{
    AppendBatch, LogQuery, NewEvent, StoredEvent, StreamAppend, StreamRange, Tracking,
};
use crate::persistence::store::EventStore;

/// How many random cases the model checks run, and how long each is.
///
/// [`run`](super::run) uses [`ModelCases::default`]; every constructor gives way to the
/// environment variable `EVENTSOURCE_MODEL_CASES` (a number of sequences) when it is set, and
/// `EVENTSOURCE_MODEL_SEED` (a number) replays the same random cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelCases {
    /// How many random sequences [`model_sequences`] runs, each on a fresh store.
    pub sequences: u32,
    /// The most commands in one sequence.
    pub max_commands: usize,
    /// How many concurrent runs [`model_concurrent_appends`] makes, each on a fresh store.
    pub concurrent_runs: u32,
}

impl ModelCases {
    /// `sequences` sequences of at most 30 commands, and one concurrent run per 8 sequences (at
    /// least 2); `EVENTSOURCE_MODEL_CASES` overrides `sequences` when set.
    pub fn new(sequences: u32) -> Self {
        let sequences = std::env::var("EVENTSOURCE_MODEL_CASES")
            .ok()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(sequences);
        Self {
            sequences,
            max_commands: 30,
            concurrent_runs: (sequences / 8).max(2),
        }
    }
}

impl Default for ModelCases {
    /// 64 sequences (or `EVENTSOURCE_MODEL_CASES`).
    fn default() -> Self {
        Self::new(64)
    }
}

const STREAMS: usize = 4;
const CATEGORIES: [&str; 3] = ["Account", "Order", ""];
const NAMES: [&str; 3] = ["Opened", "Deposited", "Closed"];
const TRACKERS: [&str; 2] = ["ledger", "mailer"];

/// The first stream's id; stream `i` is `FIRST_STREAM + i`.
const FIRST_STREAM: u128 = 0x5eed_0000_0000_0000_0000_0000_0000_0000;

fn stream_id(stream: usize) -> Uuid {
    Uuid::from_u128(FIRST_STREAM + stream as u128)
}

fn category(stream: usize) -> &'static str {
    CATEGORIES[stream % CATEGORIES.len()]
}

/// The expected version an append states, relative to the stream's real version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The stream's version: the append should succeed.
    Right,
    /// This much above the stream's version.
    Ahead(u64),
    /// This much below the stream's version (`Right` if the stream is younger).
    Behind(u64),
}

/// A tracking record an append carries, relative to the recorded position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Track {
    /// This much after the recorded position: accepted.
    Next(usize, u64),
    /// This much before the recorded position (0: the same): a `TrackingConflict`.
    Stale(usize, u64),
}

/// One stream of an append: which stream, how its expected version relates to the real one, and
/// its events (a name and a payload byte each).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Write {
    /// The stream (an index into a small pool, so streams are hit repeatedly).
    stream: usize,
    /// The expected version.
    expect: Expect,
    /// The events: name index and payload byte.
    events: Vec<(usize, u8)>,
}

/// A command of a random sequence.
#[derive(Debug, Clone)]
enum Command {
    /// An append (streams may repeat: a `DuplicateStreamInBatch`).
    Append {
        /// The streams written.
        writes: Vec<Write>,
        /// The tracking record.
        tracking: Option<Track>,
    },
    /// `read_stream` (or `visit_stream`).
    ReadStream {
        /// The stream.
        stream: usize,
        /// The range.
        range: StreamRange,
        /// Visit instead of reading.
        visit: bool,
    },
    /// `read_log`.
    ReadLog {
        /// After which event of the log (resolved against the log's length at the time).
        after: Index,
        /// Up to which event, if bounded.
        up_to: Option<Index>,
        /// The page size.
        limit: usize,
        /// Category filter (indexes).
        categories: Vec<usize>,
        /// Name filter (indexes).
        names: Vec<usize>,
    },
    /// `stream_version`.
    StreamVersion(usize),
    /// `tracking_position`.
    TrackingPosition(usize),
}

fn write_strategy() -> impl Strategy<Value = Write> {
    let expect = prop_oneof![
        6 => Just(Expect::Right),
        1 => (1..3u64).prop_map(Expect::Ahead),
        1 => (1..3u64).prop_map(Expect::Behind),
    ];
    let events = proptest::collection::vec((0..NAMES.len(), any::<u8>()), 0..4);
    (0..STREAMS, expect, events).prop_map(|(stream, expect, events)| Write {
        stream,
        expect,
        events,
    })
}

fn command_strategy() -> impl Strategy<Value = Command> {
    let tracking = proptest::option::weighted(
        0.25,
        prop_oneof![
            3 => (0..TRACKERS.len(), 1..4u64).prop_map(|(t, d)| Track::Next(t, d)),
            1 => (0..TRACKERS.len(), 0..2u64).prop_map(|(t, d)| Track::Stale(t, d)),
        ],
    );
    let append = prop_oneof![
        4 => write_strategy().prop_map(|w| vec![w]),
        1 => proptest::collection::vec(write_strategy(), 0..4),
    ];
    let range = (
        0..5u64,
        proptest::option::of(0..8u64),
        any::<bool>(),
        proptest::option::of(0..4usize),
    )
        .prop_map(|(from, to, backwards, limit)| StreamRange {
            from,
            to,
            backwards,
            limit,
        });
    prop_oneof![
        5 => (append, tracking).prop_map(|(writes, tracking)| Command::Append { writes, tracking }),
        2 => (0..STREAMS, range, proptest::bool::weighted(0.25))
            .prop_map(|(stream, range, visit)| Command::ReadStream { stream, range, visit }),
        3 => (
            any::<Index>(),
            proptest::option::weighted(0.3, any::<Index>()),
            prop_oneof![1..6usize, Just(1000)],
            proptest::collection::vec(0..CATEGORIES.len(), 0..3),
            proptest::collection::vec(0..NAMES.len(), 0..3),
        )
            .prop_map(|(after, up_to, limit, categories, names)| Command::ReadLog {
                after,
                up_to,
                limit,
                categories,
                names,
            }),
        1 => (0..STREAMS).prop_map(Command::StreamVersion),
        1 => (0..TRACKERS.len()).prop_map(Command::TrackingPosition),
    ]
}

/// An event as the model holds it.
#[derive(Debug, Clone)]
struct ModelEvent {
    id: Uuid,
    stream: usize,
    version: u64,
    name: &'static str,
    payload: Vec<u8>,
}

/// What a read is compared on: everything a person needs to tell two events apart.
#[derive(Clone, PartialEq, Eq)]
struct View {
    stream: Uuid,
    version: u64,
    name: String,
    payload: Vec<u8>,
    category: String,
    id: Uuid,
}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // "stream 3 v2 Opened [7] cat=\"Account\"": streams by their index in the sequence.
        match self.stream.as_u128().checked_sub(FIRST_STREAM) {
            Some(i) if i < STREAMS as u128 => write!(f, "stream {i}")?,
            _ => write!(f, "stream {}", self.stream)?,
        }
        write!(
            f,
            " v{} {} {:?} cat={:?}",
            self.version, self.name, self.payload, self.category
        )
    }
}

impl View {
    fn of_store(e: &StoredEvent) -> Self {
        Self {
            stream: e.stream_id,
            version: e.version,
            name: e.name.clone(),
            payload: e.payload.clone(),
            category: e.category.clone(),
            id: e.id,
        }
    }
    fn of_model(e: &ModelEvent) -> Self {
        Self {
            stream: stream_id(e.stream),
            version: e.version,
            name: e.name.to_owned(),
            payload: e.payload.clone(),
            category: category(e.stream).to_owned(),
            id: e.id,
        }
    }
}

/// The contract's rules, in memory: streams as lists of log indexes, the log in order, and
/// tracking positions. `positions[i]` is the store's position of `log[i]`.
#[derive(Debug, Default)]
struct Model {
    log: Vec<ModelEvent>,
    streams: [Vec<usize>; STREAMS],
    tracking: BTreeMap<usize, u64>,
    positions: Vec<Position>,
}

impl Model {
    fn version(&self, stream: usize) -> u64 {
        self.streams[stream].len() as u64
    }
    fn position(&self, count: usize) -> Position {
        if count == 0 {
            Position::START
        } else {
            self.positions[count - 1]
        }
    }
    fn tracked(&self, tracker: usize) -> u64 {
        self.tracking.get(&tracker).copied().unwrap_or(0)
    }
}

/// Runs one command against the store and the model, appending what it did to `trace`.
async fn step<S: EventStore + ?Sized>(
    store: &S,
    model: &mut Model,
    command: &Command,
    trace: &mut String,
) -> Outcome {
    match command {
        Command::Append { writes, tracking } => append(store, model, writes, tracking, trace).await,
        Command::ReadStream {
            stream,
            range,
            visit,
        } => {
            let _ = writeln!(
                trace,
                "{} stream {stream} {range:?}",
                if *visit { "visit" } else { "read" }
            );
            let id = stream_id(*stream);
            let actual = super::support::read(store, id, *range).await?;
            if *visit {
                // A replay is lent what the read returns; the read is checked below.
                let visited = super::support::visit(store, id, *range, usize::MAX).await?;
                super::support::compare_with_read(&visited, &actual, "the stream visit")?;
            }
            let mut expected: Vec<&ModelEvent> = model.streams[*stream]
                .iter()
                .map(|&i| &model.log[i])
                .filter(|e| range.contains(e.version))
                .collect();
            if range.backwards {
                expected.reverse();
            }
            expected.truncate(range.limit.unwrap_or(usize::MAX));
            compare(&actual, &expected, "the stream read")?;
            for e in &actual {
                let index = model.streams[*stream][(e.version - 1) as usize];
                ensure_eq!(
                    e.position,
                    model.positions[index],
                    "the position of stream {stream} version {} read from the stream (the log said otherwise)",
                    e.version
                );
            }
            Ok(())
        }
        Command::ReadLog {
            after,
            up_to,
            limit,
            categories,
            names,
        } => {
            let n = model.log.len();
            let after = after.index(n + 1);
            let up_to = up_to.map(|u| u.index(n + 1));
            let categories: Vec<&str> = categories.iter().map(|&c| CATEGORIES[c]).collect();
            let names: Vec<&str> = names.iter().map(|&c| NAMES[c]).collect();
            let mut query = LogQuery::after(model.position(after), *limit)
                .categories(categories.iter().copied())
                .names(names.iter().copied());
            if let Some(u) = up_to {
                query = query.up_to(model.position(u));
            }
            let _ = writeln!(
                trace,
                "read_log after event #{after} (position {}), up_to {}, limit {limit}, categories {categories:?}, names {names:?}",
                model.position(after),
                match up_to {
                    Some(u) => format!("event #{u} (position {})", model.position(u)),
                    None => "none".into(),
                }
            );
            let page = store.read_log(query.clone()).await.context("read_log")?;
            let end = up_to.unwrap_or(n).min(n);
            let passed: Vec<usize> = (after..end).collect();
            let matching: Vec<usize> = passed
                .iter()
                .copied()
                .filter(|&i| {
                    let e = &model.log[i];
                    (categories.is_empty() || categories.contains(&category(e.stream)))
                        && (names.is_empty() || names.contains(&e.name))
                })
                .collect();
            let returned = &matching[..matching.len().min(*limit)];
            let expected: Vec<&ModelEvent> = returned.iter().map(|&i| &model.log[i]).collect();
            compare(&page.events, &expected, "the log page")?;
            for (e, &i) in page.events.iter().zip(returned) {
                ensure_eq!(
                    e.position,
                    model.positions[i],
                    "the position of log event #{} in the page",
                    i + 1
                );
            }
            let next = page.next;
            let after_position = model.position(after);
            ensure!(
                next >= after_position,
                "the page's next ({next}) is before the query's after ({after_position})"
            );
            if let Some(&last) = returned.last() {
                ensure!(
                    next >= model.positions[last],
                    "the page's next ({next}) is before its last event (position {})",
                    model.positions[last]
                );
            }
            if let Some(&skipped) = matching.get(returned.len()) {
                ensure!(
                    next < model.positions[skipped],
                    "the page's next ({next}) skips log event #{} (position {}), which matches and was not returned",
                    skipped + 1,
                    model.positions[skipped]
                );
            } else if let Some(&last_passed) = passed.last().filter(|_| returned.len() < *limit) {
                ensure!(
                    next >= model.positions[last_passed],
                    "the page is not full but its next ({next}) is before log event #{} (position {}), the last one it could pass",
                    last_passed + 1,
                    model.positions[last_passed]
                );
            }
            if let Some(u) = up_to {
                let bound = model.position(u).max(after_position);
                ensure!(
                    next <= bound,
                    "the page's next ({next}) is past the bound ({bound})"
                );
            }
            Ok(())
        }
        Command::StreamVersion(stream) => {
            let _ = writeln!(trace, "stream_version {stream}");
            let version = store
                .stream_version(stream_id(*stream))
                .await
                .context("stream_version")?;
            ensure_eq!(version, model.version(*stream), "stream_version");
            Ok(())
        }
        Command::TrackingPosition(tracker) => {
            let _ = writeln!(trace, "tracking_position {}", TRACKERS[*tracker]);
            let position = store
                .tracking_position(TRACKERS[*tracker])
                .await
                .context("tracking_position")?;
            ensure_eq!(position.get(), model.tracked(*tracker), "tracking_position");
            Ok(())
        }
    }
}

/// Compares events read from the store with the model's.
fn compare(actual: &[StoredEvent], expected: &[&ModelEvent], what: &str) -> Outcome {
    let actual: Vec<View> = actual.iter().map(View::of_store).collect();
    let expected: Vec<View> = expected.iter().map(|e| View::of_model(e)).collect();
    ensure!(
        actual == expected,
        "{what} differs from the model:\n      store: {actual:?}\n      model: {expected:?}"
    );
    Ok(())
}

async fn append<S: EventStore + ?Sized>(
    store: &S,
    model: &mut Model,
    writes: &[Write],
    tracking: &Option<Track>,
    trace: &mut String,
) -> Outcome {
    // Resolve the relative expected versions and tracking positions against the model.
    let mut batch = AppendBatch::default();
    let mut new_events = Vec::new();
    for write in writes {
        let version = model.version(write.stream);
        let expected = match write.expect {
            Expect::Right => version,
            Expect::Ahead(d) => version + d,
            Expect::Behind(d) => version.saturating_sub(d),
        };
        let events: Vec<NewEvent> = write
            .events
            .iter()
            .map(|&(name, byte)| NewEvent::new(NAMES[name], 1, vec![byte]))
            .collect();
        for (offset, e) in events.iter().enumerate() {
            new_events.push(ModelEvent {
                id: e.id,
                stream: write.stream,
                version: expected + offset as u64 + 1,
                name: NAMES[write.events[offset].0],
                payload: e.payload.clone(),
            });
        }
        batch.streams.push(StreamAppend {
            stream_id: stream_id(write.stream),
            category: category(write.stream).to_owned(),
            expected_version: expected,
            events,
        });
    }
    if let Some(track) = tracking {
        let (tracker, position) = match *track {
            Track::Next(t, d) => (t, model.tracked(t) + d),
            Track::Stale(t, d) => (t, model.tracked(t).saturating_sub(d)),
        };
        batch.tracking = Some(Tracking {
            tracker: TRACKERS[tracker].to_owned(),
            position: Position::new(position),
        });
    }
    let _ = writeln!(
        trace,
        "append [{}]{}",
        batch
            .streams
            .iter()
            .zip(writes)
            .map(|(s, w)| format!(
                "stream {} expected {} +{:?}",
                w.stream,
                s.expected_version,
                s.events.iter().map(|e| e.name.as_str()).collect::<Vec<_>>()
            ))
            .collect::<Vec<_>>()
            .join(", "),
        match &batch.tracking {
            Some(t) => format!(" tracking {} at {}", t.tracker, t.position),
            None => String::new(),
        }
    );

    // Every error the contract allows for this batch (it leaves the order of checks open).
    let mut seen = HashSet::new();
    let duplicates: Vec<usize> = writes
        .iter()
        .filter(|w| !seen.insert(w.stream))
        .map(|w| w.stream)
        .collect();
    let conflicts: Vec<(usize, u64, u64)> = writes
        .iter()
        .zip(&batch.streams)
        .filter(|(w, s)| s.expected_version != model.version(w.stream))
        .map(|(w, s)| (w.stream, s.expected_version, model.version(w.stream)))
        .collect();
    let tracking_conflict = batch.tracking.as_ref().and_then(|t| {
        let tracker = TRACKERS.iter().position(|&n| n == t.tracker)?;
        (t.position.get() <= model.tracked(tracker)).then_some((tracker, model.tracked(tracker)))
    });
    let should_fail =
        !duplicates.is_empty() || !conflicts.is_empty() || tracking_conflict.is_some();

    let last_before = model.position(model.log.len());
    let outcome = store.append(batch.clone()).await;
    match outcome {
        Err(Error::DuplicateStreamInBatch { stream }) => {
            ensure!(
                duplicates.iter().any(|&d| stream_id(d) == stream),
                "the store refused the append with DuplicateStreamInBatch {{ stream: {stream} }}, but the model lists duplicates {duplicates:?}"
            );
        }
        Err(Error::Conflict {
            stream,
            expected,
            actual,
        }) => {
            ensure!(
                conflicts
                    .iter()
                    .any(|&(s, e, a)| stream_id(s) == stream && e == expected && a == actual),
                "the store refused the append with Conflict {{ stream: {stream}, expected: {expected}, actual: {actual} }}; the model's conflicts (stream, expected, actual) are {conflicts:?}"
            );
        }
        Err(Error::TrackingConflict {
            tracker,
            position,
            recorded,
        }) => {
            ensure!(
                tracking_conflict.is_some_and(|(t, r)| TRACKERS[t] == tracker
                    && Position::new(r) == recorded
                    && batch.tracking.as_ref().map(|t| t.position) == Some(position)),
                "the store refused the append with TrackingConflict {{ tracker: {tracker}, position: {position}, recorded: {recorded} }}; the model's is {tracking_conflict:?} (tracker, recorded)"
            );
        }
        Err(other) => fail!("the append failed: {other} ({other:?})"),
        Ok(position) => {
            ensure!(
                !should_fail,
                "the store accepted the append (position {position}), but the model refuses it: duplicate streams {duplicates:?}, conflicts (stream, expected, actual) {conflicts:?}, tracking conflict (tracker, recorded) {tracking_conflict:?}"
            );
            let count = new_events.len();
            let first = model.log.len();
            for e in new_events {
                model.streams[e.stream].push(model.log.len());
                model.log.push(e);
            }
            if let (Some(track), Some(t)) = (tracking, &batch.tracking) {
                let tracker = match *track {
                    Track::Next(t, _) | Track::Stale(t, _) => t,
                };
                model.tracking.insert(tracker, t.position.get());
            }
            // Learn the new events' positions from the log (and check they are exactly the
            // batch's events, in batch order, right after what was there).
            if count == 0 {
                ensure_eq!(
                    position,
                    last_before,
                    "the position an append without events returns (the last position)"
                );
            } else {
                let page = store
                    .read_log(LogQuery::after(last_before, count + 1))
                    .await
                    .context("reading the log after an append")?;
                let expected: Vec<&ModelEvent> = model.log[first..].iter().collect();
                compare(
                    &page.events,
                    &expected,
                    "the log after the append (it must hold exactly the batch's events)",
                )?;
                let mut previous = last_before;
                for e in &page.events {
                    ensure!(
                        e.position > previous,
                        "positions not increasing: {} after {previous}",
                        e.position
                    );
                    previous = e.position;
                    model.positions.push(e.position);
                }
                ensure_eq!(
                    position,
                    previous,
                    "the position the append returned (its last event's)"
                );
            }
        }
    }
    Ok(())
}

/// Runs one sequence on a fresh store; the error is the trace up to the failing step.
async fn run_sequence(store: Arc<dyn EventStore>, commands: Vec<Command>) -> Result<(), String> {
    let mut model = Model::default();
    let mut trace = String::new();
    for (i, command) in commands.iter().enumerate() {
        if let Err(message) = step(&*store, &mut model, command, &mut trace).await {
            let steps: String = trace
                .lines()
                .enumerate()
                .map(|(n, line)| format!("    {:>2}. {line}\n", n + 1))
                .collect();
            return Err(format!(
                "step {} of the sequence disagrees with the model: {message}\n  the sequence (expected versions and positions as sent):\n{steps}",
                i + 1
            ));
        }
    }
    Ok(())
}

/// Runs one case on a fresh store from `new_store`, as its own task (a panic is a failure).
async fn run_case<S, F, Fut>(new_store: &mut F, commands: &[Command]) -> Result<(), String>
where
    S: EventStore + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    let store: Arc<dyn EventStore> = Arc::new(new_store().await);
    let task = tokio::spawn(run_sequence(store, commands.to_vec()));
    match tokio::time::timeout(super::CHECK_TIMEOUT, task).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(join)) => Err(format!("the case panicked: {}", panic_message(join))),
        Err(_) => Err(format!(
            "the case did not finish within {:?}",
            super::CHECK_TIMEOUT
        )),
    }
}

/// A runner seeded from `EVENTSOURCE_MODEL_SEED`, or from the clock; and the seed, for the
/// failure message.
fn runner(cases: &ModelCases) -> (TestRunner, u64) {
    let seed: u64 = std::env::var("EVENTSOURCE_MODEL_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases: cases.sequences,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    (TestRunner::new_with_rng(config, rng), seed)
}

/// How many shrinking steps a failing case gets (each runs the sequence on a fresh store).
const MAX_SHRINK_STEPS: u32 = 256;

/// Runs `cases.sequences` random command sequences, each on a fresh store from `new_store`,
/// against the model; a failing sequence is shrunk and the failure prints the minimal one with
/// the seed that finds it again (`EVENTSOURCE_MODEL_SEED`).
pub async fn model_sequences<S, F, Fut>(mut new_store: F, cases: ModelCases) -> CheckResult
where
    S: EventStore + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    const NAME: &str = "model_sequences";
    let (mut runner, seed) = runner(&cases);
    let strategy = proptest::collection::vec(command_strategy(), 1..=cases.max_commands.max(1));
    for case in 0..cases.sequences {
        let mut tree = strategy
            .new_tree(&mut runner)
            .map_err(|e| Failure::new(NAME, format!("generating a sequence: {e}")))?;
        let Err(first) = run_case(&mut new_store, &tree.current()).await else {
            continue;
        };
        let original = tree.current().len();
        // Shrink: simplify while the case still fails, step back when it passes.
        let mut minimal = (tree.current(), first);
        let mut steps = 0;
        let mut more = tree.simplify();
        while more && steps < MAX_SHRINK_STEPS {
            steps += 1;
            let candidate = tree.current();
            match run_case(&mut new_store, &candidate).await {
                Err(message) => {
                    minimal = (candidate, message);
                    more = tree.simplify();
                }
                Ok(()) => more = tree.complicate(),
            }
        }
        return Err(Failure::new(
            NAME,
            format!(
                "case {} of {} (EVENTSOURCE_MODEL_SEED={}) failed; shrunk from {original} to {} commands in {steps} steps:\n  {}\n  commands: {:?}",
                case + 1,
                cases.sequences,
                seed,
                minimal.0.len(),
                minimal.1,
                minimal.0
            ),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Concurrent appends.

/// Tasks racing in each concurrent run.
const TASKS: usize = 4;
/// Streams they race on (fewer than tasks, so conflicts happen).
const CONCURRENT_STREAMS: usize = 3;

/// One task's append: per stream (distinct, in batch order) how many events.
type TaskAppend = Vec<(usize, usize)>;

fn task_strategy() -> impl Strategy<Value = Vec<TaskAppend>> {
    let append = proptest::sample::subsequence((0..CONCURRENT_STREAMS).collect::<Vec<_>>(), 1..=2)
        .prop_flat_map(|streams| {
            let n = streams.len();
            (Just(streams), proptest::collection::vec(1..3usize, n))
        })
        .prop_map(|(streams, counts)| streams.into_iter().zip(counts).collect::<TaskAppend>());
    proptest::collection::vec(append, 4..=10)
}

/// What one append did.
#[derive(Debug)]
struct Attempt {
    task: usize,
    seq: usize,
    /// (stream, expected, event ids).
    writes: Vec<(usize, u64, Vec<Uuid>)>,
    outcome: Result<Position, Error>,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {} append {}: [", self.task, self.seq)?;
        for (i, (stream, expected, ids)) in self.writes.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "stream {stream} expected {expected} +{}", ids.len())?;
        }
        match &self.outcome {
            Ok(position) => write!(f, "] -> ok at {position}"),
            Err(e) => write!(f, "] -> {e}"),
        }
    }
}

async fn race_task(
    store: Arc<dyn EventStore>,
    task: usize,
    appends: Vec<TaskAppend>,
) -> Vec<Attempt> {
    // What this task believes each stream's version is: it learns from its own successes and
    // from the actual version a conflict reports.
    let mut seen = [0u64; CONCURRENT_STREAMS];
    let mut attempts = Vec::new();
    for (seq, append) in appends.into_iter().enumerate() {
        let mut batch = AppendBatch::default();
        let mut writes = Vec::new();
        for (stream, count) in append {
            let events: Vec<NewEvent> = (0..count)
                .map(|i| NewEvent::new("Raced", 1, format!("{task}:{seq}:{stream}:{i}")))
                .collect();
            writes.push((
                stream,
                seen[stream],
                events.iter().map(|e| e.id).collect::<Vec<_>>(),
            ));
            batch.streams.push(StreamAppend {
                stream_id: stream_id(stream),
                category: category(stream).to_owned(),
                expected_version: seen[stream],
                events,
            });
        }
        let outcome = store.append(batch).await;
        match &outcome {
            Ok(_) => {
                for (stream, expected, ids) in &writes {
                    seen[*stream] = expected + ids.len() as u64;
                }
            }
            Err(Error::Conflict { stream, actual, .. }) => {
                if let Some(s) = (0..CONCURRENT_STREAMS).find(|&s| stream_id(s) == *stream) {
                    seen[s] = *actual;
                }
            }
            Err(_) => {}
        }
        attempts.push(Attempt {
            task,
            seq,
            writes,
            outcome,
        });
    }
    attempts
}

/// Checks that the store's final state is a serial order of the successful appends, consistent
/// with every outcome.
async fn check_serial(store: &dyn EventStore, attempts: &[Attempt]) -> Outcome {
    let log = read_whole_log(store, 100).await?;
    // Where each appended event came from: (attempt, write, offset).
    let mut origin: HashMap<Uuid, (usize, usize, usize)> = HashMap::new();
    for (a, attempt) in attempts.iter().enumerate() {
        for (w, (_, _, ids)) in attempt.writes.iter().enumerate() {
            for (o, id) in ids.iter().enumerate() {
                origin.insert(*id, (a, w, o));
            }
        }
    }
    // Cut the log into blocks of one append each, in log order.
    let mut order: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < log.len() {
        let Some(&(a, _, _)) = origin.get(&log[i].id) else {
            fail!(
                "log event at position {} (id {}) was appended by no task",
                log[i].position,
                log[i].id
            );
        };
        let attempt = &attempts[a];
        match &attempt.outcome {
            Ok(_) => {}
            Err(e) if e.may_have_happened() => {}
            Err(e) => fail!(
                "the log holds events of an append that failed ({attempt}); a refused append must write nothing: {e}"
            ),
        }
        ensure!(
            !order.contains(&a),
            "the events of one append are not together in the log ({attempt}): the log is not a serial order of appends"
        );
        for (w, (stream, _, ids)) in attempt.writes.iter().enumerate() {
            for (o, id) in ids.iter().enumerate() {
                let Some(event) = log.get(i) else {
                    fail!("the log ends inside an append ({attempt})");
                };
                ensure!(
                    event.id == *id && event.stream_id == stream_id(*stream),
                    "the log does not hold the events of {attempt} together in batch order: expected write {w} event {o} (id {id}) at position {}, found id {} of stream {}",
                    event.position,
                    event.id,
                    event.stream_id
                );
                i += 1;
            }
        }
        if let Ok(position) = &attempt.outcome {
            ensure_eq!(
                *position,
                log[i - 1].position,
                "the position {attempt} returned (its last event's)"
            );
        }
        order.push(a);
    }
    for (a, attempt) in attempts.iter().enumerate() {
        if attempt.outcome.is_ok() && !order.contains(&a) {
            fail!("an append succeeded but its events are not in the log: {attempt}");
        }
    }
    // Replay the appends in log order into a model of stream versions.
    let mut versions = [0u64; CONCURRENT_STREAMS];
    let mut history: [Vec<u64>; CONCURRENT_STREAMS] = Default::default();
    for h in &mut history {
        h.push(0);
    }
    let mut last_seq = [None::<usize>; TASKS];
    for &a in &order {
        let attempt = &attempts[a];
        for (stream, expected, ids) in &attempt.writes {
            ensure!(
                *expected == versions[*stream],
                "{attempt} succeeded, but in the log's order stream {stream} was at version {} when it committed, not {expected}",
                versions[*stream]
            );
            versions[*stream] += ids.len() as u64;
            history[*stream].push(versions[*stream]);
        }
        if let Some(previous) = last_seq[attempt.task] {
            ensure!(
                previous < attempt.seq,
                "task {}'s append {} comes after its later append {} in the log",
                attempt.task,
                previous,
                attempt.seq
            );
        }
        last_seq[attempt.task] = Some(attempt.seq);
    }
    for attempt in attempts {
        match &attempt.outcome {
            Ok(_) => {}
            Err(Error::Conflict {
                stream,
                expected,
                actual,
            }) => {
                let Some((s, written_expected, _)) = attempt
                    .writes
                    .iter()
                    .find(|(s, _, _)| stream_id(*s) == *stream)
                else {
                    fail!("{attempt}: the conflict names a stream the append did not write");
                };
                ensure!(
                    expected == written_expected && actual != expected,
                    "{attempt}: the conflict's expected/actual ({expected}/{actual}) do not match the append's expected version {written_expected}"
                );
                ensure!(
                    history[*s].contains(actual),
                    "{attempt}: the conflict says stream {s} was at version {actual}, a version it never had in the log's order (it went through {:?})",
                    history[*s]
                );
            }
            Err(e) if e.is_retryable() => {}
            Err(e) => fail!("{attempt}: an append failed unexpectedly: {e}"),
        }
    }
    // Each stream reads back as its events in the log, with versions 1..=n.
    for (s, version) in versions.iter().enumerate() {
        let from_log: Vec<View> = log
            .iter()
            .filter(|e| e.stream_id == stream_id(s))
            .map(View::of_store)
            .collect();
        for (n, e) in from_log.iter().enumerate() {
            ensure_eq!(
                e.version,
                n as u64 + 1,
                "stream {s}'s versions in log order (no gaps, no repeats)"
            );
        }
        let read: Vec<View> = super::support::read(store, stream_id(s), StreamRange::all())
            .await?
            .iter()
            .map(View::of_store)
            .collect();
        ensure!(
            read == from_log,
            "stream {s} reads differently from its events in the log:\n      read: {read:?}\n      log:  {from_log:?}"
        );
        ensure_eq!(
            store
                .stream_version(stream_id(s))
                .await
                .context("stream_version")?,
            *version,
            "stream {s}'s version"
        );
    }
    Ok(())
}

/// Runs `cases.concurrent_runs` races, each on a fresh store from `new_store`: 4 tasks append
/// random batches (1 or 2 of 3 shared streams, expected versions from what each task last saw)
/// concurrently; then the log must be the successful appends, each whole and in batch order, in
/// some serial order in which every success's expected versions were right, every conflict's
/// reported version was one the stream had, each task's appends keep their order, streams have
/// no version gaps and read back as their events in the log.
pub async fn model_concurrent_appends<S, F, Fut>(mut new_store: F, cases: ModelCases) -> CheckResult
where
    S: EventStore + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    const NAME: &str = "model_concurrent_appends";
    let (mut runner, seed) = runner(&cases);
    let strategy = proptest::collection::vec(task_strategy(), TASKS);
    for run in 0..cases.concurrent_runs {
        let plans = strategy
            .new_tree(&mut runner)
            .map_err(|e| Failure::new(NAME, format!("generating appends: {e}")))?
            .current();
        let store: Arc<dyn EventStore> = Arc::new(new_store().await);
        let tasks: Vec<_> = plans
            .into_iter()
            .enumerate()
            .map(|(task, appends)| tokio::spawn(race_task(store.clone(), task, appends)))
            .collect();
        let mut attempts = Vec::new();
        for task in tasks {
            match tokio::time::timeout(super::CHECK_TIMEOUT, task).await {
                Ok(Ok(done)) => attempts.extend(done),
                Ok(Err(join)) => {
                    return Err(Failure::new(
                        NAME,
                        format!("a writer panicked: {}", panic_message(join)),
                    ));
                }
                Err(_) => {
                    return Err(Failure::new(
                        NAME,
                        "a writer did not finish: is the store deadlocked?",
                    ));
                }
            }
        }
        if let Err(message) = check_serial(&*store, &attempts).await {
            let history: String = attempts.iter().map(|a| format!("    {a}\n")).collect();
            return Err(Failure::new(
                NAME,
                format!(
                    "run {} of {} (EVENTSOURCE_MODEL_SEED={}): {message}\n  the appends:\n{history}",
                    run + 1,
                    cases.concurrent_runs,
                    seed
                ),
            ));
        }
    }
    Ok(())
}
