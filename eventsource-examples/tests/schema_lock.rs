//! The bank domain's events are locked in `eventsource-examples/events.lock`: a change to a
//! stored event's shape fails the build, and an event version that is not locked yet fails this
//! test. Refresh the lock with `EVENTSOURCE_LOCK=write cargo test -p eventsource-examples --test schema_lock`.

use eventsource_examples::bank::BankAccount;

#[test]
fn schema_lock_is_up_to_date() {
    // Names a type of the library so that its registrations are linked into this test.
    assert_eq!(
        <BankAccount as eventsource_core::Aggregate>::NAME,
        "BankAccount"
    );
    eventsource_core::check_schema_lock!();
}
