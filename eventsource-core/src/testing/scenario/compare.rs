//! How the scenarios compare events: every expected and every actual event becomes an
//! [`ExpectedEvent`] (its stream, its stored name and its payload as JSON), the two lists are
//! compared in order, and a mismatch panics with both lists side by side and the first
//! difference marked and described.
//!
//! Events are compared by what is stored, not with `PartialEq`: the event enums the derive
//! writes implement nothing their user didn't ask for, and two events that store the same name
//! and the same JSON are the same fact to every reader of the log.

use std::fmt;

use serde_json::Value;
use uuid::Uuid;

use crate::domain::event::{Event, EventEnum};
use crate::persistence::codec::Json;
use crate::persistence::record::StoredEvent;

/// Above this many characters, an expected event is too wide to sit beside the actual one: the
/// table puts the two on lines of their own instead.
const SIDE_BY_SIDE_WIDTH: usize = 60;

/// An event as a scenario compares it: its stream (for events on several streams), its stored
/// name and its payload as JSON.
///
/// [`ProcessScenario::then`](super::ProcessScenario::then) takes these, since the events a
/// process causes are on streams of any aggregates: a `(stream id, event)` pair converts into
/// one, and [`ExpectedEvent::new`] builds one where the pairs of a list hold different event
/// types.
///
/// ```
/// use eventsource_core::prelude::*;
/// use eventsource_core::testing::scenario::ExpectedEvent;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone)]
/// struct Invoiced { cents: u64 }
///
/// let invoice = Uuid::now_v7();
/// let expected = ExpectedEvent::new(invoice, Invoiced { cents: 250 });
/// assert_eq!(expected, ExpectedEvent::from((invoice, Invoiced { cents: 250 })));
/// assert_eq!(expected.to_string(), format!(r#"{invoice} Invoiced {{"cents":250}}"#));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedEvent {
    stream_id: Option<Uuid>,
    name: String,
    payload: Value,
}

impl ExpectedEvent {
    /// `event` on the stream `stream_id`, as it would be stored: its stored name and its JSON
    /// payload.
    ///
    /// # Panics
    ///
    /// If the event does not serialize (a map with keys JSON can't hold, a failing `Serialize`
    /// impl): it could not be stored either.
    pub fn new<E: Event>(stream_id: Uuid, event: E) -> Self {
        Self {
            stream_id: Some(stream_id),
            name: E::NAME.to_owned(),
            payload: json_payload(E::NAME, event.encode_payload(&Json)),
        }
    }

    /// An event of an aggregate's event enum on the stream `stream_id`.
    ///
    /// # Panics
    ///
    /// As [`new`](Self::new).
    pub fn from_enum<E: EventEnum>(stream_id: Uuid, event: E) -> Self {
        Self {
            stream_id: Some(stream_id),
            ..Self::of_enum(&event)
        }
    }

    /// An event of an aggregate's event enum, on no particular stream (a scenario of one
    /// aggregate has one stream).
    pub(super) fn of_enum<E: EventEnum>(event: &E) -> Self {
        Self {
            stream_id: None,
            name: event.name().to_owned(),
            payload: json_payload(event.name(), event.encode(&Json)),
        }
    }

    /// A stored event, with its stream if `with_stream`.
    pub(super) fn stored(stored: &StoredEvent, with_stream: bool) -> Self {
        let payload = serde_json::from_slice(&stored.payload).unwrap_or_else(|_| {
            Value::String(format!(
                "<{} bytes that are not JSON>",
                stored.payload.len()
            ))
        });
        Self {
            stream_id: with_stream.then_some(stored.stream_id),
            name: stored.name.clone(),
            payload,
        }
    }

    /// The stream it is expected on, if the scenario compares streams.
    pub fn stream_id(&self) -> Option<Uuid> {
        self.stream_id
    }

    /// Its stored name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its payload as JSON.
    pub fn payload(&self) -> &Value {
        &self.payload
    }
}

impl<E: Event> From<(Uuid, E)> for ExpectedEvent {
    /// `event` on the stream `stream_id`: see [`ExpectedEvent::new`].
    fn from((stream_id, event): (Uuid, E)) -> Self {
        Self::new(stream_id, event)
    }
}

impl fmt::Display for ExpectedEvent {
    /// `stream name payload`, the payload as compact JSON (`Withdrawn {"cents":30}`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(stream) = self.stream_id {
            write!(f, "{stream} ")?;
        }
        write!(f, "{} {}", self.name, self.payload)
    }
}

fn json_payload<Error: fmt::Display>(name: &str, encoded: Result<Vec<u8>, Error>) -> Value {
    let bytes = match encoded {
        Ok(bytes) => bytes,
        Err(error) => panic!("the expected event `{name}` does not encode as JSON: {error}"),
    };
    match serde_json::from_slice(&bytes) {
        Ok(value) => value,
        Err(error) => {
            panic!("the expected event `{name}` encodes to JSON that doesn't parse: {error}")
        }
    }
}

