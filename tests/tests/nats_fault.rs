//! The NATS store on a three-node cluster of its own (replicas 3) while the events stream's
//! leader is SIGKILLed during a load of appends: appends resume after the election, every
//! acknowledged event is in the log exactly once, no stream version is written twice, a follower
//! paging the log through the whole run never skips an event, and the killed node, restarted,
//! catches up (it is made the leader and the log read from it is the same).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use eventsource_core::stores::nats::NatsStore;
use eventsource_core::{
    AppendBatch, Error, EventStore, LogQuery, NewEvent, Position, StoredEvent, Uuid,
};

mod support;
use support::nats_cluster::NatsCluster;

const WRITERS: usize = 4;
const STREAMS_PER_WRITER: usize = 3;
/// Acknowledged events to reach before the kill, and again after it.
const LOAD: usize = 300;
const STORE: &str = "fault";

/// What one writer saw.
#[derive(Default)]
struct Written {
    /// Acknowledged events: id → (stream, version).
    acknowledged: HashMap<Uuid, (Uuid, u64)>,
    /// Events of appends whose outcome is unknown: each may be in the log, at most once.
    unknown: HashSet<Uuid>,
    errors: BTreeMap<&'static str, usize>,
}

fn kind(error: &Error) -> &'static str {
    match error {
        Error::OutcomeUnknown { .. } => "OutcomeUnknown",
        Error::Busy { .. } => "Busy",
        Error::Backend { .. } => "Backend",
        Error::Conflict { .. } => "Conflict",
        _ => "other",
    }
}

