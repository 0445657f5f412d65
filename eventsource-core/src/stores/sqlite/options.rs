//! How to open a [`SqliteStore`](super::SqliteStore): where, how durable, which tables.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::stores::sql::identifier;

use super::{BACKEND, SqliteStore};

/// How hard SQLite works to make a commit survive a crash (`PRAGMA synchronous`).
///
/// The store runs SQLite in WAL mode (write-ahead log), where the levels mean:
///
/// | level | an application crash | an OS crash or power loss |
/// |---|---|---|
/// | [`Off`](Self::Off) | loses nothing committed | may lose recent commits **or corrupt the file** |
/// | [`Normal`](Self::Normal) | loses nothing committed | may lose the most recent commits; never corrupts |
/// | [`Full`](Self::Full) (default) | loses nothing committed | loses nothing committed |
/// | [`Extra`](Self::Extra) | loses nothing committed | loses nothing, also across directory-sync quirks |
///
/// Events are the source of truth, so the default is [`Full`](Self::Full): `append` returns
/// only once the events are on disk. [`Normal`](Self::Normal) is much faster per commit and a
/// common choice when losing the last moments of writes to a power cut is acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// No syncing at all. For throwaway data only.
    Off,
    /// Sync at checkpoints, not at every commit.
    Normal,
    /// Sync the write-ahead log at every commit (the default).
    #[default]
    Full,
    /// Like `Full`, and also sync the directory after the log is created or deleted.
    Extra,
}

impl Synchronous {
    pub(super) fn pragma_value(self) -> &'static str {
        match self {
            Synchronous::Off => "OFF",
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
            Synchronous::Extra => "EXTRA",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "off" | "0" => Some(Synchronous::Off),
            "normal" | "1" => Some(Synchronous::Normal),
            "full" | "2" => Some(Synchronous::Full),
            "extra" | "3" => Some(Synchronous::Extra),
            _ => None,
        }
    }
}

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Location {
    File(PathBuf),
    Memory,
}

/// The names of the store's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TableNames {
    pub(super) events: String,
    pub(super) snapshots: String,
    pub(super) tracking: String,
}

impl TableNames {
    /// The table recording which schema migrations ran, one per events table.
    pub(super) fn migrations(&self) -> String {
        format!("{}_migrations", self.events)
    }

    /// The covering index a stream read walks (schema version 5).
    pub(super) fn events_by_stream(&self) -> String {
        format!("{}_by_stream", self.events)
    }

    /// The table of projection claims (see [`SqliteClaim`](super::SqliteClaim)).
    pub(super) fn leases(&self) -> String {
        format!("{}_projection_leases", self.events)
    }

    /// The table of data keys (see [`SqliteKeyStore`](super::SqliteKeyStore)).
    pub(super) fn data_keys(&self) -> String {
        format!("{}{}", self.events, crate::stores::sql::keys::TABLE_SUFFIX)
    }

    fn validate(&self) -> Result<()> {
        let migrations = self.migrations();
        let leases = self.leases();
        let data_keys = self.data_keys();
        let all = [
            ("events", self.events.as_str()),
            ("snapshots", self.snapshots.as_str()),
            ("tracking", self.tracking.as_str()),
            ("migrations", migrations.as_str()),
            ("projection leases", leases.as_str()),
            ("data keys", data_keys.as_str()),
        ];
        for (role, name) in all {
            validate_identifier(role, name)?;
        }
        for (i, (role, name)) in all.iter().enumerate() {
            if let Some((other, _)) = all[..i].iter().find(|(_, n)| n.eq_ignore_ascii_case(name)) {
                return Err(config(format!(
                    "the {other} and {role} tables are both named `{name}` (SQLite table names ignore case); give each table its own name"
                )));
            }
        }
        Ok(())
    }
}

/// SQLite's rules for the store's table names: plain identifiers, so they can be put into SQL
/// unquoted; 63 bytes at most (the migrations table appends `_migrations`).
const TABLE_NAMES: identifier::Rules = identifier::Rules {
    backend: BACKEND,
    max_len: 63,
    reserved_prefix: "sqlite_",
    engine: "SQLite",
};

