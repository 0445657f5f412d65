//! The global log: positions, paging, the last position, filters and where the next read starts.

use std::sync::Arc;

use uuid::Uuid;

use super::super::CheckResult;
use super::super::support::{
    Context, Expected, append, check_page, compare, ensure, ensure_eq, event, events, fail, read,
    read_whole_log,
};
use super::named;
use crate::persistence::position::Position;
use crate::persistence::record::{LogQuery, StoredEvent, StreamRange};
use crate::persistence::store::EventStore;

/// Log positions are >= 1 and strictly increasing, every appended event is in the log once, and
/// append returns the position of the last event it wrote.
pub async fn log_positions_strictly_increase<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("log_positions_strictly_increase", async move {
        let streams: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let mut versions = [0u64; 3];
        let mut expected = Vec::new();
        let mut returned = Vec::new();
        for round in 0..6usize {
            let i = round % 3;
            let batch = events("Counted", &format!("r{round}"), round % 3 + 1);
            expected.extend(Expected::appended(streams[i], versions[i], &batch));
            let position = append(&*store, streams[i], versions[i], batch).await?;
            versions[i] += (round % 3 + 1) as u64;
            returned.push((position, expected.len()));
        }
        let log = read_whole_log(&*store, 1000).await?;
        compare(&log, &expected, "reading the whole log")?;
        ensure!(
            log.first().is_none_or(|e| e.position > Position::START),
            "the first position is {:?}; positions start at 1",
            log.first().map(|e| e.position)
        );
        for (position, count) in returned {
            let event = &log[count - 1];
            ensure_eq!(
                position,
                event.position,
                "append returned a position, but the last event it wrote (stream {} version {}) is at another one",
                event.stream_id,
                event.version
            );
        }
        for stream in &streams {
            for e in read(&*store, *stream, StreamRange::all()).await? {
                ensure!(
                    log.iter().any(|l| l.position == e.position
                        && l.stream_id == e.stream_id
                        && l.version == e.version),
                    "stream {stream} version {} has position {}, which the log doesn't hold",
                    e.version,
                    e.position
                );
            }
        }
        Ok(())
    })
    .await
}

/// Paging the log with `after`/`limit` at any page size reassembles exactly the whole log.
pub async fn log_paging_reassembles_the_log<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("log_paging_reassembles_the_log", async move {
        let streams: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
        let mut versions = [0u64; 4];
        let mut expected = Vec::new();
        for round in 0..20usize {
            let i = (round * 7) % 4;
            let n = round % 5;
            let batch = events("Counted", &format!("p{round}"), n);
            expected.extend(Expected::appended(streams[i], versions[i], &batch));
            append(&*store, streams[i], versions[i], batch).await?;
            versions[i] += n as u64;
        }
        let whole = read_whole_log(&*store, 10_000).await?;
        compare(&whole, &expected, "reading the whole log in one page")?;
        for page in [1, 2, 3, 7, 10, 39, 40, 41] {
            let paged = read_whole_log(&*store, page).await?;
            let key = |e: &StoredEvent| (e.position, e.stream_id, e.version);
            ensure_eq!(
                paged.iter().map(key).collect::<Vec<_>>(),
                whole.iter().map(key).collect::<Vec<_>>(),
                "(position, stream, version) of the log read in pages of {page}"
            );
            compare(
                &paged,
                &expected,
                &format!("the log read in pages of {page}"),
            )?;
        }
        // A page is full when more events follow.
        if let Some(first) = whole.first() {
            let page = store
                .read_log(LogQuery::after(first.position, 5))
                .await
                .context("reading a page of 5")?;
            ensure_eq!(page.len(), 5, "events in a page of 5 when more follow");
        }
        // Paging from an arbitrary position inside the log.
        let middle = whole[whole.len() / 2].position;
        let rest = store
            .read_log(LogQuery::after(middle, 10_000))
            .await
            .context("reading the log after its middle")?;
        let tail: Vec<Position> = whole
            .iter()
            .map(|e| e.position)
            .filter(|p| *p > middle)
            .collect();
        ensure_eq!(
            rest.events.iter().map(|e| e.position).collect::<Vec<_>>(),
            tail,
            "positions read after position {middle}"
        );
        Ok(())
    })
    .await
}

