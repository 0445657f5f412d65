// `name`, `event_enum` and `crate` options, and events in another module.
use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

mod events {
    use serde::{Deserialize, Serialize};

    #[derive(eventsource_core::Event, Serialize, Deserialize, Debug, Clone)]
    #[event(name = "account.opened", crate = "::eventsource_core")]
    pub struct Opened {
        pub owner: String,
    }
}

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(name = "account.closed")]
pub struct Closed;

#[derive(Aggregate, Default)]
#[aggregate(events(events::Opened, Closed), name = "account", event_enum = AccountChange, crate = "eventsource_core")]
pub struct Account {
    open: bool,
}

impl Apply<events::Opened> for Account {
    fn apply(&mut self, _: &events::Opened) {
        self.open = true;
    }
}

impl Apply<Closed> for Account {
    fn apply(&mut self, _: &Closed) {
        self.open = false;
    }
}

fn main() {
    assert_eq!(<Account as Aggregate>::NAME, "account");
    assert_eq!(<AccountChange as EventEnum>::NAMES, ["account.opened", "account.closed"]);
    let mut account = Account::default();
    account.apply_event(&AccountChange::from(events::Opened { owner: "Ada".into() }));
    assert!(account.open);
    let events: Vec<AccountChange> = [AccountChange::Closed(Closed)].into_events();
    assert_eq!(events[0].name(), "account.closed");
}
