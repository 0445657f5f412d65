//! The store conformance suite: every rule of the [`EventStore`] contract, checked against a real
//! store.
//!
//! # Running it
//!
//! Give [`run`] a factory that makes a fresh, empty store; every check gets its own store, so a
//! check never sees another check's events (a PostgreSQL store can create a fresh schema per
//! call). [`run`] runs every check, then panics with a report that names each failed check and
//! what differed. Run it inside a **multi-thread** Tokio runtime with timers enabled
//! (`#[tokio::test(flavor = "multi_thread")]`): the concurrency checks spawn writers with
//! [`tokio::spawn`] and expect them to really race.
//!
//! ```
//! use eventsource_core::MemoryStore;
//! use eventsource_core::testing::conformance;
//!
//! # fn main() {
//! # let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! // In a test: #[tokio::test(flavor = "multi_thread")] async fn memory_store_conforms() { … }
//! conformance::run(|| async { MemoryStore::new() }).await;
//! # });
//! # }
//! ```
//!
//! To see the outcome without panicking use [`try_run`], which returns a [`Report`]. To run a
//! subset, use [`try_run_only`] with check names, or call one check directly: each check is a
//! public function of this module taking an `Arc` of the store:
//!
//! ```
//! use std::sync::Arc;
//! use eventsource_core::MemoryStore;
//! use eventsource_core::testing::conformance;
//!
//! # let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! let store = Arc::new(MemoryStore::new());
//! if let Err(failure) = conformance::duplicate_version_is_a_conflict(store).await {
//!     panic!("{failure}"); // "check `duplicate_version_is_a_conflict` failed: …"
//! }
//! # });
//! ```
//!
//! # What is checked
//!
//! See [`checks`] for the list with one line each. In short: appends read back byte for byte
//! (name, schema version, payload, metadata); empty appends; unknown streams; version conflicts
//! naming the stream and the expected and actual versions; batches holding a conflict or the same
//! stream twice writing nothing; atomic multi-stream appends; version ranges; the global log
//! (increasing positions, paging, last position, reading past the end, filtering by name and
//! by category, and where the next read starts); event ids and categories; concurrent writers
//! on distinct streams and on one stream; a follower paging the log while writers commit; a
//! subscription following commits; snapshots; tracking records written atomically with the
//! events; 1 MiB payloads; unicode names and payloads. Then the model checks (below) compare
//! random command sequences and concurrent appends with a model of the contract.
//!
//! Positions must be strictly increasing in log order but may have gaps, so the suite never
//! assumes `position == count`. Recorded times may be stored at any precision down to a
//! millisecond.
//!
//! # The model checks
//!
//! After the checks above, [`run`] runs two model checks ([`model_checks`]), each over many
//! random cases, each case on a fresh store from the factory:
//!
//! - [`model_sequences`] runs random sequences of commands against the store and against a plain
//!   in-memory model of the contract (streams as lists of events, the log as a list, tracking as
//!   a map): appends to one or several streams with right and wrong expected versions, a stream
//!   listed twice, tracking positions right and stale; stream reads and visits (ranges,
//!   backwards, limits); log reads (after a position, limits, category and name filters, an
//!   upper bound, and where the next read starts); `stream_version`; `tracking_position`. Every
//!   result must agree: the error kind and its stream, expected and actual version; each event's
//!   stream, version, name, payload, category and id. Positions are compared by order only. A
//!   failing case is shrunk, and the failure prints the minimal sequence step by step with the
//!   seed that finds it again.
//! - [`model_concurrent_appends`] races 4 tasks appending random batches to 3 shared streams,
//!   then checks that the log is a serial order of the successful appends consistent with every
//!   outcome (see its docs).
//!
//! How many cases: [`ModelCases`]; [`run`] uses [`ModelCases::default`] (64 sequences of at most
//! 30 commands, 8 races), and [`run_with`] takes your own, fewer for a store that is slow to
//! create. The environment variables `EVENTSOURCE_MODEL_CASES` (a number of sequences) and
//! `EVENTSOURCE_MODEL_SEED` (replay a failure's cases) override both:
//!
//! ```
//! use eventsource_core::MemoryStore;
//! use eventsource_core::testing::conformance::{self, ModelCases};
//!
//! # let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! // A store that is cheap to create can afford more cases than the default.
//! conformance::run_with(|| async { MemoryStore::new() }, ModelCases::new(16)).await;
//! // Or one model check alone, with its own cases:
//! conformance::model_sequences(|| async { MemoryStore::new() }, ModelCases::new(8))
//!     .await
//!     .unwrap();
//! # });
//! ```
//!
//! The model leaves out snapshots, `last_position`, metadata and schema versions, wake-ups and
//! subscriptions (the checks above cover them), and events appended outside the sequence.
//!
//! # Key stores
//!
//! A [`KeyStore`](crate::persistence::codec::KeyStore) (where the keys of encrypted payloads
//! live) has checks of its own: [`run_key_store`] takes a function that opens a handle on one
//! key store's storage and runs [`key_store_checks`] (first keys, rotation, forgetting and its
//! tombstone, the application's key, and concurrent callers in several handles).

