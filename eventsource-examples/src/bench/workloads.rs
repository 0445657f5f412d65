//! The workloads themselves, on the bank domain: an `Opened` event, then `Deposited` events.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use eventsource_core::{
    Aggregate, Backoff, EventStore, Loaded, LogQuery, Position, Repository, Uuid, new_id,
};

use super::account::Balance;
use super::figure::Figure;
use super::raw::RawRow;
use super::raw_best::{BestTable, EventRows};
use super::{
    BenchResult, BenchStore, Report, Sizes, Workload, codecs, interleaved, process, read_side, rss,
};
use crate::bank::{BankAccount, BankAccountEvent, Deposited, Opened};

/// The repository the bench drives.
pub type Accounts = Repository<BankAccount, Arc<dyn EventStore>>;

/// Every deposit is one euro.
pub(super) const DEPOSIT_CENTS: u64 = 100;

pub(super) fn opened() -> Opened {
    Opened {
        owner: "Bench".into(),
        currency: "EUR".into(),
    }
}

pub(super) fn deposited() -> Deposited {
    Deposited {
        cents: DEPOSIT_CENTS,
        currency: "EUR".into(),
    }
}

pub(super) fn check(what: &str, actual: u64, expected: u64) -> BenchResult<()> {
    if actual == expected {
        Ok(())
    } else {
        Err(format!("{what}: expected {expected}, found {actual}").into())
    }
}

pub(super) fn median(mut values: Vec<Duration>) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort_unstable();
    values[values.len() / 2]
}

