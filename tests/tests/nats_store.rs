//! The NATS JetStream store against real servers: the conformance suite on a single server and
//! on a three-node cluster (replicas 3), and what is particular to NATS.
//!
//! The servers come from `.ci/nats start` (see `support/nats.rs` for the URLs and variables).
//! Every store gets its own JetStream streams and subject prefix, deleted at the end, so the
//! tests run in parallel with each other and with anything else on the servers.

use std::sync::Arc;
use std::time::Duration;

use eventsource_core::stores::nats::NatsStore;
use eventsource_core::testing::conformance;
use eventsource_core::{
    AppendBatch, Error, EventStore, LogQuery, NewEvent, Position, StreamAppend, StreamRange, Uuid,
};
use futures_util::TryStreamExt;

mod support;
use support::nats::Servers;

async fn conformance_on(servers: Servers, tag: &'static str, cases: u32) {
    let servers = Arc::new(servers);
    let factory = servers.clone();
    let report = conformance::try_run_with(
        move || {
            let servers = factory.clone();
            async move { servers.store(tag).await }
        },
        conformance::ModelCases::new(cases),
    )
    .await;
    println!("{report}");
    for (check, took) in &report.passed {
        println!("  ok {check} ({took:?})");
    }
    servers.finish().await;
    report.assert_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite_on_a_single_server() {
    let Some(servers) = Servers::single().await else {
        return;
    };
    conformance_on(servers, "conf", 16).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite_on_a_three_node_cluster() {
    let Some(servers) = Servers::cluster().await else {
        return;
    };
    conformance_on(servers, "conf3", 8).await;
}

/// The single server and a fresh store on it, or `None` (the test is skipped).
async fn single_store(tag: &str) -> Option<(Servers, NatsStore)> {
    let servers = Servers::single().await?;
    let store = servers.store(tag).await;
    Some((servers, store))
}

/// A new stream's first event, `Opened`, in `category`.
fn opening(category: &str, id: Uuid) -> AppendBatch {
    AppendBatch::single_in(category, id, 0, vec![event("Opened")])
}

fn event(name: &str) -> NewEvent {
    NewEvent::new(name, 1, b"{}".to_vec())
}

/// Two writers creating the same stream under two categories at once: the category is part of
/// the subject, so only the server's check on the stream's wildcard subject
/// (`Nats-Expected-Last-Subject-Sequence-Subject`) keeps them from both writing version 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_with_two_categories_never_both_write_version_one() {
    let Some((servers, first)) = single_store("categories").await else {
        return;
    };
    let second = servers.reopen(&first).await;
    let mut refused_by_the_server = 0;
    for _ in 0..100 {
        let id = Uuid::now_v7();
        let a = tokio::spawn({
            let store = first.clone();
            async move { store.append(opening("Left", id)).await }
        });
        let b = tokio::spawn({
            let store = second.clone();
            async move { store.append(opening("Right", id)).await }
        });
        let outcomes = [a.await.unwrap(), b.await.unwrap()];
        let written = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(written, 1, "exactly one writer wins: {outcomes:?}");
        for outcome in &outcomes {
            match outcome {
                Ok(_) => {}
                // The loser read the winner's event before publishing…
                Err(Error::Unsupported { .. }) => {}
                // …or published too and the server refused it.
                Err(Error::Conflict {
                    expected: 0,
                    actual: 1,
                    ..
                }) => refused_by_the_server += 1,
                Err(other) => panic!("unexpected error: {other}"),
            }
        }
        assert_eq!(first.stream_version(id).await.unwrap(), 1);
        let events: Vec<_> = first
            .read_stream(id, StreamRange::all())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
    }
    println!("{refused_by_the_server} of 100 races were refused by the server's check");
    servers.finish().await;
}

/// A reader of one connection is woken by an append through another (the wake-up consumer),
/// not only by its own appends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_is_woken_by_another_connections_append() {
    let Some((servers, writer)) = single_store("wake").await else {
        return;
    };
    let reader = servers.reopen(&writer).await;
    let mut wake = reader.wake_ups();
    assert!(wake.is_live());
    let id = Uuid::now_v7();
    let mut woken = false;
    // The consumer starts in the background: append until a wake-up arrives.
    for version in 0..50 {
        wake.mark_seen();
        writer
            .append(AppendBatch::single(id, version, vec![event("Ticked")]))
            .await
            .unwrap();
        if wake.wait(Duration::from_secs(2)).await {
            woken = true;
            break;
        }
    }
    assert!(woken, "no wake-up from another connection's appends");
    servers.finish().await;
}

