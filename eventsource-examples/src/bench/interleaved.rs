//! Stores written round robin (issue 16), as concurrent aggregates write them: each round
//! appends one event to every stream, in multi-stream atomic appends, so a stream's events are
//! spread through the store instead of lying together as W3's one-go stream does.
//!
//! - **W3-interleaved**: on a fresh store of the same kind (by default 1,000,000 events over
//!   2,000 streams, so 500 events per stream), one stream replayed from a cold repository
//!   (`default`, the median over W3's runs), beside the raw engine reading the same stream from
//!   the store's own table (`raw-read`, store shape) and from a table of its own clustered by
//!   stream and version, written round robin too (`raw-best-read`, see
//!   [`raw_best`](super::raw_best)); then that store's whole log read in pages (`log-read`, W4
//!   on it) beside the raw engine's paged read of the same table (`raw-log-read`), so the
//!   layout's trade-off between stream reads and log reads shows both ways. `write` is the
//!   round-robin write itself.
//! - **`--prefill N`**: the store under test filled the same way with N events before the
//!   workloads run, so W1 and W3 are measured on a large store, not only on a fresh one (every
//!   figure after it carries `prefilled`).
//!
//! Sizes are rounded down to whole rounds (every stream holds as many events).

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventsource_core::{Aggregate, AppendBatch, EventStore, StreamAppend, Uuid, new_id};

use super::figure::Figure;
use super::raw_best::{BestTable, EventRows};
use super::workloads::{Accounts, check, deposited, median, opened, read_log, replay};
use super::{BenchResult, BenchStore, Report, Sizes, rss};
use crate::bank::{BankAccount, BankAccountEvent};

/// The most events one NATS append takes (`eventsource_core`'s NATS `MAX_BATCH_MESSAGES`).
const NATS_EVENTS_PER_APPEND: usize = 1000;

/// On NATS, W3-interleaved runs up to this many events; beyond, writing the store takes
/// minutes (appends of at most [`NATS_EVENTS_PER_APPEND`] events), so it is skipped with a note.
const NATS_MAX_INTERLEAVED_EVENTS: u64 = 100_000;

/// Events per append on a store: a whole round, but at most what one NATS append takes.
fn events_per_append(store: &str) -> usize {
    if store.starts_with("nats") {
        NATS_EVENTS_PER_APPEND
    } else {
        usize::MAX
    }
}

/// What a round-robin write made.
#[derive(Debug)]
pub(super) struct RoundRobin {
    /// The streams, in the order each round writes them.
    pub(super) streams: Vec<Uuid>,
    /// Events in each stream.
    pub(super) per_stream: u64,
    /// Wall-clock seconds of the write.
    pub(super) seconds: f64,
}

impl RoundRobin {
    fn events(&self) -> u64 {
        self.streams.len() as u64 * self.per_stream
    }
}

