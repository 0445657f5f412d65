use eventsource_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
struct Legacy {
    amount: u64,
}

#[derive(Event, Serialize, Deserialize)]
#[event(upcast_from = Legacy)]
struct Deposited {
    amount: u64,
}

impl From<Legacy> for Deposited {
    fn from(old: Legacy) -> Self {
        Deposited { amount: old.amount }
    }
}

fn main() {}