/// A stream appended under one category can't later be appended under another: the store says
/// so with a typed error and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_keeps_its_category() {
    let Some((servers, store)) = single_store("keep").await else {
        return;
    };
    let id = Uuid::now_v7();
    store.append(opening("Account", id)).await.unwrap();
    let moved = store
        .append(AppendBatch::single_in(
            "Order",
            id,
            1,
            vec![event("Placed")],
        ))
        .await;
    assert!(matches!(moved, Err(Error::Unsupported { .. })), "{moved:?}");
    assert_eq!(store.stream_version(id).await.unwrap(), 1);
    servers.finish().await;
}

/// On a server without atomic batch publish (Debian's nats-server 2.9 at
/// `EVENTSOURCE_NATS_OLD_URL`, default `nats://127.0.0.1:4222`), one event appends and reads
/// back; several events, several streams or a tracking record are refused with
/// `Error::Unsupported` and nothing is written. Skipped (also in CI) where no such server runs:
/// the project's own servers are all new enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_server_refuses_what_it_cannot_write_atomically() {
    let url = std::env::var("EVENTSOURCE_NATS_OLD_URL")
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let connect = NatsStore::options(&url)
        .name(support::nats::unique_name("old"))
        .connect();
    let store = match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(store)) if !store.supports_atomic_batches() => store,
        Ok(Ok(store)) => {
            eprintln!(
                "skipping: the server at {url} is {}, which has atomic batches",
                store.server_version()
            );
            let _ = store.destroy().await;
            return;
        }
        Ok(Err(error)) => return eprintln!("skipping: no old NATS server at {url}: {error}"),
        Err(_) => return eprintln!("skipping: no old NATS server at {url} answered in 5 s"),
    };
    let id = Uuid::now_v7();
    let other = Uuid::now_v7();
    let position = store.append(opening("Account", id)).await.unwrap();
    assert_eq!(store.last_position().await.unwrap(), position);
    // No batched direct get before 2.11: reads ask the leader per event, and still work.
    assert!(!store.batched_reads(), "{}", store.server_version());
    let read: Vec<_> = store
        .read_stream(id, StreamRange::all())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        read.iter().map(|e| e.position).collect::<Vec<_>>(),
        [position]
    );
    let page = store.read_log(LogQuery::from_start(10)).await.unwrap();
    assert_eq!(page.events.len(), 1);
    let refused = [
        AppendBatch::single_in("Account", id, 1, vec![event("A"), event("B")]),
        AppendBatch::single_in("Account", id, 1, vec![event("A")]).tracked("t", Position::new(1)),
        AppendBatch {
            streams: vec![
                StreamAppend {
                    stream_id: id,
                    category: "Account".into(),
                    expected_version: 1,
                    events: vec![event("A")],
                },
                StreamAppend {
                    stream_id: other,
                    category: "Account".into(),
                    expected_version: 0,
                    events: vec![event("A")],
                },
            ],
            tracking: None,
        },
    ];
    for batch in refused {
        let outcome = store.append(batch.clone()).await;
        assert!(
            matches!(outcome, Err(Error::Unsupported { .. })),
            "{batch:?}: {outcome:?}"
        );
    }
    assert_eq!(store.stream_version(id).await.unwrap(), 1);
    assert_eq!(store.stream_version(other).await.unwrap(), 0);
    assert_eq!(store.last_position().await.unwrap(), position);
    store.destroy().await.unwrap();
}

/// `events` events named `Even`/`Odd` by version, appended to `id` in category `Long` in atomic
/// batches of at most 600, with one event of another stream of the same category between them
/// (so the stream's subject filter has something to skip).
async fn long_stream(store: &NatsStore, id: Uuid, events: u64) {
    let other = Uuid::now_v7();
    let mut version = 0;
    let mut other_version = 0;
    while version < events {
        let count = (events - version).min(600);
        let batch = (version + 1..=version + count)
            .map(|v| event(if v % 2 == 0 { "Even" } else { "Odd" }))
            .collect();
        store
            .append(AppendBatch::single_in("Long", id, version, batch))
            .await
            .unwrap();
        version += count;
        store
            .append(AppendBatch::single_in(
                "Long",
                other,
                other_version,
                vec![event("Other")],
            ))
            .await
            .unwrap();
        other_version += 1;
    }
}

fn versions(events: &[eventsource_core::StoredEvent]) -> Vec<u64> {
    events.iter().map(|event| event.version).collect()
}

