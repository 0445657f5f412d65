use eventsource_core::{Event, UpcastError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn v1_to_v2(value: Value) -> Result<Value, UpcastError> {
    Ok(value)
}

// Nothing upcasts version 2 to 3.
#[derive(Event, Serialize, Deserialize)]
#[event(version = 4, upcast(from = 1, with = v1_to_v2), upcast(from = 3, with = v1_to_v2))]
struct Deposited {
    amount: u64,
}

fn main() {}
