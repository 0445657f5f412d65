// `Deposited` version 1 is locked with `amount: u64` and `note: Option<String>`; this build
// retypes `amount`, drops `note` and adds `currency`. Version-1 events already stored would no
// longer decode.
use eventsource_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
struct Deposited {
    amount: u32,
    currency: String,
}

fn main() {}
