//! The bank domain end to end on the memory store: the account's decisions as given/when/then
//! scenarios, commands, atomic transfers, refusals, time travel, concurrency, and stored legacy
//! records decoded through the three-version chain of `Deposited` (v1 -> v2 by a function step,
//! v2 -> v3 by a typed `From` step).
// Amounts are in cents and written as euros_cents (`100_00` is 100.00).
#![allow(clippy::inconsistent_digit_grouping)]

use std::sync::Arc;

use eventsource_core::prelude::*;
use eventsource_core::testing::scenario::AggregateScenario;
use eventsource_core::{AppendBatch, DecodeError, Error, NewEvent, StreamRange, registry};
use eventsource_examples::bank::{
    self, BankAccount, BankAccountEvent, BankError, Deposited, Opened, TransferLimits,
    TransferSent, Withdrawn,
};

type Accounts = Repository<BankAccount, Arc<MemoryStore>>;

fn accounts() -> Accounts {
    Repository::new(Arc::new(MemoryStore::new()))
}

fn opened(owner: &str) -> Opened {
    Opened {
        owner: owner.into(),
        currency: "EUR".into(),
    }
}

fn raw(name: &str, schema_version: u32, payload: &str) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        name: name.into(),
        schema_version,
        payload: payload.as_bytes().to_vec(),
        metadata: Default::default(),
    }
}

