//! Process managers: business processes that span aggregates. A process manager lists the
//! upstream events it reacts to (of any aggregate types) once, with `#[derive(Process)]`; the
//! derive writes the decoding enum and the dispatch to one [`React<E>`] impl per event, and a
//! missing impl is a compile error that names it. A [`ProcessManager`] runs it: it follows the
//! log, hands each upstream event to its reaction with a [`ProcessWork`] (load aggregates,
//! decide, record events on them), and appends **all the events a batch of reactions caused
//! together with the process's tracking position, in one atomic append**.
//!
//! # Guarantees
//!
//! - **Exactly once, on every store.** The caused events and the tracking position commit
//!   together or not at all, so after a crash the process resumes right after the last upstream
//!   event whose consequences are stored; none is reacted to twice with effect, none is skipped.
//!   Two runners committing the same upstream events (one lost its claim mid-batch) can't both
//!   succeed: the tracking position only moves forward, and the loser's whole append fails.
//! - **Fresh state after a conflict.** If another writer moved one of the aggregates a batch
//!   loaded (a version conflict), nothing of the batch is written and its reactions run again on
//!   fresh state, waiting the [`RetryPolicy`](crate::RetryPolicy)'s backoff in between.
//! - **Causation and correlation, filled in.** Every event a reaction records names the upstream
//!   event as its cause (`causation_id`), carries the upstream event's correlation id (or the
//!   upstream event's own id, if it had none), and has the process's name as its `actor`; see
//!   [`CommandContext::caused_by`](crate::CommandContext::caused_by). The reaction runs inside
//!   that context, so [`CommandContext::current`](crate::CommandContext::current) returns it.
//! - **One active runner.** Of the runners of one process on one shared database, one holds the
//!   process's claim and works, the others wait on standby and take over when it stops or dies
//!   (see [`Claims`](crate::application::claim::Claims)).
//!
//! A reaction must be deterministic in what it records given the state it loads: it may run
//! more than once (after a conflict, a failure, or a crash before the commit), and only the run
//! whose append commits counts. Side effects outside the store (an e-mail, a payment provider)
//! are therefore at least once: record an event asking for them and let a projection with its
//! own idempotency key carry them out.
//!
//! ```
//! use eventsource_core::prelude::*;
//! use eventsource_core::process::{ProcessManager, ProcessWork, React};
//! use eventsource_core::HandlerError;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Serialize, Deserialize, Debug, Clone)]
//! struct Ordered { cents: u64 }
//! #[derive(Aggregate, Default, Debug)]
//! #[aggregate(events(Ordered))]
//! struct Order { cents: u64 }
//! impl Apply<Ordered> for Order {
//!     fn apply(&mut self, e: &Ordered) { self.cents = e.cents; }
//! }
//!
//! #[derive(Event, Serialize, Deserialize, Debug, Clone)]
//! struct Invoiced { order: Uuid, cents: u64 }
//! #[derive(Aggregate, Default, Debug)]
//! #[aggregate(events(Invoiced))]
//! struct Invoice { cents: u64 }
//! impl Apply<Invoiced> for Invoice {
//!     fn apply(&mut self, e: &Invoiced) { self.cents = e.cents; }
//! }
//!
//! // Every order gets an invoice, exactly once: its id follows from the order's.
//! fn invoice_of(order: Uuid) -> Uuid {
//!     id_from_name("invoices", &order.to_string())
//! }
//!
//! #[derive(Process)]
//! #[process(name = "invoicing", events(Ordered))]
//! struct Invoicing;
//!
//! impl React<Ordered> for Invoicing {
//!     async fn react(&mut self, e: &Recorded<Ordered>, work: &mut ProcessWork<'_>) -> Result<(), HandlerError> {
//!         let invoice = work.load_or_default::<Invoice>(invoice_of(e.stream_id)).await?;
//!         work.record(invoice, Invoiced { order: e.stream_id, cents: e.event.cents });
//!         Ok(())
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let orders = Repository::<Order, _>::new(store.clone());
//! let order = orders.create(Ordered { cents: 250 }).await?;
//!
//! let mut invoicing = ProcessManager::new(store.clone(), Invoicing);
//! invoicing.catch_up().await?;
//!
//! let invoices = Repository::<Invoice, _>::new(store.clone());
//! let invoice = invoice_of(order);
//! assert_eq!(invoices.get(invoice).await?.cents, 250);
//! let caused = &invoices.history(invoice).await?[0];
//! let ordered = &orders.history(order).await?[0];
//! assert_eq!(caused.causation_id(), Some(ordered.id));          // caused by the order
//! assert_eq!(caused.correlation_id(), ordered.correlation_id()); // one workflow
//! assert_eq!(caused.actor(), Some("invoicing"));
//!
//! invoicing.catch_up().await?;                                    // nothing twice
//! assert_eq!(invoices.get(invoice).await?.version(), 1);
//! # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
//! ```

