use eventsource_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
#[event(version = 2, upcast(from = 1))]
struct Deposited {
    amount: u64,
}

fn main() {}
