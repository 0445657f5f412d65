// A three-version chain: version 1 -> 2 by a function over the stored JSON, 2 -> 3 by `From`.
use eventsource_core::{Event, Json, UpcastError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn add_currency(mut value: Value) -> Result<Value, UpcastError> {
    let object = value.as_object_mut().ok_or_else(|| UpcastError::new("expected an object"))?;
    object.insert("currency".into(), "EUR".into());
    Ok(value)
}

#[derive(Event, Serialize, Deserialize, Debug, PartialEq)]
#[event(name = "Deposited", version = 2, upcast(from = 1, with = add_currency))]
struct DepositedV2 {
    amount: u64,
    currency: String,
}

#[derive(Event, Serialize, Deserialize, Debug, PartialEq)]
#[event(version = 3, upcast_from = DepositedV2)]
struct Deposited {
    cents: u64,
    currency: String,
}

impl From<DepositedV2> for Deposited {
    fn from(old: DepositedV2) -> Self {
        Deposited { cents: old.amount * 100, currency: old.currency }
    }
}

fn main() {
    let v1 = Deposited::decode_stored(&Json, 1, br#"{"amount":2}"#).unwrap();
    assert_eq!(v1, Deposited { cents: 200, currency: "EUR".into() });
}
