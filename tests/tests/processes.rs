//! Process managers and systems on every store (memory, SQLite, PostgreSQL): caused events and
//! tracking in one append (exactly once, also while the caused events race other writers),
//! causation and correlation filled in, a failing reaction stopping before its event, systems
//! running chains until idle, and the wiring checks. Crash and takeover tests of the bank's
//! transfer process are in `transfers.rs`.

use std::collections::BTreeSet;
use std::time::Duration;

use eventsource_core::prelude::*;
use eventsource_core::process::ProcessError;
use eventsource_core::projection::ErrorPolicy;
use eventsource_core::system::SystemError;
use eventsource_core::{Claims, Position, SqliteStore};
use serde::{Deserialize, Serialize};

mod support;
use support::postgres::Server;

// ---------------------------------------------------------------------------------------------
// The domain: orders; each order gets an invoice (one stream per order) and a line in one
// shared ledger (a single stream, so the process's appends race the clerks' entries there).

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(name = "PmOrdered")]
struct Ordered {
    cents: u64,
}

#[derive(Aggregate, Default, Debug)]
#[aggregate(name = "PmOrder", events(Ordered))]
struct Order;

impl Apply<Ordered> for Order {
    fn apply(&mut self, _: &Ordered) {}
}

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(name = "PmInvoiced")]
struct Invoiced {
    order: Uuid,
    cents: u64,
}

#[derive(Aggregate, Default, Debug)]
#[aggregate(name = "PmInvoice", events(Invoiced))]
struct Invoice {
    cents: u64,
}

impl Apply<Invoiced> for Invoice {
    fn apply(&mut self, e: &Invoiced) {
        self.cents = e.cents;
    }
}

/// A ledger line: for an order (`Some`) by the process, or a clerk's own entry (`None`).
#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(name = "PmEntered")]
struct Entered {
    order: Option<Uuid>,
    cents: u64,
}

#[derive(Aggregate, Default, Debug)]
#[aggregate(name = "PmLedger", events(Entered))]
struct Ledger {
    orders: Vec<Uuid>,
    clerk_entries: u64,
}

impl Apply<Entered> for Ledger {
    fn apply(&mut self, e: &Entered) {
        match e.order {
            Some(order) => self.orders.push(order),
            None => self.clerk_entries += 1,
        }
    }
}

fn invoice_of(order: Uuid) -> Uuid {
    id_from_name("pm-invoices", &order.to_string())
}

fn reminder_of(invoice: Uuid) -> Uuid {
    id_from_name("pm-reminders", &invoice.to_string())
}

fn ledger_id() -> Uuid {
    id_from_name("pm-ledgers", "the ledger")
}

/// Records the invoice of an order.
async fn record_invoice(
    e: &Recorded<Ordered>,
    work: &mut ProcessWork<'_>,
) -> Result<(), HandlerError> {
    let invoice = work
        .load_or_default::<Invoice>(invoice_of(e.stream_id))
        .await?;
    work.record(
        invoice,
        Invoiced {
            order: e.stream_id,
            cents: e.event.cents,
        },
    );
    Ok(())
}

/// Invoices every order and enters it in the ledger, in one reaction.
#[derive(Process, Default)]
#[process(name = "pm-invoicing", events(Ordered))]
struct Invoicing {
    /// Reactions run (including re-runs after a conflict).
    runs: u64,
}

impl React<Ordered> for Invoicing {
    async fn react(
        &mut self,
        e: &Recorded<Ordered>,
        work: &mut ProcessWork<'_>,
    ) -> Result<(), HandlerError> {
        self.runs += 1;
        record_invoice(e, work).await?;
        let ledger = work.load_or_default::<Ledger>(ledger_id()).await?;
        work.record(
            ledger,
            Entered {
                order: Some(e.stream_id),
                cents: e.event.cents,
            },
        );
        Ok(())
    }
}

