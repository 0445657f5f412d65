//! Given/when/then for one aggregate: the given events are stored in one stream of a fresh
//! [`MemoryStore`], the command runs through [`Repository::execute`], and the outcome (the
//! events it recorded, or its rejection, and the state after) is checked.

use std::fmt;

use futures_util::TryStreamExt;
use uuid::Uuid;

use super::compare::{self, ExpectedEvent};
use crate::application::repository::{CommandError, Recorded, Repository};
use crate::domain::aggregate::Aggregate;
use crate::domain::event::{EventEnum, IntoEvents};
use crate::domain::id::new_id;
use crate::persistence::record::{StoredEvent, StreamRange};
use crate::persistence::store::EventStore;
use crate::stores::memory::MemoryStore;

/// A given/when/then test of one aggregate `A`: the events it already has, a command, and what
/// the command should do.
///
/// [`given`](Self::given) events (of `A`'s event enum, or any event `Into` it) are appended to
/// one stream of a fresh [`MemoryStore`] through a [`Repository`]; [`when`](Self::when) runs the
/// decision through [`Repository::execute`] (or, with no given events,
/// [`Repository::execute_or_create`], so that a command creating the aggregate can be tested
/// against the empty state) and returns a [`CommandOutcome`] to check with `then…`. Recorded
/// events are compared by stored name and JSON payload (see [`ExpectedEvent`]), so the
/// aggregate's events need no `PartialEq`.
///
/// ```
/// use eventsource_core::prelude::*;
/// use eventsource_core::testing::scenario::AggregateScenario;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone)]
/// struct Opened { owner: String }
/// #[derive(Event, Serialize, Deserialize, Debug, Clone)]
/// struct Deposited { cents: u64 }
/// #[derive(Event, Serialize, Deserialize, Debug, Clone)]
/// struct Withdrawn { cents: u64 }
///
/// #[derive(Aggregate, Default, Debug)]
/// #[aggregate(events(Opened, Deposited, Withdrawn))]
/// struct Account { balance: u64 }
///
/// impl Apply<Opened> for Account { fn apply(&mut self, _: &Opened) {} }
/// impl Apply<Deposited> for Account {
///     fn apply(&mut self, e: &Deposited) { self.balance += e.cents; }
/// }
/// impl Apply<Withdrawn> for Account {
///     fn apply(&mut self, e: &Withdrawn) { self.balance -= e.cents; }
/// }
///
/// #[derive(Debug, PartialEq)]
/// enum BankError { Overdrawn { balance: u64 } }
///
/// impl Account {
///     fn withdraw(&self, cents: u64) -> Result<Withdrawn, BankError> {
///         if cents > self.balance { return Err(BankError::Overdrawn { balance: self.balance }) }
///         Ok(Withdrawn { cents })
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// // In a test: #[tokio::test] async fn a_withdrawal_is_taken_from_the_balance() { … }
/// AggregateScenario::<Account>::new()
///     .given(Opened { owner: "Ada".into() })
///     .given(Deposited { cents: 100 })
///     .when(|account| account.withdraw(30))
///     .await
///     .then(Withdrawn { cents: 30 })
///     .then_state(|account| assert_eq!(account.balance, 70));
///
/// AggregateScenario::<Account>::new()
///     .given(Opened { owner: "Ada".into() })
///     .when(|account| account.withdraw(30))
///     .await
///     .then_rejected(BankError::Overdrawn { balance: 0 });
/// # });
/// ```
pub struct AggregateScenario<A: Aggregate> {
    stream_id: Uuid,
    given: Vec<A::Event>,
}

impl<A: Aggregate> AggregateScenario<A> {
    /// A scenario on a fresh stream id, with no events yet.
    pub fn new() -> Self {
        Self {
            stream_id: new_id(),
            given: Vec::new(),
        }
    }

    /// The aggregate's stream id, for a decision whose events name it (a fresh UUID v7 unless
    /// set with [`on_stream`](Self::on_stream)).
    pub fn stream_id(&self) -> Uuid {
        self.stream_id
    }

    /// Runs the scenario on the stream `stream_id` instead of a fresh one.
    pub fn on_stream(mut self, stream_id: Uuid) -> Self {
        self.stream_id = stream_id;
        self
    }

