//! Reading single messages from the stream leader, and reading one event stream (in batches,
//! through [`Cursor`]).

use std::time::SystemTime;

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{RawMessageErrorKind, Stream};
use futures_util::TryStreamExt;
use uuid::Uuid;

use super::batch::{BATCH_MESSAGES, Cursor};
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
            Err(error) if matches!(error.kind(), RawMessageErrorKind::NoMessageFound) => Ok(None),
            Err(error) => Err(Error::backend(BACKEND, what, error)),
        }
    }

    /// The newest event of a stream, or `None` for an unknown stream.
    pub(super) async fn last_of_stream(&self, stream_id: Uuid) -> Result<Option<LastEvent>> {
        let subject = self.subjects.stream_any_category(stream_id);
        let Some(message) = self.get(&self.events, Get::Last(&subject)).await? else {
            return Ok(None);
        };
        let version = message::event_version(&message.payload, Position::new(message.sequence))?;
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
                    // With a limit, only the newest `limit` events of the range are needed.
                    if let Some(limit) = range.limit {
                        let last = self
                            .last_of_stream(stream_id)
                            .await?
                            .map_or(0, |l| l.version);
                        let top = range.to.map_or(last, |to| to.min(last));
                        reader.start = reader.start.max((top + 1).saturating_sub(limit as u64));
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

/// Reads a stream forwards, in batches (see [`Cursor`]), checking that versions follow each
/// other.
struct StreamReader {
    stream_id: Uuid,
    range: StreamRange,
    /// The stream's messages (`NAME.e.*.S`) after the last one read.
    cursor: Cursor,
    /// The version of the last event read.
    version: u64,
    handed_out: usize,
    /// The first version to read: the reader seeks there before its first read.
    start: u64,
    started: bool,
}

impl StreamReader {
    fn new(inner: &Inner, stream_id: Uuid, range: StreamRange) -> Self {
        Self {
            stream_id,
            range,
            cursor: Cursor::new(inner.subjects.stream_any_category(stream_id), 0, None),
            version: 0,
            handed_out: 0,
            start: range.from,
            started: false,
        }
    }

    /// Moves to just before the event at `version` without reading the events before it: a
    /// binary search over sequences (versions grow with sequences within a stream), a request
    /// per step instead of one per skipped event.
    async fn seek(&mut self, inner: &Inner, version: u64) -> Result<()> {
        let subject = inner.subjects.stream_any_category(self.stream_id);
        let Some(last) = inner.last_of_stream(self.stream_id).await? else {
            return Ok(());
        };
        if last.version < version {
            // Nothing that far: the read ends at once.
            self.cursor.seek(last.sequence);
            self.version = last.version;
            return Ok(());
        }
        let (mut lo, mut hi) = (1, last.sequence);
        while lo <= hi {
            let middle = lo + (hi - lo) / 2;
            let Some(found) = inner
                .get(
                    &inner.events,
                    Get::Next {
                        subject: &subject,
                        from: middle,
                    },
                )
                .await?
            else {
                break;
            };
            let found_version =
                message::event_version(&found.payload, Position::new(found.sequence))?;
            match found_version.cmp(&version) {
                std::cmp::Ordering::Less => lo = found.sequence + 1,
                std::cmp::Ordering::Greater => hi = middle.saturating_sub(1),
                std::cmp::Ordering::Equal => {
                    self.cursor.seek(found.sequence - 1);
                    self.version = version - 1;
                    return Ok(());
                }
            }
        }
        Err(Error::Corrupt {
            stream: self.stream_id,
            version,
            message: format!(
                "the stream is at version {} but version {version} was not found",
                last.version
            ),
        })
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
                self.seek(inner, self.start).await?;
            }
        }
        loop {
            if self.handed_out >= self.range.limit.unwrap_or(usize::MAX)
                || self.range.to.is_some_and(|to| self.version >= to)
            {
                return Ok(None);
            }
            let wanted = self.wanted();
            let Some(message) = self.cursor.next(inner, wanted).await? else {
                return Ok(None);
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
            if event.version >= self.range.from {
                self.handed_out += 1;
                return Ok(Some(event));
            }
        }
    }
}
