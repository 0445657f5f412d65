//! The NATS store on a three-node cluster of its own (replicas 3) while the events stream's
//! leader is SIGKILLed during a load of appends: appends resume after the election, every
//! acknowledged event is in the log exactly once, no stream version is written twice, a follower
//! paging the log through the whole run never skips an event, and the killed node, restarted,
//! catches up (it is made the leader and the log read from it is the same).
//!
//! And on another cluster of its own, a follower frozen (SIGSTOP) while appends are
//! acknowledged by the other two nodes, then thawed (SIGCONT) with stream reads waiting for it:
//! reads through that node, whose replica lags for real when it takes them (its own view, its
//! monitoring endpoint, shows the lower last sequence; direct gets through it are answered
//! short), still return every acknowledged event, and a log follower paging through it does
//! not skip.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use eventsource_core::stores::nats::NatsStore;
use eventsource_core::{
    AppendBatch, Error, EventStore, LogQuery, NewEvent, Position, StoredEvent, StreamRange, Uuid,
};
use futures_util::TryStreamExt;

mod support;
use support::nats_cluster::{NatsCluster, Paused};

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
    cluster_state_of(js, STORE).await
}

async fn cluster_state_of(
    js: &jetstream::Context,
    store: &str,
) -> Option<(String, Vec<(String, bool, u64)>)> {
    let mut stream = js.get_stream(store).await.ok()?;
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
    connect_to(urls, STORE).await
}

