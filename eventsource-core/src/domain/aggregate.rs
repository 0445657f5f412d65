//! Aggregates: state rebuilt by applying events.

use super::event::EventEnum;

/// An aggregate: a consistency boundary whose state is the fold of its events.
///
/// Implement it with `#[derive(Aggregate)]`, listing the events, and write one [`Apply`] impl
/// per event. Decisions are ordinary methods that read the state and return events.
pub trait Aggregate: Default + Send + Sync + 'static {
    /// The aggregate's name, used in errors, snapshots and the registry.
    const NAME: &'static str;

    /// The enum of this aggregate's events.
    type Event: EventEnum;

    /// Applies one event of any kind to the state, dispatching to the `Apply<E>` impl.
    fn apply_event(&mut self, event: &Self::Event);
}

/// Applying one event type to an aggregate's state.
///
/// Applying must not fail: the event already happened. Validation belongs in the command that
/// decides to record the event.
#[diagnostic::on_unimplemented(
    message = "`{Self}` lists the event `{E}` but does not implement `Apply<{E}>`",
    label = "`{Self}` needs an `Apply<{E}>` impl to replay this event",
    note = "every event in `#[aggregate(events(...))]` must be applied to the state; add:\n    impl Apply<{E}> for {Self} {{\n        fn apply(&mut self, event: &{E}) {{ /* update the state */ }}\n    }}"
)]
pub trait Apply<E> {
    /// Updates the state with the event.
    fn apply(&mut self, event: &E);
}
