use eventsource_core::Event;
use serde::{Deserialize, Serialize};

// Version 3 without an upcaster chain: events stored at versions 1 and 2 would be lost.
#[derive(Event, Serialize, Deserialize)]
#[event(version = 3)]
struct Deposited {
    amount: u64,
}

fn main() {}