/// Panics with `what`, the first difference and both lists side by side if `actual` differs
/// from `expected`.
#[track_caller]
pub(super) fn assert_same_events(what: &str, expected: &[ExpectedEvent], actual: &[ExpectedEvent]) {
    if let Some(message) = mismatch(what, expected, actual) {
        panic!("{message}");
    }
}

/// The message [`assert_same_events`] panics with, or `None` if the lists are equal.
pub(super) fn mismatch(
    what: &str,
    expected: &[ExpectedEvent],
    actual: &[ExpectedEvent],
) -> Option<String> {
    let rows = expected.len().max(actual.len());
    let first = (0..rows).find(|&i| expected.get(i) != actual.get(i))?;
    let detail = describe(first, expected, actual);
    Some(format!(
        "{what}: {detail}\n\n{}",
        table(expected, actual, first)
    ))
}

/// "3 events", "1 event".
pub(super) fn count(n: usize) -> String {
    match n {
        1 => "1 event".to_owned(),
        n => format!("{n} events"),
    }
}

/// The events one per line, numbered, for messages that show one list.
pub(super) fn list(events: &[ExpectedEvent]) -> String {
    if events.is_empty() {
        return "    (none)".to_owned();
    }
    let width = events.len().to_string().len();
    events
        .iter()
        .enumerate()
        .map(|(i, event)| format!("  {:>width$}  {event}", i + 1))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What is wrong with row `i`, the first that differs.
fn describe(i: usize, expected: &[ExpectedEvent], actual: &[ExpectedEvent]) -> String {
    let n = i + 1;
    let counts = || {
        format!(
            "expected {}, got {}",
            count(expected.len()),
            count(actual.len())
        )
    };
    match (expected.get(i), actual.get(i)) {
        (Some(e), None) => format!("event #{n} `{}` is missing ({})", e.name, counts()),
        (None, Some(a)) => format!("event #{n} `{}` was not expected ({})", a.name, counts()),
        (Some(e), Some(a)) if e.stream_id != a.stream_id => format!(
            "event #{n} `{}` is on stream {}, expected stream {}",
            a.name,
            show_stream(a.stream_id),
            show_stream(e.stream_id)
        ),
        (Some(e), Some(a)) if e.name != a.name => {
            format!("event #{n} is `{}`, expected `{}`", a.name, e.name)
        }
        (Some(e), Some(a)) => {
            let (path, want, got) = first_difference(String::new(), &e.payload, &a.payload)
                .unwrap_or_else(|| (String::new(), Some(&e.payload), Some(&a.payload)));
            let at = match path.strip_prefix('.') {
                Some(field) => format!(" at `{field}`"),
                None if path.is_empty() => String::new(),
                None => format!(" at `{path}`"),
            };
            format!(
                "event #{n} `{}` differs in its payload{at}: {}, expected {}",
                a.name,
                show_value(got),
                show_value(want)
            )
        }
        (None, None) => format!("event #{n} differs"),
    }
}

fn show_stream(stream: Option<Uuid>) -> String {
    stream.map_or_else(|| "(none)".to_owned(), |id| id.to_string())
}

fn show_value(value: Option<&Value>) -> String {
    value.map_or_else(|| "(missing)".to_owned(), Value::to_string)
}

/// Where two JSON values first differ: the path (`.lines[2].sku`, empty for the whole value)
/// and the two values there (`None` where a field or an element is missing).
fn first_difference<'v>(
    path: String,
    expected: &'v Value,
    actual: &'v Value,
) -> Option<(String, Option<&'v Value>, Option<&'v Value>)> {
    if expected == actual {
        return None;
    }
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let mut keys: Vec<&String> = e.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|key| {
                let path = format!("{path}.{key}");
                match (e.get(key), a.get(key)) {
                    (Some(e), Some(a)) => first_difference(path, e, a),
                    (e, a) => Some((path, e, a)),
                }
            })
        }
        (Value::Array(e), Value::Array(a)) => (0..e.len().max(a.len())).find_map(|i| {
            let path = format!("{path}[{i}]");
            match (e.get(i), a.get(i)) {
                (Some(e), Some(a)) => first_difference(path, e, a),
                (e, a) => Some((path, e, a)),
            }
        }),
        _ => Some((path, Some(expected), Some(actual))),
    }
}