#[tokio::test]
async fn commands_replay_and_time_travel() {
    let accounts = accounts();
    let id = accounts.create(opened("Ada")).await.unwrap();
    assert_eq!(
        id.get_version_num(),
        7,
        "new aggregates get time-ordered v7 ids"
    );
    accounts.execute(id, |a| a.deposit(100_00)).await.unwrap();
    let after = accounts.execute(id, |a| a.withdraw(30_00)).await.unwrap();
    assert_eq!((after.balance, after.version()), (70_00, 3));

    let loaded = accounts.get(id).await.unwrap();
    assert_eq!(
        (loaded.owner.as_str(), loaded.balance, loaded.version()),
        ("Ada", 70_00, 3)
    );
    assert_eq!(accounts.get_at(id, 2).await.unwrap().balance, 100_00);
    assert_eq!(accounts.get_at(id, 1).await.unwrap().balance, 0);

    let history = accounts.history(id).await.unwrap();
    let versions: Vec<u64> = history.iter().map(|r| r.version).collect();
    assert_eq!(versions, [1, 2, 3]);
    assert!(matches!(
        history[1].event,
        BankAccountEvent::Deposited(Deposited { cents: 100_00, .. })
    ));
    assert!(history.windows(2).all(|w| w[0].position < w[1].position));

    match accounts.get_at(id, 9).await {
        Err(Error::VersionNotFound {
            requested: 9,
            latest: 3,
            ..
        }) => {}
        other => panic!("expected VersionNotFound, got {other:?}"),
    }
    let unknown = Uuid::now_v7();
    match accounts.get(unknown).await {
        Err(Error::NotFound {
            aggregate: "BankAccount",
            stream,
        }) => assert_eq!(stream, unknown),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// An account of `owner` in euros with `cents` paid in.
fn funded(owner: &str, cents: u64) -> AggregateScenario<BankAccount> {
    AggregateScenario::new()
        .given(opened(owner))
        .given(Deposited {
            cents,
            currency: "EUR".into(),
        })
}

#[tokio::test]
async fn deposits_and_withdrawals_are_decided_on_the_account() {
    funded("Ada", 100_00)
        .when(|a| a.withdraw(30_00))
        .await
        .then(Withdrawn { cents: 30_00 })
        .then_state(|a| assert_eq!(a.balance, 70_00));
    funded("Ada", 100_00)
        .when(|a| a.withdraw(100_00))
        .await
        .then(Withdrawn { cents: 100_00 })
        .then_state(|a| assert_eq!(a.balance, 0));
    // A deposit is in the account's currency.
    AggregateScenario::<BankAccount>::new()
        .given(Opened {
            owner: "Ada".into(),
            currency: "USD".into(),
        })
        .when(|a| a.deposit(5_00))
        .await
        .then(Deposited {
            cents: 5_00,
            currency: "USD".into(),
        });
}

#[tokio::test]
async fn a_refused_command_writes_nothing() {
    AggregateScenario::<BankAccount>::new()
        .given(opened("Bob"))
        .when(|a| a.withdraw(1))
        .await
        .then_rejected(BankError::InsufficientFunds {
            balance: 0,
            requested: 1,
        })
        .then_state(|a| assert_eq!(a.balance, 0));
    funded("Bob", 4_99)
        .when(|a| a.withdraw(5_00))
        .await
        .then_rejected_with(|e| e.to_string() == "the balance is 4.99, which does not cover 5.00");
    funded("Bob", 4_99)
        .when(|a| a.deposit(0))
        .await
        .then_rejected(BankError::ZeroAmount)
        .then_state(|a| assert_eq!(a.balance, 4_99));
}

#[tokio::test]
async fn the_sending_half_of_a_transfer_is_decided_on_balance_and_limit() {
    let bob = Uuid::now_v7();
    funded("Ada", 50_00)
        .when(|a| a.send(bob, 20_00, 25_00))
        .await
        .then(TransferSent {
            to: bob,
            cents: 20_00,
        })
        .then_state(|a| assert_eq!(a.balance, 30_00));
    funded("Ada", 50_00)
        .when(|a| a.send(bob, 30_00, 25_00))
        .await
        .then_rejected(BankError::OverLimit {
            limit: 25_00,
            requested: 30_00,
        });
    funded("Ada", 50_00)
        .when(|a| a.send(bob, 60_00, 100_00))
        .await
        .then_rejected_with(|e| matches!(e, BankError::InsufficientFunds { .. }));
}

#[tokio::test]
async fn a_transfer_is_atomic_across_two_accounts() {
    let accounts = accounts();
    let ada = accounts.create(opened("Ada")).await.unwrap();
    let bob = accounts.create(opened("Bob")).await.unwrap();
    accounts.execute(ada, |a| a.deposit(50_00)).await.unwrap();

    let limits = TransferLimits::default();
    let transfer = bank::transfer(&accounts, &limits, ada, bob, 20_00)
        .await
        .unwrap();
    assert_eq!(
        (transfer.sender_balance, transfer.receiver_balance),
        (30_00, 20_00)
    );
    assert_eq!((transfer.sender_version, transfer.receiver_version), (3, 2));
    // Both halves were one append: they sit next to each other in the log.
    let sent = accounts.history(ada).await.unwrap().pop().unwrap();
    let received = accounts.history(bob).await.unwrap().pop().unwrap();
    assert!(matches!(sent.event, BankAccountEvent::TransferSent(_)));
    assert_eq!(sent.correlation_id(), received.correlation_id());

    // A stale save of both streams fails as a whole: neither stream changes.
    let mut stale_ada = accounts.get(ada).await.unwrap();
    let mut stale_bob = accounts.get(bob).await.unwrap();
    accounts.execute(bob, |a| a.deposit(1_00)).await.unwrap(); // Bob moves on
    stale_ada.record(stale_ada.withdraw(10_00).unwrap());
    stale_bob.record(stale_bob.deposit(10_00).unwrap());
    let error = accounts
        .save(&mut [&mut stale_ada, &mut stale_bob])
        .await
        .unwrap_err();
    match error {
        Error::Conflict {
            stream,
            expected: 2,
            actual: 3,
        } => assert_eq!(stream, bob),
        other => panic!("expected a conflict on Bob's stream, got {other:?}"),
    }
    assert_eq!(
        accounts.get(ada).await.unwrap().balance,
        30_00,
        "Ada's half was not written"
    );
    assert!(matches!(
        bank::transfer(&accounts, &limits, ada, bob, 1_000_00).await,
        Err(CommandError::Rejected(BankError::InsufficientFunds { .. }))
    ));
    // The limits service is asked before deciding: over the limit is refused, nothing written.
    let strict = TransferLimits {
        per_transfer: 5_00,
        ..TransferLimits::default()
    };
    assert!(matches!(
        bank::transfer(&accounts, &strict, ada, bob, 10_00).await,
        Err(CommandError::Rejected(BankError::OverLimit {
            limit: 5_00,
            requested: 10_00
        }))
    ));
    assert_eq!(accounts.get(ada).await.unwrap().balance, 30_00);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commands_on_one_account_lose_no_update() {
    let accounts = Arc::new(accounts().max_attempts(50));
    let id = accounts.create(opened("Ada")).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let accounts = Arc::clone(&accounts);
            tokio::spawn(async move {
                for _ in 0..25 {
                    accounts.execute(id, |a| a.deposit(1)).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let account = accounts.get(id).await.unwrap();
    assert_eq!((account.balance, account.version()), (200, 201));
}

#[tokio::test]
async fn legacy_records_decode_through_the_upcaster_chain() {
    let accounts = accounts();
    let id = Uuid::now_v7();
    let legacy = vec![
        raw("Opened", 1, r#"{"owner":"Carol","currency":"EUR"}"#),
        raw("Deposited", 1, r#"{"amount":12}"#),
        raw("Deposited", 2, r#"{"amount":3,"currency":"USD"}"#),
        raw("Deposited", 3, r#"{"cents":45,"currency":"EUR"}"#),
    ];
    accounts
        .store()
        .append(AppendBatch::single(id, 0, legacy))
        .await
        .unwrap();

    let history = accounts.history(id).await.unwrap();
    let deposits: Vec<(u32, Deposited)> = history
        .iter()
        .filter_map(|r| match &r.event {
            BankAccountEvent::Deposited(d) => Some((r.stored_schema_version, d.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        deposits,
        [
            (
                1,
                Deposited {
                    cents: 12_00,
                    currency: "EUR".into()
                }
            ),
            (
                2,
                Deposited {
                    cents: 3_00,
                    currency: "USD".into()
                }
            ),
            (
                3,
                Deposited {
                    cents: 45,
                    currency: "EUR".into()
                }
            ),
        ]
    );
    assert_eq!(accounts.get(id).await.unwrap().balance, 15_45);

    // Tools decode by name without knowing the aggregate.
    registry::validate().unwrap();
    let json = registry::decode_to_json("Deposited", 1, br#"{"amount":2}"#).unwrap();
    assert_eq!(json, serde_json::json!({"cents": 200, "currency": "EUR"}));
}

/// Bad stored data gives a typed error naming the record, never a panic, and changes nothing.
#[tokio::test]
async fn bad_stored_records_are_typed_errors() {
    let cases = [
        (
            raw("Deposited", 4, r#"{"cents":1}"#),
            "schema version 4, but this build knows versions 1..=3",
        ),
        (raw("Deposited", 0, r#"{"cents":1}"#), "schema version 0"),
        (
            raw("Deposited", 1, r#"{"amount":"#),
            "payload does not decode",
        ),
        (
            raw("Deposited", 1, r#"[1, 2]"#),
            "upcasting event `Deposited` from version 1 to 2 failed",
        ),
        (
            raw("Deposited", 2, r#"{"amount":-5,"currency":"EUR"}"#),
            "payload does not decode",
        ),
        (
            raw("Frozen", 1, r#"{}"#),
            "unknown event name `Frozen`; known names: Opened, Deposited, Withdrawn",
        ),
    ];
    for (record, expected) in cases {
        let accounts = accounts();
        let id = Uuid::now_v7();
        let batch = AppendBatch::single(
            id,
            0,
            vec![
                raw("Opened", 1, r#"{"owner":"X","currency":"EUR"}"#),
                record,
            ],
        );
        accounts.store().append(batch).await.unwrap();
        let error = accounts.get(id).await.unwrap_err();
        let Error::Decode {
            stream,
            version,
            ref event,
            schema_version,
            ref source,
        } = error
        else {
            panic!("expected a decode error, got {error:?}");
        };
        assert_eq!((stream, version), (id, 2));
        let message = error.to_string();
        assert!(message.contains(expected), "{message}");
        assert!(
            message.contains(&id.to_string()) && message.contains(event.as_str()),
            "{message}"
        );
        if schema_version == 4 {
            assert!(matches!(
                source,
                DecodeError::UnknownVersion {
                    found: 4,
                    latest: 3,
                    ..
                }
            ));
        }
        // Nothing stored was changed by the failed load.
        let stored: Vec<_> = futures_util::TryStreamExt::try_collect::<Vec<_>>(
            accounts.store().read_stream(id, StreamRange::all()),
        )
        .await
        .unwrap();
        assert_eq!(stored.len(), 2);
    }
}
