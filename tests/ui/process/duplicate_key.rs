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
#[process(events(Ordered, Paid), name = "shipping")]
#[process(name = "deliveries")]
struct Shipping;

impl React<Ordered> for Shipping {
    async fn react(&mut self, _: &Recorded<Ordered>, _: &mut ProcessWork<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
}

impl React<Paid> for Shipping {
    async fn react(&mut self, _: &Recorded<Paid>, _: &mut ProcessWork<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}
