use eventsource_core::{Event, UpcastError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn v1_to_v2(value: Value) -> Result<Value, UpcastError> {
    Ok(value)
}

#[derive(Event, Serialize, Deserialize)]
#[event(name = "Deposited", version = 2, upcast(from = 1, with = v1_to_v2))]
struct DepositedV2 {
    amount: u64,
}

#[derive(Event, Serialize, Deserialize)]
#[event(version = 3, upcast_from = DepositedV2, upcast(from = 1, with = v1_to_v2))]
struct Deposited {
    amount: u64,
}

impl From<DepositedV2> for Deposited {
    fn from(old: DepositedV2) -> Self {
        Deposited { amount: old.amount }
    }
}

fn main() {}
