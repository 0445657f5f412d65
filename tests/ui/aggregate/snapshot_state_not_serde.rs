use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Deposited {
    amount: u64,
}

// Snapshots store the state, so it must be `Serialize + Deserialize`.
#[derive(Aggregate, Default)]
#[aggregate(events(Deposited), snapshot_every = 100)]
struct Account {
    balance: u64,
}

impl Apply<Deposited> for Account {
    fn apply(&mut self, event: &Deposited) {
        self.balance += event.amount;
    }
}

fn main() {}
