// `Opened` stores an `Address` that doesn't derive `EventData`, so the schema lock could not see
// a change inside it. (The lock is from before nested types were locked: it still reads.)
use eventsource_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Address {
    street: String,
    postcode: String,
}

#[derive(Event, Serialize, Deserialize)]
struct Opened {
    owner: String,
    address: Address,
}

fn main() {}
