//! Commands with context, on every store (memory, SQLite, PostgreSQL): the command context
//! stored as metadata, decisions that await services, create-or-execute under a race, units of
//! work across aggregate types with a stale aggregate, and the retry policy's limits.
//!
//! PostgreSQL comes from `EVENTSOURCE_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); each scenario uses a fresh schema and drops it.
//! Without a reachable server the PostgreSQL part prints why and is skipped, unless `CI=true`.
//! The server may be busy with other tests: nothing here assumes it is idle.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsource_core::prelude::*;
use eventsource_core::{Backoff, Error, StreamRange, application::context};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};

mod support;
use support::stores::{Store, on_every_store};
use tokio::sync::Barrier;

// ---------------------------------------------------------------------------------------------
// The domain: customers who place orders.

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Joined {
    name: String,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Spent {
    cents: u64,
}

#[derive(Aggregate, Default, Debug, Clone, PartialEq)]
#[aggregate(events(Joined, Spent))]
struct Customer {
    name: String,
    spent: u64,
    purchases: u32,
}

impl Apply<Joined> for Customer {
    fn apply(&mut self, event: &Joined) {
        self.name = event.name.clone();
    }
}

impl Apply<Spent> for Customer {
    fn apply(&mut self, event: &Spent) {
        self.spent += event.cents;
        self.purchases += 1;
    }
}

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Placed {
    customer: Uuid,
    cents: u64,
}

#[derive(Aggregate, Default, Debug, Clone, PartialEq)]
#[aggregate(events(Placed))]
struct Order {
    customer: Option<Uuid>,
    cents: u64,
}

impl Apply<Placed> for Order {
    fn apply(&mut self, event: &Placed) {
        self.customer = Some(event.customer);
        self.cents = event.cents;
    }
}

#[derive(Debug, PartialEq)]
struct OverLimit {
    limit: u64,
}

type Customers = Repository<Customer, Store>;

fn customers(store: &Store) -> Customers {
    Repository::new(store.clone())
}

/// An async decision: spend `cents` if the limit service allows it.
fn spend(
    cents: u64,
) -> impl for<'a> FnMut(&'a Customer) -> BoxFuture<'a, Result<Spent, OverLimit>> {
    move |customer| {
        Box::pin(async move {
            let limit = spending_limit().await;
            if customer.spent + cents > limit {
                return Err(OverLimit { limit });
            }
            Ok(Spent { cents })
        })
    }
}

/// A service a decision awaits: the spending limit, answered after 1 ms.
async fn spending_limit() -> u64 {
    tokio::time::sleep(Duration::from_millis(1)).await;
    100
}

