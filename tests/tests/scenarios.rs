//! The given/when/then helpers of `eventsource_core::testing::scenario`, tested themselves: each
//! `then…` passes on a right expectation and panics with a message that says what differed on a
//! wrong one, for an aggregate, a projection and a process manager.

use std::collections::HashMap;

use eventsource_core::prelude::*;
use eventsource_core::projection::ProjectionError;
use eventsource_core::testing::scenario::{
    AggregateScenario, ExpectedEvent, ProcessScenario, ProjectionScenario,
};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// The domain: accounts, and orders that are invoiced and shipped once paid.

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Opened {
    owner: String,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Deposited {
    cents: u64,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Withdrawn {
    cents: u64,
}

/// An account's state; its events derive nothing but serde, as the scenarios allow.
#[derive(Aggregate, Default, Debug)]
#[aggregate(events(Opened, Deposited, Withdrawn))]
struct Account {
    owner: Option<String>,
    balance: u64,
}

impl Apply<Opened> for Account {
    fn apply(&mut self, e: &Opened) {
        self.owner = Some(e.owner.clone());
    }
}

impl Apply<Deposited> for Account {
    fn apply(&mut self, e: &Deposited) {
        self.balance += e.cents;
    }
}

impl Apply<Withdrawn> for Account {
    fn apply(&mut self, e: &Withdrawn) {
        self.balance = self.balance.saturating_sub(e.cents);
    }
}

#[derive(Debug, PartialEq)]
enum BankError {
    NotOpen,
    AlreadyOpen,
    Overdrawn { balance: u64, requested: u64 },
}

impl Account {
    /// Opening an account that is open is refused.
    fn open(&self, owner: &str) -> Result<Opened, BankError> {
        if self.owner.is_some() {
            return Err(BankError::AlreadyOpen);
        }
        Ok(Opened {
            owner: owner.into(),
        })
    }

    fn withdraw(&self, cents: u64) -> Result<Withdrawn, BankError> {
        if self.owner.is_none() {
            return Err(BankError::NotOpen);
        }
        if cents > self.balance {
            return Err(BankError::Overdrawn {
                balance: self.balance,
                requested: cents,
            });
        }
        Ok(Withdrawn { cents })
    }

    /// Takes out everything, in two withdrawals if over 100; nothing from an empty account.
    fn close_out(&self) -> Result<Vec<Withdrawn>, BankError> {
        Ok(match self.balance {
            0 => vec![],
            cents if cents > 100 => {
                vec![Withdrawn { cents: 100 }, Withdrawn { cents: cents - 100 }]
            }
            cents => vec![Withdrawn { cents }],
        })
    }
}

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Placed {
    cents: u64,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Confirmed;

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Paid {
    cents: u64,
}

#[derive(Aggregate, Default, Debug)]
#[aggregate(events(Placed, Confirmed, Paid))]
struct Order {
    cents: u64,
}

impl Apply<Placed> for Order {
    fn apply(&mut self, e: &Placed) {
        self.cents = e.cents;
    }
}

impl Apply<Confirmed> for Order {
    fn apply(&mut self, _: &Confirmed) {}
}

impl Apply<Paid> for Order {
    fn apply(&mut self, _: &Paid) {}
}

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Invoiced {
    order: Uuid,
    cents: u64,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Settled;

#[derive(Aggregate, Default, Debug)]
#[aggregate(events(Invoiced, Settled))]
struct Invoice;

impl Apply<Invoiced> for Invoice {
    fn apply(&mut self, _: &Invoiced) {}
}

impl Apply<Settled> for Invoice {
    fn apply(&mut self, _: &Settled) {}
}

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Shipped {
    order: Uuid,
}

#[derive(Aggregate, Default, Debug)]
#[aggregate(events(Shipped))]
struct Shipment;

impl Apply<Shipped> for Shipment {
    fn apply(&mut self, _: &Shipped) {}
}

fn invoice_of(order: Uuid) -> Uuid {
    id_from_name("invoices", &order.to_string())
}

fn shipment_of(order: Uuid) -> Uuid {
    id_from_name("shipments", &order.to_string())
}

/// Fulfilment: a placed order is confirmed, a confirmed one invoiced (so it reacts to an event
/// it caused itself), a paid one settled and shipped. A payment of nothing is refused.
#[derive(Process)]
#[process(name = "fulfilment", events(Placed, Confirmed, Paid))]
struct Fulfilment;

impl React<Placed> for Fulfilment {
    async fn react(
        &mut self,
        e: &Recorded<Placed>,
        work: &mut ProcessWork<'_>,
    ) -> Result<(), HandlerError> {
        let placed = work.load::<Order>(e.stream_id).await?;
        work.record(placed, Confirmed);
        Ok(())
    }
}

impl React<Confirmed> for Fulfilment {
    async fn react(
        &mut self,
        e: &Recorded<Confirmed>,
        work: &mut ProcessWork<'_>,
    ) -> Result<(), HandlerError> {
        let order = e.stream_id;
        let confirmed = work.load::<Order>(order).await?;
        let cents = work[confirmed].cents;
        let invoice = work.load_or_default::<Invoice>(invoice_of(order)).await?;
        work.record(invoice, Invoiced { order, cents });
        Ok(())
    }
}

impl React<Paid> for Fulfilment {
    async fn react(
        &mut self,
        e: &Recorded<Paid>,
        work: &mut ProcessWork<'_>,
    ) -> Result<(), HandlerError> {
        if e.event.cents == 0 {
            return Err("a payment of nothing".into());
        }
        let order = e.stream_id;
        let invoice = work.load::<Invoice>(invoice_of(order)).await?;
        let shipment = work.load_or_default::<Shipment>(shipment_of(order)).await?;
        work.record(invoice, Settled);
        work.record(shipment, Shipped { order });
        Ok(())
    }
}

/// Every account's balance; a withdrawal below zero is refused.
#[derive(Projection, Default, Debug)]
#[projection(name = "balances", events(Deposited, Withdrawn))]
struct Balances {
    cents: HashMap<Uuid, u64>,
}

impl Handle<Deposited> for Balances {
    async fn handle(&mut self, e: &Recorded<Deposited>, _: &mut ()) -> Result<(), HandlerError> {
        *self.cents.entry(e.stream_id).or_default() += e.event.cents;
        Ok(())
    }
}

impl Handle<Withdrawn> for Balances {
    async fn handle(&mut self, e: &Recorded<Withdrawn>, _: &mut ()) -> Result<(), HandlerError> {
        let balance = self.cents.entry(e.stream_id).or_default();
        *balance = balance
            .checked_sub(e.event.cents)
            .ok_or("a balance below zero")?;
        Ok(())
    }
}

fn opened() -> Opened {
    Opened {
        owner: "Ada".into(),
    }
}

fn account() -> AggregateScenario<Account> {
    AggregateScenario::new()
        .given(opened())
        .given(Deposited { cents: 150 })
}

// ---------------------------------------------------------------------------------------------
// Aggregates

#[tokio::test]
async fn then_passes_on_the_recorded_events() {
    account()
        .when(|a| a.withdraw(30))
        .await
        .then(Withdrawn { cents: 30 })
        .then_state(|a| assert_eq!(a.balance, 120));
    account()
        .when(Account::close_out)
        .await
        .then([Withdrawn { cents: 100 }, Withdrawn { cents: 50 }]);
}

#[tokio::test]
#[should_panic(
    expected = "the command recorded other events than expected: event #1 `Withdrawn` differs in its payload at `cents`: 30, expected 40"
)]
async fn then_panics_on_another_payload() {
    account()
        .when(|a| a.withdraw(30))
        .await
        .then(Withdrawn { cents: 40 });
}

#[tokio::test]
#[should_panic(expected = "event #2 `Withdrawn` was not expected (expected 1 event, got 2 events)")]
async fn then_panics_on_an_event_too_many() {
    account()
        .when(Account::close_out)
        .await
        .then(Withdrawn { cents: 100 });
}

#[tokio::test]
#[should_panic(expected = "event #1 is `Withdrawn`, expected `Deposited`")]
async fn then_panics_on_another_event() {
    account()
        .when(|a| a.withdraw(30))
        .await
        .then(Deposited { cents: 30 });
}

#[tokio::test]
#[should_panic(
    expected = "expected the command to record 1 event, but it was rejected: Overdrawn { balance: 150, requested: 500 }"
)]
async fn then_panics_on_a_rejection() {
    account()
        .when(|a| a.withdraw(500))
        .await
        .then(Withdrawn { cents: 500 });
}

