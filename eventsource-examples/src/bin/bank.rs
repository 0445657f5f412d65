//! The bank demo: a short story of two accounts told through their events.
//!
//! ```text
//! cargo run -p eventsource-examples --bin bank                        # SQLite file bank.db
//! cargo run -p eventsource-examples --bin bank -- --store memory://
//! cargo run -p eventsource-examples --bin bank -- --store postgres://postgres@127.0.0.1:5432/test
//! ```
//! The store can also be set with `EVENTSOURCE_STORE`. Run it twice: the second run continues
//! from what the first one stored. With `EVENTSOURCE_MASTER_KEY` (64 hex digits, e.g. from
//! `openssl rand -hex 32`) new events are compressed and encrypted, with keys kept in the
//! store's own database, and the demo forgets a customer (crypto-shredding).
// Amounts are in cents and written as euros_cents (`100_00` is 100.00).
#![allow(clippy::inconsistent_digit_grouping)]

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use eventsource_core::persistence::codec::{MasterKey, PayloadCodec};
use eventsource_core::prelude::*;
use eventsource_core::{
    AppendBatch, Claims, Error, LogQuery, NewEvent, Position, Recorded, id_from_name,
};
use eventsource_examples::OpenedStore;
use eventsource_examples::bank::{
    self, BankAccount, BankAccountEvent, BankError, Opened, TransferLimits, cents,
};
use eventsource_examples::statements::ReadSide;
use eventsource_examples::transfers::{self, MoneyTransfer, Transfers};
use futures_util::TryStreamExt;

/// `println!` that stops quietly when stdout is closed (`bank | head`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

const DEFAULT_STORE: &str = "sqlite://bank.db";

type Accounts = Repository<BankAccount, Arc<dyn EventStore>>;

