//! Helpers the checks share: fixtures, reads, and comparisons that say what differed.

use std::fmt::{Debug, Write as _};
use std::time::{Duration, SystemTime};

use futures_util::TryStreamExt;
use uuid::Uuid;

use crate::error::Error;
use crate::persistence::position::Position;
use crate::persistence::record::{
    AppendBatch, LogPage, LogQuery, Metadata, NewEvent, StoredEvent, StreamAppend, StreamRange,
};
use crate::persistence::store::EventStore;

/// What a check body returns; the check's wrapper turns the message into a `Failure`.
pub(super) type Outcome<T = ()> = Result<T, String>;

/// Fails the check with a formatted message.
macro_rules! fail {
    ($($arg:tt)*) => { return Err(format!($($arg)*)) };
}

/// Fails the check unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond { return Err(format!($($arg)*)); }
    };
}

/// Fails the check unless `actual == expected`, showing both.
macro_rules! ensure_eq {
    ($actual:expr, $expected:expr, $($arg:tt)*) => {{
        let (actual, expected) = (&$actual, &$expected);
        if actual != expected {
            return Err(format!("{}: expected {:?}, got {:?}", format!($($arg)*), expected, actual));
        }
    }};
}

pub(super) use {ensure, ensure_eq, fail};

/// Turns a store error into a check failure that says what the check was doing.
pub(super) trait Context<T> {
    fn context(self, doing: impl std::fmt::Display) -> Outcome<T>;
}

impl<T> Context<T> for Result<T, Error> {
    fn context(self, doing: impl std::fmt::Display) -> Outcome<T> {
        self.map_err(|e| format!("{doing}: the store returned an error: {e} ({e:?})"))
    }
}

/// The category the checks' streams are appended with, unless a check says otherwise.
pub(super) const CATEGORY: &str = "ConformanceCheck";

/// An event with a fresh id, a JSON-ish payload and no metadata.
pub(super) fn event(name: &str, payload: impl Into<Vec<u8>>) -> NewEvent {
    NewEvent::new(name, 1, payload)
}

