//! The bank domain end to end with its payloads compressed and encrypted, on a SQLite file, on
//! PostgreSQL (a schema of its own) and on NATS JetStream (a store of its own, keys in its
//! bucket `NAME-keys`) — the servers skipped with a printed reason when absent, and failing
//! with `CI=true` — as the demo runs with `EVENTSOURCE_MASTER_KEY`: accounts, a
//! transfer as a unit of work, transfers run by the process (one completed, one compensated),
//! the statements read model in the store's database, a snapshot, and then forgetting the owner
//! of a closed account: her `Opened` decodes as forgotten, her name leaves the read model and
//! the stored bytes, and everyone else's data stays.
// Amounts are in cents and written as euros_cents (`100_00` is 100.00).
#![allow(clippy::inconsistent_digit_grouping)]

use std::sync::Arc;
use std::time::Duration;

use eventsource_core::persistence::codec::{MasterKey, PayloadCodec};
use eventsource_core::prelude::*;
use eventsource_core::{Claims, Error};
use eventsource_examples::OpenedStore;
use eventsource_examples::bank::{
    self, BankAccount, BankAccountEvent, FORGOTTEN_OWNER, Opened, TransferLimits,
};
use eventsource_examples::statements::ReadSide;
use eventsource_examples::transfers::{self, MoneyTransfer, Transfers};

mod support;
use support::nats::Servers;
use support::postgres::Server;

type Accounts = Repository<BankAccount, Arc<dyn EventStore>>;

async fn open(accounts: &Accounts, owner: &str) -> Uuid {
    accounts
        .create(Opened {
            owner: owner.into(),
            currency: "EUR".into(),
        })
        .await
        .unwrap()
}

