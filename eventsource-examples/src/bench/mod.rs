//! The benchmark program's workloads (issue 7), run by `src/bin/bench.rs`:
//!
//! - **W1** one aggregate, commands one by one (load, decide, save one event): commands per
//!   second and per-command latency at 100, 1,000 and 10,000 events of history, with the
//!   library's defaults (`default`), with a snapshot every 100 events (`snapshots`) and with the aggregate
//!   cache (`cache`);
//! - **W2** new aggregates, one save of several events each: events per second;
//! - **W3** replay one aggregate from a cold repository, several times: median and events per
//!   second; **W3-large** replay a very long stream once: events per second and the memory
//!   it takes above the baseline measured just before;
//! - **W4** read the whole global log in pages, decoding every event;
//! - **W5** concurrent writers on distinct aggregates, then on one aggregate, each deposit a
//!   command (`execute`, retried at once on a conflict; conflicts counted, none lost); then both with the repository's cache at `--w5-writers` and four times as many
//!   writers (`distinct-cache`, `same-cache`), and on the memory store the cache alone under
//!   contention (`cache-get`: cached loads, no events to read) and the cache with a byte budget
//!   (`distinct-cache-budget`, `same-cache-budget`);
//! - **W6** a projection catching up from zero over the whole log, beside W4's read of the same
//!   log (issue 11; it runs right after W4, on the log W1–W4 wrote, topped up);
//! - **W7** a live projection: latency from an append's commit to its handler (see [`read_side`]);
//! - **W8** a process manager: transfers completed per second end to end, with the `transfers`
//!   process live beside concurrent requesters and catching up alone, beside W2's rate (see
//!   [`process`]);
//!
//! - **W3-interleaved** (issue 16) replay one stream of a store whose streams were written
//!   round robin, and read that store's log in pages (see [`interleaved`]);
//!
//! and, for SQLite and PostgreSQL, the raw engine in the same run: the store's own row shape
//! (see [`raw`]) and the engine's fastest shape for each access pattern (see [`raw_best`]).
//! `--prefill N` fills the store with N events over many streams before the workloads run
//! (see [`interleaved`]).

pub mod account;
pub mod codecs;
pub mod figure;
pub mod interleaved;
pub mod process;
pub mod raw;
pub mod raw_best;
pub mod read_side;
pub mod rss;
pub mod workloads;

use std::path::PathBuf;
use std::sync::Arc;

use eventsource_core::EventStore;

pub use figure::Figure;

use crate::OpenedStore;

/// Errors of the bench: anything, with its message.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;

/// The bench's result type.
pub type BenchResult<T> = Result<T, BenchError>;

/// The workloads, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// One aggregate, commands one by one.
    W1,
    /// Many new aggregates, one multi-event save each.
    W2,
    /// Cold replay of one aggregate, several times.
    W3,
    /// Cold replay of a very long stream, with its memory.
    W3Large,
    /// Cold replay of one stream of a store written round robin, and that store's log.
    W3Interleaved,
    /// The whole global log in pages.
    W4,
    /// Concurrent writers.
    W5,
    /// A projection catching up from zero, beside W4's read.
    W6,
    /// A live projection's latency, append to handler.
    W7,
    /// A process manager's throughput: transfers completed per second.
    W8,
}

impl Workload {
    /// Every workload, in run order (W6 runs right after W4, on the log it read).
    pub const ALL: [Workload; 10] = [
        Workload::W1,
        Workload::W2,
        Workload::W3,
        Workload::W3Large,
        Workload::W3Interleaved,
        Workload::W4,
        Workload::W6,
        Workload::W5,
        Workload::W7,
        Workload::W8,
    ];

