//! Given/when/then for a process manager: the history it has already seen is appended and its
//! tracking position set after it, the new events are appended, a real [`ProcessManager`]
//! catches up, and the events its reactions caused (on any streams) are checked, each one also
//! for the causation and correlation ids that tie it to what it reacted to.

use std::collections::HashMap;
use std::fmt;

use uuid::Uuid;

use super::compare::{self, ExpectedEvent};
use super::{Append, append};
use crate::application::context::{CAUSATION_ID, CORRELATION_ID};
use crate::application::process::{Process, ProcessError, ProcessManager};
use crate::application::projection::ErrorPolicy;
use crate::domain::aggregate::Aggregate;
use crate::domain::event::IntoEvents;
use crate::persistence::position::Position;
use crate::persistence::record::{AppendBatch, LogQuery, StoredEvent, Tracking};
use crate::persistence::store::EventStore;
use crate::stores::memory::MemoryStore;

/// A given/when/then test of a process manager `P`: the upstream events it has already
/// reacted to, the new ones, and the events its reactions should cause.
///
/// - [`given`](Self::given): history the process has already seen. The events are appended,
///   then the process's tracking position is set after them (a tracking-only append, as its
///   own commits would have left it), so the [`ProcessManager`] resumes after them and doesn't
///   react to them; its reactions still load the aggregates they built.
/// - [`when`](Self::when): the new events it reacts to.
/// - [`then`](Self::then): runs [`ProcessManager::catch_up`] and checks the events it caused,
///   in log order, as `(stream id, event)` pairs of any aggregates (see [`ExpectedEvent`]);
///   [`then_nothing`](Self::then_nothing) checks it caused none;
///   [`then_fails`](Self::then_fails) expects a reaction to fail.
///
/// Both `given` and `when` append through each aggregate's [`Repository`](crate::Repository)
/// (one command per call, with its category, event ids and metadata), nothing before a
/// `then…` is awaited. Every caused event is also checked to name a `when` event (or an event
/// the process caused before it, for a process that reacts to its own events) as its
/// `causation_id`, and to carry that event's correlation id. The process manager runs with
/// [`ErrorPolicy::Stop`].
///
/// ```
/// use eventsource_core::prelude::*;
/// use eventsource_core::testing::scenario::ProcessScenario;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone)]
/// struct Ordered { cents: u64 }
/// #[derive(Aggregate, Default, Debug)]
/// #[aggregate(events(Ordered))]
/// struct Order;
/// impl Apply<Ordered> for Order { fn apply(&mut self, _: &Ordered) {} }
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone)]
/// struct Invoiced { order: Uuid, cents: u64 }
/// #[derive(Aggregate, Default, Debug)]
/// #[aggregate(events(Invoiced))]
/// struct Invoice;
/// impl Apply<Invoiced> for Invoice { fn apply(&mut self, _: &Invoiced) {} }
///
/// fn invoice_of(order: Uuid) -> Uuid { id_from_name("invoices", &order.to_string()) }
///
/// /// Every order gets an invoice.
/// #[derive(Process)]
/// #[process(name = "invoicing", events(Ordered))]
/// struct Invoicing;
///
/// impl React<Ordered> for Invoicing {
///     async fn react(&mut self, e: &Recorded<Ordered>, work: &mut ProcessWork<'_>) -> Result<(), HandlerError> {
///         let invoice = work.load_or_default::<Invoice>(invoice_of(e.stream_id)).await?;
///         work.record(invoice, Invoiced { order: e.stream_id, cents: e.event.cents });
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let (old, new) = (Uuid::now_v7(), Uuid::now_v7());
/// ProcessScenario::new(Invoicing)
///     .given::<Order>(old, Ordered { cents: 100 })   // already invoiced: not again
///     .when::<Order>(new, Ordered { cents: 250 })
///     .then([(invoice_of(new), Invoiced { order: new, cents: 250 })])
///     .await;
/// # });
/// ```
pub struct ProcessScenario<P> {
    process: P,
    store: MemoryStore,
    given: Vec<Append>,
    when: Vec<Append>,
}

/// What one run of a scenario left in the store.
struct Run {
    /// The `when` events, in log order.
    when: Vec<StoredEvent>,
    /// Everything after them: the events the process caused.
    caused: Vec<StoredEvent>,
    outcome: Result<(), ProcessError>,
}

impl<P: Process> ProcessScenario<P> {
    /// A scenario for `process` on an empty store.
    pub fn new(process: P) -> Self {
        Self {
            process,
            store: MemoryStore::new(),
            given: Vec::new(),
            when: Vec::new(),
        }
    }

