use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Deposited {
    amount: u64,
}

// Stored as "Deposited" too: replaying could not tell the two apart.
#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(name = "Deposited")]
struct Credited {
    amount: u64,
}

#[derive(Aggregate, Default)]
#[aggregate(events(Deposited, Credited))]
struct Account {
    balance: u64,
}

impl Apply<Deposited> for Account {
    fn apply(&mut self, event: &Deposited) {
        self.balance += event.amount;
    }
}

impl Apply<Credited> for Account {
    fn apply(&mut self, event: &Credited) {
        self.balance += event.amount;
    }
}

fn main() {}