    /// The name in the table and the JSON (`W1` … `W8`, `W3-large`, `W3-interleaved`).
    pub fn label(self) -> &'static str {
        match self {
            Workload::W1 => "W1",
            Workload::W2 => "W2",
            Workload::W3 => "W3",
            Workload::W3Large => "W3-large",
            Workload::W3Interleaved => "W3-interleaved",
            Workload::W4 => "W4",
            Workload::W5 => "W5",
            Workload::W6 => "W6",
            Workload::W7 => "W7",
            Workload::W8 => "W8",
        }
    }

    /// Parses a label, case-insensitively.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|w| w.label().eq_ignore_ascii_case(text.trim()))
    }
}

/// The workload sizes (all flags of the program).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sizes {
    /// W1: commands on the one aggregate, and the longest history a latency is reported at.
    pub w1_commands: u64,
    /// W1 `default` (replaying the whole stream every command): commands run back to back;
    /// the latency checkpoints beyond are reached by growing the stream with batched appends.
    pub w1_default_commands: u64,
    /// W2: new aggregates.
    pub w2_aggregates: u64,
    /// W2: events per aggregate (one save).
    pub w2_events: u64,
    /// W3: events in the replayed stream (including `Opened`).
    pub w3_events: u64,
    /// W3: replays.
    pub w3_runs: u64,
    /// W3-large: events in the long stream.
    pub w3_large_events: u64,
    /// W3-interleaved: events in its store (at least one per stream).
    pub interleaved_events: u64,
    /// W3-interleaved: streams in its store, written round robin.
    pub interleaved_streams: u64,
    /// Events the store is filled with before the workloads run (0: none).
    pub prefill: u64,
    /// The streams the prefill spreads its events over, round robin.
    pub prefill_streams: u64,
    /// W4: the log is topped up to at least this many events before it is read.
    pub w4_events: u64,
    /// W4: events per page.
    pub w4_page: u64,
    /// W5: concurrent writers.
    pub w5_writers: u64,
    /// W5: commands per writer.
    pub w5_commands: u64,
    /// W6: the log is topped up to at least this many events before the projection catches up.
    pub w6_events: u64,
    /// W7: events appended (one per append) while the projection runs.
    pub w7_events: u64,
    /// W7: microseconds between appends (as far as the store keeps up).
    pub w7_interval_us: u64,
    /// W8: transfers requested (in each of the live and the catch-up run).
    pub w8_transfers: u64,
    /// W8: accounts the transfers move money between (at least 2).
    pub w8_accounts: u64,
    /// W8: concurrent requesters.
    pub w8_requesters: u64,
    /// Raw engine: single-row transactions.
    pub raw_single: u64,
    /// Events per append when the bench writes a long stream (W3, W3-large, W4 top-up).
    pub write_batch: u64,
    /// W1 `snapshots`: a snapshot every this many events.
    pub snapshot_every: u64,
    /// W1 `cache`: the cache's capacity (aggregates).
    pub cache_capacity: usize,
}

impl Sizes {
    /// The sizes of the workloads.
    pub fn standard() -> Self {
        Self {
            w1_commands: 10_000,
            w1_default_commands: 1_000,
            w2_aggregates: 1_000,
            w2_events: 10,
            w3_events: 10_000,
            w3_runs: 20,
            w3_large_events: 1_000_000,
            interleaved_events: 1_000_000,
            interleaved_streams: 2_000,
            prefill: 0,
            prefill_streams: 10_000,
            w4_events: 100_000,
            w4_page: 1_000,
            w5_writers: 4,
            w5_commands: 250,
            w6_events: 1_000_000,
            w7_events: 10_000,
            w7_interval_us: 1_000,
            w8_transfers: 2_000,
            w8_accounts: 20,
            w8_requesters: 4,
            raw_single: 2_000,
            write_batch: 10_000,
            snapshot_every: 100,
            cache_capacity: 1_000,
        }
    }

