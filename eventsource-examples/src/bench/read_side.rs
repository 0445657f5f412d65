//! The read-side workloads (issue 11), on the same bank log as W1–W5:
//!
//! - **W6** a projection catching up from zero over the whole log, beside W4's read of the same
//!   log in the same run (the ratio is the projector's overhead: filtering, a record per event,
//!   the dispatch, the handlers);
//! - **W7** a live projection: a spawned projector follows the log while a writer appends one
//!   event at a time at a steady rate; each event's latency runs from the append's return (the
//!   commit) to its handler having run.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventsource_core::projection::{Handle, HandlerError, Projector};
use eventsource_core::{EventStore, Forgotten, Position, Projection, Recorded, Uuid, new_id};
use tokio::time::MissedTickBehavior;

use super::figure::Figure;
use super::workloads::{Accounts, check, deposited, opened, read_log, write_stream};
use super::{BenchResult, Report, Sizes, rss};
use crate::bank::{Deposited, Opened};

/// W6's read model: every account's balance, in memory (rebuilt from the log at start).
#[derive(Projection, Debug, Default)]
#[projection(name = "bench_balances", events(Opened, Deposited))]
pub struct Balances {
    /// Cents per account.
    pub cents: HashMap<Uuid, u64>,
    /// Events handled.
    pub events: u64,
}

impl Handle<Opened> for Balances {
    async fn handle(&mut self, event: &Recorded<Opened>, _: &mut ()) -> Result<(), HandlerError> {
        self.cents.entry(event.stream_id).or_default();
        self.events += 1;
        Ok(())
    }
}

impl Handle<Forgotten<Opened>> for Balances {
    async fn handle(
        &mut self,
        event: &Recorded<Forgotten<Opened>>,
        _: &mut (),
    ) -> Result<(), HandlerError> {
        self.cents.entry(event.stream_id).or_default();
        self.events += 1;
        Ok(())
    }
}

impl Handle<Deposited> for Balances {
    async fn handle(
        &mut self,
        event: &Recorded<Deposited>,
        _: &mut (),
    ) -> Result<(), HandlerError> {
        *self.cents.entry(event.stream_id).or_default() += event.event.cents;
        self.events += 1;
        Ok(())
    }
}

/// W7's projection: when each event's handler ran, by position.
#[derive(Projection, Debug, Default)]
#[projection(name = "bench_arrivals", events(Opened, Deposited))]
pub struct Arrivals {
    /// The position of each event handled, and the instant its handler ran.
    pub handled: Vec<(Position, Instant)>,
}

impl Handle<Opened> for Arrivals {
    async fn handle(&mut self, event: &Recorded<Opened>, _: &mut ()) -> Result<(), HandlerError> {
        self.handled.push((event.position, Instant::now()));
        Ok(())
    }
}

impl Handle<Forgotten<Opened>> for Arrivals {
    async fn handle(
        &mut self,
        event: &Recorded<Forgotten<Opened>>,
        _: &mut (),
    ) -> Result<(), HandlerError> {
        self.handled.push((event.position, Instant::now()));
        Ok(())
    }
}

impl Handle<Deposited> for Arrivals {
    async fn handle(
        &mut self,
        event: &Recorded<Deposited>,
        _: &mut (),
    ) -> Result<(), HandlerError> {
        self.handled.push((event.position, Instant::now()));
        Ok(())
    }
}

/// W6: tops the log up to `w6_events` (accounts of up to `write_batch` events), reads it the
/// way W4 does, catches a [`Balances`] projection up over it from zero, and reads it again.
/// The projection's rate is reported with its ratio to the faster of the two reads.
pub async fn w6(
    store: &str,
    accounts: &Accounts,
    sizes: &Sizes,
    logged: u64,
    report: &mut Report,
) -> BenchResult<()> {
    let mut logged = logged;
    while logged < sizes.w6_events {
        let n = (sizes.w6_events - logged).clamp(1, sizes.write_batch.max(1));
        write_stream(accounts, n, n).await?;
        logged += n;
    }
    let page = sizes.w4_page.max(1);

    rss::reset_peak();
    let before = read_log(accounts, page).await?;
    check("W6 log read: events", before.events, logged)?;

    rss::reset_peak();
    let start = Instant::now();
    let mut projector = Projector::new(Arc::clone(accounts.store()), Balances::default())
        .page_size(usize::try_from(page).unwrap_or(usize::MAX));
    projector.catch_up().await?;
    let seconds = start.elapsed().as_secs_f64();
    let balances = projector.into_projection();
    let projected = Figure::new(store, "W6", "default", balances.events, seconds);

    rss::reset_peak();
    let after = read_log(accounts, page).await?;
    let read = if after.seconds < before.seconds {
        after
    } else {
        before
    };
    report.push(
        Figure::new(store, "W6", "log-read", read.events, read.seconds)
            .with("page", page)
            .with("reads", 2),
    );

    check("W6 events projected", balances.events, logged)?;
    check(
        "W6 accounts projected",
        balances.cents.len() as u64,
        read.opened,
    )?;
    check(
        "W6 cents projected",
        balances.cents.values().sum(),
        read.cents,
    )?;
    let read_rate = read.events as f64 / read.seconds.max(1e-9);
    let ratio = projected.per_second() / read_rate;
    report.push(
        projected
            .with("page", page)
            .with("w4_per_second", read_rate.round() as u64)
            .with("ratio_to_w4", (ratio * 100.0).round() / 100.0)
            .with("target_ratio", 0.5),
    );
    Ok(())
}

