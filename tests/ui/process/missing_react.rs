use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
struct Ordered {
    cents: u64,
}

#[derive(Event, Serialize, Deserialize)]
struct Paid {
    cents: u64,
}

#[derive(Process)]
#[process(name = "shipping", events(Ordered, Paid))]
struct Shipping;

impl React<Ordered> for Shipping {
    async fn react(&mut self, _: &Recorded<Ordered>, _: &mut ProcessWork<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}
