use eventsource_core::Event;
use serde::{Deserialize, Serialize};

// An upcaster takes the stored JSON value and returns the next version's value.
fn v1_to_v2(amount: u64) -> u64 {
    amount
}

#[derive(Event, Serialize, Deserialize)]
#[event(version = 2, upcast(from = 1, with = v1_to_v2))]
struct Deposited {
    amount: u64,
}

fn main() {}