    /// Events the aggregate already has, after those given before: one event, or several
    /// (a `Vec` or an array of one event type, or of the aggregate's event enum).
    pub fn given(mut self, events: impl IntoEvents<A::Event>) -> Self {
        self.given.extend(events.into_events());
        self
    }

    /// Stores the given events, runs `decide` as a command on them and returns what it did.
    ///
    /// The command runs through [`Repository::execute`], or through
    /// [`Repository::execute_or_create`] if no events were given; each runs in a
    /// [`CommandContext`](crate::CommandContext) as in the application, and with one attempt:
    /// nothing else writes to the scenario's store.
    ///
    /// # Panics
    ///
    /// If the store fails: the given events don't encode, or the command's events don't.
    pub async fn when<T, E, F>(self, decide: F) -> CommandOutcome<A, E>
    where
        F: FnOnce(&A) -> Result<T, E>,
        T: IntoEvents<A::Event> + Send,
        E: Send,
    {
        let Self { stream_id, given } = self;
        let store = MemoryStore::new();
        let repository = Repository::<A, _>::new(store.clone()).max_attempts(1);
        let given_count = given.len() as u64;
        if given_count > 0
            && let Err(error) = repository.create_with_id(stream_id, given).await
        {
            panic!(
                "storing the given events of {} {stream_id} failed: {error}",
                A::NAME
            );
        }

        // One attempt, so the decision is called once: it may move what it captured.
        let mut decide = Some(decide);
        let once = move |state: &A| match decide.take() {
            Some(decide) => decide(state),
            None => panic!("the scenario's repository called the decision twice"),
        };
        let result = if given_count == 0 {
            repository.execute_or_create(stream_id, once).await
        } else {
            repository.execute(stream_id, once).await
        };
        let (result, state) = match result {
            Ok(loaded) => (Ok(()), loaded.into_state()),
            Err(CommandError::Rejected(rejection)) => {
                let state = match repository.get(stream_id).await {
                    Ok(loaded) => loaded.into_state(),
                    Err(_) if given_count == 0 => A::default(),
                    Err(error) => panic!(
                        "loading {} {stream_id} after the rejected command failed: {error}",
                        A::NAME
                    ),
                };
                (Err(rejection), state)
            }
            Err(CommandError::Store(error)) => panic!(
                "the command on {} {stream_id} failed in the store: {error}",
                A::NAME
            ),
        };

        let stored: Vec<StoredEvent> = match store
            .read_stream(stream_id, StreamRange::all().from(given_count + 1))
            .try_collect()
            .await
        {
            Ok(stored) => stored,
            Err(error) => panic!("reading the recorded events back failed: {error}"),
        };
        let actual = stored
            .iter()
            .map(|stored| ExpectedEvent::stored(stored, false))
            .collect();
        let mut recorded = Vec::with_capacity(stored.len());
        for stored in stored {
            match repository.decode(&stored).await {
                Ok(event) => recorded.push(Recorded::new(event, stored)),
                Err(error) => panic!("a recorded event does not decode: {error}"),
            }
        }
        CommandOutcome {
            stream_id,
            result,
            recorded,
            actual,
            state,
        }
    }
}