/// Reads of more events than one batch (500): whole, from a version, up to a version, with a
/// limit, backwards, and the log in pages with category and name filters, on the single server
/// and on the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_longer_than_one_batch() {
    for servers in [Servers::single().await, Servers::cluster().await] {
        let Some(servers) = servers else {
            return;
        };
        let store = servers.store("long").await;
        assert!(
            store.batched_reads(),
            "nats-server {}",
            store.server_version()
        );
        let id = Uuid::now_v7();
        long_stream(&store, id, 1234).await;
        let read = |range: StreamRange| {
            let store = store.clone();
            async move {
                store
                    .read_stream(id, range)
                    .try_collect::<Vec<_>>()
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            versions(&read(StreamRange::all()).await),
            (1..=1234).collect::<Vec<_>>()
        );
        assert_eq!(
            versions(&read(StreamRange::all().from(100).to(1100)).await),
            (100..=1100).collect::<Vec<_>>()
        );
        assert_eq!(
            versions(&read(StreamRange::all().from(700).limit(520)).await),
            (700..=1219).collect::<Vec<_>>()
        );
        assert_eq!(
            versions(&read(StreamRange::all().backwards().limit(510)).await),
            (725..=1234).rev().collect::<Vec<_>>()
        );
        // The log of the category in pages of 700: the stream's events and the other stream's
        // three, in position order, each once.
        let mut log = Vec::new();
        let mut after = Position::new(0);
        loop {
            let page = store
                .read_log(LogQuery::after(after, 700).categories(["Long"]))
                .await
                .unwrap();
            if page.events.is_empty() {
                break;
            }
            after = page.next;
            log.extend(page.events);
        }
        assert_eq!(log.len(), 1234 + 3);
        assert!(log.windows(2).all(|w| w[0].position < w[1].position));
        assert_eq!(
            versions(
                &log.iter()
                    .filter(|event| event.stream_id == id)
                    .cloned()
                    .collect::<Vec<_>>()
            ),
            (1..=1234).collect::<Vec<_>>()
        );
        // Only the `Even` events, in one page bigger than the batch.
        let even = store
            .read_log(LogQuery::from_start(1000).names(["Even"]))
            .await
            .unwrap();
        assert_eq!(
            versions(&even.events),
            (1..=1234).filter(|v| v % 2 == 0).collect::<Vec<_>>()
        );
        servers.finish().await;
    }
}

/// Another connection to `store`, with nothing known of where its events are.
async fn reconnect(servers: &Servers, store: &NatsStore) -> NatsStore {
    NatsStore::options(&servers.urls)
        .name(store.name())
        .replicas(servers.replicas)
        .connect()
        .await
        .expect("connect to the store again")
}

/// What `range` of a stream of versions `1..=len` holds, in the order a read hands it out.
fn expected(len: u64, range: StreamRange) -> Vec<u64> {
    let top = range.to.map_or(len, |to| to.min(len));
    let mut versions: Vec<u64> = (range.from.max(1)..=top).collect();
    if range.backwards {
        versions.reverse();
    }
    versions.truncate(range.limit.unwrap_or(usize::MAX));
    versions
}