async fn stored_versions(store: &Store, id: Uuid) -> Vec<u64> {
    store
        .read_stream(id, StreamRange::all())
        .map_ok(|event| event.version)
        .try_collect()
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// 1. The context is stored with every event and comes back with the history.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_context_is_set_once_and_every_event_carries_it() {
    on_every_store("commands", |name, store| async move {
        let customers = customers(&store);
        let orders = Repository::<Order, _>::new(store.clone());
        let request = Uuid::now_v7();
        let cause = Uuid::now_v7();
        let ctx = CommandContext::new()
            .with_correlation_id(request)
            .with_causation_id(cause)
            .with_actor("ada")
            .with("tenant", "acme")
            .unwrap();

        // Set once; the commands below don't mention it.
        let (customer, order) = ctx
            .clone()
            .scope(async {
                let customer = customers
                    .create(Joined { name: "Ada".into() })
                    .await
                    .unwrap();
                customers
                    .execute(customer, |_| {
                        Ok::<_, OverLimit>([Spent { cents: 1 }, Spent { cents: 2 }])
                    })
                    .await
                    .unwrap();
                customers
                    .execute_async(customer, |_| {
                        Box::pin(async { Ok::<_, OverLimit>(Spent { cents: 3 }) })
                    })
                    .await
                    .unwrap();
                let order = Uuid::now_v7();
                customers
                    .unit_of_work()
                    .run(|work| {
                        Box::pin(async move {
                            let buyer = work.load::<Customer>(customer).await?;
                            let placed = work.load_or_default::<Order>(order).await?;
                            work.record(buyer, Spent { cents: 4 });
                            work.record(placed, Placed { customer, cents: 4 });
                            Ok::<_, CommandError<OverLimit>>(())
                        })
                    })
                    .await
                    .unwrap();
                (customer, order)
            })
            .await;

        let history = customers.history(customer).await.unwrap();
        assert_eq!(history.len(), 5, "{name}");
        let placed = orders.history(order).await.unwrap();
        assert_eq!(placed.len(), 1, "{name}");
        // Event histories of two types can't chain directly; compare the metadata parts.
        let placed: Vec<_> = placed.into_iter().map(|r| r.without_event()).collect();
        let history: Vec<_> = history.into_iter().map(|r| r.without_event()).collect();
        for recorded in history.iter().chain(&placed) {
            assert_eq!(recorded.correlation_id(), Some(request), "{name}");
            assert_eq!(recorded.causation_id(), Some(cause), "{name}");
            assert_eq!(recorded.actor(), Some("ada"), "{name}");
            assert_eq!(recorded.metadata["tenant"], "acme", "{name}");
        }
        let customer_events = history.iter().map(|r| r.context().unwrap());
        assert!(customer_events.into_iter().all(|c| c == ctx), "{name}");

        // Outside any scope: each command's events share one fresh correlation id (a v7), and
        // two commands have two. No actor is invented.
        customers
            .execute(customer, |_| {
                Ok::<_, OverLimit>([Spent { cents: 5 }, Spent { cents: 6 }])
            })
            .await
            .unwrap();
        customers
            .execute(customer, |_| Ok::<_, OverLimit>(Spent { cents: 7 }))
            .await
            .unwrap();
        let history = customers.history(customer).await.unwrap();
        let ids: Vec<Uuid> = history[5..]
            .iter()
            .map(|r| r.correlation_id().expect("always stored"))
            .collect();
        assert_eq!(ids[0], ids[1], "{name}: one command, one correlation id");
        assert_ne!(ids[1], ids[2], "{name}: another command, another one");
        assert!(
            ids.iter()
                .all(|id| id.get_version_num() == 7 && *id != request)
        );
        assert!(
            history[5..]
                .iter()
                .all(|r| r.actor().is_none() && r.causation_id().is_none())
        );

        // The raw stored metadata uses the documented key names.
        let stored: Vec<_> = store
            .read_stream(customer, StreamRange::all().to(1))
            .try_collect()
            .await
            .unwrap();
        let keys: Vec<&str> = stored[0].metadata.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                context::ACTOR,
                context::CAUSATION_ID,
                context::CORRELATION_ID,
                "tenant"
            ],
            "{name}"
        );
    })
    .await;
}

#[test]
fn a_free_key_cannot_take_a_reserved_name_or_be_empty() {
    for key in [
        context::CORRELATION_ID,
        context::CAUSATION_ID,
        context::ACTOR,
    ] {
        let error = CommandContext::new().with(key, "x").unwrap_err();
        assert!(error.to_string().contains("reserved"), "{error}");
    }
    assert_eq!(
        CommandContext::new().with("", "x").unwrap_err().to_string(),
        "a metadata key can't be empty"
    );
    let error: Error = CommandContext::new().with("a b", "x").unwrap_err().into();
    assert!(matches!(error, Error::Metadata(_)));
}

