//! What a message's body holds: an event (or a snapshot) as a length-prefixed JSON header with
//! its fields, followed by its payload bytes as they were appended; a tracking record as its
//! position in decimal.
//!
//! ```text
//! [u32 big-endian: header length][header: JSON][payload: raw bytes]
//! ```
//!
//! The payload is never re-encoded (a 1 MiB payload costs 1 MiB, not 1.4 MiB of base64), and
//! the header keeps what the subject can't (the unescaped category, the event's id, its
//! metadata). A message's position is its JetStream sequence and an event's recorded time is the
//! time JetStream stored it; neither is in the body.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::persistence::position::Position;
use crate::persistence::record::{Metadata, NewEvent, Snapshot, StoredEvent};

/// An event's header fields.
#[derive(Debug, Serialize, Deserialize)]
struct EventHeader {
    id: Uuid,
    stream: Uuid,
    category: String,
    version: u64,
    name: String,
    schema: u32,
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    metadata: Metadata,
}

/// A snapshot's header fields.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotHeader {
    stream: Uuid,
    version: u64,
    aggregate: String,
    fingerprint: u64,
    /// Nanoseconds since the Unix epoch.
    recorded_at: u64,
    /// The sequence of the stream's event at `version` in the events stream, where the saver
    /// knew it: a read from the snapshot starts there (see [`known`](super::known)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sequence: Option<u64>,
}

/// The body of `event`, appended to `stream` of `category` at `version`.
pub(super) fn encode_event(
    stream: Uuid,
    category: &str,
    version: u64,
    event: &NewEvent,
) -> Result<Vec<u8>> {
    let header = EventHeader {
        id: event.id,
        stream,
        category: category.to_owned(),
        version,
        name: event.name.clone(),
        schema: event.schema_version,
        metadata: event.metadata.clone(),
    };
    frame(&header, &event.payload, &event.name)
}

/// The event a message at `position`, stored at `recorded_at`, holds.
pub(super) fn decode_event(
    body: &[u8],
    position: Position,
    recorded_at: SystemTime,
) -> Result<StoredEvent> {
    let (header, payload): (EventHeader, &[u8]) = unframe(body, position)?;
    Ok(StoredEvent {
        id: header.id,
        stream_id: header.stream,
        category: header.category,
        version: header.version,
        name: header.name,
        schema_version: header.schema,
        payload: payload.to_vec(),
        metadata: header.metadata,
        recorded_at,
        position,
    })
}

/// Only the stream version of the event a message holds (what the concurrency check needs).
pub(super) fn event_version(body: &[u8], position: Position) -> Result<u64> {
    let (header, _): (EventHeader, &[u8]) = unframe(body, position)?;
    Ok(header.version)
}

/// The body of a snapshot, with the sequence of the event it was taken at if known.
pub(super) fn encode_snapshot(snapshot: &Snapshot, sequence: Option<u64>) -> Result<Vec<u8>> {
    let recorded_at = snapshot
        .recorded_at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let header = SnapshotHeader {
        stream: snapshot.stream_id,
        version: snapshot.version,
        aggregate: snapshot.aggregate.clone(),
        fingerprint: snapshot.fingerprint,
        recorded_at: u64::try_from(recorded_at.as_nanos()).unwrap_or(u64::MAX),
        sequence,
    };
    frame(
        &header,
        &snapshot.state,
        &format!("snapshot of {}", snapshot.aggregate),
    )
}

/// The snapshot a message at `position` of the snapshots stream holds, and the sequence of the
/// event it was taken at if its saver knew it.
pub(super) fn decode_snapshot(body: &[u8], position: Position) -> Result<(Snapshot, Option<u64>)> {
    let (header, state): (SnapshotHeader, &[u8]) = unframe(body, position)?;
    let snapshot = Snapshot {
        stream_id: header.stream,
        version: header.version,
        aggregate: header.aggregate,
        fingerprint: header.fingerprint,
        state: state.to_vec(),
        recorded_at: UNIX_EPOCH + Duration::from_nanos(header.recorded_at),
    };
    Ok((snapshot, header.sequence))
}

/// The body of a tracking record.
pub(super) fn encode_tracking(position: Position) -> Vec<u8> {
    position.get().to_string().into_bytes()
}

