//! Loads, commands and units of work judged by what they ask of the store, not only by the state
//! they return.
//!
//! A repository that ignores a snapshot, passes over its cache or retries an append that can never
//! succeed still returns the right state: the other tests can't tell. Here every repository runs
//! on a [`CountingStore`] around a memory store, and each test says how many events a load read,
//! how many appends a command tried and how many snapshots were loaded and saved.
//!
//! A load that starts from a snapshot at version `v` reads the event at `v` too (to check that
//! the stream really reached it): so from a snapshot at 20 of a stream at 25 it reads six events.

use std::convert::Infallible;

use eventsource_core::prelude::*;
use eventsource_core::testing::counting::{CountingStore, StoreCounts};
use eventsource_core::{AppendBatch, Backoff, Error, Snapshot, Work};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Added {
    n: u64,
}

/// Keeps snapshots; each test sets the repository's policy.
#[derive(Aggregate, Default, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[aggregate(events(Added), snapshot)]
struct Tally {
    total: u64,
    count: u64,
}

impl Apply<Added> for Tally {
    fn apply(&mut self, event: &Added) {
        self.total += event.n;
        self.count += 1;
    }
}

/// Snapshots every 4 events by the derive's policy: what a unit of work follows.
#[derive(Aggregate, Default, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[aggregate(events(Added), snapshot_every = 4)]
struct Meter {
    total: u64,
}

impl Apply<Added> for Meter {
    fn apply(&mut self, event: &Added) {
        self.total += event.n;
    }
}

type Tallies = Repository<Tally, CountingStore>;

/// A repository over a fresh counting memory store, without automatic snapshots or retry waits.
fn tallies() -> Tallies {
    Repository::new(CountingStore::new(MemoryStore::new()))
        .snapshot_every(0)
        .backoff(Backoff::none())
}

fn add(n: u64) -> impl FnMut(&Tally) -> Result<Added, Infallible> {
    move |_| Ok(Added { n })
}

/// The state after `version` events of `Added { n: 1 }`.
fn honest(version: u64) -> Tally {
    Tally {
        total: version,
        count: version,
    }
}

/// Appends `events` events of `Added { n: 1 }` to `id` (at `version`) in one batch, past the
/// repository (so its cache doesn't see them).
async fn append_past(repo: &Tallies, id: Uuid, version: u64, events: u64) {
    let batch: Vec<TallyEvent> = (0..events).map(|_| Added { n: 1 }.into()).collect();
    repo.store()
        .append(AppendBatch::single(
            id,
            version,
            repo.encode(id, version, &batch).await.unwrap(),
        ))
        .await
        .unwrap();
}

/// A new stream of `events` events of `Added { n: 1 }`.
async fn stream_of(repo: &Tallies, events: u64) -> Uuid {
    let id = repo.create(Added { n: 1 }).await.unwrap();
    append_past(repo, id, 1, events - 1).await;
    id
}

/// A snapshot of `state` at `version`, as the repository writes it.
fn snapshot_of(id: Uuid, version: u64, state: &Tally) -> Snapshot {
    Snapshot {
        stream_id: id,
        version,
        aggregate: Tally::NAME.into(),
        fingerprint: Tally::SNAPSHOTS.unwrap().fingerprint,
        state: state.encode_snapshot(&Json).unwrap().unwrap(),
        recorded_at: std::time::SystemTime::now(),
    }
}

/// Makes the error a failing append returns.
type MakeError = fn() -> Error;

fn busy() -> Error {
    Error::busy("test", "appending", "the database is locked")
}

// ---------------------------------------------------------------------------------------------
// Loads: snapshots

#[tokio::test]
async fn a_load_without_a_snapshot_replays_every_event() {
    let repo = tallies();
    let id = stream_of(&repo, 25).await;
    repo.store().take_counts();
    assert_eq!(repo.get(id).await.unwrap().state(), &honest(25));
    assert_eq!(
        repo.store().take_counts(),
        StoreCounts {
            // The look-up and the replay in one request.
            snapshot_loads: 1,
            snapshot_replays: 1,
            stream_reads: 1,
            events_read: 25,
            ..StoreCounts::default()
        }
    );
}

