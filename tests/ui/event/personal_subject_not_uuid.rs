use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
#[event(personal(subject = email))]
struct Registered {
    email: String,
}

fn main() {}