/// The position a tracking record at `at` holds.
pub(super) fn decode_tracking(body: &[u8], at: Position) -> Result<Position> {
    std::str::from_utf8(body)
        .ok()
        .and_then(|text| text.parse().ok())
        .map(Position::new)
        .ok_or_else(|| malformed(at, "a tracking record is not a decimal position"))
}

fn frame<H: Serialize>(header: &H, payload: &[u8], what: &str) -> Result<Vec<u8>> {
    let header = serde_json::to_vec(header).map_err(|error| Error::Encode {
        what: what.to_owned(),
        source: crate::error::CodecError::new("json", error),
    })?;
    let length = u32::try_from(header.len()).map_err(|_| Error::Encode {
        what: what.to_owned(),
        source: crate::error::CodecError::new("json", "the header is larger than 4 GiB"),
    })?;
    let mut body = Vec::with_capacity(4 + header.len() + payload.len());
    body.extend_from_slice(&length.to_be_bytes());
    body.extend_from_slice(&header);
    body.extend_from_slice(payload);
    Ok(body)
}

fn unframe<'b, H: Deserialize<'b>>(body: &'b [u8], at: Position) -> Result<(H, &'b [u8])> {
    let (length, rest) = body
        .split_first_chunk::<4>()
        .ok_or_else(|| malformed(at, "the message is shorter than its header length"))?;
    let length = u32::from_be_bytes(*length) as usize;
    if rest.len() < length {
        return Err(malformed(at, "the header is cut short"));
    }
    let (header, payload) = rest.split_at(length);
    let header = serde_json::from_slice(header)
        .map_err(|error| malformed(at, &format!("the header does not decode: {error}")))?;
    Ok((header, payload))
}

/// A message that is not in the shape this store writes (another program wrote to the store's
/// subjects, or the data was damaged).
fn malformed(at: Position, why: &str) -> Error {
    Error::backend(
        super::BACKEND,
        format!("decoding the message at sequence {at}"),
        why.to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_round_trips_with_its_payload_untouched() {
        let stream = Uuid::now_v7();
        let mut metadata = Metadata::new();
        metadata.insert("user".into(), "ädä".into());
        let event = NewEvent::new("Opened", 3, vec![0, 255, 10, 13]).with_metadata(metadata);
        let body = encode_event(stream, "Account", 4, &event).unwrap();
        let stored = decode_event(&body, Position::new(9), UNIX_EPOCH).unwrap();
        assert_eq!(
            (stored.id, stored.stream_id, stored.version, stored.position),
            (event.id, stream, 4, Position::new(9))
        );
        assert_eq!(
            (
                stored.name,
                stored.schema_version,
                stored.payload,
                stored.metadata
            ),
            (event.name, 3, event.payload, event.metadata)
        );
        assert_eq!(event_version(&body, Position::new(9)).unwrap(), 4);
    }

    #[test]
    fn a_damaged_message_is_an_error_not_a_panic() {
        for body in [
            &b""[..],
            b"\0\0\0\x09{}",
            b"\0\0\0\x02{]",
            b"\xff\xff\xff\xff",
        ] {
            assert!(decode_event(body, Position::new(1), UNIX_EPOCH).is_err());
        }
        assert!(decode_tracking(b"x", Position::new(1)).is_err());
        assert_eq!(
            decode_tracking(&encode_tracking(Position::new(42)), Position::new(1)).unwrap(),
            Position::new(42)
        );
    }

    #[test]
    fn a_snapshot_round_trips() {
        let snapshot = Snapshot {
            stream_id: Uuid::now_v7(),
            version: 12,
            aggregate: "Account".into(),
            fingerprint: 77,
            state: b"{\"balance\":3}".to_vec(),
            recorded_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        };
        let body = encode_snapshot(&snapshot, None).unwrap();
        assert_eq!(
            decode_snapshot(&body, Position::new(1)).unwrap(),
            (snapshot.clone(), None)
        );
        let body = encode_snapshot(&snapshot, Some(41)).unwrap();
        assert_eq!(
            decode_snapshot(&body, Position::new(1)).unwrap(),
            (snapshot, Some(41))
        );
    }
}
