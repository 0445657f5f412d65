//! W8, a process manager's throughput: the bank's `transfers` process
//! ([`crate::transfers`]) moving money between a few accounts, measured end to end in
//! transfers completed per second, with W2's rate on the same store beside it.
//!
//! - **`live`**: a spawned [`ProcessManager`] follows the log while a few concurrent requesters
//!   request the transfers; the clock runs from the first request until the process has reacted
//!   to every upstream event (each request, then each debit it caused), so every transfer is
//!   finished.
//! - **`catch-up`**: the same number of transfers between fresh accounts is requested with the
//!   process stopped, then [`ProcessManager::catch_up`] alone is timed (no requesters beside it).
//!
//! Each transfer writes four events: the request (by the requester), the debit (one reaction),
//! the credit and the completion (the next reaction, one append); they are counted from the
//! store after each run, not assumed. Both runs check that every transfer completed and that
//! every account's balance is what the transfers make it, and fail otherwise.
//!
//! The process runs on a `Probe` of the store, which counts and times what the process asks of
//! it (its batches' appends, the loads of its reactions, its log reads), so the figure says
//! where the time went.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use eventsource_core::process::RunningProcess;
use eventsource_core::projection::{RunnerRole, Standby};
use eventsource_core::{
    AppendBatch, Claims, Error, EventEnum, EventStore, EventStream, LogPage, LogQuery, Position,
    Process, ProcessManager, Repository, Result, Snapshot, StreamRange, StreamVisitor, Uuid,
    WakeUps, new_id,
};

use super::figure::Figure;
use super::workloads::{check, opened};
use super::{BenchResult, BenchStore, Report, Sizes, rss};
use crate::OpenedStore;
use crate::bank::{BankAccount, BankAccountEvent, Deposited};
use crate::transfers::{self, MoneyTransfer, Transfers};

/// Every transfer moves one euro.
const TRANSFER_CENTS: u64 = 100;

/// How long the process may take to react to what is pending before the workload fails.
const WAIT: Duration = Duration::from_secs(120);

/// W8 on the bench's store: the live run, then the catch-up run. `w2_per_second` is W2's rate
/// on the same store in the same run.
pub async fn w8(
    target: &BenchStore,
    sizes: &Sizes,
    w2_per_second: f64,
    report: &mut Report,
) -> BenchResult<()> {
    let name = target.name;
    let events = &target.store;
    match &target.opened {
        OpenedStore::Memory(store) => {
            run(
                name,
                Arc::clone(store),
                events,
                sizes,
                w2_per_second,
                report,
            )
            .await
        }
        OpenedStore::Sqlite(store) => {
            run(name, store.clone(), events, sizes, w2_per_second, report).await
        }
        #[cfg(feature = "postgres")]
        OpenedStore::Postgres(store) => {
            run(name, store.clone(), events, sizes, w2_per_second, report).await
        }
        #[cfg(feature = "nats")]
        OpenedStore::Nats(store) => {
            run(name, store.clone(), events, sizes, w2_per_second, report).await
        }
    }
}

