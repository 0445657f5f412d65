//! Given/then for a projection with the context `()` (a read model in memory): the given events
//! are appended to a fresh [`MemoryStore`] through each aggregate's [`Repository`], a real
//! [`Projector`] catches up on them, and the read model (or the error that stopped it) is
//! checked.
//!
//! [`Repository`]: crate::Repository

use std::fmt;

use uuid::Uuid;

use super::{Append, append};
use crate::application::projection::{ErrorPolicy, Projection, ProjectionError, Projector};
use crate::domain::aggregate::Aggregate;
use crate::domain::event::IntoEvents;
use crate::stores::memory::MemoryStore;

/// A given/then test of a projection `P` whose read model lives in memory (context `()`): the
/// events in the log, and what the read model holds after a [`Projector`] has caught up on them.
///
/// [`given`](Self::given) appends events to a stream of any aggregate through its
/// [`Repository`](crate::Repository), so each event has the stream's category, an id and a
/// command's metadata, as in the application; nothing is appended until a `then…` is awaited.
/// [`then`](Self::then) runs [`Projector::catch_up`] and hands the projection to an assertion
/// closure; [`then_fails`](Self::then_fails) expects the projector to stop with an error. The
/// projector runs with [`ErrorPolicy::Stop`], so a failing handler fails at once.
///
/// ```
/// use std::collections::HashMap;
/// use eventsource_core::prelude::*;
/// use eventsource_core::projection::{Handle, HandlerError};
/// use eventsource_core::testing::scenario::ProjectionScenario;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone)]
/// struct Deposited { cents: u64 }
/// #[derive(Event, Serialize, Deserialize, Debug, Clone)]
/// struct Withdrawn { cents: u64 }
///
/// #[derive(Aggregate, Default, Debug)]
/// #[aggregate(events(Deposited, Withdrawn))]
/// struct Account;
/// impl Apply<Deposited> for Account { fn apply(&mut self, _: &Deposited) {} }
/// impl Apply<Withdrawn> for Account { fn apply(&mut self, _: &Withdrawn) {} }
///
/// /// Every account's balance; a withdrawal below zero is a bug upstream.
/// #[derive(Projection, Default, Debug)]
/// #[projection(name = "balances", events(Deposited, Withdrawn))]
/// struct Balances { cents: HashMap<Uuid, u64> }
///
/// impl Handle<Deposited> for Balances {
///     async fn handle(&mut self, e: &Recorded<Deposited>, _: &mut ()) -> Result<(), HandlerError> {
///         *self.cents.entry(e.stream_id).or_default() += e.event.cents;
///         Ok(())
///     }
/// }
/// impl Handle<Withdrawn> for Balances {
///     async fn handle(&mut self, e: &Recorded<Withdrawn>, _: &mut ()) -> Result<(), HandlerError> {
///         let balance = self.cents.entry(e.stream_id).or_default();
///         *balance = balance.checked_sub(e.event.cents).ok_or("a balance below zero")?;
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
/// ProjectionScenario::new(Balances::default())
///     .given::<Account>(ada, Deposited { cents: 100 })
///     .given::<Account>(bob, Deposited { cents: 5 })
///     .given::<Account>(ada, Withdrawn { cents: 30 })
///     .then(|balances| assert_eq!((balances.cents[&ada], balances.cents[&bob]), (70, 5)))
///     .await;
///
/// ProjectionScenario::new(Balances::default())
///     .given::<Account>(ada, Withdrawn { cents: 30 })
///     .then_fails(|error| assert!(error.to_string().contains("a balance below zero")))
///     .await;
/// # });
/// ```
pub struct ProjectionScenario<P> {
    projection: P,
    store: MemoryStore,
    given: Vec<Append>,
}

impl<P> ProjectionScenario<P>
where
    P: Projection<Context = ()>,
{
    /// A scenario for `projection` (usually its empty read model) on an empty store.
    pub fn new(projection: P) -> Self {
        Self {
            projection,
            store: MemoryStore::new(),
            given: Vec::new(),
        }
    }

    /// Events on the stream `stream_id` of the aggregate `A`, after the events given before
    /// (on any stream): one event, or several of one type, or of `A`'s event enum. They are
    /// appended as one command through a [`Repository<A>`](crate::Repository).
    pub fn given<A: Aggregate>(
        mut self,
        stream_id: Uuid,
        events: impl IntoEvents<A::Event>,
    ) -> Self {
        let append = append::<A>(&self.store, "given", stream_id, events);
        self.given.push(append);
        self
    }

    /// Appends the given events, runs a [`Projector`] until it has caught up, and hands the
    /// projection to `check`, which asserts on its read model.
    ///
    /// # Panics
    ///
    /// If the projector stops with an error (a handler's, or the store's), or `check` does.
    pub async fn then(self, check: impl FnOnce(&P)) {
        match self.run().await {
            (projection, Ok(())) => check(&projection),
            (_, Err(error)) => {
                panic!("expected the projection to handle every event, but it failed: {error}")
            }
        }
    }

    /// Appends the given events, runs a [`Projector`], and hands the error it stopped with (a
    /// [`ProjectionError::Handler`] names the event a handler refused and carries the
    /// handler's error) to `check`, which asserts on it.
    ///
    /// # Panics
    ///
    /// If the projector handles every event, or `check` panics.
    pub async fn then_fails(self, check: impl FnOnce(&ProjectionError)) {
        match self.run().await {
            (_, Err(error)) => check(&error),
            (_, Ok(())) => {
                panic!("expected the projection to fail, but it handled every event")
            }
        }
    }

    async fn run(self) -> (P, Result<(), ProjectionError>) {
        for append in self.given {
            append.await;
        }
        let mut projector = Projector::new(self.store, self.projection).on_error(ErrorPolicy::Stop);
        let outcome = projector.catch_up().await.map(drop);
        (projector.into_projection(), outcome)
    }
}

impl<P> fmt::Debug for ProjectionScenario<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProjectionScenario")
            .field("projection", &std::any::type_name::<P>())
            .field("given_appends", &self.given.len())
            .finish_non_exhaustive()
    }
}
