//! The admin CLI (feature `cli`): look inside a store from the command line, through your own
//! program's registry, so every event decodes as your types say.
//!
//! Your program holds the event types, so the CLI is a few lines of it: name the aggregates
//! whose state `state` may show and the read models `projections` and `rebuild` work on, then
//! hand it the command line.
//!
//! ```no_run
//! use eventsource_core::admin::Admin;
//! # use eventsource_core::prelude::*;
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Event, Serialize, Deserialize, Debug, Clone)]
//! # struct Deposited { cents: u64 }
//! # #[derive(Aggregate, Default, Debug, Serialize)]
//! # #[aggregate(events(Deposited))]
//! # struct Account { cents: u64 }
//! # impl Apply<Deposited> for Account { fn apply(&mut self, e: &Deposited) { self.cents += e.cents; } }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     Admin::new("shop-admin")
//!         .default_store("sqlite://shop.db")
//!         .schema_lock(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME"))
//!         .aggregate::<Account>()
//!         .run_from_args()
//!         .await
//! }
//! ```
//!
//! ```text
//! shop-admin --store sqlite://shop.db streams            # every stream: type, version, last position
//! shop-admin stream 0191d4b2-…  [--raw]                  # a stream's events, decoded (or as stored)
//! shop-admin state 0191d4b2-… --at 3                      # an aggregate's state at version 3
//! shop-admin tail --follow --aggregate Account --event Deposited
//! shop-admin check                                        # the schema lock and the registry
//! shop-admin projections                                  # each read model's position and lag
//! shop-admin rebuild balances                             # with a progress bar and the time left
//! shop-admin export > log.jsonl                           # the log as JSON lines (or --stream ID)
//! shop-admin --store postgres://…/db import log.jsonl    # into another store, checked event for event
//! ```
//!
//! Output: tables on a terminal (coloured only there, and not with `NO_COLOR`), one JSON object
//! per line with `--json`. Errors go to stderr. The store comes from `--store`, else
//! `EVENTSOURCE_STORE`, else [`Admin::default_store`]; encrypted payloads need the master key
//! in `EVENTSOURCE_MASTER_KEY` (see [`AnyStore::codec`]).
//!
//! # Exit codes
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done; `check` found nothing wrong |
//! | 1 | `check` found problems (the lock or the registry disagree with the code), or an `import` does not read back as its file |
//! | 2 | the command line is wrong (unknown command or option) |
//! | 3 | the command could not run: the store can't be opened, a file can't be read, a stream or read model is unknown, an `import` is refused |
//!
//! The jobs live one per file: `args.rs` (the command line), `output.rs` (tables, colours, JSON
//! lines), `streams.rs` (`streams`, `stream`), `state.rs`, `tail.rs`, `check.rs`,
//! `projections.rs` (`projections`, `rebuild`), `export.rs`, `import.rs`, and `log.rs` (reading
//! the log page by page).

mod args;
mod catalog;
mod check;
mod export;
mod import;
mod log;
mod output;
mod projections;
mod record;
mod state;
mod streams;
mod tail;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use serde::Serialize;

pub use self::import::ImportError;
pub use self::projections::ReadModel;
use self::state::StateLoader;
use crate::domain::aggregate::Aggregate;
use crate::error::Error;
use crate::persistence::codec::{MasterKey, PayloadCodec};
use crate::persistence::store::EventStore;
use crate::projection::ProjectionError;
use crate::stores::AnyStore;

/// Exit code: `check` found problems, or an import does not read back as its file.
pub const EXIT_PROBLEMS: u8 = 1;
/// Exit code: the command line is wrong.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the command could not run.
pub const EXIT_CANNOT_RUN: u8 = 3;

