//! The bank's `transfers` process under fire: the acceptance tests of transfers run as a
//! process (`eventsource_examples::transfers`).
//!
//! - **Killed and restarted.** 20 accounts, 4 concurrent requesters issuing 1,000 transfers
//!   (random pairs, random amounts, so some sources are overdrawn and decline), one of them
//!   closing 2 accounts part-way (transfers to them are compensated, from them declined), while
//!   the process is killed without warning three times, each time once it has finished some
//!   transfers since it was started, and restarted. On a SQLite file and a PostgreSQL schema
//!   the process runs in a child process (this test binary run again with `ES_TRANSFERS_CHILD`
//!   set) killed with SIGKILL. A memory store can't be shared with another process, so there
//!   the process runs on a tokio runtime of its own (its own worker thread) that is shut down
//!   abruptly (`shutdown_background`, every task dropped at its next await) and replaced by a
//!   new one on the same `MemoryStore`.
//!   A restart on SQLite waits for the killed run's lease to expire (1 s here, set with
//!   `SqliteOptions::claim_lease`; 10 s by default).
//! - **Taken over.** Two child processes run the same `System` live on one PostgreSQL schema
//!   while 400 transfers are requested; each prints its `transfers` runner's role as it
//!   changes. The active one is killed part-way; the other, on standby until then (and never
//!   active before the kill), takes over and finishes the work.
//!
//! Afterwards everything is checked from the store's log: every transfer finished exactly
//! once, with exactly the account events its outcome calls for (none duplicated, none lost),
//! causation and correlation ids chaining each step to the one it follows, no account ever
//! debited below zero or moved after it was closed, and the balances adding up to what was
//! deposited.
//!
//! The requesters never get more than `WINDOW` transfers ahead of the process, so requests keep
//! coming in until the end, through every kill, instead of all being stored before the first
//! one. The processes run with a small page size (`PAGE`), so each commit covers a few
//! upstream events and a kill lands between commits; a child process is slower than the
//! requesters, so it is killed with work in hand (checked; the memory store's process keeps up
//! with them, so there it may be idle). Set `TRANSFERS_SEED` to replay the same requests (pairs
//! and amounts; the interleaving with the process still varies).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use eventsource_core::prelude::*;
use eventsource_core::process::RunningProcess;
use eventsource_core::projection::RunnerRole;
use eventsource_core::{Claims, LogQuery, Position, SqliteOptions, StoredEvent};
use eventsource_examples::bank::{
    BankAccount, BankAccountEvent, BankError, CreditedByTransfer, DebitedForTransfer, Opened,
    RefundedForTransfer,
};
use eventsource_examples::transfers::{
    self, MoneyTransfer, MoneyTransferEvent, TransferCompensated, TransferCompleted,
    TransferDeclined, TransferRequested, Transfers,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod support;
use support::child::ChildRun;
use support::postgres::{Server, url};
use support::rng::{Rng, seed};

const ACCOUNTS: usize = 20;
/// Deposited on each account when it is opened, in cents (1,000.00).
const DEPOSIT: u64 = 100_000;
/// The largest transfer, in cents (250.00): large enough next to the deposit that some sources
/// run dry.
const MAX_CENTS: u64 = 25_000;
const REQUESTERS: usize = 4;
/// How many of the accounts the first requester closes, half-way through its requests.
const CLOSED: usize = 2;
/// Upstream events per commit of the process in this file's runs.
const PAGE: usize = 4;
/// The most transfers the requesters may have requested that the process has not finished.
const WINDOW: u64 = 60;
/// Each run of the process is killed once it has finished this many transfers since its start.
const KILL_AFTER: [u64; 3] = [80, 150, 110];
/// The longest any one wait of these tests may take.
const DEADLINE: Duration = Duration::from_secs(60);

/// The terminal events of a transfer.
const FINISHED: [&str; 3] = [
    <TransferCompleted as Event>::NAME,
    <TransferCompensated as Event>::NAME,
    <TransferDeclined as Event>::NAME,
];
/// What the process reacts to.
const UPSTREAM: [&str; 2] = [
    <TransferRequested as Event>::NAME,
    <DebitedForTransfer as Event>::NAME,
];

/// The process as this file runs it: small commits, quick to notice new requests and to take
/// over from a dead runner.
fn transfers_process<S: Claims>(store: S) -> ProcessManager<Transfers, S> {
    ProcessManager::new(store, Transfers)
        .page_size(PAGE)
        .poll_interval(Duration::from_millis(50))
        .standby_interval(Duration::from_millis(50))
}

// ---------------------------------------------------------------------------------------------
// The requests.

/// A transfer a requester asked for.
#[derive(Debug, Clone)]
struct Request {
    id: Uuid,
    from: Uuid,
    to: Uuid,
    cents: u64,
    correlation: Uuid,
    actor: String,
}

/// Opens the accounts, each with `DEPOSIT`.
async fn open_accounts<S: EventStore + Clone + 'static>(store: &S) -> Vec<Uuid> {
    let accounts = Repository::<BankAccount, _>::new(store.clone());
    let mut ids = Vec::new();
    for n in 0..ACCOUNTS {
        let id = accounts
            .create(Opened {
                owner: format!("customer {n}"),
                currency: "EUR".into(),
            })
            .await
            .expect("open an account");
        accounts
            .execute(id, |account| account.deposit(DEPOSIT))
            .await
            .expect("the opening deposit");
        ids.push(id);
    }
    ids
}

