use eventsource_core::Event;
use serde::{Deserialize, Serialize};

// Forgot `name = "Deposited"`: this is stored as "DepositedV1", a different event.
#[derive(Event, Serialize, Deserialize)]
#[event(version = 1)]
struct DepositedV1 {
    amount: u64,
}

#[derive(Event, Serialize, Deserialize)]
#[event(version = 2, upcast_from = DepositedV1)]
struct Deposited {
    amount: u64,
}

impl From<DepositedV1> for Deposited {
    fn from(old: DepositedV1) -> Self {
        Deposited { amount: old.amount }
    }
}

fn main() {}
