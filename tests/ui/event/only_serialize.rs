// An event that can be written but not read back: the one message says what it needs.
use eventsource_core::Event;
use serde::Serialize;

#[derive(Event, Serialize)]
struct Opened {
    owner: String,
}

fn main() {}
