use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Deposited {
    amount: u64,
}

// No `snapshot` key: the repository's snapshot methods are not available.
#[derive(Aggregate, Default, Serialize, Deserialize)]
#[aggregate(events(Deposited))]
struct Account {
    balance: u64,
}

impl Apply<Deposited> for Account {
    fn apply(&mut self, event: &Deposited) {
        self.balance += event.amount;
    }
}

async fn snapshot_now(id: Uuid) {
    let accounts = Repository::<Account, _>::new(MemoryStore::new()).snapshot_every(50);
    let _ = accounts.take_snapshot(id).await;
}

fn main() {
    let _ = snapshot_now;
}
