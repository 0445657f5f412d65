//! Turning rows into records, checking every value that came from storage.

use std::time::SystemTime;

use tokio_postgres::Row;
use uuid::Uuid;

use super::{BACKEND, pg_error};
use crate::error::{Error, Result};
use crate::persistence::position::Position;
use crate::persistence::record::{Metadata, ReplayedEvent, Snapshot, StoredEvent, legacy_event_id};

/// Reads column `index` of `row`, naming the column and what was read if it fails.
fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
    name: &str,
    what: &dyn Fn() -> String,
) -> Result<T> {
    row.try_get(index)
        .map_err(|e| Error::backend(BACKEND, format!("reading column `{name}` of {}", what()), e))
}

fn corrupt(stream: Uuid, version: u64, message: String) -> Error {
    Error::Corrupt {
        stream,
        version,
        message,
    }
}

/// A row of `stream_id, version, name, schema_version, payload, metadata::text, recorded_at,
/// position, event_id, category`, starting at column `at` (after columns of the query's own),
/// as a [`StoredEvent`].
pub(super) fn event_at(row: &Row, at: usize) -> Result<StoredEvent> {
    let stream_id: Uuid = column(row, at, "stream_id", &|| "an event".into())?;
    event_in(row, at + 1, stream_id)
}

/// A row of a stream read: the columns of [`event_at`] without the stream id, which the reader
/// knows (16 bytes less per row to send and decode).
pub(super) fn stream_event(row: &Row, stream_id: Uuid) -> Result<StoredEvent> {
    event_in(row, 0, stream_id)
}

/// A row of a replay, `version, name, schema_version, payload` of stream `stream_id`, lent as
/// it lies in the row's buffer (nothing copied or allocated).
pub(super) fn replayed_event(row: &Row, stream_id: Uuid) -> Result<ReplayedEvent<'_>> {
    replayed_at(row, 0, stream_id)
}

/// The columns `version, name, schema_version, payload` starting at column `at`, borrowed.
fn replayed_at(row: &Row, at: usize, stream_id: Uuid) -> Result<ReplayedEvent<'_>> {
    let raw_version: i64 = column(row, at, "version", &|| {
        format!("an event of stream {stream_id}")
    })?;
    let version = u64::try_from(raw_version)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| {
            corrupt(
                stream_id,
                0,
                format!("stored version {raw_version} is not a version (they start at 1)"),
            )
        })?;
    let what = || format!("the event at version {version} of stream {stream_id}");
    let name: &str = column(row, at + 1, "name", &what)?;
    let raw_schema_version: i64 = column(row, at + 2, "schema_version", &what)?;
    let schema_version = u32::try_from(raw_schema_version).map_err(|_| {
        corrupt(
            stream_id,
            version,
            format!(
                "event `{name}` has schema version {raw_schema_version}, outside 0..=4294967295"
            ),
        )
    })?;
    let payload: &[u8] = column(row, at + 3, "payload", &what)?;
    Ok(ReplayedEvent {
        stream_id,
        version,
        name,
        schema_version,
        payload,
    })
}

/// The columns of [`event_at`] after the stream id, starting at column `at`.
fn event_in(row: &Row, at: usize, stream_id: Uuid) -> Result<StoredEvent> {
    let replayed = replayed_at(row, at, stream_id)?;
    let (version, name) = (replayed.version, replayed.name);
    let what = || format!("the event at version {version} of stream {stream_id}");
    // Borrowed from the row's buffer: parsed, not copied first.
    let metadata_text: &str = column(row, at + 4, "metadata", &what)?;
    let metadata = metadata(metadata_text).map_err(|e| {
        corrupt(
            stream_id,
            version,
            format!(
                "the metadata of event `{name}` is not an object of strings ({e}): {metadata_text}"
            ),
        )
    })?;
    let recorded_at: SystemTime = column(row, at + 5, "recorded_at", &what)?;
    let raw_position: i64 = column(row, at + 6, "position", &what)?;
    let position = u64::try_from(raw_position)
        .ok()
        .filter(|p| *p >= 1)
        .ok_or_else(|| {
            corrupt(
                stream_id,
                version,
                format!("event `{name}` has position {raw_position}; positions start at 1"),
            )
        })?;
    // NULL for an event stored before events had ids: a stable id derived from its place.
    let id: Option<Uuid> = column(row, at + 7, "event_id", &what)?;
    let category: String = column(row, at + 8, "category", &what)?;
    Ok(StoredEvent {
        id: id.unwrap_or_else(|| legacy_event_id(stream_id, version)),
        stream_id,
        category,
        version,
        name: name.to_owned(),
        schema_version: replayed.schema_version,
        payload: replayed.payload.to_vec(),
        metadata,
        recorded_at,
        position: Position::new(position),
    })
}

