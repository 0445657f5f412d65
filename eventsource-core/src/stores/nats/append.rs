//! Appends: the concurrency check of every stream and of the tracking record, one message per
//! event, and one atomic batch when there is more than one message.

use std::collections::HashSet;

use async_nats::HeaderMap;
use async_nats::header::{
    NATS_BATCH_COMMIT, NATS_BATCH_ID, NATS_BATCH_SEQUENCE, NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
};
use serde::Deserialize;

use super::options::MAX_BATCH_MESSAGES;
use super::{BACKEND, Inner, message};
use crate::error::{Error, Result};
use crate::persistence::position::Position;
use crate::persistence::record::AppendBatch;

/// The header that makes `Nats-Expected-Last-Subject-Sequence` check a wildcard subject: a
/// stream's last event whatever the category it was appended with (nats-server 2.11).
const EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT: &str = "Nats-Expected-Last-Subject-Sequence-Subject";

/// JetStream's error codes for a refused `Nats-Expected-Last-Subject-Sequence`: against the
/// stored messages (10071), or, on a replicated stream, against a message on the subject that
/// the leader has proposed but not yet applied (10164).
const WRONG_LAST_SEQUENCE: [u64; 2] = [10071, 10164];

/// How often, and how long apart, a refusal for a concurrent append is diagnosed again while
/// that append may still be in flight (proposed, not yet readable).
const DIAGNOSIS_TRIES: u32 = 20;
const DIAGNOSIS_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

/// One message to publish.
#[derive(Debug)]
struct Outgoing {
    subject: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// The server's answer to a publish: an acknowledgement or an error.
#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    seq: u64,
    error: Option<ApiError>,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    code: u64,
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (status {}, JetStream error {})",
            self.description, self.code, self.err_code
        )
    }
}

impl std::error::Error for ApiError {}

impl Inner {
    pub(super) async fn append(&self, batch: AppendBatch) -> Result<Position> {
        let mut seen = HashSet::with_capacity(batch.streams.len());
        for append in &batch.streams {
            if !seen.insert(append.stream_id) {
                return Err(Error::DuplicateStreamInBatch {
                    stream: append.stream_id,
                });
            }
        }
        let mut outgoing = Vec::with_capacity(batch.event_count() + 1);
        // The tracking record goes first, so that the batch's last message (whose sequence the
        // server answers with) is its last event.
        if let Some(tracking) = &batch.tracking {
            let recorded = self.recorded(&tracking.tracker).await?;
            if tracking.position <= recorded.position {
                return Err(Error::TrackingConflict {
                    tracker: tracking.tracker.clone(),
                    position: tracking.position,
                    recorded: recorded.position,
                });
            }
            let mut headers = HeaderMap::new();
            headers.insert(
                NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                recorded.sequence.to_string().as_str(),
            );
            outgoing.push(Outgoing {
                subject: self.subjects.tracker(&tracking.tracker),
                headers,
                body: message::encode_tracking(tracking.position),
            });
        }
        for append in &batch.streams {
            let last = self.last_of_stream(append.stream_id).await?;
            let (sequence, actual) = last.as_ref().map_or((0, 0), |l| (l.sequence, l.version));
            if actual != append.expected_version {
                return Err(Error::Conflict {
                    stream: append.stream_id,
                    expected: append.expected_version,
                    actual,
                });
            }
            let subject = self.subjects.stream(&append.category, append.stream_id);
            if let Some(last) = last.filter(|last| last.subject != subject) {
                return Err(self.unsupported(
                    "append to a stream with another category than before",
                    format!(
                        "stream {} was appended to as `{}`, now as category `{}`: the category is part of the subject, so a stream keeps the one it started with",
                        append.stream_id, last.subject, append.category
                    ),
                ));
            }
            let any_category = self.subjects.stream_any_category(append.stream_id);
            for (offset, event) in append.events.iter().enumerate() {
                let mut headers = HeaderMap::new();
                if offset == 0 {
                    headers.insert(
                        NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                        sequence.to_string().as_str(),
                    );
                    headers.insert(
                        EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT,
                        any_category.as_str(),
                    );
                }
                let version = append.expected_version + offset as u64 + 1;
                let body =
                    message::encode_event(append.stream_id, &append.category, version, event)?;
                outgoing.push(Outgoing {
                    subject: subject.clone(),
                    headers,
                    body,
                });
            }
        }
        for message in &outgoing {
            self.check_size(message.body.len(), "append")?;
        }
        if batch.event_count() == 0 {
            // Nothing to write (a tracking record alone is written below).
            if outgoing.is_empty() {
                return self.last_position().await;
            }
        }
        // Where each stream's last event is in the batch: the server answers with the
        // sequence of the batch's last message, and a batch's messages get consecutive ones.
        let messages = outgoing.len() as u64;
        let mut lasts = Vec::with_capacity(batch.streams.len());
        let mut index = u64::from(batch.tracking.is_some());
        for append in &batch.streams {
            index += append.events.len() as u64;
            if !append.events.is_empty() {
                let version = append.expected_version + append.events.len() as u64;
                lasts.push((append.stream_id, version, messages - index));
            }
        }
        let answer = match outgoing.len() {
            1 => {
                let only = outgoing.pop().ok_or_else(|| {
                    Error::backend(BACKEND, "appending", "the message to publish vanished")
                })?;
                self.publish(only).await?
            }
            count if !self.atomic => {
                return Err(self.unsupported(
                    "append several events or a tracking record at once",
                    format!(
                        "the append needs {count} messages written atomically, and nats-server {} (or its stream's configuration) has no atomic batch publish; it arrived in 2.12",
                        self.server_version
                    ),
                ));
            }
            count if count > MAX_BATCH_MESSAGES => {
                return Err(self.unsupported(
                    "append this many events at once",
                    format!(
                        "the append needs {count} messages in one atomic batch; the server takes at most {MAX_BATCH_MESSAGES}"
                    ),
                ));
            }
            _ => self.publish_batch(outgoing).await?,
        };
        match answer.error {
            None if batch.event_count() == 0 => self.last_position().await,
            None => {
                for (stream, version, from_end) in lasts {
                    if let Some(sequence) = answer.seq.checked_sub(from_end) {
                        self.known.remember(stream, version, sequence);
                    }
                }
                Ok(Position::new(answer.seq))
            }
            Some(error) => Err(self.refused(&batch, error).await),
        }
    }