/// `last_position` is 0 for an empty store and the newest position after appends; reading at or
/// past the end is empty, and a zero limit reads nothing.
pub async fn log_last_position_and_reading_past_the_end<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("log_last_position_and_reading_past_the_end", async move {
        ensure_eq!(
            store.last_position().await.context("last_position")?,
            Position::START,
            "last_position of an empty store"
        );
        let empty = store
            .read_log(LogQuery::from_start(10))
            .await
            .context("reading an empty log")?;
        ensure!(
            empty.is_empty(),
            "an empty store's log has {} events",
            empty.len()
        );

        let stream = Uuid::now_v7();
        append(&*store, stream, 0, events("Counted", "end", 5)).await?;
        let log = read_whole_log(&*store, 100).await?;
        let last = log.last().map_or(Position::START, |e| e.position);
        ensure_eq!(
            store.last_position().await.context("last_position")?,
            last,
            "last_position is the newest event's position"
        );
        for after in
            [last.get(), last.get() + 1, last.get() + 1000, u64::MAX / 2].map(Position::new)
        {
            let page = store
                .read_log(LogQuery::after(after, 10))
                .await
                .context(format_args!("reading the log after position {after}"))?;
            ensure!(
                page.is_empty(),
                "reading after position {after} (the last is {last}) returned {} events",
                page.len()
            );
            ensure_eq!(
                page.next,
                after,
                "reading after position {after} past the end: where the next read starts"
            );
        }
        let none = store
            .read_log(LogQuery::from_start(0))
            .await
            .context("reading the log with limit 0")?;
        ensure!(none.is_empty(), "limit 0 returned {} events", none.len());
        let before_last = log[log.len() - 2].position;
        let one = store
            .read_log(LogQuery::after(before_last, 10))
            .await
            .context("reading the log's last event")?;
        ensure_eq!(
            one.events.iter().map(|e| e.position).collect::<Vec<_>>(),
            vec![last],
            "reading after the second-to-last position"
        );
        Ok(())
    })
    .await
}

/// A name filter returns only the events with one of those exact names (case and unicode
/// sensitive), in log order, and pages like the unfiltered log.
pub async fn log_filters_by_event_name<S: EventStore + ?Sized + 'static>(
    store: Arc<S>,
) -> CheckResult {
    named("log_filters_by_event_name", async move {
        let names = ["Opened", "Deposited", "Withdrawn", "opened", "Café", "Cafe\u{301}"];
        let stream = Uuid::now_v7();
        for i in 0..30u64 {
            let name = names[(i as usize * 5) % names.len()];
            append(&*store, stream, i, vec![event(name, format!("{i}"))]).await?;
        }
        let whole = read_whole_log(&*store, 1000).await?;
        let last_position = whole.last().map_or(Position::START, |e| e.position);
        let filters: Vec<Vec<&str>> = vec![
            vec!["Opened"],
            vec!["Deposited", "Withdrawn"],
            vec!["Café"],
            vec!["Cafe\u{301}"],
            vec!["opened", "Café"],
            vec!["NeverStored"],
            vec!["Opened", "NeverStored"],
        ];
        for filter in filters {
            let wanted: Vec<Position> = whole
                .iter()
                .filter(|e| filter.contains(&e.name.as_str()))
                .map(|e| e.position)
                .collect();
            for page in [1usize, 2, 4, 1000] {
                let mut got = Vec::new();
                let mut after = Position::START;
                loop {
                    let events = store
                        .read_log(LogQuery::after(after, page).names(filter.iter().copied()))
                        .await
                        .context(format_args!(
                            "reading the log after {after}, limit {page}, names {filter:?}"
                        ))?;
                    check_page(&events, after, page, "reading the filtered log")?;
                    if let Some(bad) = events.events.iter().find(|e| !filter.contains(&e.name.as_str())) {
                        fail!(
                            "filtering the log by {filter:?} returned an event named {:?} (position {})",
                            bad.name,
                            bad.position
                        );
                    }
                    if events.is_empty() {
                        ensure_eq!(
                            events.next,
                            last_position,
                            "filtering by {filter:?} in pages of {page}: once nothing more matches, the next read starts after everything the store passed"
                        );
                        break;
                    }
                    after = events.next;
                    got.extend(events.events.iter().map(|e| e.position));
                }
                ensure_eq!(
                    got,
                    wanted,
                    "positions of events named {filter:?} read in pages of {page}"
                );
            }
        }
        Ok(())
    })
    .await
}
