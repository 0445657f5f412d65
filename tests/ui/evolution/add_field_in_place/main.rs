// `Registered` version 1 is locked as `{ email }`. This build adds `country` to version 1 in
// place: every `Registered` stored so far has no `country` and would fail to decode. The fix is
// version 2 with an upcaster (`evolution::add_a_field_without_a_default`).
use eventsource_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
struct Registered {
    email: String,
    country: String,
}

fn main() {}