/// Follows the log and counts the transfers finished so far (their terminal events): what the
/// requesters pace themselves on and the kills wait for.
fn count_finished<S: EventStore + Clone + 'static>(
    store: S,
) -> (watch::Receiver<u64>, JoinHandle<()>) {
    let (sender, finished) = watch::channel(0);
    let task = tokio::spawn(async move {
        let mut after = Position::START;
        let mut count = 0;
        loop {
            let page = store
                .read_log(LogQuery::after(after, 1_000).names(FINISHED))
                .await
                .expect("read the log for finished transfers");
            after = page.next;
            if page.is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            count += page.len() as u64;
            sender.send_replace(count);
        }
    });
    (finished, task)
}

/// The requesters, issuing transfers in the background.
struct Requesters {
    tasks: Vec<JoinHandle<Vec<Request>>>,
    requested: Arc<AtomicU64>,
    total: u64,
}

impl Requesters {
    /// `REQUESTERS` tasks issuing `each` transfers between random pairs of `accounts`, never
    /// more than `WINDOW` ahead of the process's finished transfers. The first closes `closing`
    /// half-way through.
    fn start<S: EventStore + Clone + 'static>(
        store: &S,
        accounts: &[Uuid],
        each: usize,
        closing: &[Uuid],
        finished: &watch::Receiver<u64>,
        seed: u64,
    ) -> Self {
        let requested = Arc::new(AtomicU64::new(0));
        let tasks = (0..REQUESTERS)
            .map(|requester| {
                let store = store.clone();
                let accounts = accounts.to_vec();
                let closing = if requester == 0 { closing.to_vec() } else { Vec::new() };
                let mut finished = finished.clone();
                let requested = Arc::clone(&requested);
                let mut rng = Rng(seed).fork(requester as u64);
                tokio::spawn(async move {
                    let transfers_repo = Repository::<MoneyTransfer, _>::new(store.clone());
                    let accounts_repo =
                        Repository::<BankAccount, _>::new(store.clone()).max_attempts(1_000);
                    let actor = format!("requester-{requester}");
                    let mut made = Vec::with_capacity(each);
                    for n in 0..each {
                        let ahead = |done: &u64| requested.load(Ordering::SeqCst) < done + WINDOW;
                        match tokio::time::timeout(DEADLINE, finished.wait_for(ahead)).await {
                            Ok(Ok(_)) => {}
                            Ok(Err(_)) => panic!("{actor}: the finished-transfer counter stopped"),
                            Err(_) => panic!(
                                "{actor}: the process finished no transfer for {DEADLINE:?} ({} requested)",
                                requested.load(Ordering::SeqCst)
                            ),
                        }
                        if n == each / 2 {
                            for &account in &closing {
                                CommandContext::new()
                                    .with_actor(actor.clone())
                                    .scope(accounts_repo.execute(account, |a| {
                                        a.close("closed while transfers were under way")
                                    }))
                                    .await
                                    .expect("close an account");
                            }
                        }
                        let from = rng.below(accounts.len() as u64) as usize;
                        let mut to = rng.below(accounts.len() as u64 - 1) as usize;
                        if to >= from {
                            to += 1;
                        }
                        let (from, to) = (accounts[from], accounts[to]);
                        let cents = 1 + rng.below(MAX_CENTS);
                        let correlation = Uuid::now_v7();
                        let id = CommandContext::new()
                            .with_actor(actor.clone())
                            .with_correlation_id(correlation)
                            .scope(transfers::request(&transfers_repo, from, to, cents))
                            .await
                            .expect("request a transfer");
                        requested.fetch_add(1, Ordering::SeqCst);
                        made.push(Request {
                            id,
                            from,
                            to,
                            cents,
                            correlation,
                            actor: actor.clone(),
                        });
                    }
                    made
                })
            })
            .collect();
        Self {
            tasks,
            requested,
            total: (REQUESTERS * each) as u64,
        }
    }

    fn requested(&self) -> u64 {
        self.requested.load(Ordering::SeqCst)
    }

    async fn finish(self) -> Vec<Request> {
        let mut requests = Vec::new();
        for task in self.tasks {
            requests.extend(task.await.expect("a requester task"));
        }
        assert_eq!(requests.len() as u64, self.total);
        requests
    }
}

// ---------------------------------------------------------------------------------------------
// Where the process runs, and how it dies.

/// A run of the process on a tokio runtime of its own (for the memory store), shut down
/// without waiting: every task of it is dropped at its next await, as if the process died.
struct RuntimeRun {
    runtime: Option<tokio::runtime::Runtime>,
    running: RunningProcess<Transfers, MemoryStore>,
}

