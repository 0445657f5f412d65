// An alias names a stored name the event had before a rename, not the one it has now.
use eventsource_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
#[event(name = "Credited", aliases("Deposited", "Credited"))]
struct Credited {
    cents: u64,
}

fn main() {}