/// Reads a stream's version, retrying through the election.
async fn version_of(store: &NatsStore, stream: Uuid) -> u64 {
    loop {
        match store.stream_version(stream).await {
            Ok(version) => return version,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Appends batches of 1 to 3 events round-robin to its streams until `stop`.
async fn writer(
    store: NatsStore,
    seed: usize,
    stop: Arc<AtomicBool>,
    total: Arc<AtomicUsize>,
) -> Written {
    let streams: Vec<Uuid> = (0..STREAMS_PER_WRITER).map(|_| Uuid::now_v7()).collect();
    let mut versions = [0u64; STREAMS_PER_WRITER];
    let mut written = Written::default();
    let mut turn = seed;
    while !stop.load(Ordering::Relaxed) {
        turn += 1;
        let index = turn % STREAMS_PER_WRITER;
        let stream = streams[index];
        let events: Vec<NewEvent> = (0..1 + turn % 3)
            .map(|_| NewEvent::new("Ticked", 1, format!("{turn}").into_bytes()))
            .collect();
        let ids: Vec<Uuid> = events.iter().map(|event| event.id).collect();
        let batch = AppendBatch::single_in("Clock", stream, versions[index], events);
        match store.append(batch).await {
            Ok(_) => {
                for (offset, id) in ids.iter().enumerate() {
                    written
                        .acknowledged
                        .insert(*id, (stream, versions[index] + offset as u64 + 1));
                }
                versions[index] += ids.len() as u64;
                total.fetch_add(ids.len(), Ordering::Relaxed);
            }
            Err(error) => {
                *written.errors.entry(kind(&error)).or_default() += 1;
                if error.may_have_happened() {
                    written.unknown.extend(ids);
                }
                assert!(
                    error.is_retryable() || matches!(error, Error::Backend { .. }),
                    "an append failed for a reason a retry can't fix: {error}"
                );
                // Only this writer writes these streams: read where the stream is now.
                tokio::time::sleep(Duration::from_millis(20)).await;
                versions[index] = version_of(&store, stream).await;
            }
        }
    }
    written
}

/// Pages the log until `stop` and then to its end, checking that positions only increase.
async fn follower(store: NatsStore, stop: Arc<AtomicBool>) -> Vec<StoredEvent> {
    let mut seen: Vec<StoredEvent> = Vec::new();
    let mut after = Position::START;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        match store.read_log(LogQuery::after(after, 100)).await {
            Ok(page) => {
                for event in &page.events {
                    assert!(event.position > after, "positions go back at {after}");
                    after = event.position;
                }
                assert!(page.next >= after);
                after = page.next;
                if page.is_empty() {
                    if stopping {
                        return seen;
                    }
                    // Caught up: let the writers write.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                seen.extend(page.events);
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The whole log, retrying through an election.
async fn whole_log(store: &NatsStore) -> Vec<StoredEvent> {
    let deadline = Instant::now() + Duration::from_secs(60);
    'again: loop {
        assert!(
            Instant::now() < deadline,
            "the log could not be read for 60 s"
        );
        let mut events = Vec::new();
        let mut after = Position::START;
        loop {
            match store.read_log(LogQuery::after(after, 500)).await {
                Ok(page) if page.is_empty() => return events,
                Ok(page) => {
                    after = page.next;
                    events.extend(page.events);
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue 'again;
                }
            }
        }
    }
}

/// The events stream's cluster state: its leader and each replica's (name, current, lag).
async fn cluster_state(js: &jetstream::Context) -> Option<(String, Vec<(String, bool, u64)>)> {
    let mut stream = js.get_stream(STORE).await.ok()?;
    let info = stream.info().await.ok()?;
    let cluster = info.cluster.clone()?;
    let replicas = cluster
        .replicas
        .iter()
        .map(|peer| (peer.name.clone(), peer.current, peer.lag.unwrap_or(0)))
        .collect();
    Some((cluster.leader?, replicas))
}

async fn leader(js: &jetstream::Context) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((leader, _)) = cluster_state(js).await {
            return leader;
        }
        assert!(Instant::now() < deadline, "no leader for 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn connect(urls: &str) -> NatsStore {
    // The cluster elects its metadata leader first: retry until the store can be created.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match NatsStore::options(urls)
            .name(STORE)
            .replicas(3)
            .connect()
            .await
        {
            Ok(store) => return store,
            Err(error) if Instant::now() < deadline => {
                eprintln!("waiting for the cluster: {error}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(error) => panic!("the cluster did not take the store in 60 s: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_stream_leader_loses_no_acknowledged_event() {
    let Some(mut cluster) = NatsCluster::start("fault") else {
        return;
    };
    let urls = cluster.urls();
    let store = connect(&urls).await;
    assert_eq!(store.replicas(), 3);
    let admin = async_nats::connect(urls.split(',').collect::<Vec<_>>())
        .await
        .expect("an admin connection");
    let js = jetstream::new(admin);

    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|seed| tokio::spawn(writer(store.clone(), seed, stop.clone(), total.clone())))
        .collect();
    let follow = tokio::spawn(follower(store.clone(), stop.clone()));

    let wait_for = |target: usize, what: &'static str| {
        let total = total.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(90);
            while total.load(Ordering::Relaxed) < target {
                assert!(
                    Instant::now() < deadline,
                    "{what}: {} of {target} events acknowledged after 90 s",
                    total.load(Ordering::Relaxed)
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(LOAD, "before the kill").await;
    let killed = leader(&js).await;
    let killed_at = Instant::now();
    cluster.kill(&killed);
    let at_kill = total.load(Ordering::Relaxed);
    // Each writer has at most one append of at most 3 events in flight: past that many, an
    // append sent after the kill was acknowledged.
    wait_for(at_kill + WRITERS * 3 + 1, "after the kill").await;
    let resumed_after = killed_at.elapsed();
    wait_for(at_kill + LOAD, "after the kill").await;
    stop.store(true, Ordering::Relaxed);

    let mut acknowledged = HashMap::new();
    let mut unknown = HashSet::new();
    let mut errors = BTreeMap::new();
    for writer in writers {
        let written = writer.await.expect("a writer");
        acknowledged.extend(written.acknowledged);
        unknown.extend(written.unknown);
        for (kind, count) in written.errors {
            *errors.entry(kind).or_insert(0) += count;
        }
    }
    let followed = follow.await.expect("the follower");
    let log = whole_log(&store).await;
    let new_leader = leader(&js).await;
    println!(
        "killed leader {killed} after {at_kill} events; appends resumed after {resumed_after:?} under {new_leader}; {} acknowledged, {} unknown, {} in the log; errors {errors:?}",
        acknowledged.len(),
        unknown.len(),
        log.len()
    );
    assert_ne!(new_leader, killed);

    // Every acknowledged event exactly once, at the version it was acknowledged at; nothing
    // else but events of unknown outcome; no stream version twice, none skipped.
    let mut in_log: HashMap<Uuid, usize> = HashMap::new();
    let mut versions: HashMap<Uuid, Vec<u64>> = HashMap::new();
    for event in &log {
        *in_log.entry(event.id).or_default() += 1;
        versions
            .entry(event.stream_id)
            .or_default()
            .push(event.version);
        if let Some((stream, version)) = acknowledged.get(&event.id) {
            assert_eq!((event.stream_id, event.version), (*stream, *version));
        } else {
            assert!(
                unknown.contains(&event.id),
                "an event nobody wrote: {event:?}"
            );
        }
    }
    for id in acknowledged.keys() {
        assert_eq!(in_log.get(id), Some(&1), "acknowledged event {id}");
    }
    assert!(in_log.values().all(|count| *count == 1), "an event twice");
    for (stream, versions) in &versions {
        let expected: Vec<u64> = (1..=versions.len() as u64).collect();
        assert_eq!(versions, &expected, "stream {stream}'s versions");
    }
    // The follower, paging through the kill, saw the same log.
    let ids = |events: &[StoredEvent]| events.iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(
        ids(&followed),
        ids(&log),
        "the follower skipped or repeated"
    );

    // The killed node, restarted, catches up: current with no lag, then it leads and the log
    // read from it is the same.
    cluster.restart(&killed);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = cluster_state(&js).await;
        let caught_up = state.as_ref().is_some_and(|(leader, replicas)| {
            leader == &killed
                || replicas
                    .iter()
                    .any(|(name, current, lag)| name == &killed && *current && *lag == 0)
        });
        if caught_up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted node {killed} did not catch up in 60 s: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stepdown = format!("$JS.API.STREAM.LEADER.STEPDOWN.{STORE}");
    let preferred = format!("{{\"placement\":{{\"preferred\":\"{killed}\"}}}}");
    for _ in 0..20 {
        if leader(&js).await == killed {
            break;
        }
        let _ = js
            .client()
            .request(stepdown.clone(), preferred.clone().into())
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(leader(&js).await, killed, "the restarted node never led");
    let from_restarted = whole_log(&store).await;
    assert_eq!(
        ids(&from_restarted),
        ids(&log),
        "the restarted node's log differs"
    );
    store.destroy().await.expect("delete the store");
}
