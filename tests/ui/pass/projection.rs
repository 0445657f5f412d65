// Projections: one with the default `()` context, one with its own context type; handlers
// that `.await`; events of two aggregate types, one from another module; the event enum asks
// nothing of the events beyond `Event` (no `Debug`, no `Clone`).
use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

mod accounts {
    use serde::{Deserialize, Serialize};

    #[derive(eventsource_core::Event, Serialize, Deserialize)]
    #[event(name = "account.opened")]
    pub struct Opened {
        pub owner: String,
    }
}

#[derive(Event, Serialize, Deserialize)]
struct Deposited {
    cents: u64,
}

#[derive(Event, Serialize, Deserialize)]
struct CardIssued {
    last_digits: String,
}

// The default context, `()`, and the default name, the type's.
#[derive(Projection, Default)]
#[projection(events(accounts::Opened, Deposited, CardIssued))]
struct Summary {
    accounts: u64,
    cents: u64,
    cards: Vec<String>,
}

async fn later<T>(value: T) -> T {
    value
}

impl Handle<accounts::Opened> for Summary {
    async fn handle(&mut self, _: &Recorded<accounts::Opened>, _: &mut ()) -> Result<(), HandlerError> {
        self.accounts += later(1).await;
        Ok(())
    }
}

impl Handle<Deposited> for Summary {
    async fn handle(&mut self, e: &Recorded<Deposited>, _: &mut ()) -> Result<(), HandlerError> {
        self.cents += later(e.event.cents).await;
        Ok(())
    }
}

impl Handle<CardIssued> for Summary {
    async fn handle(&mut self, e: &Recorded<CardIssued>, _: &mut ()) -> Result<(), HandlerError> {
        self.cards.push(later(e.event.last_digits.clone()).await);
        Ok(())
    }
}

/// A context of our own: what a store's transaction would be for a read model in its database.
#[derive(Default)]
struct Journal {
    lines: Vec<String>,
}

#[derive(Projection)]
#[projection(name = "journal", events(Deposited), context = Journal, crate = "eventsource_core")]
struct Ledger;

impl Handle<Deposited, Journal> for Ledger {
    async fn handle(&mut self, e: &Recorded<Deposited>, journal: &mut Journal) -> Result<(), HandlerError> {
        let line = later(format!("{} cents into {}", e.event.cents, e.stream_id)).await;
        journal.lines.push(line);
        Ok(())
    }
}

fn assert_projection<P: Projection>() {}

fn main() {
    assert_projection::<Summary>();
    assert_projection::<Ledger>();
    assert_eq!(<Summary as Projection>::NAME, "Summary");
    assert_eq!(<Ledger as Projection>::NAME, "journal");
    assert_eq!(
        <SummaryEvent as EventEnum>::NAMES,
        ["account.opened", "Deposited", "CardIssued"]
    );
    assert_eq!(<LedgerEvent as EventEnum>::NAMES, ["Deposited"]);
    let _: fn(&mut Journal) = |_: &mut <Ledger as Projection>::Context| {};
}