/// Each of `writers` places `orders` orders (in its own command context) and, if `clerks`, a
/// clerk's entry in the ledger after each. Returns the orders' ids.
async fn place_orders<S: EventStore + Clone + 'static>(
    store: &S,
    writers: usize,
    orders: usize,
    clerks: bool,
) -> Vec<Uuid> {
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let orders_repo = Repository::<Order, _>::new(store.clone());
            let ledger = Repository::<Ledger, _>::new(store.clone()).max_attempts(1_000);
            let mut ids = Vec::new();
            for n in 0..orders {
                let context = CommandContext::new().with_actor(format!("writer-{writer}"));
                let id = context
                    .scope(orders_repo.create(Ordered {
                        cents: (writer * 1_000 + n) as u64 + 1,
                    }))
                    .await
                    .expect("place an order");
                ids.push(id);
                if clerks {
                    ledger
                        .execute_or_create(ledger_id(), |_| {
                            Ok::<_, std::convert::Infallible>(Entered {
                                order: None,
                                cents: 1,
                            })
                        })
                        .await
                        .expect("a clerk's entry");
                }
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await.expect("a writer task"));
    }
    ids
}

/// Every order invoiced exactly once, entered in the ledger exactly once, and each caused event
/// names its order's event as its cause, shares its correlation id and has the process's name
/// as its actor.
async fn check_invoiced<S: EventStore + Clone + 'static>(store: &S, orders: &[Uuid]) {
    let order_repo = Repository::<Order, _>::new(store.clone());
    let invoices = Repository::<Invoice, _>::new(store.clone());
    for &order in orders {
        let ordered = &order_repo.history(order).await.expect("order history")[0];
        let history = invoices
            .history(invoice_of(order))
            .await
            .expect("invoice history");
        assert_eq!(history.len(), 1, "order {order} invoiced once");
        let invoiced = &history[0];
        assert_eq!(
            invoiced.causation_id(),
            Some(ordered.id),
            "cause of {order}'s invoice"
        );
        assert_eq!(
            invoiced.correlation_id(),
            ordered.correlation_id(),
            "correlation"
        );
        assert!(invoiced.correlation_id().is_some());
        assert_eq!(invoiced.actor(), Some("pm-invoicing"), "actor");
    }
    let ledger = Repository::<Ledger, _>::new(store.clone())
        .get(ledger_id())
        .await
        .expect("the ledger");
    let entered: BTreeSet<Uuid> = ledger.orders.iter().copied().collect();
    assert_eq!(
        ledger.orders.len(),
        entered.len(),
        "no order entered twice in the ledger"
    );
    assert_eq!(
        entered,
        orders.iter().copied().collect::<BTreeSet<_>>(),
        "every order entered"
    );
}

/// A fresh store of each kind for a generic scenario; PostgreSQL is skipped with a message off
/// CI when the server is unreachable (the support module decides).
macro_rules! on_every_store {
    ($tag:literal, $scenario:ident) => {{
        $scenario("memory", MemoryStore::new()).await;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let sqlite = SqliteStore::open(dir.path().join(concat!($tag, ".db")))
            .await
            .expect("open SQLite");
        $scenario("sqlite", sqlite).await;
        if let Some(mut server) = Server::start().await {
            let store = server.store($tag).await;
            $scenario("postgres", store).await;
            server.finish().await;
        }
    }};
}

// ---------------------------------------------------------------------------------------------

