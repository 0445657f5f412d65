// Snapshot keys, and a repository with snapshots and a cache.
use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Deposited {
    amount: u64,
}

#[derive(Aggregate, Default, Clone, Serialize, Deserialize)]
#[aggregate(events(Deposited), snapshot_every = 500)]
struct Account {
    #[serde(rename = "b")]
    balance: u64,
}

impl Apply<Deposited> for Account {
    fn apply(&mut self, event: &Deposited) {
        self.balance += event.amount;
    }
}

#[derive(Aggregate, Default, Serialize, Deserialize)]
#[aggregate(events(Deposited), snapshot)]
struct Ledger(u64);

impl Apply<Deposited> for Ledger {
    fn apply(&mut self, event: &Deposited) {
        self.0 += event.amount;
    }
}

fn main() {
    let settings = <Account as Aggregate>::SNAPSHOTS.unwrap();
    assert_eq!(settings.every.map(|n| n.get()), Some(500));
    assert_eq!(<Ledger as Aggregate>::SNAPSHOTS.unwrap().every, None);
    let accounts = Repository::<Account, _>::new(MemoryStore::new())
        .snapshot_every(100)
        .with_cache(1000);
    assert_eq!(accounts.snapshot_policy().map(|n| n.get()), Some(100));
    let ledgers = Repository::<Ledger, _>::new(MemoryStore::new()).snapshot_every(10);
    let _ = ledgers.take_snapshot(Uuid::nil());
}