/// Runs the chosen workloads on one store, in order, and the raw engine beside them; then, with
/// `codecs`, the codec comparison of the chosen ones of W2, W3 and W4 (see [`codecs`]).
pub async fn run(
    target: &mut BenchStore,
    sizes: &Sizes,
    only: &[Workload],
    codecs: bool,
    report: &mut Report,
) -> BenchResult<()> {
    let name = target.name;
    let store = Arc::clone(&target.store);
    let accounts = Accounts::new(Arc::clone(&store));
    let wanted = |w: Workload| only.is_empty() || only.contains(&w);
    let rows = event_rows(&accounts).await?;
    let row = rows.deposited.clone();
    // Events this run has put in the global log, so W4 knows what to expect.
    let mut logged = interleaved::prefill(name, &accounts, sizes, report).await?;

    if wanted(Workload::W1) {
        logged += w1(
            name,
            "default",
            &accounts,
            sizes.w1_default_commands,
            sizes.w1_commands,
            sizes.write_batch,
            report,
        )
        .await?;
        let snapshotting = Repository::<BankAccount, _>::new(Arc::clone(&store))
            .snapshot_every(sizes.snapshot_every);
        let (n, to) = (sizes.w1_commands, sizes.w1_commands);
        let batch = sizes.write_batch;
        logged += w1(name, "snapshots", &snapshotting, n, to, batch, report).await?;
        let caching = Accounts::new(Arc::clone(&store)).with_cache(sizes.cache_capacity);
        logged += w1(name, "cache", &caching, n, to, batch, report).await?;
        if let Some(raw) = &mut target.raw {
            rss::reset_peak();
            let seconds = raw.insert_single(sizes.raw_single, &row).await?;
            report.push(Figure::new(
                name,
                "W1",
                "raw-single",
                sizes.raw_single,
                seconds,
            ));
        }
        if let Some(best) = &mut target.best {
            rss::reset_peak();
            let seconds = best.insert_single(sizes.raw_single, &row).await?;
            report.push(Figure::new(
                name,
                "W1",
                "raw-best-single",
                sizes.raw_single,
                seconds,
            ));
        }
    }
    if wanted(Workload::W2) {
        w2(name, &accounts, sizes, report).await?;
        logged += sizes.w2_aggregates * sizes.w2_events;
        if let Some(raw) = &mut target.raw {
            rss::reset_peak();
            let seconds = raw
                .insert_batches(sizes.w2_aggregates, sizes.w2_events, &row)
                .await?;
            let rows = sizes.w2_aggregates * sizes.w2_events;
            report.push(
                Figure::new(name, "W2", "raw-batch", rows, seconds)
                    .with("rows_per_transaction", sizes.w2_events),
            );
            rss::reset_peak();
            let seconds = raw.insert_batches(1, rows, &row).await?;
            report.push(
                Figure::new(name, "W2", "raw-one-tx", rows, seconds)
                    .with("rows_per_transaction", rows),
            );
        }
        if let Some(best) = &mut target.best {
            rss::reset_peak();
            let seconds = best
                .insert_batches(sizes.w2_aggregates, sizes.w2_events, &row)
                .await?;
            let rows = sizes.w2_aggregates * sizes.w2_events;
            report.push(
                Figure::new(name, "W2", "raw-best-batch", rows, seconds)
                    .with("rows_per_transaction", sizes.w2_events),
            );
        }
    }
    if wanted(Workload::W3) {
        let stream = w3(name, &accounts, sizes, report).await?;
        logged += sizes.w3_events.max(1);
        if let Some(raw) = &mut target.raw {
            rss::reset_peak();
            let mut runs = Vec::new();
            let mut rows = 0;
            for _ in 0..sizes.w3_runs.max(1) {
                match raw.read_stream(stream).await? {
                    Some((n, seconds)) => {
                        rows = n;
                        runs.push(Duration::from_secs_f64(seconds));
                    }
                    None => break,
                }
            }
            if !runs.is_empty() {
                check("raw W3 rows", rows, sizes.w3_events.max(1))?;
                let seconds = median(runs).as_secs_f64();
                report.push(
                    Figure::new(name, "W3", "raw-read", rows, seconds)
                        .with("median_ms", seconds * 1e3),
                );
            }
        }
        if let Some(best) = &mut target.best {
            let events = sizes.w3_events.max(1);
            let stream = new_id();
            best.write_stream(BestTable::Contiguous, stream, events, &rows)
                .await?;
            rss::reset_peak();
            let read = best
                .replay(BestTable::Contiguous, stream, sizes.w3_runs, &rows)
                .await?;
            check("raw best W3 rows", read.rows, events)?;
            check(
                "raw best W3 cents",
                read.cents,
                (events - 1) * DEPOSIT_CENTS,
            )?;
            report.push(
                Figure::new(name, "W3", "raw-best-read", read.rows, read.seconds)
                    .with("median_ms", read.seconds * 1e3)
                    .with("runs", read.runs)
                    .with("layout", best.layout()),
            );
        }
    }
    if wanted(Workload::W3Large) {
        w3_large(name, &accounts, sizes, report).await?;
        logged += sizes.w3_large_events.max(1);
    }
    if wanted(Workload::W3Interleaved) {
        interleaved::w3_interleaved(target, sizes, &rows, report).await?;
    }
    if wanted(Workload::W4) {
        logged = w4(name, &accounts, sizes, logged, report).await?;
        if let Some(raw) = &mut target.raw {
            rss::reset_peak();
            let page = usize::try_from(sizes.w4_page).unwrap_or(usize::MAX);
            if let Some((rows, seconds)) = raw.scan_log(page).await? {
                report.push(
                    Figure::new(name, "W4", "raw-read", rows, seconds).with("page", sizes.w4_page),
                );
            }
        }
    }
    if wanted(Workload::W6) {
        read_side::w6(name, &accounts, sizes, logged, report).await?;
    }
    if wanted(Workload::W5) {
        w5(name, &store, sizes, report).await?;
        if let Some(best) = &mut target.best {
            let mut clients = vec![sizes.w5_writers.max(1)];
            if !clients.contains(&16) {
                clients.push(16);
            }
            for writers in clients {
                rss::reset_peak();
                if let Some(seconds) = best.concurrent(writers, sizes.w5_commands, &row).await? {
                    report.push(
                        Figure::new(
                            name,
                            "W5",
                            "raw-best-concurrent",
                            writers * sizes.w5_commands,
                            seconds,
                        )
                        .with("writers", writers),
                    );
                }
            }
        }
    }
    if wanted(Workload::W7) {
        read_side::w7(name, &store, sizes, report).await?;
    }
    if wanted(Workload::W8) {
        // W8 is set beside W2's rate on the same store: measure it now if it wasn't chosen.
        if !wanted(Workload::W2) {
            w2(name, &accounts, sizes, report).await?;
        }
        let w2_per_second = report
            .figures
            .iter()
            .find(|f| f.store == name && f.workload == "W2" && f.variant == "default")
            .map(Figure::per_second)
            .ok_or("W8: no W2 figure to set it beside")?;
        process::w8(target, sizes, w2_per_second, report).await?;
    }
    if codecs {
        codecs::run(target, sizes, wanted, report).await?;
    }
    report.common.remove("prefilled");
    Ok(())
}