    /// Tiny sizes for a smoke run (`--quick`).
    pub fn quick() -> Self {
        Self {
            w1_commands: 120,
            w1_default_commands: 50,
            w2_aggregates: 20,
            w2_events: 10,
            w3_events: 300,
            w3_runs: 3,
            w3_large_events: 3_000,
            interleaved_events: 2_000,
            interleaved_streams: 20,
            prefill: 0,
            prefill_streams: 10_000,
            w4_events: 1_000,
            w4_page: 100,
            w5_writers: 4,
            w5_commands: 10,
            w6_events: 2_000,
            w7_events: 200,
            w7_interval_us: 1_000,
            w8_transfers: 100,
            w8_accounts: 20,
            w8_requesters: 4,
            raw_single: 100,
            write_batch: 1_000,
            snapshot_every: 100,
            cache_capacity: 1_000,
        }
    }
}

/// Collects figures, printing each as a JSON line the moment it is measured (with `--json`) and
/// a progress line on stderr.
#[derive(Debug, Default)]
pub struct Report {
    /// Print JSON lines on stdout.
    pub json: bool,
    /// Every figure so far.
    pub figures: Vec<Figure>,
    /// Keys added to every figure pushed from now on (`prefilled` after `--prefill`).
    pub common: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    /// Records a figure.
    pub fn push(&mut self, mut figure: Figure) {
        for (key, value) in &self.common {
            figure.extra.insert(key.clone(), value.clone());
        }
        if self.json {
            println!("{}", figure.to_json());
        }
        match (figure.history, figure.latency_us) {
            (Some(h), Some(l)) => eprintln!(
                "  {:<8} {:<9} {:<11} history {h:>7}: {l:>10.0} µs/command",
                figure.store, figure.workload, figure.variant
            ),
            _ => eprintln!(
                "  {:<8} {:<9} {:<11} {:>9} in {:>8.3} s = {:>12.0}/s  (peak RSS {} MiB)",
                figure.store,
                figure.workload,
                figure.variant,
                figure.events,
                figure.seconds,
                figure.per_second(),
                figure.peak_rss_kib / 1024
            ),
        }
        self.figures.push(figure);
    }
}

/// A store under test, opened fresh for the run, and what it takes to clean up after it.
pub struct BenchStore {
    /// `memory`, `sqlite`, `postgres`, `nats` or `nats-r3` (replicated).
    pub name: &'static str,
    /// The store.
    pub store: Arc<dyn EventStore>,
    /// The same store as its own type, for what needs more than the trait (a process manager
    /// needs [`Claims`](eventsource_core::Claims), which `Arc<dyn EventStore>` doesn't have).
    pub opened: OpenedStore,
    /// The raw engine beside it in the store's row shape (none for memory).
    pub raw: Option<raw::RawEngine>,
    /// The raw engine at its best beside it (none for memory and NATS).
    pub best: Option<raw_best::RawBest>,
    /// How it was asked for (a sibling store is opened from it).
    spec: StoreSpec,
    /// Files to remove afterwards.
    files: Vec<PathBuf>,
    /// A directory to remove afterwards (the bench's temporary directory).
    dir: Option<PathBuf>,
    /// A PostgreSQL schema to drop afterwards (a sibling store's: URL and schema), where no raw
    /// engine drops it.
    schema_to_drop: Option<(String, String)>,
}

impl std::fmt::Debug for BenchStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchStore")
            .field("name", &self.name)
            .field("opened", &self.opened)
            .field("raw", &self.raw)
            .field("best", &self.best)
            .field("spec", &self.spec)
            .field("files", &self.files)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Which store to run, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// `memory` or `memory://`.
    Memory,
    /// `sqlite` (a temporary file) or `sqlite://file` / a path (must not exist yet).
    Sqlite(Option<String>),
    /// `postgres` (URL from `EVENTSOURCE_POSTGRES_URL`) or a `postgres://` URL.
    Postgres(String),
    /// `nats` (URL from `EVENTSOURCE_NATS_URL`), `nats-cluster` (`EVENTSOURCE_NATS_CLUSTER_URLS`,
    /// replicas 3) or a `nats://` URL (`?replicas=N` allowed; the bench names the store).
    Nats(String),
}

