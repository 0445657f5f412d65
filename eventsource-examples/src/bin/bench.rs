//! The benchmark: the standard workloads (W1–W8, W3-large, W3-interleaved) on every store,
//! beside the raw engine in the same run (in the store's row shape and at the engine's best).
//! Build it in release:
//!
//! ```text
//! cargo run --release -p eventsource-examples --bin bench -- --store sqlite
//! cargo run --release -p eventsource-examples --bin bench -- --store memory --store postgres --json
//! cargo run --release -p eventsource-examples --bin bench -- --quick          # smoke run, all stores
//! cargo run --release -p eventsource-examples --features zstd --bin bench -- --only W2,W3,W4 --codecs
//! cargo run --release -p eventsource-examples --bin bench -- --store sqlite --only W1,W3 --prefill 10_000_000
//! ```
//!
//! Without `--store` it runs memory, sqlite and postgres (skipping PostgreSQL with a message when
//! the server is unreachable). Run with `--help` for the size flags (clap reads them). Results: see
//! `BENCHMARKS.md`.
//!
//! `EVENTSOURCE_BENCH_NOTIFY=off` runs the PostgreSQL store with `PostgresOptions::notify(false)`
//! (appends send no `NOTIFY`), to compare what wake-ups cost.

use std::process::ExitCode;

use clap::{ArgAction, Parser};
use eventsource_examples::bench::Figure;
use eventsource_examples::bench::figure::table;
use eventsource_examples::bench::{
    BenchStore, OpenError, Report, Sizes, StoreSpec, Workload, workloads,
};

/// The exit code when a store asked for by name is unreachable (a test may skip on it).
const UNREACHABLE: u8 = 3;

#[derive(Debug)]
struct Args {
    stores: Vec<StoreSpec>,
    explicit_stores: bool,
    json: bool,
    sizes: Sizes,
    only: Vec<Workload>,
    codecs: bool,
}

/// The command line as clap reads it; [`parse_args`] turns it into [`Args`].
#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "The standard workloads (W1-W8, W3-large, W3-interleaved) on every store, beside the raw engine in the same run.",
    // A flag given twice keeps its last value, as the size flags always did.
    args_override_self = true
)]
struct Cli {
    /// Where to run: memory, sqlite (a temporary file), postgres (EVENTSOURCE_POSTGRES_URL,
    /// default postgres://postgres@127.0.0.1:5432/test; runs in a schema bench_PID it drops
    /// after), a sqlite://FILE that does not exist yet, a postgres:// URL, nats
    /// (EVENTSOURCE_NATS_URL, default nats://127.0.0.1:14222), nats-cluster (the first of
    /// EVENTSOURCE_NATS_CLUSTER_URLS, replicas 3), a nats://HOST:PORT[?replicas=N] URL of one
    /// server (each NATS run in streams bench-PID-… it deletes after; servers: .ci/nats start),
    /// or all. Repeat or separate with commas (default: memory,sqlite,postgres, postgres
    /// skipped if unreachable).
    /// EVENTSOURCE_BENCH_NOTIFY=off: postgres appends send no NOTIFY (wake-ups off).
    #[arg(long = "store", value_name = "STORE", value_delimiter = ',', action = ArgAction::Append)]
    stores: Vec<String>,
    /// One JSON object per figure on stdout (the table then goes to stderr).
    #[arg(long)]
    json: bool,
    /// Tiny sizes, for a smoke run (the size flags still override them).
    #[arg(long)]
    quick: bool,
    /// Run only these workloads (W1,W2,W3,W3-large,W3-interleaved,W4,W5,W6,W7,W8; W8 runs W2
    /// too when it isn't listed, for its ratio).
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        action = ArgAction::Append,
        value_parser = workload
    )]
    only: Vec<Workload>,
    /// Then run W2, W3 and W4 (those --only lists) once per payload codec setting (json,
    /// msgpack, json+lz4, json+zstd with the `zstd` feature, json+aes, msgpack+lz4+aes), each on
    /// a fresh store of the same kind, with ratios to the json setting and the payload (and
    /// SQLite database) bytes stored per event.
    #[arg(long)]
    codecs: bool,
    #[command(flatten)]
    sizes: SizeFlags,
}