/// Reads from a version and backwards reads with a limit on a stream longer than a batch (500),
/// through the store that wrote it (which knows where some events are), through a fresh
/// connection (which knows nothing and searches), and from snapshots: one whose message keeps
/// the sequence of its event, and one whose kept sequence is wrong (it must be noticed, not
/// trusted).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_from_a_version_and_backwards_on_a_long_stream() {
    for servers in [Servers::single().await, Servers::cluster().await] {
        let Some(servers) = servers else {
            return;
        };
        let store = servers.store("from").await;
        let id = Uuid::now_v7();
        long_stream(&store, id, 1234).await;
        let fresh = reconnect(&servers, &store).await;
        let mut ranges = Vec::new();
        for from in [
            1, 2, 17, 499, 500, 501, 617, 1000, 1200, 1218, 1234, 1235, 2000,
        ] {
            ranges.push(StreamRange::all().from(from));
            ranges.push(StreamRange::all().from(from).limit(3));
            ranges.push(StreamRange::all().from(from).to(from + 520));
        }
        for limit in [1, 3, 17, 499, 500, 501, 600, 1300] {
            ranges.push(StreamRange::all().backwards().limit(limit));
            ranges.push(StreamRange::all().backwards().limit(limit).to(900));
            ranges.push(StreamRange::all().backwards().limit(limit).from(450));
        }
        ranges.push(StreamRange::all().backwards().from(1100));
        for reader in [&store, &fresh, &reconnect(&servers, &store).await] {
            for range in &ranges {
                let events: Vec<_> = reader.read_stream(id, *range).try_collect().await.unwrap();
                assert_eq!(versions(&events), expected(1234, *range), "{range:?}");
            }
        }

        // A snapshot saved right after a read that ended at its version keeps that event's
        // sequence; a store that knows nothing else reads from it.
        let to_1000: Vec<_> = store
            .read_stream(id, StreamRange::all().to(1000))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(to_1000.len(), 1000);
        let snapshot = |version: u64| eventsource_core::Snapshot {
            stream_id: id,
            version,
            aggregate: "Long".into(),
            fingerprint: 7,
            state: b"{}".to_vec(),
            recorded_at: std::time::SystemTime::now(),
        };
        store.save_snapshot(snapshot(1000)).await.unwrap();
        let after_restart = reconnect(&servers, &store).await;
        let loaded = after_restart.load_snapshot(id, None).await.unwrap();
        assert_eq!(loaded.map(|s| s.version), Some(1000));
        let tail: Vec<_> = after_restart
            .read_stream(id, StreamRange::all().from(1000))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(versions(&tail), (1000..=1234).collect::<Vec<_>>());

        // A snapshot message (as the store writes them) whose kept sequence is another event's
        // (version 5's), and one whose sequence is past the end of the stream.
        let client = async_nats::connect(servers.urls.split(',').collect::<Vec<_>>())
            .await
            .unwrap();
        let js = async_nats::jetstream::new(client);
        for (version, sequence) in [(900_u64, to_1000[4].position.get()), (800, u64::MAX / 2)] {
            let header = serde_json::json!({
                "stream": id,
                "version": version,
                "aggregate": "Long",
                "fingerprint": 7,
                "recorded_at": 0,
                "sequence": sequence,
            })
            .to_string();
            let mut body = (header.len() as u32).to_be_bytes().to_vec();
            body.extend_from_slice(header.as_bytes());
            body.extend_from_slice(b"{}");
            js.publish(format!("{}.s.{id}.{version}", store.name()), body.into())
                .await
                .unwrap()
                .await
                .unwrap();
            let misled = reconnect(&servers, &store).await;
            let loaded = misled.load_snapshot(id, Some(version)).await.unwrap();
            assert_eq!(loaded.map(|s| s.version), Some(version));
            for range in [
                StreamRange::all().from(version),
                StreamRange::all().from(version + 3).limit(2),
            ] {
                let events: Vec<_> = misled.read_stream(id, range).try_collect().await.unwrap();
                assert_eq!(versions(&events), expected(1234, range), "{range:?}");
            }
        }
        servers.finish().await;
    }
}

/// Another connection to `store` through one node of the cluster only. Its batched reads
/// (direct gets) are answered by any replica: the request subject's queue group picks one of
/// the three nodes' subscribers at random, not the local one (a follower subscribes once it has
/// caught up after the stream was created).
async fn through_node(url: &str, store: &NatsStore) -> NatsStore {
    NatsStore::options(url)
        .name(store.name())
        .replicas(3)
        .connect()
        .await
        .expect("connect to the store through one node")
}