    /// Events the process has already seen, on the stream `stream_id` of the aggregate `A`:
    /// one event, or several of one type, or of `A`'s event enum, appended as one command.
    pub fn given<A: Aggregate>(
        mut self,
        stream_id: Uuid,
        events: impl IntoEvents<A::Event>,
    ) -> Self {
        let append = append::<A>(&self.store, "given", stream_id, events);
        self.given.push(append);
        self
    }

    /// New events for the process to react to, on the stream `stream_id` of the aggregate `A`,
    /// appended as one command after every given event.
    pub fn when<A: Aggregate>(
        mut self,
        stream_id: Uuid,
        events: impl IntoEvents<A::Event>,
    ) -> Self {
        let append = append::<A>(&self.store, "when", stream_id, events);
        self.when.push(append);
        self
    }

    /// Runs the process over the `when` events and checks that it caused exactly `expected`, in
    /// log order: `(stream id, event)` pairs, or [`ExpectedEvent`]s for a list of several event
    /// types. Each caused event is compared by stream, stored name and JSON payload, and must
    /// name a `when` event as its cause and carry its correlation id.
    ///
    /// # Panics
    ///
    /// If a reaction fails, the caused events differ (the message lists both side by side and
    /// marks the first difference), or a caused event's causation or correlation id is wrong.
    pub async fn then<I>(self, expected: I)
    where
        I: IntoIterator,
        I::Item: Into<ExpectedEvent>,
    {
        let expected: Vec<ExpectedEvent> = expected.into_iter().map(Into::into).collect();
        let run = self.run().await;
        if let Err(error) = &run.outcome {
            panic!(
                "expected the process to cause {}, but it failed: {error}\n\nexpected:\n{}",
                compare::count(expected.len()),
                compare::list(&expected)
            );
        }
        let actual: Vec<ExpectedEvent> = run
            .caused
            .iter()
            .map(|event| ExpectedEvent::stored(event, true))
            .collect();
        compare::assert_same_events(
            "the process caused other events than expected",
            &expected,
            &actual,
        );
        check_causes(&run.when, &run.caused);
    }

    /// Runs the process over the `when` events and checks that it caused nothing.
    ///
    /// # Panics
    ///
    /// If a reaction fails or the process caused events.
    pub async fn then_nothing(self) {
        self.then(std::iter::empty::<ExpectedEvent>()).await;
    }

    /// Runs the process over the `when` events and hands the error it stopped with (a
    /// [`ProcessError::Reaction`] names the upstream event and carries the reaction's error)
    /// to `check`, which asserts on it. Nothing the failing batch recorded is stored.
    ///
    /// # Panics
    ///
    /// If the process reacts to every event, or `check` panics.
    pub async fn then_fails(self, check: impl FnOnce(&ProcessError)) {
        let run = self.run().await;
        match &run.outcome {
            Err(error) => check(error),
            Ok(()) => {
                let caused: Vec<ExpectedEvent> = run
                    .caused
                    .iter()
                    .map(|event| ExpectedEvent::stored(event, true))
                    .collect();
                panic!(
                    "expected the process to fail, but it reacted to every event and caused {}:\n{}",
                    compare::count(caused.len()),
                    compare::list(&caused)
                );
            }
        }
    }

    async fn run(self) -> Run {
        let Self {
            process,
            store,
            given,
            when,
        } = self;
        for append in given {
            append.await;
        }
        let seen = last_position(&store).await;
        if seen > Position::START {
            let tracking = AppendBatch {
                streams: Vec::new(),
                tracking: Some(Tracking {
                    tracker: P::NAME.to_owned(),
                    position: seen,
                }),
            };
            if let Err(error) = store.append(tracking).await {
                panic!(
                    "setting the tracking position of process `{}` after the given events failed: {error}",
                    P::NAME
                );
            }
        }
        for append in when {
            append.await;
        }
        let appended = last_position(&store).await;
        let when = read_log(&store, seen, Some(appended)).await;

        let mut manager = ProcessManager::new(store.clone(), process).on_error(ErrorPolicy::Stop);
        let outcome = manager.catch_up().await.map(drop);
        let caused = read_log(&store, appended, None).await;
        Run {
            when,
            caused,
            outcome,
        }
    }
}

impl<P> fmt::Debug for ProcessScenario<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessScenario")
            .field("process", &std::any::type_name::<P>())
            .field("given_appends", &self.given.len())
            .field("when_appends", &self.when.len())
            .finish_non_exhaustive()
    }
}

