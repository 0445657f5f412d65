use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
#[event(personal(subject = customr))]
struct Ordered {
    customer: Uuid,
    cents: u64,
}

fn main() {}