/// A live process follows 4 writers placing 100 orders each, while clerks write to the ledger
/// stream the process also appends to: its commits meet version conflicts and run again on
/// fresh state, and still every order is invoiced and entered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_process_causes_each_event_exactly_once_while_racing_other_writers() {
    async fn scenario<S: Claims>(name: &str, store: S) {
        let running = ProcessManager::new(store.clone(), Invoicing::default())
            .page_size(50)
            .poll_interval(Duration::from_millis(50))
            .spawn();
        let orders = place_orders(&store, 4, 100, true).await;
        let mut running = running;
        let last = store.last_position().await.expect("last position");
        assert!(
            running
                .wait_for(last, Duration::from_secs(120))
                .await
                .expect("the process runs"),
            "{name}: the process caught up within 120 s"
        );
        let (manager, outcome) = running.stop().await;
        outcome.expect("stopped cleanly");
        let runs = manager.expect("the manager").process().runs;
        check_invoiced(&store, &orders).await;
        let ledger = Repository::<Ledger, _>::new(store.clone())
            .get(ledger_id())
            .await
            .expect("the ledger");
        assert_eq!(ledger.clerk_entries, 400, "{name}: the clerks' entries");
        assert!(
            runs >= 400,
            "{name}: every order reacted to at least once ({runs} runs)"
        );
        println!("{name}: 400 orders, {runs} reactions (re-runs after conflicts included)");
    }
    on_every_store!("pm_live", scenario);
}

/// Caught up twice, a process causes nothing the second time; started over on a store where
/// it has a tracking position, it resumes there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_resumes_from_its_tracking_position() {
    async fn scenario<S: Claims>(name: &str, store: S) {
        let orders = place_orders(&store, 1, 20, false).await;
        let mut manager = ProcessManager::new(store.clone(), Invoicing::default()).page_size(7);
        let reached = manager.catch_up().await.expect("catch up");
        let tracked = store
            .tracking_position("pm-invoicing")
            .await
            .expect("tracking");
        assert!(
            tracked > Position::START && tracked <= reached,
            "{name}: tracking {tracked} recorded, up to the position reached {reached}"
        );
        assert_eq!(manager.process().runs, 20, "{name}: one reaction per order");
        let mut again = ProcessManager::new(store.clone(), Invoicing::default());
        again.catch_up().await.expect("catch up again");
        assert_eq!(again.process().runs, 0, "{name}: nothing reacted to twice");
        let more = place_orders(&store, 1, 5, false).await;
        again.catch_up().await.expect("catch up with 5 more");
        assert_eq!(again.process().runs, 5, "{name}: only the new orders");
        check_invoiced(&store, &[orders, more].concat()).await;
    }
    on_every_store!("pm_resume", scenario);
}

/// A reaction that fails stops the process at its event: the events before it are committed
/// (with the tracking position on the event before), nothing the failing reaction recorded is
/// written, and a process that no longer fails resumes at that event.
#[derive(Process, Default)]
#[process(name = "pm-picky", events(Ordered))]
struct Picky {
    refuse_cents: Option<u64>,
}