/// The size flags: each overrides one of [`Sizes`] (the standard sizes, or `--quick`'s).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Sizes (--quick sets small ones; a flag overrides either)")]
struct SizeFlags {
    /// W1: commands on the one aggregate (default 10000).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    w1_commands: Option<u64>,
    /// W1 default: commands run back to back (default 1000, then grown by batched appends).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    w1_default_commands: Option<u64>,
    /// W2: new aggregates (default 1000).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    w2_aggregates: Option<u64>,
    /// W2: events per aggregate (default 10).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    w2_events: Option<u64>,
    /// W3: events in the replayed stream (default 10000).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    w3_events: Option<u64>,
    /// W3: replays (default 20).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    w3_runs: Option<u64>,
    /// W3-large: events in the long stream (default 1000000).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    w3_large_events: Option<u64>,
    /// W3-interleaved: events in its store, written round robin (default 1000000, rounded down
    /// to whole rounds).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    interleaved_events: Option<u64>,
    /// W3-interleaved: the streams they are spread over (default 2000).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    interleaved_streams: Option<u64>,
    /// Fill the store with N events (rounded down to whole rounds) over --prefill-streams
    /// streams, written round robin, before the workloads run, to measure W1 and W3 on a large
    /// store (default 0: none).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    prefill: Option<u64>,
    /// The streams --prefill spreads its events over (default 10000).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    prefill_streams: Option<u64>,
    /// W4: events in the log it reads (default 100000).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    w4_events: Option<u64>,
    /// W4: events per page (default 1000).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    w4_page: Option<u64>,
    /// W5: concurrent writers (default 4).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    w5_writers: Option<u64>,
    /// W5: commands per writer (default 250).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    w5_commands: Option<u64>,
    /// W6: the log its projection catches up over, from zero (default 1000000).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    w6_events: Option<u64>,
    /// W7: events appended one by one while its projector runs (default 10000).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    w7_events: Option<u64>,
    /// W7: microseconds between appends (default 1000).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    w7_interval_us: Option<u64>,
    /// W8: transfers requested in each of its live and catch-up runs (default 2000).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    w8_transfers: Option<u64>,
    /// W8: the accounts they move money between (default 20).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    w8_accounts: Option<u64>,
    /// W8: concurrent requesters (default 4).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    w8_requesters: Option<u64>,
    /// Raw engine: single-row transactions (default 2000).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    raw_single: Option<u64>,
    /// Events per append when writing long streams (default 10000).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    write_batch: Option<u64>,
    /// W1 snapshots: a snapshot every N events (default 100).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    snapshot_every: Option<u64>,
    /// W1 cache: its capacity in aggregates (default 1000).
    #[arg(long, value_name = "N", value_parser = whole_number)]
    cache_capacity: Option<u64>,
}

impl SizeFlags {
    /// `sizes` with every flag given put over it (counts that must be positive raised to 1).
    fn apply(&self, sizes: &mut Sizes) {
        let set = |size: &mut u64, flag: Option<u64>, least: u64| {
            if let Some(value) = flag {
                *size = value.max(least);
            }
        };
        set(&mut sizes.w1_commands, self.w1_commands, 0);
        set(&mut sizes.w1_default_commands, self.w1_default_commands, 0);
        set(&mut sizes.w2_aggregates, self.w2_aggregates, 0);
        set(&mut sizes.w2_events, self.w2_events, 1);
        set(&mut sizes.w3_events, self.w3_events, 1);
        set(&mut sizes.w3_runs, self.w3_runs, 1);
        set(&mut sizes.w3_large_events, self.w3_large_events, 1);
        set(&mut sizes.interleaved_events, self.interleaved_events, 1);
        set(&mut sizes.interleaved_streams, self.interleaved_streams, 1);
        set(&mut sizes.prefill, self.prefill, 0);
        set(&mut sizes.prefill_streams, self.prefill_streams, 1);
        set(&mut sizes.w4_events, self.w4_events, 0);
        set(&mut sizes.w4_page, self.w4_page, 1);
        set(&mut sizes.w5_writers, self.w5_writers, 1);
        set(&mut sizes.w5_commands, self.w5_commands, 0);
        set(&mut sizes.w6_events, self.w6_events, 0);
        set(&mut sizes.w7_events, self.w7_events, 1);
        set(&mut sizes.w7_interval_us, self.w7_interval_us, 1);
        set(&mut sizes.w8_transfers, self.w8_transfers, 1);
        set(&mut sizes.w8_accounts, self.w8_accounts, 2);
        set(&mut sizes.w8_requesters, self.w8_requesters, 1);
        set(&mut sizes.raw_single, self.raw_single, 0);
        set(&mut sizes.write_batch, self.write_batch, 1);
        set(&mut sizes.snapshot_every, self.snapshot_every, 1);
        if let Some(capacity) = self.cache_capacity {
            sizes.cache_capacity = usize::try_from(capacity.max(1)).unwrap_or(usize::MAX);
        }
    }
}

/// A whole number, `_` allowed between digits (`10_000`).
fn whole_number(text: &str) -> Result<u64, String> {
    text.replace('_', "")
        .parse()
        .map_err(|_| format!("expected a whole number, not `{text}`"))
}

/// A workload's label (`W3-large`), case-insensitively.
fn workload(text: &str) -> Result<Workload, String> {
    Workload::parse(text).ok_or_else(|| format!("unknown workload `{text}`"))
}

