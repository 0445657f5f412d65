use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
struct Opened {
    owner: String,
}

#[derive(Event, Serialize, Deserialize)]
struct Deposited {
    cents: u64,
}

/// The read model's unit of work (a stand-in for a store's transaction).
struct Batch;

/// Another context: the handlers below were written for it.
struct Scratch;

#[derive(Projection, Default)]
#[projection(events(Opened, Deposited), context = Batch)]
struct Balances {
    accounts: u64,
}

// Written for `Scratch`, but the projection declares `context = Batch`.
impl Handle<Opened, Scratch> for Balances {
    async fn handle(&mut self, _: &Recorded<Opened>, _: &mut Scratch) -> Result<(), HandlerError> {
        Ok(())
    }
}

impl Handle<Deposited, Batch> for Balances {
    async fn handle(&mut self, _: &Recorded<Deposited>, _: &mut Batch) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}
