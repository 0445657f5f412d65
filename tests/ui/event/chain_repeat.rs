use eventsource_core::{Event, UpcastError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn v1_to_v2(value: Value) -> Result<Value, UpcastError> {
    Ok(value)
}

#[derive(Event, Serialize, Deserialize)]
#[event(version = 2, upcast(from = 1, with = v1_to_v2), upcast(from = 1, with = v1_to_v2))]
struct Deposited {
    amount: u64,
}

fn main() {}