// ---------------------------------------------------------------------------------------------
// 2. A decision awaits a service, and still retries on conflict.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_decision_awaits_a_service_and_retries_on_conflict() {
    on_every_store("commands", |name, store| async move {
        let customers = Arc::new(customers(&store).max_attempts(20));
        let id = customers
            .create(Joined { name: "Bob".into() })
            .await
            .unwrap();
        assert_eq!(
            customers.execute_async(id, spend(60)).await.unwrap().spent,
            60
        );
        assert_eq!(
            customers
                .execute_async(id, spend(50))
                .await
                .unwrap_err()
                .to_string(),
            "command rejected: OverLimit { limit: 100 }",
            "{name}"
        );

        // Two decisions that await at the same time: one conflicts, re-decides on fresh state.
        let calls = Arc::new(AtomicU32::new(0));
        let barrier = Arc::new(Barrier::new(2));
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let (customers, calls, barrier) =
                    (customers.clone(), calls.clone(), barrier.clone());
                tokio::spawn(async move {
                    let first = AtomicBool::new(true);
                    customers
                        .execute_async(id, |customer| {
                            calls.fetch_add(1, Ordering::SeqCst);
                            let wait = first.swap(false, Ordering::SeqCst);
                            let barrier = barrier.clone();
                            Box::pin(async move {
                                if wait {
                                    barrier.wait().await; // both loaded version 2 before either saves
                                }
                                let limit = spending_limit().await;
                                if customer.spent + 15 > limit {
                                    return Err(OverLimit { limit });
                                }
                                Ok(Spent { cents: 15 })
                            })
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let customer = customers.get(id).await.unwrap();
        assert_eq!((customer.spent, customer.version()), (90, 4), "{name}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "{name}: the loser decided again"
        );
        assert_eq!(stored_versions(&store, id).await, [1, 2, 3, 4], "{name}");
    })
    .await;
}

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Create-or-execute: two creators on one new id.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_creators_on_one_new_id_make_one_stream_and_lose_no_command() {
    on_every_store("commands", |name, store| async move {
        let customers = Arc::new(customers(&store));
        let id = eventsource_core::id_from_name("customers", &format!("{name}-{}", Uuid::now_v7()));
        let barrier = Arc::new(Barrier::new(2));
        let decisions = Arc::new(AtomicU32::new(0));
        let tasks: Vec<_> = [10, 20]
            .into_iter()
            .map(|cents| {
                let (customers, barrier, decisions) =
                    (customers.clone(), barrier.clone(), decisions.clone());
                tokio::spawn(async move {
                    let first = AtomicBool::new(true);
                    customers
                        .execute_or_create_async(id, |customer| {
                            decisions.fetch_add(1, Ordering::SeqCst);
                            let wait = first.swap(false, Ordering::SeqCst);
                            let barrier = barrier.clone();
                            Box::pin(async move {
                                if wait {
                                    barrier.wait().await; // both saw the empty stream
                                }
                                let mut events = Vec::new();
                                if customer.name.is_empty() {
                                    events.push(CustomerEvent::from(Joined { name: "Cy".into() }));
                                }
                                events.push(Spent { cents }.into());
                                Ok::<_, OverLimit>(events)
                            })
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut finals = Vec::new();
        for task in tasks {
            finals.push(task.await.unwrap().version());
        }
        finals.sort();
        // The winner wrote Joined + Spent (versions 1-2); the loser retried against the
        // winner's state and wrote only its Spent (version 3).
        assert_eq!(finals, [2, 3], "{name}");
        assert_eq!(decisions.load(Ordering::SeqCst), 3, "{name}");
        assert_eq!(stored_versions(&store, id).await, [1, 2, 3], "{name}");
        let customer = customers.get(id).await.unwrap();
        assert_eq!(
            (customer.name.as_str(), customer.spent, customer.purchases),
            ("Cy", 30, 2),
            "{name}: both commands applied, one Joined"
        );

        // On an existing stream it is a plain execute; `execute` itself still refuses a new id.
        let sync = customers
            .execute_or_create(id, |_| Ok::<_, OverLimit>(Spent { cents: 1 }))
            .await
            .unwrap();
        assert_eq!(sync.version(), 4, "{name}");
        let missing = Uuid::now_v7();
        assert!(matches!(
            customers
                .execute(missing, |_| Ok::<_, OverLimit>(Spent { cents: 1 }))
                .await,
            Err(CommandError::Store(Error::NotFound { .. }))
        ));
        assert!(stored_versions(&store, missing).await.is_empty());
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 4. A unit of work over two aggregate types, one of them stale.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_of_work_with_a_stale_aggregate_writes_nothing_then_retries() {
    on_every_store("commands", |name, store| async move {
        let customers = customers(&store).backoff(Backoff::none());
        let customer = customers
            .create(Joined { name: "Di".into() })
            .await
            .unwrap();
        let order = Uuid::now_v7();
        let attempts = AtomicU32::new(0);
        // What the second attempt saw in the store before deciding.
        let seen = Mutex::new(None);

        let placed = CommandContext::new()
            .with_actor("di")
            .scope(customers.unit_of_work().run(|work| {
                let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                let (store, customers, seen) = (&store, &customers, &seen);
                Box::pin(async move {
                    let buyer = work.load::<Customer>(customer).await?;
                    let new_order = work.load_or_default::<Order>(order).await?;
                    assert_eq!(work[new_order].version(), 0);
                    match attempt {
                        1 => {
                            // A concurrent writer moves the customer after we loaded it.
                            customers
                                .execute(customer, |_| Ok::<_, OverLimit>(Spent { cents: 5 }))
                                .await
                                .unwrap();
                        }
                        _ => {
                            *seen.lock().unwrap() = Some((
                                store.stream_version(customer).await.unwrap(),
                                store.stream_version(order).await.unwrap(),
                                work[buyer].spent,
                            ));
                        }
                    }
                    let limit = spending_limit().await;
                    if work[buyer].spent + 40 > limit {
                        return Err(CommandError::Rejected(OverLimit { limit }));
                    }
                    work.record(buyer, Spent { cents: 40 });
                    work.record(
                        new_order,
                        Placed {
                            customer,
                            cents: 40,
                        },
                    );
                    Ok(work[buyer].spent)
                })
            }))
            .await
            .unwrap();

        assert_eq!(attempts.load(Ordering::SeqCst), 2, "{name}");
        // Before the retry: only the concurrent writer's event, no order stream at all.
        assert_eq!(*seen.lock().unwrap(), Some((2, 0, 5)), "{name}");
        assert_eq!(placed, 45, "{name}: the retry decided on fresh state");
        assert_eq!(stored_versions(&store, customer).await, [1, 2, 3], "{name}");
        assert_eq!(stored_versions(&store, order).await, [1], "{name}");
        let spent = customers.history(customer).await.unwrap().pop().unwrap();
        let orders = Repository::<Order, _>::new(store.clone());
        let placed = orders.history(order).await.unwrap().pop().unwrap();
        assert_eq!(
            spent.correlation_id(),
            placed.correlation_id(),
            "{name}: one unit"
        );
        assert_eq!((spent.actor(), placed.actor()), (Some("di"), Some("di")));
        assert!(spent.position < placed.position || placed.position < spent.position);

        // A refusal writes nothing; loading one stream as two types is a typed error.
        let refused = customers
            .unit_of_work()
            .run(|work| {
                Box::pin(async move {
                    let buyer = work.load::<Customer>(customer).await?;
                    work.record(buyer, Spent { cents: 1 });
                    Err::<(), _>(CommandError::Rejected(OverLimit { limit: 0 }))
                })
            })
            .await;
        assert!(matches!(
            refused,
            Err(CommandError::Rejected(OverLimit { limit: 0 }))
        ));
        let twice = customers
            .unit_of_work()
            .run(|work| {
                Box::pin(async move {
                    work.load::<Customer>(customer).await?;
                    work.load::<Order>(customer).await?;
                    Ok::<_, CommandError<OverLimit>>(())
                })
            })
            .await;
        assert!(matches!(
            twice,
            Err(CommandError::Store(Error::StreamLoadedAsAnotherType {
                loaded_as: "Customer",
                requested: "Order",
                ..
            }))
        ));
        assert_eq!(stored_versions(&store, customer).await, [1, 2, 3], "{name}");
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 5. The retry policy: attempts exhausted gives TooManyConflicts with the attempts.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_are_configurable_and_exhausting_them_is_too_many_conflicts() {
    on_every_store("commands", |name, store| async move {
        let customers = customers(&store)
            .max_attempts(3)
            .backoff(Backoff::exponential(
                Duration::from_millis(1),
                Duration::from_millis(4),
            ));
        assert_eq!(customers.retry_policy().max_attempts(), 3);
        let id = customers
            .create(Joined { name: "Eve".into() })
            .await
            .unwrap();
        // Captured by an async decision: owned (an `Arc`), since the decision's future may not
        // borrow from outside (see `Repository::execute_async`).
        let interloper = Arc::new(Repository::<Customer, _>::new(store.clone()));

        // Every attempt, a concurrent writer gets in between the load and the append.
        let calls = AtomicU32::new(0);
        let result = customers
            .execute_async(id, |customer| {
                calls.fetch_add(1, Ordering::SeqCst);
                let interloper = interloper.clone();
                Box::pin(async move {
                    interloper
                        .execute(id, |_| Ok::<_, OverLimit>(Spent { cents: 1 }))
                        .await
                        .unwrap();
                    Ok::<_, OverLimit>(Spent {
                        cents: customer.spent + 100,
                    })
                })
            })
            .await;
        match result {
            Err(CommandError::Store(Error::TooManyConflicts {
                stream,
                attempts: 3,
            })) => {
                assert_eq!(stream, id, "{name}");
            }
            other => panic!("{name}: expected TooManyConflicts after 3 attempts, got {other:?}"),
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3, "{name}");
        // Only the interloper's three events were written.
        assert_eq!(customers.get(id).await.unwrap().spent, 3, "{name}");

        // The same for a unit of work, with one attempt: no retry at all.
        let tried = AtomicU32::new(0);
        let unit = customers.unit_of_work().max_attempts(1);
        let result = unit
            .run(|work| {
                tried.fetch_add(1, Ordering::SeqCst);
                let interloper = &interloper;
                Box::pin(async move {
                    let buyer = work.load::<Customer>(id).await?;
                    interloper
                        .execute(id, |_| Ok::<_, OverLimit>(Spent { cents: 1 }))
                        .await
                        .unwrap();
                    work.record(buyer, Spent { cents: 100 });
                    Ok::<_, CommandError<OverLimit>>(())
                })
            })
            .await;
        assert!(
            matches!(
                result,
                Err(CommandError::Store(Error::TooManyConflicts {
                    attempts: 1,
                    ..
                }))
            ),
            "{name}: {result:?}"
        );
        assert_eq!(tried.load(Ordering::SeqCst), 1);
        assert_eq!(customers.get(id).await.unwrap().spent, 4, "{name}");
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Running a scenario on every store
