//! Reading single messages from the stream leader, and reading one event stream (in batches,
//! through [`Cursor`]).

use std::time::SystemTime;

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{RawMessageErrorKind, Stream};
use futures_util::TryStreamExt;
use uuid::Uuid;

use super::batch::{BATCH_MESSAGES, Cursor};
use super::known::Known;
use super::{BACKEND, Inner, message};
use crate::error::{Error, Result};
use crate::persistence::position::Position;
use crate::persistence::record::{StoredEvent, StreamRange};
use crate::persistence::store::EventStream;

/// Which message to get.
#[derive(Debug, Clone, Copy)]
pub(super) enum Get<'a> {
    /// The first message at or after a sequence on a subject (wildcards allowed).
    Next { subject: &'a str, from: u64 },
    /// The last message on a subject (wildcards allowed).
    Last(&'a str),
}

/// A stream's newest event, as the concurrency check needs it.
#[derive(Debug, Clone)]
pub(super) struct LastEvent {
    /// Its message's sequence.
    pub(super) sequence: u64,
    /// Its version in the stream.
    pub(super) version: u64,
    /// The subject it was published to (its category's).
    pub(super) subject: String,
}

impl Inner {
    /// Gets one message from `stream`'s leader, or `None` if there is none.
    pub(super) async fn get(&self, stream: &Stream, get: Get<'_>) -> Result<Option<StreamMessage>> {
        let builder = stream.raw_message_builder();
        let (builder, what) = match get {
            Get::Next { subject, from } => (
                builder.next_by_subject(subject).sequence(from.max(1)),
                format!("reading the next message on `{subject}` from sequence {from}"),
            ),
            Get::Last(subject) => (
                builder.last_by_subject(subject),
                format!("reading the last message on `{subject}`"),
            ),
        };
        match builder.send().await {
            Ok(message) => Ok(Some(message)),
            Err(error) => match error.kind() {
                RawMessageErrorKind::NoMessageFound => Ok(None),
                // JetStream is "temporarily unavailable" (503): the stream has no leader right
                // now (an election, or its node unreachable). Asking again later works.
                RawMessageErrorKind::JetStream(api) if api.code() == 503 => {
                    Err(Error::busy(BACKEND, what, error))
                }
                _ => Err(Error::backend(BACKEND, what, error)),
            },
        }
    }

    /// The newest event of a stream, or `None` for an unknown stream.
    pub(super) async fn last_of_stream(&self, stream_id: Uuid) -> Result<Option<LastEvent>> {
        let subject = self.subjects.stream_any_category(stream_id);
        let Some(message) = self.get(&self.events, Get::Last(&subject)).await? else {
            return Ok(None);
        };
        let version = message::event_version(&message.payload, Position::new(message.sequence))?;
        self.known.remember(stream_id, version, message.sequence);
        Ok(Some(LastEvent {
            sequence: message.sequence,
            version,
            subject: message.subject.to_string(),
        }))
    }

    /// The event a message of the events stream holds.
    pub(super) fn event(message: &StreamMessage) -> Result<StoredEvent> {
        message::decode_event(
            &message.payload,
            Position::new(message.sequence),
            SystemTime::from(message.time),
        )
    }

    pub(super) fn read_stream(&self, stream_id: Uuid, range: StreamRange) -> EventStream<'_> {
        if range.backwards {
            // There is no "previous message on a subject": read the range forwards, hand it
            // out newest first.
            let forwards = StreamRange {
                backwards: false,
                limit: None,
                ..range
            };
            return Box::pin(
                futures_util::stream::once(async move {
                    let mut events = Vec::new();
                    let mut reader = StreamReader::new(self, stream_id, forwards);
                    // With a limit, only the newest `limit` events of the range are read: from
                    // `top + 1 - limit`, where the reader starts without reading what is before
                    // it (a known sequence, or a search, see `StreamReader::seek`).
                    if let Some(limit) = range.limit {
                        let last = self.last_of_stream(stream_id).await?;
                        let newest = last.as_ref().map_or(0, |last| last.version);
                        let top = range.to.map_or(newest, |to| to.min(newest));
                        reader.start = reader.start.max((top + 1).saturating_sub(limit as u64));
                        reader.range.to = Some(top);
                        reader.last = last;
                    }
                    while let Some(event) = reader.next(self).await? {
                        events.push(event);
                    }
                    events.reverse();
                    events.truncate(range.limit.unwrap_or(usize::MAX));
                    Ok::<_, Error>(futures_util::stream::iter(events.into_iter().map(Ok)))
                })
                .try_flatten(),
            );
        }
        Box::pin(futures_util::stream::unfold(
            Some(StreamReader::new(self, stream_id, range)),
            move |reader| async move {
                let mut reader = reader?;
                match reader.next(self).await {
                    Ok(Some(event)) => Some((Ok(event), Some(reader))),
                    Ok(None) => None,
                    Err(error) => Some((Err(error), None)),
                }
            },
        ))
    }
}