#[tokio::test]
async fn then_nothing_passes_when_the_command_records_nothing() {
    AggregateScenario::<Account>::new()
        .given(opened())
        .when(Account::close_out)
        .await
        .then_nothing()
        .then_state(|a| assert_eq!(a.balance, 0));
}

#[tokio::test]
#[should_panic(
    expected = "expected the command to record nothing: event #1 `Withdrawn` was not expected (expected 0 events, got 1 event)"
)]
async fn then_nothing_panics_when_the_command_records_events() {
    account().when(|a| a.withdraw(1)).await.then_nothing();
}

#[tokio::test]
async fn then_rejected_passes_on_the_error_and_the_state_is_unchanged() {
    account()
        .when(|a| a.withdraw(500))
        .await
        .then_rejected(BankError::Overdrawn {
            balance: 150,
            requested: 500,
        })
        .then_state(|a| assert_eq!(a.balance, 150));
}

#[tokio::test]
#[should_panic(
    expected = "expected the command to be rejected with Overdrawn { balance: 0, requested: 500 }, but it was rejected with Overdrawn { balance: 150, requested: 500 }"
)]
async fn then_rejected_panics_on_another_error() {
    account()
        .when(|a| a.withdraw(500))
        .await
        .then_rejected(BankError::Overdrawn {
            balance: 0,
            requested: 500,
        });
}

