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

#[derive(Projection, Default)]
#[projection(events(Opened, Deposited, Opened))]
struct Balances {
    accounts: u64,
}

impl Handle<Opened> for Balances {
    async fn handle(&mut self, _: &Recorded<Opened>, _: &mut ()) -> Result<(), HandlerError> {
        Ok(())
    }
}

impl Handle<Deposited> for Balances {
    async fn handle(&mut self, _: &Recorded<Deposited>, _: &mut ()) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}
