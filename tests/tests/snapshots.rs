//! Snapshots, the aggregate cache and time travel, on every store: the memory store, SQLite
//! (a file) and PostgreSQL.
//!
//! PostgreSQL comes from `EVENTSOURCE_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); each test uses a fresh schema and drops it. Without
//! a reachable server the PostgreSQL part prints why and is skipped, unless `CI=true`.
//!
//! Some tests overwrite a snapshot with a state the events could never produce (a "marker"
//! added to the total): seeing the marker in a loaded state proves the load started from that
//! snapshot, not from the first event.

use std::sync::Arc;
use std::time::SystemTime;

use eventsource_core::prelude::*;
use eventsource_core::{
    AppendBatch, Error, LogPage, LogQuery, Position, Snapshot, SnapshotSettings, Snapshotted,
    StreamRange,
};
use serde::{Deserialize, Serialize};

mod support;
use support::stores::{Store, on_every_store};

// ---------------------------------------------------------------------------------------------
// The domain

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Added {
    n: u64,
}

/// Snapshots every 10 events by default.
#[derive(Aggregate, Default, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[aggregate(events(Added), snapshot_every = 10)]
struct Tally {
    total: u64,
    /// `serde(default)`: a snapshot of the older shape (`TallyBefore`, no `count`) would still
    /// decode — wrongly, with a count of 0. Only the fingerprint keeps it from being used.
    #[serde(default)]
    count: u64,
}

impl Apply<Added> for Tally {
    fn apply(&mut self, event: &Added) {
        self.total += event.n;
        self.count += 1;
    }
}

/// `Tally` as it was before `count` was added: same aggregate name, another shape.
mod before {
    use super::Added;
    use eventsource_core::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Aggregate, Default, Debug, Clone, Serialize, Deserialize)]
    #[aggregate(events(Added), name = "Tally", snapshot)]
    pub(crate) struct TallyBefore {
        pub(crate) total: u64,
    }

    impl Apply<Added> for TallyBefore {
        fn apply(&mut self, event: &Added) {
            self.total += event.n;
        }
    }
}
use before::TallyBefore;

/// The same struct as `Tally`, written in another module and formatted differently.
mod same_shape {
    use super::Added;
    use eventsource_core::prelude::*;
    use serde::{Deserialize, Serialize};

    /// Doc comments don't change the fingerprint.
    #[derive(Aggregate, Default, Debug, Clone, Serialize, Deserialize)]
    #[aggregate(snapshot_every = 3, events(Added), event_enum = OtherTallyEvent)]
    pub(crate) struct Tally {
        pub(crate) total: u64,
        #[serde(default)]
        pub(crate) count: u64,
    }

    impl Apply<Added> for Tally {
        fn apply(&mut self, _: &Added) {}
    }
}

/// No snapshot key: no snapshots, no bounds.
#[derive(Aggregate, Default, Debug, Clone)]
#[aggregate(events(Added))]
struct Plain {
    total: u64,
}

impl Apply<Added> for Plain {
    fn apply(&mut self, event: &Added) {
        self.total += event.n;
    }
}

/// A notebook whose state grows with its notes: what a byte budget weighs.
#[derive(Event, Serialize, Deserialize, Debug, Clone)]
struct Filled {
    notes: Vec<String>,
}

#[derive(Aggregate, Default, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[aggregate(events(Filled), snapshot)]
struct Notebook {
    notes: Vec<String>,
}

impl Apply<Filled> for Notebook {
    fn apply(&mut self, event: &Filled) {
        self.notes.extend(event.notes.iter().cloned());
    }
}

fn filled(notes: usize, length: usize) -> Filled {
    Filled {
        notes: (0..notes).map(|i| format!("{i:0length$}")).collect(),
    }
}

fn add(n: u64) -> impl FnMut(&Tally) -> Result<Added, std::convert::Infallible> {
    move |_| Ok(Added { n })
}

fn honest(version: u64) -> Tally {
    Tally {
        total: version,
        count: version,
    }
}

