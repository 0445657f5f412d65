// Two levels down: `Opened` holds an `Address`, which holds a `Geo`; this build makes
// `Geo.lat` an `f32`. `Geo` reports what changed and where events store it; `Opened` reports
// that its field `address` no longer stores what was locked.
use eventsource_core::{Event, EventData};
use serde::{Deserialize, Serialize};

#[derive(EventData, Serialize, Deserialize)]
struct Geo {
    lat: f32,
    lon: f64,
}

#[derive(EventData, Serialize, Deserialize)]
struct Address {
    street: String,
    geo: Geo,
}

#[derive(Event, Serialize, Deserialize)]
struct Opened {
    owner: String,
    address: Address,
}

fn main() {}
