use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

mod v1 {
    use eventsource_core::Event;
    use serde::{Deserialize, Serialize};

    #[derive(Event, Serialize, Deserialize, Debug, Clone)]
    #[event(name = "LegacyOpened")]
    pub struct Opened {
        pub owner: String,
    }
}

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Opened {
    owner: String,
}

#[derive(Aggregate, Default)]
#[aggregate(events(Opened, v1::Opened))]
struct Account {
    owner: String,
}

impl Apply<Opened> for Account {
    fn apply(&mut self, event: &Opened) {
        self.owner = event.owner.clone();
    }
}

impl Apply<v1::Opened> for Account {
    fn apply(&mut self, event: &v1::Opened) {
        self.owner = event.owner.clone();
    }
}

fn main() {}
