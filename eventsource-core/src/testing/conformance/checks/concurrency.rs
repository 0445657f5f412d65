//! Concurrent writers and a follower reading while they commit.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Barrier;
use uuid::Uuid;

use super::super::CheckResult;
use super::super::support::{
    Context, Expected, check_page, compare, ensure, ensure_eq, event, events, fail, read,
    read_whole_log,
};
use super::named;
use crate::error::Error;
use crate::persistence::position::Position;
use crate::persistence::record::{AppendBatch, LogQuery, StreamRange};
use crate::persistence::store::EventStore;

/// Several tasks append concurrently, each to its own stream: nothing is lost or duplicated,
/// each event is once in the log, and each stream reads back in order.
pub async fn concurrent_writers_on_distinct_streams<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("concurrent_writers_on_distinct_streams", async move {
        const TASKS: usize = 4;
        const APPENDS: u64 = 200;
        let streams: Vec<Uuid> = (0..TASKS).map(|_| Uuid::now_v7()).collect();
        let start = Arc::new(Barrier::new(TASKS));
        let mut tasks = Vec::new();
        for (t, stream) in streams.iter().copied().enumerate() {
            let store = Arc::clone(&store);
            let start = Arc::clone(&start);
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                let mut returned = Vec::new();
                let mut written = Vec::new();
                for i in 0..APPENDS {
                    let e = event("Written", format!("task {t} append {i}"));
                    written.push(e.clone());
                    let position = store
                        .append(AppendBatch::single(stream, i, vec![e]))
                        .await
                        .context(format_args!(
                            "task {t}: appending event {i} to its own stream {stream}"
                        ))?;
                    returned.push(position);
                }
                Ok::<_, String>((returned, written))
            }));
        }
        let mut returned = HashMap::new();
        let mut written = HashMap::new();
        for (t, task) in tasks.into_iter().enumerate() {
            match task.await {
                Ok(Ok((positions, events))) => {
                    returned.insert(t, positions);
                    written.insert(t, events);
                }
                Ok(Err(message)) => fail!("{message}"),
                Err(join) => fail!("writer task {t} failed: {join}"),
            }
        }
        let log = read_whole_log(&*store, 97).await?;
        ensure_eq!(
            log.len(),
            TASKS * APPENDS as usize,
            "events in the log after {TASKS} tasks x {APPENDS} appends"
        );
        let mut seen = HashSet::new();
        for e in &log {
            ensure!(
                seen.insert((e.stream_id, e.version)),
                "stream {} version {} is in the log twice",
                e.stream_id,
                e.version
            );
        }
        for (t, stream) in streams.iter().enumerate() {
            let events = read(&*store, *stream, StreamRange::all()).await?;
            let expected = Expected::appended(
                *stream,
                0,
                written.get(&t).map(Vec::as_slice).unwrap_or_default(),
            );
            compare(&events, &expected, &format!("reading task {t}'s stream"))?;
            let positions: Vec<Position> = events.iter().map(|e| e.position).collect();
            ensure_eq!(
                positions,
                returned.get(&t).cloned().unwrap_or_default(),
                "task {t}: the positions its appends returned vs. its events' positions"
            );
        }
        Ok(())
    })
    .await
}

/// Tasks race to append to one stream. In lock-step rounds exactly one wins each round and the
/// others get a Conflict with the right versions; in a free-for-all the successes are contiguous
/// versions, and every loser is a Conflict whose event was not written.
pub async fn concurrent_writers_on_one_stream<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("concurrent_writers_on_one_stream", async move {
        const TASKS: usize = 4;
        const ROUNDS: u64 = 25;
        const ATTEMPTS: usize = 50;
        let stream = Uuid::now_v7();

        // Lock-step rounds: everyone appends at version `round` at once.
        let barrier = Arc::new(Barrier::new(TASKS));
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let store = Arc::clone(&store);
            let barrier = Arc::clone(&barrier);
            tasks.push(tokio::spawn(async move {
                let mut wins = Vec::new();
                for round in 0..ROUNDS {
                    barrier.wait().await;
                    let e = event("Raced", format!("round {round} task {t}"));
                    match store.append(AppendBatch::single(stream, round, vec![e])).await {
                        Ok(_) => wins.push(round),
                        Err(Error::Conflict {
                            stream: s,
                            expected,
                            actual,
                        }) if s == stream && expected == round && actual == round + 1 => {}
                        other => {
                            return Err(format!(
                                "round {round}, task {t}: appending at version {round}: expected success or Conflict {{ stream: {stream}, expected: {round}, actual: {} }}, got {other:?}",
                                round + 1
                            ));
                        }
                    }
                    barrier.wait().await;
                }
                Ok(wins)
            }));
        }
        let mut winners: HashMap<u64, usize> = HashMap::new();
        for (t, task) in tasks.into_iter().enumerate() {
            match task.await {
                Ok(Ok(wins)) => {
                    for round in wins {
                        if let Some(other) = winners.insert(round, t) {
                            fail!("round {round}: both task {other} and task {t} appended at version {round}");
                        }
                    }
                }
                Ok(Err(message)) => fail!("{message}"),
                Err(join) => fail!("racing task {t} failed: {join}"),
            }
        }
        let events = read(&*store, stream, StreamRange::all()).await?;
        ensure_eq!(
            events.len() as u64,
            ROUNDS,
            "events after {ROUNDS} lock-step rounds (one winner each)"
        );
        for round in 0..ROUNDS {
            let Some(t) = winners.get(&round) else {
                fail!("round {round}: no task won (every append at version {round} failed)");
            };
            let e = &events[round as usize];
            ensure_eq!(e.version, round + 1, "version of round {round}'s event");
            ensure!(
                e.payload == format!("round {round} task {t}").into_bytes(),
                "round {round}: version {} holds {:?}, not the winner's (task {t}) event",
                e.version,
                String::from_utf8_lossy(&e.payload)
            );
        }

        // Free-for-all: read the version, try to append, repeat.
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let mut won = Vec::new();
                let mut lost = Vec::new();
                for i in 0..ATTEMPTS {
                    let seen = store
                        .stream_version(stream)
                        .await
                        .context(format_args!("task {t}: stream_version"))?;
                    let payload = format!("free task {t} attempt {i}");
                    let e = event("Raced", payload.clone());
                    match store.append(AppendBatch::single(stream, seen, vec![e])).await {
                        Ok(_) => won.push(payload),
                        Err(Error::Conflict {
                            stream: s,
                            expected,
                            actual,
                        }) if s == stream && expected == seen && actual > seen => {
                            lost.push(payload)
                        }
                        other => {
                            return Err(format!(
                                "task {t}, attempt {i}: appending at version {seen}: expected success or a Conflict naming stream {stream}, expected {seen} and an actual version above it, got {other:?}"
                            ));
                        }
                    }
                    tokio::task::yield_now().await;
                }
                Ok((won, lost))
            }));
        }
        let mut won = HashSet::new();
        let mut lost = HashSet::new();
        for (t, task) in tasks.into_iter().enumerate() {
            match task.await {
                Ok(Ok((w, l))) => {
                    won.extend(w);
                    lost.extend(l);
                }
                Ok(Err(message)) => fail!("{message}"),
                Err(join) => fail!("racing task {t} failed: {join}"),
            }
        }
        let events = read(&*store, stream, StreamRange::all()).await?;
        let free = events.get(ROUNDS as usize..).unwrap_or_default();
        ensure_eq!(
            free.len(),
            won.len(),
            "events written in the free-for-all vs. appends that succeeded"
        );
        for (i, e) in events.iter().enumerate() {
            ensure_eq!(e.version, i as u64 + 1, "versions must be contiguous");
        }
        let mut written = HashSet::new();
        for e in free {
            let payload = String::from_utf8_lossy(&e.payload).into_owned();
            ensure!(
                !lost.contains(&payload),
                "version {} holds {payload:?}, whose append failed with a Conflict",
                e.version
            );
            ensure!(
                won.contains(&payload),
                "version {} holds {payload:?}, which no successful append wrote",
                e.version
            );
            ensure!(
                written.insert(payload.clone()),
                "{payload:?} is stored twice"
            );
        }
        Ok(())
    })
    .await
}

