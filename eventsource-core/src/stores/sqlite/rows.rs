//! Turning rows back into records, with a typed error (never a panic) for anything malformed.

use std::time::{Duration, SystemTime};

use rusqlite::Row;
use rusqlite::types::ValueRef;
use uuid::Uuid;

use super::BACKEND;
use crate::error::{Error, Result};
use crate::persistence::position::Position;
use crate::persistence::record::{Metadata, Snapshot, StoredEvent, legacy_event_id};

/// What was wrong with a row, as the source of an [`Error::Backend`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct BadRow(pub(super) String);

/// Where a row came from, for error messages.
#[derive(Clone, Copy)]
pub(super) enum At {
    Stream(Uuid),
    Log,
    Snapshot(Uuid),
}

fn context(at: At, key: Option<i64>) -> String {
    match (at, key) {
        (At::Stream(stream), Some(version)) => {
            format!("reading version {version} of stream {stream}")
        }
        (At::Stream(stream), None) => format!("reading stream {stream}"),
        (At::Log, Some(position)) => format!("reading the log at position {position}"),
        (At::Log, None) => "reading the log".to_owned(),
        (At::Snapshot(stream), Some(version)) => {
            format!("reading the snapshot at version {version} of stream {stream}")
        }
        (At::Snapshot(stream), None) => format!("reading a snapshot of stream {stream}"),
    }
}

fn bad(at: At, key: Option<i64>, message: String) -> Error {
    Error::backend(BACKEND, context(at, key), BadRow(message))
}

fn column_error(at: At, key: Option<i64>) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::backend(BACKEND, context(at, key), e)
}

fn integer(row: &Row<'_>, index: usize, column: &str, at: At, key: Option<i64>) -> Result<i64> {
    match row.get_ref(index).map_err(column_error(at, key))? {
        ValueRef::Integer(i) => Ok(i),
        other => Err(bad(
            at,
            key,
            format!(
                "column `{column}` holds {}, not an integer",
                describe(other)
            ),
        )),
    }
}

fn unsigned(row: &Row<'_>, index: usize, column: &str, at: At, key: Option<i64>) -> Result<u64> {
    let value = integer(row, index, column, at, key)?;
    u64::try_from(value).map_err(|_| {
        bad(
            at,
            key,
            format!("column `{column}` holds {value}, which is negative"),
        )
    })
}

fn text(row: &Row<'_>, index: usize, column: &str, at: At, key: Option<i64>) -> Result<String> {
    match row.get_ref(index).map_err(column_error(at, key))? {
        ValueRef::Text(bytes) => String::from_utf8(bytes.to_vec()).map_err(|_| {
            bad(
                at,
                key,
                format!("column `{column}` holds text that is not valid UTF-8"),
            )
        }),
        other => Err(bad(
            at,
            key,
            format!("column `{column}` holds {}, not text", describe(other)),
        )),
    }
}

/// A BLOB column; text is accepted too (someone may have inserted JSON by hand).
fn bytes(row: &Row<'_>, index: usize, column: &str, at: At, key: Option<i64>) -> Result<Vec<u8>> {
    match row.get_ref(index).map_err(column_error(at, key))? {
        ValueRef::Blob(bytes) | ValueRef::Text(bytes) => Ok(bytes.to_vec()),
        other => Err(bad(
            at,
            key,
            format!("column `{column}` holds {}, not a blob", describe(other)),
        )),
    }
}

fn metadata(row: &Row<'_>, index: usize, at: At, key: Option<i64>) -> Result<Metadata> {
    match row.get_ref(index).map_err(column_error(at, key))? {
        ValueRef::Null => Ok(Metadata::new()),
        ValueRef::Text(b"{}") => Ok(Metadata::new()),
        ValueRef::Text(json) => serde_json::from_slice(json).map_err(|e| {
            bad(
                at,
                key,
                format!("column `metadata` is not a JSON object of strings: {e}"),
            )
        }),
        other => Err(bad(
            at,
            key,
            format!("column `metadata` holds {}, not JSON text", describe(other)),
        )),
    }
}

fn describe(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".to_owned(),
        ValueRef::Integer(i) => format!("the integer {i}"),
        ValueRef::Real(r) => format!("the real number {r}"),
        ValueRef::Text(t) => format!("the text {:?}", String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => format!("a {}-byte blob", b.len()),
    }
}

/// Microseconds since the Unix epoch, as stored.
pub(super) fn time_from_micros(micros: i64) -> Option<SystemTime> {
    if micros >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_micros(micros.unsigned_abs()))
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(Duration::from_micros(micros.unsigned_abs()))
    }
}

/// A time as microseconds since the Unix epoch, if it fits.
pub(super) fn micros_from_time(time: SystemTime) -> Option<i64> {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()).ok(),
        Err(before) => i64::try_from(before.duration().as_micros())
            .ok()
            .map(|m| -m),
    }
}