#[tokio::test]
#[should_panic(
    expected = "expected the command to be rejected with Overdrawn { balance: 150, requested: 30 }, but it was accepted and recorded 1 event:\n  1  Withdrawn {\"cents\":30}"
)]
async fn then_rejected_panics_when_the_command_is_accepted() {
    account()
        .when(|a| a.withdraw(30))
        .await
        .then_rejected(BankError::Overdrawn {
            balance: 150,
            requested: 30,
        });
}

#[tokio::test]
async fn then_rejected_with_passes_when_the_predicate_holds() {
    account()
        .when(|a| a.withdraw(500))
        .await
        .then_rejected_with(|e| matches!(e, BankError::Overdrawn { .. }));
}

#[tokio::test]
#[should_panic(
    expected = "the command was rejected with Overdrawn { balance: 150, requested: 500 }, which the check does not accept"
)]
async fn then_rejected_with_panics_when_the_predicate_fails() {
    account()
        .when(|a| a.withdraw(500))
        .await
        .then_rejected_with(|e| *e == BankError::NotOpen);
}

#[tokio::test]
#[should_panic(expected = "expected the command to be rejected, but it was accepted")]
async fn then_rejected_with_panics_when_the_command_is_accepted() {
    account()
        .when(|a| a.withdraw(1))
        .await
        .then_rejected_with(|_| true);
}

#[tokio::test]
#[should_panic(expected = "assertion `left == right` failed\n  left: 120\n right: 100")]
async fn then_state_runs_the_check_on_the_state_after() {
    account()
        .when(|a| a.withdraw(30))
        .await
        .then_state(|a| assert_eq!(a.balance, 100));
}

#[tokio::test]
async fn with_no_given_events_a_command_creates_the_aggregate() {
    let outcome = AggregateScenario::<Account>::new()
        .when(|a| a.open("Ada"))
        .await
        .then(opened())
        .then_state(|a| assert_eq!(a.owner.as_deref(), Some("Ada")));
    // The events went through the repository: the aggregate's category and one version.
    let recorded = &outcome.recorded()[0];
    assert_eq!(
        (recorded.category.as_str(), recorded.version),
        ("Account", 1)
    );
    assert_eq!(recorded.stream_id, outcome.stream_id());

    AggregateScenario::<Account>::new()
        .when(|a| a.withdraw(1))
        .await
        .then_rejected(BankError::NotOpen);
    AggregateScenario::<Account>::new()
        .given(opened())
        .when(|a| a.open("Bob"))
        .await
        .then_rejected(BankError::AlreadyOpen);
}