    /// Publishes one message and waits for the server's answer.
    async fn publish(&self, message: Outgoing) -> Result<Answer> {
        let response = self
            .client
            .request_with_headers(message.subject, message.headers, message.body.into())
            .await;
        Self::answer(response)
    }

    /// Publishes `messages` as one atomic batch: all but the last without waiting, the last
    /// with the commit marker, answered for the whole batch.
    async fn publish_batch(&self, messages: Vec<Outgoing>) -> Result<Answer> {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let count = messages.len();
        for (index, mut message) in messages.into_iter().enumerate() {
            message.headers.insert(NATS_BATCH_ID, id.as_str());
            message
                .headers
                .insert(NATS_BATCH_SEQUENCE, (index + 1).to_string().as_str());
            if index + 1 == count {
                message.headers.insert(NATS_BATCH_COMMIT, "1");
                return self.publish(message).await;
            }
            // The server answers the commit for the whole batch; a failure of any earlier
            // message fails the commit, and an unfinished batch is dropped after its timeout.
            self.client
                .publish_with_headers(message.subject, message.headers, message.body.into())
                .await
                .map_err(|error| {
                    Error::busy(
                        BACKEND,
                        "sending an atomic batch (nothing was committed)",
                        error,
                    )
                })?;
        }
        Err(Error::backend(
            BACKEND,
            "appending",
            "an atomic batch without messages",
        ))
    }

    /// The server's answer to a publish request.
    fn answer(response: Result<async_nats::Message, async_nats::RequestError>) -> Result<Answer> {
        use async_nats::RequestErrorKind as Kind;
        let message = response.map_err(|error| match error.kind() {
            // Nobody took the message: no stream (leader) to store it right now.
            Kind::NoResponders => Error::busy(
                BACKEND,
                "appending (the stream has no leader, or does not exist)",
                error,
            ),
            Kind::InvalidSubject | Kind::MaxPayloadExceeded => {
                Error::backend(BACKEND, "appending", error)
            }
            _ => Error::outcome_unknown(BACKEND, "waiting for the append's acknowledgement", error),
        })?;
        serde_json::from_slice(&message.payload).map_err(|error| {
            Error::outcome_unknown(
                BACKEND,
                format!(
                    "reading the append's acknowledgement `{}`",
                    String::from_utf8_lossy(&message.payload)
                ),
                error,
            )
        })
    }

    /// What a refused append is: a conflict if a stream or the tracker moved since the check,
    /// else the server's error. Nothing was written either way.
    async fn refused(&self, batch: &AppendBatch, error: ApiError) -> Error {
        let concurrent = WRONG_LAST_SEQUENCE.contains(&error.err_code);
        for _ in 1..if concurrent { DIAGNOSIS_TRIES } else { 1 } {
            match self.diagnose(batch).await {
                Ok(Some(conflict)) => return conflict,
                Ok(None) => tokio::time::sleep(DIAGNOSIS_PAUSE).await,
                Err(read) => return read,
            }
        }
        match self.diagnose(batch).await {
            Ok(Some(conflict)) => conflict,
            // The check refused, but the versions still read as expected: the concurrent append
            // that got in first was not applied (it failed), or the server refused for another
            // reason.
            Ok(None) if concurrent => Error::busy(
                BACKEND,
                "appending (a concurrent append got in first)",
                error,
            ),
            Ok(None) => Error::backend(BACKEND, "appending (the server refused it)", error),
            Err(read) => read,
        }
    }

    /// The conflict that explains a refusal, if the streams or the tracker moved.
    async fn diagnose(&self, batch: &AppendBatch) -> Result<Option<Error>> {
        let diagnosis = async {
            for append in &batch.streams {
                let actual = self
                    .last_of_stream(append.stream_id)
                    .await?
                    .map_or(0, |last| last.version);
                if actual != append.expected_version {
                    return Ok(Some(Error::Conflict {
                        stream: append.stream_id,
                        expected: append.expected_version,
                        actual,
                    }));
                }
            }
            if let Some(tracking) = &batch.tracking {
                let recorded = self.recorded(&tracking.tracker).await?.position;
                if tracking.position <= recorded {
                    return Ok(Some(Error::TrackingConflict {
                        tracker: tracking.tracker.clone(),
                        position: tracking.position,
                        recorded,
                    }));
                }
            }
            Ok::<_, Error>(None)
        };
        diagnosis.await
    }

    /// Refuses a message larger than the server takes, before anything is sent.
    pub(super) fn check_size(&self, size: usize, operation: &str) -> Result<()> {
        // Headers take a few hundred bytes at most.
        if size + 1024 > self.max_payload {
            return Err(self.unsupported(
                operation,
                format!(
                    "a message of {size} bytes is larger than the server's max_payload of {} bytes (raise `max_payload` in the server's configuration)",
                    self.max_payload
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn unsupported(&self, operation: &str, reason: String) -> Error {
        Error::Unsupported {
            backend: BACKEND,
            operation: operation.to_owned(),
            reason,
        }
    }
}
