use eventsource_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
#[event(name = "Deposited", version = 1)]
struct DepositedV1 {
    amount: u64,
}

// Version 3's typed step must be version 2, not version 1.
#[derive(Event, Serialize, Deserialize)]
#[event(version = 3, upcast_from = DepositedV1)]
struct Deposited {
    amount: u64,
}

impl From<DepositedV1> for Deposited {
    fn from(old: DepositedV1) -> Self {
        Deposited { amount: old.amount }
    }
}

fn main() {}