mod checks;
mod keys;
mod model;
mod support;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use crate::persistence::store::EventStore;

pub use checks::*;
pub use keys::*;
pub use model::{ModelCases, model_concurrent_appends, model_sequences};

/// How long one check may take before it fails as hung (a deadlocked store should fail the
/// suite, not hang it).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

/// A failed check: which one, and what differed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The check's name (the name of its function in this module).
    pub check: &'static str,
    /// What the store did, and what the contract expected instead.
    pub message: String,
}

impl Failure {
    /// A failure of `check`.
    pub fn new(check: &'static str, message: impl Into<String>) -> Self {
        Self {
            check,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "check `{}` failed: {}", self.check, self.message)
    }
}

impl std::error::Error for Failure {}

/// What a check returns: `Ok(())`, or the [`Failure`] naming it.
pub type CheckResult = Result<(), Failure>;

/// One check of the suite, as listed by [`checks`].
#[derive(Clone, Copy)]
pub struct Check {
    name: &'static str,
    summary: &'static str,
    run: fn(Arc<dyn EventStore>) -> BoxFuture<'static, CheckResult>,
}

impl Check {
    /// The check's name, which is also the name of its function in this module.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// One line on what the check verifies.
    pub fn summary(&self) -> &'static str {
        self.summary
    }

    /// Runs the check against `store`, which should be fresh and empty.
    pub async fn run<S: EventStore + 'static>(&self, store: Arc<S>) -> CheckResult {
        (self.run)(store).await
    }
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check")
            .field("name", &self.name)
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

/// The outcome of a suite run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The checks that passed, with how long each took.
    pub passed: Vec<(&'static str, Duration)>,
    /// The checks that failed.
    pub failures: Vec<Failure>,
}

impl Report {
    /// Whether every check that ran passed.
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// Panics with the whole report if any check failed.
    #[track_caller]
    pub fn assert_ok(&self) {
        if !self.is_ok() {
            panic!("{self}");
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "store conformance: {} passed, {} failed",
            self.passed.len(),
            self.failures.len()
        )?;
        for failure in &self.failures {
            writeln!(f, "  FAILED {}: {}", failure.check, failure.message)?;
        }
        Ok(())
    }
}

/// Runs every check, each on a fresh store from `new_store`, and panics with a report naming
/// every failed check and what differed.
///
/// Call it from a multi-thread Tokio runtime with timers enabled (see the [module
/// docs](self)).
#[track_caller]
pub fn run<S, F, Fut>(new_store: F) -> impl Future<Output = ()>
where
    S: EventStore + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    let caller = std::panic::Location::caller();
    async move {
        let report = try_run(new_store).await;
        if !report.is_ok() {
            panic!("{report}(suite run from {caller})");
        }
    }
}

/// Runs every check, each on a fresh store from `new_store`, and returns the report.
pub async fn try_run<S, F, Fut>(new_store: F) -> Report
where
    S: EventStore + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    try_run_with(new_store, ModelCases::default()).await
}

/// Like [`run`], with the model checks running `cases` (a slow store runs fewer, an in-memory
/// one more). `EVENTSOURCE_MODEL_CASES` still overrides the number of sequences.
#[track_caller]
pub fn run_with<S, F, Fut>(new_store: F, cases: ModelCases) -> impl Future<Output = ()>
where
    S: EventStore + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    let caller = std::panic::Location::caller();
    async move {
        let report = try_run_with(new_store, cases).await;
        if !report.is_ok() {
            panic!("{report}(suite run from {caller})");
        }
    }
}