fn parse_args() -> Result<Args, String> {
    let cli = Cli::parse();
    let mut sizes = if cli.quick {
        Sizes::quick()
    } else {
        Sizes::standard()
    };
    cli.sizes.apply(&mut sizes);
    let mut stores = Vec::new();
    for store in cli.stores.iter().filter(|s| !s.is_empty()) {
        if store == "all" {
            stores.extend(default_stores());
        } else {
            stores.push(StoreSpec::parse(store)?);
        }
    }
    let explicit_stores = !cli.stores.is_empty();
    if stores.is_empty() {
        stores = default_stores();
    }
    let compared = [Workload::W2, Workload::W3, Workload::W4];
    if cli.codecs && !cli.only.is_empty() && !compared.iter().any(|w| cli.only.contains(w)) {
        return Err(
            "`--codecs` compares W2, W3 and W4: list at least one of them in `--only`".to_owned(),
        );
    }
    Ok(Args {
        stores,
        explicit_stores,
        json: cli.json,
        sizes,
        only: cli.only,
        codecs: cli.codecs,
    })
}

fn default_stores() -> Vec<StoreSpec> {
    vec![
        StoreSpec::Memory,
        StoreSpec::Sqlite(None),
        StoreSpec::Postgres(eventsource_examples::bench::default_postgres_url()),
    ]
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    if args.stores.len() > 1 && std::env::var_os(CHILD).is_none() {
        return run_children(&args);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bench: cannot start the Tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args))
}

/// Set in the environment of the per-store child processes.
const CHILD: &str = "EVENTSOURCE_BENCH_CHILD";

/// With several stores, each runs in a child process of its own, so one store's memory (the
/// memory store's million events, the allocator's retained heap) does not show in the next
/// store's resident-set figures. The children print JSON lines; this process gathers them.
fn run_children(args: &Args) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => {
            eprintln!("bench: cannot find its own executable: {error}");
            return ExitCode::FAILURE;
        }
    };
    // The original arguments without the store selection.
    let mut forwarded = Vec::new();
    let mut original = std::env::args().skip(1);
    while let Some(arg) = original.next() {
        if arg == "--store" {
            original.next();
        } else if !arg.starts_with("--store=") && arg != "--json" {
            forwarded.push(arg);
        }
    }
    let mut figures = Vec::new();
    let mut code = ExitCode::SUCCESS;
    for spec in &args.stores {
        let output = std::process::Command::new(&exe)
            .args(&forwarded)
            .args(["--json", "--store", &spec.to_arg()])
            .env(CHILD, "1")
            .stderr(std::process::Stdio::inherit())
            .output();
        let output = match output {
            Ok(output) => output,
            Err(error) => {
                eprintln!("bench: cannot run {}: {error}", exe.display());
                return ExitCode::FAILURE;
            }
        };
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let parsed = serde_json::from_str(line)
                .ok()
                .and_then(|value| Figure::from_json(&value));
            match parsed {
                Some(figure) => {
                    if args.json {
                        println!("{line}");
                    }
                    figures.push(figure);
                }
                None => eprintln!("bench: unexpected output from the child: {line}"),
            }
        }
        match output.status.code() {
            Some(0) => {}
            Some(c) if c == i32::from(UNREACHABLE) => {
                if args.explicit_stores {
                    code = ExitCode::from(UNREACHABLE);
                } else {
                    eprintln!("bench: skipped {}", spec.to_arg());
                }
            }
            _ => code = ExitCode::FAILURE,
        }
    }
    print_table(&figures, args.json);
    code
}

fn print_table(figures: &[Figure], json: bool) {
    let mut table = table(figures);
    if let Some(codecs) = eventsource_examples::bench::codecs::table(figures) {
        table = format!("{table}\n{codecs}");
    }
    if json {
        eprintln!("\n{table}");
    } else {
        println!("\n{table}");
    }
}

async fn run(args: Args) -> ExitCode {
    let mut report = Report {
        json: args.json,
        ..Report::default()
    };
    eprintln!("bench: sizes {:?}", args.sizes);
    let mut code = ExitCode::SUCCESS;
    for spec in &args.stores {
        let mut target = match BenchStore::open(spec).await {
            Ok(target) => target,
            Err(OpenError::Unreachable(message))
                if !args.explicit_stores && std::env::var_os(CHILD).is_none() =>
            {
                eprintln!("bench: skipping: {message}");
                continue;
            }
            Err(OpenError::Unreachable(message)) => {
                eprintln!("bench: {message}");
                code = ExitCode::from(UNREACHABLE);
                continue;
            }
            Err(OpenError::Failed(error)) => {
                eprintln!("bench: cannot open {spec:?}: {error}");
                code = ExitCode::FAILURE;
                continue;
            }
        };
        eprintln!("bench: {} …", target.name);
        let outcome = workloads::run(
            &mut target,
            &args.sizes,
            &args.only,
            args.codecs,
            &mut report,
        )
        .await;
        let store = target.name;
        if let Err(error) = target.clean_up().await {
            eprintln!("bench: cleaning up after {store}: {error}");
        }
        if let Err(error) = outcome {
            eprintln!("bench: {store} failed: {error}");
            code = ExitCode::FAILURE;
        }
    }
    if std::env::var_os(CHILD).is_none() {
        print_table(&report.figures, args.json);
    }
    code
}