/// How far below the version a read starts at, a read may start instead of searching closer:
/// those events come in the first batch and are skipped, which costs less than a request.
const NEAR: u64 = 16;

/// Reads a stream forwards, in batches (see [`Cursor`]), checking that versions follow each
/// other.
struct StreamReader {
    stream_id: Uuid,
    range: StreamRange,
    /// The stream's messages (`NAME.e.*.S`) after the last one read.
    cursor: Cursor,
    /// The version of the last event read, and its message's sequence.
    version: u64,
    sequence: u64,
    handed_out: usize,
    /// The first version to read: the reader seeks there before its first read.
    start: u64,
    started: bool,
    /// The stream's newest event, if the caller already read it (the seek needs it).
    last: Option<LastEvent>,
    /// The event a known sequence says the first message read is: if it is not, the hint was
    /// wrong and the reader seeks again without hints.
    check: Option<Known>,
}

impl StreamReader {
    fn new(inner: &Inner, stream_id: Uuid, range: StreamRange) -> Self {
        Self {
            stream_id,
            range,
            cursor: Cursor::new(inner.subjects.stream_any_category(stream_id), 0, None),
            version: 0,
            sequence: 0,
            handed_out: 0,
            start: range.from,
            started: false,
            last: None,
            check: None,
        }
    }

    /// Moves to just before the event at `version` without reading the events before it.
    ///
    /// A known sequence of that event or one a little below it (see [`known`](super::known))
    /// is where the read starts, checked by its first message. Otherwise the sequence is
    /// searched for between the nearest known events (or the stream's start and its newest
    /// event): versions grow with sequences within a stream, so each probe (a leader request
    /// for the first message on the stream's subject at or after a sequence) narrows the
    /// range; probes alternate between interpolating (a stream's events tend to be spread
    /// evenly over the log) and halving, and stop [`NEAR`] versions below.
    async fn seek(&mut self, inner: &Inner, version: u64, hints: bool) -> Result<()> {
        let (below, above) = if hints {
            inner.known.around(self.stream_id, version)
        } else {
            (None, None)
        };
        if let Some(below) = below.filter(|below| version - below.version <= NEAR) {
            self.start_at(below, true);
            return Ok(());
        }
        let last = match self.last.take() {
            Some(last) => Some(last),
            None => inner.last_of_stream(self.stream_id).await?,
        };
        let Some(last) = last else {
            return Ok(());
        };
        if last.version < version {
            // Nothing that far: the read ends at once (at the leader).
            self.cursor.seek(last.sequence);
            self.version = last.version;
            self.sequence = last.sequence;
            return Ok(());
        }
        // A hint above the newest event is stale: only the newest bounds the search then.
        let above =
            above.filter(|above| above.version <= last.version && above.sequence <= last.sequence);
        let (hi, hinted_hi) = match above {
            Some(above) => (above, true),
            None => (
                Known {
                    version: last.version,
                    sequence: last.sequence,
                },
                false,
            ),
        };
        let lo = below.unwrap_or(Known {
            version: 0,
            sequence: 0,
        });
        match self
            .search(inner, version, lo, below.is_some(), hi, hinted_hi)
            .await?
        {
            Some((start, check)) => {
                self.start_at(start, check);
                Ok(())
            }
            None if hints => {
                // The hints were inconsistent with what the stream holds: search without.
                inner.known.forget(self.stream_id);
                self.last = Some(last);
                Box::pin(self.seek(inner, version, false)).await
            }
            None => Err(Error::Corrupt {
                stream: self.stream_id,
                version,
                message: format!(
                    "the stream is at version {} but version {version} was not found",
                    last.version
                ),
            }),
        }
    }