/// A snapshot of `Tally` whose total carries `marker`.
fn marked(stream: Uuid, version: u64, marker: u64) -> Snapshot {
    let state = Tally {
        total: version + marker,
        count: version,
    };
    Snapshot {
        stream_id: stream,
        version,
        aggregate: "Tally".into(),
        fingerprint: fingerprint::<Tally>(),
        state: serde_json::to_vec(&state).unwrap(),
        recorded_at: SystemTime::now(),
    }
}

fn fingerprint<A: Aggregate>() -> u64 {
    A::SNAPSHOTS.expect("keeps snapshots").fingerprint
}

/// A stream of `Tally` with `events` events of `Added { n: 1 }`, appended without snapshots.
async fn stream_of(store: &Store, events: u64) -> Uuid {
    let repo = Repository::<Tally, _>::new(store.clone()).snapshot_every(0);
    let id = repo.create(Added { n: 1 }).await.unwrap();
    let rest: Vec<_> = (1..events)
        .map(|_| TallyEvent::from(Added { n: 1 }))
        .collect();
    let encoded = repo.encode(id, 1, &rest).await.unwrap();
    if !encoded.is_empty() {
        store
            .append(AppendBatch::single(id, 1, encoded))
            .await
            .unwrap();
    }
    id
}

async fn decoded_snapshot(store: &Store, id: Uuid, at: Option<u64>) -> Option<(u64, Tally)> {
    let snapshot = store.load_snapshot(id, at).await.unwrap()?;
    assert_eq!(snapshot.aggregate, "Tally");
    assert_eq!(snapshot.fingerprint, fingerprint::<Tally>());
    Some((
        snapshot.version,
        serde_json::from_slice(&snapshot.state).unwrap(),
    ))
}

// ---------------------------------------------------------------------------------------------
// Running a scenario on every store

// ---------------------------------------------------------------------------------------------
// The derive's side

#[test]
fn the_derive_sets_the_snapshot_policy_and_fingerprint() {
    let SnapshotSettings { fingerprint, every } = Tally::SNAPSHOTS.unwrap();
    assert_eq!(every.map(|n| n.get()), Some(10));
    assert_eq!(TallyBefore::SNAPSHOTS.unwrap().every, None);
    assert_ne!(fingerprint, TallyBefore::SNAPSHOTS.unwrap().fingerprint);
    // Same fields, types and serde attributes, events listed alike: same fingerprint, whatever
    // the module, the docs, the formatting or the other keys.
    assert_eq!(
        fingerprint,
        same_shape::Tally::SNAPSHOTS.unwrap().fingerprint
    );
    assert_eq!(Plain::SNAPSHOTS, None);
    assert!(Plain::default().encode_snapshot(&Json).is_none());
}

