//! The NATS key store (`NatsKeyStore`, the bucket `NAME-keys`) against real servers: the key
//! store checks on a single server and on the three-node cluster (replicas 3), forgetting asked
//! of the server itself (no revision that held a forgotten key is left to read), malformed
//! entries, and a forgotten subject staying forgotten after the program restarts.
//!
//! The servers come from `.ci/nats start` (see `support/nats.rs`); without them the tests print
//! why and pass, unless `CI=true`.
// Amounts are in cents and written as euros_cents (`100_00` is 100.00).
#![allow(clippy::inconsistent_digit_grouping)]

use std::sync::Arc;

use async_nats::jetstream::kv::{self, Operation};
use eventsource_core::Error;
use eventsource_core::persistence::codec::{KeyError, KeyStore, MasterKey};
use eventsource_core::prelude::*;
use eventsource_core::stores::AnyStore;
use eventsource_core::stores::nats::{NatsKeyStore, NatsStore};
use eventsource_core::testing::conformance;
use eventsource_examples::bank::{BankAccount, FORGOTTEN_OWNER, Opened};
use futures_util::StreamExt;

mod support;
use support::nats::{Servers, unique_name};

async fn key_store_checks_on(servers: Servers, tag: &str) {
    let servers = Arc::new(servers);
    let store = servers.store(tag).await;
    let master = MasterKey::generate();
    // Every handle its own connection, as another process would have.
    conformance::run_key_store(|| {
        let (servers, store, master) = (Arc::clone(&servers), store.clone(), master.clone());
        async move { NatsKeyStore::new(&servers.reopen(&store).await, master) }
    })
    .await;
    let bucket = bucket_of(&servers, &store).await;
    let info = bucket.stream.cached_info();
    assert_eq!(
        info.config.num_replicas, servers.replicas,
        "the key bucket is replicated like the store"
    );
    assert!(!info.config.allow_direct, "reads of keys go to the leader");
    servers.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_key_store_checks_pass_on_a_single_server() {
    let Some(servers) = Servers::single().await else {
        return;
    };
    key_store_checks_on(servers, "keys").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_key_store_checks_pass_on_a_three_node_cluster() {
    let Some(servers) = Servers::cluster().await else {
        return;
    };
    key_store_checks_on(servers, "keys3").await;
}

/// The store's key bucket, straight from the server.
async fn bucket_of(servers: &Servers, store: &NatsStore) -> kv::Store {
    let urls: Vec<String> = servers.urls.split(',').map(str::to_owned).collect();
    let client = async_nats::connect(urls.as_slice()).await.unwrap();
    async_nats::jetstream::new(client)
        .get_key_value(format!("{}-keys", store.name()))
        .await
        .unwrap()
}

/// The wrapped keys (hex) a subject's entry holds.
fn wrapped_keys(value: &[u8]) -> Vec<String> {
    let record: serde_json::Value = serde_json::from_slice(value).unwrap();
    record["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["wrapped"].as_str().unwrap().to_owned())
        .collect()
}

async fn forgetting_leaves_no_revision_with_a_key(servers: Servers, tag: &str) {
    let store = servers.store(tag).await;
    let keys = NatsKeyStore::new(&store, MasterKey::generate());
    let (person, bystander) = (Uuid::now_v7(), Uuid::now_v7());

    // Three keys for the person, every write a revision of her entry; one for a bystander.
    let mut revisions = Vec::new();
    keys.current_key(person).await.unwrap();
    let bucket = bucket_of(&servers, &store).await;
    revisions.push(bucket.entry(person.to_string()).await.unwrap().unwrap());
    for _ in 0..2 {
        keys.rotate(person).await.unwrap();
        revisions.push(bucket.entry(person.to_string()).await.unwrap().unwrap());
    }
    let (_, kept) = keys.current_key(bystander).await.unwrap();
    let held = wrapped_keys(&revisions[2].value);
    assert_eq!(held.len(), 3);
    // Each write already erased the revision before it.
    for older in &revisions[..2] {
        assert!(
            bucket.stream.get_raw_message(older.revision).await.is_err(),
            "revision {} outlived the write after it",
            older.revision
        );
    }

    assert_eq!(keys.forget(person).await.unwrap(), 3);

    // The server holds one revision of her entry, the tombstone, and no message of the bucket
    // holds any of her keys.
    let mut history = bucket.history(person.to_string()).await.unwrap();
    let mut entries = Vec::new();
    while let Some(entry) = history.next().await {
        entries.push(entry.unwrap());
    }
    assert_eq!(entries.len(), 1, "{entries:?}");
    let tombstone = &entries[0];
    assert!(matches!(tombstone.operation, Operation::Put));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&tombstone.value).unwrap(),
        serde_json::json!({"forgotten_through": 3, "keys": []})
    );
    for revision in &revisions {
        assert!(
            bucket
                .entry_for_revision(person.to_string(), revision.revision)
                .await
                .unwrap()
                .is_none(),
            "revision {} of a forgotten subject's entry is still readable",
            revision.revision
        );
        assert!(
            bucket
                .stream
                .get_raw_message(revision.revision)
                .await
                .is_err(),
            "message {} of a forgotten subject's entry is still readable",
            revision.revision
        );
    }
    let mut stream = bucket.stream.clone();
    let last = stream.info().await.unwrap().state.last_sequence;
    for sequence in 1..=last {
        let Ok(message) = bucket.stream.get_raw_message(sequence).await else {
            continue;
        };
        for key in &held {
            assert!(
                !String::from_utf8_lossy(&message.payload).contains(key.as_str()),
                "message {sequence} holds a forgotten key"
            );
        }
    }

    // Another process sees the tombstone; the bystander keeps his key; she comes back above it.
    let elsewhere = NatsKeyStore::new(&servers.reopen(&store).await, MasterKey::generate());
    let after = elsewhere.keys(person).await.unwrap();
    assert_eq!((after.keys.len(), after.forgotten_through), (0, 3));
    assert_eq!(keys.keys(bystander).await.unwrap().get(1), Some(&kept));
    assert_eq!(keys.current_key(person).await.unwrap().0, 4);
    // Forgetting again with nothing to delete writes nothing and leaves nothing older behind.
    assert_eq!(keys.forget(person).await.unwrap(), 1);
    let tombstone = bucket.entry(person.to_string()).await.unwrap().unwrap();
    assert_eq!(keys.forget(person).await.unwrap(), 0);
    assert_eq!(
        bucket
            .entry(person.to_string())
            .await
            .unwrap()
            .unwrap()
            .revision,
        tombstone.revision
    );
    servers.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forgetting_leaves_no_revision_with_a_key_on_a_single_server() {
    let Some(servers) = Servers::single().await else {
        return;
    };
    forgetting_leaves_no_revision_with_a_key(servers, "erase").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forgetting_leaves_no_revision_with_a_key_on_a_three_node_cluster() {
    let Some(servers) = Servers::cluster().await else {
        return;
    };
    forgetting_leaves_no_revision_with_a_key(servers, "erase3").await;
}

/// An entry that isn't a data keys record, or that was deleted by hand (which would hide its
/// tombstone), is a storage error saying so: never a panic, never a fresh key 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_malformed_or_deleted_entry_is_a_typed_error() {
    let Some(servers) = Servers::single().await else {
        return;
    };
    let store = servers.store("badkeys").await;
    let keys = NatsKeyStore::new(&store, MasterKey::generate());
    let (garbled, deleted) = (Uuid::now_v7(), Uuid::now_v7());
    keys.current_key(deleted).await.unwrap();
    let bucket = bucket_of(&servers, &store).await;
    bucket
        .put(garbled.to_string(), "not a record".into())
        .await
        .unwrap();
    bucket.delete(deleted.to_string()).await.unwrap();

    for (subject, says) in [
        (garbled, "not a data keys record"),
        (deleted, "deleted outside the key store"),
    ] {
        for result in [
            keys.keys(subject).await.map(|_| ()),
            keys.current_key(subject).await.map(|_| ()),
            keys.rotate(subject).await.map(|_| ()),
            keys.forget(subject).await.map(|_| ()),
        ] {
            match result {
                Err(error @ KeyError::Storage(_)) => {
                    let text = format!("{error}: {:?}", std::error::Error::source(&error));
                    assert!(text.contains(says), "{text}");
                    assert!(text.contains(&subject.to_string()), "{text}");
                }
                other => panic!("subject {subject}: expected a storage error, got {other:?}"),
            }
        }
    }

    // Another master key: the stored key is there but does not unwrap.
    let wrong = NatsKeyStore::new(&store, MasterKey::generate());
    let person = Uuid::now_v7();
    keys.current_key(person).await.unwrap();
    assert!(matches!(
        wrong.keys(person).await,
        Err(KeyError::Unwrap { subject, id: 1 }) if subject == person
    ));
    servers.finish().await;
}

type Accounts = Repository<BankAccount, Arc<dyn EventStore>>;

/// The store at `url` with its codec, as the demo opens it.
async fn open_bank(url: &str, master: &MasterKey) -> (AnyStore, Accounts) {
    let store = AnyStore::open(url).await.unwrap();
    let codec = store.codec(Some(master.clone())).unwrap();
    let accounts = Repository::new(store.events()).codec(codec);
    (store, accounts)
}

async fn open_account(accounts: &Accounts, owner: &str) -> Uuid {
    accounts
        .create(Opened {
            owner: owner.into(),
            currency: "EUR".into(),
        })
        .await
        .unwrap()
}

/// A subject forgotten on NATS stays forgotten for the next program on the same store (a new
/// connection, a new key store, an empty key cache), while everyone else's payloads still
/// decode; and the payloads need the key store's master key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forgotten_subject_stays_unreadable_after_a_restart() {
    let Some(servers) = Servers::single().await else {
        return;
    };
    let url = format!("{}?name={}", servers.urls, unique_name("restart"));
    let master = MasterKey::generate();

    let (store, accounts) = open_bank(&url, &master).await;
    let ada = open_account(&accounts, "Ada Lovelace").await;
    let carol = open_account(&accounts, "Carol Cray").await;
    accounts.execute(ada, |a| a.deposit(100_00)).await.unwrap();
    accounts
        .execute(carol, |a| a.close("moved abroad"))
        .await
        .unwrap();
    let bytes = support::stores::stored_bytes(&*store.events()).await;
    for name in ["Ada Lovelace", "Carol Cray", "moved abroad"] {
        assert!(
            !bytes.windows(name.len()).any(|w| w == name.as_bytes()),
            "`{name}` is stored in the clear"
        );
    }
    let forgetting = accounts.forget(carol).await.unwrap();
    assert_eq!(forgetting.recorded.keys_deleted, 1);
    drop((store, accounts));

    // The next run: a new connection, a new key store, nothing cached.
    let (store, accounts) = open_bank(&url, &master).await;
    let carol_now = accounts.get(carol).await.unwrap();
    assert_eq!(
        (carol_now.owner.as_str(), carol_now.closed),
        (FORGOTTEN_OWNER, true)
    );
    let ada_now = accounts.get(ada).await.unwrap();
    assert_eq!(
        (ada_now.owner.as_str(), ada_now.balance),
        ("Ada Lovelace", 100_00)
    );
    // New events for Ada are written and read back as before.
    accounts.execute(ada, |a| a.withdraw(30_00)).await.unwrap();
    assert_eq!(accounts.get(ada).await.unwrap().balance, 70_00);

    // Another master key opens none of it: a typed error naming the record.
    let (_, strangers) = open_bank(&url, &MasterKey::generate()).await;
    assert!(
        matches!(strangers.get(ada).await, Err(Error::Decode { stream, .. }) if stream == ada),
        "a wrong master key must not decode Ada's events"
    );

    if let AnyStore::Nats(nats) = &store {
        nats.destroy().await.unwrap();
    } else {
        panic!("{url} opened a {} store", store.kind());
    }
}
