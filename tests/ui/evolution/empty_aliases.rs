use eventsource_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
#[event(aliases())]
struct Endorsed {
    by: String,
}

fn main() {}