impl React<Ordered> for Picky {
    async fn react(
        &mut self,
        e: &Recorded<Ordered>,
        work: &mut ProcessWork<'_>,
    ) -> Result<(), HandlerError> {
        record_invoice(e, work).await?;
        if Some(e.event.cents) == self.refuse_cents {
            return Err(format!("refusing an order of {} cents", e.event.cents).into());
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_reaction_stops_before_its_event_and_writes_nothing() {
    async fn scenario<S: Claims>(name: &str, store: S) {
        let orders = place_orders(&store, 1, 10, false).await; // cents 1..=10
        let mut picky = ProcessManager::new(
            store.clone(),
            Picky {
                refuse_cents: Some(6),
            },
        )
        .on_error(ErrorPolicy::Stop);
        let error = picky.catch_up().await.expect_err("the sixth order fails");
        let ProcessError::Reaction {
            process,
            event,
            position,
            ..
        } = &error
        else {
            panic!("{name}: expected a reaction error, got {error}");
        };
        assert_eq!((*process, event.as_str()), ("pm-picky", "PmOrdered"));
        assert!(
            error.to_string().contains("refusing an order of 6 cents"),
            "{name}: {error}"
        );
        let sixth = Repository::<Order, _>::new(store.clone())
            .history(orders[5])
            .await
            .expect("history")[0]
            .position;
        assert_eq!(
            *position, sixth,
            "{name}: the error names the failing event"
        );
        let tracked = store.tracking_position("pm-picky").await.expect("tracking");
        let fifth = Repository::<Order, _>::new(store.clone())
            .history(orders[4])
            .await
            .expect("history")[0]
            .position;
        assert_eq!(tracked, fifth, "{name}: tracking on the event before");
        let invoices = Repository::<Invoice, _>::new(store.clone());
        for (n, &order) in orders.iter().enumerate() {
            let version = store
                .stream_version(invoice_of(order))
                .await
                .expect("version");
            assert_eq!(version, u64::from(n < 5), "{name}: invoice of order {n}");
        }
        let mut fixed = ProcessManager::new(store.clone(), Picky::default());
        fixed
            .catch_up()
            .await
            .expect("the fixed process catches up");
        for &order in &orders {
            assert_eq!(
                invoices
                    .get(invoice_of(order))
                    .await
                    .expect("invoice")
                    .version(),
                1,
                "{name}: every order invoiced once in the end"
            );
        }
    }
    on_every_store!("pm_fail", scenario);
}

/// A live process stopped by a failing reaction says so in its status, in the process's words:
/// which process, at which event, and what the reaction said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_process_stopped_by_a_reaction_says_why_in_its_status() {
    let store = MemoryStore::new();
    let orders = place_orders(&store, 1, 10, false).await; // cents 1..=10
    let sixth = Repository::<Order, _>::new(store.clone())
        .history(orders[5])
        .await
        .expect("history")[0]
        .clone();
    let mut running = ProcessManager::new(
        store.clone(),
        Picky {
            refuse_cents: Some(6),
        },
    )
    .on_error(ErrorPolicy::Stop)
    .spawn();
    let last = store.last_position().await.expect("last position");
    let expected = format!(
        "process `pm-picky` stopped at event `PmOrdered` (stream {}, version 1, position {}): \
         refusing an order of 6 cents",
        sixth.stream_id, sixth.position
    );
    match running.wait_for(last, Duration::from_secs(60)).await {
        Err(ProcessError::Stopped { process, message }) => {
            assert_eq!((process, message.as_str()), ("pm-picky", expected.as_str()));
        }
        other => panic!("expected the process to stop, got {other:?}"),
    }
    let status = running.status();
    assert!(!status.running);
    assert_eq!(status.error.as_deref(), Some(expected.as_str()));
}

// ---------------------------------------------------------------------------------------------
// Systems

/// Counts the invoices: a projection of what the process causes.
#[derive(Projection, Default)]
#[projection(name = "pm-receivables", events(Invoiced))]
struct Receivables {
    invoices: u64,
    cents: u64,
}

impl Handle<Invoiced> for Receivables {
    async fn handle(&mut self, e: &Recorded<Invoiced>, _: &mut ()) -> Result<(), HandlerError> {
        self.invoices += 1;
        self.cents += e.event.cents;
        Ok(())
    }
}

/// The second step of a chain: every invoice gets a reminder, itself an invoice-stream event of
/// another aggregate.
#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(name = "PmReminded")]
struct Reminded {
    invoice: Uuid,
}

#[derive(Aggregate, Default, Debug)]
#[aggregate(name = "PmReminder", events(Reminded))]
struct Reminder;

impl Apply<Reminded> for Reminder {
    fn apply(&mut self, _: &Reminded) {}
}

#[derive(Process, Default)]
#[process(name = "pm-reminders", events(Invoiced))]
struct Reminders;

impl React<Invoiced> for Reminders {
    async fn react(
        &mut self,
        e: &Recorded<Invoiced>,
        work: &mut ProcessWork<'_>,
    ) -> Result<(), HandlerError> {
        let reminder = work
            .load_or_default::<Reminder>(reminder_of(e.stream_id))
            .await?;
        work.record(
            reminder,
            Reminded {
                invoice: e.stream_id,
            },
        );
        Ok(())
    }
}

/// Components added "backwards" (the last step first) still finish the whole chain in one
/// `run_until_idle`: order → invoice → reminder, with the projection of invoices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_runs_a_chain_until_idle_in_one_call() {
    async fn scenario<S: Claims>(name: &str, store: S) {
        let mut system = System::new(store.clone())
            .aggregate::<Order>()
            .aggregate::<Invoice>()
            .aggregate::<Ledger>()
            .aggregate::<Reminder>()
            .process(Reminders)
            .projection(Receivables::default())
            .process(Invoicing::default());
        let orders = place_orders(&store, 2, 15, false).await;
        let idle = system.run_until_idle().await.expect("run until idle");
        assert!(
            idle.rounds >= 3,
            "{name}: the chain needs rounds ({idle:?})"
        );
        let receivables = system
            .projection_ref::<Receivables>()
            .expect("the projection");
        assert_eq!(receivables.invoices, 30, "{name}: invoices projected");
        let reminders = Repository::<Reminder, _>::new(store.clone());
        for &order in &orders {
            let reminder = reminder_of(invoice_of(order));
            let history = reminders.history(reminder).await.expect("reminder");
            assert_eq!(history.len(), 1, "{name}: one reminder per invoice");
            let invoice = &Repository::<Invoice, _>::new(store.clone())
                .history(invoice_of(order))
                .await
                .expect("invoice")[0];
            assert_eq!(history[0].causation_id(), Some(invoice.id));
            assert_eq!(history[0].correlation_id(), invoice.correlation_id());
        }
        check_invoiced(&store, &orders).await;
        let again = system.run_until_idle().await.expect("again");
        assert_eq!(again.rounds, 1, "{name}: nothing left, one round");

        // Live: the same system on tasks.
        let running = system.spawn().expect("spawn");
        let more = place_orders(&store, 2, 10, false).await;
        assert!(
            running
                .wait_until_idle(Duration::from_secs(60))
                .await
                .expect("idle"),
            "{name}: the live system caught up"
        );
        let status = running.status();
        assert_eq!(status.len(), 3);
        let system = running.stop().await.expect("stop");
        assert_eq!(
            system
                .projection_ref::<Receivables>()
                .expect("projection")
                .invoices,
            50,
            "{name}: live invoices projected"
        );
        check_invoiced(&store, &[orders, more].concat()).await;
    }
    on_every_store!("pm_system", scenario);
}

#[tokio::test]
async fn a_system_refuses_wiring_that_could_never_run() {
    let store = MemoryStore::new();
    let missing = System::new(store.clone())
        .aggregate::<Order>()
        .process(Invoicing::default())
        .projection(Receivables::default());
    let error = missing
        .check()
        .expect_err("no aggregate records PmInvoiced");
    assert!(
        matches!(
            error,
            SystemError::NotRecorded {
                kind: "projection",
                component: "pm-receivables",
                event: "PmInvoiced",
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error.to_string().starts_with(
            "projection `pm-receivables` follows the event `PmInvoiced`, which none of the system's aggregates (PmOrder) records"
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("add the aggregate that records it with `.aggregate::<A>()`"),
        "{error}"
    );
    let error = System::new(store.clone())
        .aggregate::<Order>()
        .process(Reminders)
        .check()
        .expect_err("no aggregate records PmInvoiced");
    assert!(
        error
            .to_string()
            .starts_with("process `pm-reminders` follows the event `PmInvoiced`"),
        "{error}"
    );
    let twice = System::new(store.clone())
        .process(Invoicing::default())
        .process(Invoicing::default());
    let error = twice
        .spawn()
        .expect_err("two components named pm-invoicing");
    assert!(
        matches!(
            error,
            SystemError::DuplicateName {
                name: "pm-invoicing"
            }
        ),
        "{error}"
    );
    // Without declared aggregates, the events may come from elsewhere: no check.
    System::new(store)
        .projection(Receivables::default())
        .check()
        .expect("no aggregates declared, nothing to check");
}

/// Two runners of one process on one database: one is active, the other on standby; stopping
/// the active one hands the work over, and every order is invoiced once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_runners_of_a_process_share_the_work_one_at_a_time() {
    async fn scenario<S: Claims>(name: &str, store: S) {
        let runner = || {
            ProcessManager::new(store.clone(), Invoicing::default())
                .poll_interval(Duration::from_millis(50))
                .standby_interval(Duration::from_millis(100))
                .spawn()
        };
        let first = runner();
        let second = runner();
        let orders = place_orders(&store, 2, 50, false).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let active_first = loop {
            let roles = (first.status().role, second.status().role);
            use eventsource_core::projection::RunnerRole::{Active, Standby};
            match roles {
                (Active, Standby) => break true,
                (Standby, Active) => break false,
                _ if tokio::time::Instant::now() > deadline => {
                    panic!("{name}: expected one active runner and one on standby, got {roles:?}")
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let (active, mut standby) = if active_first {
            (first, second)
        } else {
            (second, first)
        };
        let (manager, outcome) = active.stop().await;
        outcome.expect("the active runner stops cleanly");
        let first_runs = manager.expect("manager").process().runs;
        assert!(
            standby
                .wait_for_role(
                    eventsource_core::projection::RunnerRole::Active,
                    Duration::from_secs(60)
                )
                .await,
            "{name}: the standby took the claim once the active runner stopped"
        );
        let more = place_orders(&store, 2, 25, false).await;
        let last = store.last_position().await.expect("last position");
        assert!(
            standby
                .wait_for(last, Duration::from_secs(60))
                .await
                .expect("the standby runs"),
            "{name}: the standby took over and caught up"
        );
        let (manager, outcome) = standby.stop().await;
        outcome.expect("stopped");
        let second_runs = manager.expect("manager").process().runs;
        check_invoiced(&store, &[orders, more].concat()).await;
        println!("{name}: first runner {first_runs} reactions, second {second_runs}");
        assert!(
            second_runs >= 50,
            "{name}: the second runner did the later work"
        );
    }
    // The memory store has no claim (one process): two runners there would both be active.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sqlite = SqliteStore::open(dir.path().join("pm_share.db"))
        .await
        .expect("open SQLite");
    scenario("sqlite", sqlite).await;
    if let Some(mut server) = Server::start().await {
        let store = server.store("pm_share").await;
        scenario("postgres", store).await;
        server.finish().await;
    }
    // NATS: the claim is a lease key in the store's key-value bucket.
    if let Some(servers) = support::nats::Servers::single().await {
        let store = servers.store("pm-share").await;
        scenario("nats", store).await;
        servers.finish().await;
    }
}

/// A live process meets a busy store: another connection holds SQLite's write lock for longer
/// than the store's busy timeout, so the process's claim or commit fails with `Error::Busy`. It
/// gives up its claim, waits and claims again (its status counts the transient errors), and
/// finishes once the lock is gone, instead of stopping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_process_rides_out_a_busy_store() {
    use eventsource_core::SqliteOptions;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("pm_busy.db");
    let store = SqliteOptions::file(&path)
        .busy_timeout(Duration::from_millis(20))
        .open()
        .await
        .expect("open SQLite");
    let orders = place_orders(&store, 1, 30, false).await;

    // Another program takes the write lock and keeps it.
    let blocker = rusqlite::Connection::open(&path).expect("a second connection");
    blocker
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");

    let mut running = ProcessManager::new(store.clone(), Invoicing::default())
        .poll_interval(Duration::from_millis(20))
        .spawn();
    // The process meets the lock and rides it out: a transient error, and it keeps running.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = running.status();
        assert!(status.running, "the process stopped: {:?}", status.error);
        if status.transient_errors >= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the process never met the lock: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    blocker.execute_batch("COMMIT").expect("let go of the lock");
    drop(blocker);

    let last = store.last_position().await.expect("last position");
    assert!(
        running
            .wait_for(last, Duration::from_secs(30))
            .await
            .expect("the process is still running"),
        "the process finished after the lock was gone"
    );
    let (_, outcome) = running.stop().await;
    outcome.expect("stopped cleanly");
    check_invoiced(&store, &orders).await;
}

/// A process added to a store with a history reacts only to what comes after the position it is
/// deployed at; restarted with the same call, the tracking position it recorded since wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_deployed_later_starts_after_the_position_it_is_given() {
    async fn scenario<S: Claims>(name: &str, store: S) {
        let before = place_orders(&store, 1, 10, false).await;
        let deployed_at = store.last_position().await.expect("last position");
        let deployed =
            || ProcessManager::new(store.clone(), Invoicing::default()).starting_after(deployed_at);
        let mut first = deployed();
        first.catch_up().await.expect("catch up");
        assert_eq!(first.process().runs, 0, "{name}: nothing from before");
        let after = place_orders(&store, 1, 3, false).await;
        first.catch_up().await.expect("catch up");
        assert_eq!(
            first.process().runs,
            3,
            "{name}: the orders after deployment"
        );
        let mut restarted = deployed();
        restarted
            .catch_up()
            .await
            .expect("catch up after a restart");
        assert_eq!(
            restarted.process().runs,
            0,
            "{name}: the recorded position wins"
        );
        for &order in &before {
            assert_eq!(
                store
                    .stream_version(invoice_of(order))
                    .await
                    .expect("version"),
                0,
                "{name}: an order from before deployment is not invoiced"
            );
        }
        for &order in &after {
            assert_eq!(
                store
                    .stream_version(invoice_of(order))
                    .await
                    .expect("version"),
                1,
                "{name}: an order after deployment is invoiced once"
            );
        }
    }
    on_every_store!("pm_deploy", scenario);
}

/// A live runner's position passes the events it doesn't follow, so waiting for the position
/// of such an event (an order, for a projection of invoices) returns once it has read past it,
/// instead of waiting for the next event it does follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_an_event_a_runner_does_not_follow_returns() {
    async fn scenario<S: Claims>(name: &str, store: S) {
        let receivables = Projector::new(store.clone(), Receivables::default())
            .poll_interval(Duration::from_millis(50))
            .spawn();
        let mut invoicing = ProcessManager::new(store.clone(), Invoicing::default())
            .poll_interval(Duration::from_millis(50))
            .spawn();
        place_orders(&store, 1, 3, false).await;
        let ordered = store.last_position().await.expect("last position");
        assert!(
            receivables
                .wait_for(ordered, Duration::from_secs(30))
                .await
                .expect("running"),
            "{name}: the projection read past the orders it doesn't follow"
        );
        // The process caused invoices after the orders: it doesn't follow those either.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while store.stream_version(ledger_id()).await.expect("version") < 3 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}: no ledger entries"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let caused = store.last_position().await.expect("last position");
        assert!(
            invoicing
                .wait_for(caused, Duration::from_secs(30))
                .await
                .expect("running"),
            "{name}: the process read past the events it caused"
        );
        receivables.stop().await.1.expect("stopped");
        invoicing.stop().await.1.expect("stopped");
    }
    on_every_store!("pm_wait", scenario);
}

/// The SQLite claim lease is an option (and a URL parameter); one too short to renew in time
/// is refused when the store opens.
#[tokio::test]
async fn the_sqlite_claim_lease_is_an_option_with_a_floor() {
    use eventsource_core::{Error, SqliteOptions};

    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!(
        "sqlite://{}?claim_lease_ms=50",
        dir.path().join("lease.db").display()
    );
    let refused = SqliteOptions::from_url(&url)
        .expect("the URL parses")
        .open()
        .await;
    match refused {
        Err(Error::Config { message, .. }) => {
            assert!(message.contains("too short"), "{message}")
        }
        other => panic!("a 50 ms lease: expected a Config error, got {other:?}"),
    }
    let url = url.replace("=50", "=1500");
    SqliteOptions::from_url(&url)
        .expect("the URL parses")
        .open()
        .await
        .expect("a 1.5 s lease is fine");
}