/// The bank demo: a short story of two accounts told through their events. Run it twice: the
/// second run continues from what the first one stored.
#[derive(Debug, Parser)]
#[command(
    name = "bank",
    after_help = "With EVENTSOURCE_MASTER_KEY (64 hex digits, e.g. from `openssl rand -hex 32`) new events are compressed and encrypted, with keys kept in the store's own database, and the demo forgets a customer."
)]
struct Args {
    /// The store: sqlite://FILE, memory://, postgres://USER@HOST:PORT/DB, or
    /// nats://HOST:PORT (NATS JetStream 2.12+; more servers after commas, then optionally
    /// ?name=NAME&replicas=N).
    #[arg(long, value_name = "URL", env = "EVENTSOURCE_STORE", default_value = DEFAULT_STORE)]
    store: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args.store).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("\nThe demo stopped: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                eprintln!("  because: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(url: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    say!("eventsource bank demo — store: {url}\n");
    let store = OpenedStore::open(url).await?;
    let master = match std::env::var("EVENTSOURCE_MASTER_KEY") {
        Ok(hex) => Some(MasterKey::from_hex(&hex)?),
        Err(_) => None,
    };
    let encrypted = master.is_some();
    let codec = store.codec(master)?;
    say!("Payloads: {codec}\n");
    let accounts: Accounts = Repository::new(store.events()).codec(codec.clone());

    // 0. The read side: a projection follows the log live and keeps every account's balance
    //    and statement. On SQLite and PostgreSQL they are tables in the store's own database,
    //    written in the projection's transaction with its tracking position, so it resumes
    //    where the last run stopped; on the memory store, a map rebuilt at each start.
    let statements = ReadSide::start(&store, codec.clone()).await?;

    // 1. Open two accounts, or find them from an earlier run. Their ids are derived from a
    //    name (UUID v5), so every run finds the same streams.
    //    A clerk opens them: one request, so both share one correlation id.
    let (ada, bob) = CommandContext::new()
        .with_actor("clerk")
        .scope(async {
            let ada = open_or_find(&accounts, "ada", "Ada Lovelace").await?;
            let bob = open_or_find(&accounts, "bob", "Bob Babbage").await?;
            Ok::<_, Error>((ada, bob))
        })
        .await?;

    // 2. Deposit: `execute` replays the account, decides, and appends with the version it saw.
    //    Each request runs in a command context (who acts, which request it belongs to): every
    //    event it writes carries it as metadata.
    let as_ada = CommandContext::new()
        .with_actor("ada")
        .with("channel", "demo")?;
    let after = as_ada
        .clone()
        .scope(accounts.execute(ada, |acct| acct.deposit(100_00)))
        .await?;
    say!(
        "Ada deposits 100.00          -> balance {} (version {})",
        cents(after.balance),
        after.version()
    );

    // 3. A transfer changes two aggregates as one unit of work: both appends commit in one
    //    transaction, or neither. Its decision awaits a (simulated) limits service first.
    let limits = TransferLimits::default();
    let transfer = as_ada
        .scope(bank::transfer(&accounts, &limits, ada, bob, 25_00))
        .await?;
    say!(
        "Ada sends Bob 25.00          -> Ada {} (v{}), Bob {} (v{}), saved atomically",
        cents(transfer.sender_balance),
        transfer.sender_version,
        cents(transfer.receiver_balance),
        transfer.receiver_version
    );

    // 4. The domain refuses an overdraft; nothing is written.
    let as_bob = CommandContext::new().with_actor("bob");
    let before = accounts.get(bob).await?;
    match as_bob
        .scope(accounts.execute(bob, |acct| acct.withdraw(1_000_000_00)))
        .await
    {
        Err(CommandError::Rejected(refusal @ BankError::InsufficientFunds { .. })) => {
            say!("Bob withdraws 1,000,000.00   -> refused: {refusal}");
        }
        Err(other) => return Err(other.into()),
        Ok(_) => return Err("the overdraft was accepted, which the domain forbids".into()),
    }
    let unchanged = accounts.get(bob).await?;
    say!(
        "                                Bob is still at version {} with {}",
        unchanged.version(),
        cents(unchanged.balance)
    );
    assert_unchanged(before.version(), unchanged.version())?;

    // 5. A transfer as a process: the request is one event on a transfer of its own; the
    //    `transfers` process debits the source, then credits the target, each step appended
    //    with the process's tracking position (exactly once). A transfer to a closed account is
    //    compensated: the money goes back to the source.
    let carol = CommandContext::new()
        .with_actor("clerk")
        .scope(open_or_find(&accounts, "carol", "Carol Cray"))
        .await?;
    if !accounts.get(carol).await?.closed {
        accounts
            .execute(carol, |acct| acct.close("moved abroad"))
            .await?;
    }
    match &store {
        OpenedStore::Memory(store) => {
            transfers_as_a_process(store.clone(), &codec, ada, bob, carol).await?
        }
        OpenedStore::Sqlite(store) => {
            transfers_as_a_process(store.clone(), &codec, ada, bob, carol).await?
        }
        #[cfg(feature = "postgres")]
        OpenedStore::Postgres(store) => {
            transfers_as_a_process(store.clone(), &codec, ada, bob, carol).await?
        }
        #[cfg(feature = "nats")]
        OpenedStore::Nats(store) => {
            transfers_as_a_process(store.clone(), &codec, ada, bob, carol).await?
        }
    }

    // 5b. Forgetting a customer (crypto-shredding): Carol closed her account and asks to be
    //     forgotten. Her `Opened` holds her name, encrypted with a key of her own; deleting the
    //     key makes it decode as `Forgotten<Opened>` everywhere, while her balance history and
    //     everyone else's events stay.
    forget_carol(&accounts, carol, encrypted).await?;

    // 6. History: every event of Ada's account, decoded, with the context it was written in.
    say!("\nAda's history (correlation id, actor):");
    let history = accounts.history(ada).await?;
    for recorded in history.iter().rev().take(8).rev() {
        say!(
            "  v{:<3} position {:<6} {:<44} {}",
            recorded.version,
            recorded.position,
            describe(&recorded.event),
            written_by(recorded)
        );
    }
    if history.len() > 8 {
        say!("  … and {} earlier events", history.len() - 8);
    }

    // 7. Time travel: the state as of an earlier version.
    let then = accounts.get_at(ada, 2).await?;
    let now = accounts.get(ada).await?;
    say!(
        "\nAda's balance at version 2: {}; now, at version {}: {}",
        cents(then.balance),
        now.version(),
        cents(now.balance)
    );

    // 8. Legacy data: events stored by an older release, at schema versions 1 and 2.
    legacy_account(&accounts).await?;

    // 9. Read your writes on the read side: wait until the projection has processed everything
    //    written above, then print from the read model (not from the aggregates).
    let written = accounts.store().last_position().await?;
    if !statements
        .wait_for(written, Duration::from_secs(10))
        .await?
    {
        return Err("the statements projection did not catch up within 10 s".into());
    }
    let report = statements.finish(ada, 5).await?;
    say!(
        "\nFrom the read model ({}), caught up to position {written}:",
        report.kept_in
    );
    if report.resumed_after > Position::START {
        say!(
            "  the projection resumed after position {}, where it stopped in an earlier run, and handled {} new events",
            report.resumed_after,
            report.processed
        );
    } else {
        say!(
            "  the projection started from the first event and handled {} events",
            report.processed
        );
    }
    for balance in &report.balances {
        say!(
            "  {:<16} balance {:>10}",
            balance.owner,
            cents(balance.cents)
        );
    }
    say!("Ada's statement:");
    for line in &report.statement {
        say!("  {line}");
    }

    if url.starts_with("memory:") {
        say!("\nThe memory store is gone when the program ends: a second run starts afresh.");
    } else {
        say!("\nRun the demo again: it continues from the stored events.");
    }
    if let Some(file) = url.strip_prefix("sqlite://") {
        say!(
            "Inspect the rows with: sqlite3 {file} 'SELECT position, stream_id, version, name, schema_version, payload FROM events'"
        );
        say!("and the read model with: sqlite3 {file} 'SELECT * FROM bank_balances'");
    }
    Ok(())
}

/// Runs the `transfers` process live, requests one transfer that completes (Ada to Bob) and one
/// that is compensated (Ada to Carol, whose account is closed), waits until the process has
/// finished both, and prints each transfer's events: one correlation id ties them together.
/// Forgets Carol (her account is closed), if payloads are encrypted, and shows what is left.
async fn forget_carol(
    accounts: &Accounts,
    carol: Uuid,
    encrypted: bool,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if !encrypted {
        say!(
            "\nForgetting Carol needs encryption: set EVENTSOURCE_MASTER_KEY (64 hex digits) and run again."
        );
        return Ok(());
    }
    accounts.get(carol).await?.forgettable()?;
    let forgetting = accounts.forget(carol).await?;
    say!(
        "\nCarol asks to be forgotten: {} key(s) and {} snapshot(s) deleted, recorded at position {}",
        forgetting.recorded.keys_deleted,
        forgetting.recorded.snapshots_deleted,
        forgetting.position
    );
    let account = accounts.get(carol).await?;
    say!(
        "  her account now: owner {}, balance {}, closed {}",
        account.owner,
        cents(account.balance),
        account.closed
    );
    if let Some(first) = accounts.history(carol).await?.first() {
        say!("  v{} {}", first.version, describe(&first.event));
    }
    Ok(())
}

async fn transfers_as_a_process<S: Claims>(
    store: S,
    codec: &PayloadCodec,
    ada: Uuid,
    bob: Uuid,
    carol: Uuid,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let process = ProcessManager::new(store.clone(), Transfers)
        .codec(codec.clone())
        .poll_interval(Duration::from_millis(200))
        .spawn();
    let transfers = Repository::<MoneyTransfer, _>::new(store.clone()).codec(codec.clone());
    say!("\nTransfers run as a process (request, debit, credit or refund):");
    for (to, name) in [(bob, "Bob"), (carol, "Carol (closed)")] {
        let request = Uuid::now_v7();
        let before = store.last_position().await?;
        let id = CommandContext::new()
            .with_actor("ada")
            .with_correlation_id(request)
            .scope(transfers::request(&transfers, ada, to, 5_00))
            .await?;
        let finished = wait_until_finished(&transfers, id, Duration::from_secs(10)).await?;
        say!(
            "  Ada sends {name} 5.00 -> {:?}{}",
            finished.status,
            finished
                .reason
                .as_ref()
                .map(|reason| format!(" ({reason})"))
                .unwrap_or_default()
        );
        let log = store.read_log(LogQuery::after(before, 1_000)).await?;
        let correlated: Vec<_> = log
            .events
            .iter()
            .filter(|e| {
                e.metadata.get("correlation_id").map(String::as_str) == Some(&request.to_string())
            })
            .collect();
        for event in &correlated {
            // The event it follows: its causation id is that event's id.
            let cause = event
                .metadata
                .get("causation_id")
                .and_then(|id| correlated.iter().find(|e| e.id.to_string() == *id))
                .map_or_else(
                    || "the request".to_owned(),
                    |cause| format!("position {}", cause.position),
                );
            say!(
                "    position {:<5} {:<13} {:<20} by {:<9} caused by {}",
                event.position,
                event.category,
                event.name,
                event.metadata.get("actor").map_or("-", String::as_str),
                cause
            );
        }
        say!("    (all with correlation id {request})");
    }
    let (_, outcome) = process.stop().await;
    outcome?;
    Ok(())
}

/// Waits (at most `timeout`) until the process has finished transfer `id`.
async fn wait_until_finished<S: EventStore>(
    transfers: &Repository<MoneyTransfer, S>,
    id: Uuid,
    timeout: Duration,
) -> Result<MoneyTransfer, Box<dyn std::error::Error + Send + Sync>> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let transfer = transfers.get(id).await?.into_state();
        if transfer.is_finished() {
            return Ok(transfer);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "the transfers process did not finish transfer {id} within {timeout:?}"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn open_or_find(accounts: &Accounts, key: &str, owner: &str) -> Result<Uuid, Error> {
    let id = id_from_name("bank-demo/accounts", key);
    match accounts.get(id).await {
        Ok(account) => {
            say!(
                "Found {owner}'s account from an earlier run: balance {} at version {}",
                cents(account.balance),
                account.version()
            );
        }
        Err(Error::NotFound { .. }) => {
            accounts
                .create_with_id(
                    id,
                    Opened {
                        owner: owner.into(),
                        currency: "EUR".into(),
                    },
                )
                .await?;
            say!("Opened an account for {owner} ({id})");
        }
        Err(error) => return Err(error),
    }
    Ok(id)
}

/// `correlation <id> by <actor>`, or what is missing (events written before commands had a
/// context carry none).
fn written_by(recorded: &Recorded<BankAccountEvent>) -> String {
    let correlation = recorded
        .correlation_id()
        .map_or_else(|| "(none)".to_owned(), |id| id.to_string());
    let actor = recorded.actor().unwrap_or("(no actor)");
    format!("correlation {correlation} by {actor}")
}

fn assert_unchanged(before: u64, after: u64) -> Result<(), String> {
    if before == after {
        Ok(())
    } else {
        Err(format!(
            "a refused command wrote events (version {before} -> {after})"
        ))
    }
}

fn describe(event: &BankAccountEvent) -> String {
    match event {
        BankAccountEvent::Opened(e) => format!("Opened by {} in {}", e.owner, e.currency),
        BankAccountEvent::Deposited(e) => format!("Deposited {} {}", cents(e.cents), e.currency),
        BankAccountEvent::Withdrawn(e) => format!("Withdrew {}", cents(e.cents)),
        BankAccountEvent::TransferSent(e) => format!("Sent {} to {}", cents(e.cents), e.to),
        BankAccountEvent::TransferReceived(e) => {
            format!("Received {} from {}", cents(e.cents), e.from)
        }
        BankAccountEvent::Closed(e) => format!("Closed ({})", e.reason),
        BankAccountEvent::DebitedForTransfer(e) => {
            format!("Debited {} for transfer to {}", cents(e.cents), e.to)
        }
        BankAccountEvent::CreditedByTransfer(e) => {
            format!("Credited {} by transfer from {}", cents(e.cents), e.from)
        }
        BankAccountEvent::RefundedForTransfer(e) => {
            format!("Refunded {} ({})", cents(e.cents), e.reason)
        }
        BankAccountEvent::Forgotten(e) => format!("{} (its owner's data was forgotten)", e.name),
    }
}

/// Writes (once) the records an older release would have stored — a `Deposited` at schema
/// version 1 (whole euros, no currency) and one at version 2 — and loads them through today's
/// code, which upcasts them to version 3 (cents).
async fn legacy_account(
    accounts: &Accounts,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let id = id_from_name("bank-demo/accounts", "carol-legacy");
    say!("\nCarol's account was written by an older release:");
    if accounts.store().stream_version(id).await? == 0 {
        let record = |name: &str, schema_version: u32, payload: &str| NewEvent {
            id: Uuid::now_v7(),
            name: name.into(),
            schema_version,
            payload: payload.as_bytes().to_vec(),
            metadata: Default::default(),
        };
        let old_records = vec![
            record(
                "Opened",
                1,
                r#"{"owner":"Carol Herschel","currency":"EUR"}"#,
            ),
            record("Deposited", 1, r#"{"amount":12}"#),
            record("Deposited", 2, r#"{"amount":3,"currency":"EUR"}"#),
        ];
        accounts
            .store()
            .append(AppendBatch::single(id, 0, old_records))
            .await?;
    }
    let mut stored = accounts
        .store()
        .read_stream(id, eventsource_core::StreamRange::all().to(3));
    while let Some(record) = stored.try_next().await? {
        let decoded = accounts.decode(&record).await?;
        say!(
            "  stored {} v{} {:<32} -> today: {}",
            record.name,
            record.schema_version,
            String::from_utf8_lossy(&record.payload),
            describe(&decoded)
        );
    }
    let carol = accounts.get(id).await?;
    say!(
        "  Carol's balance, replayed through the upcasters: {}",
        cents(carol.balance)
    );
    Ok(())
}