mod batch;
mod runner;

use std::future::Future;

pub use runner::{ProcessError, ProcessManager, RunningProcess};

use crate::application::projection::HandlerError;
use crate::application::repository::Recorded;
use crate::application::unit_of_work::Work;
use crate::domain::event::EventEnum;
use crate::persistence::store::EventStore;

/// What a reaction loads aggregates from and records events on: a [`Work`] over the process's
/// store. Everything recorded in one batch of reactions is appended together with the process's
/// tracking position.
pub type ProcessWork<'w> = Work<'w, dyn EventStore>;

/// A process manager: what `#[derive(Process)]` implements.
pub trait Process: Send + 'static {
    /// The process's name: its tracking record's name in the store, and the `actor` of the
    /// events it causes. Unique per store, among projections too.
    const NAME: &'static str;
    /// The upstream events it reacts to, decoded (the enum the derive writes).
    type Event: EventEnum;

    /// Hands `event` to its reaction (the derive writes the dispatch).
    fn react(
        &mut self,
        event: Recorded<Self::Event>,
        work: &mut ProcessWork<'_>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Reacting to one upstream event type `E`: one impl per event a process lists.
#[diagnostic::on_unimplemented(
    message = "`{Self}` lists the event `{E}` but does not implement `React<{E}>`",
    label = "`{Self}` needs a `React<{E}>` impl to react to this event",
    note = "every event in `#[process(events(...))]` needs a reaction; add:\n    impl React<{E}> for {Self} {{\n        async fn react(&mut self, event: &Recorded<{E}>, work: &mut ProcessWork<'_>) -> Result<(), HandlerError> {{\n            /* load aggregates with `work.load`, record what follows with `work.record` */\n            Ok(())\n        }}\n    }}"
)]
pub trait React<E> {
    /// Reacts to `event` (`event.event` is the event, the rest says where and when it was
    /// stored): loads the aggregates it concerns through `work` and records the events that
    /// follow. Returning an error stops the process at this event (after the retries of its
    /// [`ErrorPolicy`](crate::projection::ErrorPolicy)); nothing it recorded is written.
    fn react(
        &mut self,
        event: &Recorded<E>,
        work: &mut ProcessWork<'_>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Reacting to the forgotten value of a listed event: what the `Process` derive calls for a
/// forgotten record. Implemented for every process that implements `React<E::Forgotten>`, which
/// for an event without personal data is always.
#[diagnostic::on_unimplemented(
    message = "`{E}` holds personal data, but `{Self}` does not say how it reacts once its subject is forgotten",
    label = "`{Self}` needs a `React<Forgotten<{E}>>` impl",
    note = "`{E}` is marked `#[event(personal)]`: once its data subject is forgotten it decodes as `Forgotten<{E}>`, which every process that lists it must react to; add:\n    impl React<Forgotten<{E}>> for {Self} {{\n        async fn react(&mut self, event: &Recorded<Forgotten<{E}>>, work: &mut ProcessWork<'_>) -> Result<(), HandlerError> {{\n            Ok(())\n        }}\n    }}"
)]
pub trait ReactForgotten<E: crate::Event> {
    /// Reacts to the forgotten value of a record of `E` (`rest` is the record without its
    /// event).
    fn react_forgotten(
        &mut self,
        rest: Recorded<()>,
        record: &crate::ForgottenRecord,
        work: &mut ProcessWork<'_>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

impl<P, E> ReactForgotten<E> for P
where
    P: React<E::Forgotten> + Send + ?Sized,
    E: crate::Event,
{
    async fn react_forgotten(
        &mut self,
        rest: Recorded<()>,
        record: &crate::ForgottenRecord,
        work: &mut ProcessWork<'_>,
    ) -> Result<(), HandlerError> {
        use crate::domain::personal::ForgottenEvent;
        match E::Forgotten::from_record(record) {
            Some(forgotten) => self.react(&rest.map(move |()| forgotten), work).await,
            None => Ok(()),
        }
    }
}

// As for projections: only personal events need a `React<Forgotten<E>>` impl.
impl<P: ?Sized + Send, E: Send + Sync> React<crate::domain::personal::NotPersonal<E>> for P {
    async fn react(
        &mut self,
        event: &Recorded<crate::domain::personal::NotPersonal<E>>,
        _: &mut ProcessWork<'_>,
    ) -> Result<(), HandlerError> {
        match event.event.never {}
    }
}