/// A follower pages the log while writers commit; afterwards what it saw is exactly the final
/// log: no event skipped, none repeated, in order.
pub async fn follower_never_skips_concurrent_commits<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("follower_never_skips_concurrent_commits", async move {
        const WRITERS: usize = 3;
        const APPENDS: u64 = 100;
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut writers = Vec::new();
        for t in 0..WRITERS {
            let store = Arc::clone(&store);
            let done = Arc::clone(&done);
            writers.push(tokio::spawn(async move {
                let stream = Uuid::now_v7();
                for i in 0..APPENDS {
                    let n = (i % 3 + 1) as usize;
                    let version = store
                        .stream_version(stream)
                        .await
                        .context(format_args!("writer {t}: stream_version"))?;
                    store
                        .append(AppendBatch::single(
                            stream,
                            version,
                            events("Followed", &format!("w{t}-{i}"), n),
                        ))
                        .await
                        .context(format_args!("writer {t}: append {i}"))?;
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok::<_, String>(())
            }));
        }
        let follower = {
            let store = Arc::clone(&store);
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let mut seen: Vec<(Position, Uuid, u64)> = Vec::new();
                let mut after = Position::START;
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                loop {
                    let finished = done.load(std::sync::atomic::Ordering::SeqCst) == WRITERS;
                    let page = store
                        .read_log(LogQuery::after(after, 7))
                        .await
                        .context(format_args!("follower: reading the log after {after}"))?;
                    check_page(&page, after, 7, "the follower reading the log")?;
                    let found = !page.is_empty();
                    after = page.next;
                    seen.extend(page.events.iter().map(|e| (e.position, e.stream_id, e.version)));
                    match found {
                        true => {}
                        false if finished => {
                            // Nothing more after the writers finished, and nothing pending.
                            let last = store
                                .last_position()
                                .await
                                .context("follower: last_position")?;
                            if after >= last {
                                return Ok(seen);
                            }
                        }
                        false => {
                            if tokio::time::Instant::now() > deadline {
                                return Err("the follower saw no new events for a minute".to_owned());
                            }
                            tokio::task::yield_now().await;
                        }
                    }
                }
            })
        };
        for (t, writer) in writers.into_iter().enumerate() {
            match writer.await {
                Ok(Ok(())) => {}
                Ok(Err(message)) => fail!("{message}"),
                Err(join) => fail!("writer {t} failed: {join}"),
            }
        }
        let seen = match follower.await {
            Ok(Ok(seen)) => seen,
            Ok(Err(message)) => fail!("{message}"),
            Err(join) => fail!("the follower failed: {join}"),
        };
        let log: Vec<(Position, Uuid, u64)> = read_whole_log(&*store, 1000)
            .await?
            .iter()
            .map(|e| (e.position, e.stream_id, e.version))
            .collect();
        ensure_eq!(
            seen.len(),
            log.len(),
            "events the follower saw vs. events in the final log"
        );
        if let Some(i) = (0..log.len()).find(|&i| seen[i] != log[i]) {
            fail!(
                "the follower's event #{i} is (position, stream, version) {:?}, but the final log has {:?} there: the follower skipped or reordered an event",
                seen[i],
                log[i]
            );
        }
        Ok(())
    })
    .await
}