async fn run<S: Claims>(
    name: &str,
    store: S,
    events: &Arc<dyn EventStore>,
    sizes: &Sizes,
    w2_per_second: f64,
    report: &mut Report,
) -> BenchResult<()> {
    let probe = Probe::new(store);
    let transfers = sizes.w8_transfers.max(1);

    // Live: the process runs while the requesters request.
    let bank = Bank::open(events, sizes).await?;
    let mut manager = ProcessManager::new(probe.clone(), Transfers);
    // Past what the earlier workloads wrote (none of it is a transfer), untimed.
    manager.catch_up().await?;
    let mut running = manager.spawn();
    wait_until_active(&running).await?;
    let before = events.last_position().await?;
    probe.counts.take();
    rss::reset_peak();
    let start = Instant::now();
    let requested = bank.request(events, sizes).await?;
    let requesting = start.elapsed().as_secs_f64();
    let waits = drain(events, &mut running).await?;
    let seconds = start.elapsed().as_secs_f64();
    let counts = probe.counts.take();
    let (_, outcome) = running.stop().await;
    outcome?;
    let written = bank.verify(events, &requested, before, "W8 live").await?;
    report.push(
        figure(
            name,
            "live",
            transfers,
            seconds,
            written,
            w2_per_second,
            &counts,
        )
        .with("requesters", sizes.w8_requesters.max(1))
        .with("last_request_s", requesting)
        .with("drain_waits", waits),
    );

    // Catch-up: every transfer requested first, then the process alone.
    let bank = Bank::open(events, sizes).await?;
    let before = events.last_position().await?;
    let start = Instant::now();
    let requested = bank.request(events, sizes).await?;
    let requesting = start.elapsed().as_secs_f64();
    // It resumes where the live run stopped: the requests are all that is pending.
    let mut manager = ProcessManager::new(probe.clone(), Transfers);
    probe.counts.take();
    rss::reset_peak();
    let mut seconds = 0.0;
    let mut rounds = 0_u64;
    loop {
        let start = Instant::now();
        manager.catch_up().await?;
        seconds += start.elapsed().as_secs_f64();
        rounds += 1;
        // Each call reads the events its own reactions caused too, so one should do; more
        // calls are timed as well, as a user would have to make them.
        let unfinished = bank.unfinished(events, &requested).await?;
        if unfinished == 0 {
            break;
        }
        if rounds >= 10 {
            return Err(format!(
                "W8 catch-up: {unfinished} transfers still unfinished after {rounds} catch_up calls"
            )
            .into());
        }
    }
    let counts = probe.counts.take();
    let written = bank
        .verify(events, &requested, before, "W8 catch-up")
        .await?;
    report.push(
        figure(
            name,
            "catch-up",
            transfers,
            seconds,
            written,
            w2_per_second,
            &counts,
        )
        .with("catch_up_calls", rounds)
        .with(
            "requests_per_second",
            (transfers as f64 / requesting.max(1e-9)).round() as u64,
        ),
    );
    Ok(())
}

/// A W8 figure: transfers per second, with the events the store holds for them, W2's rate and
/// the ratio of the two event rates, and what the process asked of the store.
fn figure(
    store: &str,
    variant: &str,
    transfers: u64,
    seconds: f64,
    written: u64,
    w2_per_second: f64,
    counts: &Counts,
) -> Figure {
    let events_per_second = written as f64 / seconds.max(1e-9);
    let per = |a: u64, b: u64| ((a as f64 / b.max(1) as f64) * 10.0).round() / 10.0;
    // Nanoseconds per call, in microseconds or milliseconds.
    let mean = |nanos: u64, unit: f64, calls: u64| {
        ((nanos as f64 / unit / calls.max(1) as f64) * 10.0).round() / 10.0
    };
    let share = |nanos: u64| ((nanos as f64 / 1e9 / seconds.max(1e-9)) * 100.0).round() / 100.0;
    Figure::new(store, "W8", variant, transfers, seconds)
        .with("events_written", written)
        .with("events_per_second", events_per_second.round() as u64)
        .with("w2_per_second", w2_per_second.round() as u64)
        .with(
            "ratio_to_w2",
            (events_per_second / w2_per_second.max(1e-9) * 100.0).round() / 100.0,
        )
        .with("batches", counts.appends)
        .with(
            "events_per_batch",
            per(counts.appended_events, counts.appends),
        )
        .with("conflicts", counts.conflicts)
        .with("loads_per_transfer", per(counts.loads, transfers))
        .with("replayed_per_load", per(counts.replayed, counts.loads))
        .with("load_us", mean(counts.load_nanos, 1e3, counts.loads))
        .with("append_ms", mean(counts.append_nanos, 1e6, counts.appends))
        .with("load_share", share(counts.load_nanos))
        .with("append_share", share(counts.append_nanos))
        .with("read_share", share(counts.read_nanos))
}

