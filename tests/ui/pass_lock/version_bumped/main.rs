// The whole cycle: `Deposited` version 1 is locked. To change its shape, the old shape stays as
// `DepositedV1` (still matching the lock), and the new shape is version 2 with an upcaster.
// Version 2 is not locked yet, so it compiles; stored version-1 records still decode.
use eventsource_core::{Event, Json};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
#[event(name = "Deposited", version = 1)]
struct DepositedV1 {
    amount: u64,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Event, Serialize, Deserialize, Debug, PartialEq)]
#[event(version = 2, upcast_from = DepositedV1)]
struct Deposited {
    cents: u64,
    currency: String,
}

impl From<DepositedV1> for Deposited {
    fn from(old: DepositedV1) -> Self {
        Deposited { cents: old.amount * 100, currency: "EUR".into() }
    }
}

fn main() {
    let stored_v1 = br#"{"amount":7,"note":"rent"}"#;
    let decoded = Deposited::decode_stored(&Json, 1, stored_v1).unwrap();
    assert_eq!(decoded, Deposited { cents: 700, currency: "EUR".into() });
}