/// Waits until the process has finished transfer `id` (at most 20 s).
async fn finished<S: EventStore>(
    transfers: &Repository<MoneyTransfer, S>,
    id: Uuid,
) -> MoneyTransfer {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let transfer = transfers.get(id).await.unwrap().into_state();
        if transfer.is_finished() {
            return transfer;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the transfers process did not finish transfer {id}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn the_bank_runs_encrypted<S: Claims>(store: OpenedStore, process_store: S, place: &str) {
    let codec: PayloadCodec = store
        .codec(Some(MasterKey::generate()))
        .expect("a key store");
    let accounts: Accounts = Repository::new(store.events()).codec(codec.clone());
    let statements = ReadSide::start(&store, codec.clone()).await.unwrap();

    let ada = open(&accounts, "Ada Lovelace").await;
    let bob = open(&accounts, "Bob Babbage").await;
    let carol = open(&accounts, "Carol Cray").await;
    accounts.execute(ada, |a| a.deposit(100_00)).await.unwrap();
    bank::transfer(&accounts, &TransferLimits::default(), ada, bob, 25_00)
        .await
        .unwrap();
    accounts
        .execute(carol, |a| a.close("moved abroad"))
        .await
        .unwrap();
    assert_eq!(accounts.take_snapshot(ada).await.unwrap(), 3, "{place}");

    // Transfers as a process: to Bob completes, to Carol (closed) is compensated.
    let process = ProcessManager::new(process_store.clone(), Transfers)
        .codec(codec.clone())
        .poll_interval(Duration::from_millis(50))
        .spawn();
    let transfers = Repository::<MoneyTransfer, _>::new(process_store).codec(codec.clone());
    let to_bob = transfers::request(&transfers, ada, bob, 5_00)
        .await
        .unwrap();
    let to_carol = transfers::request(&transfers, ada, carol, 5_00)
        .await
        .unwrap();
    assert!(
        finished(&transfers, to_bob).await.reason.is_none(),
        "{place}"
    );
    assert!(
        finished(&transfers, to_carol).await.reason.is_some(),
        "{place}: refunded"
    );
    let (_, outcome) = process.stop().await;
    outcome.unwrap();
    assert_eq!(accounts.get(ada).await.unwrap().balance, 70_00, "{place}");
    assert_eq!(accounts.get(bob).await.unwrap().balance, 30_00, "{place}");

    // Nobody's name is stored in the clear.
    let bytes = support::stores::stored_bytes(&*store.events()).await;
    for name in ["Ada Lovelace", "Bob Babbage", "Carol Cray", "moved abroad"] {
        assert!(
            !contains(&bytes, name),
            "{place}: `{name}` is stored in the clear"
        );
    }

    // Carol asks to be forgotten; her account is closed, so the bank may.
    accounts.get(carol).await.unwrap().forgettable().unwrap();
    assert!(
        accounts.get(ada).await.unwrap().forgettable().is_err(),
        "{place}: Ada is open"
    );
    let forgetting = accounts.forget(carol).await.unwrap();
    assert_eq!(forgetting.recorded.keys_deleted, 1, "{place}");
    let history = accounts.history(carol).await.unwrap();
    assert!(
        matches!(&history[0].event, BankAccountEvent::Forgotten(r) if r.name == "Opened" && r.subject == carol),
        "{place}: {:?}",
        history[0].event
    );
    let carol_now = accounts.get(carol).await.unwrap();
    assert_eq!(
        (carol_now.owner.as_str(), carol_now.closed),
        (FORGOTTEN_OWNER, true),
        "{place}"
    );
    // Everyone else is untouched, from a fresh repository (no cache) and from Ada's snapshot.
    let fresh: Accounts = Repository::new(store.events()).codec(codec.clone());
    let ada_now = fresh.get(ada).await.unwrap();
    assert_eq!(
        (ada_now.owner.as_str(), ada_now.balance),
        ("Ada Lovelace", 70_00),
        "{place}"
    );
    assert_eq!(
        fresh.get(bob).await.unwrap().owner,
        "Bob Babbage",
        "{place}"
    );

    // The read model: Carol's name is gone from balances and from Ada's statement lines.
    let written = store.events().last_position().await.unwrap();
    assert!(
        statements
            .wait_for(written, Duration::from_secs(20))
            .await
            .unwrap(),
        "{place}: the statements projection caught up"
    );
    let report = statements.finish(ada, 10).await.unwrap();
    let owners: Vec<&str> = report.balances.iter().map(|b| b.owner.as_str()).collect();
    assert!(owners.contains(&FORGOTTEN_OWNER), "{place}: {owners:?}");
    assert!(!owners.contains(&"Carol Cray"), "{place}: {owners:?}");
    assert!(
        owners.contains(&"Ada Lovelace") && owners.contains(&"Bob Babbage"),
        "{place}"
    );
    assert!(
        report
            .statement
            .iter()
            .any(|l| l.contains(&format!("transfer to {FORGOTTEN_OWNER}"))),
        "{place}: {:?}",
        report.statement
    );
    assert!(
        !report.statement.iter().any(|l| l.contains("Carol")),
        "{place}: {:?}",
        report.statement
    );

    // Without the key store, the store's payloads are a typed error, not garbage.
    let keyless: Accounts = Repository::new(store.events());
    assert!(
        matches!(keyless.get(ada).await, Err(Error::Decode { stream, .. }) if stream == ada),
        "{place}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bank_runs_encrypted_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("bank.db")).await.unwrap();
    the_bank_runs_encrypted(OpenedStore::Sqlite(store.clone()), store, "SQLite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bank_runs_encrypted_on_postgres() {
    let Some(mut server) = Server::start().await else {
        return;
    };
    let store = server.store("bank_encrypted").await;
    the_bank_runs_encrypted(OpenedStore::Postgres(store.clone()), store, "PostgreSQL").await;
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bank_runs_encrypted_on_nats() {
    let Some(servers) = Servers::single().await else {
        return;
    };
    let store = servers.store("bank-encrypted").await;
    the_bank_runs_encrypted(OpenedStore::Nats(store.clone()), store, "NATS").await;
    servers.finish().await;
}
