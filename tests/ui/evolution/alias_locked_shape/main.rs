// `Deposited` version 1 is locked as `{ amount: u64 }`. `Credited` takes over that name with
// `aliases("Deposited")`, so a stored `Deposited` version 1 decodes as `Credited` version 1, but
// its shape is not the locked one: the rename needs a version too, with a step from the old
// shape (`evolution::rename_an_event`).
use eventsource_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
#[event(aliases("Deposited"))]
struct Credited {
    cents: u64,
}

fn main() {}
