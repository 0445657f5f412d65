//! The benchmark: the standard workloads (W1–W8, W3-large) on every store, beside the raw
//! engine in the same run. Build it in release:
//!
//! ```text
//! cargo run --release -p eventsource-examples --bin bench -- --store sqlite
//! cargo run --release -p eventsource-examples --bin bench -- --store memory --store postgres --json
//! cargo run --release -p eventsource-examples --bin bench -- --quick          # smoke run, all stores
//! cargo run --release -p eventsource-examples --features zstd --bin bench -- --only W2,W3,W4 --codecs
//! ```
//!
//! Without `--store` it runs memory, sqlite and postgres (skipping PostgreSQL with a message when
//! the server is unreachable). Run with `--help` for the size flags. Results: see `BENCHMARKS.md`.
//!
//! `EVENTSOURCE_BENCH_NOTIFY=off` runs the PostgreSQL store with `PostgresOptions::notify(false)`
//! (appends send no `NOTIFY`), to compare what wake-ups cost.

use std::process::ExitCode;

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

const USAGE: &str =
    "usage: bench [--store STORE]... [--json] [--quick] [--only W1,W3,...] [--codecs] [size flags]

STORE: memory, sqlite (a temporary file), postgres (EVENTSOURCE_POSTGRES_URL, default
       postgres://postgres@127.0.0.1:5432/test; runs in a schema bench_<pid> it drops after),
       a sqlite://FILE that does not exist yet, or a postgres:// URL. Repeat or separate with
       commas; default: memory,sqlite,postgres (postgres skipped if unreachable).
       EVENTSOURCE_BENCH_NOTIFY=off: postgres appends send no NOTIFY (wake-ups off).
--json         one JSON object per figure on stdout (the table then goes to stderr)
--quick        tiny sizes, for a smoke run
--only LIST    run only these workloads (W1,W2,W3,W3-large,W4,W5,W6,W7,W8;
               W8 runs W2 too when it isn't listed, for its ratio)
--codecs       then run W2, W3 and W4 (those --only lists) once per payload codec setting
               (json, msgpack, json+lz4, json+zstd with the `zstd` feature, json+aes,
               msgpack+lz4+aes), each on a fresh store of the same kind, with ratios to the
               json setting and the payload (and SQLite database) bytes stored per event

size flags (defaults in brackets; --quick sets small ones, later flags override):
--w1-commands N [10000]   --w1-default-commands N [1000, then grown by batched appends]
--w2-aggregates N [1000]  --w2-events N [10]
--w3-events N [10000]     --w3-runs N [20]          --w3-large-events N [1000000]
--w4-events N [100000]    --w4-page N [1000]
--w5-writers N [4]        --w5-commands N [250, per writer]
--w6-events N [1000000, the log W6's projection catches up over, from zero]
--w7-events N [10000, appended one by one while W7's projector runs]
--w7-interval-us N [1000, between W7's appends]
--w8-transfers N [2000, requested in each of W8's live and catch-up runs]
--w8-accounts N [20, the accounts they move money between]
--w8-requesters N [4, concurrent requesters]
--raw-single N [2000]     --write-batch N [10000, events per append when writing long streams]
--snapshot-every N [100, W1 snapshots]           --cache-capacity N [1000, W1 cache]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        stores: Vec::new(),
        explicit_stores: false,
        json: false,
        sizes: Sizes::standard(),
        only: Vec::new(),
        codecs: false,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.iter().any(|a| a == "--quick") {
        args.sizes = Sizes::quick();
    }
    let mut iter = raw.into_iter();
    while let Some(arg) = iter.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let value = |iter: &mut std::vec::IntoIter<String>| {
            inline
                .clone()
                .or_else(|| iter.next())
                .ok_or_else(|| format!("`{flag}` needs a value"))
        };
        let number = |iter: &mut std::vec::IntoIter<String>| -> Result<u64, String> {
            let text = value(iter)?;
            text.replace('_', "")
                .parse()
                .map_err(|_| format!("`{flag} {text}`: expected a whole number"))
        };
        let sizes = &mut args.sizes;
        match flag.as_str() {
            "--quick" => {}
            "--json" => args.json = true,
            "--codecs" => args.codecs = true,
            "--store" => {
                args.explicit_stores = true;
                for store in value(&mut iter)?.split(',').filter(|s| !s.is_empty()) {
                    if store == "all" {
                        args.stores.extend(default_stores());
                    } else {
                        args.stores.push(StoreSpec::parse(store)?);
                    }
                }
            }
            "--only" => {
                for w in value(&mut iter)?.split(',').filter(|s| !s.is_empty()) {
                    args.only
                        .push(Workload::parse(w).ok_or_else(|| format!("unknown workload `{w}`"))?);
                }
            }
            "--w1-commands" => sizes.w1_commands = number(&mut iter)?,
            "--w1-default-commands" => sizes.w1_default_commands = number(&mut iter)?,
            "--w2-aggregates" => sizes.w2_aggregates = number(&mut iter)?,
            "--w2-events" => sizes.w2_events = number(&mut iter)?.max(1),
            "--w3-events" => sizes.w3_events = number(&mut iter)?.max(1),
            "--w3-runs" => sizes.w3_runs = number(&mut iter)?.max(1),
            "--w3-large-events" => sizes.w3_large_events = number(&mut iter)?.max(1),
            "--w4-events" => sizes.w4_events = number(&mut iter)?,
            "--w4-page" => sizes.w4_page = number(&mut iter)?.max(1),
            "--w5-writers" => sizes.w5_writers = number(&mut iter)?.max(1),
            "--w5-commands" => sizes.w5_commands = number(&mut iter)?,
            "--w6-events" => sizes.w6_events = number(&mut iter)?,
            "--w7-events" => sizes.w7_events = number(&mut iter)?.max(1),
            "--w7-interval-us" => sizes.w7_interval_us = number(&mut iter)?.max(1),
            "--w8-transfers" => sizes.w8_transfers = number(&mut iter)?.max(1),
            "--w8-accounts" => sizes.w8_accounts = number(&mut iter)?.max(2),
            "--w8-requesters" => sizes.w8_requesters = number(&mut iter)?.max(1),
            "--raw-single" => sizes.raw_single = number(&mut iter)?,
            "--write-batch" => sizes.write_batch = number(&mut iter)?.max(1),
            "--snapshot-every" => sizes.snapshot_every = number(&mut iter)?.max(1),
            "--cache-capacity" => {
                sizes.cache_capacity =
                    usize::try_from(number(&mut iter)?.max(1)).unwrap_or(usize::MAX)
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument `{other}`\n\n{USAGE}")),
        }
    }
    if args.stores.is_empty() {
        args.stores = default_stores();
    }
    let compared = [Workload::W2, Workload::W3, Workload::W4];
    if args.codecs && !args.only.is_empty() && !compared.iter().any(|w| args.only.contains(w)) {
        return Err(
            "`--codecs` compares W2, W3 and W4: list at least one of them in `--only`".to_owned(),
        );
    }
    Ok(args)
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
        figures: Vec::new(),
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
