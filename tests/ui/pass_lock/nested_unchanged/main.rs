// Nested types as locked: a struct in a `Vec`, a struct two levels down in an `Option`, an enum
// with a serde attribute, and a type from another crate locked by its type as written
// (`#[event(opaque)]`). Everything matches the lock, so it compiles and decodes a stored event.
use eventsource_core::{Event, EventData, Json};
use serde::{Deserialize, Serialize};

#[derive(EventData, Serialize, Deserialize, Debug, PartialEq)]
struct Geo {
    lat: f64,
    lon: f64,
}

#[derive(EventData, Serialize, Deserialize, Debug, PartialEq)]
struct Address {
    street: String,
    postcode: String,
    geo: Option<Geo>,
}

#[derive(EventData, Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename_all = "UPPERCASE")]
enum Currency {
    Eur,
    Usd,
}

#[derive(Event, Serialize, Deserialize, Debug, PartialEq)]
struct Opened {
    owner: String,
    addresses: Vec<Address>,
    currency: Currency,
    #[event(opaque)]
    opened_at: std::net::Ipv4Addr,
}

fn main() {
    let stored = br#"{"owner":"Ada","addresses":[{"street":"1 Main St","postcode":"N1","geo":null}],"currency":"EUR","opened_at":"10.0.0.1"}"#;
    let opened = Opened::decode_stored(&Json, 1, stored).unwrap();
    assert_eq!(opened.currency, Currency::Eur);
    assert_eq!(opened.addresses[0].postcode, "N1");
}