#[tokio::test]
async fn a_load_from_a_snapshot_reads_only_the_events_from_its_version_on() {
    let repo = tallies();
    let id = stream_of(&repo, 20).await;
    assert_eq!(repo.take_snapshot(id).await.unwrap(), 20);
    append_past(&repo, id, 20, 5).await;
    repo.store().take_counts();

    let loaded = repo.get(id).await.unwrap();
    assert_eq!((loaded.version(), loaded.state()), (25, &honest(25)));
    assert_eq!(
        repo.store().take_counts(),
        StoreCounts {
            snapshot_loads: 1,
            snapshot_replays: 1,
            snapshots_found: 1,
            stream_reads: 1,
            events_read: 6,
            ..StoreCounts::default()
        },
        "the event at 20 and the five after it"
    );
}

#[tokio::test]
async fn time_travel_starts_from_the_newest_snapshot_at_or_below_the_version() {
    let repo = tallies();
    let id = stream_of(&repo, 10).await;
    repo.take_snapshot(id).await.unwrap();
    append_past(&repo, id, 10, 10).await;
    repo.take_snapshot(id).await.unwrap();
    repo.store().take_counts();

    // Version 17: the snapshot at 10 (the one at 20 is newer than asked), then 11 to 17.
    assert_eq!(repo.get_at(id, 17).await.unwrap().state(), &honest(17));
    let counts = repo.store().take_counts();
    assert_eq!((counts.snapshots_found, counts.events_read), (1, 8));
    // Version 20: from the snapshot at 20, reading only the event at 20.
    assert_eq!(repo.get_at(id, 20).await.unwrap().state(), &honest(20));
    assert_eq!(repo.store().take_counts().events_read, 1);
    // Below the oldest snapshot: every event up to the version, and nothing written.
    assert_eq!(repo.get_at(id, 4).await.unwrap().state(), &honest(4));
    let counts = repo.store().take_counts();
    assert_eq!((counts.events_read, counts.snapshot_saves), (4, 0));
}

#[tokio::test]
async fn an_unusable_snapshot_is_replaced_once_by_a_latest_load_and_never_by_time_travel() {
    let repo = tallies();
    let id = stream_of(&repo, 12).await;
    // A snapshot of another shape of `Tally` at 10.
    repo.store()
        .save_snapshot(Snapshot {
            stream_id: id,
            version: 10,
            aggregate: "Tally".into(),
            fingerprint: Tally::SNAPSHOTS.unwrap().fingerprint ^ 1,
            state: br#"{"total":10,"count":10}"#.to_vec(),
            recorded_at: std::time::SystemTime::now(),
        })
        .await
        .unwrap();
    repo.store().take_counts();

    // Time travel replays and leaves the snapshots alone.
    assert_eq!(repo.get_at(id, 11).await.unwrap().state(), &honest(11));
    let counts = repo.store().take_counts();
    assert_eq!((counts.events_read, counts.snapshot_saves), (11, 0));
    // A latest load replays and writes a fresh snapshot at 12...
    assert_eq!(repo.get(id).await.unwrap().state(), &honest(12));
    let counts = repo.store().take_counts();
    assert_eq!((counts.events_read, counts.snapshot_saves), (12, 1));
    // ...which the next load starts from.
    assert_eq!(repo.get(id).await.unwrap().state(), &honest(12));
    let counts = repo.store().take_counts();
    assert_eq!((counts.events_read, counts.snapshot_saves), (1, 0));
}

#[tokio::test]
async fn a_snapshot_ahead_of_the_stream_is_disowned_once_then_skipped() {
    let repo = tallies();
    let id = stream_of(&repo, 5).await;
    // Restored from an older backup: the snapshot at 8 is ahead of the stream at 5.
    repo.store()
        .save_snapshot(snapshot_of(id, 8, &honest(8)))
        .await
        .unwrap();
    repo.store().take_counts();

    assert_eq!(repo.get(id).await.unwrap().state(), &honest(5));
    let counts = repo.store().take_counts();
    // The check read found no event at 8; the replay read all five; one save disowned the
    // snapshot at 8 and one wrote the state at 5.
    assert_eq!(
        (
            counts.stream_reads,
            counts.events_read,
            counts.snapshot_saves
        ),
        (2, 5, 2)
    );
    let disowned = repo.store().load_snapshot(id, Some(8)).await.unwrap();
    assert_eq!(disowned.map(|s| (s.version, s.state.len())), Some((8, 0)));

    // The disowned snapshot is the newest: each latest load sees it, replays, and does not
    // read the stream to check it (it knows it is disowned).
    repo.store().take_counts();
    assert_eq!(repo.get(id).await.unwrap().state(), &honest(5));
    let counts = repo.store().take_counts();
    assert_eq!((counts.stream_reads, counts.events_read), (1, 5));
}

