// The lock's `amount` line was edited by hand, so its fingerprint no longer matches.
use eventsource_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
struct Deposited {
    amount: u64,
}

fn main() {}
