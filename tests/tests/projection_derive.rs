//! `#[derive(Projection)]` at run time: a projection over the events of two aggregate types,
//! run by a `Projector`, hands each listed event to its handler with where it was stored, and
//! skips the events it does not list.

use std::sync::Arc;

use eventsource_core::prelude::*;
use eventsource_core::{Position, projection::HandlerError};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Opened {
    owner: String,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Deposited {
    cents: u64,
}

#[derive(Aggregate, Default, Debug)]
#[aggregate(events(Opened, Deposited))]
struct Account;

impl Apply<Opened> for Account {
    fn apply(&mut self, _: &Opened) {}
}

impl Apply<Deposited> for Account {
    fn apply(&mut self, _: &Deposited) {}
}

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(name = "card.issued")]
struct CardIssued {
    last_digits: String,
}

/// Recorded by `Card` but not listed by the projection: it must never reach it.
#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(name = "card.blocked")]
struct CardBlocked;

#[derive(Aggregate, Default, Debug)]
#[aggregate(name = "card", events(CardIssued, CardBlocked))]
struct Card;

impl Apply<CardIssued> for Card {
    fn apply(&mut self, _: &CardIssued) {}
}

impl Apply<CardBlocked> for Card {
    fn apply(&mut self, _: &CardBlocked) {}
}

/// What a handler saw: which handler, the payload as text, and the record around it.
#[derive(Debug, PartialEq)]
struct Seen {
    handler: &'static str,
    payload: String,
    stream_id: Uuid,
    version: u64,
    position: Position,
    category: String,
}

impl Seen {
    fn of<E>(handler: &'static str, payload: String, e: &Recorded<E>) -> Self {
        Seen {
            handler,
            payload,
            stream_id: e.stream_id,
            version: e.version,
            position: e.position,
            category: e.category.clone(),
        }
    }
}

#[derive(Projection, Default)]
#[projection(name = "activity", events(Opened, Deposited, CardIssued))]
struct Activity {
    seen: Vec<Seen>,
}

impl Handle<Opened> for Activity {
    async fn handle(&mut self, e: &Recorded<Opened>, _: &mut ()) -> Result<(), HandlerError> {
        tokio::task::yield_now().await;
        self.seen.push(Seen::of("opened", e.event.owner.clone(), e));
        Ok(())
    }
}

impl Handle<Deposited> for Activity {
    async fn handle(&mut self, e: &Recorded<Deposited>, _: &mut ()) -> Result<(), HandlerError> {
        self.seen
            .push(Seen::of("deposited", e.event.cents.to_string(), e));
        Ok(())
    }
}

impl Handle<CardIssued> for Activity {
    async fn handle(&mut self, e: &Recorded<CardIssued>, _: &mut ()) -> Result<(), HandlerError> {
        self.seen
            .push(Seen::of("card issued", e.event.last_digits.clone(), e));
        Ok(())
    }
}

#[tokio::test]
async fn each_listed_event_reaches_its_handler_with_its_record() {
    let store = Arc::new(MemoryStore::new());
    let accounts = Repository::<Account, _>::new(store.clone());
    let cards = Repository::<Card, _>::new(store.clone());
    let mut expected = Vec::new();
    // One event per command, one writer: the log's last position is the event just written.
    let mut expect = async |handler, payload: &str, stream_id, version, category: &str| {
        expected.push(Seen {
            handler,
            payload: payload.to_owned(),
            stream_id,
            version,
            position: store.last_position().await.expect("the last position"),
            category: category.to_owned(),
        });
    };

    let account = accounts
        .create(Opened {
            owner: "Ada".into(),
        })
        .await
        .expect("open");
    expect("opened", "Ada", account, 1, "Account").await;

    let card = cards
        .create(CardIssued {
            last_digits: "4242".into(),
        })
        .await
        .expect("issue");
    expect("card issued", "4242", card, 1, "card").await;

    accounts
        .execute(account, |_| {
            Ok::<_, std::convert::Infallible>(Deposited { cents: 250 })
        })
        .await
        .expect("deposit");
    expect("deposited", "250", account, 2, "Account").await;

    cards
        .execute(card, |_| Ok::<_, std::convert::Infallible>(CardBlocked))
        .await
        .expect("block");

    accounts
        .execute(account, |_| {
            Ok::<_, std::convert::Infallible>(Deposited { cents: 100 })
        })
        .await
        .expect("deposit");
    expect("deposited", "100", account, 3, "Account").await;

    let mut projector = eventsource_core::Projector::new(store.clone(), Activity::default());
    let caught_up_to = projector.catch_up().await.expect("catch up");
    assert_eq!(
        caught_up_to,
        store.last_position().await.expect("the last position")
    );
    assert_eq!(projector.projection().seen, expected);
    assert_eq!(<Activity as Projection>::NAME, "activity");
}