    /// Searches for where to start reading `version`: between the event `lo` (version 0 for
    /// the stream's start) and the event `hi`, both at or around it. Returns the event to start
    /// at and whether it must be checked (it came from a hint), or `None` if the stream holds
    /// no such version between them.
    async fn search(
        &mut self,
        inner: &Inner,
        version: u64,
        mut lo: Known,
        mut lo_hinted: bool,
        hi: Known,
        hi_hinted: bool,
    ) -> Result<Option<(Known, bool)>> {
        if hi.version == version {
            return Ok(Some((hi, hi_hinted)));
        }
        let subject = inner.subjects.stream_any_category(self.stream_id);
        // The sequence of `version` is in `first..=last`: each event between takes one.
        let mut first = lo.sequence + (version - lo.version);
        let Some(mut last) = hi.sequence.checked_sub(hi.version - version) else {
            return Ok(None);
        };
        // The point interpolated against: an event's version and a sequence at or below it.
        let mut upper = hi;
        let mut halve = false;
        loop {
            if version - lo.version <= NEAR {
                return Ok(Some((lo, lo_hinted)));
            }
            if first > last {
                return Ok(None);
            }
            let width = last - first;
            let guess = if halve {
                first + width / 2
            } else {
                let span = u128::from(upper.sequence.saturating_sub(lo.sequence));
                let versions = u128::from(upper.version - lo.version).max(1);
                let offset = u128::from(version - lo.version) * span / versions;
                lo.sequence
                    .saturating_add(u64::try_from(offset).unwrap_or(u64::MAX))
            }
            .clamp(first, last);
            let next = Get::Next {
                subject: &subject,
                from: guess,
            };
            let Some(found) = inner.get(&inner.events, next).await? else {
                return Ok(None);
            };
            let found_version =
                message::event_version(&found.payload, Position::new(found.sequence))?;
            let at = Known {
                version: found_version,
                sequence: found.sequence,
            };
            match found_version.cmp(&version) {
                std::cmp::Ordering::Equal => return Ok(Some((at, false))),
                std::cmp::Ordering::Less => {
                    lo = at;
                    lo_hinted = false;
                    first = at.sequence + (version - at.version);
                }
                std::cmp::Ordering::Greater => {
                    // Nothing of the stream in `guess..found.sequence`: the event before the
                    // one found is below `guess`.
                    upper = Known {
                        version: found_version,
                        sequence: guess,
                    };
                    match (guess - 1).checked_sub(found_version - 1 - version) {
                        Some(below) => last = last.min(below),
                        None => return Ok(None),
                    }
                }
            }
            // Interpolation that did not halve the range is followed by a halving.
            halve = !halve && last.saturating_sub(first) > width / 2;
        }
    }

    /// Starts the read at the event `at` (read again as the first message), or at the stream's
    /// start for version 0. With `check`, the first message must be that event.
    fn start_at(&mut self, at: Known, check: bool) {
        if at.version == 0 {
            self.cursor.seek(0);
            self.version = 0;
            self.sequence = 0;
            return;
        }
        self.cursor.seek(at.sequence - 1);
        self.version = at.version - 1;
        self.sequence = 0;
        self.check = check.then_some(at);
    }

    /// How many more events this read can take: the size of the next batch.
    fn wanted(&self) -> usize {
        let mut wanted = BATCH_MESSAGES as u64;
        if let Some(to) = self.range.to {
            wanted = wanted.min(to.saturating_sub(self.version));
        }
        if let Some(limit) = self.range.limit {
            let before_start = self.range.from.saturating_sub(self.version + 1);
            let left = (limit.saturating_sub(self.handed_out) as u64).saturating_add(before_start);
            wanted = wanted.min(left);
        }
        usize::try_from(wanted).unwrap_or(BATCH_MESSAGES)
    }

    async fn next(&mut self, inner: &Inner) -> Result<Option<StoredEvent>> {
        if !self.started {
            self.started = true;
            if self.start > 1 {
                self.seek(inner, self.start, true).await?;
            }
        }
        loop {
            if self.handed_out >= self.range.limit.unwrap_or(usize::MAX)
                || self.range.to.is_some_and(|to| self.version >= to)
            {
                return Ok(self.end(inner));
            }
            let wanted = self.wanted();
            let message = self.cursor.next(inner, wanted).await?;
            if let Some(check) = self.check.take() {
                let holds = message.as_ref().is_some_and(|message| {
                    message.sequence == check.sequence
                        && message::event_version(&message.payload, Position::new(message.sequence))
                            .is_ok_and(|version| version == check.version)
                });
                if !holds {
                    // A wrong hint: forget it and find the start by searching.
                    inner.known.forget(self.stream_id);
                    self.seek(inner, self.start, false).await?;
                    continue;
                }
            }
            let Some(message) = message else {
                return Ok(self.end(inner));
            };
            let event = Inner::event(&message)?;
            if event.version != self.version + 1 {
                return Err(Error::Corrupt {
                    stream: self.stream_id,
                    version: event.version,
                    message: format!(
                        "version {} follows version {} (at sequence {})",
                        event.version, self.version, event.position
                    ),
                });
            }
            self.version = event.version;
            self.sequence = message.sequence;
            if event.version >= self.range.from {
                self.handed_out += 1;
                return Ok(Some(event));
            }
        }
    }

    /// Ends the read, remembering where its last event is (the next read from here starts
    /// there).
    fn end(&self, inner: &Inner) -> Option<StoredEvent> {
        inner
            .known
            .remember(self.stream_id, self.version, self.sequence);
        None
    }
}