/// The NATS URL when `--store nats` names none: `.ci/nats`'s single server.
pub fn default_nats_url() -> String {
    std::env::var("EVENTSOURCE_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:14222".to_owned())
}

/// The NATS cluster URL for `--store nats-cluster`: the first of `.ci/nats`'s three nodes
/// (the client learns the others from it), replicas 3. One URL, without commas: `--store`
/// lists are split on commas, also when the bench hands a store to its child process.
pub fn default_nats_cluster_url() -> String {
    let urls = std::env::var("EVENTSOURCE_NATS_CLUSTER_URLS").unwrap_or_default();
    let first = urls.split(',').find(|url| !url.trim().is_empty());
    format!(
        "{}?replicas=3",
        first.map_or("nats://127.0.0.1:14231", str::trim)
    )
}

/// The environment variable that turns the PostgreSQL store's `NOTIFY` off for a run
/// (`EVENTSOURCE_BENCH_NOTIFY=off`), to measure what wake-ups cost appends.
pub const NOTIFY_VAR: &str = "EVENTSOURCE_BENCH_NOTIFY";

/// Whether the PostgreSQL store sends `NOTIFY` on each append: yes unless [`NOTIFY_VAR`] is
/// `off` (or `0`, `false`).
pub fn postgres_notify() -> bool {
    !matches!(
        std::env::var(NOTIFY_VAR).as_deref(),
        Ok("off" | "0" | "false")
    )
}

/// The SQLite store's `mmap_size` (the default of [`SqliteOptions`](eventsource_core::SqliteOptions),
/// which the bench keeps: its URLs set no other), given to the raw engines' read connections.
pub const STORE_MMAP_SIZE: i64 = 256 * 1024 * 1024;

/// The PostgreSQL URL when `--store postgres` names none.
pub fn default_postgres_url() -> String {
    std::env::var("EVENTSOURCE_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

impl StoreSpec {
    /// The `--store` argument that names this store again.
    pub fn to_arg(&self) -> String {
        match self {
            StoreSpec::Memory => "memory".to_owned(),
            StoreSpec::Sqlite(None) => "sqlite".to_owned(),
            StoreSpec::Sqlite(Some(url)) | StoreSpec::Postgres(url) | StoreSpec::Nats(url) => {
                url.clone()
            }
        }
    }

    /// Parses `memory`, `sqlite`, `postgres` or a URL.
    pub fn parse(text: &str) -> Result<Self, String> {
        Ok(match text {
            "memory" | "memory://" | "memory:" => StoreSpec::Memory,
            "sqlite" => StoreSpec::Sqlite(None),
            "postgres" | "postgresql" | "pg" => StoreSpec::Postgres(default_postgres_url()),
            url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                StoreSpec::Postgres(url.to_owned())
            }
            "nats" => StoreSpec::Nats(default_nats_url()),
            "nats-cluster" => StoreSpec::Nats(default_nats_cluster_url()),
            url if url.starts_with("nats://") => StoreSpec::Nats(url.to_owned()),
            url if url.starts_with("sqlite:") || !url.contains("://") => {
                StoreSpec::Sqlite(Some(url.to_owned()))
            }
            other => {
                return Err(format!(
                    "unknown store `{other}`: use memory, sqlite, postgres, nats, nats-cluster, or a sqlite://, postgres:// or nats:// URL"
                ));
            }
        })
    }
}

/// Why a store could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The server did not answer (the caller may skip the store).
    Unreachable(String),
    /// Anything else.
    Failed(BenchError),
}

impl From<BenchError> for OpenError {
    fn from(error: BenchError) -> Self {
        OpenError::Failed(error)
    }
}