/// `n` events named `name` whose payloads say which `tag` and index they are.
pub(super) fn events(name: &str, tag: &str, n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| event(name, format!(r#"{{"tag":"{tag}","i":{i}}}"#)))
        .collect()
}

/// Metadata from pairs.
pub(super) fn metadata(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A batch appending to several streams.
pub(super) fn batch(streams: Vec<(Uuid, u64, Vec<NewEvent>)>) -> AppendBatch {
    AppendBatch {
        streams: streams
            .into_iter()
            .map(|(stream_id, expected_version, events)| StreamAppend {
                stream_id,
                category: CATEGORY.to_owned(),
                expected_version,
                events,
            })
            .collect(),
        tracking: None,
    }
}

/// Appends `events` to a stream expected at `expected`, failing the check on any error.
pub(super) async fn append<S: EventStore + ?Sized>(
    store: &S,
    stream: Uuid,
    expected: u64,
    events: Vec<NewEvent>,
) -> Outcome<Position> {
    let n = events.len();
    store
        .append(AppendBatch::single_in(CATEGORY, stream, expected, events))
        .await
        .context(format_args!(
            "appending {n} event(s) to stream {stream} at expected version {expected}"
        ))
}

/// Reads a stream range completely.
pub(super) async fn read<S: EventStore + ?Sized>(
    store: &S,
    stream: Uuid,
    range: StreamRange,
) -> Outcome<Vec<StoredEvent>> {
    store
        .read_stream(stream, range)
        .try_collect()
        .await
        .context(format_args!("reading stream {stream} with {range:?}"))
}

/// A copy of what a replay was lent ([`ReplayedEvent`](crate::ReplayedEvent)), to compare after
/// the visit.
pub(super) use crate::persistence::record::ReplayedCopy as Replayed;

/// Visits a stream with [`EventStore::visit_stream`], copying out at most `stop_after` events
/// (then asking the store to stop).
pub(super) async fn visit<S: EventStore + ?Sized>(
    store: &S,
    stream: Uuid,
    range: StreamRange,
    stop_after: usize,
) -> Outcome<Vec<Replayed>> {
    let mut seen = Vec::new();
    store
        .visit_stream(stream, range, &mut |event| {
            seen.push(Replayed::from(event));
            Ok(if seen.len() >= stop_after {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            })
        })
        .await
        .context(format_args!("visiting stream {stream} with {range:?}"))?;
    Ok(seen)
}

/// After a refused append: the log still ends at `last_position` and holds `events` events.
pub(super) async fn ensure_nothing_written<S: EventStore + ?Sized>(
    store: &S,
    last_position: Position,
    events: usize,
    after: &str,
) -> Outcome<()> {
    ensure_eq!(
        store.last_position().await.context("last_position")?,
        last_position,
        "last_position after {after} (a refused append must write nothing)"
    );
    ensure_eq!(
        read_whole_log(store, 100).await?.len(),
        events,
        "events in the log after {after}"
    );
    Ok(())
}

/// Reads the whole log in pages of `page`.
pub(super) async fn read_whole_log<S: EventStore + ?Sized>(
    store: &S,
    page: usize,
) -> Outcome<Vec<StoredEvent>> {
    let mut all = Vec::new();
    let mut after = Position::START;
    loop {
        let read = store
            .read_log(LogQuery::after(after, page))
            .await
            .context(format_args!(
                "reading the log after position {after}, limit {page}"
            ))?;
        check_page(&read, after, page, "reading the log")?;
        if read.is_empty() {
            return Ok(all);
        }
        after = read.next;
        all.extend(read.events);
    }
}

/// Checks that events are after `after` and their positions strictly increase.
pub(super) fn check_positions(events: &[StoredEvent], after: Position, doing: &str) -> Outcome {
    let mut previous = after;
    for e in events {
        ensure!(
            e.position > previous,
            "{doing} after position {after}: position {} (stream {} version {}) follows position {previous}; positions must be strictly increasing and after the requested position",
            e.position,
            e.stream_id,
            e.version
        );
        previous = e.position;
    }
    Ok(())
}

/// Checks that a page of the log is after `after`, strictly increasing, within `limit`, and
/// that its `next` is where the page ends: the last event's position for a full page, at
/// least that otherwise, and never before `after`.
pub(super) fn check_page(page: &LogPage, after: Position, limit: usize, doing: &str) -> Outcome {
    let events = &page.events;
    ensure!(
        events.len() <= limit,
        "{doing} after position {after} with limit {limit} returned {} events",
        events.len()
    );
    ensure!(
        page.next >= after,
        "{doing} after position {after}: the page says the next read starts after {}, before where this one started",
        page.next
    );
    match events.last() {
        Some(last) if events.len() == limit => ensure_eq!(
            page.next,
            last.position,
            "{doing} after position {after}: `next` of a full page"
        ),
        Some(last) => ensure!(
            page.next >= last.position,
            "{doing} after position {after}: `next` ({}) is before the page's last event ({})",
            page.next,
            last.position
        ),
        None => {}
    }
    check_positions(events, after, doing)
}

/// What an appended event must read back as.
#[derive(Debug, Clone)]
pub(super) struct Expected {
    pub(super) stream: Uuid,
    pub(super) version: u64,
    pub(super) event: NewEvent,
}

impl Expected {
    /// The events of one append to `stream` at `expected`.
    pub(super) fn appended(stream: Uuid, expected: u64, events: &[NewEvent]) -> Vec<Self> {
        events
            .iter()
            .enumerate()
            .map(|(i, event)| Self {
                stream,
                version: expected + i as u64 + 1,
                event: event.clone(),
            })
            .collect()
    }
}

/// Compares what a replay was lent with the events appended: the columns a [`ReplayedEvent`]
/// holds, in order, and as many.
pub(super) fn compare_replayed(actual: &[Replayed], expected: &[Expected], doing: &str) -> Outcome {
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let at = format!(
            "{doing}: event #{i} (expected stream {} version {})",
            e.stream, e.version
        );
        ensure_eq!(a.stream_id, e.stream, "{at}: stream id");
        ensure_eq!(a.version, e.version, "{at}: version");
        ensure_eq!(a.name, e.event.name, "{at}: event name");
        ensure_eq!(
            a.schema_version,
            e.event.schema_version,
            "{at}: schema version"
        );
        if a.payload != e.event.payload {
            fail!(
                "{at}: payload differs: {}",
                bytes_difference(&e.event.payload, &a.payload)
            );
        }
    }
    ensure!(
        actual.len() == expected.len(),
        "{doing}: expected {} events, got {}{}",
        expected.len(),
        actual.len(),
        match actual.get(expected.len()) {
            Some(extra) => format!(
                "; the first extra one is stream {} version {}",
                extra.stream_id, extra.version
            ),
            None => String::new(),
        }
    );
    Ok(())
}

/// Checks that a replay was lent what a read of the same range returned, value for value.
pub(super) fn compare_with_read(
    visited: &[Replayed],
    read: &[StoredEvent],
    doing: &str,
) -> Outcome {
    let read: Vec<Replayed> = read.iter().map(Replayed::from).collect();
    for (i, (v, r)) in visited.iter().zip(&read).enumerate() {
        ensure_eq!(v, r, "{doing}: event #{i} visited and read");
    }
    ensure_eq!(
        visited.len(),
        read.len(),
        "{doing}: events visited and read"
    );
    Ok(())
}

/// Compares stored events to what was appended, field by field, naming the first difference:
/// what a replay is lent ([`compare_replayed`]), then each event's id and metadata.
pub(super) fn compare(actual: &[StoredEvent], expected: &[Expected], doing: &str) -> Outcome {
    let lent: Vec<Replayed> = actual.iter().map(Replayed::from).collect();
    compare_replayed(&lent, expected, doing)?;
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let at = format!(
            "{doing}: event #{i} (expected stream {} version {})",
            e.stream, e.version
        );
        ensure_eq!(a.id, e.event.id, "{at}: event id");
        if a.metadata != e.event.metadata {
            fail!(
                "{at}: metadata differs: expected {}, got {}",
                abbreviate(&e.event.metadata),
                abbreviate(&a.metadata)
            );
        }
    }
    Ok(())
}

/// Says how two byte strings differ without printing a megabyte.
pub(super) fn bytes_difference(expected: &[u8], actual: &[u8]) -> String {
    let first = expected
        .iter()
        .zip(actual)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(actual.len()));
    format!(
        "expected {} bytes, got {} bytes; first difference at byte {first}: expected {}, got {}",
        expected.len(),
        actual.len(),
        hex_window(expected, first),
        hex_window(actual, first)
    )
}