async fn connect_to(urls: &str, name: &str) -> NatsStore {
    // The cluster elects its metadata leader first: retry until the store can be created.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match NatsStore::options(urls)
            .name(name)
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

const LAG_STORE: &str = "lag";
/// How many times the lag is set up before the test gives up on seeing it.
const LAG_TRIES: usize = 5;
/// Events of the read stream the follower holds before it is frozen (more than a batch), and
/// events appended while it is frozen.
const BEFORE_PAUSE: u64 = 700;
const DURING_PAUSE: u64 = 300;
/// Appends of 100 events of 2 KiB to other streams while the follower is frozen.
const FILLER_APPENDS: usize = 4;
/// Stream reads (and direct gets) waiting for the frozen follower.
const READS: usize = 3;

/// Waits until every replica of the lag store's events stream is current with no lag; returns
/// the leader and a follower.
async fn settled(js: &jetstream::Context) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = cluster_state_of(js, LAG_STORE).await;
        if let Some((leader, replicas)) = &state
            && replicas.len() == 2
            && replicas
                .iter()
                .all(|(_, current, lag)| *current && *lag == 0)
        {
            return (leader.clone(), replicas[0].0.clone());
        }
        assert!(
            Instant::now() < deadline,
            "the replicas did not settle in 60 s: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The sequence of the last event the node behind `client` holds, from its own replica: a
/// direct get on a connection to that node is answered by that node's replica (it prefers its
/// local subscriber of the request subject).
async fn replica_last(client: &async_nats::Client) -> u64 {
    let request = format!("{{\"last_by_subj\":\"{LAG_STORE}.e.>\"}}");
    let reply = client
        .request(format!("$JS.API.DIRECT.GET.{LAG_STORE}"), request.into())
        .await
        .expect("a direct get of the last event");
    reply
        .headers
        .as_ref()
        .and_then(|headers| headers.get("Nats-Sequence"))
        .and_then(|sequence| sequence.as_str().parse().ok())
        .unwrap_or_else(|| panic!("a direct get answer without a sequence: {reply:?}"))
}

/// The last sequence of the lag store's events stream in the node's own view (its monitoring
/// endpoint `/jsz`, answered by that node alone), or `None` if it could not say.
async fn own_last(http: &reqwest::Client, monitor: &str) -> Option<u64> {
    let jsz: serde_json::Value = http
        .get(format!("{monitor}/jsz?streams=true"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    jsz["account_details"]
        .as_array()?
        .iter()
        .flat_map(|account| account["stream_detail"].as_array().into_iter().flatten())
        .find(|stream| stream["name"] == LAG_STORE)?["state"]["last_seq"]
        .as_u64()
}

/// Waits until the node serves direct gets of the lag store's events stream from its own
/// replica: a follower subscribes to them once it is caught up, checking every 2 s after it
/// learns its leader (before that, a direct get through it is answered by another node).
async fn serves_direct_gets(http: &reqwest::Client, monitor: &str) {
    let subject = format!("$JS.API.DIRECT.GET.{LAG_STORE}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let subsz: Option<serde_json::Value> = async {
            http.get(format!("{monitor}/subsz?subs=1&test={subject}"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()
        }
        .await;
        let subscribed = subsz.as_ref().is_some_and(|subsz| {
            subsz["subscriptions_list"]
                .as_array()
                .is_some_and(|subs| subs.iter().any(|sub| sub["subject"] == subject.as_str()))
        });
        if subscribed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the follower did not take direct gets in 60 s: {subsz:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Appends `count` events to `stream` after `version` in batches of at most 100, returning
/// their ids and the last position.
async fn append_events(
    store: &NatsStore,
    category: &str,
    stream: Uuid,
    version: u64,
    count: u64,
    payload: usize,
) -> (Vec<Uuid>, Position) {
    let mut ids = Vec::new();
    let mut position = Position::START;
    let mut at = version;
    while at < version + count {
        let n = (version + count - at).min(100);
        let events: Vec<NewEvent> = (0..n)
            .map(|_| NewEvent::new("Ticked", 1, vec![b'x'; payload]))
            .collect();
        ids.extend(events.iter().map(|event| event.id));
        position = store
            .append(AppendBatch::single_in(category, stream, at, events))
            .await
            .expect("an append acknowledged by the two nodes that run");
        at += n;
    }
    (ids, position)
}

/// Pages the category's log through `store` in pages of 50 until `stop` and then to its end.
async fn page_category(store: NatsStore, category: String, stop: Arc<AtomicBool>) -> Vec<Uuid> {
    let mut seen = Vec::new();
    let mut after = Position::START;
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let page = match store
            .read_log(LogQuery::after(after, 50).categories([category.as_str()]))
            .await
        {
            Ok(page) => page,
            // A request that timed out while the node was frozen: ask again.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        for event in &page.events {
            assert!(event.position > after, "positions go back at {after}");
        }
        after = page.next;
        if page.is_empty() {
            if stopping {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen.extend(page.events.iter().map(|event| event.id));
    }
}

/// One try: a stream the follower holds (more than a batch), the follower frozen (SIGSTOP)
/// while filler of another category and more events of the stream are acknowledged by the
/// other two nodes, stream reads and direct gets sent to it while it is frozen, then the
/// follower thawed (SIGCONT): it takes them while it catches up. A log follower pages the
/// category through the follower all along. Checks that every read returned every
/// acknowledged event and the log follower neither skipped nor repeated one, and returns what
/// was seen of the lag.
async fn lag_once(cluster: &mut NatsCluster, js: &jetstream::Context, attempt: usize) -> Lagged {
    let (leader, follower) = settled(js).await;
    // Writes through the leader's node, reads through the follower's: never through the frozen
    // node for a write, always for a read.
    let writer = connect_to(&cluster.url(&leader), LAG_STORE).await;
    let reader = connect_to(&cluster.url(&follower), LAG_STORE).await;
    let category = format!("Lagged{attempt}");
    let stream = Uuid::now_v7();
    let (mut acknowledged, _) =
        append_events(&writer, &category, stream, 0, BEFORE_PAUSE, 16).await;
    settled(js).await;
    let stop = Arc::new(AtomicBool::new(false));
    let pager = tokio::spawn(page_category(
        reader.clone(),
        category.clone(),
        stop.clone(),
    ));

    let http = reqwest::Client::new();
    let monitor = cluster.monitor_url(&follower);
    serves_direct_gets(&http, &monitor).await;

    // Connections to the follower for direct gets, made while it runs.
    let mut clients = Vec::new();
    for _ in 0..READS {
        clients.push(
            async_nats::connect(cluster.url(&follower))
                .await
                .expect("a connection to the follower"),
        );
    }
    let paused: Paused = cluster.pause(&follower);
    for _ in 0..FILLER_APPENDS {
        append_events(&writer, "Filler", Uuid::now_v7(), 0, 100, 2048).await;
    }
    let (during, last) =
        append_events(&writer, &category, stream, BEFORE_PAUSE, DURING_PAUSE, 16).await;
    acknowledged.extend(during);
    // Requests to the frozen node wait in its socket, and it takes them the moment it runs
    // again, while it catches up: the stream read, a direct get of the last event through the
    // same node (answered by its replica, as the read's batches are), and its own view.
    // Requests to the frozen node wait in its socket, and it takes them the moment it runs
    // again, while it catches up: stream reads, direct gets of the last event through the same
    // node, and its own view (`/jsz`, answered by that node alone). A direct get through a
    // node goes to any replica's subscriber (the queue group picks one at random, not the
    // local one), so there are several of each.
    let reads: Vec<_> = (0..READS)
        .map(|_| {
            let reader = reader.clone();
            tokio::spawn(async move {
                reader
                    .read_stream(stream, StreamRange::all())
                    .try_collect::<Vec<_>>()
                    .await
            })
        })
        .collect();
    let probes: Vec<_> = clients
        .into_iter()
        .map(|client| tokio::spawn(async move { replica_last(&client).await }))
        .collect();
    let viewed = {
        let http = http.clone();
        let monitor = monitor.clone();
        tokio::spawn(async move { own_last(&http, &monitor).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    paused.resume();
    let own = viewed.await.expect("the node's own view");
    let mut answered = Vec::new();
    for probe in probes {
        answered.push(probe.await.expect("a direct get"));
    }
    let mut results = Vec::new();
    for read in reads {
        results.push(
            read.await
                .expect("a stream read")
                .expect("a stream read through the lagging node"),
        );
    }
    stop.store(true, Ordering::SeqCst);
    let paged = pager.await.expect("the log follower");
    println!(
        "try {attempt}: {last} acknowledged; the follower {follower}, thawed with the reads waiting, held {own:?} in its own view; direct gets through it answered {answered:?}"
    );

    // Every acknowledged event, in order, at its version; the log follower neither skipped
    // nor repeated one.
    for events in &results {
        assert_eq!(
            events.iter().map(|event| event.id).collect::<Vec<_>>(),
            acknowledged,
            "a stream read through the lagging node"
        );
        assert!(
            events
                .iter()
                .enumerate()
                .all(|(index, event)| event.version == index as u64 + 1)
        );
    }
    assert_eq!(
        paged, acknowledged,
        "the log follower through the lagging node"
    );
    // The node catches up before the next try (or the end).
    settled(js).await;
    let last = last.get();
    Lagged {
        own: own.is_some_and(|own| own < last),
        short_answer: answered.iter().any(|held| *held < last),
    }
}

/// What one try saw of the follower's lag while the reads ran.
#[derive(Debug, Clone, Copy)]
struct Lagged {
    /// The follower's own view showed a lower last sequence than acknowledged.
    own: bool,
    /// A direct get through it was answered by its lagging replica (a lower last sequence).
    short_answer: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_through_a_lagging_follower_see_every_acknowledged_event() {
    let Some(mut cluster) = NatsCluster::start("lag") else {
        return;
    };
    let urls = cluster.urls();
    let store = connect_to(&urls, LAG_STORE).await;
    let admin = async_nats::connect(urls.split(',').collect::<Vec<_>>())
        .await
        .expect("an admin connection");
    let js = jetstream::new(admin);
    // Until a try shows both (the reads waited for a node whose replica lagged, and one of the
    // direct gets through it was answered by that replica), at most LAG_TRIES tries.
    let mut seen = Vec::new();
    for attempt in 1..=LAG_TRIES {
        let lagged = lag_once(&mut cluster, &js, attempt).await;
        seen.push(lagged);
        if lagged.own && lagged.short_answer {
            break;
        }
    }
    assert!(
        seen.iter().any(|lagged| lagged.own),
        "the follower's own view never lagged when thawed in {LAG_TRIES} tries: {seen:?}"
    );
    store.destroy().await.expect("delete the store");
}