// ---------------------------------------------------------------------------------------------
// Loads: the cache

#[tokio::test]
async fn a_cached_aggregate_loads_without_reading_old_events_or_snapshots() {
    let repo = tallies().with_cache(8);
    let id = repo.create(Added { n: 1 }).await.unwrap();
    for _ in 0..4 {
        repo.execute(id, add(1)).await.unwrap();
    }
    repo.take_snapshot(id).await.unwrap();
    repo.store().take_counts();

    assert_eq!(repo.get(id).await.unwrap().state(), &honest(5));
    assert_eq!(
        repo.store().take_counts(),
        StoreCounts {
            stream_reads: 1,
            ..StoreCounts::default()
        },
        "one read for events after the cached version, which found none"
    );
    // Another writer appends three: the next load reads those three only.
    append_past(&repo, id, 5, 3).await;
    repo.store().take_counts();
    assert_eq!(repo.get(id).await.unwrap().state(), &honest(8));
    let counts = repo.store().take_counts();
    assert_eq!((counts.snapshot_loads, counts.events_read), (0, 3));
    assert_eq!(repo.cached_version(id), Some(8));
    let debug = format!("{repo:?}");
    assert!(debug.contains("cache_capacity: Some(8)"), "{debug}");
}

#[tokio::test]
async fn time_travel_starts_from_the_newer_of_the_cache_and_a_snapshot() {
    let repo = tallies().with_cache(8);
    let id = stream_of(&repo, 3).await;
    repo.get(id).await.unwrap(); // cached at 3
    append_past(&repo, id, 3, 22).await;
    repo.store()
        .save_snapshot(snapshot_of(id, 20, &honest(20)))
        .await
        .unwrap();
    repo.store().take_counts();

    // The snapshot at 20 is newer than the cached 3: 20, 21, 22 are read, not 4 to 22.
    assert_eq!(repo.get_at(id, 22).await.unwrap().state(), &honest(22));
    let counts = repo.store().take_counts();
    assert_eq!((counts.snapshots_found, counts.events_read), (1, 3));
    assert_eq!(
        repo.cached_version(id),
        Some(3),
        "time travel leaves the cache"
    );

    // A snapshot at 10, the cache at 15: for version 17 the cache is the newer start, and only
    // 16 and 17 are read.
    let other = tallies().with_cache(8);
    let id = stream_of(&other, 10).await;
    other.take_snapshot(id).await.unwrap();
    append_past(&other, id, 10, 5).await;
    other.get(id).await.unwrap();
    assert_eq!(other.cached_version(id), Some(15));
    append_past(&other, id, 15, 5).await;
    other.store().take_counts();
    assert_eq!(other.get_at(id, 17).await.unwrap().state(), &honest(17));
    let counts = other.store().take_counts();
    assert_eq!((counts.snapshot_loads, counts.events_read), (1, 2));
    // At exactly the cached version, not even a snapshot is looked for.
    assert_eq!(other.get_at(id, 15).await.unwrap().state(), &honest(15));
    let counts = other.store().take_counts();
    assert_eq!((counts.snapshot_loads, counts.events_read), (0, 0));
}

// ---------------------------------------------------------------------------------------------
// Commands

#[tokio::test]
async fn a_command_on_a_cached_aggregate_reads_nothing_and_appends_once() {
    let repo = tallies().with_cache(8);
    let id = stream_of(&repo, 30).await;
    repo.get(id).await.unwrap();
    repo.store().take_counts();

    let after = repo.execute(id, add(2)).await.unwrap();
    assert_eq!((after.version(), after.total), (31, 32));
    assert_eq!(
        repo.store().take_counts(),
        StoreCounts {
            appends: 1,
            events_appended: 1,
            ..StoreCounts::default()
        },
        "the append's expected version is the only check of the cached state"
    );
    assert_eq!(repo.cached_version(id), Some(31));
}

