use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

mod events {
    use super::*;

    #[derive(Event, Serialize, Deserialize, Debug, Clone)]
    pub struct Forgotten {
        pub reason: String,
    }
}

#[derive(Aggregate, Default)]
#[aggregate(events(events::Forgotten))]
struct Password;

impl Apply<events::Forgotten> for Password {
    fn apply(&mut self, _: &events::Forgotten) {}
}

fn main() {}