/// Stored metadata (a JSON object of strings) as [`Metadata`]; the empty object, which most
/// events written outside a command context carry, without running the parser.
fn metadata(text: &str) -> serde_json::Result<Metadata> {
    match text {
        "{}" => Ok(Metadata::new()),
        text => serde_json::from_str(text),
    }
}

/// Which part of a load from a snapshot a row is (its column 5): 0 for the snapshot's row, 1
/// for an event's.
pub(super) fn replay_part(row: &Row, stream_id: Uuid) -> Result<i32> {
    column(row, 5, "part", &|| format!("a load of stream {stream_id}"))
}

/// The snapshot's row of a load from a snapshot (`version, aggregate, fingerprint, state,
/// recorded_at`, all null if the stream has none).
pub(super) fn snapshot_part(row: &Row, stream_id: Uuid) -> Result<Option<Snapshot>> {
    let raw_version: Option<i64> = column(row, 0, "version", &|| {
        format!("a snapshot of stream {stream_id}")
    })?;
    raw_version
        .map(|raw_version| snapshot_from(row, 0, stream_id, raw_version))
        .transpose()
}

/// A row of `stream_id, version, aggregate, fingerprint, state, recorded_at` as a [`Snapshot`].
pub(super) fn snapshot(row: &Row) -> Result<Snapshot> {
    let stream_id: Uuid = column(row, 0, "stream_id", &|| "a snapshot".into())?;
    let raw_version: i64 = column(row, 1, "version", &|| {
        format!("a snapshot of stream {stream_id}")
    })?;
    snapshot_from(row, 1, stream_id, raw_version)
}

/// The columns `version, aggregate, fingerprint, state, recorded_at` of a snapshot of
/// `stream_id` from column `at` on, the version (`raw_version`, already read) checked.
fn snapshot_from(row: &Row, at: usize, stream_id: Uuid, raw_version: i64) -> Result<Snapshot> {
    let version = u64::try_from(raw_version).map_err(|_| {
        corrupt(
            stream_id,
            0,
            format!("a snapshot is stored at version {raw_version}"),
        )
    })?;
    let what = || format!("the snapshot at version {version} of stream {stream_id}");
    let aggregate: String = column(row, at + 1, "aggregate", &what)?;
    let fingerprint: i64 = column(row, at + 2, "fingerprint", &what)?;
    let state: Vec<u8> = column(row, at + 3, "state", &what)?;
    let recorded_at: SystemTime = column(row, at + 4, "recorded_at", &what)?;
    Ok(Snapshot {
        stream_id,
        version,
        aggregate,
        // Stored as the int8 with the same bits (PostgreSQL has no unsigned 64-bit type).
        fingerprint: u64::from_ne_bytes(fingerprint.to_ne_bytes()),
        state,
        recorded_at,
    })
}

/// Reads a single non-negative int8 (a version or a position) from column 0 of `row`.
pub(super) fn count(row: &Row, what: &str) -> Result<u64> {
    let raw: i64 = row
        .try_get(0)
        .map_err(pg_error(format!("reading {what}")))?;
    u64::try_from(raw).map_err(|_| {
        Error::backend(
            BACKEND,
            format!("reading {what}"),
            format!("the database returned {raw}, which is negative"),
        )
    })
}