/// Like [`try_run`], with the model checks running `cases`.
pub async fn try_run_with<S, F, Fut>(new_store: F, cases: ModelCases) -> Report
where
    S: EventStore + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    run_checks(new_store, CHECKS.iter(), MODEL_CHECKS.iter(), cases).await
}

/// Runs the checks with these names, each on a fresh store. An unknown name is reported as a
/// failure (so a typo can't silently skip a check).
pub async fn try_run_only<S, F, Fut>(new_store: F, names: &[&str]) -> Report
where
    S: EventStore + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    try_run_only_with(new_store, names, ModelCases::default()).await
}

/// Like [`try_run_only`], with the model checks among `names` running `cases`: more sequences
/// make a rare break all but certain to be met.
pub async fn try_run_only_with<S, F, Fut>(new_store: F, names: &[&str], cases: ModelCases) -> Report
where
    S: EventStore + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    let mut report = run_checks(
        new_store,
        CHECKS.iter().filter(|c| names.contains(&c.name)),
        MODEL_CHECKS.iter().filter(|c| names.contains(&c.name)),
        cases,
    )
    .await;
    for name in names {
        if !CHECKS.iter().any(|c| c.name == *name) && !MODEL_CHECKS.iter().any(|c| c.name == *name)
        {
            report.failures.push(Failure::new(
                "try_run_only",
                format!(
                    "there is no check named `{name}`; the checks are: {}",
                    CHECKS
                        .iter()
                        .map(|c| c.name)
                        .chain(MODEL_CHECKS.iter().map(|c| c.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    report
}

/// Every check of the suite that takes one store, in the order [`run`] runs them (the model
/// checks, which take the factory, come after them: see [`model_checks`]).
pub fn checks() -> &'static [Check] {
    CHECKS
}

/// The model checks: each runs many random cases, each on a fresh store from the factory, so
/// they can't be called with one store. [`run`] runs them after [`checks`].
pub fn model_checks() -> &'static [ModelCheck] {
    MODEL_CHECKS
}

/// A model check (see [`model_checks`]): its name and what it verifies. Call it through
/// [`run`], [`try_run_only`] or its function ([`model_sequences`], [`model_concurrent_appends`]).
#[derive(Debug, Clone, Copy)]
pub struct ModelCheck {
    name: &'static str,
    summary: &'static str,
}

impl ModelCheck {
    /// The check's name, which is also the name of its function in this module.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// One line on what the check verifies.
    pub fn summary(&self) -> &'static str {
        self.summary
    }
}

const MODEL_CHECKS: &[ModelCheck] = &[
    ModelCheck {
        name: "model_sequences",
        summary: "random sequences of appends (right and wrong versions, duplicate streams, tracking), stream and log reads agree with a model of the contract; a failure is shrunk to a minimal sequence",
    },
    ModelCheck {
        name: "model_concurrent_appends",
        summary: "4 tasks appending random batches concurrently leave a log that is a serial order of the successful appends, consistent with every success and conflict",
    },
];

async fn run_checks<'c, S, F, Fut>(
    mut new_store: F,
    checks: impl Iterator<Item = &'c Check>,
    model_checks: impl Iterator<Item = &'c ModelCheck>,
    cases: ModelCases,
) -> Report
where
    S: EventStore + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    let mut report = Report::default();
    for check in checks {
        let store: Arc<dyn EventStore> = Arc::new(new_store().await);
        let started = Instant::now();
        // Run the check as its own task, so that a panicking store (or check) is reported
        // against the check instead of aborting the whole suite.
        let task = tokio::spawn((check.run)(store));
        let outcome = match tokio::time::timeout(CHECK_TIMEOUT, task).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(join)) => Err(Failure::new(
                check.name,
                format!("the check panicked: {}", support::panic_message(join)),
            )),
            Err(_) => Err(Failure::new(
                check.name,
                format!("did not finish within {CHECK_TIMEOUT:?}: is the store deadlocked?"),
            )),
        };
        match outcome {
            Ok(()) => report.passed.push((check.name, started.elapsed())),
            Err(failure) => report.failures.push(failure),
        }
    }
    for check in model_checks {
        let started = Instant::now();
        // Each case runs as its own task and has its own timeout (see `model`).
        let outcome = match check.name {
            "model_sequences" => model_sequences(&mut new_store, cases).await,
            _ => model_concurrent_appends(&mut new_store, cases).await,
        };
        match outcome {
            Ok(()) => report.passed.push((check.name, started.elapsed())),
            Err(failure) => report.failures.push(failure),
        }
    }
    report
}