#[tokio::test]
async fn a_command_on_a_stale_cached_aggregate_reads_the_new_events_and_decides_again() {
    // One attempt only: the refused append on the stale cached state is not counted.
    let repo = tallies().with_cache(8).max_attempts(1);
    let id = stream_of(&repo, 3).await;
    repo.get(id).await.unwrap(); // cached at 3
    append_past(&repo, id, 3, 2).await;
    repo.store().take_counts();

    let mut seen = Vec::new();
    let after = repo
        .execute(id, |tally| {
            seen.push(tally.count);
            Ok::<_, Infallible>(Added { n: 10 })
        })
        .await
        .unwrap();
    assert_eq!((after.version(), after.total), (6, 15));
    assert_eq!(
        seen,
        [3, 5],
        "decided on the cached state, then on the stream's"
    );
    let counts = repo.store().take_counts();
    assert_eq!(
        (
            counts.appends,
            counts.failed_appends,
            counts.stream_reads,
            counts.events_read
        ),
        (2, 1, 1, 2),
        "the refused append, a read of the two new events, the append that lands"
    );
    assert_eq!(repo.get(id).await.unwrap().state().total, 15);
    assert_eq!(repo.cached_version(id), Some(6));
}

/// Refuses unless the tally has reached `at_least`.
fn add_once_at(at_least: u64) -> impl FnMut(&Tally) -> Result<Added, String> {
    move |tally| match tally.count >= at_least {
        true => Ok(Added { n: 1 }),
        false => Err(format!("only {} so far", tally.count)),
    }
}

#[tokio::test]
async fn a_rejection_on_a_cached_state_stands_only_if_the_stream_had_not_moved() {
    let repo = tallies().with_cache(8);
    let id = stream_of(&repo, 3).await;
    repo.get(id).await.unwrap(); // cached at 3

    // The stream is still at 3: the rejection stands after one read that finds nothing new.
    repo.store().take_counts();
    match repo.execute(id, add_once_at(5)).await {
        Err(CommandError::Rejected(reason)) => assert_eq!(reason, "only 3 so far"),
        other => panic!("the command returned {other:?}"),
    }
    let counts = repo.store().take_counts();
    assert_eq!(
        (counts.stream_reads, counts.events_read, counts.appends),
        (1, 0, 0)
    );

    // Another writer took it to 5: the cached 3 would reject, the stream's 5 accepts.
    append_past(&repo, id, 3, 2).await;
    repo.store().take_counts();
    let after = repo.execute(id, add_once_at(5)).await.unwrap();
    assert_eq!((after.version(), after.count), (6, 6));
    let counts = repo.store().take_counts();
    assert_eq!(
        (counts.stream_reads, counts.events_read, counts.appends),
        (1, 2, 1)
    );
}

#[tokio::test]
async fn a_command_deciding_nothing_on_a_cached_state_returns_the_streams_state() {
    let repo = tallies().with_cache(8);
    let id = stream_of(&repo, 3).await;
    repo.get(id).await.unwrap(); // cached at 3
    append_past(&repo, id, 3, 4).await;
    repo.store().take_counts();

    let after = repo
        .execute(id, |_| Ok::<_, Infallible>(None::<Added>))
        .await
        .unwrap();
    assert_eq!(after.state(), &honest(7), "not the cached state at 3");
    let counts = repo.store().take_counts();
    assert_eq!(
        (counts.stream_reads, counts.events_read, counts.appends),
        (1, 4, 0)
    );
}

