// `Titled` version 1 is locked as `{ label }`. This build renames the field to `title` in place:
// stored records have `label` and no `title`, and would fail to decode. The fix is version 2 with
// a step that moves the value (`evolution::rename_a_field`).
use eventsource_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
struct Titled {
    title: String,
}

fn main() {}