/// The rows the raw engine inserts: an `Opened` and a `Deposited` exactly as the repository
/// encodes them (single-row and batch inserts use the `Deposited`).
async fn event_rows(accounts: &Accounts) -> BenchResult<EventRows> {
    let row = async |event: BankAccountEvent| -> BenchResult<RawRow> {
        let encoded = accounts.encode(Uuid::nil(), 0, &[event]).await?;
        let event = encoded
            .into_iter()
            .next()
            .ok_or("encoding one event gave none")?;
        Ok(RawRow {
            name: event.name,
            schema_version: event.schema_version,
            payload: event.payload,
        })
    };
    Ok(EventRows {
        opened: row(opened().into()).await?,
        deposited: row(deposited().into()).await?,
    })
}

/// W1: one aggregate, deposits one by one through [`Repository::execute`] (load, decide, save
/// one event), on any repository of a bank-account aggregate (plain, with snapshots, with a
/// cache). Returns how many events the stream ends with.
///
/// The first `one_by_one` commands are timed back to back (the commands-per-second figure).
/// Each latency checkpoint (100, 1,000, 10,000 events of history, up to `history_to`) is the
/// median of the 25 commands that run with the last 25 histories up to it; a checkpoint beyond
/// `one_by_one` is reached by growing the stream with batched appends of at most `write_batch`
/// events (`--write-batch`: NATS takes at most 1,000 messages per atomic batch) through the
/// same repository (untimed), then timing its 25 commands. That keeps the plain replaying variant,
/// whose cost grows with the stream, from taking minutes per store.
pub async fn w1<A>(
    store: &str,
    variant: &str,
    accounts: &Repository<A, Arc<dyn EventStore>>,
    one_by_one: u64,
    history_to: u64,
    write_batch: u64,
    report: &mut Report,
) -> BenchResult<u64>
where
    A: Aggregate + Balance,
    A::Event: From<Opened> + From<Deposited>,
{
    const WINDOW: u64 = 25;
    rss::reset_peak();
    let id = accounts.create([opened()]).await?;
    let command = async || -> BenchResult<Duration> {
        let start = Instant::now();
        accounts
            .execute(id, |_| Ok::<_, Infallible>([deposited()]))
            .await?;
        Ok(start.elapsed())
    };
    let one_by_one = one_by_one.min(history_to);
    let mut latencies = Vec::with_capacity(usize::try_from(one_by_one).unwrap_or(0));
    let start = Instant::now();
    for _ in 0..one_by_one {
        latencies.push(command().await?);
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut figure = Figure::new(store, "W1", variant, one_by_one, seconds);
    if let Some(every) = accounts.snapshot_policy() {
        figure = figure.with("snapshot_every", every.get());
    }
    if accounts.cached_len() > 0 {
        figure = figure.with("cache", true);
    }
    report.push(figure);
    // Events in the stream: `Opened` and one per command so far.
    let mut events = one_by_one + 1;
    for history in [100_u64, 1_000, 10_000] {
        if history > history_to {
            continue;
        }
        let window = if history <= one_by_one {
            // Command i (from 0) ran with i + 1 events in the stream.
            let end = usize::try_from(history).unwrap_or(usize::MAX);
            latencies[end.saturating_sub(WINDOW as usize)..end].to_vec()
        } else {
            // Grow the stream so that the first timed command runs with `history - WINDOW + 1`
            // events.
            let first = history.saturating_sub(WINDOW - 1).max(events);
            let mut account = accounts.get(id).await?;
            let mut missing = first - events;
            while missing > 0 {
                let n = missing.min(write_batch.max(1));
                account.record((0..n).map(|_| deposited()).collect::<Vec<_>>());
                accounts.save(&mut [&mut account]).await?;
                missing -= n;
            }
            events = first;
            let mut window = Vec::new();
            while events <= history {
                window.push(command().await?);
                events += 1;
            }
            window
        };
        let latency = median(window);
        let mut figure = Figure::new(store, "W1", variant, 1, latency.as_secs_f64());
        figure.history = Some(history);
        figure.latency_us = Some(latency.as_secs_f64() * 1e6);
        if history > one_by_one {
            figure = figure.with("grown_by_batched_appends", true);
        }
        report.push(figure);
    }
    let account = accounts.get(id).await?;
    check("W1 final version", account.version(), events)?;
    check(
        "W1 balance",
        account.balance_cents(),
        (events - 1) * DEPOSIT_CENTS,
    )?;
    Ok(events)
}

/// W2's events for one new account: `Opened`, then deposits, `per` in all.
pub(super) fn w2_events(per: u64) -> Vec<BankAccountEvent> {
    let mut events: Vec<BankAccountEvent> = Vec::with_capacity(per as usize);
    events.push(opened().into());
    events.extend((1..per).map(|_| BankAccountEvent::from(deposited())));
    events
}

/// W2: `aggregates` new accounts, each created with one save of `events` events.
async fn w2(
    store: &str,
    accounts: &Accounts,
    sizes: &Sizes,
    report: &mut Report,
) -> BenchResult<()> {
    rss::reset_peak();
    let per = sizes.w2_events.max(1);
    let start = Instant::now();
    for _ in 0..sizes.w2_aggregates {
        accounts.create_with_id(new_id(), w2_events(per)).await?;
    }
    let seconds = start.elapsed().as_secs_f64();
    report.push(
        Figure::new(store, "W2", "default", sizes.w2_aggregates * per, seconds)
            .with("events_per_transaction", per),
    );
    Ok(())
}

/// Writes one account of `events` events (`Opened` + deposits) in appends of `batch` events.
pub(super) async fn write_stream(
    accounts: &Accounts,
    events: u64,
    batch: u64,
) -> BenchResult<Uuid> {
    let mut account: Loaded<BankAccount> = accounts.create_with_id(new_id(), opened()).await?;
    let mut left = events.saturating_sub(1);
    while left > 0 {
        let n = left.min(batch.max(1));
        account.record((0..n).map(|_| deposited()).collect::<Vec<_>>());
        accounts.save(&mut [&mut account]).await?;
        left -= n;
    }
    Ok(account.id())
}

/// Replays `id` on a fresh repository (no cache, no snapshot) with the codec of `accounts`
/// (whose clones share its key cache) and checks the result.
pub(super) async fn replay(accounts: &Accounts, id: Uuid, events: u64) -> BenchResult<Duration> {
    let cold = Accounts::new(Arc::clone(accounts.store())).codec(accounts.payload_codec().clone());
    let start = Instant::now();
    let account = cold.get(id).await?;
    let elapsed = start.elapsed();
    check("replayed version", account.version(), events)?;
    check(
        "replayed balance",
        account.balance,
        (events - 1) * DEPOSIT_CENTS,
    )?;
    Ok(elapsed)
}

/// W3: replays one `w3_events`-event account `w3_runs` times; returns its id.
async fn w3(
    store: &str,
    accounts: &Accounts,
    sizes: &Sizes,
    report: &mut Report,
) -> BenchResult<Uuid> {
    let events = sizes.w3_events.max(1);
    let id = write_stream(accounts, events, sizes.write_batch).await?;
    rss::reset_peak();
    let mut runs = Vec::new();
    for _ in 0..sizes.w3_runs.max(1) {
        runs.push(replay(accounts, id, events).await?);
    }
    let seconds = median(runs).as_secs_f64();
    report.push(
        Figure::new(store, "W3", "default", events, seconds)
            .with("median_ms", seconds * 1e3)
            .with("runs", sizes.w3_runs.max(1)),
    );
    Ok(id)
}

/// W3-large: replays one very long stream once; reports the resident memory it took above the
/// baseline measured just before.
async fn w3_large(
    store: &str,
    accounts: &Accounts,
    sizes: &Sizes,
    report: &mut Report,
) -> BenchResult<()> {
    let events = sizes.w3_large_events.max(1);
    let written = Instant::now();
    let id = write_stream(accounts, events, sizes.write_batch).await?;
    let write_seconds = written.elapsed().as_secs_f64();
    let reset = rss::reset_peak();
    let baseline = rss::current_kib();
    let baseline_anon = rss::anon_kib();
    let sampler = rss::Sampler::start();
    let seconds = replay(accounts, id, events).await?.as_secs_f64();
    let (sampled, sampled_anon) = sampler.finish();
    // With a reset peak, VmHWM is exact; the sampler is the fallback (and a cross-check).
    let peak = if reset {
        rss::peak_kib().max(sampled)
    } else {
        sampled
    };
    // The resident set counts the pages of a memory-mapped database file too (SQLite maps its
    // file for reads); the anonymous part is what the replay itself allocated.
    let mut figure = Figure::new(store, "W3-large", "default", events, seconds)
        .with("baseline_rss_kib", baseline)
        .with("rss_growth_kib", peak.saturating_sub(baseline))
        .with(
            "anon_growth_kib",
            sampled_anon.saturating_sub(baseline_anon),
        )
        .with(
            "peak_method",
            if reset {
                "VmHWM after clear_refs"
            } else {
                "VmRSS sampled"
            },
        )
        .with("write_seconds", write_seconds);
    figure.peak_rss_kib = peak;
    report.push(figure);
    Ok(())
}

/// W4: reads the whole global log in pages, decoding every event. Returns the events in the log.
async fn w4(
    store: &str,
    accounts: &Accounts,
    sizes: &Sizes,
    logged: u64,
    report: &mut Report,
) -> BenchResult<u64> {
    // Top the log up to the configured size with 100-event accounts.
    let mut logged = logged;
    while logged < sizes.w4_events {
        let n = (sizes.w4_events - logged).clamp(1, 100);
        write_stream(accounts, n, n).await?;
        logged += n;
    }
    rss::reset_peak();
    let read = read_log(accounts, sizes.w4_page).await?;
    check("W4 events read", read.events, logged)?;
    report.push(
        Figure::new(store, "W4", "default", read.events, read.seconds).with("page", sizes.w4_page),
    );
    Ok(logged)
}

/// What one read of the whole log found.
#[derive(Debug, Clone, Copy)]
pub(super) struct LogRead {
    /// Events read.
    pub events: u64,
    /// `Opened` events among them (one per account).
    pub opened: u64,
    /// The deposits' sum.
    pub cents: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// W4's read: the whole global log in pages of `page`, decoding every event.
pub(super) async fn read_log(accounts: &Accounts, page: u64) -> BenchResult<LogRead> {
    let start = Instant::now();
    let mut reader = LogReader::new(page);
    while reader.next_page(accounts).await? {}
    Ok(LogRead {
        seconds: start.elapsed().as_secs_f64(),
        ..reader.read
    })
}

/// W4's read a page at a time (the codec comparison takes turns between its settings' logs).
#[derive(Debug)]
pub(super) struct LogReader {
    after: Position,
    page: usize,
    /// What it read so far (`seconds` stays 0: the caller times).
    pub(super) read: LogRead,
}

impl LogReader {
    /// From the start of the log, in pages of `page` events.
    pub(super) fn new(page: u64) -> Self {
        Self {
            after: Position::START,
            page: usize::try_from(page.max(1)).unwrap_or(usize::MAX),
            read: LogRead {
                events: 0,
                opened: 0,
                cents: 0,
                seconds: 0.0,
            },
        }
    }

    /// Reads the next page and decodes every event in it; `false` at the end of the log.
    pub(super) async fn next_page(&mut self, accounts: &Accounts) -> BenchResult<bool> {
        let batch = accounts
            .store()
            .read_log(LogQuery::after(self.after, self.page))
            .await?;
        if batch.is_empty() {
            return Ok(false);
        }
        self.after = batch.next;
        for stored in &batch.events {
            match accounts.decode(stored).await? {
                BankAccountEvent::Deposited(deposit) => self.read.cents += deposit.cents,
                BankAccountEvent::Opened(_) => self.read.opened += 1,
                _ => {}
            }
            self.read.events += 1;
        }
        Ok(true)
    }
}

/// How many times a W5 deposit is tried before the bench gives up on it: far more than the
/// conflicts of 16 writers on one account ever need.
const W5_MAX_ATTEMPTS: u32 = 10_000;

/// The repository W5 drives: a conflicted deposit is retried at once (no backoff), up to
/// [`W5_MAX_ATTEMPTS`] times, so the figure is the writers' contention, not a backoff's sleeps.
fn w5_accounts(events: &Arc<dyn EventStore>) -> Accounts {
    Accounts::new(Arc::clone(events))
        .max_attempts(W5_MAX_ATTEMPTS)
        .backoff(Backoff::none())
}

/// One deposit as a command ([`Repository::execute`]), as an application runs one: load (from
/// the cache when the repository has one: then nothing is read first, the append's expected
/// version is the check), decide, append, retried on conflicts. Counts the decisions after the
/// first, each the result of a conflict (a deposit is never refused and always one event, so
/// nothing else decides again).
async fn deposit_counting_conflicts(
    accounts: &Accounts,
    id: Uuid,
    conflicts: &AtomicU64,
) -> BenchResult<()> {
    let mut decisions = 0_u64;
    accounts
        .execute(id, |account| {
            decisions += 1;
            account.deposit(DEPOSIT_CENTS)
        })
        .await
        .map_err(|error| format!("a W5 deposit on {id}: {error}"))?;
    conflicts.fetch_add(decisions.saturating_sub(1), Ordering::Relaxed);
    Ok(())
}

/// Runs `writers` tasks, writer `w` doing `commands` deposits on `ids[w % ids.len()]`. The
/// clock starts once every task is spawned and waiting at a barrier, when the first of them
/// leaves it (each notes its own start: a writer released first may run all its commands
/// before this task is scheduled again, on the memory store in one go).
async fn concurrent(
    accounts: &Arc<Accounts>,
    ids: &[Uuid],
    writers: u64,
    commands: u64,
) -> BenchResult<(f64, u64)> {
    let conflicts = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(
        usize::try_from(writers)
            .unwrap_or(usize::MAX)
            .saturating_add(1),
    ));
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let id = ids[usize::try_from(writer).unwrap_or(0) % ids.len()];
        let (accounts, conflicts) = (Arc::clone(accounts), Arc::clone(&conflicts));
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let start = Instant::now();
            for _ in 0..commands {
                deposit_counting_conflicts(&accounts, id, &conflicts).await?;
            }
            BenchResult::Ok(start)
        }));
    }
    barrier.wait().await;
    let mut first: Option<Instant> = None;
    for task in tasks {
        let start = task.await??;
        first = Some(first.map_or(start, |first| first.min(start)));
    }
    let seconds = first.map_or(0.0, |first| first.elapsed().as_secs_f64());
    Ok((seconds, conflicts.load(Ordering::Relaxed)))
}