macro_rules! check_table {
    ($($name:ident: $summary:literal,)*) => {
        const CHECKS: &[Check] = &[$(
            Check {
                name: stringify!($name),
                summary: $summary,
                run: |store| Box::pin(checks::$name::<dyn EventStore>(store)),
            },
        )*];
    };
}

check_table! {
    append_and_read_back:
        "appended events read back byte for byte (name, schema version, payload, metadata), from the stream and from the log",
    empty_append:
        "a batch without events writes nothing and returns the last position; it still checks expected versions",
    unknown_stream_reads_empty:
        "an unknown stream reads empty, has version 0, no snapshot; an unknown tracker is at 0",
    duplicate_version_is_a_conflict:
        "appending at a version the stream is not at is a Conflict naming stream, expected and actual version",
    conflict_in_batch_writes_nothing:
        "a batch where one stream conflicts writes nothing, not even the other streams' events",
    duplicate_stream_in_batch_writes_nothing:
        "a batch naming the same stream twice is DuplicateStreamInBatch and writes nothing",
    multi_stream_append_is_atomic:
        "one batch appends to several streams, all visible together, in batch order in the log",
    read_stream_ranges:
        "from, to, backwards and limit select the right versions in the right order, read or visited; a visitor can stop early",
    long_stream_reads_across_chunks:
        "a stream longer than any read chunk reads and visits whole, in order, forwards and backwards",
    stream_version_tracks_appends:
        "stream_version is 0, then the last appended version",
    streams_are_independent:
        "streams have their own versions and events; a conflict on one leaves the other alone",
    log_positions_strictly_increase:
        "log positions are >= 1 and strictly increasing; append returns the last position it wrote",
    log_paging_reassembles_the_log:
        "paging the log with after/limit at any page size gives exactly the whole log",
    log_last_position_and_reading_past_the_end:
        "last_position is 0 when empty and the newest position after; reading past the end is empty",
    log_filters_by_event_name:
        "a name filter returns only events with those exact names (case, unicode), in order, and pages",
    events_keep_their_ids_and_categories:
        "every event reads back with the id it was appended with and its stream's category, from the stream and the log",
    log_filters_by_category:
        "a category filter, alone or with names, returns exactly the events of those categories at any page size",
    repeated_filters_read_each_event_once:
        "a filter listing a category or a name twice returns each matching event once",
    filtered_reads_start_after_what_they_passed:
        "a filtered page that is not full says the next read starts after everything passed, so nothing is read twice",
    log_reads_stop_at_a_bound:
        "a log read up to a position, filtered or not, returns nothing past it, says the next read starts at most there, and continuing from there returns exactly the rest",
    concurrent_writers_on_distinct_streams:
        "4 tasks x 200 appends on their own streams: nothing lost, nothing duplicated, each once in the log",
    concurrent_writers_on_one_stream:
        "tasks racing on one stream: the successes are contiguous, every loser gets a Conflict",
    follower_never_skips_concurrent_commits:
        "a follower paging the log while writers commit sees exactly the final log",
    subscription_follows_commits:
        "a subscription catches up, then hands over every event concurrent writers commit, once, in log order",
    snapshots_save_and_load:
        "snapshots save and load byte for byte: latest, at or below a version, none for an unknown stream",
    replay_from_snapshot_agrees:
        "replay_from_snapshot lends what load_snapshot then visit_stream return (no snapshot, at or below a version, beyond the stream's end), and stops where its visitor says",
    tracking_is_written_with_the_append:
        "a tracking position is written atomically with the events; a non-increasing one is a TrackingConflict and writes nothing",
    tracking_at_the_start_position_is_a_conflict:
        "a tracker without a record is at 0: offering position 0 is a TrackingConflict (recorded 0) that writes nothing",
    large_payloads:
        "1 MiB payloads, metadata and snapshot states round-trip byte for byte",
    unicode_names_and_payloads:
        "unicode event names, metadata, payloads, tracker and aggregate names round-trip exactly",
}