/// Writes `per_stream` events to each of `streams` new accounts round robin: round 0 opens
/// every account, each later round deposits once on every account, each round in appends of
/// at most `per_append` events (one event per stream), encoded as the repository encodes them.
pub(super) async fn write_round_robin(
    accounts: &Accounts,
    streams: u64,
    per_stream: u64,
    per_append: usize,
) -> BenchResult<RoundRobin> {
    let ids: Vec<Uuid> = (0..streams).map(|_| new_id()).collect();
    let open = [BankAccountEvent::from(opened())];
    let deposit = [BankAccountEvent::from(deposited())];
    let start = Instant::now();
    for round in 0..per_stream {
        let events = if round == 0 { &open } else { &deposit };
        for chunk in ids.chunks(per_append.max(1)) {
            let mut batch = AppendBatch::default();
            for id in chunk {
                batch.streams.push(StreamAppend {
                    stream_id: *id,
                    category: BankAccount::NAME.to_owned(),
                    expected_version: round,
                    events: accounts.encode(*id, round, events).await?,
                });
            }
            accounts.store().append(batch).await?;
        }
    }
    Ok(RoundRobin {
        streams: ids,
        per_stream,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// `--prefill`: fills the store under test with `sizes.prefill` events (rounded down to whole
/// rounds) over `sizes.prefill_streams` accounts, round robin; from then on every figure
/// carries `prefilled`. Returns the events written.
pub(super) async fn prefill(
    store: &str,
    accounts: &Accounts,
    sizes: &Sizes,
    report: &mut Report,
) -> BenchResult<u64> {
    if sizes.prefill == 0 {
        return Ok(0);
    }
    let streams = sizes.prefill_streams.clamp(1, sizes.prefill);
    rss::reset_peak();
    let written = write_round_robin(
        accounts,
        streams,
        sizes.prefill / streams,
        events_per_append(store),
    )
    .await?;
    let events = written.events();
    report.push(
        Figure::new(store, "prefill", "default", events, written.seconds)
            .with("streams", streams)
            .with("events_per_stream", written.per_stream),
    );
    report.common.insert("prefilled".into(), events.into());
    Ok(events)
}

/// W3-interleaved on a fresh store of the same kind as `target` (removed afterwards), with the
/// raw engine's store-shape reads of it and `target`'s best raw engine beside.
pub(super) async fn w3_interleaved(
    target: &mut BenchStore,
    sizes: &Sizes,
    rows: &EventRows,
    report: &mut Report,
) -> BenchResult<()> {
    let name = target.name;
    if name.starts_with("nats") && sizes.interleaved_events > NATS_MAX_INTERLEAVED_EVENTS {
        report.push(
            Figure::new(name, "W3-interleaved", "skipped", 0, 0.0).with(
                "note",
                format!(
                    "skipped on NATS above {NATS_MAX_INTERLEAVED_EVENTS} events: appends of at most {NATS_EVENTS_PER_APPEND} events make writing {} events take minutes; --interleaved-events N runs it smaller",
                    sizes.interleaved_events
                ),
            ),
        );
        return Ok(());
    }
    let mut sibling = target.open_sibling("interleaved").await?;
    let measured = measure(name, &mut sibling, target, sizes, rows, report).await;
    let cleaned = sibling.clean_up().await;
    measured?;
    cleaned
}

async fn measure(
    name: &str,
    sibling: &mut BenchStore,
    target: &mut BenchStore,
    sizes: &Sizes,
    rows: &EventRows,
    report: &mut Report,
) -> BenchResult<()> {
    sibling.attach_raw().await?;
    let accounts = Accounts::new(Arc::clone(&sibling.store));
    let streams = sizes
        .interleaved_streams
        .clamp(1, sizes.interleaved_events.max(1));
    let per_stream = (sizes.interleaved_events / streams).max(1);
    let runs = sizes.w3_runs.max(1);

    rss::reset_peak();
    let written =
        write_round_robin(&accounts, streams, per_stream, events_per_append(name)).await?;
    let total = written.events();
    report.push(
        Figure::new(name, "W3-interleaved", "write", total, written.seconds)
            .with("streams", streams)
            .with("events_per_stream", per_stream),
    );

    // The stream in the middle of the write order.
    let id = written.streams[written.streams.len() / 2];
    rss::reset_peak();
    let mut times = Vec::new();
    for _ in 0..runs {
        times.push(replay(&accounts, id, per_stream).await?);
    }
    let seconds = median(times).as_secs_f64();
    report.push(
        Figure::new(name, "W3-interleaved", "default", per_stream, seconds)
            .with("median_ms", seconds * 1e3)
            .with("runs", runs)
            .with("streams", streams)
            .with("store_events", total),
    );

    if let Some(raw) = &mut sibling.raw {
        rss::reset_peak();
        let mut times = Vec::new();
        for _ in 0..runs {
            if let Some((found, seconds)) = raw.read_stream(id).await? {
                check("raw W3-interleaved rows", found, per_stream)?;
                times.push(Duration::from_secs_f64(seconds));
            }
        }
        if !times.is_empty() {
            let seconds = median(times).as_secs_f64();
            report.push(
                Figure::new(name, "W3-interleaved", "raw-read", per_stream, seconds)
                    .with("median_ms", seconds * 1e3)
                    .with("store_events", total),
            );
        }
    }
    if let Some(best) = &mut target.best {
        rss::reset_peak();
        let write_seconds = best
            .write_round_robin(BestTable::Interleaved, &written.streams, per_stream, rows)
            .await?;
        let read = best.replay(BestTable::Interleaved, id, runs, rows).await?;
        check("raw best W3-interleaved rows", read.rows, per_stream)?;
        check(
            "raw best W3-interleaved cents",
            read.cents,
            (per_stream - 1) * super::workloads::DEPOSIT_CENTS,
        )?;
        report.push(
            Figure::new(
                name,
                "W3-interleaved",
                "raw-best-read",
                read.rows,
                read.seconds,
            )
            .with("median_ms", read.seconds * 1e3)
            .with("runs", read.runs)
            .with("store_events", total)
            .with("write_seconds", write_seconds)
            .with("layout", best.layout()),
        );
    }

    rss::reset_peak();
    let log = read_log(&accounts, sizes.w4_page).await?;
    check("W3-interleaved log events", log.events, total)?;
    check("W3-interleaved log accounts", log.opened, streams)?;
    report.push(
        Figure::new(name, "W3-interleaved", "log-read", log.events, log.seconds)
            .with("page", sizes.w4_page),
    );
    if let Some(raw) = &mut sibling.raw {
        rss::reset_peak();
        let page = usize::try_from(sizes.w4_page).unwrap_or(usize::MAX);
        if let Some((found, seconds)) = raw.scan_log(page).await? {
            check("raw W3-interleaved log rows", found, total)?;
            report.push(
                Figure::new(name, "W3-interleaved", "raw-log-read", found, seconds)
                    .with("page", sizes.w4_page),
            );
        }
    }
    Ok(())
}
