//! Event ids and categories: stored with every event, and the log filtered by category without
//! a follower ever looking at what it passed twice.

use std::collections::HashSet;
use std::sync::Arc;

use uuid::Uuid;

use super::super::CheckResult;
use super::super::support::{
    Context, check_page, ensure, ensure_eq, event, events, fail, read, read_whole_log,
};
use super::named;
use crate::persistence::position::Position;
use crate::persistence::record::{AppendBatch, LogPage, LogQuery, StreamAppend, StreamRange};
use crate::persistence::store::EventStore;

/// One batch appending `events` to each `(category, stream, expected version)`.
fn categorized(streams: Vec<(&str, Uuid, u64, Vec<crate::NewEvent>)>) -> AppendBatch {
    AppendBatch {
        streams: streams
            .into_iter()
            .map(
                |(category, stream_id, expected_version, events)| StreamAppend {
                    stream_id,
                    category: category.to_owned(),
                    expected_version,
                    events,
                },
            )
            .collect(),
        tracking: None,
    }
}

/// Reads the log with `query` (its `after` is replaced) in pages until a page comes back empty,
/// following `next`. Returns every event's position and the `next` of the final empty page.
async fn follow<S: EventStore + ?Sized>(
    store: &S,
    query: &LogQuery,
    doing: &str,
) -> Result<(Vec<Position>, Position, usize), String> {
    let from_start = LogQuery {
        after: Position::START,
        ..query.clone()
    };
    follow_from(store, &from_start, doing).await
}

/// [`follow`] from `query.after`. With `query.to` set, every page must stop at the bound: no
/// event past it, and `next` not past it.
async fn follow_from<S: EventStore + ?Sized>(
    store: &S,
    query: &LogQuery,
    doing: &str,
) -> Result<(Vec<Position>, Position, usize), String> {
    let mut after = query.after;
    let mut got = Vec::new();
    let mut reads = 0;
    loop {
        let page: LogPage = store
            .read_log(LogQuery {
                after,
                ..query.clone()
            })
            .await
            .context(format_args!("{doing}: reading after {after}"))?;
        reads += 1;
        check_page(&page, after, query.limit, doing)?;
        if let Some(bad) = page.events.iter().find(|e| !query.matches(e)) {
            fail!(
                "{doing}: the page holds an event outside the filter: `{}` of category {:?} at position {}",
                bad.name,
                bad.category,
                bad.position
            );
        }
        if let Some(to) = query.to {
            if let Some(past) = page.events.iter().find(|e| e.position > to) {
                fail!(
                    "{doing}: reading after {after} up to {to} returned the event at position {}",
                    past.position
                );
            }
            ensure!(
                page.next <= to,
                "{doing}: reading after {after} up to {to}, the page says the next read starts after {}, past the bound",
                page.next
            );
        }
        if page.is_empty() {
            return Ok((got, page.next, reads));
        }
        got.extend(page.events.iter().map(|e| e.position));
        after = page.next;
    }
}

/// Every event keeps the id it was appended with and its stream's category, read from the
/// stream and from the log; ids are unique; a stream appended without a category reads back
/// with an empty one.
pub async fn events_keep_their_ids_and_categories<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("events_keep_their_ids_and_categories", async move {
        let (account, order, plain) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let account_events = events("Deposited", "a", 3);
        let order_events = events("Placed", "o", 2);
        store
            .append(categorized(vec![
                ("BankAccount", account, 0, account_events.clone()),
                ("Order", order, 0, order_events.clone()),
            ]))
            .await
            .context("appending to two categories in one batch")?;
        let plain_event = event("Noted", "{}");
        store
            .append(AppendBatch::single(plain, 0, vec![plain_event.clone()]))
            .await
            .context("appending without a category")?;
        let expected = [
            (account, "BankAccount", &account_events),
            (order, "Order", &order_events),
            (plain, "", &vec![plain_event]),
        ];
        let log = read_whole_log(&*store, 100).await?;
        let mut ids = HashSet::new();
        for (stream, category, appended) in expected {
            let read_back = read(&*store, stream, StreamRange::all()).await?;
            let in_log: Vec<_> = log.iter().filter(|e| e.stream_id == stream).collect();
            ensure_eq!(read_back.len(), appended.len(), "events of stream {stream}");
            ensure_eq!(
                in_log.len(),
                appended.len(),
                "events of stream {stream} in the log"
            );
            for ((stored, logged), new) in read_back.iter().zip(&in_log).zip(appended.iter()) {
                let at = format!("stream {stream} version {}", stored.version);
                ensure_eq!(stored.id, new.id, "{at}: the event id read from the stream");
                ensure_eq!(logged.id, new.id, "{at}: the event id read from the log");
                ensure_eq!(
                    stored.category,
                    category,
                    "{at}: the category read from the stream"
                );
                ensure_eq!(
                    logged.category,
                    category,
                    "{at}: the category read from the log"
                );
                ensure!(
                    ids.insert(stored.id),
                    "{at}: event id {} is not unique",
                    stored.id
                );
            }
        }
        Ok(())
    })
    .await
}

