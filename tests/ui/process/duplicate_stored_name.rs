use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
struct Paid {
    cents: u64,
}

// Another aggregate's event, stored as "Paid" too: the process could not tell the two apart in
// the log.
#[derive(Event, Serialize, Deserialize)]
#[event(name = "Paid")]
struct Refunded {
    cents: u64,
}

#[derive(Process)]
#[process(events(Paid, Refunded))]
struct Shipping;

impl React<Paid> for Shipping {
    async fn react(&mut self, _: &Recorded<Paid>, _: &mut ProcessWork<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
}

impl React<Refunded> for Shipping {
    async fn react(&mut self, _: &Recorded<Refunded>, _: &mut ProcessWork<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}