/// W5: concurrent writers on distinct aggregates, then on one aggregate; then the same with the
/// repository's cache (capacity `--cache-capacity`) at `--w5-writers` writers and at four times
/// as many (4 and 16 by default), the cache alone under contention (`cache-get`), and on memory
/// the cache with a byte budget (`distinct-cache-budget`, `same-cache-budget`).
async fn w5(
    store: &str,
    events: &Arc<dyn EventStore>,
    sizes: &Sizes,
    report: &mut Report,
) -> BenchResult<()> {
    let writers = sizes.w5_writers.max(1);
    let accounts = Arc::new(w5_accounts(events));
    w5_writers(store, &accounts, "", writers, sizes.w5_commands, report).await?;
    for writers in [writers, writers * 4] {
        let caching = Arc::new(w5_accounts(events).with_cache(sizes.cache_capacity));
        w5_writers(
            store,
            &caching,
            "-cache",
            writers,
            sizes.w5_commands,
            report,
        )
        .await?;
        w5_cache_gets(store, &caching, writers, sizes.w5_commands, report).await?;
        // What weighing costs: with a byte budget every saved state is encoded once to be
        // weighed. Only on memory, where it isn't lost under a commit.
        if store == "memory" {
            let budget = w5_accounts(events)
                .with_cache_budget(sizes.cache_capacity, W5_CACHE_BUDGET_BYTES)?;
            let (suffix, commands) = ("-cache-budget", sizes.w5_commands);
            w5_writers(store, &Arc::new(budget), suffix, writers, commands, report).await?;
        }
    }
    Ok(())
}

