//! Writes the bank's event catalog: every aggregate, event, version, field and upcaster step of
//! the bank domain, from the registry and the bank's schema lock (`eventsource-examples/events.lock`).
//!
//! ```text
//! cargo run -p eventsource-examples --bin bank-catalog -- --format markdown --out docs/catalog/bank.md
//! cargo run -p eventsource-examples --bin bank-catalog -- --format html --out bank.html
//! cargo run -p eventsource-examples --bin bank-catalog -- --lock path/to/events.lock
//! ```
//! Without `--out` it writes to stdout. The lock is built into the program; `--lock FILE` reads
//! another one.

use std::io::Write as _;
use std::process::ExitCode;

use eventsource_core::Aggregate;
use eventsource_core::catalog::{self, Catalog};
use eventsource_core::schema::Lock;
use eventsource_examples::bank::BankAccount;
use eventsource_examples::transfers::MoneyTransfer;

/// The bank's schema lock, as it was when the program was built.
const BANK_LOCK: &str = include_str!("../../events.lock");

const USAGE: &str = "usage: bank-catalog [--format markdown|html] [--out FILE] [--lock FILE]

  --format  markdown (the default) or html: one self-contained page
  --out     the file to write (default: stdout)
  --lock    the schema lock to read older versions' fields from
            (default: the bank's events.lock, built into the program)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Markdown,
    Html,
}

#[derive(Debug)]
struct Args {
    format: Format,
    out: Option<String>,
    lock: Option<String>,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("{message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bank-catalog: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `Ok(None)`: help was asked for.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        format: Format::Markdown,
        out: None,
        lock: None,
    };
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or_else(|| format!("`{flag}` needs a value"));
        match arg.as_str() {
            "--format" => {
                parsed.format = match value("--format")?.as_str() {
                    "markdown" | "md" => Format::Markdown,
                    "html" => Format::Html,
                    other => {
                        return Err(format!(
                            "unknown format `{other}`: use `markdown` or `html`"
                        ));
                    }
                }
            }
            "--out" => parsed.out = Some(value("--out")?),
            "--lock" => parsed.lock = Some(value("--lock")?),
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(Some(parsed))
}

fn run(args: &Args) -> Result<(), String> {
    link_bank_registrations();
    let lock = match &args.lock {
        Some(path) => catalog::read_lock(path).map_err(|e| e.to_string())?,
        None => Lock::parse(BANK_LOCK)
            .map_err(|e| format!("the built-in bank lock does not parse: {e}"))?,
    };
    let catalog = Catalog::from_registry(Some(&lock)).map_err(|e| e.to_string())?;
    let text = match args.format {
        Format::Markdown => catalog.to_markdown(),
        Format::Html => catalog.to_html(),
    };
    match &args.out {
        Some(path) => {
            if let Some(dir) = std::path::Path::new(path).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            std::fs::write(path, text).map_err(|e| format!("cannot write {path}: {e}"))
        }
        None => {
            // A closed pipe (`bank-catalog | head`) is not an error worth a message.
            let _ = std::io::stdout().write_all(text.as_bytes());
            Ok(())
        }
    }
}

/// Names the bank's aggregates, so that the library's registrations are linked into this
/// program (a crate nothing refers to is left out, and its registrations with it).
fn link_bank_registrations() {
    let _ = (BankAccount::NAME, MoneyTransfer::NAME);
}
