use eventsource_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
#[event(name = "Deposited", version = 1)]
struct DepositedV1 {
    amount: u64,
}

// No `impl From<DepositedV1> for Deposited`.
#[derive(Event, Serialize, Deserialize)]
#[event(version = 2, upcast_from = DepositedV1)]
struct Deposited {
    amount: u64,
}

fn main() {}
