use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
struct Opened {
    owner: String,
}

#[derive(Event, Serialize, Deserialize)]
struct Deposited {
    cents: u64,
}

#[derive(Projection)]
#[projection(events(Opened, Deposited))]
enum Balances {
    Empty,
}

fn main() {}
