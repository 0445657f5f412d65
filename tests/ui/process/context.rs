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

/// What a projection's handlers would get; a process's reactions get a `ProcessWork` instead.
struct Batch;

#[derive(Process)]
#[process(events(Ordered, Paid), context = Batch)]
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