impl BenchStore {
    fn new(
        name: &'static str,
        spec: &StoreSpec,
        opened: OpenedStore,
        raw: Option<raw::RawEngine>,
        files: Vec<PathBuf>,
        dir: Option<PathBuf>,
    ) -> Self {
        Self {
            name,
            store: opened.events(),
            opened,
            raw,
            best: None,
            spec: spec.clone(),
            files,
            dir,
            schema_to_drop: None,
        }
    }

    /// Opens a fresh store for `spec` (a new temporary SQLite file, a new PostgreSQL schema
    /// `bench_<pid>`), with its raw engine.
    pub async fn open(spec: &StoreSpec) -> Result<Self, OpenError> {
        match spec {
            StoreSpec::Memory => Ok(Self::new(
                "memory",
                spec,
                OpenedStore::Memory(Arc::new(eventsource_core::MemoryStore::new())),
                None,
                Vec::new(),
                None,
            )),
            StoreSpec::Sqlite(url) => Self::open_sqlite(spec, url.as_deref())
                .await
                .map_err(OpenError::Failed),
            #[cfg(feature = "postgres")]
            StoreSpec::Postgres(url) => Self::open_postgres(url).await,
            #[cfg(not(feature = "postgres"))]
            StoreSpec::Postgres(_) => Err(OpenError::Failed(
                "this bench was built without the `postgres` feature".into(),
            )),
            StoreSpec::Nats(url) => Self::open_nats(spec, url, "main").await,
        }
    }

    /// A fresh NATS store `bench-<pid>-<label>` on the servers `url` names (its own JetStream
    /// streams, deleted by [`clean_up`](Self::clean_up)); no raw engine.
    async fn open_nats(spec: &StoreSpec, url: &str, label: &str) -> Result<Self, OpenError> {
        if url.contains("name=") {
            return Err(OpenError::Failed(
                "the bench names its own NATS store (bench-<pid>-…): drop `name=` from the URL"
                    .into(),
            ));
        }
        let separator = if url.contains('?') { '&' } else { '?' };
        let named = format!("{url}{separator}name=bench-{}-{label}", std::process::id());
        let opened = match OpenedStore::open(&named).await {
            Ok(opened) => opened,
            Err(error @ eventsource_core::Error::Backend { .. }) => {
                return Err(OpenError::Unreachable(format!(
                    "NATS at {url} is unreachable: {error}"
                )));
            }
            Err(error) => return Err(OpenError::Failed(error.into())),
        };
        let name = match &opened {
            #[cfg(feature = "nats")]
            OpenedStore::Nats(store) if store.replicas() > 1 => "nats-r3",
            _ => "nats",
        };
        Ok(Self::new(name, spec, opened, None, Vec::new(), None))
    }

    async fn open_sqlite(spec: &StoreSpec, url: Option<&str>) -> BenchResult<Self> {
        use eventsource_core::{SqliteOptions, Synchronous};
        let (options, dir) = match url {
            Some(url) => (SqliteOptions::from_url(url)?, None),
            None => {
                let dir =
                    std::env::temp_dir().join(format!("eventsource-bench-{}", std::process::id()));
                std::fs::create_dir_all(&dir)?;
                (SqliteOptions::file(dir.join("store.db")), Some(dir))
            }
        };
        let path = options.path().map(PathBuf::from);
        if let Some(path) = &path
            && dir.is_none()
            && path.exists()
        {
            return Err(format!(
                "{} exists; the bench needs a fresh database (it reads the whole log), so name a file that does not exist yet",
                path.display()
            )
            .into());
        }
        let synchronous = match options.synchronous_mode() {
            Synchronous::Off => "OFF",
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
            Synchronous::Extra => "EXTRA",
        };
        let store = options.open().await?;
        let raw_file = path.as_ref().map(|p| {
            let mut name = p.as_os_str().to_owned();
            name.push(".raw.db");
            PathBuf::from(name)
        });
        let raw = raw::RawSqlite::open(raw_file, path.clone(), synchronous)?;
        let best_file = path.as_ref().map(|p| {
            let mut name = p.as_os_str().to_owned();
            name.push(".best.db");
            PathBuf::from(name)
        });
        let best = raw_best::BestSqlite::open(best_file, synchronous, STORE_MMAP_SIZE)?;
        let mut opened = Self::new(
            "sqlite",
            spec,
            OpenedStore::Sqlite(store),
            Some(raw::RawEngine::Sqlite(raw)),
            path.into_iter().collect(),
            dir,
        );
        opened.best = Some(raw_best::RawBest::Sqlite(best));
        Ok(opened)
    }

