//! Clones of the memory store share one log, like clones of the SQLite and PostgreSQL stores:
//! two repositories over clones see each other's events, and a subscription on one clone is
//! woken by an append through another.

use std::convert::Infallible;
use std::time::Duration;

use eventsource_core::prelude::*;
use eventsource_core::{LogQuery, Subscription};
use serde::{Deserialize, Serialize};

/// Far longer than the test waits: an event received before it can only have been woken.
const NEVER: Duration = Duration::from_secs(3600);
/// How long the test waits for an event it expects.
const DEADLINE: Duration = Duration::from_secs(30);

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Opened {
    owner: String,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Deposited {
    cents: u64,
}

#[derive(Aggregate, Default, Debug, Clone, PartialEq)]
#[aggregate(events(Opened, Deposited))]
struct Account {
    owner: String,
    balance: u64,
}

impl Apply<Opened> for Account {
    fn apply(&mut self, event: &Opened) {
        self.owner = event.owner.clone();
    }
}

impl Apply<Deposited> for Account {
    fn apply(&mut self, event: &Deposited) {
        self.balance += event.cents;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repositories_over_clones_see_each_others_events() {
    let store = MemoryStore::new();
    let first = Repository::<Account, _>::new(store.clone());
    let second = Repository::<Account, _>::new(store.clone());

    let id = first
        .create(Opened {
            owner: "Ada".into(),
        })
        .await
        .unwrap();
    let after = second
        .execute(id, |_| Ok::<_, Infallible>(Deposited { cents: 5 }))
        .await
        .unwrap();
    assert_eq!((after.version(), &after.state().owner[..]), (2, "Ada"));

    let seen = first.get(id).await.unwrap();
    assert_eq!((seen.version(), seen.state().balance), (2, 5));
    assert_eq!(store.stream_version(id).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_on_one_clone_is_woken_by_an_append_through_another() {
    let reader = MemoryStore::new();
    let writer = Repository::<Account, _>::new(reader.clone());
    let mut subscription =
        Subscription::new(&reader, LogQuery::from_start(10)).poll_interval(NEVER);
    let (event, id) = tokio::join!(tokio::time::timeout(DEADLINE, subscription.next()), async {
        tokio::time::sleep(Duration::from_millis(20)).await; // the subscriber is waiting
        writer
            .create(Opened {
                owner: "Grace".into(),
            })
            .await
            .unwrap()
    });
    let event = event.expect("woken by the append, not by polling").unwrap();
    assert_eq!((event.stream_id, event.version), (id, 1));
}