/// Both lists, row by row: side by side with `=` or `≠` between when the expected events are
/// narrow enough, else each row on two lines. The first difference is marked with `>`.
fn table(expected: &[ExpectedEvent], actual: &[ExpectedEvent], first: usize) -> String {
    let rows = expected.len().max(actual.len());
    let cell = |events: &[ExpectedEvent], i: usize| {
        events
            .get(i)
            .map_or_else(|| "—".to_owned(), ToString::to_string)
    };
    let number = rows.to_string().len();
    let wide = (0..rows)
        .map(|i| cell(expected, i).chars().count())
        .max()
        .unwrap_or(0)
        .max("expected".len());
    let mut lines = Vec::with_capacity(rows * 2 + 1);
    if wide <= SIDE_BY_SIDE_WIDTH {
        lines.push(format!(
            "  {:>number$}  {:<wide$}   actual",
            "#", "expected"
        ));
    }
    for i in 0..rows {
        let same = expected.get(i) == actual.get(i);
        let mark = if i == first { '>' } else { ' ' };
        let (e, a) = (cell(expected, i), cell(actual, i));
        if wide <= SIDE_BY_SIDE_WIDTH {
            let sign = if same { '=' } else { '≠' };
            lines.push(format!("{mark} {:>number$}  {e:<wide$} {sign} {a}", i + 1));
        } else {
            let sign = if same { ' ' } else { '≠' };
            lines.push(format!("{mark} {:>number$}  expected   {e}", i + 1));
            lines.push(format!("  {:>number$}  actual   {sign} {a}", ""));
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(name: &str, payload: Value) -> ExpectedEvent {
        ExpectedEvent {
            stream_id: None,
            name: name.to_owned(),
            payload,
        }
    }

    #[test]
    fn equal_lists_have_no_mismatch() {
        let events = [event("Deposited", json!({"cents": 100}))];
        assert_eq!(mismatch("recorded", &events, &events), None);
        assert_eq!(mismatch("recorded", &[], &[]), None);
    }

    #[test]
    fn a_payload_difference_is_marked_side_by_side_with_its_field() {
        let expected = [
            event("Deposited", json!({"cents": 100})),
            event("Withdrawn", json!({"cents": 30})),
        ];
        let actual = [
            event("Deposited", json!({"cents": 100})),
            event("Withdrawn", json!({"cents": 40})),
            event("Withdrawn", json!({"cents": 5})),
        ];
        let message = mismatch("the command recorded other events", &expected, &actual).unwrap();
        assert_eq!(
            message,
            "the command recorded other events: event #2 `Withdrawn` differs in its payload at `cents`: 40, expected 30\n\
             \n\
             \x20 #  expected                  actual\n\
             \x20 1  Deposited {\"cents\":100} = Deposited {\"cents\":100}\n\
             > 2  Withdrawn {\"cents\":30}  ≠ Withdrawn {\"cents\":40}\n\
             \x20 3  —                       ≠ Withdrawn {\"cents\":5}"
        );
    }

    #[test]
    fn each_kind_of_difference_is_described() {
        let a = event("A", json!({"lines": [{"sku": "x"}, {"sku": "y"}]}));
        let describe_one = |e: &[ExpectedEvent], got: &[ExpectedEvent]| {
            mismatch("m", e, got)
                .unwrap()
                .lines()
                .next()
                .unwrap()
                .to_owned()
        };
        let b = event("A", json!({"lines": [{"sku": "x"}, {"sku": "z"}]}));
        assert_eq!(
            describe_one(std::slice::from_ref(&a), &[b]),
            r#"m: event #1 `A` differs in its payload at `lines[1].sku`: "z", expected "y""#
        );
        let c = event("A", json!({"lines": [{"sku": "x"}]}));
        assert_eq!(
            describe_one(std::slice::from_ref(&a), &[c]),
            r#"m: event #1 `A` differs in its payload at `lines[1]`: (missing), expected {"sku":"y"}"#
        );
        assert_eq!(
            describe_one(&[event("A", json!(1))], &[event("A", json!(2))]),
            "m: event #1 `A` differs in its payload: 2, expected 1"
        );
        assert_eq!(
            describe_one(std::slice::from_ref(&a), &[event("B", json!(null))]),
            "m: event #1 is `B`, expected `A`"
        );
        assert_eq!(
            describe_one(std::slice::from_ref(&a), &[]),
            "m: event #1 `A` is missing (expected 1 event, got 0 events)"
        );
        let on = |id| ExpectedEvent {
            stream_id: Some(id),
            ..a.clone()
        };
        let (x, y) = (Uuid::nil(), Uuid::max());
        assert_eq!(
            describe_one(&[on(x)], &[on(y)]),
            format!("m: event #1 `A` is on stream {y}, expected stream {x}")
        );
    }

    #[test]
    fn wide_events_are_stacked() {
        let wide = event("Wide", json!({"text": "x".repeat(80)}));
        let message = mismatch("m", std::slice::from_ref(&wide), &[]).unwrap();
        let table: Vec<&str> = message.lines().skip(2).collect();
        assert_eq!(
            table,
            [
                format!("> 1  expected   {wide}").as_str(),
                "     actual   ≠ —"
            ]
        );
    }
}