impl RuntimeRun {
    fn start(store: MemoryStore) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("transfers-process")
            .enable_all()
            .build()
            .expect("a runtime for the process");
        let running = {
            let _inside = runtime.enter();
            transfers_process(store).spawn()
        };
        Self {
            runtime: Some(runtime),
            running,
        }
    }
}

impl RuntimeRun {
    /// `Err` (with its error) if the process stopped on its own.
    fn alive(&self) -> Result<(), String> {
        let status = self.running.status();
        match status.running {
            true => Ok(()),
            false => Err(format!("the process stopped: {:?}", status.error)),
        }
    }
}

impl Drop for RuntimeRun {
    /// Dropping a runtime blocks, which an async context forbids: shut it down in the background.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Where one run of the process is.
enum Run {
    Child(ChildRun),
    Runtime(RuntimeRun),
}

impl Run {
    fn alive(&mut self) -> Result<(), String> {
        match self {
            Run::Child(child) => child.alive(),
            Run::Runtime(run) => run.alive(),
        }
    }

    fn kill(self) {
        match self {
            Run::Child(mut child) => child.kill(),
            Run::Runtime(mut run) => {
                run.alive()
                    .unwrap_or_else(|why| panic!("before the kill: {why}"));
                if let Some(runtime) = run.runtime.take() {
                    runtime.shutdown_background();
                }
            }
        }
    }
}

/// Waits until at least `target` transfers are finished, failing if `run` dies or the
/// deadline passes.
async fn wait_finished(
    finished: &mut watch::Receiver<u64>,
    target: u64,
    run: &mut Run,
    what: &str,
) {
    let deadline = Instant::now() + DEADLINE;
    while *finished.borrow() < target {
        run.alive().unwrap_or_else(|why| panic!("{what}: {why}"));
        assert!(
            Instant::now() < deadline,
            "{what}: only {} of {target} transfers finished after {DEADLINE:?}",
            *finished.borrow()
        );
        let _ = tokio::time::timeout(Duration::from_millis(50), finished.changed()).await;
    }
}

/// Waits until every requested transfer is finished (`MoneyTransfer::is_finished`), failing if
/// `run` dies or the deadline passes.
async fn wait_all_finished<S: EventStore + Clone + 'static>(
    store: &S,
    requests: &[Request],
    run: &mut Run,
    label: &str,
) {
    let transfers = Repository::<MoneyTransfer, _>::new(store.clone());
    let mut open: Vec<Uuid> = requests.iter().map(|r| r.id).collect();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut still = Vec::new();
        for id in open {
            let transfer = transfers.get(id).await.expect("load a transfer");
            if !transfer.is_finished() {
                still.push(id);
            }
        }
        open = still;
        if open.is_empty() {
            return;
        }
        run.alive()
            .unwrap_or_else(|why| panic!("{label}: the last run: {why}"));
        assert!(
            Instant::now() < deadline,
            "{label}: {} transfers still unfinished after {DEADLINE:?}, e.g. {}",
            open.len(),
            open[0]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Right after a kill: the process's tracking position, the log's last position, and how many
/// upstream events up to there the process had not reacted to (its work in hand).
async fn left_by_the_kill<S: EventStore>(store: &S) -> (Position, Position, usize) {
    let tracked = store
        .tracking_position(Transfers::NAME)
        .await
        .expect("the process's tracking position");
    let last = store.last_position().await.expect("the last position");
    let in_hand = store
        .read_log(
            LogQuery::after(tracked, 100_000)
                .names(UPSTREAM)
                .up_to(last),
        )
        .await
        .expect("read the upstream events after the tracking position")
        .len();
    (tracked, last, in_hand)
}

// ---------------------------------------------------------------------------------------------
// Test 1: killed three times and restarted, on every store.

/// Runs the scenario on `store`: requesters in this process, the process in runs started by
/// `start` and killed three times part-way, a last run until everything is finished; then
/// checks the log.
async fn killed_and_restarted<S: EventStore + Clone + 'static>(
    label: &str,
    store: S,
    mut start: impl FnMut() -> Run,
) {
    let began = Instant::now();
    let accounts = open_accounts(&store).await;
    let (mut finished, counter) = count_finished(store.clone());
    let requesters = Requesters::start(
        &store,
        &accounts,
        1_000 / REQUESTERS,
        &accounts[ACCOUNTS - CLOSED..],
        &finished,
        seed("TRANSFERS_SEED", label),
    );
    let mut run = start();
    for (kill, &after) in KILL_AFTER.iter().enumerate() {
        let since = *finished.borrow();
        wait_finished(
            &mut finished,
            since + after,
            &mut run,
            &format!("{label}, run {}", kill + 1),
        )
        .await;
        let requested = requesters.requested();
        let done = *finished.borrow();
        let in_a_child = matches!(run, Run::Child(_));
        run.kill();
        let (tracked, last, in_hand) = left_by_the_kill(&store).await;
        println!(
            "{label}: kill {} at tracking position {tracked} (log at {last}; {in_hand} upstream events not yet reacted to), {done} transfers finished, {requested} of {} requested",
            kill + 1,
            requesters.total
        );
        assert!(
            requested < requesters.total,
            "{label}: kill {} landed after the last request: the requests must still be coming in",
            kill + 1
        );
        // A child process is the bottleneck (the requesters wait for it): it dies with work in
        // hand. The memory store's process keeps up with the requesters, so there it may not.
        if in_a_child {
            assert!(
                in_hand > 0,
                "{label}: kill {} landed while the process had nothing to do",
                kill + 1
            );
        }
        run = start();
    }
    let requests = requesters.finish().await;
    wait_all_finished(&store, &requests, &mut run, label).await;
    run.kill();
    counter.abort();
    let outcome = check_log(label, &store, &accounts, &requests).await;
    outcome.assert_every_path_taken(label);
    println!("{label}: {outcome} in {:.1?}", began.elapsed());
}

/// The SQLite file of the kill test, with a 1 s claim lease so a restart after a kill takes
/// over within a second (the default is 10 s).
async fn sqlite_store(path: impl AsRef<std::path::Path>) -> SqliteStore {
    SqliteOptions::file(path)
        .claim_lease(Duration::from_secs(1))
        .open()
        .await
        .expect("open the SQLite file")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_transfers_survive_three_kills_of_the_process() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("transfers.db");
    let store = sqlite_store(&path).await;
    let spec = format!("sqlite:{}", path.to_str().expect("a UTF-8 path"));
    let mut runs = 0;
    killed_and_restarted("sqlite", store, || {
        runs += 1;
        Run::Child(ChildRun::start(
            CHILD,
            &[(CHILD_ENV, &spec)],
            dir.path().join(format!("run-{runs}.stderr")),
            Stdio::null(),
        ))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_transfers_survive_three_kills_of_the_process() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server.store("transfers").await;
    let spec = format!("postgres:{}", store.schema());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut runs = 0;
    killed_and_restarted("postgres", store, || {
        runs += 1;
        Run::Child(ChildRun::start(
            CHILD,
            &[(CHILD_ENV, &spec)],
            dir.path().join(format!("run-{runs}.stderr")),
            Stdio::null(),
        ))
    })
    .await;
    server.finish().await;
}

/// The memory store can't be shared with a child process: the process runs on a runtime of its
/// own, shut down abruptly three times and replaced by a new one on the same store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_transfers_survive_three_abrupt_runtime_shutdowns() {
    let store = MemoryStore::new();
    let shared = store.clone();
    killed_and_restarted("memory", store, || {
        Run::Runtime(RuntimeRun::start(shared.clone()))
    })
    .await;
}

const CHILD: &str = "child_runs_the_transfers_process_until_killed";
const CHILD_ENV: &str = "ES_TRANSFERS_CHILD";

/// The child of the kill tests: runs the process until killed. `ES_TRANSFERS_CHILD` is
/// `sqlite:<path>` or `postgres:<schema>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of the *_transfers_survive_three_kills_of_the_process tests"]
async fn child_runs_the_transfers_process_until_killed() {
    let spec = std::env::var(CHILD_ENV).expect("ES_TRANSFERS_CHILD names the store");
    if let Some(path) = spec.strip_prefix("sqlite:") {
        let store = sqlite_store(path).await;
        run_until_killed(transfers_process(store).spawn()).await;
    } else if let Some(schema) = spec.strip_prefix("postgres:") {
        let store = PostgresStore::options(url())
            .schema(schema)
            .connect()
            .await
            .expect("connect to PostgreSQL");
        run_until_killed(transfers_process(store).spawn()).await;
    } else {
        panic!("ES_TRANSFERS_CHILD is `sqlite:<path>` or `postgres:<schema>`, not {spec:?}");
    }
}

/// Lets the process run until the parent kills this child; if it stops by itself, the child
/// ends and the parent reports it.
async fn run_until_killed<S: Claims>(running: RunningProcess<Transfers, S>) {
    loop {
        let status = running.status();
        assert!(
            status.running,
            "the transfers process stopped: {:?}",
            status.error
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Test 2: two processes running the same system on PostgreSQL; the active one dies.

const SYSTEM_CHILD: &str = "child_runs_the_bank_system_until_killed";
const SYSTEM_CHILD_ENV: &str = "ES_TRANSFERS_SYSTEM_CHILD";
/// What a system child's status lines start with.
const ROLE_LINE: &str = "transfers-role:";

/// The child of the takeover test: runs the bank's system live on the schema named by
/// `ES_TRANSFERS_SYSTEM_CHILD` and prints a line whenever its `transfers` runner changes role:
/// `transfers-role: <role> <microseconds since the Unix epoch>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of two_systems_on_postgres_one_takes_over_when_the_active_one_is_killed"]
async fn child_runs_the_bank_system_until_killed() {
    let schema =
        std::env::var(SYSTEM_CHILD_ENV).expect("ES_TRANSFERS_SYSTEM_CHILD names the schema");
    let store = PostgresStore::options(url())
        .schema(schema)
        .connect()
        .await
        .expect("connect to PostgreSQL");
    let running = System::new(store.clone())
        .aggregate::<BankAccount>()
        .aggregate::<MoneyTransfer>()
        .process_manager(transfers_process(store))
        .spawn()
        .expect("start the system");
    let mut reported = None;
    loop {
        let (_, status) = running
            .status()
            .into_iter()
            .find(|(name, _)| *name == Transfers::NAME)
            .expect("the system runs the transfers process");
        assert!(
            status.running,
            "the transfers process stopped: {:?}",
            status.error
        );
        if reported != Some(status.role) {
            println!("{ROLE_LINE} {:?} {}", status.role, micros_now());
            reported = Some(status.role);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn micros_now() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_micros()
}

/// A system child and the role lines it printed (role, when the child printed it).
struct SystemChild {
    run: Run,
    roles: Arc<Mutex<Vec<(String, u128)>>>,
}

impl SystemChild {
    fn start(schema: &str, stderr: PathBuf) -> Self {
        let mut child = ChildRun::start(
            SYSTEM_CHILD,
            &[(SYSTEM_CHILD_ENV, schema)],
            stderr,
            Stdio::piped(),
        );
        let stdout = child.process().stdout.take().expect("the child's stdout");
        let roles = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&roles);
        // The test harness may print on the same line before ours: look for the marker anywhere.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Some(at) = line.find(ROLE_LINE) else {
                    continue;
                };
                let mut words = line[at + ROLE_LINE.len()..].split_whitespace();
                let (Some(role), Some(micros)) = (words.next(), words.next()) else {
                    continue;
                };
                let micros = micros.parse().expect("a time in microseconds");
                lines
                    .lock()
                    .expect("the role lines")
                    .push((role.to_owned(), micros));
            }
        });
        Self {
            run: Run::Child(child),
            roles,
        }
    }

    /// When it first printed `role`, if it did.
    fn first(&self, role: RunnerRole) -> Option<u128> {
        let role = format!("{role:?}");
        let roles = self.roles.lock().expect("the role lines");
        roles.iter().find(|(r, _)| *r == role).map(|&(_, at)| at)
    }

    fn times(&self, role: RunnerRole) -> usize {
        let role = format!("{role:?}");
        let roles = self.roles.lock().expect("the role lines");
        roles.iter().filter(|(r, _)| *r == role).count()
    }
}

/// Waits until one of `children` has printed `role`; returns its index.
async fn wait_for_role(children: &mut [SystemChild], role: RunnerRole, what: &str) -> usize {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(index) = children.iter().position(|c| c.first(role).is_some()) {
            return index;
        }
        for child in children.iter_mut() {
            child
                .run
                .alive()
                .unwrap_or_else(|why| panic!("{what}: {why}"));
        }
        assert!(
            Instant::now() < deadline,
            "{what}: no child was {role:?} after {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_systems_on_postgres_one_takes_over_when_the_active_one_is_killed() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let began = Instant::now();
    let label = "takeover";
    let store = server.store("takeover").await;
    let schema = store.schema().to_owned();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let accounts = open_accounts(&store).await;
    let (mut finished, counter) = count_finished(store.clone());
    let mut children: Vec<SystemChild> = (0..2)
        .map(|n| SystemChild::start(&schema, dir.path().join(format!("system-{n}.stderr"))))
        .collect();
    let requesters = Requesters::start(
        &store,
        &accounts,
        100,
        &accounts[ACCOUNTS - CLOSED..],
        &finished,
        seed("TRANSFERS_SEED", label),
    );

    let first = wait_for_role(&mut children, RunnerRole::Active, "the first active runner").await;
    let second = 1 - first;
    // The other one runs the same system meanwhile, waiting on standby.
    let deadline = Instant::now() + DEADLINE;
    let both_active = |children: &[SystemChild]| {
        format!(
            "{label}: before the kill, only the first runner may be active: {:?} and {:?}",
            children[first].roles.lock().unwrap(),
            children[second].roles.lock().unwrap()
        )
    };
    while children[second].first(RunnerRole::Standby).is_none() {
        assert!(
            children[second].first(RunnerRole::Active).is_none(),
            "{}",
            both_active(&children)
        );
        children[second]
            .run
            .alive()
            .unwrap_or_else(|why| panic!("the second runner: {why}"));
        assert!(
            Instant::now() < deadline,
            "{label}: the second runner was not on standby after {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let since = *finished.borrow();
    wait_finished(
        &mut finished,
        since + 120,
        &mut children[first].run,
        "the first runner",
    )
    .await;
    // Checked again after the wait: a second active runner would have had all that time.
    assert_eq!(
        (
            children[first].times(RunnerRole::Active),
            children[second].times(RunnerRole::Active)
        ),
        (1, 0),
        "{}",
        both_active(&children)
    );
    let requested = requesters.requested();
    let done = *finished.borrow();
    let killed_at = micros_now();
    let SystemChild {
        run: killed,
        roles: first_roles,
    } = children.remove(first);
    killed.kill();
    let (tracked, last, in_hand) = left_by_the_kill(&store).await;
    println!(
        "{label}: killed the active runner at tracking position {tracked} (log at {last}; {in_hand} upstream events not yet reacted to), {done} transfers finished, {requested} of {} requested",
        requesters.total
    );
    assert!(
        requested < requesters.total,
        "{label}: the kill landed after the last request"
    );
    assert!(
        in_hand > 0,
        "{label}: the kill landed while the process had nothing to do"
    );

    let mut survivor = children.remove(0);
    wait_for_role(
        std::slice::from_mut(&mut survivor),
        RunnerRole::Active,
        "the takeover",
    )
    .await;
    let took_over = survivor.first(RunnerRole::Active).expect("it was active");
    println!(
        "{label}: the standby runner was active {:.1} ms after the kill",
        (took_over.saturating_sub(killed_at)) as f64 / 1_000.0
    );
    assert!(
        took_over > killed_at,
        "{label}: the second runner was active before the first was killed: {:?} and {:?}",
        first_roles.lock().unwrap(),
        survivor.roles.lock().unwrap()
    );
    assert_eq!(
        first_roles
            .lock()
            .unwrap()
            .iter()
            .filter(|(r, _)| r == "Active")
            .count(),
        1,
        "{label}: the first runner was active once, until it was killed: {:?}",
        first_roles.lock().unwrap()
    );

    let requests = requesters.finish().await;
    wait_all_finished(&store, &requests, &mut survivor.run, label).await;
    assert_eq!(
        survivor.times(RunnerRole::Active),
        1,
        "{label}: the survivor stayed active once it took over: {:?}",
        survivor.roles.lock().unwrap()
    );
    let SystemChild { run, .. } = survivor;
    run.kill();
    counter.abort();
    let outcome = check_log(label, &store, &accounts, &requests).await;
    outcome.assert_every_path_taken(label);
    println!("{label}: {outcome} in {:.1?}", began.elapsed());
    server.finish().await;
}

// ---------------------------------------------------------------------------------------------
// What the log must show.

/// How the transfers ended.
#[derive(Debug, Default)]
struct Outcome {
    completed: usize,
    compensated: usize,
    /// Declined because the source was closed.
    declined_closed: usize,
    /// Declined because the source could not cover the amount.
    declined_funds: usize,
}

impl Outcome {
    fn declined(&self) -> usize {
        self.declined_closed + self.declined_funds
    }

    /// The scenario exercised every path of the process: a run that never compensated or
    /// never declined for want of money proves nothing about them.
    fn assert_every_path_taken(&self, label: &str) {
        assert!(self.completed > 0, "{label}: no transfer completed: {self}");
        assert!(
            self.compensated > 0,
            "{label}: no transfer was compensated: {self}"
        );
        assert!(
            self.declined_closed > 0,
            "{label}: no transfer from a closed account: {self}"
        );
        assert!(
            self.declined_funds > 0,
            "{label}: no source ran short: {self}"
        );
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} completed, {} compensated, {} declined ({} from a closed account, {} short of money)",
            self.completed,
            self.compensated,
            self.declined(),
            self.declined_closed,
            self.declined_funds
        )
    }
}

/// What the log holds about one transfer.
#[derive(Default)]
struct Trail {
    requested: Vec<Recorded<TransferRequested>>,
    finished: Vec<Recorded<MoneyTransferEvent>>,
    debits: Vec<Recorded<DebitedForTransfer>>,
    credits: Vec<Recorded<CreditedByTransfer>>,
    refunds: Vec<Recorded<RefundedForTransfer>>,
}

/// An account as its events add up, in signed cents (so a debit below zero shows).
#[derive(Default)]
struct Ledger {
    balance: i64,
    version: u64,
    closed_at: Option<Position>,
}

async fn read_log<S: EventStore>(store: &S) -> Vec<StoredEvent> {
    let mut events = Vec::new();
    let mut after = Position::START;
    loop {
        let page = store
            .read_log(LogQuery::after(after, 5_000))
            .await
            .expect("read the log");
        if page.is_empty() {
            return events;
        }
        after = page.next;
        events.extend(page.events);
    }
}

/// Checks the whole log after every transfer finished; returns how they ended.
async fn check_log<S: EventStore + Clone + 'static>(
    label: &str,
    store: &S,
    accounts: &[Uuid],
    requests: &[Request],
) -> Outcome {
    let tracked = store
        .tracking_position(Transfers::NAME)
        .await
        .expect("the process's tracking position");
    let left = store
        .read_log(LogQuery::after(tracked, 100).names(UPSTREAM))
        .await
        .expect("read the log after the tracking position");
    assert!(
        left.is_empty(),
        "{label}: every transfer is finished, yet the process's tracking position {tracked} is before {} of the events it reacts to",
        left.len()
    );
    let log = read_log(store).await;
    let account_repo = Repository::<BankAccount, _>::new(store.clone());
    let transfer_repo = Repository::<MoneyTransfer, _>::new(store.clone());
    let mut ids = HashSet::new();
    let mut ledgers: BTreeMap<Uuid, Ledger> =
        accounts.iter().map(|&id| (id, Ledger::default())).collect();
    let mut trails: HashMap<Uuid, Trail> = HashMap::new();
    // What the accounts' own streams show (reported after the transfers, which say more).
    let mut faults = Vec::new();
    for stored in log {
        assert!(
            ids.insert(stored.id),
            "{label}: event id {} stored twice (again at position {})",
            stored.id,
            stored.position
        );
        let (stream, position) = (stored.stream_id, stored.position);
        if stored.category == <BankAccount as Aggregate>::NAME {
            let event = account_repo
                .decode(&stored)
                .await
                .expect("decode an account event");
            let ledger = ledgers
                .get_mut(&stream)
                .unwrap_or_else(|| panic!("{label}: an account nobody opened: {stream}"));
            assert_eq!(
                stored.version,
                ledger.version + 1,
                "{label}: account {stream}'s versions"
            );
            ledger.version = stored.version;
            let mut fault = |what: String| {
                faults.push(format!("account {stream} {what} (position {position})"))
            };
            let closed = ledger.closed_at.is_some();
            match event {
                BankAccountEvent::Opened(_) | BankAccountEvent::Closed(_) if closed => {
                    fault("opened or closed after it was closed".into())
                }
                BankAccountEvent::Opened(_) => {}
                BankAccountEvent::Closed(_) => ledger.closed_at = Some(position),
                BankAccountEvent::Deposited(d) => ledger.balance += d.cents as i64,
                BankAccountEvent::DebitedForTransfer(d) => {
                    if closed {
                        fault(format!("debited for {} after it was closed", d.transfer));
                    }
                    if ledger.balance < d.cents as i64 {
                        fault(format!(
                            "debited {} for {} with {} on it",
                            d.cents, d.transfer, ledger.balance
                        ));
                    }
                    ledger.balance -= d.cents as i64;
                    let trail = trails.entry(d.transfer).or_default();
                    trail.debits.push(Recorded::new(d, stored));
                }
                BankAccountEvent::CreditedByTransfer(c) => {
                    if closed {
                        fault(format!("credited for {} after it was closed", c.transfer));
                    }
                    ledger.balance += c.cents as i64;
                    let trail = trails.entry(c.transfer).or_default();
                    trail.credits.push(Recorded::new(c, stored));
                }
                BankAccountEvent::RefundedForTransfer(r) => {
                    ledger.balance += r.cents as i64;
                    let trail = trails.entry(r.transfer).or_default();
                    trail.refunds.push(Recorded::new(r, stored));
                }
                other => panic!("{label}: an account event this scenario never causes: {other:?}"),
            }
        } else if stored.category == <MoneyTransfer as Aggregate>::NAME {
            let event = transfer_repo
                .decode(&stored)
                .await
                .expect("decode a transfer event");
            let trail = trails.entry(stream).or_default();
            match event {
                MoneyTransferEvent::TransferRequested(r) => {
                    trail.requested.push(Recorded::new(r, stored))
                }
                finished => trail.finished.push(Recorded::new(finished, stored)),
            }
        } else {
            panic!("{label}: an event of an unexpected category: {stored:?}");
        }
    }

    let requested: HashSet<Uuid> = requests.iter().map(|r| r.id).collect();
    let strays: Vec<_> = trails.keys().filter(|id| !requested.contains(id)).collect();
    assert!(
        strays.is_empty(),
        "{label}: events for transfers nobody requested: {strays:?}"
    );

    let closed = BankError::Closed.to_string();
    let mut outcome = Outcome::default();
    for request in requests {
        let id = request.id;
        let trail = trails
            .remove(&id)
            .unwrap_or_else(|| panic!("{label}: transfer {id} is not in the log"));
        let counts = (trail.debits.len(), trail.credits.len(), trail.refunds.len());
        let [asked] = &trail.requested[..] else {
            panic!(
                "{label}: transfer {id} has {} requests",
                trail.requested.len()
            )
        };
        assert_eq!(
            (asked.event.from, asked.event.to, asked.event.cents),
            (request.from, request.to, request.cents),
            "{label}: transfer {id}'s request"
        );
        assert_eq!(
            asked.correlation_id(),
            Some(request.correlation),
            "{label}: {id}'s request"
        );
        assert_eq!(
            asked.actor(),
            Some(request.actor.as_str()),
            "{label}: {id}'s request"
        );
        let [end] = &trail.finished[..] else {
            panic!(
                "{label}: transfer {id} finished {} times: {:?}",
                trail.finished.len(),
                trail
                    .finished
                    .iter()
                    .map(|f| (&f.event, f.position))
                    .collect::<Vec<_>>()
            )
        };
        assert_eq!(
            end.version, 2,
            "{label}: transfer {id} ends right after its request"
        );
        // Every step: caused by the one before, in the request's correlation, by the process.
        let caused = |what: &str, by: Uuid, at: &Recorded<()>| {
            assert_eq!(
                at.causation_id(),
                Some(by),
                "{label}: the cause of {id}'s {what}"
            );
            assert_eq!(
                at.correlation_id(),
                Some(request.correlation),
                "{label}: the correlation of {id}'s {what}"
            );
            assert_eq!(
                at.actor(),
                Some(Transfers::NAME),
                "{label}: who wrote {id}'s {what}"
            );
        };
        let debit = trail.debits.first();
        if let Some(debit) = debit {
            assert_eq!(
                debit.stream_id, request.from,
                "{label}: {id} debits its source"
            );
            assert_eq!(debit.event.to, request.to, "{label}: {id}'s debit");
            assert_eq!(debit.event.cents, request.cents, "{label}: {id}'s debit");
            caused("debit", asked.id, &debit.clone().without_event());
        }
        match &end.event {
            MoneyTransferEvent::TransferCompleted(done) => {
                assert_eq!(
                    counts,
                    (1, 1, 0),
                    "{label}: completed {id}: (debits, credits, refunds)"
                );
                let (debit, credit) = (&trail.debits[0], &trail.credits[0]);
                assert_eq!(
                    credit.stream_id, request.to,
                    "{label}: {id} credits its target"
                );
                assert_eq!(
                    (credit.event.from, credit.event.cents, done.cents),
                    (request.from, request.cents, request.cents),
                    "{label}: {id}'s credit"
                );
                caused("credit", debit.id, &credit.clone().without_event());
                caused("completion", debit.id, &end.clone().without_event());
                outcome.completed += 1;
            }
            MoneyTransferEvent::TransferCompensated(compensated) => {
                assert_eq!(
                    counts,
                    (1, 0, 1),
                    "{label}: compensated {id}: (debits, credits, refunds)"
                );
                let (debit, refund) = (&trail.debits[0], &trail.refunds[0]);
                assert_eq!(
                    refund.stream_id, request.from,
                    "{label}: {id} refunds its source"
                );
                assert_eq!(refund.event.cents, request.cents, "{label}: {id}'s refund");
                caused("refund", debit.id, &refund.clone().without_event());
                caused("compensation", debit.id, &end.clone().without_event());
                let target_closed = ledgers[&request.to].closed_at;
                assert!(
                    target_closed.is_some_and(|at| at < end.position),
                    "{label}: {id} was compensated ({}) but its target was open",
                    compensated.reason
                );
                outcome.compensated += 1;
            }
            MoneyTransferEvent::TransferDeclined(declined) => {
                assert_eq!(
                    counts,
                    (0, 0, 0),
                    "{label}: declined {id}: (debits, credits, refunds)"
                );
                caused("decline", asked.id, &end.clone().without_event());
                if declined.reason == closed {
                    let source_closed = ledgers[&request.from].closed_at;
                    assert!(
                        source_closed.is_some_and(|at| at < end.position),
                        "{label}: {id} was declined for a closed source that was open"
                    );
                    outcome.declined_closed += 1;
                } else if declined.reason.starts_with("the balance is") {
                    outcome.declined_funds += 1;
                } else {
                    panic!(
                        "{label}: {id} declined for an unexpected reason: {}",
                        declined.reason
                    );
                }
            }
            MoneyTransferEvent::TransferRequested(_) => unreachable!("sorted out above"),
            MoneyTransferEvent::Forgotten(record) => {
                panic!("{label}: {id} ends in a forgotten event: {record:?}")
            }
        }
        // Whatever reached the process after an account was closed sees it closed.
        if let Some(at) = ledgers[&request.from].closed_at
            && asked.position > at
        {
            assert!(
                matches!(&end.event, MoneyTransferEvent::TransferDeclined(d) if d.reason == closed),
                "{label}: {id} was requested from an account closed before, yet not declined for it"
            );
        }
        if let (Some(at), Some(debit)) = (ledgers[&request.to].closed_at, debit)
            && debit.position > at
        {
            assert!(
                matches!(&end.event, MoneyTransferEvent::TransferCompensated(_)),
                "{label}: {id} was debited for an account closed before, yet not compensated"
            );
        }
    }
    assert!(faults.is_empty(), "{label}: {}", faults.join("\n"));
    // The balances: conserved, and what the accounts' own state says.
    let mut total = 0;
    for (&id, ledger) in &ledgers {
        let account = account_repo.get(id).await.expect("load an account");
        assert_eq!(
            account.balance as i64, ledger.balance,
            "{label}: account {id}'s state against its events"
        );
        total += account.balance;
    }
    assert_eq!(
        total,
        DEPOSIT * ACCOUNTS as u64,
        "{label}: the balances add up to what was deposited"
    );

    outcome
}