/// Why an admin command failed. Each one maps to an [exit code](self#exit-codes).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The store failed, or refused what was asked (exit code 3).
    #[error(transparent)]
    Store(#[from] Error),
    /// A file or stdout could not be read or written (exit code 3).
    #[error("{context}: {source}")]
    Io {
        /// What was being read or written.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// The command names something that isn't there (a stream, an aggregate type, a read
    /// model), or lacks what it needs (exit code 3).
    #[error("{0}")]
    Refused(String),
    /// A rebuild failed (exit code 3).
    #[error(transparent)]
    Projection(Box<ProjectionError>),
    /// An import was refused, or does not read back as its file (exit code 3, or 1 for a
    /// mismatch).
    #[error(transparent)]
    Import(#[from] ImportError),
    /// `check` found problems (exit code 1); the report was printed.
    #[error("{0}")]
    Problems(String),
}

impl From<ProjectionError> for AdminError {
    fn from(error: ProjectionError) -> Self {
        AdminError::Projection(Box::new(error))
    }
}

impl AdminError {
    /// The exit code this failure ends the program with.
    pub fn exit_code(&self) -> u8 {
        match self {
            AdminError::Problems(_) => EXIT_PROBLEMS,
            AdminError::Import(error) if error.is_mismatch() => EXIT_PROBLEMS,
            _ => EXIT_CANNOT_RUN,
        }
    }

    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| AdminError::Io { context, source }
    }
}

/// What a command returns.
type Outcome = Result<(), AdminError>;

/// Makes the read models a store keeps (see [`Admin::projection`]).
type ReadModelsOf = Box<dyn Fn(&AnyStore) -> Option<ReadModel> + Send + Sync>;

/// A read model as registered: its label and how to get it for a store.
struct Registered {
    label: String,
    make: ReadModelsOf,
}

/// The admin CLI of a program: what it may show and rebuild, and the command line it reads.
/// See the [module docs](self).
pub struct Admin {
    name: &'static str,
    default_store: Option<String>,
    lock: Option<(PathBuf, String)>,
    aggregates: Vec<StateLoader>,
    read_models: Vec<Registered>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("name", &self.name)
            .field("default_store", &self.default_store)
            .field("lock", &self.lock)
            .field(
                "aggregates",
                &self.aggregates.iter().map(|a| a.name).collect::<Vec<_>>(),
            )
            .field(
                "read_models",
                &self
                    .read_models
                    .iter()
                    .map(|r| r.label.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Admin {
    /// An admin CLI named `name` (the program's name in its help), knowing no aggregates and
    /// no read models yet; every event in the registry decodes.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            default_store: None,
            lock: None,
            aggregates: Vec::new(),
            read_models: Vec::new(),
        }
    }

    /// The store to open when neither `--store` nor `EVENTSOURCE_STORE` names one.
    pub fn default_store(mut self, url: impl Into<String>) -> Self {
        self.default_store = Some(url.into());
        self
    }

    /// Where `check` finds the schema lock: the directory holding `events.lock` and the package
    /// whose events it locks (pass `env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME")` of the
    /// crate that defines the events). `check --lock DIR` overrides the directory.
    pub fn schema_lock(mut self, dir: impl Into<PathBuf>, package: impl Into<String>) -> Self {
        self.lock = Some((dir.into(), package.into()));
        self
    }

    /// Lets `state` show aggregates of type `A` (streams of category `A::NAME`), replayed
    /// through a [`Repository`](crate::Repository) to any version: as JSON with `--json`,
    /// as `Debug` on a terminal.
    pub fn aggregate<A>(mut self) -> Self
    where
        A: Aggregate + Serialize + std::fmt::Debug,
    {
        self.aggregates.push(StateLoader::of::<A>());
        self
    }

    /// A read model for `projections` and `rebuild`, under `label`: `make` gives it for the
    /// store at hand ([`ReadModel::new`]: the store, the projection, and how to clear its
    /// rows), or `None` where that store keeps none (an in-memory read model lives in the
    /// process that runs it; there is nothing to rebuild from here).
    pub fn projection<F>(mut self, label: impl Into<String>, make: F) -> Self
    where
        F: Fn(&AnyStore) -> Option<ReadModel> + Send + Sync + 'static,
    {
        self.read_models.push(Registered {
            label: label.into(),
            make: Box::new(make),
        });
        self
    }

    /// Reads the command line and runs the command; returns the exit code (see the
    /// [module docs](self#exit-codes)). Errors are printed to stderr.
    pub async fn run_from_args(self) -> ExitCode {
        self.run_with(std::env::args_os()).await
    }

    /// [`run_from_args`](Self::run_from_args) with the arguments given (the first one is the
    /// program's name).
    pub async fn run_with<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let command = args::Cli::command_named(self.name);
        let cli = match command
            .try_get_matches_from(args)
            .and_then(|matches| <args::Cli as clap::FromArgMatches>::from_arg_matches(&matches))
        {
            Ok(cli) => cli,
            Err(error) => {
                let _ = error.print();
                return ExitCode::from(match error.use_stderr() {
                    true => EXIT_USAGE,
                    false => 0,
                });
            }
        };
        match self.run(cli).await {
            Ok(()) => ExitCode::SUCCESS,
            // The reader went away (`bank-admin tail | head`): nothing left to say.
            Err(AdminError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::BrokenPipe =>
            {
                ExitCode::SUCCESS
            }
            Err(error) => {
                let code = error.exit_code();
                if !matches!(error, AdminError::Problems(_)) {
                    eprintln!("error: {error}");
                    let mut source = std::error::Error::source(&error);
                    while let Some(cause) = source {
                        eprintln!("  because: {cause}");
                        source = cause.source();
                    }
                }
                ExitCode::from(code)
            }
        }
    }

    async fn run(self, cli: args::Cli) -> Outcome {
        let out = output::Output::stdout(cli.json);
        match &cli.command {
            args::Command::Check(check) => return check::run(&out, self.lock.as_ref(), check),
            args::Command::Catalog(catalog) => {
                return catalog::write(self.lock.as_ref().map(|(dir, _)| dir), catalog);
            }
            _ => {}
        }
        let url = cli
            .store
            .clone()
            .or_else(|| self.default_store.clone())
            .ok_or_else(|| {
                AdminError::Refused(
                    "no store: pass `--store URL` or set EVENTSOURCE_STORE".to_owned(),
                )
            })?;
        let store = AnyStore::open(&url).await?;
        let master = match &cli.master_key {
            Some(hex) => Some(MasterKey::from_hex(hex).map_err(|e| {
                AdminError::Refused(format!("EVENTSOURCE_MASTER_KEY / --master-key: {e}"))
            })?),
            None => None,
        };
        let codec = store.codec(master)?;
        let cx = Context {
            out,
            events: store.events(),
            store,
            codec,
        };
        match cli.command {
            args::Command::Streams(a) => streams::list(&cx, a).await,
            args::Command::Stream(a) => streams::show(&cx, a).await,
            args::Command::State(a) => state::show(&cx, &self.aggregates, a).await,
            args::Command::Tail(a) => tail::run(&cx, a).await,
            args::Command::Projections => projections::status(&cx, &self.read_models).await,
            args::Command::Rebuild(a) => projections::rebuild(&cx, self.read_models, a).await,
            args::Command::Export(a) => export::run(&cx, a).await,
            args::Command::Import(a) => import::run(&cx, a).await,
            args::Command::Check(_) | args::Command::Catalog(_) => Ok(()),
        }
    }
}

/// What every command that reads a store works with.
struct Context {
    out: output::Output,
    store: AnyStore,
    events: Arc<dyn EventStore>,
    codec: PayloadCodec,
}
