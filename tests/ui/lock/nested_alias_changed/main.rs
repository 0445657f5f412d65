// A change no derive can see in the tokens it is given: `Address` still reads
// `postcode: Postcode`, but the alias now means `u32`. The fingerprint of `Address` changed,
// so the const assertion on `Opened`'s field fails the build, naming the event, version and
// field.
use eventsource_core::{Event, EventData};
use serde::{Deserialize, Serialize};

type Postcode = u32;

#[derive(EventData, Serialize, Deserialize)]
struct Address {
    street: String,
    postcode: Postcode,
}

#[derive(Event, Serialize, Deserialize)]
struct Opened {
    owner: String,
    address: Address,
}

fn main() {}
