use eventsource_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
#[event(name = "")]
struct Opened {
    owner: String,
}

fn main() {}
