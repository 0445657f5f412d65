// `Priced` version 1 is locked as `{ cents, symbol }`. This build drops `symbol` from version 1
// in place. The fix is version 2 with a step that drops it (`evolution::remove_a_field`).
use eventsource_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
struct Priced {
    cents: u64,
}

fn main() {}
