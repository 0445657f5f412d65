use eventsource_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
#[event(name = "Opened", version = 1)]
#[event(name = "AccountOpened")]
struct Opened {
    owner: String,
}

fn main() {}
