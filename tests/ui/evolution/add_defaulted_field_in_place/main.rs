// `Noted` version 1 is locked as `{ text }`. This build adds a field with `#[serde(default)]`
// in place. Old records would decode (the default fills the field), but the lock holds every
// version to its stored shape, so the change still takes a version: version 2 with a step that
// leaves the value as it is (`evolution::add_a_field_with_a_default`).
use eventsource_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
struct Noted {
    text: String,
    #[serde(default)]
    pinned: bool,
}

fn main() {}
