//! The admin CLI's command line, as clap derives it.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::persistence::position::Position;

/// Look inside an event store: its streams, its log, its schema lock and its read models.
#[derive(Debug, Parser)]
#[command(long_about = None)]
pub(super) struct Cli {
    /// The store: sqlite://FILE (or a bare path), postgres://USER@HOST:PORT/DB[?schema=NAME],
    /// memory://.
    #[arg(long, global = true, env = "EVENTSOURCE_STORE")]
    pub(super) store: Option<String>,
    /// The master key (64 hex digits) that wraps the store's payload keys: needed to show
    /// encrypted payloads.
    #[arg(
        long,
        global = true,
        env = "EVENTSOURCE_MASTER_KEY",
        hide_env_values = true
    )]
    pub(super) master_key: Option<String>,
    /// One JSON object per line, for scripts, instead of tables.
    #[arg(long, global = true)]
    pub(super) json: bool,
    #[command(subcommand)]
    pub(super) command: Command,
}

impl Cli {
    /// The command line, named as the program that embeds it.
    pub(super) fn command_named(name: &'static str) -> clap::Command {
        Self::command().name(name).bin_name(name)
    }
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
    /// Lists every stream: its aggregate type, version, last position and event.
    Streams(StreamsArgs),
    /// Shows a stream's events, decoded through the registry (or as stored with --raw).
    Stream(StreamArgs),
    /// Shows an aggregate's state, replayed to a version.
    State(StateArgs),
    /// Prints the log from a position; --follow waits for new events.
    Tail(TailArgs),
    /// Checks the schema lock and the event registry. Exit code 0: all good; 1: problems
    /// found; 3: could not check.
    Check(CheckArgs),
    /// Each read model's tracking position and how many events it is behind.
    Projections,
    /// Clears a read model and rebuilds it from the first event, with a progress bar.
    Rebuild(RebuildArgs),
    /// Writes a stream or the whole log as JSON lines, every field needed to re-create it.
    Export(ExportArgs),
    /// Appends exported JSON lines to the store (streams, versions, ids, metadata, payloads),
    /// then checks them event for event against the file.
    Import(ImportArgs),
    /// Writes the event catalog: every aggregate, event, version, field and upcaster step, as
    /// Markdown or as one HTML page. Needs no store.
    Catalog(CatalogArgs),
}

#[derive(Debug, Args)]
pub(super) struct StreamsArgs {
    /// Only streams of this aggregate type (category); repeat for several.
    #[arg(long = "aggregate", value_name = "TYPE")]
    pub(super) aggregates: Vec<String>,
}

#[derive(Debug, Args)]
pub(super) struct StreamArgs {
    /// The stream id.
    pub(super) stream: uuid::Uuid,
    /// Show the stored bytes (base64), metadata and envelope as they are, not decoded.
    #[arg(long)]
    pub(super) raw: bool,
}

#[derive(Debug, Args)]
pub(super) struct StateArgs {
    /// The stream id (the aggregate's id).
    pub(super) stream: uuid::Uuid,
    /// The version to replay to (default: the latest).
    #[arg(long, value_name = "VERSION")]
    pub(super) at: Option<u64>,
    /// The aggregate type, when the stream's events carry no category.
    #[arg(long, value_name = "TYPE")]
    pub(super) aggregate: Option<String>,
}

#[derive(Debug, Args)]
pub(super) struct TailArgs {
    /// Start after this log position (default: the start of the log).
    #[arg(long, value_name = "POSITION", default_value_t = 0)]
    pub(super) after: u64,
    /// Start at the end of the log: only events that arrive from now on (with --follow).
    #[arg(long, conflicts_with = "after")]
    pub(super) new: bool,
    /// Keep waiting for new events (woken by the store's commits, or polling).
    #[arg(long, short)]
    pub(super) follow: bool,
    /// Only events of this aggregate type (category); repeat for several.
    #[arg(long = "aggregate", value_name = "TYPE")]
    pub(super) aggregates: Vec<String>,
    /// Only events with this name; repeat for several.
    #[arg(long = "event", value_name = "NAME")]
    pub(super) events: Vec<String>,
    /// Stop after this many events.
    #[arg(long, value_name = "N")]
    pub(super) limit: Option<u64>,
    /// Show the stored bytes instead of the decoded event.
    #[arg(long)]
    pub(super) raw: bool,
}

impl TailArgs {
    pub(super) fn after(&self) -> Position {
        Position::new(self.after)
    }
}

#[derive(Debug, Args)]
pub(super) struct CheckArgs {
    /// The directory holding events.lock (default: the one the program was built with).
    #[arg(long, value_name = "DIR")]
    pub(super) lock: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct CatalogArgs {
    /// Markdown, or one self-contained HTML page.
    #[arg(long, value_enum, default_value_t = CatalogFormat::Markdown)]
    pub(super) format: CatalogFormat,
    /// The file to write (default: stdout).
    #[arg(long, short, value_name = "FILE")]
    pub(super) out: Option<PathBuf>,
    /// The directory holding events.lock, whose older versions' fields the catalog shows
    /// (default: the one the program was built with).
    #[arg(long, value_name = "DIR")]
    pub(super) lock: Option<PathBuf>,
}

/// The catalog's output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum CatalogFormat {
    /// Markdown, for a repository's docs.
    Markdown,
    /// One HTML page with its styles inline.
    Html,
}

#[derive(Debug, Args)]
pub(super) struct RebuildArgs {
    /// The read model: its label or its tracking name, as `projections` lists them.
    pub(super) name: String,
}

#[derive(Debug, Args)]
pub(super) struct ExportArgs {
    /// Only this stream (default: the whole log, in log order).
    #[arg(long, value_name = "ID")]
    pub(super) stream: Option<uuid::Uuid>,
    /// Write to this file instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub(super) output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct ImportArgs {
    /// The JSON lines `export` wrote.
    pub(super) file: PathBuf,
    /// Events per atomic append (default 500).
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub(super) batch: usize,
}
