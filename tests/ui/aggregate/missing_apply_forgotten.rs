use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(personal)]
struct Registered {
    email: String,
}

#[derive(Aggregate, Default)]
#[aggregate(events(Registered))]
struct Customer {
    email: Option<String>,
}

impl Apply<Registered> for Customer {
    fn apply(&mut self, e: &Registered) {
        self.email = Some(e.email.clone());
    }
}

fn main() {}
