// A pure rename: `Deposited` version 1 is locked as `{ amount: u64 }`; the type is now called
// `Credited` and stored under that name, and `aliases("Deposited")` keeps the old records
// decoding. Its shape is the locked one, so it compiles.
use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(aliases("Deposited"))]
struct Credited {
    amount: u64,
}

#[derive(Aggregate, Default)]
#[aggregate(events(Credited))]
struct Account {
    balance: u64,
}

impl Apply<Credited> for Account {
    fn apply(&mut self, e: &Credited) {
        self.balance += e.amount;
    }
}

fn main() {
    let old = AccountEvent::decode(&Json, "Deposited", 1, br#"{"amount":7}"#).unwrap();
    let new = AccountEvent::decode(&Json, "Credited", 1, br#"{"amount":7}"#).unwrap();
    assert!(matches!((old, new), (AccountEvent::Credited(a), AccountEvent::Credited(b)) if a == b));
}
