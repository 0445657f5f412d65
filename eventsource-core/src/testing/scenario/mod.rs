//! Given/when/then scenarios: the helpers domain tests are written with (feature `testing`).
//!
//! Each scenario runs on a fresh [`MemoryStore`] through the real machinery (the
//! [`Repository`], the [`Projector`](crate::Projector), the
//! [`ProcessManager`](crate::ProcessManager)), so what a test checks is what the application
//! does:
//!
//! - [`AggregateScenario`]: **given** an aggregate's events, **when** a command (a decision on
//!   its state), **then** the events it recorded ([`then`](CommandOutcome::then),
//!   [`then_nothing`](CommandOutcome::then_nothing)), or its rejection
//!   ([`then_rejected`](CommandOutcome::then_rejected),
//!   [`then_rejected_with`](CommandOutcome::then_rejected_with)), and the state after it
//!   ([`then_state`](CommandOutcome::then_state)).
//! - [`ProjectionScenario`]: **given** events on streams of any aggregates, **then** the read
//!   model the projection built from them ([`then`](ProjectionScenario::then)), or the handler
//!   error it stopped with ([`then_fails`](ProjectionScenario::then_fails)).
//! - [`ProcessScenario`]: **given** the events a process manager has already seen, **when** new
//!   ones, **then** the events its reactions caused on any streams
//!   ([`then`](ProcessScenario::then), [`then_nothing`](ProcessScenario::then_nothing)), each
//!   checked to name a `when` event as its cause and to carry its correlation id.
//!
//! Events are compared by their stored name and their JSON payload (see [`ExpectedEvent`]), so
//! they need no `PartialEq`. A `then…` that doesn't hold panics (these are test assertions) with
//! both lists of events side by side and the first difference marked:
//!
//! ```text
//! the command recorded other events than expected: event #1 `Withdrawn` differs in its payload at `cents`: 40, expected 30
//!
//!   #  expected                 actual
//! > 1  Withdrawn {"cents":30} ≠ Withdrawn {"cents":40}
//! ```
//!
//! The scenarios are async: run them in `#[tokio::test]` functions.
//!
//! ```
//! use eventsource_core::prelude::*;
//! use eventsource_core::testing::scenario::AggregateScenario;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Serialize, Deserialize, Debug, Clone)]
//! struct Placed { cents: u64 }
//! #[derive(Event, Serialize, Deserialize, Debug, Clone)]
//! struct Shipped;
//!
//! #[derive(Aggregate, Default, Debug)]
//! #[aggregate(events(Placed, Shipped))]
//! struct Order { placed: bool, shipped: bool }
//! impl Apply<Placed> for Order { fn apply(&mut self, _: &Placed) { self.placed = true; } }
//! impl Apply<Shipped> for Order { fn apply(&mut self, _: &Shipped) { self.shipped = true; } }
//!
//! #[derive(Debug, PartialEq)]
//! struct NotPlaced;
//!
//! impl Order {
//!     /// Shipping twice ships once.
//!     fn ship(&self) -> Result<Option<Shipped>, NotPlaced> {
//!         if !self.placed { return Err(NotPlaced) }
//!         Ok((!self.shipped).then_some(Shipped))
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! // #[tokio::test] async fn a_placed_order_ships_once() {
//! AggregateScenario::<Order>::new()
//!     .given(Placed { cents: 250 })
//!     .when(Order::ship)
//!     .await
//!     .then(Shipped)
//!     .then_state(|order| assert!(order.shipped));
//!
//! AggregateScenario::<Order>::new()
//!     .given(OrderEvent::from(Placed { cents: 250 }))
//!     .given(Shipped)
//!     .when(Order::ship)
//!     .await
//!     .then_nothing();
//!
//! AggregateScenario::<Order>::new().when(Order::ship).await.then_rejected(NotPlaced);
//! # });
//! ```

mod aggregate;
mod compare;
mod process;
mod projection;

use std::convert::Infallible;

use futures_util::future::BoxFuture;
use uuid::Uuid;

pub use aggregate::{AggregateScenario, CommandOutcome};
pub use compare::ExpectedEvent;
pub use process::ProcessScenario;
pub use projection::ProjectionScenario;

use crate::application::repository::{CommandError, Repository};
use crate::domain::aggregate::Aggregate;
use crate::domain::event::IntoEvents;
use crate::stores::memory::MemoryStore;

/// An append a scenario runs when its `then…` is awaited.
type Append = BoxFuture<'static, ()>;

/// Appends `events` to the stream `stream_id` of the aggregate `A` through a [`Repository`], as
/// a command would (with the stream's category, fresh event ids and a command's metadata),
/// after whatever the stream already holds. `role` ("given", "when") names the events in the
/// panic message if the store refuses them.
fn append<A: Aggregate>(
    store: &MemoryStore,
    role: &'static str,
    stream_id: Uuid,
    events: impl IntoEvents<A::Event>,
) -> Append {
    let repository = Repository::<A, _>::new(store.clone()).max_attempts(1);
    let mut events = Some(events.into_events());
    Box::pin(async move {
        let appended = repository
            .execute_or_create(stream_id, |_| {
                Ok::<_, Infallible>(events.take().unwrap_or_default())
            })
            .await;
        match appended {
            Ok(_) => {}
            Err(CommandError::Rejected(never)) => match never {},
            Err(CommandError::Store(error)) => panic!(
                "storing the {role} events of {} {stream_id} failed: {error}",
                A::NAME
            ),
        }
    })
}