/// A category filter returns exactly the events of those categories (exact, case-sensitive
/// names), alone and combined with a name filter, at any page size.
pub async fn log_filters_by_category<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("log_filters_by_category", async move {
        let categories = ["BankAccount", "Order", "bankaccount", "Ordér", ""];
        let streams: Vec<Uuid> = categories.iter().map(|_| Uuid::now_v7()).collect();
        let mut versions = vec![0u64; categories.len()];
        for round in 0..40usize {
            let i = (round * 3) % categories.len();
            let name = if round % 2 == 0 { "Opened" } else { "Closed" };
            store
                .append(categorized(vec![(
                    categories[i],
                    streams[i],
                    versions[i],
                    vec![event(name, format!("{round}"))],
                )]))
                .await
                .context(format_args!("appending round {round}"))?;
            versions[i] += 1;
        }
        let whole = read_whole_log(&*store, 1000).await?;
        let last = whole.last().map_or(Position::START, |e| e.position);
        let queries = [
            LogQuery::from_start(0).categories(["BankAccount"]),
            LogQuery::from_start(0).categories(["Order", "Ordér"]),
            LogQuery::from_start(0).categories([""]),
            LogQuery::from_start(0).categories(["Nobody"]),
            LogQuery::from_start(0)
                .categories(["BankAccount", "bankaccount"])
                .names(["Closed"]),
            LogQuery::from_start(0)
                .categories(["Order"])
                .names(["Opened", "Closed"]),
        ];
        for query in queries {
            let wanted: Vec<Position> = whole
                .iter()
                .filter(|e| query.matches(e))
                .map(|e| e.position)
                .collect();
            for limit in [1usize, 3, 1000] {
                let query = LogQuery {
                    limit,
                    ..query.clone()
                };
                let doing = format!(
                    "following categories {:?} names {:?} in pages of {limit}",
                    query.categories, query.names
                );
                let (got, next, _) = follow(&*store, &query, &doing).await?;
                ensure_eq!(got, wanted, "{doing}: positions");
                ensure_eq!(next, last, "{doing}: where the next read starts at the end");
            }
        }
        Ok(())
    })
    .await
}

/// A filtered follower moves past the events that don't match: a page that is not full says
/// the next read starts after everything the store passed, so polling again reads nothing
/// twice, and new non-matching events are passed once.
pub async fn filtered_reads_start_after_what_they_passed<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("filtered_reads_start_after_what_they_passed", async move {
        let (noise, signal) = (Uuid::now_v7(), Uuid::now_v7());
        let mut noise_version = 0;
        let mut signal_version = 0;
        let mut matching = Vec::new();
        for round in 0..10u64 {
            store
                .append(categorized(vec![(
                    "Noise",
                    noise,
                    noise_version,
                    events("Hum", "n", 20),
                )]))
                .await
                .context("appending noise")?;
            noise_version += 20;
            if round % 3 == 0 {
                let position = store
                    .append(categorized(vec![(
                        "Signal",
                        signal,
                        signal_version,
                        vec![event("Beep", format!("{round}"))],
                    )]))
                    .await
                    .context("appending a signal")?;
                signal_version += 1;
                matching.push(position);
            }
        }
        let last = store.last_position().await.context("last_position")?;
        let query = LogQuery::from_start(2).categories(["Signal"]);
        let (got, next, reads) = follow(&*store, &query, "following the signal").await?;
        ensure_eq!(got, matching, "the signal's positions");
        ensure_eq!(
            next,
            last,
            "after the last signal, the next read starts at the log's end"
        );
        // 4 signals in pages of 2: two full pages, then one empty page (the second page is
        // full, so the store can't know nothing follows).
        ensure_eq!(
            reads,
            3,
            "reads to follow 4 matching events among 204 in pages of 2"
        );

        // Polling again from `next` finds nothing and stays put.
        let again = store
            .read_log(LogQuery {
                after: next,
                ..query.clone()
            })
            .await
            .context("polling again")?;
        ensure!(
            again.is_empty(),
            "polling again returned {} events",
            again.len()
        );
        ensure_eq!(
            again.next,
            next,
            "polling again: where the next read starts"
        );

        // More noise: one poll passes it, the next one starts after it.
        store
            .append(categorized(vec![(
                "Noise",
                noise,
                noise_version,
                events("Hum", "m", 30),
            )]))
            .await
            .context("appending more noise")?;
        let newest = store.last_position().await.context("last_position")?;
        let passed = store
            .read_log(LogQuery {
                after: next,
                ..query.clone()
            })
            .await
            .context("polling after more noise")?;
        ensure!(
            passed.is_empty(),
            "the noise matched the filter: {:?}",
            passed.events
        );
        ensure_eq!(passed.next, newest, "a poll over new noise moves past it");
        Ok(())
    })
    .await
}