    #[cfg(feature = "postgres")]
    async fn open_postgres(url: &str) -> Result<Self, OpenError> {
        use eventsource_core::stores::postgres::PostgresOptions;
        // Reachable at all? A refused or timed-out connection lets the caller skip.
        if let Err(error) = raw::connect_postgres(url).await {
            return Err(OpenError::Unreachable(format!(
                "PostgreSQL at {url} is unreachable: {error}"
            )));
        }
        let schema = format!("bench_{}", std::process::id());
        let raw = raw::RawPostgres::connect(url, &schema).await?;
        let best = match raw_best::BestPostgres::connect(url, &schema).await {
            Ok(best) => best,
            Err(error) => {
                let _ = raw.drop_schema().await;
                return Err(OpenError::Failed(error));
            }
        };
        let options = PostgresOptions::new(url)
            .schema(&schema)
            .notify(postgres_notify());
        let store = match options.connect().await {
            Ok(store) => store,
            Err(error) => {
                let _ = raw.drop_schema().await;
                return Err(OpenError::Failed(error.into()));
            }
        };
        let mut opened = Self::new(
            "postgres",
            &StoreSpec::Postgres(url.to_owned()),
            OpenedStore::Postgres(store),
            Some(raw::RawEngine::Postgres(raw)),
            Vec::new(),
            None,
        );
        opened.best = Some(raw_best::RawBest::Postgres(best));
        Ok(opened)
    }

    /// A fresh, empty store of the same kind as this one, without a raw engine, for a
    /// comparison that needs a log of its own (the codec comparison, see [`codecs`]). `label`
    /// (letters, digits, `-`) tells it apart: memory opens a new store, SQLite a file
    /// `<file>.<label>.db` beside this one's (with the same URL parameters), PostgreSQL a schema
    /// `bench_<pid>_<label>`. [`clean_up`](Self::clean_up) removes it.
    pub async fn open_sibling(&self, label: &str) -> BenchResult<Self> {
        match &self.spec {
            StoreSpec::Memory => Ok(Self::new(
                "memory",
                &self.spec,
                OpenedStore::Memory(Arc::new(eventsource_core::MemoryStore::new())),
                None,
                Vec::new(),
                None,
            )),
            StoreSpec::Sqlite(url) => {
                use eventsource_core::SqliteOptions;
                let options = match url {
                    // Beside the file (the query parameters kept); `sqlite::memory:` is new anyway.
                    Some(url) => {
                        let (base, query) = match url.split_once('?') {
                            Some((base, query)) => (base, format!("?{query}")),
                            None => (url.as_str(), String::new()),
                        };
                        let options = SqliteOptions::from_url(url)?;
                        match options.path() {
                            Some(_) => {
                                SqliteOptions::from_url(&format!("{base}.{label}.db{query}"))?
                            }
                            None => options,
                        }
                    }
                    None => {
                        let main = self.files.first().ok_or("the SQLite store has no file")?;
                        let mut name = main.as_os_str().to_owned();
                        name.push(format!(".{label}.db"));
                        SqliteOptions::file(PathBuf::from(name))
                    }
                };
                let path = options.path().map(PathBuf::from);
                if let Some(path) = &path
                    && path.exists()
                {
                    return Err(format!(
                        "{} exists; the bench needs a fresh database for its `{label}` comparison",
                        path.display()
                    )
                    .into());
                }
                let store = options.open().await?;
                Ok(Self::new(
                    "sqlite",
                    &self.spec,
                    OpenedStore::Sqlite(store),
                    None,
                    path.into_iter().collect(),
                    None,
                ))
            }
            #[cfg(feature = "postgres")]
            StoreSpec::Postgres(url) => {
                use eventsource_core::stores::postgres::PostgresOptions;
                let schema = format!("bench_{}_{}", std::process::id(), label.replace('-', "_"));
                let store = PostgresOptions::new(url)
                    .schema(&schema)
                    .notify(postgres_notify())
                    .connect()
                    .await?;
                let mut sibling = Self::new(
                    "postgres",
                    &self.spec,
                    OpenedStore::Postgres(store),
                    None,
                    Vec::new(),
                    None,
                );
                sibling.schema_to_drop = Some((url.clone(), schema));
                Ok(sibling)
            }
            #[cfg(not(feature = "postgres"))]
            StoreSpec::Postgres(_) => {
                Err("this bench was built without the `postgres` feature".into())
            }
            StoreSpec::Nats(url) => {
                Self::open_nats(&self.spec, url, label)
                    .await
                    .map_err(|error| match error {
                        OpenError::Unreachable(message) => message.into(),
                        OpenError::Failed(error) => error,
                    })
            }
        }
    }