fn hex_window(bytes: &[u8], at: usize) -> String {
    let window = bytes.get(at..).unwrap_or_default();
    if window.is_empty() {
        return "end of data".to_owned();
    }
    let mut out = String::new();
    for b in window.iter().take(16) {
        let _ = write!(out, "{b:02x} ");
    }
    if window.len() > 16 {
        out.push('…');
    }
    out.trim_end().to_owned()
}

/// Debug output cut to a readable length.
pub(super) fn abbreviate(value: &impl Debug) -> String {
    let mut text = format!("{value:?}");
    if text.len() > 300 {
        let mut cut = 300;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// Checks that a store-recorded time is plausible: near the wall clock around the append (this
/// catches unit mix-ups such as milliseconds read back as microseconds).
pub(super) fn check_recorded_at(
    recorded: SystemTime,
    before: SystemTime,
    after: SystemTime,
    what: &str,
) -> Outcome {
    // A database server's clock may differ from ours; five minutes is generous for that and
    // still far smaller than any unit error.
    let slack = Duration::from_secs(300);
    let lo = before.checked_sub(slack).unwrap_or(SystemTime::UNIX_EPOCH);
    let hi = after + slack;
    ensure!(
        recorded >= lo && recorded <= hi,
        "{what}: recorded_at is {recorded:?}, but the append happened between {before:?} and {after:?}"
    );
    Ok(())
}

/// Whether two times are equal at millisecond precision (stores may keep less than
/// nanoseconds).
pub(super) fn same_time(a: SystemTime, b: SystemTime) -> bool {
    let diff = match a.duration_since(b) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    diff < Duration::from_millis(1)
}

/// The message of a panicked task.
pub(super) fn panic_message(join: tokio::task::JoinError) -> String {
    match join.try_into_panic() {
        Ok(payload) => {
            if let Some(s) = payload.downcast_ref::<&str>() {
                (*s).to_owned()
            } else if let Some(s) = payload.downcast_ref::<String>() {
                s.clone()
            } else {
                "a non-string panic payload".to_owned()
            }
        }
        Err(join) => join.to_string(),
    }
}