fn validate_identifier(role: &str, name: &str) -> Result<()> {
    identifier::check(TABLE_NAMES, &format!("{role} table"), name)
}

fn config(message: String) -> Error {
    Error::Config {
        backend: BACKEND,
        message,
    }
}

/// Options for opening a [`SqliteStore`]: a builder.
///
/// ```
/// use std::time::Duration;
/// use eventsource_core::{SqliteOptions, Synchronous};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// # let dir = std::env::temp_dir().join(format!("es-doc-{}", uuid::Uuid::now_v7()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # let path = dir.join("bank.db");
/// let store = SqliteOptions::file(&path)
///     .synchronous(Synchronous::Normal)
///     .busy_timeout(Duration::from_secs(10))
///     .events_table("bank_events")
///     .open()
///     .await?;
/// # drop(store); std::fs::remove_dir_all(&dir).unwrap();
///
/// // Table names are checked when the store opens.
/// let refused = SqliteOptions::in_memory().events_table("events; DROP TABLE x").open().await;
/// assert!(matches!(refused, Err(eventsource_core::Error::Config { .. })));
/// # Ok::<_, eventsource_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    pub(super) location: Location,
    pub(super) synchronous: Synchronous,
    pub(super) busy_timeout: Duration,
    pub(super) tables: TableNames,
    pub(super) read_chunk: usize,
    pub(super) max_idle_readers: usize,
    pub(super) mmap_size: u64,
    pub(super) claim_lease: Duration,
}

/// The shortest claim lease [`SqliteOptions::open`] accepts.
const MIN_CLAIM_LEASE: Duration = Duration::from_millis(100);

impl SqliteOptions {
    /// A database file, created if missing.
    pub fn file(path: impl AsRef<Path>) -> Self {
        Self::at(Location::File(path.as_ref().to_path_buf()))
    }

    /// A private in-memory database, gone when the store is dropped. For tests.
    pub fn in_memory() -> Self {
        Self::at(Location::Memory)
    }

    fn at(location: Location) -> Self {
        Self {
            location,
            synchronous: Synchronous::default(),
            busy_timeout: Duration::from_secs(5),
            claim_lease: super::claim::LEASE,
            tables: TableNames {
                events: "events".into(),
                snapshots: "snapshots".into(),
                tracking: "tracking".into(),
            },
            read_chunk: 1024,
            max_idle_readers: 4,
            mmap_size: 256 * 1024 * 1024,
        }
    }

