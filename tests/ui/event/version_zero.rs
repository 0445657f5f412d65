use eventsource_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
#[event(version = 0)]
struct Opened {
    owner: String,
}

fn main() {}
