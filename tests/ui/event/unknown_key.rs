use eventsource_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
#[event(verison = 2, colour = "red")]
struct Opened {
    owner: String,
}

fn main() {}
