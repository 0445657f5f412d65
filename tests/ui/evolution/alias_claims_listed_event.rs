// `Credited` says records stored as "Deposited" are its own, but the aggregate still lists
// `Deposited`, which writes that name: a stored "Deposited" could be either.
use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Deposited {
    amount: u64,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(aliases("Deposited"))]
struct Credited {
    amount: u64,
}

#[derive(Aggregate, Default)]
#[aggregate(events(Deposited, Credited))]
struct Account {
    balance: u64,
}

impl Apply<Deposited> for Account {
    fn apply(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }
}

impl Apply<Credited> for Account {
    fn apply(&mut self, e: &Credited) {
        self.balance += e.amount;
    }
}

fn main() {}
