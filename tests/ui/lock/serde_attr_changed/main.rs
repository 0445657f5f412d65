// Renaming the fields on the wire is a change of the stored shape too.
use eventsource_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
struct Deposited {
    amount: u64,
    #[serde(default)]
    note: Option<String>,
}

fn main() {}