/// Waits until the spawned process holds its claim (so the clock doesn't count taking it).
async fn wait_until_active<S: Claims>(running: &RunningProcess<Transfers, S>) -> BenchResult<()> {
    let start = Instant::now();
    loop {
        let status = running.status();
        match status.role {
            RunnerRole::Active => return Ok(()),
            RunnerRole::Stopped => {
                return Err(format!(
                    "W8: the transfers process stopped before it started: {}",
                    status.error.unwrap_or_default()
                )
                .into());
            }
            RunnerRole::Claiming | RunnerRole::Standby if start.elapsed() > WAIT => {
                return Err(format!("W8: the transfers process was not active in {WAIT:?}").into());
            }
            RunnerRole::Claiming | RunnerRole::Standby => {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

/// Waits until the live process has reacted to every upstream event in the log (the requests
/// are all in: the caller has joined the requesters). Nothing upstream left after its position
/// means every request was debited and every debit credited: the reactions' events are
/// committed with the position. Returns how many batches it waited for.
///
/// `RunningProcess::wait_for(last_position)` alone can't tell: the log ends with the credits
/// and completions, which the process doesn't read, and its position only moves with a batch of
/// events it reacts to; so this waits for the next batch while upstream events are left.
async fn drain<S: Claims>(
    events: &Arc<dyn EventStore>,
    running: &mut RunningProcess<Transfers, S>,
) -> BenchResult<u64> {
    let upstream = <<Transfers as Process>::Event as EventEnum>::NAMES;
    let mut waits = 0;
    loop {
        let reached = running.status().position;
        let left = events
            .read_log(LogQuery::after(reached, 1).names(upstream.iter().copied()))
            .await?;
        if left.is_empty() {
            return Ok(waits);
        }
        waits += 1;
        if !running
            .wait_for(Position::new(reached.get() + 1), WAIT)
            .await?
        {
            return Err(format!(
                "W8 live: the transfers process did not move past {reached} in {WAIT:?}"
            )
            .into());
        }
    }
}

/// W8's accounts: fresh ids, each opened with a deposit that covers every transfer it could
/// be asked to send.
struct Bank {
    ids: Vec<Uuid>,
    deposit: u64,
}

/// The requested transfers: each one's index in the plan and its stream, in plan order.
type Requested = Vec<(u64, Uuid)>;

impl Bank {
    async fn open(events: &Arc<dyn EventStore>, sizes: &Sizes) -> BenchResult<Self> {
        let accounts = Repository::<BankAccount, _>::new(Arc::clone(events));
        let deposit = sizes.w8_transfers.max(1) * TRANSFER_CENTS;
        let mut ids = Vec::new();
        for _ in 0..sizes.w8_accounts.max(2) {
            let id = new_id();
            let opening: Vec<BankAccountEvent> = vec![
                opened().into(),
                Deposited {
                    cents: deposit,
                    currency: "EUR".into(),
                }
                .into(),
            ];
            accounts.create_with_id(id, opening).await?;
            ids.push(id);
        }
        Ok(Self { ids, deposit })
    }

    /// Transfer `k`'s source and target (indexes into `ids`): every account sends and
    /// receives, never to itself.
    fn pair(&self, k: u64) -> (usize, usize) {
        let n = self.ids.len() as u64;
        let from = k % n;
        let to = (from + 1 + (k / n) % (n - 1)) % n;
        (from as usize, to as usize)
    }

    /// Requests `w8_transfers` transfers from `w8_requesters` concurrent tasks, each one after
    /// the other; returns them in plan order.
    async fn request(&self, events: &Arc<dyn EventStore>, sizes: &Sizes) -> BenchResult<Requested> {
        let repository = Arc::new(Repository::<MoneyTransfer, _>::new(Arc::clone(events)));
        let (total, requesters) = (sizes.w8_transfers.max(1), sizes.w8_requesters.max(1));
        let mut tasks = Vec::new();
        for requester in 0..requesters {
            let repository = Arc::clone(&repository);
            let plan: Vec<(u64, Uuid, Uuid)> = (requester..total)
                .step_by(usize::try_from(requesters).unwrap_or(usize::MAX))
                .map(|k| {
                    let (from, to) = self.pair(k);
                    (k, self.ids[from], self.ids[to])
                })
                .collect();
            tasks.push(tokio::spawn(async move {
                let mut done = Vec::with_capacity(plan.len());
                for (k, from, to) in plan {
                    let id = transfers::request(&repository, from, to, TRANSFER_CENTS).await?;
                    done.push((k, id));
                }
                BenchResult::Ok(done)
            }));
        }
        let mut requested = Vec::new();
        for task in tasks {
            requested.extend(task.await??);
        }
        requested.sort_unstable();
        Ok(requested)
    }

    /// How many of the transfers the process has not finished.
    async fn unfinished(
        &self,
        events: &Arc<dyn EventStore>,
        requested: &Requested,
    ) -> BenchResult<u64> {
        let repository = Repository::<MoneyTransfer, _>::new(Arc::clone(events));
        let mut unfinished = 0;
        for (_, id) in requested {
            if !repository.get(*id).await?.is_finished() {
                unfinished += 1;
            }
        }
        Ok(unfinished)
    }

    /// Checks a run: every transfer completed, every account's balance what the plan makes it
    /// (so the money is conserved), and four events per transfer in the log after `before`:
    /// the request, the debit, the credit and the completion. Returns the events counted.
    async fn verify(
        &self,
        events: &Arc<dyn EventStore>,
        requested: &Requested,
        before: Position,
        what: &str,
    ) -> BenchResult<u64> {
        let transfers = Repository::<MoneyTransfer, _>::new(Arc::clone(events));
        let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
        let mut balances = vec![self.deposit; self.ids.len()];
        let mut received = vec![0_u64; self.ids.len()];
        for (k, id) in requested {
            let transfer = transfers.get(*id).await?;
            *statuses
                .entry(format!("{:?}", transfer.status))
                .or_default() += 1;
            let (from, to) = self.pair(*k);
            balances[from] = balances[from].saturating_sub(TRANSFER_CENTS);
            received[to] += TRANSFER_CENTS;
        }
        let completed = statuses.get("Completed").copied().unwrap_or(0);
        if completed != requested.len() as u64 {
            return Err(format!(
                "{what}: {completed} of {} transfers completed; by status: {statuses:?}",
                requested.len()
            )
            .into());
        }
        let accounts = Repository::<BankAccount, _>::new(Arc::clone(events));
        let mut total = 0;
        for (i, id) in self.ids.iter().enumerate() {
            let account = accounts.get(*id).await?;
            check(
                &format!("{what}: the balance of account {i} ({id})"),
                account.balance,
                balances[i] + received[i],
            )?;
            total += account.balance;
        }
        check(
            &format!("{what}: money on the accounts"),
            total,
            self.deposit * self.ids.len() as u64,
        )?;

        let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
        let mut after = before;
        loop {
            let page = events.read_log(LogQuery::after(after, 1_000)).await?;
            if page.is_empty() {
                break;
            }
            after = page.next;
            for event in &page.events {
                *by_name.entry(event.name.clone()).or_default() += 1;
            }
        }
        let n = requested.len() as u64;
        for step in [
            "TransferRequested",
            "DebitedForTransfer",
            "CreditedByTransfer",
            "TransferCompleted",
        ] {
            let found = by_name.get(step).copied().unwrap_or(0);
            if found != n {
                return Err(format!(
                    "{what}: {found} `{step}` events for {n} transfers; the log holds {by_name:?}"
                )
                .into());
            }
        }
        Ok(by_name.values().sum())
    }
}

/// What the process asked of the store since the last [`ProbeCounts::take`].
#[derive(Debug, Default)]
struct ProbeCounts {
    appends: AtomicU64,
    appended_events: AtomicU64,
    conflicts: AtomicU64,
    append_nanos: AtomicU64,
    loads: AtomicU64,
    replayed: AtomicU64,
    load_nanos: AtomicU64,
    read_nanos: AtomicU64,
}

/// [`ProbeCounts`] taken out.
#[derive(Debug, Default)]
struct Counts {
    /// Appends with a tracking record: one per batch of reactions.
    appends: u64,
    /// The events in them.
    appended_events: u64,
    /// Appends that met a version conflict (the batch then runs again).
    conflicts: u64,
    /// Time in appends.
    append_nanos: u64,
    /// Stream reads: the loads of the reactions.
    loads: u64,
    /// Events those loads replayed.
    replayed: u64,
    /// Time in loads (snapshot lookups, stream reads, versions).
    load_nanos: u64,
    /// Time in log reads (the process's subscription).
    read_nanos: u64,
}

impl ProbeCounts {
    fn take(&self) -> Counts {
        let take = |counter: &AtomicU64| counter.swap(0, Ordering::Relaxed);
        Counts {
            appends: take(&self.appends),
            appended_events: take(&self.appended_events),
            conflicts: take(&self.conflicts),
            append_nanos: take(&self.append_nanos),
            loads: take(&self.loads),
            replayed: take(&self.replayed),
            load_nanos: take(&self.load_nanos),
            read_nanos: take(&self.read_nanos),
        }
    }
}

fn add_elapsed(counter: &AtomicU64, start: Instant) {
    let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    counter.fetch_add(nanos, Ordering::Relaxed);
}

/// A store that hands every call to `S`, counting and timing what the process asks of it (the
/// process is the only user of the probe). The cost is an atomic add and a clock read per call.
#[derive(Clone)]
struct Probe<S> {
    store: S,
    counts: Arc<ProbeCounts>,
}

impl<S> Probe<S> {
    fn new(store: S) -> Self {
        Self {
            store,
            counts: Arc::default(),
        }
    }
}

impl<S> std::fmt::Debug for Probe<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

#[eventsource_core::async_trait]
impl<S: EventStore> EventStore for Probe<S> {
    async fn append(&self, batch: AppendBatch) -> Result<Position> {
        let tracked = batch.tracking.is_some();
        let events: usize = batch.streams.iter().map(|s| s.events.len()).sum();
        let start = Instant::now();
        let outcome = self.store.append(batch).await;
        add_elapsed(&self.counts.append_nanos, start);
        match &outcome {
            Ok(_) if tracked => {
                self.counts.appends.fetch_add(1, Ordering::Relaxed);
                self.counts
                    .appended_events
                    .fetch_add(events as u64, Ordering::Relaxed);
            }
            Err(Error::Conflict { .. }) => {
                self.counts.conflicts.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        outcome
    }

    fn read_stream(&self, stream_id: Uuid, range: StreamRange) -> EventStream<'_> {
        self.counts.loads.fetch_add(1, Ordering::Relaxed);
        self.store.read_stream(stream_id, range)
    }

    async fn visit_stream(
        &self,
        stream_id: Uuid,
        range: StreamRange,
        visit: &mut StreamVisitor<'_>,
    ) -> Result<()> {
        let start = Instant::now();
        let mut replayed = 0_u64;
        let mut counting = |event: eventsource_core::ReplayedEvent<'_>| {
            replayed += 1;
            visit(event)
        };
        let outcome = self
            .store
            .visit_stream(stream_id, range, &mut counting)
            .await;
        add_elapsed(&self.counts.load_nanos, start);
        self.counts.loads.fetch_add(1, Ordering::Relaxed);
        self.counts.replayed.fetch_add(replayed, Ordering::Relaxed);
        outcome
    }

    async fn stream_version(&self, stream_id: Uuid) -> Result<u64> {
        let start = Instant::now();
        let outcome = self.store.stream_version(stream_id).await;
        add_elapsed(&self.counts.load_nanos, start);
        outcome
    }

    async fn read_log(&self, query: LogQuery) -> Result<LogPage> {
        let start = Instant::now();
        let outcome = self.store.read_log(query).await;
        add_elapsed(&self.counts.read_nanos, start);
        outcome
    }

    async fn last_position(&self) -> Result<Position> {
        self.store.last_position().await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        self.store.save_snapshot(snapshot).await
    }

    async fn delete_snapshots(&self, stream_id: Uuid) -> Result<u64> {
        self.store.delete_snapshots(stream_id).await
    }

    async fn load_snapshot(
        &self,
        stream_id: Uuid,
        at_or_below: Option<u64>,
    ) -> Result<Option<Snapshot>> {
        let start = Instant::now();
        let outcome = self.store.load_snapshot(stream_id, at_or_below).await;
        add_elapsed(&self.counts.load_nanos, start);
        outcome
    }

    async fn tracking_position(&self, tracker: &str) -> Result<Position> {
        self.store.tracking_position(tracker).await
    }

    fn wake_ups(&self) -> WakeUps {
        self.store.wake_ups()
    }
}

impl<S: Claims> Claims for Probe<S> {
    type Claim = S::Claim;

    async fn claim(&self, tracker: &str, standby: &Standby) -> Result<S::Claim> {
        self.store.claim(tracker, standby).await
    }

    async fn claim_lost(claim: &mut S::Claim) {
        S::claim_lost(claim).await;
    }

    async fn release(&self, claim: S::Claim) {
        self.store.release(claim).await;
    }
}