/// A read up to a position (`LogQuery::up_to`), filtered or not, at any page size, returns
/// exactly the matching events up to it and says the next read starts at most there; continuing
/// from that `next` without a bound returns exactly the rest: nothing missed, nothing twice.
pub async fn log_reads_stop_at_a_bound<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("log_reads_stop_at_a_bound", async move {
        let (noise, signal) = (Uuid::now_v7(), Uuid::now_v7());
        let (mut noise_version, mut signal_version) = (0, 0);
        for round in 0..12u64 {
            let name = if round % 2 == 0 { "Beep" } else { "Boop" };
            let mut streams = vec![(
                "Noise",
                noise,
                noise_version,
                events(name, &format!("n{round}"), 3),
            )];
            noise_version += 3;
            if round % 3 != 1 {
                streams.push((
                    "Signal",
                    signal,
                    signal_version,
                    vec![event(name, format!("s{round}"))],
                ));
                signal_version += 1;
            }
            store
                .append(categorized(streams))
                .await
                .context(format_args!("appending round {round}"))?;
        }
        let whole = read_whole_log(&*store, 1000).await?;
        let (Some(first), Some(last)) = (whole.first(), whole.last()) else {
            fail!("the log is empty after appending");
        };
        // The middle of the log, an event just before it (a bound between two of a filter's
        // events), before the first event and the end.
        let middle = whole[whole.len() / 2].position;
        let before_middle = whole[whole.len() / 2 - 1].position;
        let bounds = [
            middle,
            before_middle,
            Position::new(first.position.get().saturating_sub(1)),
            last.position,
        ];
        let queries = [
            LogQuery::from_start(0),
            LogQuery::from_start(0).categories(["Signal"]),
            LogQuery::from_start(0).names(["Boop"]),
            LogQuery::from_start(0)
                .categories(["Signal", "Nobody"])
                .names(["Beep"]),
        ];
        for query in &queries {
            let wanted = |keep: &dyn Fn(Position) -> bool| -> Vec<Position> {
                whole
                    .iter()
                    .filter(|e| query.matches(e) && keep(e.position))
                    .map(|e| e.position)
                    .collect()
            };
            for to in bounds {
                for limit in [1usize, 2, 5, 1000] {
                    let bounded = LogQuery {
                        limit,
                        ..query.clone()
                    }
                    .up_to(to);
                    let doing = format!(
                        "reading categories {:?} names {:?} up to position {to} in pages of {limit}",
                        query.categories, query.names
                    );
                    let (got, next, _) = follow(&*store, &bounded, &doing).await?;
                    ensure_eq!(got, wanted(&|p| p <= to), "{doing}: positions");
                    ensure!(
                        next <= to,
                        "{doing}: the last page says the next read starts after {next}, past the bound"
                    );
                    let rest = LogQuery {
                        after: next,
                        to: None,
                        ..bounded.clone()
                    };
                    let doing = format!("{doing}, then on from {next} without a bound");
                    let (rest, _, _) = follow_from(&*store, &rest, &doing).await?;
                    ensure_eq!(rest, wanted(&|p| p > to), "{doing}: positions");
                }
            }
        }
        Ok(())
    })
    .await
}

/// A filter that lists a category (or a name) twice still returns each matching event once.
/// Found by the model checks: the PostgreSQL store scanned a repeated category once per
/// listing and returned its events twice.
pub async fn repeated_filters_read_each_event_once<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("repeated_filters_read_each_event_once", async move {
        let (account, order) = (Uuid::now_v7(), Uuid::now_v7());
        store
            .append(categorized(vec![
                ("Account", account, 0, events("Opened", "account", 2)),
                ("", order, 0, events("Placed", "order", 1)),
            ]))
            .await
            .context("appending to an Account stream and a stream without a category")?;
        let whole = read_whole_log(&*store, 100).await?;
        for (query, expected, what) in [
            (
                LogQuery::from_start(10).categories(["Account", "Account"]),
                &whole[..2],
                "categories [\"Account\", \"Account\"]",
            ),
            (
                LogQuery::from_start(10).categories(["", ""]),
                &whole[2..],
                "categories [\"\", \"\"] (no category, twice)",
            ),
            (
                LogQuery::from_start(10)
                    .categories(["Account", "", "Account"])
                    .names(["Opened", "Opened", "Placed"]),
                &whole[..],
                "categories [\"Account\", \"\", \"Account\"] and names [\"Opened\", \"Opened\", \"Placed\"]",
            ),
        ] {
            let page = store
                .read_log(query)
                .await
                .context(format_args!("reading the log with {what}"))?;
            let ids: Vec<Uuid> = page.events.iter().map(|e| e.id).collect();
            let expected: Vec<Uuid> = expected.iter().map(|e| e.id).collect();
            ensure_eq!(ids, expected, "the events read with {what} (each once, in log order)");
        }
        Ok(())
    })
    .await
}