/// Checks that every caused event names a `when` event (or an event caused before it) as its
/// cause, and carries the correlation id its cause carried (or its cause's id, if it had none).
fn check_causes(when: &[StoredEvent], caused: &[StoredEvent]) {
    // Each event a caused event may name, and the correlation id that event passes on.
    let mut causes: HashMap<Uuid, Uuid> = when
        .iter()
        .map(|event| (event.id, uuid_at(event, CORRELATION_ID).unwrap_or(event.id)))
        .collect();
    for (index, event) in caused.iter().enumerate() {
        let which = format!(
            "caused event #{} `{}` on stream {}",
            index + 1,
            event.name,
            event.stream_id
        );
        let Some(cause) = uuid_at(event, CAUSATION_ID) else {
            panic!(
                "{which} names no cause: its metadata has no `{CAUSATION_ID}`; an event a process causes names the `when` event it reacted to (was it appended outside the reaction's ProcessWork?)"
            );
        };
        let Some(&correlation) = causes.get(&cause) else {
            panic!(
                "{which} names {cause} as its cause, which is neither a `when` event nor an event the process caused before it"
            );
        };
        let carried = uuid_at(event, CORRELATION_ID);
        if carried != Some(correlation) {
            let carried = carried.map_or_else(|| "none".to_owned(), |id| id.to_string());
            panic!(
                "{which} carries the correlation id {carried}, but its cause {cause} passes on {correlation}"
            );
        }
        causes.insert(event.id, correlation);
    }
}

fn uuid_at(event: &StoredEvent, key: &str) -> Option<Uuid> {
    event
        .metadata
        .get(key)
        .and_then(|value| Uuid::parse_str(value).ok())
}

async fn last_position(store: &MemoryStore) -> Position {
    match store.last_position().await {
        Ok(position) => position,
        Err(error) => panic!("reading the log's last position failed: {error}"),
    }
}

/// The events after `after`, up to `to` (inclusive) or the end of the log.
async fn read_log(
    store: &MemoryStore,
    mut after: Position,
    to: Option<Position>,
) -> Vec<StoredEvent> {
    let mut events = Vec::new();
    loop {
        let mut query = LogQuery::after(after, 1_000);
        if let Some(to) = to {
            query = query.up_to(to);
        }
        let page = match store.read_log(query).await {
            Ok(page) => page,
            Err(error) => panic!("reading the log after {after} failed: {error}"),
        };
        if page.is_empty() {
            return events;
        }
        after = page.next;
        events.extend(page.events);
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::persistence::record::Metadata;

    /// An event with id `id` and the given causation and correlation ids.
    fn event(id: Uuid, causation: Option<Uuid>, correlation: Option<Uuid>) -> StoredEvent {
        let mut metadata = Metadata::new();
        if let Some(cause) = causation {
            metadata.insert(CAUSATION_ID.to_owned(), cause.to_string());
        }
        if let Some(correlation) = correlation {
            metadata.insert(CORRELATION_ID.to_owned(), correlation.to_string());
        }
        StoredEvent {
            id,
            stream_id: Uuid::nil(),
            category: "Invoice".to_owned(),
            version: 1,
            name: "Invoiced".to_owned(),
            schema_version: 1,
            payload: b"{}".to_vec(),
            metadata,
            recorded_at: SystemTime::now(),
            position: Position::new(1),
        }
    }

    #[test]
    fn caused_events_name_a_when_event_or_an_earlier_caused_one() {
        let (request, upstream, first, second) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let when = [event(upstream, None, Some(request))];
        let caused = [
            event(first, Some(upstream), Some(request)),
            event(second, Some(first), Some(request)),
        ];
        check_causes(&when, &caused);
        // An upstream event without a correlation id passes on its own id.
        let when = [event(upstream, None, None)];
        check_causes(&when, &[event(first, Some(upstream), Some(upstream))]);
    }

    #[test]
    #[should_panic(
        expected = "caused event #1 `Invoiced` on stream 00000000-0000-0000-0000-000000000000 names no cause: its metadata has no `causation_id`"
    )]
    fn a_caused_event_without_a_cause_panics() {
        let upstream = Uuid::now_v7();
        check_causes(
            &[event(upstream, None, None)],
            &[event(Uuid::now_v7(), None, Some(upstream))],
        );
    }

    #[test]
    #[should_panic(
        expected = "which is neither a `when` event nor an event the process caused before it"
    )]
    fn a_caused_event_naming_another_cause_panics() {
        let upstream = Uuid::now_v7();
        check_causes(
            &[event(upstream, None, None)],
            &[event(Uuid::now_v7(), Some(Uuid::now_v7()), Some(upstream))],
        );
    }

    #[test]
    #[should_panic(expected = "carries the correlation id none, but its cause")]
    fn a_caused_event_with_another_correlation_id_panics() {
        let upstream = Uuid::now_v7();
        check_causes(
            &[event(upstream, None, Some(Uuid::now_v7()))],
            &[event(Uuid::now_v7(), Some(upstream), None)],
        );
    }
}
