use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
struct Deposited {
    cents: u64,
}

// Another aggregate's event, stored as "Deposited" too: the projection could not tell the two
// apart in the log.
#[derive(Event, Serialize, Deserialize)]
#[event(name = "Deposited")]
struct Credited {
    cents: u64,
}

#[derive(Projection, Default)]
#[projection(events(Deposited, Credited))]
struct Balances {
    cents: u64,
}

impl Handle<Deposited> for Balances {
    async fn handle(&mut self, _: &Recorded<Deposited>, _: &mut ()) -> Result<(), HandlerError> {
        Ok(())
    }
}

impl Handle<Credited> for Balances {
    async fn handle(&mut self, _: &Recorded<Credited>, _: &mut ()) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}