fn recorded_at(row: &Row<'_>, index: usize, at: At, key: Option<i64>) -> Result<SystemTime> {
    let micros = integer(row, index, "recorded_at", at, key)?;
    time_from_micros(micros).ok_or_else(|| {
        bad(
            at,
            key,
            format!("column `recorded_at` holds {micros}, which is not a representable time"),
        )
    })
}

fn schema_version(row: &Row<'_>, index: usize, at: At, key: Option<i64>) -> Result<u32> {
    let value = integer(row, index, "schema_version", at, key)?;
    u32::try_from(value).map_err(|_| {
        bad(
            at,
            key,
            format!("column `schema_version` holds {value}, which is not a schema version"),
        )
    })
}

/// A row of `position, version, name, schema_version, payload, metadata, recorded_at` from a
/// known stream.
pub(super) fn stream_event(row: &Row<'_>, stream_id: Uuid) -> Result<StoredEvent> {
    let at = At::Stream(stream_id);
    let version_raw = integer(row, 1, "version", at, None)?;
    let key = Some(version_raw);
    let version = unsigned(row, 1, "version", at, key)?;
    Ok(StoredEvent {
        id: event_id(row, 7, stream_id, version, at, key)?,
        stream_id,
        category: text(row, 8, "category", at, key)?,
        version,
        position: Position::new(unsigned(row, 0, "position", at, key)?),
        name: text(row, 2, "name", at, key)?,
        schema_version: schema_version(row, 3, at, key)?,
        payload: bytes(row, 4, "payload", at, key)?,
        metadata: metadata(row, 5, at, key)?,
        recorded_at: recorded_at(row, 6, at, key)?,
    })
}

/// The `event_id` column: 16 bytes, or NULL for an event stored before events had ids.
fn event_id(
    row: &Row<'_>,
    index: usize,
    stream_id: Uuid,
    version: u64,
    at: At,
    key: Option<i64>,
) -> Result<Uuid> {
    match row.get_ref(index).map_err(column_error(at, key))? {
        ValueRef::Null => Ok(legacy_event_id(stream_id, version)),
        ValueRef::Blob(b) => {
            Uuid::from_slice(b).map_err(|e| bad(at, key, format!("column `event_id`: {e}")))
        }
        other => Err(bad(
            at,
            key,
            format!(
                "column `event_id` holds {}, not a 16-byte UUID",
                describe(other)
            ),
        )),
    }
}

/// A row of `position, stream_id, version, name, schema_version, payload, metadata,
/// recorded_at, event_id, category` from the log.
pub(super) fn log_event(row: &Row<'_>) -> Result<StoredEvent> {
    let at = At::Log;
    let key = Some(integer(row, 0, "position", at, None)?);
    let stream_id = match row.get_ref(1).map_err(column_error(at, key))? {
        ValueRef::Text(text) => Uuid::try_parse_ascii(text).map_err(|e| {
            bad(
                at,
                key,
                format!(
                    "column `stream_id` holds {:?}, which is not a UUID: {e}",
                    String::from_utf8_lossy(text)
                ),
            )
        })?,
        ValueRef::Blob(b) if b.len() == 16 => {
            Uuid::from_slice(b).map_err(|e| bad(at, key, format!("column `stream_id`: {e}")))?
        }
        other => {
            return Err(bad(
                at,
                key,
                format!("column `stream_id` holds {}, not a UUID", describe(other)),
            ));
        }
    };
    let version = unsigned(row, 2, "version", at, key)?;
    Ok(StoredEvent {
        id: event_id(row, 8, stream_id, version, at, key)?,
        stream_id,
        category: text(row, 9, "category", at, key)?,
        position: Position::new(unsigned(row, 0, "position", at, key)?),
        version,
        name: text(row, 3, "name", at, key)?,
        schema_version: schema_version(row, 4, at, key)?,
        payload: bytes(row, 5, "payload", at, key)?,
        metadata: metadata(row, 6, at, key)?,
        recorded_at: recorded_at(row, 7, at, key)?,
    })
}

/// A row of `version, aggregate, fingerprint, state, recorded_at` of a stream's snapshot.
pub(super) fn snapshot(row: &Row<'_>, stream_id: Uuid) -> Result<Snapshot> {
    let at = At::Snapshot(stream_id);
    let key = Some(integer(row, 0, "version", at, None)?);
    Ok(Snapshot {
        stream_id,
        version: unsigned(row, 0, "version", at, key)?,
        aggregate: text(row, 1, "aggregate", at, key)?,
        // Stored as the i64 with the same bits, so every u64 fingerprint round-trips.
        fingerprint: integer(row, 2, "fingerprint", at, key)?.cast_unsigned(),
        state: bytes(row, 3, "state", at, key)?,
        recorded_at: recorded_at(row, 4, at, key)?,
    })
}
