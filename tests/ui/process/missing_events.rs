use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
struct Ordered {
    cents: u64,
}

#[derive(Event, Serialize, Deserialize)]
struct Paid {
    cents: u64,
}

#[derive(Process)]
#[process(name = "shipping")]
struct Shipping;

fn main() {}
