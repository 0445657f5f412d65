//! Projections: read models built from the log. A projection lists the events it handles
//! (of any aggregate types) once, with `#[derive(Projection)]`; the derive writes the decoding
//! enum and the dispatch to one [`Handle<E, C>`] impl per event, and a missing impl is a compile
//! error that names it. A [`Projector`] runs it: it follows the log with a
//! [`Subscription`](crate::Subscription), hands each batch of events to the handlers inside
//! the context `C` the store gives them, and records how far it got.
//!
//! Where the read model lives decides the guarantee:
//!
//! | context `C` | read model | tracking | after a crash |
//! |---|---|---|---|
//! | [`PostgresWork`](crate::stores::postgres::PostgresWork) | tables in the store's PostgreSQL database | in the same transaction as the handlers' writes | resumes right after the last committed event: **exactly once** |
//! | [`SqliteWork`](crate::stores::sqlite::SqliteWork) | tables in the store's SQLite file | in the same transaction | **exactly once** |
//! | `()` | in memory, or anywhere else | none kept by the projector | in memory: rebuilt from the log at start; elsewhere: keep your own position beside your data and start the projector there; **at least once** since the last position you kept |
//!
//! A read model in the store's database is shared by every process that runs its projector, so
//! those run **one at a time**: a projector takes the projection's claim before it processes
//! anything (see [`ProjectionContext`]), and the others wait on standby
//! ([`RunnerRole::Standby`]) until it stops or dies, then one of them takes over from the
//! recorded tracking position.
//!
//! | context `C` | claim | a crashed holder is replaced |
//! |---|---|---|
//! | [`PostgresWork`](crate::stores::postgres::PostgresWork) | a session advisory lock on a connection of its own | as soon as the server sees its connection end |
//! | [`SqliteWork`](crate::stores::sqlite::SqliteWork) | a lease row in the file, renewed while it runs | once its lease expires |
//! | `()` | none: each process has its own read model | — |

mod context;
mod runner;

use std::future::Future;

pub use context::{ProjectionContext, Standby};
pub use runner::{
    ErrorPolicy, Progress, ProjectionError, Projector, RunnerRole, RunnerStatus, RunningProjection,
};

use crate::application::repository::Recorded;
use crate::domain::event::EventEnum;

/// What a handler returns when it can't handle an event: any error (`?` converts a driver's
/// error). The projector reports it as a [`ProjectionError`] naming the event.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A read model built from events: what `#[derive(Projection)]` implements.
///
/// ```
/// use eventsource_core::prelude::*;
/// use eventsource_core::projection::{Handle, HandlerError, Projector};
/// use serde::{Deserialize, Serialize};
/// use std::collections::HashMap;
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone)]
/// struct Deposited { cents: u64 }
///
/// #[derive(Aggregate, Default, Debug)]
/// #[aggregate(events(Deposited))]
/// struct Account { cents: u64 }
/// impl Apply<Deposited> for Account {
///     fn apply(&mut self, e: &Deposited) { self.cents += e.cents; }
/// }
///
/// // An in-memory read model: every account's balance.
/// #[derive(Projection, Default)]
/// #[projection(name = "balances", events(Deposited))]
/// struct Balances { cents: HashMap<Uuid, u64> }
///
/// impl Handle<Deposited> for Balances {
///     async fn handle(&mut self, e: &Recorded<Deposited>, _: &mut ()) -> Result<(), HandlerError> {
///         *self.cents.entry(e.stream_id).or_default() += e.event.cents;
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let store = std::sync::Arc::new(MemoryStore::new());
/// let accounts = Repository::<Account, _>::new(store.clone());
/// let id = accounts.create(Deposited { cents: 500 }).await?;
///
/// let mut balances = Projector::new(store.clone(), Balances::default());
/// balances.catch_up().await?;
/// assert_eq!(balances.projection().cents[&id], 500);
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub trait Projection: Send + 'static {
    /// The projection's name: its tracking record's name in the store. Unique per store.
    const NAME: &'static str;
    /// The events it handles, decoded (the enum the derive writes).
    type Event: EventEnum;
    /// What the store hands its handlers: its transaction for a read model in the store's
    /// database, `()` for one elsewhere.
    type Context: Send;

    /// Hands `event` to its handler (the derive writes the dispatch).
    fn project(
        &mut self,
        event: Recorded<Self::Event>,
        cx: &mut Self::Context,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// How a running projector shows the error that stopped it in its status (a process manager,
    /// which runs on the projector's engine, names itself a process).
    #[doc(hidden)]
    fn describe(error: &ProjectionError) -> String {
        error.to_string()
    }
}