#[tokio::test]
async fn a_decision_may_move_what_it_captured_and_name_the_stream() {
    let scenario = account();
    let id = scenario.stream_id();
    let owner = String::from("moved into the decision");
    scenario
        .when(move |a: &Account| {
            let owner: String = owner; // moved out: the decision is an FnOnce
            assert!(!owner.is_empty());
            a.withdraw(1)
        })
        .await
        .then(Withdrawn { cents: 1 });
    let chosen = Uuid::now_v7();
    let outcome = account().on_stream(chosen).when(|a| a.withdraw(1)).await;
    assert_eq!(outcome.stream_id(), chosen);
    assert_ne!(id, chosen);
}

// ---------------------------------------------------------------------------------------------
// Projections

#[tokio::test]
async fn a_projection_scenario_hands_over_the_caught_up_read_model() {
    let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
    ProjectionScenario::new(Balances::default())
        .given::<Account>(ada, opened())
        .given::<Account>(ada, Deposited { cents: 100 })
        .given::<Account>(bob, [Deposited { cents: 5 }, Deposited { cents: 6 }])
        .given::<Account>(ada, Withdrawn { cents: 30 })
        .given::<Order>(Uuid::now_v7(), Placed { cents: 1 }) // not listed: skipped
        .then(|balances| {
            assert_eq!(balances.cents.len(), 2);
            assert_eq!((balances.cents[&ada], balances.cents[&bob]), (70, 11));
        })
        .await;
}

#[tokio::test]
#[should_panic(expected = "left: 70\n right: 71")]
async fn a_projection_scenario_panics_when_the_check_fails() {
    let ada = Uuid::now_v7();
    ProjectionScenario::new(Balances::default())
        .given::<Account>(ada, Deposited { cents: 100 })
        .given::<Account>(ada, Withdrawn { cents: 30 })
        .then(|balances| assert_eq!(balances.cents[&ada], 71))
        .await;
}

#[tokio::test]
#[should_panic(
    expected = "expected the projection to handle every event, but it failed: projection `balances` stopped at event `Withdrawn`"
)]
async fn a_projection_scenario_panics_when_a_handler_fails() {
    ProjectionScenario::new(Balances::default())
        .given::<Account>(Uuid::now_v7(), Withdrawn { cents: 30 })
        .then(|_| {})
        .await;
}

#[tokio::test]
async fn then_fails_passes_on_the_handler_error() {
    let ada = Uuid::now_v7();
    ProjectionScenario::new(Balances::default())
        .given::<Account>(ada, Deposited { cents: 10 })
        .given::<Account>(ada, Withdrawn { cents: 30 })
        .then_fails(|error| match error {
            ProjectionError::Handler {
                event,
                stream,
                version,
                source,
                ..
            } => {
                assert_eq!((event.as_str(), *stream, *version), ("Withdrawn", ada, 2));
                assert_eq!(source.to_string(), "a balance below zero");
            }
            other => panic!("expected a handler error, got {other}"),
        })
        .await;
}

#[tokio::test]
#[should_panic(expected = "expected the projection to fail, but it handled every event")]
async fn then_fails_panics_when_every_event_is_handled() {
    ProjectionScenario::new(Balances::default())
        .given::<Account>(Uuid::now_v7(), Deposited { cents: 10 })
        .then_fails(|_| {})
        .await;
}

// ---------------------------------------------------------------------------------------------
// Process managers

#[tokio::test]
async fn a_process_scenario_checks_the_caused_events_of_several_aggregates() {
    let order = Uuid::now_v7();
    // The placed order was confirmed and invoiced before: only the payment is new.
    ProcessScenario::new(Fulfilment)
        .given::<Order>(order, [Placed { cents: 250 }])
        .given::<Order>(order, Confirmed)
        .given::<Invoice>(invoice_of(order), Invoiced { order, cents: 250 })
        .when::<Order>(order, Paid { cents: 250 })
        .then([
            ExpectedEvent::new(invoice_of(order), Settled),
            ExpectedEvent::new(shipment_of(order), Shipped { order }),
        ])
        .await;
}