impl<A: Aggregate> Default for AggregateScenario<A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: Aggregate> fmt::Debug for AggregateScenario<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregateScenario")
            .field("aggregate", &A::NAME)
            .field("stream_id", &self.stream_id)
            .field(
                "given",
                &self.given.iter().map(|e| e.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What a command of an [`AggregateScenario`] did: the events it recorded or the error it was
/// rejected with, and the aggregate's state after it. Each `then…` panics with a message saying
/// what was expected and what happened, and returns the outcome for the next check.
pub struct CommandOutcome<A: Aggregate, E> {
    stream_id: Uuid,
    result: Result<(), E>,
    recorded: Vec<Recorded<A::Event>>,
    actual: Vec<ExpectedEvent>,
    state: A,
}

impl<A: Aggregate, E: fmt::Debug> CommandOutcome<A, E> {
    /// Checks that the command was accepted and recorded exactly `expected`, in order (one
    /// event, or several: a `Vec` or an array of one event type, or of the aggregate's event
    /// enum), compared by stored name and JSON payload.
    ///
    /// # Panics
    ///
    /// If the command was rejected, or recorded other events: the message lists the expected
    /// and the recorded events side by side and marks the first difference.
    #[track_caller]
    pub fn then(self, expected: impl IntoEvents<A::Event>) -> Self {
        let expected: Vec<ExpectedEvent> = expected
            .into_events()
            .iter()
            .map(ExpectedEvent::of_enum)
            .collect();
        if let Err(rejection) = &self.result {
            panic!(
                "expected the command to record {}, but it was rejected: {rejection:?}\n\nexpected:\n{}",
                compare::count(expected.len()),
                compare::list(&expected)
            );
        }
        compare::assert_same_events(
            "the command recorded other events than expected",
            &expected,
            &self.actual,
        );
        self
    }

    /// Checks that the command was accepted and recorded nothing (a decision returning `None`
    /// or an empty `Vec`: an idempotent command run again).
    ///
    /// # Panics
    ///
    /// If the command was rejected or recorded events.
    #[track_caller]
    pub fn then_nothing(self) -> Self {
        if let Err(rejection) = &self.result {
            panic!("expected the command to record nothing, but it was rejected: {rejection:?}");
        }
        compare::assert_same_events("expected the command to record nothing", &[], &self.actual);
        self
    }

    /// Checks that the command was rejected with `expected`, and recorded nothing.
    ///
    /// # Panics
    ///
    /// If it was accepted, or rejected with another error.
    #[track_caller]
    pub fn then_rejected(self, expected: E) -> Self
    where
        E: PartialEq,
    {
        match &self.result {
            Ok(()) => self.accepted_but(&format!("to be rejected with {expected:?}")),
            Err(rejection) if *rejection != expected => panic!(
                "expected the command to be rejected with {expected:?}, but it was rejected with {rejection:?}"
            ),
            Err(_) => self.wrote_nothing(),
        }
    }

    /// Checks that the command was rejected with an error for which `check` returns `true`
    /// (`|e| matches!(e, BankError::Overdrawn { .. })`), for errors without `PartialEq` or
    /// whose details don't matter; and that it recorded nothing.
    ///
    /// # Panics
    ///
    /// If it was accepted, or `check` returns `false`.
    #[track_caller]
    pub fn then_rejected_with(self, check: impl FnOnce(&E) -> bool) -> Self {
        match &self.result {
            Ok(()) => self.accepted_but("to be rejected"),
            Err(rejection) if !check(rejection) => panic!(
                "the command was rejected with {rejection:?}, which the check does not accept"
            ),
            Err(_) => self.wrote_nothing(),
        }
    }

    /// Hands the aggregate's state after the command (after the given events only, if it was
    /// rejected) to `check`, which asserts on it.
    pub fn then_state(self, check: impl FnOnce(&A)) -> Self {
        check(&self.state);
        self
    }

    /// A rejected command writes nothing: checked, not assumed, so a test named "a refused
    /// command writes nothing" says what it checks.
    #[track_caller]
    fn wrote_nothing(self) -> Self {
        compare::assert_same_events(
            "the command was rejected, yet its stream has new events",
            &[],
            &self.actual,
        );
        self
    }

    #[track_caller]
    fn accepted_but(&self, expected: &str) -> ! {
        panic!(
            "expected the command {expected}, but it was accepted and recorded {}:\n{}",
            compare::count(self.actual.len()),
            compare::list(&self.actual)
        );
    }
}

impl<A: Aggregate, E> CommandOutcome<A, E> {
    /// The aggregate's stream id.
    pub fn stream_id(&self) -> Uuid {
        self.stream_id
    }

    /// The events the command recorded, with their metadata (empty if it was rejected).
    pub fn recorded(&self) -> &[Recorded<A::Event>] {
        &self.recorded
    }

    /// The error the command was rejected with, if it was.
    pub fn rejection(&self) -> Option<&E> {
        self.result.as_ref().err()
    }

    /// The aggregate's state after the command.
    pub fn state(&self) -> &A {
        &self.state
    }
}

impl<A: Aggregate, E> fmt::Debug for CommandOutcome<A, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandOutcome")
            .field("aggregate", &A::NAME)
            .field("stream_id", &self.stream_id)
            .field("rejected", &self.result.is_err())
            .field("recorded", &self.actual)
            .finish_non_exhaustive()
    }
}