/// The byte budget of W5's `cache-budget` variants: far more than the accounts need, so it
/// measures the weighing, not evictions.
const W5_CACHE_BUDGET_BYTES: usize = 64 << 20;

/// W5 with `writers` writers on `accounts`, its variants named `distinct{suffix}` and
/// `same{suffix}`.
async fn w5_writers(
    store: &str,
    accounts: &Arc<Accounts>,
    suffix: &str,
    writers: u64,
    commands: u64,
    report: &mut Report,
) -> BenchResult<()> {
    let total = writers * commands;

    rss::reset_peak();
    let mut ids = Vec::new();
    for _ in 0..writers {
        ids.push(accounts.create(opened()).await?);
    }
    let (seconds, conflicts) = concurrent(accounts, &ids, writers, commands).await?;
    let mut saved = 0;
    for id in &ids {
        saved += accounts.get(*id).await?.version() - 1;
    }
    report.push(
        Figure::new(store, "W5", format!("distinct{suffix}"), total, seconds)
            .with("writers", writers)
            .with("conflicts", conflicts)
            .with("lost", total.saturating_sub(saved)),
    );
    check("W5 distinct: deposits saved", saved, total)?;

    rss::reset_peak();
    let id = accounts.create(opened()).await?;
    let (seconds, conflicts) = concurrent(accounts, &[id], writers, commands).await?;
    let account = accounts.get(id).await?;
    let saved = account.version() - 1;
    report.push(
        Figure::new(store, "W5", format!("same{suffix}"), total, seconds)
            .with("writers", writers)
            .with("conflicts", conflicts)
            .with("lost", total.saturating_sub(saved)),
    );
    check("W5 same: deposits saved", saved, total)?;
    check("W5 same: balance", account.balance, total * DEPOSIT_CENTS)?;
    Ok(())
}

