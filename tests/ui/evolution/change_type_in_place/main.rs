// `Weighed` version 1 is locked as `{ grams: f64 }`. This build makes `grams` a `u64` in place:
// stored values like `12.5` would fail to decode. The fix is version 2 with a typed step that
// converts (`evolution::change_a_field_type`).
use eventsource_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
struct Weighed {
    grams: u64,
}

fn main() {}