#[tokio::test]
async fn a_store_failure_other_than_a_conflict_is_returned_without_a_retry() {
    let repo = tallies().max_attempts(5);
    let id = stream_of(&repo, 2).await;
    let failures: [(&str, MakeError); 3] = [
        ("busy", busy),
        ("outcome unknown", || {
            Error::outcome_unknown("test", "committing", "the connection dropped")
        }),
        ("backend", || {
            Error::backend("test", "appending", "disk full")
        }),
    ];
    for (name, failure) in failures {
        // One failure: a command that wrongly tried again would succeed at its second append
        // and fail this test at once (with every append failing, it would loop).
        repo.store().fail_appends(1, move |_| failure());
        repo.store().take_counts();
        match repo.execute(id, add(1)).await {
            Err(CommandError::Store(error)) => {
                assert_eq!(error.to_string(), failure().to_string(), "{name}");
            }
            other => panic!("{name}: the command returned {other:?}"),
        }
        let counts = repo.store().take_counts();
        assert_eq!(
            (counts.appends, counts.failed_appends, counts.stream_reads),
            (1, 1, 1),
            "{name}: tried once"
        );
    }
    assert_eq!(repo.get(id).await.unwrap().version(), 2, "nothing written");
}

#[tokio::test]
async fn a_conflict_is_retried_on_fresh_state_until_the_append_lands() {
    let repo = tallies().max_attempts(4);
    let id = stream_of(&repo, 2).await;
    let conflict = move |_: &AppendBatch| Error::Conflict {
        stream: id,
        expected: 2,
        actual: 3,
    };
    repo.store().fail_appends(3, conflict);
    repo.store().take_counts();
    let after = repo.execute(id, add(5)).await.unwrap();
    assert_eq!((after.version(), after.total), (3, 7));
    let counts = repo.store().take_counts();
    assert_eq!(
        (
            counts.appends,
            counts.failed_appends,
            counts.events_appended,
            counts.stream_reads
        ),
        (4, 3, 1, 4),
        "each attempt reloads, decides and appends"
    );

    // One conflict more than the attempts: gives up after the fourth.
    repo.store().fail_appends(4, conflict);
    match repo.execute(id, add(5)).await {
        Err(CommandError::Store(Error::TooManyConflicts { stream, attempts })) => {
            assert_eq!((stream, attempts), (id, 4));
        }
        other => panic!("the command returned {other:?}"),
    }
    let counts = repo.store().take_counts();
    assert_eq!((counts.appends, counts.failed_appends), (4, 4));
}

#[tokio::test]
async fn a_command_that_decides_nothing_appends_nothing() {
    let repo = tallies();
    let id = stream_of(&repo, 2).await;
    repo.store().take_counts();
    let after = repo
        .execute(id, |_| Ok::<_, Infallible>(None::<Added>))
        .await
        .unwrap();
    assert_eq!(after.version(), 2);
    let counts = repo.store().take_counts();
    assert_eq!((counts.appends, counts.snapshot_saves), (0, 0));
}

#[tokio::test]
async fn the_policy_writes_one_snapshot_per_multiple_crossed() {
    let repo = tallies().snapshot_every(5);
    let id = repo.create(Added { n: 1 }).await.unwrap();
    for _ in 0..11 {
        repo.execute(id, add(1)).await.unwrap();
    }
    assert_eq!(repo.store().counts().snapshot_saves, 2, "at 5 and at 10");
    // A batch jumping over a multiple (12 → 16) writes one, at the batch's end.
    repo.execute(id, |_| Ok::<_, Infallible>(vec![Added { n: 1 }; 4]))
        .await
        .unwrap();
    assert_eq!(repo.store().counts().snapshot_saves, 3);
    let newest = repo.store().load_snapshot(id, None).await.unwrap().unwrap();
    assert_eq!(newest.version, 16);
}

// ---------------------------------------------------------------------------------------------
// Units of work

