use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(personal(subject = customer))]
struct Ordered {
    customer: Uuid,
    address: String,
}

#[derive(Process, Default)]
#[process(events(Ordered))]
struct Shipping;

impl React<Ordered> for Shipping {
    async fn react(&mut self, _: &Recorded<Ordered>, _: &mut ProcessWork<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}