#[tokio::test]
async fn a_process_scenario_follows_a_process_reacting_to_its_own_events() {
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    ProcessScenario::new(Fulfilment)
        .when::<Order>(first, Placed { cents: 1 })
        .when::<Order>(second, Placed { cents: 2 })
        .then([
            ExpectedEvent::new(first, Confirmed),
            ExpectedEvent::new(second, Confirmed),
            ExpectedEvent::new(
                invoice_of(first),
                Invoiced {
                    order: first,
                    cents: 1,
                },
            ),
            ExpectedEvent::new(
                invoice_of(second),
                Invoiced {
                    order: second,
                    cents: 2,
                },
            ),
        ])
        .await;
}

#[tokio::test]
#[should_panic(
    expected = "the process caused other events than expected: event #2 `Shipped` is on stream"
)]
async fn a_process_scenario_panics_on_an_event_on_another_stream() {
    let order = Uuid::now_v7();
    ProcessScenario::new(Fulfilment)
        .given::<Order>(order, Placed { cents: 250 })
        .given::<Invoice>(invoice_of(order), Invoiced { order, cents: 250 })
        .when::<Order>(order, Paid { cents: 250 })
        .then([
            ExpectedEvent::new(invoice_of(order), Settled),
            ExpectedEvent::new(order, Shipped { order }),
        ])
        .await;
}

#[tokio::test]
#[should_panic(expected = "event #2 `Shipped` differs in its payload at `order`")]
async fn a_process_scenario_panics_on_another_payload() {
    let order = Uuid::now_v7();
    let other = Uuid::now_v7();
    ProcessScenario::new(Fulfilment)
        .given::<Order>(order, Placed { cents: 250 })
        .given::<Invoice>(invoice_of(order), Invoiced { order, cents: 250 })
        .when::<Order>(order, Paid { cents: 250 })
        .then([
            ExpectedEvent::new(invoice_of(order), Settled),
            ExpectedEvent::new(shipment_of(order), Shipped { order: other }),
        ])
        .await;
}

#[tokio::test]
async fn then_nothing_passes_when_the_process_has_seen_everything() {
    // Given history is not reacted to again: the tracking position is after it.
    ProcessScenario::new(Fulfilment)
        .given::<Order>(Uuid::now_v7(), Placed { cents: 250 })
        .then_nothing()
        .await;
}

#[tokio::test]
#[should_panic(
    expected = "the process caused other events than expected: event #1 `Confirmed` was not expected (expected 0 events, got 2 events)"
)]
async fn then_nothing_panics_when_the_process_causes_events() {
    ProcessScenario::new(Fulfilment)
        .when::<Order>(Uuid::now_v7(), Placed { cents: 250 })
        .then_nothing()
        .await;
}

#[tokio::test]
async fn a_process_scenario_then_fails_passes_on_the_reaction_error() {
    let order = Uuid::now_v7();
    ProcessScenario::new(Fulfilment)
        .given::<Order>(order, Placed { cents: 0 })
        .when::<Order>(order, Paid { cents: 0 })
        .then_fails(|error| {
            let message = error.to_string();
            assert!(
                message.starts_with("process `fulfilment` stopped at event `Paid`")
                    && message.ends_with("a payment of nothing"),
                "{message}"
            );
        })
        .await;
}

#[tokio::test]
#[should_panic(
    expected = "expected the process to fail, but it reacted to every event and caused 2 events"
)]
async fn a_process_scenario_then_fails_panics_when_every_reaction_succeeds() {
    ProcessScenario::new(Fulfilment)
        .when::<Order>(Uuid::now_v7(), Placed { cents: 250 })
        .then_fails(|_| {})
        .await;
}

#[tokio::test]
#[should_panic(
    expected = "expected the process to cause 0 events, but it failed: process `fulfilment` stopped at event `Paid`"
)]
async fn a_process_scenario_then_panics_when_a_reaction_fails() {
    // No invoice for the order: `work.load` of it fails.
    ProcessScenario::new(Fulfilment)
        .when::<Order>(Uuid::now_v7(), Paid { cents: 5 })
        .then_nothing()
        .await;
}
