// `Deposited` version 1 is locked holding a `Currency` with the variants `Eur`, `Usd` and `Chf`;
// this build renames `Usd` to `Dollar` and removes `Chf` and adds `Gbp`. Stored `"Usd"` and
// `"Chf"` would no longer decode.
use eventsource_core::{Event, EventData};
use serde::{Deserialize, Serialize};

#[derive(EventData, Serialize, Deserialize)]
enum Currency {
    Eur,
    Dollar,
    Gbp,
}

#[derive(Event, Serialize, Deserialize)]
struct Deposited {
    cents: u64,
    currency: Currency,
}

fn main() {}
