use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Opened {
    owner: String,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Deposited {
    amount: u64,
}

#[derive(Aggregate)]
#[aggregate(events(Opened, Deposited))]
enum Account {
    Open { balance: u64 },
}

fn main() {}
