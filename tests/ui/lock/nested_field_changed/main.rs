// `Opened` version 1 is locked holding an `Address` whose `postcode` is a `String`; this build
// makes it a `u32`. `Opened`'s own fields read the same, but version-1 events already stored
// hold a string there and would no longer decode.
use eventsource_core::{Event, EventData};
use serde::{Deserialize, Serialize};

#[derive(EventData, Serialize, Deserialize)]
struct Address {
    street: String,
    postcode: u32,
}

#[derive(Event, Serialize, Deserialize)]
struct Opened {
    owner: String,
    address: Address,
}

fn main() {}