// ---------------------------------------------------------------------------------------------
// Snapshots

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_takes_snapshots_and_loads_start_from_them() {
    on_every_store("snapshots", |store_name, store| async move {
        let repo = Repository::<Tally, _>::new(store.clone());
        assert_eq!(repo.snapshot_policy().map(|n| n.get()), Some(10));
        let id = repo.create(Added { n: 1 }).await.unwrap();
        for _ in 0..24 {
            repo.execute(id, add(1)).await.unwrap();
        }
        // Saves crossed 10 and 20.
        assert_eq!(
            decoded_snapshot(&store, id, None).await,
            Some((20, honest(20))),
            "{store_name}"
        );
        assert_eq!(
            decoded_snapshot(&store, id, Some(19)).await,
            Some((10, honest(10))),
            "{store_name}"
        );
        assert_eq!(repo.get(id).await.unwrap().state(), &honest(25));

        // A load starts from the newest snapshot and applies the five events after it.
        store.save_snapshot(marked(id, 20, 1000)).await.unwrap();
        let loaded = repo.get(id).await.unwrap();
        assert_eq!((loaded.version(), loaded.total), (25, 1025), "{store_name}");

        // The repository's policy overrides the derive's; 0 turns it off.
        let every_3 = Repository::<Tally, _>::new(store.clone()).snapshot_every(3);
        let other = every_3.create(Added { n: 1 }).await.unwrap();
        every_3.execute(other, add(1)).await.unwrap();
        assert_eq!(store.load_snapshot(other, None).await.unwrap(), None);
        every_3.execute(other, add(1)).await.unwrap();
        assert_eq!(decoded_snapshot(&store, other, None).await.unwrap().0, 3);
        let never = Repository::<Tally, _>::new(store.clone()).snapshot_every(0);
        assert_eq!(never.snapshot_policy(), None);
        for _ in 0..20 {
            never.execute(other, add(1)).await.unwrap();
        }
        assert_eq!(decoded_snapshot(&store, other, None).await.unwrap().0, 3);
        // On request, whatever the policy.
        assert_eq!(never.take_snapshot(other).await.unwrap(), 23);
        assert_eq!(
            decoded_snapshot(&store, other, None).await,
            Some((23, honest(23)))
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_an_older_shape_is_ignored_and_rebuilt() {
    on_every_store("snapshots", |store_name, store| async move {
        let id = stream_of(&store, 30).await;
        // The aggregate before `count` was added snapshots the stream.
        let old = Repository::<TallyBefore, _>::new(store.clone());
        assert_eq!(old.take_snapshot(id).await.unwrap(), 30);
        let stale = store.load_snapshot(id, None).await.unwrap().unwrap();
        assert_eq!(stale.fingerprint, fingerprint::<TallyBefore>());
        // It would decode as a `Tally` (count defaults to 0): only the fingerprint stops that.
        let wrong: Tally = serde_json::from_slice(&stale.state).unwrap();
        assert_eq!(wrong.count, 0);

        let repo = Repository::<Tally, _>::new(store.clone());
        let loaded = repo.get(id).await.unwrap();
        assert_eq!(loaded.state(), &honest(30), "{store_name}");
        // A fresh snapshot of the current shape replaced it at the latest version.
        assert_eq!(
            decoded_snapshot(&store, id, None).await,
            Some((30, honest(30))),
            "{store_name}"
        );
        // Time travel below it still ignores the stale one...
        store
            .save_snapshot(Snapshot {
                version: 20,
                ..stale
            })
            .await
            .unwrap();
        assert_eq!(repo.get_at(id, 25).await.unwrap().state(), &honest(25));
        // ...and commands go on from the fresh one.
        let after = repo.execute(id, add(5)).await.unwrap();
        assert_eq!((after.version(), after.total, after.count), (31, 35, 31));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_snapshot_falls_back_to_replay() {
    on_every_store("snapshots", |store_name, store| async move {
        let id = stream_of(&store, 12).await;
        let mut garbage = marked(id, 10, 0);
        garbage.state = b"{\"total\": not json".to_vec();
        store.save_snapshot(garbage).await.unwrap();
        let repo = Repository::<Tally, _>::new(store.clone());
        assert_eq!(
            repo.get(id).await.unwrap().state(),
            &honest(12),
            "{store_name}"
        );
        assert_eq!(
            decoded_snapshot(&store, id, None).await,
            Some((12, honest(12)))
        );
        // For time travel too (the garbage is still the newest at or below 11).
        assert_eq!(repo.get_at(id, 11).await.unwrap().state(), &honest(11));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_at_starts_from_the_newest_snapshot_at_or_below_the_version() {
    on_every_store("snapshots", |store_name, store| async move {
        let id = stream_of(&store, 12).await;
        store.save_snapshot(marked(id, 5, 1000)).await.unwrap();
        store.save_snapshot(marked(id, 10, 2000)).await.unwrap();
        let repo = Repository::<Tally, _>::new(store.clone());
        let at = |v| {
            let repo = &repo;
            async move {
                let loaded = repo.get_at(id, v).await.unwrap();
                assert_eq!(loaded.version(), v, "{store_name}");
                (loaded.total, loaded.count)
            }
        };
        assert_eq!(at(4).await, (4, 4), "{store_name}: below every snapshot");
        assert_eq!(at(5).await, (1005, 5), "{store_name}: the snapshot at 5");
        assert_eq!(
            at(7).await,
            (1007, 7),
            "{store_name}: the one at 10 is newer"
        );
        assert_eq!(at(10).await, (2010, 10), "{store_name}");
        assert_eq!(at(12).await, (2012, 12), "{store_name}");
        assert_eq!(repo.get(id).await.unwrap().total, 2012);
        for v in [0, 13] {
            match repo.get_at(id, v).await {
                Err(Error::VersionNotFound {
                    requested, latest, ..
                }) => assert_eq!((requested, latest), (v, 12)),
                other => panic!("{store_name}: get_at({v}) returned {other:?}"),
            }
        }
        assert!(matches!(
            repo.get_at(Uuid::now_v7(), 3).await,
            Err(Error::NotFound { .. })
        ));
    })
    .await;
}

/// Writes events to a real store but refuses every snapshot, like a full snapshot table.
struct NoSnapshotWrites(MemoryStore);

#[eventsource_core::async_trait]
impl EventStore for NoSnapshotWrites {
    async fn append(&self, batch: AppendBatch) -> eventsource_core::Result<Position> {
        self.0.append(batch).await
    }
    fn read_stream(&self, id: Uuid, range: StreamRange) -> eventsource_core::EventStream<'_> {
        self.0.read_stream(id, range)
    }
    async fn stream_version(&self, id: Uuid) -> eventsource_core::Result<u64> {
        self.0.stream_version(id).await
    }
    async fn read_log(&self, query: LogQuery) -> eventsource_core::Result<LogPage> {
        self.0.read_log(query).await
    }
    async fn last_position(&self) -> eventsource_core::Result<Position> {
        self.0.last_position().await
    }
    async fn save_snapshot(&self, _: Snapshot) -> eventsource_core::Result<()> {
        Err(Error::backend(
            "test",
            "saving a snapshot",
            "the snapshot table is full",
        ))
    }
    async fn delete_snapshots(&self, stream_id: Uuid) -> eventsource_core::Result<u64> {
        self.0.delete_snapshots(stream_id).await
    }
    async fn load_snapshot(
        &self,
        id: Uuid,
        at: Option<u64>,
    ) -> eventsource_core::Result<Option<Snapshot>> {
        self.0.load_snapshot(id, at).await
    }
    async fn tracking_position(&self, tracker: &str) -> eventsource_core::Result<Position> {
        self.0.tracking_position(tracker).await
    }
}

#[tokio::test]
async fn a_failed_snapshot_write_does_not_fail_the_command() {
    let repo = Repository::<Tally, _>::new(NoSnapshotWrites(MemoryStore::new())).snapshot_every(2);
    let id = repo.create(Added { n: 1 }).await.unwrap();
    for _ in 0..9 {
        repo.execute(id, add(1)).await.unwrap();
    }
    assert_eq!(repo.get(id).await.unwrap().state(), &honest(10));
    assert_eq!(repo.store().load_snapshot(id, None).await.unwrap(), None);
    // On request, the failure is returned.
    match repo.take_snapshot(id).await {
        Err(Error::Backend { context, .. }) => assert_eq!(context, "saving a snapshot"),
        other => panic!("take_snapshot returned {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The cache

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_entry_behind_the_store_is_fast_forwarded() {
    on_every_store("snapshots", |store_name, store| async move {
        let cached = Repository::<Tally, _>::new(store.clone())
            .snapshot_every(0)
            .with_cache(16);
        let id = cached.create(Added { n: 1 }).await.unwrap();
        cached.execute(id, add(1)).await.unwrap();
        assert_eq!(cached.cached_version(id), Some(2), "{store_name}");

        // Another process appends.
        let other = Repository::<Tally, _>::new(store.clone());
        for _ in 0..5 {
            other.execute(id, add(10)).await.unwrap();
        }
        assert_eq!(cached.cached_version(id), Some(2));
        let loaded = cached.get(id).await.unwrap();
        assert_eq!((loaded.version(), loaded.total), (7, 52), "{store_name}");
        assert_eq!(cached.cached_version(id), Some(7));

        // A command decides on the fast-forwarded state: it doubles the total.
        other.execute(id, add(100)).await.unwrap();
        let doubled = cached
            .execute(id, |t: &Tally| {
                Ok::<_, std::convert::Infallible>(Added { n: t.total })
            })
            .await
            .unwrap();
        assert_eq!((doubled.version(), doubled.total), (9, 304), "{store_name}");
        assert_eq!(cached.cached_version(id), Some(9));

        // Time travel below the cached version leaves the cache alone.
        let then = cached.get_at(id, 3).await.unwrap();
        assert_eq!((then.version(), then.total), (3, 12));
        assert_eq!(cached.cached_version(id), Some(9));
        assert_eq!(cached.get(id).await.unwrap().total, 304);

        // A stale cache entry never hides a newer snapshot-less history: evict and reload.
        cached.evict(id);
        assert_eq!(cached.cached_version(id), None);
        assert_eq!(cached.get(id).await.unwrap().total, 304);
        assert_eq!(cached.cached_len(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_is_bounded_and_works_with_snapshots() {
    on_every_store("snapshots", |store_name, store| async move {
        let repo = Repository::<Tally, _>::new(store.clone()).with_cache(2);
        let ids = [
            stream_of(&store, 3).await,
            stream_of(&store, 4).await,
            stream_of(&store, 5).await,
        ];
        for id in ids {
            repo.get(id).await.unwrap();
        }
        assert_eq!(repo.cached_len(), 2, "{store_name}");
        // Which one went is the eviction policy's choice (CLOCK-PRO, not LRU); each cached one
        // is at its stream's version (stream `i` has `3 + i` events).
        let cached: Vec<_> = ids.iter().map(|id| repo.cached_version(*id)).collect();
        let (evicted, kept): (Vec<_>, Vec<_>) = (0..3).partition(|i| cached[*i].is_none());
        assert_eq!(evicted.len(), 1, "{store_name}: {cached:?}");
        for i in &kept {
            assert_eq!(cached[*i], Some(3 + *i as u64), "{store_name}");
        }
        // A cached one doesn't need a snapshot: the cache is the newer start.
        let (k, e) = (kept[0], evicted[0]);
        let events = |i: usize| 3 + i as u64;
        store
            .save_snapshot(marked(ids[k], events(k) - 1, 1000))
            .await
            .unwrap();
        assert_eq!(
            repo.get(ids[k]).await.unwrap().total,
            events(k),
            "{store_name}"
        );
        // An evicted aggregate loads from its snapshot.
        store.save_snapshot(marked(ids[e], 2, 1000)).await.unwrap();
        assert_eq!(
            repo.get(ids[e]).await.unwrap().total,
            1000 + events(e),
            "{store_name}"
        );
        // For time travel, a snapshot between the cached version and the target is used.
        let repo2 = Repository::<Tally, _>::new(store.clone()).with_cache(2);
        let id = stream_of(&store, 10).await;
        repo2.get_at(id, 2).await.unwrap();
        store
            .append(AppendBatch::single(
                id,
                10,
                repo2
                    .encode(id, 10, &[TallyEvent::from(Added { n: 1 })])
                    .await
                    .unwrap(),
            ))
            .await
            .unwrap();
        store.save_snapshot(marked(id, 8, 1000)).await.unwrap();
        assert_eq!(repo2.get(id).await.unwrap().total, 1011);
        assert_eq!(repo2.get_at(id, 9).await.unwrap().total, 1009);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commands_on_one_cached_aggregate_all_land() {
    on_every_store("snapshots", |store_name, store| async move {
        // Two "processes", each with its own cache, four tasks each.
        // One caches by entries, the other by entries and bytes.
        let repos: Vec<_> = (0..2)
            .map(|process| {
                let repo = Repository::<Tally, _>::new(store.clone())
                    .snapshot_every(7)
                    .max_attempts(1000);
                Arc::new(match process {
                    0 => repo.with_cache(8),
                    _ => repo.with_cache_budget(8, 1 << 16).unwrap(),
                })
            })
            .collect();
        let id = repos[0].create(Added { n: 0 }).await.unwrap();
        let mut tasks = Vec::new();
        for task in 0..8u64 {
            let repo = repos[(task % 2) as usize].clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..10u64 {
                    repo.execute(id, add(task * 100 + i)).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let expected_total: u64 = (0..8u64)
            .flat_map(|t| (0..10u64).map(move |i| t * 100 + i))
            .sum();
        for repo in &repos {
            let loaded = repo.get(id).await.unwrap();
            assert_eq!(
                (loaded.version(), loaded.count, loaded.total),
                (81, 81, expected_total),
                "{store_name}"
            );
            assert_eq!(repo.cached_version(id), Some(81));
        }
        let history = repos[0].history(id).await.unwrap();
        assert_eq!(history.len(), 81);
        // Snapshots were taken along the way, and the newest is the true state at its version.
        let (version, state) = decoded_snapshot(&store, id, None).await.unwrap();
        assert!(version >= 77, "{store_name}: newest snapshot at {version}");
        let mut replayed = Tally::default();
        for recorded in history.iter().filter(|r| r.version <= version) {
            replayed.apply_event(&recorded.event);
        }
        assert_eq!(replayed, state, "{store_name}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_with_a_byte_budget_fast_forwards_from_its_cached_state() {
    on_every_store("snapshots", |store_name, store| async move {
        let cached = Repository::<Tally, _>::new(store.clone())
            .snapshot_every(0)
            .with_cache_budget(16, 1 << 20)
            .unwrap();
        let id = cached.create(Added { n: 1 }).await.unwrap();
        cached.execute(id, add(1)).await.unwrap();
        assert_eq!(cached.cached_version(id), Some(2), "{store_name}");

        // Another process appends; the cached state is behind, and a command fast-forwards it.
        let other = Repository::<Tally, _>::new(store.clone());
        for _ in 0..5 {
            other.execute(id, add(10)).await.unwrap();
        }
        assert_eq!(cached.cached_version(id), Some(2));
        let doubled = cached
            .execute(id, |t: &Tally| {
                Ok::<_, std::convert::Infallible>(Added { n: t.total })
            })
            .await
            .unwrap();
        assert_eq!((doubled.version(), doubled.total), (8, 104), "{store_name}");
        assert_eq!(cached.cached_version(id), Some(8));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_budget_evicts_heavy_states_and_keeps_light_ones() {
    on_every_store("snapshots", |store_name, store| async move {
        // A heavy notebook: 100 notes of 100 characters, over 10 kB as a JSON snapshot. The
        // budget holds four of them; under 64 entries the cache is one shard on any machine.
        let heavy = serde_json::to_vec(&Notebook {
            notes: filled(100, 100).notes,
        })
        .unwrap()
        .len();
        let notebooks = Repository::<Notebook, _>::new(store.clone())
            .with_cache_budget(40, 4 * heavy + heavy / 2)
            .unwrap();
        let mut ids = Vec::new();
        for _ in 0..12 {
            ids.push(notebooks.create(filled(100, 100)).await.unwrap());
            assert!(
                notebooks.cached_len() <= 4,
                "{store_name}: {}",
                notebooks.cached_len()
            );
        }
        assert!(notebooks.cached_len() >= 1, "{store_name}");
        // Evicted or not, every notebook loads whole.
        for id in &ids {
            assert_eq!(notebooks.get(*id).await.unwrap().notes.len(), 100);
        }

        // Light notebooks: the entry count binds, not the bytes.
        let notebooks = Repository::<Notebook, _>::new(store.clone())
            .with_cache_budget(40, 4 * heavy + heavy / 2)
            .unwrap();
        for _ in 0..100 {
            notebooks.create(filled(1, 5)).await.unwrap();
            assert!(notebooks.cached_len() <= 40, "{store_name}");
        }
        assert!(
            notebooks.cached_len() > 20,
            "{store_name}: {}",
            notebooks.cached_len()
        );

        // A notebook that grows past the whole budget leaves the cache, and still loads whole.
        let id = notebooks.create(filled(1, 5)).await.unwrap();
        assert_eq!(notebooks.cached_version(id), Some(1));
        notebooks
            .execute(id, |_: &Notebook| {
                Ok::<_, std::convert::Infallible>(filled(1000, 100))
            })
            .await
            .unwrap();
        assert_eq!(
            notebooks.cached_version(id),
            None,
            "{store_name}: too heavy to cache"
        );
        let grown = notebooks.get(id).await.unwrap();
        assert_eq!((grown.version(), grown.notes.len()), (2, 1001));
        assert_eq!(notebooks.cached_version(id), None, "{store_name}");
    })
    .await;
}

#[tokio::test]
async fn a_plain_aggregate_needs_no_snapshot_bounds_and_can_be_cached() {
    let repo = Repository::<Plain, _>::new(MemoryStore::new()).with_cache(4);
    let id = repo.create(Added { n: 2 }).await.unwrap();
    repo.execute(id, |_| Ok::<_, std::convert::Infallible>(Added { n: 3 }))
        .await
        .unwrap();
    assert_eq!(repo.snapshot_policy(), None);
    assert_eq!(repo.get(id).await.unwrap().total, 5);
    assert_eq!(repo.store().load_snapshot(id, None).await.unwrap(), None);
    assert_eq!(repo.cached_version(id), Some(2));
}

// `Snapshotted` is what the snapshot-only methods require.
const _: fn() = || {
    fn snapshotted<A: Snapshotted>() {}
    snapshotted::<Tally>();
    snapshotted::<TallyBefore>();
};

/// The snapshot items the derive generates compile under strict lints with the prelude's names
/// shadowed.
mod hygiene {
    #![deny(warnings, unused_qualifications)]
    #![allow(dead_code)]

    use eventsource_core::Apply;
    use serde::{Deserialize, Serialize};

    /// Shadows `Option`.
    pub(crate) struct Option;
    /// Shadows `Some`.
    pub(crate) struct Some;
    /// Shadows `None`.
    pub(crate) struct None;
    /// Shadows `Result`.
    pub(crate) struct Result;
    /// Shadows `Vec`.
    pub(crate) struct Vec;
    /// Shadows `Codec`.
    pub(crate) struct Codec;

    /// An event.
    #[derive(eventsource_core::Event, Serialize, Deserialize, Debug, Clone)]
    pub(crate) struct Noted;

    /// An aggregate with snapshots.
    #[derive(eventsource_core::Aggregate, Default, Debug, Serialize, Deserialize)]
    #[aggregate(events(Noted), snapshot_every = 5)]
    pub(crate) struct Notebook {
        notes: u64,
    }

    impl Apply<Noted> for Notebook {
        fn apply(&mut self, _: &Noted) {
            self.notes += 1;
        }
    }
}

#[test]
fn snapshot_code_is_hygienic() {
    let notebook = hygiene::Notebook::default();
    let bytes = notebook.encode_snapshot(&Json).unwrap().unwrap();
    assert_eq!(bytes, br#"{"notes":0}"#);
    let back = hygiene::Notebook::decode_snapshot(&Json, br#"{"notes":4}"#)
        .unwrap()
        .unwrap();
    assert_eq!(format!("{back:?}"), "Notebook { notes: 4 }");
    assert!(
        hygiene::Notebook::decode_snapshot(&Json, b"[")
            .unwrap()
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_ahead_of_the_stream_is_disowned() {
    on_every_store("snapshots", |store_name, store| async move {
        // The events were restored from an older backup; the snapshots were not.
        let id = stream_of(&store, 5).await;
        store.save_snapshot(marked(id, 8, 1000)).await.unwrap();
        let repo = Repository::<Tally, _>::new(store.clone()).snapshot_every(0);
        let loaded = repo.get(id).await.unwrap();
        assert_eq!(loaded.state(), &honest(5), "{store_name}");
        assert_eq!(loaded.version(), 5);
        // Commands go on (with the snapshot's version they would conflict forever)...
        for _ in 0..4 {
            repo.execute(id, add(1)).await.unwrap();
        }
        // ...and once the stream passes the snapshot's version, it is still not used.
        let loaded = repo.get(id).await.unwrap();
        assert_eq!(loaded.state(), &honest(9), "{store_name}");
        assert_eq!(repo.get_at(id, 8).await.unwrap().state(), &honest(8));
        // Loads rebuilt a snapshot each time (the disowned one was the newest), until the one
        // at 8 replaced it with the true state at 8.
        assert_eq!(
            decoded_snapshot(&store, id, None).await,
            Some((8, honest(8))),
            "{store_name}"
        );
    })
    .await;
}
