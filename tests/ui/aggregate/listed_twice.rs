use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Opened {
    owner: String,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Deposited {
    amount: u64,
}

#[derive(Aggregate, Default)]
#[aggregate(events(Opened, Deposited, Opened))]
struct Account {
    balance: u64,
}

impl Apply<Opened> for Account {
    fn apply(&mut self, _: &Opened) {}
}

impl Apply<Deposited> for Account {
    fn apply(&mut self, event: &Deposited) {
        self.balance += event.amount;
    }
}

fn main() {}
