//! The bank as an HTTP service: the demo's accounts, transfers and balances behind a JSON API
//! (see `eventsource_examples::service` for the routes).
//!
//! ```text
//! cargo run -p eventsource-examples --bin bank-service -- --store sqlite://bank.db --listen 127.0.0.1:8080
//! curl -si localhost:8080/accounts -H 'content-type: application/json' -H 'x-actor: ada' -d '{"owner":"Ada"}'
//! ```
//! It stops on Ctrl-C (or SIGTERM), after the requests in flight.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use eventsource_core::persistence::codec::MasterKey;
use eventsource_examples::OpenedStore;
use eventsource_examples::service::{BankService, Settings};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The bank's accounts, transfers and balances over HTTP.
#[derive(Debug, Parser)]
#[command(
    name = "bank-service",
    after_help = "With EVENTSOURCE_MASTER_KEY (64 hex digits) new events are compressed and encrypted, as in the bank demo.\nLogs go to stderr; RUST_LOG sets their levels (default: info)."
)]
struct Args {
    /// The store: sqlite://FILE, memory://, or postgres://USER@HOST:PORT/DB.
    #[arg(long, env = "EVENTSOURCE_STORE", default_value = "sqlite://bank.db")]
    store: String,
    /// The address to listen on (port 0 picks a free one, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// How many times a command is tried on version conflicts before it answers 409
    /// (default: the repository's).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_attempts: Option<u32>,
    /// How long a read with ?after= waits for the read model, in milliseconds, before it
    /// answers 503.
    #[arg(long, default_value_t = 5000)]
    read_timeout_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let levels = std::env::var("RUST_LOG")
        .ok()
        .and_then(|text| text.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(levels)
        .init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bank-service: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                eprintln!("  because: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let store = OpenedStore::open(&args.store).await?;
    let master = match std::env::var("EVENTSOURCE_MASTER_KEY") {
        Ok(hex) => Some(MasterKey::from_hex(&hex)?),
        Err(_) => None,
    };
    let settings = Settings {
        codec: store.codec(master)?,
        max_attempts: args.max_attempts,
        read_timeout: Duration::from_millis(args.read_timeout_ms),
    };
    tracing::info!(store = %args.store, payloads = %settings.codec, "starting");
    let service = BankService::start(&store, settings).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    service.serve(listener, stopped()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn stopped() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("stopping: finishing the requests in flight");
}