#[tokio::test]
async fn a_unit_of_work_reads_each_stream_once_and_appends_all_in_one_batch() {
    let repo = tallies();
    let (a, b) = (stream_of(&repo, 3).await, stream_of(&repo, 2).await);
    let new = Uuid::now_v7();
    repo.store().take_counts();
    let described = repo
        .unit_of_work()
        .run(|work| {
            Box::pin(async move {
                let first = work.load::<Tally>(a).await?;
                let again = work.load::<Tally>(a).await?;
                let second = work.load::<Tally>(b).await?;
                work.record(first, Added { n: 10 });
                work.record(again, Added { n: 10 });
                work.record(second, Added { n: 1 });
                // A new stream with an event recorded loads like an existing one.
                let created = work.load_or_default::<Tally>(new).await?;
                work.record(created, Added { n: 7 });
                let reloaded = work.load::<Tally>(new).await?;
                assert_eq!(work[reloaded].pending().len(), 1);
                Ok::<_, CommandError<Infallible>>(format!("{work:?}"))
            })
        })
        .await
        .unwrap();
    assert_eq!(
        described,
        format!(
            "[Tally {a} at version 3 (+2 pending), Tally {b} at version 2 (+1 pending), \
             Tally {new} at version 0 (+1 pending)]"
        )
    );
    assert_eq!(
        repo.store().take_counts(),
        StoreCounts {
            snapshot_loads: 3,
            snapshot_replays: 3,
            stream_reads: 3,
            events_read: 5,
            appends: 1,
            events_appended: 4,
            ..StoreCounts::default()
        }
    );
    assert_eq!(repo.get(a).await.unwrap().state().total, 23);

    // A unit that records nothing appends nothing.
    repo.store().take_counts();
    repo.unit_of_work()
        .run(|work| {
            Box::pin(async move {
                work.load::<Tally>(a).await?;
                Ok::<_, CommandError<Infallible>>(())
            })
        })
        .await
        .unwrap();
    assert_eq!(repo.store().take_counts().appends, 0);
}

/// A unit of work's body: adds 1 to the tally `id`.
fn add_one<'r>(
    id: Uuid,
) -> impl for<'w> FnMut(
    &'w mut Work<'r, CountingStore>,
) -> BoxFuture<'w, Result<(), CommandError<Infallible>>> {
    move |work| {
        Box::pin(async move {
            let tally = work.load::<Tally>(id).await?;
            work.record(tally, Added { n: 1 });
            Ok(())
        })
    }
}

#[tokio::test]
async fn a_unit_of_work_retries_conflicts_and_returns_other_failures_at_once() {
    let repo = tallies().max_attempts(3);
    let id = stream_of(&repo, 2).await;
    let conflict = move |_: &AppendBatch| Error::Conflict {
        stream: id,
        expected: 2,
        actual: 3,
    };

    repo.store().fail_appends(2, conflict);
    repo.store().take_counts();
    repo.unit_of_work().run(add_one(id)).await.unwrap();
    let counts = repo.store().take_counts();
    assert_eq!(
        (counts.appends, counts.failed_appends, counts.stream_reads),
        (3, 2, 3)
    );

    repo.store().fail_appends(3, conflict);
    match repo.unit_of_work().run(add_one(id)).await {
        Err(CommandError::Store(Error::TooManyConflicts { attempts: 3, .. })) => {}
        other => panic!("the unit returned {other:?}"),
    }
    assert_eq!(repo.store().take_counts().appends, 3);

    // One failure, as in the command test: a wrong retry would succeed, not loop.
    repo.store().fail_appends(1, |_| busy());
    match repo.unit_of_work().run(add_one(id)).await {
        Err(CommandError::Store(Error::Busy { .. })) => {}
        other => panic!("the unit returned {other:?}"),
    }
    assert_eq!(repo.store().take_counts().appends, 1, "tried once");
    assert_eq!(repo.get(id).await.unwrap().version(), 3);
}

#[tokio::test]
async fn a_unit_of_work_snapshots_by_the_derives_policy() {
    let store = CountingStore::<MemoryStore>::default();
    let meters = Repository::<Meter, _>::new(store.clone());
    let id = meters.create(Added { n: 1 }).await.unwrap(); // version 1
    store.take_counts();
    let unit = UnitOfWork::new(&store);
    for _ in 0..8 {
        unit.run(|work| {
            Box::pin(async move {
                let meter = work.load::<Meter>(id).await?;
                work.record(meter, Added { n: 1 });
                Ok::<_, CommandError<Infallible>>(())
            })
        })
        .await
        .unwrap();
    }
    // Versions 2 to 9: the saves reaching 4 and 8 took snapshots.
    assert_eq!(store.counts().snapshot_saves, 2);
    let newest = store.load_snapshot(id, None).await.unwrap().unwrap();
    assert_eq!(newest.version, 8);
}