/// Loads per reader in `cache-get`, per W5 command: enough that on the memory store the run
/// lasts long enough to time the cache.
const CACHE_GETS_PER_COMMAND: u64 = 40;

/// The cache alone under contention: `readers` tasks each load a cached aggregate of their own
/// over and over. Every load takes the state from the cache, asks the store for the events
/// after it (there are none) and puts the state back, so on the memory store the cache's own
/// cost dominates; on the others the store's read does. Only on the memory store, where it
/// measures the cache (elsewhere it would measure `SELECT`s).
async fn w5_cache_gets(
    store: &str,
    accounts: &Arc<Accounts>,
    readers: u64,
    commands: u64,
    report: &mut Report,
) -> BenchResult<()> {
    if store != "memory" {
        return Ok(());
    }
    let gets = commands * CACHE_GETS_PER_COMMAND;
    rss::reset_peak();
    let mut ids = Vec::new();
    for _ in 0..readers {
        let id = accounts.create(opened()).await?;
        accounts.get(id).await?;
        ids.push(id);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for id in ids {
        let accounts = Arc::clone(accounts);
        tasks.push(tokio::spawn(async move {
            for _ in 0..gets {
                let account = accounts.get(id).await?;
                check("W5 cache-get: version", account.version(), 1)?;
            }
            BenchResult::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    report.push(
        Figure::new(
            store,
            "W5",
            "cache-get",
            readers * gets,
            start.elapsed().as_secs_f64(),
        )
        .with("readers", readers),
    );
    Ok(())
}
