//! Turning rows back into records, with a typed error (never a panic) for anything malformed.
//!
//! The log's rows become owned [`StoredEvent`]s one by one ([`log_event`]). A stream's rows are
//! read a chunk at a time ([`StreamRows`]), one buffer for all their bytes: a
//! [`read_stream`](crate::EventStore::read_stream) reads every column into a [`RowChunk`],
//! whose [`Lender`] fills one reused event it then clones; a replay
//! ([`visit_stream`](crate::EventStore::visit_stream)) reads only the columns of a
//! [`ReplayedEvent`] into a [`ReplayChunk`], which lends them where they lie, with no
//! allocation or copy per event.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rusqlite::Row;
use rusqlite::types::ValueRef;
use uuid::Uuid;

use super::BACKEND;
use super::schema::Sql;
use crate::error::{Error, Result};
use crate::persistence::position::Position;
use crate::persistence::record::{Metadata, ReplayedEvent, Snapshot, StoredEvent, legacy_event_id};

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

/// The rows of one chunk of a stream read, filled on a reader connection by the statement it
/// names.
pub(super) trait StreamRows: Send + Sized + 'static {
    /// The statement that selects this kind's columns of a stream's rows (`?1 stream, ?2 from,
    /// ?3 to, ?4 limit`), oldest or newest first.
    fn statement(sql: &Sql, backwards: bool) -> &str;

    /// An empty chunk of `stream_id`'s rows, with room for `rows` of them.
    fn new(stream_id: Uuid, rows: usize) -> Self;

    /// Appends a row of the statement's columns; returns its payload's length.
    fn push(&mut self, row: &Row<'_>) -> Result<usize>;

    /// How many rows it holds.
    fn len(&self) -> usize;

    /// The version of its last row.
    fn last_version(&self) -> Option<u64>;

    /// Whether it holds no rows.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A chunk of the rows a replay is lent: `version, name, schema_version, payload`, the payloads
/// one after another in one buffer and the names in another (a row's name shares the previous
/// row's when it is the same, and is checked for UTF-8 once, when it is pushed). Lent out where
/// they lie ([`ReplayChunk::event`]), with nothing copied or checked again.
#[derive(Debug)]
pub(super) struct ReplayChunk {
    stream_id: Uuid,
    names: String,
    payloads: Vec<u8>,
    rows: Vec<ReplaySpan>,
}

/// One row of a [`ReplayChunk`]: its name in `names`, its payload in `payloads`.
#[derive(Debug)]
struct ReplaySpan {
    version: u64,
    schema_version: u32,
    name: Range<usize>,
    payload: Range<usize>,
}

impl StreamRows for ReplayChunk {
    fn statement(sql: &Sql, backwards: bool) -> &str {
        match backwards {
            true => &sql.replay_backwards,
            false => &sql.replay_forwards,
        }
    }

    fn new(stream_id: Uuid, rows: usize) -> Self {
        Self {
            stream_id,
            names: String::with_capacity(64),
            // About what a small JSON event's payload takes.
            payloads: Vec::with_capacity(rows.saturating_mul(64)),
            rows: Vec::with_capacity(rows),
        }
    }

    fn push(&mut self, row: &Row<'_>) -> Result<usize> {
        let at = At::Stream(self.stream_id);
        let raw_version = integer(row, 0, "version", at, None)?;
        let key = Some(raw_version);
        let version = u64::try_from(raw_version).map_err(|_| {
            bad(
                at,
                key,
                format!("column `version` holds {raw_version}, which is negative"),
            )
        })?;
        let schema_version = schema_version(row, 2, at, key)?;
        let name = match row.get_ref(1).map_err(column_error(at, key))? {
            ValueRef::Text(text) => match self.rows.last() {
                // A stream's events mostly repeat the previous row's name: it takes that one.
                Some(previous)
                    if self.names.as_bytes().get(previous.name.clone()) == Some(text) =>
                {
                    previous.name.clone()
                }
                _ => {
                    let text = std::str::from_utf8(text).map_err(|_| {
                        bad(
                            at,
                            key,
                            "column `name` holds text that is not valid UTF-8".to_owned(),
                        )
                    })?;
                    let start = self.names.len();
                    self.names.push_str(text);
                    start..self.names.len()
                }
            },
            other => {
                return Err(bad(
                    at,
                    key,
                    format!("column `name` holds {}, not text", describe(other)),
                ));
            }
        };
        let payload = match row.get_ref(3).map_err(column_error(at, key))? {
            ValueRef::Blob(bytes) | ValueRef::Text(bytes) => append(&mut self.payloads, bytes),
            other => {
                return Err(bad(
                    at,
                    key,
                    format!("column `payload` holds {}, not a blob", describe(other)),
                ));
            }
        };
        let length = payload.len();
        self.rows.push(ReplaySpan {
            version,
            schema_version,
            name,
            payload,
        });
        Ok(length)
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn last_version(&self) -> Option<u64> {
        self.rows.last().map(|row| row.version)
    }
}

impl ReplayChunk {
    /// Row `index` as a replay is lent it, borrowed from the chunk.
    pub(super) fn event(&self, index: usize) -> Result<ReplayedEvent<'_>> {
        let at = At::Stream(self.stream_id);
        let row = self.rows.get(index).ok_or_else(|| {
            bad(
                at,
                None,
                format!("no row {index} in a chunk of {} rows", self.rows.len()),
            )
        })?;
        // Both spans were made by `push` from these buffers: a miss is a bug, not a panic.
        let (Some(name), Some(payload)) = (
            self.names.get(row.name.clone()),
            self.payloads.get(row.payload.clone()),
        ) else {
            return Err(bad(
                at,
                Some(clamp_version(row.version)),
                format!("row {index} points outside its chunk"),
            ));
        };
        Ok(ReplayedEvent {
            stream_id: self.stream_id,
            version: row.version,
            name,
            schema_version: row.schema_version,
            payload,
        })
    }
}

/// Appends `bytes` to `buffer`; where they now lie.
fn append(buffer: &mut Vec<u8>, bytes: &[u8]) -> Range<usize> {
    let start = buffer.len();
    buffer.extend_from_slice(bytes);
    start..buffer.len()
}

/// A chunk of a stream's rows: their text and blobs one after another in one buffer, and per
/// row its fixed-size columns and where its bytes lie. Filled on a reader connection, lent out
/// by a [`Lender`].
#[derive(Debug)]
pub(super) struct RowChunk {
    /// Tells chunks apart, so that a [`Lender`] knows the spans it remembers are this chunk's.
    serial: u64,
    stream_id: Uuid,
    bytes: Vec<u8>,
    rows: Vec<RowSpan>,
}

/// One row of a [`RowChunk`].
#[derive(Debug)]
struct RowSpan {
    id: Uuid,
    version: u64,
    position: Position,
    schema_version: u32,
    recorded_at: SystemTime,
    name: Range<usize>,
    payload: Range<usize>,
    /// `None`: the column is NULL (no metadata).
    metadata: Option<Range<usize>>,
    category: Range<usize>,
}

impl StreamRows for RowChunk {
    fn statement(sql: &Sql, backwards: bool) -> &str {
        match backwards {
            true => &sql.read_stream_backwards,
            false => &sql.read_stream_forwards,
        }
    }

    fn new(stream_id: Uuid, rows: usize) -> Self {
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        Self {
            serial: SERIAL.fetch_add(1, Ordering::Relaxed),
            stream_id,
            // About what a small JSON event takes: name, payload, metadata and category.
            bytes: Vec::with_capacity(rows.saturating_mul(128)),
            rows: Vec::with_capacity(rows),
        }
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn last_version(&self) -> Option<u64> {
        self.rows.last().map(|row| row.version)
    }

    /// Appends a row of `position, version, name, schema_version, payload, metadata,
    /// recorded_at, event_id, category` of the chunk's stream; returns its payload's length.
    /// Text is checked for UTF-8 and metadata parsed when the row is lent.
    fn push(&mut self, row: &Row<'_>) -> Result<usize> {
        let stream_id = self.stream_id;
        let at = At::Stream(stream_id);
        let version_raw = integer(row, 1, "version", at, None)?;
        let key = Some(version_raw);
        let version = unsigned(row, 1, "version", at, key)?;
        let id = event_id(row, 7, stream_id, version, at, key)?;
        let position = Position::new(unsigned(row, 0, "position", at, key)?);
        let schema_version = schema_version(row, 3, at, key)?;
        let recorded_at = recorded_at(row, 6, at, key)?;
        let start = self.bytes.len();
        // A stream's events mostly repeat the previous row's name, metadata (the events of one
        // append share it) and category: those take the previous row's bytes, not a copy.
        let previous = self.rows.last();
        let same_name = previous.map(|row| row.name.clone());
        let same_metadata = previous.and_then(|row| row.metadata.clone());
        let same_category = previous.map(|row| row.category.clone());
        let name = self.append_text(row, 2, "name", same_name, at, key);
        let payload = self.append_bytes(row, 4, "payload", at, key);
        let metadata = self.append_metadata(row, 5, same_metadata, at, key);
        let category = self.append_text(row, 8, "category", same_category, at, key);
        let (name, payload, metadata, category) = match (name, payload, metadata, category) {
            (Ok(name), Ok(payload), Ok(metadata), Ok(category)) => {
                (name, payload, metadata, category)
            }
            (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => {
                self.bytes.truncate(start);
                return Err(e);
            }
        };
        let length = payload.len();
        self.rows.push(RowSpan {
            id,
            version,
            position,
            schema_version,
            recorded_at,
            name,
            payload,
            metadata,
            category,
        });
        Ok(length)
    }
}

impl RowChunk {
    fn append(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        start..self.bytes.len()
    }

    /// `bytes`, at `same` if the chunk holds them there already, else appended.
    fn append_unless(&mut self, bytes: &[u8], same: Option<Range<usize>>) -> Range<usize> {
        match same {
            Some(range) if self.bytes.get(range.clone()) == Some(bytes) => range,
            _ => self.append(bytes),
        }
    }

    fn append_text(
        &mut self,
        row: &Row<'_>,
        index: usize,
        column: &str,
        same: Option<Range<usize>>,
        at: At,
        key: Option<i64>,
    ) -> Result<Range<usize>> {
        match row.get_ref(index).map_err(column_error(at, key))? {
            ValueRef::Text(bytes) => Ok(self.append_unless(bytes, same)),
            other => Err(bad(
                at,
                key,
                format!("column `{column}` holds {}, not text", describe(other)),
            )),
        }
    }

    /// A BLOB column; text is accepted too, as [`bytes`] does.
    fn append_bytes(
        &mut self,
        row: &Row<'_>,
        index: usize,
        column: &str,
        at: At,
        key: Option<i64>,
    ) -> Result<Range<usize>> {
        match row.get_ref(index).map_err(column_error(at, key))? {
            ValueRef::Blob(bytes) | ValueRef::Text(bytes) => Ok(self.append(bytes)),
            other => Err(bad(
                at,
                key,
                format!("column `{column}` holds {}, not a blob", describe(other)),
            )),
        }
    }

    fn append_metadata(
        &mut self,
        row: &Row<'_>,
        index: usize,
        same: Option<Range<usize>>,
        at: At,
        key: Option<i64>,
    ) -> Result<Option<Range<usize>>> {
        match row.get_ref(index).map_err(column_error(at, key))? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(json) => Ok(Some(self.append_unless(json, same))),
            other => Err(bad(
                at,
                key,
                format!("column `metadata` holds {}, not JSON text", describe(other)),
            )),
        }
    }
}

/// Lends the rows of [`RowChunk`]s one at a time through one [`StoredEvent`] it reuses: after the
/// first rows its strings and buffers have the capacity they need, so lending a row copies its
/// bytes and allocates nothing. Metadata is parsed only when it differs from the previous row's
/// (the events of one append share theirs).
#[derive(Debug)]
pub(super) struct Lender {
    event: StoredEvent,
    /// The metadata text `event.metadata` was parsed from (`{}` for none); `None` before the
    /// first row.
    metadata_text: Option<Vec<u8>>,
    /// The chunk and the spans of name, metadata and category the event holds now, to skip
    /// copying (and comparing) what a row shares with the one lent before it.
    lent: Option<Lent>,
}

/// Which chunk's row the lent event was filled from last, and where that row's name, metadata
/// and category lie in the chunk.
#[derive(Debug)]
struct Lent {
    chunk: u64,
    name: Range<usize>,
    metadata: Option<Range<usize>>,
    category: Range<usize>,
}

impl Lender {
    /// A lender of `stream_id`'s rows.
    pub(super) fn new(stream_id: Uuid) -> Self {
        Self {
            event: StoredEvent {
                id: Uuid::nil(),
                stream_id,
                category: String::new(),
                version: 0,
                name: String::new(),
                schema_version: 0,
                payload: Vec::new(),
                metadata: Metadata::new(),
                recorded_at: SystemTime::UNIX_EPOCH,
                position: Position::new(0),
            },
            metadata_text: None,
            lent: None,
        }
    }

    /// Row `index` of `chunk` as an event, valid until the next call.
    pub(super) fn lend(&mut self, chunk: &RowChunk, index: usize) -> Result<&StoredEvent> {
        let Some(row) = chunk.rows.get(index) else {
            return Err(bad(
                At::Stream(chunk.stream_id),
                None,
                format!("no row {index} in a chunk of {} rows", chunk.rows.len()),
            ));
        };
        let at = At::Stream(chunk.stream_id);
        let key = Some(clamp_version(row.version));
        let text = |range: &Range<usize>, column: &str| {
            std::str::from_utf8(&chunk.bytes[range.clone()]).map_err(|_| {
                bad(
                    at,
                    key,
                    format!("column `{column}` holds text that is not valid UTF-8"),
                )
            })
        };
        let (same_name, same_metadata, same_category) = match &self.lent {
            Some(lent) if lent.chunk == chunk.serial => (
                lent.name == row.name,
                lent.metadata == row.metadata,
                lent.category == row.category,
            ),
            _ => (false, false, false),
        };
        self.lent = None;
        let name = if same_name {
            None
        } else {
            Some(text(&row.name, "name")?)
        };
        let category = if same_category {
            None
        } else {
            Some(text(&row.category, "category")?)
        };
        let metadata: &[u8] = match &row.metadata {
            Some(range) => &chunk.bytes[range.clone()],
            None => b"{}",
        };
        if !same_metadata && self.metadata_text.as_deref() != Some(metadata) {
            let parsed = if metadata == b"{}" {
                Metadata::new()
            } else {
                serde_json::from_slice(metadata).map_err(|e| {
                    bad(
                        at,
                        key,
                        format!("column `metadata` is not a JSON object of strings: {e}"),
                    )
                })?
            };
            self.event.metadata = parsed;
            let kept = self.metadata_text.get_or_insert_with(Vec::new);
            kept.clear();
            kept.extend_from_slice(metadata);
        }
        let event = &mut self.event;
        event.stream_id = chunk.stream_id;
        event.id = row.id;
        event.version = row.version;
        event.position = row.position;
        event.schema_version = row.schema_version;
        event.recorded_at = row.recorded_at;
        if let Some(name) = name {
            event.name.clear();
            event.name.push_str(name);
        }
        if let Some(category) = category {
            event.category.clear();
            event.category.push_str(category);
        }
        event.payload.clear();
        event
            .payload
            .extend_from_slice(&chunk.bytes[row.payload.clone()]);
        self.lent = Some(Lent {
            chunk: chunk.serial,
            name: row.name.clone(),
            metadata: row.metadata.clone(),
            category: row.category.clone(),
        });
        Ok(event)
    }
}

/// A version as the signed integer errors name it.
fn clamp_version(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    /// Rows of `position, version, name, schema_version, payload, metadata, recorded_at,
    /// event_id, category`, pushed into one chunk; the error of each row that fails to push.
    fn chunk_of(rows: &str) -> (RowChunk, Vec<String>) {
        let conn = Connection::open_in_memory().unwrap();
        let mut statement = conn.prepare(&format!("SELECT * FROM ({rows})")).unwrap();
        let mut query = statement.query([]).unwrap();
        let mut chunk = RowChunk::new(Uuid::from_u128(7), 2);
        let mut failed = Vec::new();
        while let Some(row) = query.next().unwrap() {
            if let Err(error) = chunk.push(row) {
                failed.push(error.to_string());
            }
        }
        (chunk, failed)
    }

    #[test]
    fn a_replayed_row_is_lent_its_own_columns_and_a_bad_one_is_a_typed_error() {
        let conn = Connection::open_in_memory().unwrap();
        let mut statement = conn
            .prepare(
                "SELECT * FROM (VALUES
                    (1, 'Opened', 1, CAST('{}' AS BLOB)),
                    (2, 'Opened', 2, x'01'),
                    (3, 'Deposited', 3, '{\"cents\":5}'),
                    (4, 'Deposited', 1, NULL),
                    (-5, 'Deposited', 1, x''),
                    (6, 7, 1, x''),
                    (7, 'Closed', 4294967296, x''),
                    (8, CAST(x'ff' AS TEXT), 1, x'02'))",
            )
            .unwrap();
        let mut query = statement.query([]).unwrap();
        let stream = Uuid::from_u128(7);
        let mut chunk = ReplayChunk::new(stream, 2);
        let mut failed = Vec::new();
        while let Some(row) = query.next().unwrap() {
            if let Err(error) = chunk.push(row) {
                failed.push(error.to_string());
            }
        }
        assert_eq!(chunk.len(), 3, "{failed:?}");
        assert_eq!(chunk.last_version(), Some(3));
        let expected_failures = [
            "column `payload` holds NULL, not a blob",
            "column `version` holds -5, which is negative",
            "column `name` holds the integer 7, not text",
            "column `schema_version` holds 4294967296, which is not a schema version",
            "column `name` holds text that is not valid UTF-8",
        ];
        for (error, expected) in failed.iter().zip(expected_failures) {
            assert!(error.contains(expected), "{error} (expected {expected})");
        }
        assert_eq!(failed.len(), expected_failures.len());
        let expected = [
            (1, "Opened", 1, &b"{}"[..]),
            (2, "Opened", 2, &[1][..]),
            (3, "Deposited", 3, &br#"{"cents":5}"#[..]),
        ];
        for (index, (version, name, schema_version, payload)) in expected.into_iter().enumerate() {
            assert_eq!(
                chunk.event(index).unwrap(),
                ReplayedEvent {
                    stream_id: stream,
                    version,
                    name,
                    schema_version,
                    payload,
                }
            );
        }
        assert!(
            failed[4].contains("reading version 8 of stream"),
            "{}",
            failed[4]
        );
        assert!(chunk.event(3).is_err(), "past the chunk's rows");
    }

    #[test]
    fn a_lent_row_carries_its_own_columns_never_the_previous_rows() {
        let (chunk, failed) = chunk_of(
            "VALUES (1, 1, 'Opened', 1, CAST('{}' AS BLOB), '{\"actor\":\"ada\"}', 5, NULL, 'Account'),
                    (2, 2, 'Deposited', 3, x'01', '{\"actor\":\"ada\"}', 6, x'000102030405060708090a0b0c0d0e0f', 'Account'),
                    (3, 3, 'Opened', 1, x'', NULL, 7, NULL, ''),
                    (4, 4, 'Closed', 1, x'02', '{\"actor\":\"bob\"}', 8, NULL, 'Account'),
                    (5, 5, CAST(x'ff' AS TEXT), 1, x'', NULL, 9, NULL, ''),
                    (6, 6, 'Opened', 1, x'', 42, 10, NULL, ''),
                    (7, 7, 'Opened', 1, x'', '[1]', 11, NULL, '')",
        );
        assert_eq!(chunk.len(), 6, "{failed:?}");
        assert_eq!(failed.len(), 1);
        assert!(
            failed[0].contains("column `metadata` holds the integer 42, not JSON text"),
            "{}",
            failed[0]
        );
        assert_eq!(chunk.last_version(), Some(7));
        let stream = Uuid::from_u128(7);
        let mut lender = Lender::new(stream);
        let actor = |who: &str| Metadata::from([("actor".to_owned(), who.to_owned())]);
        let expected = [
            (1, "Opened", 1, &b"{}"[..], actor("ada"), "Account"),
            (2, "Deposited", 3, &[1][..], actor("ada"), "Account"),
            (3, "Opened", 1, &[][..], Metadata::new(), ""),
            (4, "Closed", 1, &[2][..], actor("bob"), "Account"),
        ];
        for (index, (version, name, schema, payload, metadata, category)) in
            expected.into_iter().enumerate()
        {
            let event = lender.lend(&chunk, index).unwrap();
            assert_eq!(
                (
                    event.stream_id,
                    event.version,
                    event.position,
                    event.name.as_str(),
                    event.schema_version,
                    event.payload.as_slice(),
                    &event.metadata,
                    event.category.as_str()
                ),
                (
                    stream,
                    version,
                    Position::new(version),
                    name,
                    schema,
                    payload,
                    &metadata,
                    category
                )
            );
            let id = if version == 2 {
                Uuid::from_u128(0x000102030405060708090a0b0c0d0e0f)
            } else {
                legacy_event_id(stream, version)
            };
            assert_eq!(event.id, id);
            assert_eq!(
                event.recorded_at,
                time_from_micros(version as i64 + 4).unwrap()
            );
        }
        let name = lender.lend(&chunk, 4).unwrap_err().to_string();
        assert!(name.contains("reading version 5 of stream"), "{name}");
        assert!(
            name.contains("column `name` holds text that is not valid UTF-8"),
            "{name}"
        );
        let metadata = lender.lend(&chunk, 5).unwrap_err().to_string();
        assert!(
            metadata.contains("column `metadata` is not a JSON object of strings"),
            "{metadata}"
        );
        assert!(lender.lend(&chunk, 6).is_err(), "past the chunk's rows");
    }
}