    /// Options from a URL-like string:
    ///
    /// - `sqlite://path/to/file.db` or `sqlite:path/to/file.db` (relative to the working
    ///   directory), `sqlite:///absolute/path.db`, or a plain path;
    /// - `sqlite::memory:` or `sqlite://:memory:` for an in-memory database;
    /// - optional query parameters `synchronous=off|normal|full|extra` and
    ///   `busy_timeout_ms=N` and `claim_lease_ms=N`, for example `sqlite://bank.db?synchronous=normal`.
    ///
    /// ```
    /// use eventsource_core::{SqliteOptions, Synchronous};
    /// let options = SqliteOptions::from_url("sqlite://data/bank.db?synchronous=normal")?;
    /// assert_eq!(options.path(), Some(std::path::Path::new("data/bank.db")));
    /// assert_eq!(options.synchronous_mode(), Synchronous::Normal);
    /// assert!(SqliteOptions::from_url("postgres://localhost/bank").is_err());
    /// # Ok::<_, eventsource_core::Error>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        let rest = if let Some(rest) = url.strip_prefix("sqlite://") {
            rest
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            rest
        } else if url.contains("://") {
            return Err(config(format!(
                "`{url}` is not an SQLite URL; use `sqlite://path/to/file.db` or `sqlite::memory:`"
            )));
        } else {
            url
        };
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let mut options = match path {
            ":memory:" => Self::in_memory(),
            "" => {
                return Err(config(format!(
                    "`{url}` names no database file; use `sqlite://path/to/file.db` or `sqlite::memory:`"
                )));
            }
            path => Self::file(path),
        };
        for pair in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "synchronous" => {
                    options.synchronous = Synchronous::parse(value).ok_or_else(|| {
                        config(format!(
                            "`synchronous={value}` in `{url}`: use off, normal, full or extra"
                        ))
                    })?;
                }
                "busy_timeout_ms" | "claim_lease_ms" => {
                    let ms: u64 = value.parse().map_err(|_| {
                        config(format!(
                            "`{key}={value}` in `{url}`: expected a number of milliseconds"
                        ))
                    })?;
                    let duration = Duration::from_millis(ms);
                    match key {
                        "busy_timeout_ms" => options.busy_timeout = duration,
                        _ => options.claim_lease = duration,
                    }
                }
                _ => {
                    return Err(config(format!(
                        "unknown parameter `{key}` in `{url}`; the parameters are `synchronous`, `busy_timeout_ms` and `claim_lease_ms`"
                    )));
                }
            }
        }
        Ok(options)
    }

    /// How durable each commit is (default [`Synchronous::Full`]); see [`Synchronous`].
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// How long to wait for another connection's lock before failing with a "database is
    /// locked" error (default 5 seconds).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How long a projection's or a process's claim lasts without being renewed (default
    /// [`LEASE`](super::LEASE), 10 s; renewed every quarter of it while its runner works): the
    /// longest a standby waits to take over from a runner that crashed. Shorter means faster
    /// takeover and more renewals (one write each); it must stay well above the longest pause
    /// the runner's process can take (and at least 100 ms, checked when the store opens).
    pub fn claim_lease(mut self, lease: Duration) -> Self {
        self.claim_lease = lease;
        self
    }

    /// The events table's name (default `events`). Its migrations table is named after it
    /// (`events_migrations`).
    pub fn events_table(mut self, name: impl Into<String>) -> Self {
        self.tables.events = name.into();
        self
    }

    /// The snapshots table's name (default `snapshots`).
    pub fn snapshots_table(mut self, name: impl Into<String>) -> Self {
        self.tables.snapshots = name.into();
        self
    }

    /// The tracking table's name (default `tracking`).
    pub fn tracking_table(mut self, name: impl Into<String>) -> Self {
        self.tables.tracking = name.into();
        self
    }

    /// At most how many events a stream read fetches per round trip (default 1024, at least 1).
    /// A chunk also ends after 8 MiB of payloads, so a read holds a bounded amount of memory
    /// however long the stream is.
    pub fn read_chunk(mut self, events: usize) -> Self {
        self.read_chunk = events.max(1);
        self
    }

    /// How many idle reader connections to keep open (default 4). File databases only; an
    /// in-memory database has a single connection.
    pub fn max_idle_readers(mut self, readers: usize) -> Self {
        self.max_idle_readers = readers;
        self
    }

    /// How many bytes of the database file reader connections map into memory
    /// (`PRAGMA mmap_size`; default 256 MiB, 0 turns it off). Mapping saves a copy per page
    /// read and roughly doubles replay speed on large stores. Turn it off if the file lives on a
    /// filesystem where another process may truncate it (SQLite's documentation explains the
    /// trade-off).
    pub fn mmap_size(mut self, bytes: u64) -> Self {
        self.mmap_size = bytes;
        self
    }

    /// The database file, or `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        match &self.location {
            Location::File(path) => Some(path),
            Location::Memory => None,
        }
    }

    /// The configured durability level.
    pub fn synchronous_mode(&self) -> Synchronous {
        self.synchronous
    }

    /// Opens the store: creates the database and its tables if needed and runs any pending
    /// schema migrations.
    ///
    /// Fails with [`Error::Config`] for an invalid table name, a claim lease under 100 ms or a
    /// database whose schema is newer than this build, and with [`Error::Backend`] when the file can't be opened, isn't
    /// an SQLite database, or stays locked past the busy timeout.
    pub async fn open(self) -> Result<SqliteStore> {
        self.tables.validate()?;
        if self.claim_lease < MIN_CLAIM_LEASE {
            return Err(Error::Config {
                backend: BACKEND,
                message: format!(
                    "a claim lease of {:?} is too short to renew in time: use at least {MIN_CLAIM_LEASE:?}",
                    self.claim_lease
                ),
            });
        }
        SqliteStore::open_with(self).await
    }
}
