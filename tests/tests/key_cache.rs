//! Keys as two programs sharing one store and one key store see them: each codec caches keys,
//! so a key created, rotated or deleted by the other must still be found (or known to be
//! forgotten) without mistaking a stale cache for a missing key, and without looping when a
//! key really is missing.

use std::sync::Arc;
use std::time::Duration;

use eventsource_core::persistence::codec::{EnvelopeError, KeyStore, MemoryKeyStore, PayloadCodec};
use eventsource_core::prelude::*;
use eventsource_core::{DecodeError, Error};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "KeyCacheRegistered", personal)]
struct Registered {
    name: String,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "KeyCacheOrdered")]
struct Ordered {
    cents: u64,
}

#[derive(Aggregate, Default, Debug)]
#[aggregate(name = "KeyCacheCustomer", events(Registered, Ordered))]
struct Customer {
    name: Option<String>,
    forgotten: bool,
    spent: u64,
}

impl Apply<Registered> for Customer {
    fn apply(&mut self, e: &Registered) {
        self.name = Some(e.name.clone());
    }
}

impl Apply<Forgotten<Registered>> for Customer {
    fn apply(&mut self, _: &Forgotten<Registered>) {
        self.name = None;
        self.forgotten = true;
    }
}

impl Apply<Ordered> for Customer {
    fn apply(&mut self, e: &Ordered) {
        self.spent += e.cents;
    }
}

/// Two programs: one store, one key store, a codec (and key cache) each.
fn two_programs() -> (
    Repository<Customer, MemoryStore>,
    Repository<Customer, MemoryStore>,
    Arc<MemoryKeyStore>,
) {
    let store = MemoryStore::new();
    let keys = Arc::new(MemoryKeyStore::new());
    let codec = || {
        PayloadCodec::new()
            .encrypt_with(keys.clone())
            .key_cache_ttl(Duration::from_secs(3600))
    };
    let a = Repository::new(store.clone()).codec(codec());
    let b = Repository::new(store).codec(codec());
    (a, b, keys)
}

#[tokio::test]
async fn a_key_created_by_another_program_is_read_although_the_cache_said_none() {
    let (a, b, _) = two_programs();
    let id = Uuid::now_v7();
    // A looks first: the subject has no keys yet, and A caches that.
    assert!(matches!(a.get(id).await, Err(Error::NotFound { .. })));
    // B registers the customer: it creates the subject's first key.
    b.create_with_id(id, Registered { name: "Ada".into() })
        .await
        .unwrap();
    let seen = a.get(id).await.expect("A reads the key B created");
    assert_eq!(seen.name.as_deref(), Some("Ada"));
}

#[tokio::test]
async fn a_key_rotated_by_another_program_is_read_for_the_new_events() {
    let (a, b, _) = two_programs();
    let id = b.create(Registered { name: "Ada".into() }).await.unwrap();
    assert_eq!(a.get(id).await.unwrap().name.as_deref(), Some("Ada"));
    assert_eq!(b.payload_codec().rotate_key(id).await.unwrap(), 2);
    b.execute(id, |_| {
        Ok::<_, std::convert::Infallible>(Registered {
            name: "Ada L.".into(),
        })
    })
    .await
    .unwrap();
    let seen = a.get(id).await.expect("A reads the event under key 2");
    assert_eq!(seen.name.as_deref(), Some("Ada L."));
}

#[tokio::test]
async fn a_missing_key_is_an_error_naming_the_record_not_a_forgotten_subject() {
    let (a, _, _) = two_programs();
    let id = a.create(Registered { name: "Ada".into() }).await.unwrap();
    // A program with another (empty) key store: the key is missing, and never forgotten.
    let stranger = Repository::<Customer, _>::new(a.store().clone())
        .codec(PayloadCodec::new().encrypt(MemoryKeyStore::new()));
    match stranger.get(id).await {
        Err(Error::Decode {
            stream,
            version,
            event,
            source: DecodeError::Envelope(EnvelopeError::KeyMissing { subject, key_id }),
            ..
        }) => {
            assert_eq!(
                (stream, version, event.as_str()),
                (id, 1, "KeyCacheRegistered")
            );
            assert_eq!((subject, key_id), (id, 1));
        }
        other => panic!("expected a missing key naming the record, got {other:?}"),
    }
    // Without any key store: a typed error too.
    let plain = Repository::<Customer, _>::new(a.store().clone());
    assert!(matches!(
        plain.get(id).await,
        Err(Error::Decode {
            source: DecodeError::Envelope(EnvelopeError::NoKeyStore { .. }),
            ..
        })
    ));
}

#[tokio::test]
async fn a_subject_forgotten_by_one_program_is_forgotten_for_the_other_once_its_cache_expires() {
    let store = MemoryStore::new();
    let keys = Arc::new(MemoryKeyStore::new());
    let a = Repository::<Customer, _>::new(store.clone()).codec(
        PayloadCodec::new()
            .encrypt_with(keys.clone())
            .key_cache_ttl(Duration::ZERO),
    );
    let b =
        Repository::<Customer, _>::new(store).codec(PayloadCodec::new().encrypt_with(keys.clone()));
    let id = b.create(Registered { name: "Ada".into() }).await.unwrap();
    b.execute(id, |_| {
        Ok::<_, std::convert::Infallible>(Ordered { cents: 700 })
    })
    .await
    .unwrap();
    assert_eq!(a.get(id).await.unwrap().name.as_deref(), Some("Ada"));

    let forgetting = b.forget(id).await.unwrap();
    assert_eq!(forgetting.recorded.keys_deleted, 1);
    assert_eq!(keys.keys(id).await.unwrap().forgotten_through, 1);
    // A keeps no keys in memory (time to live zero): it sees the forgetting at once. The
    // order, encrypted with the application's key, is untouched.
    let seen = a.get(id).await.unwrap();
    assert_eq!(
        (seen.name.clone(), seen.forgotten, seen.spent),
        (None, true, 700)
    );
    let history = a.history(id).await.unwrap();
    assert!(
        matches!(&history[0].event, CustomerEvent::Forgotten(r) if r.name == "KeyCacheRegistered" && r.subject == id)
    );
    assert!(matches!(&history[1].event, CustomerEvent::Ordered(o) if o.cents == 700));
}