/// W7: a spawned projector (polling only every `W7_POLL`, so a low figure shows the commit
/// wake-ups at work) and a writer appending `w7_events` deposits, one per append, one every
/// `w7_interval_us` (as far as the store keeps up, stopping after `W7_MAX_WRITING`). Reports
/// the latency from each append's return to its handler: p50, p99 and max.
pub async fn w7(
    store: &str,
    events: &Arc<dyn EventStore>,
    sizes: &Sizes,
    report: &mut Report,
) -> BenchResult<()> {
    /// Longer than the whole workload: a projector that waited for its poll would show it.
    const W7_POLL: Duration = Duration::from_secs(10);
    /// The writer stops after this long, however many events it appended.
    const W7_MAX_WRITING: Duration = Duration::from_secs(60);
    /// How long to wait for the projector to handle an event before failing the workload.
    const WAIT: Duration = Duration::from_secs(30);

    let accounts = Accounts::new(Arc::clone(events));
    let mut account = accounts.create_with_id(new_id(), opened()).await?;
    account.record(deposited());
    let head = accounts.save(&mut [&mut account]).await?;

    rss::reset_peak();
    let running = Projector::new(Arc::clone(events), Arrivals::default())
        .starting_after(head)
        .poll_interval(W7_POLL)
        .spawn();
    // A first event, not measured: the projector's subscription is live (its wake-ups
    // registered, PostgreSQL's listener connected) once it has handled it.
    account.record(deposited());
    let warm_up = accounts.save(&mut [&mut account]).await?;
    if !running.wait_for(warm_up, WAIT).await? {
        return Err(
            format!("W7: the projector did not handle the warm-up event in {WAIT:?}").into(),
        );
    }

    let wanted = usize::try_from(sizes.w7_events.max(1)).unwrap_or(usize::MAX);
    let mut appended: Vec<(Position, Instant)> = Vec::with_capacity(wanted);
    let mut ticks = tokio::time::interval(Duration::from_micros(sizes.w7_interval_us.max(1)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let start = Instant::now();
    while appended.len() < wanted && start.elapsed() < W7_MAX_WRITING {
        ticks.tick().await;
        account.record(deposited());
        let position = accounts.save(&mut [&mut account]).await?;
        appended.push((position, Instant::now()));
    }
    let writing = start.elapsed().as_secs_f64();
    let last = appended.last().map_or(warm_up, |(position, _)| *position);
    let caught_up = running.wait_for(last, WAIT).await?;
    let (projector, outcome) = running.stop().await;
    outcome?;
    if !caught_up {
        return Err(format!("W7: the projector did not reach {last} in {WAIT:?}").into());
    }
    let arrivals = projector
        .ok_or("W7: the projector's task is gone")?
        .into_projection();
    let handled: HashMap<Position, Instant> = arrivals.handled.into_iter().collect();

    let mut latencies = Vec::with_capacity(appended.len());
    let mut before_return = 0_u64;
    for (position, returned) in &appended {
        let ran = handled
            .get(position)
            .ok_or_else(|| format!("W7: the event at {position} was never handled"))?;
        if ran < returned {
            // The handler ran before the writer's task resumed after the commit.
            before_return += 1;
        }
        latencies.push(ran.saturating_duration_since(*returned));
    }
    latencies.sort_unstable();
    let quantile = |q: f64| {
        let index = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    let (p50, p99, max) = (quantile(0.5), quantile(0.99), quantile(1.0));
    eprintln!(
        "  {store:<8} W7        default     append → handler: p50 {p50:.0} µs, p99 {p99:.0} µs, \
         max {max:.0} µs (poll interval {W7_POLL:?}: wake-ups at work)"
    );
    report.push(
        Figure::new(store, "W7", "default", appended.len() as u64, writing)
            .with("p50_us", p50.round() as u64)
            .with("p99_us", p99.round() as u64)
            .with("max_us", max.round() as u64)
            .with("interval_us", sizes.w7_interval_us.max(1))
            .with("poll_interval_s", W7_POLL.as_secs())
            .with("handled_before_return", before_return),
    );
    Ok(())
}
