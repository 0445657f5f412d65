use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
#[event(personal = true)]
struct Registered {
    email: String,
}

#[derive(Event, Serialize, Deserialize)]
#[event(personal())]
struct Renamed {
    name: String,
}

#[derive(Event, Serialize, Deserialize)]
#[event(personal(subjct = customer))]
struct Ordered {
    customer: Uuid,
}

#[derive(Event, Serialize, Deserialize)]
#[event(personal(subject = id))]
struct Tuple(Uuid);

fn main() {}