    /// Puts a raw engine in the store's row shape beside a sibling (see
    /// [`open_sibling`](Self::open_sibling)), for reads of the sibling's own table: its inserts
    /// go to a table of their own (SQLite: in memory), which the workloads using this leave
    /// empty. Memory and NATS get none.
    pub async fn attach_raw(&mut self) -> BenchResult<()> {
        match &self.spec {
            StoreSpec::Sqlite(_) => {
                if let Some(file) = self.files.first() {
                    // Reads only: the synchronous level of its (unused) insert table is moot.
                    let raw = raw::RawSqlite::open(None, Some(file.clone()), "NORMAL")?;
                    self.raw = Some(raw::RawEngine::Sqlite(raw));
                }
            }
            #[cfg(feature = "postgres")]
            StoreSpec::Postgres(url) => {
                if let Some((_, schema)) = &self.schema_to_drop {
                    let raw = raw::RawPostgres::connect(url, schema).await?;
                    self.raw = Some(raw::RawEngine::Postgres(raw));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The size of the SQLite database (its pages in use, the WAL's committed pages included),
    /// or `None` for another store or an in-memory database.
    pub fn database_bytes(&self) -> BenchResult<Option<u64>> {
        let Some(path) = self.files.first() else {
            return Ok(None);
        };
        let connection = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let pragma = |name: &str| -> rusqlite::Result<u64> {
            let value: i64 =
                connection.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))?;
            Ok(value.max(0).unsigned_abs())
        };
        let in_use = pragma("page_count")?.saturating_sub(pragma("freelist_count")?);
        Ok(Some(in_use * pragma("page_size")?))
    }

    /// Removes what the run created: the temporary files, or the PostgreSQL schema.
    pub async fn clean_up(self) -> BenchResult<()> {
        let BenchStore {
            store,
            opened,
            raw,
            best,
            files,
            dir,
            schema_to_drop,
            ..
        } = self;
        drop(store);
        #[cfg(feature = "nats")]
        if let OpenedStore::Nats(nats) = &opened {
            nats.destroy().await?;
        }
        drop(opened);
        #[cfg(feature = "postgres")]
        if let Some(raw::RawEngine::Postgres(raw)) = &raw {
            raw.drop_schema().await?;
        }
        #[cfg(feature = "postgres")]
        if let Some((url, schema)) = schema_to_drop {
            raw::connect_postgres(&url)
                .await?
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .await?;
        }
        #[cfg(not(feature = "postgres"))]
        drop(schema_to_drop);
        drop(raw);
        drop(best);
        for file in files {
            raw::remove_sqlite_files(&file);
        }
        if let Some(dir) = dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(())
    }
}