/// Handling one event type `E` with the projection's context `C`: one impl per event a
/// projection lists.
#[diagnostic::on_unimplemented(
    message = "`{Self}` lists the event `{E}` but does not implement `Handle<{E}, {C}>`",
    label = "`{Self}` needs a `Handle<{E}, {C}>` impl to project this event",
    note = "every event in `#[projection(events(...))]` needs a handler for the projection's context `{C}` (set with `context = ...`; `()` by default); add:\n    impl Handle<{E}, {C}> for {Self} {{\n        async fn handle(&mut self, event: &Recorded<{E}>, cx: &mut {C}) -> Result<(), HandlerError> {{\n            /* update the read model */\n            Ok(())\n        }}\n    }}"
)]
pub trait Handle<E, C = ()> {
    /// Updates the read model with `event` (`event.event` is the event, the rest says where
    /// and when it was stored). Writes through `cx` commit together with the projection's
    /// tracking position.
    fn handle(
        &mut self,
        event: &Recorded<E>,
        cx: &mut C,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Handling the forgotten value of a listed event: what the `Projection` derive calls for a
/// forgotten record. Implemented for every projection that implements
/// `Handle<E::Forgotten, C>`, which for an event without personal data is always.
#[diagnostic::on_unimplemented(
    message = "`{E}` holds personal data, but `{Self}` does not say what the read model keeps once its subject is forgotten",
    label = "`{Self}` needs a `Handle<Forgotten<{E}>, _>` impl",
    note = "`{E}` is marked `#[event(personal)]`: once its data subject is forgotten it decodes as `Forgotten<{E}>`, which every projection that lists it must handle (with the same context type as its other `Handle` impls); add:\n    impl Handle<Forgotten<{E}>> for {Self} {{\n        async fn handle(&mut self, event: &Recorded<Forgotten<{E}>>, cx: &mut ()) -> Result<(), HandlerError> {{\n            /* remove the person's data from the read model */\n            Ok(())\n        }}\n    }}"
)]
pub trait HandleForgotten<E: crate::Event, C> {
    /// Handles the forgotten value of a record of `E` (`rest` is the record without its event).
    fn handle_forgotten(
        &mut self,
        rest: Recorded<()>,
        record: &crate::ForgottenRecord,
        cx: &mut C,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

impl<P, E, C> HandleForgotten<E, C> for P
where
    P: Handle<E::Forgotten, C> + Send + ?Sized,
    E: crate::Event,
    C: Send,
{
    async fn handle_forgotten(
        &mut self,
        rest: Recorded<()>,
        record: &crate::ForgottenRecord,
        cx: &mut C,
    ) -> Result<(), HandlerError> {
        use crate::domain::personal::ForgottenEvent;
        match E::Forgotten::from_record(record) {
            Some(forgotten) => self.handle(&rest.map(move |()| forgotten), cx).await,
            None => Ok(()),
        }
    }
}

// Events without personal data are never forgotten: every projection "handles" their
// (impossible) forgotten value, so only personal events need a `Handle<Forgotten<E>>` impl.
impl<P: ?Sized + Send, E: Send + Sync, C: Send> Handle<crate::domain::personal::NotPersonal<E>, C>
    for P
{
    async fn handle(
        &mut self,
        event: &Recorded<crate::domain::personal::NotPersonal<E>>,
        _: &mut C,
    ) -> Result<(), HandlerError> {
        match event.event.never {}
    }
}