/// On the cluster, while three writers append (single events and atomic batches of three), a
/// follower pages the log through each node in turn in pages of 50: what it collects is the
/// log read afterwards, position for position (no page skipped or repeated an event), and every
/// stream read during the race has consecutive versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_paging_the_log_during_appends_never_skips() {
    let Some(servers) = Servers::cluster().await else {
        return;
    };
    let store = servers.store("race").await;
    let nodes: Vec<String> = servers.urls.split(',').map(str::to_owned).collect();
    let mut readers = Vec::new();
    for url in &nodes {
        readers.push(through_node(url, &store).await);
    }
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..3u64 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let id = Uuid::now_v7();
            let mut version = 0;
            for round in 0..60u64 {
                let count = if (round + writer) % 2 == 0 { 1 } else { 3 };
                let batch = (0..count).map(|_| event("Raced")).collect();
                store
                    .append(AppendBatch::single_in("Race", id, version, batch))
                    .await
                    .unwrap();
                version += count;
            }
            (id, version)
        }));
    }
    let follower = {
        let readers = readers.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut after = Position::new(0);
            let mut turn = 0;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let reader = &readers[turn % readers.len()];
                turn += 1;
                let page = reader.read_log(LogQuery::after(after, 50)).await.unwrap();
                let empty = page.events.is_empty();
                assert!(page.next >= after);
                after = page.next;
                seen.extend(page.events.into_iter().map(|event| event.position));
                if finished && empty {
                    return (seen, turn);
                }
            }
        })
    };
    let streams = {
        let reader = readers[nodes.len() - 1].clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut reads = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                // A stream read racing the appends: its versions follow each other (the store
                // checks, `Error::Corrupt` otherwise).
                let log = reader.read_log(LogQuery::from_start(1)).await.unwrap();
                if let Some(first) = log.events.first() {
                    let events: Vec<_> = reader
                        .read_stream(first.stream_id, StreamRange::all())
                        .try_collect()
                        .await
                        .unwrap();
                    assert_eq!(
                        versions(&events),
                        (1..=events.len() as u64).collect::<Vec<_>>()
                    );
                    reads += 1;
                }
            }
            reads
        })
    };
    let mut written = Vec::new();
    for writer in writers {
        written.push(writer.await.unwrap());
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (seen, pages) = follower.await.unwrap();
    let stream_reads = streams.await.unwrap();
    let mut log = Vec::new();
    let mut after = Position::new(0);
    loop {
        let page = store.read_log(LogQuery::after(after, 1000)).await.unwrap();
        if page.events.is_empty() {
            break;
        }
        after = page.next;
        log.extend(page.events.into_iter().map(|event| event.position));
    }
    let total: u64 = written.iter().map(|(_, version)| version).sum();
    assert_eq!(log.len() as u64, total);
    assert_eq!(
        seen, log,
        "the follower's pages skipped or repeated an event"
    );
    for (id, version) in written {
        let events: Vec<_> = store
            .read_stream(id, StreamRange::all())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(versions(&events), (1..=version).collect::<Vec<_>>());
    }
    println!(
        "{total} events; the follower read them in {pages} pages; {stream_reads} racing stream reads"
    );
    servers.finish().await;
}

/// Read-your-writes through followers: after each acknowledged append (through any node), a
/// stream read and a log read through each node's own connection (their direct gets answered by
/// any of the three replicas, two of them followers) include it. A plain direct get of the new message through
/// the same nodes shows how often a replica had not applied it yet: those are the reads the
/// store must finish at the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_acknowledged_append_is_read_back_through_every_node() {
    let Some(servers) = Servers::cluster().await else {
        return;
    };
    let store = servers.store("ryw").await;
    let nodes: Vec<String> = servers.urls.split(',').map(str::to_owned).collect();
    let mut readers = Vec::new();
    let mut raw = Vec::new();
    for url in &nodes {
        readers.push(through_node(url, &store).await);
        let client = async_nats::connect(url.as_str()).await.unwrap();
        let stream = async_nats::jetstream::new(client)
            .get_stream(store.name())
            .await
            .unwrap();
        raw.push(stream);
    }
    // Other writers keep the replicas busy, so that they are sometimes behind.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..2 {
        let store = store.clone();
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let id = Uuid::now_v7();
            let mut version = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let batch = (0..20).map(|_| event("Load")).collect();
                store
                    .append(AppendBatch::single_in("Load", id, version, batch))
                    .await
                    .unwrap();
                version += 20;
            }
        }));
    }
    let id = Uuid::now_v7();
    let mut not_yet_on_a_replica = 0;
    for version in 0..150u64 {
        let before = store.last_position().await.unwrap();
        let position = store
            .append(AppendBatch::single_in(
                "Ryw",
                id,
                version,
                vec![event("Wrote")],
            ))
            .await
            .unwrap();
        for (reader, raw) in readers.iter().zip(&raw) {
            if raw.direct_get(position.get()).await.is_err() {
                not_yet_on_a_replica += 1;
            }
            let events: Vec<_> = reader
                .read_stream(id, StreamRange::all())
                .try_collect()
                .await
                .unwrap();
            assert_eq!(events.len() as u64, version + 1);
            assert_eq!(events.last().map(|event| event.position), Some(position));
            let page = reader
                .read_log(LogQuery::after(before, 1000).categories(["Ryw"]))
                .await
                .unwrap();
            assert!(
                page.events.iter().any(|event| event.position == position),
                "the log read after the append lacks it: {page:?}"
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for writer in load {
        writer.await.unwrap();
    }
    println!(
        "{not_yet_on_a_replica} of {} direct gets right after an acknowledgement found no message",
        150 * nodes.len()
    );
    servers.finish().await;
}
