//! Reading a stream in chunks that grow with its length, checking that its versions have no
//! gaps.

use uuid::Uuid;

use futures_util::TryStreamExt;

use super::{BACKEND, PostgresStore, pg_error, rows};
use crate::error::{Error, Result};
use crate::persistence::record::{Replay, StoredEvent, StreamRange};
use crate::persistence::store::{EventStream, ReplayVisitor, StreamVisitor};

/// How many events a stream read fetches with its first query: a short stream, or the tail
/// after a cached state, is read in one.
const FIRST_CHUNK: i64 = 2048;

/// Each further query of a long stream fetches this many times more than the one before, up
/// to [`MAX_CHUNK`]: a replay of 10,000 events takes two round trips instead of twenty, and a
/// replay of any length holds at most `MAX_CHUNK` rows at a time.
const CHUNK_GROWTH: i64 = 4;

/// The most events one query of a stream read fetches.
const MAX_CHUNK: i64 = 32_768;

impl PostgresStore {
    pub(super) fn event_stream(&self, stream_id: Uuid, range: StreamRange) -> EventStream<'_> {
        struct Cursor {
            /// The number of events the next query asks for, before `remaining` caps it.
            chunk: i64,
            lo: i64,
            hi: i64,
            remaining: usize,
            buffer: std::vec::IntoIter<StoredEvent>,
            previous: Option<u64>,
            exhausted: bool,
        }
        let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let start = Cursor {
            chunk: FIRST_CHUNK,
            lo: to_i64(range.from.max(1)),
            hi: range.to.map_or(i64::MAX, to_i64),
            remaining: range.limit.unwrap_or(usize::MAX),
            buffer: Vec::new().into_iter(),
            previous: None,
            exhausted: false,
        };
        let backwards = range.backwards;
        Box::pin(futures_util::stream::unfold(
            start,
            move |mut cursor| async move {
                loop {
                    if let Some(event) = cursor.buffer.next() {
                        cursor.remaining -= 1;
                        return Some((Ok(event), cursor));
                    }
                    if cursor.exhausted || cursor.remaining == 0 || cursor.lo > cursor.hi {
                        return None;
                    }
                    let limit = cursor
                        .chunk
                        .min(i64::try_from(cursor.remaining).unwrap_or(i64::MAX));
                    cursor.chunk = cursor.chunk.saturating_mul(CHUNK_GROWTH).min(MAX_CHUNK);
                    match self
                        .read_chunk(stream_id, cursor.lo, cursor.hi, limit, backwards)
                        .await
                    {
                        Ok(chunk) => {
                            if let Err(error) =
                                check_contiguous(stream_id, &chunk, &mut cursor.previous, backwards)
                            {
                                cursor.exhausted = true;
                                return Some((Err(error), cursor));
                            }
                            cursor.exhausted = (chunk.len() as i64) < limit;
                            if let Some(last) = chunk.last() {
                                let last = to_i64(last.version);
                                if backwards {
                                    cursor.hi = last - 1;
                                } else {
                                    cursor.lo = last.saturating_add(1);
                                }
                            } else {
                                return None;
                            }
                            cursor.buffer = chunk.into_iter();
                        }
                        Err(error) => {
                            cursor.exhausted = true;
                            return Some((Err(error), cursor));
                        }
                    }
                }
            },
        ))
    }

    /// A pooled connection and its prepared statement `sql`.
    async fn stream_statement(
        &self,
        sql: &str,
        context: &str,
    ) -> Result<(deadpool_postgres::Object, tokio_postgres::Statement)> {
        let client = self.client(context).await?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(pg_error(context))?;
        Ok((client, statement))
    }

    /// [`EventStore::visit_stream`](crate::EventStore::visit_stream): the whole range in one
    /// query whose rows are visited as they arrive, so the server sends rows while the client
    /// decodes the ones before (a replay is one round trip whatever its length). The query
    /// selects only what a [`ReplayedEvent`](crate::ReplayedEvent) holds, and each event is lent
    /// straight from its row's buffer: nothing is allocated per event. Memory stays bounded:
    /// the driver stops reading the socket while the visitor is behind, and each row is dropped
    /// once visited. The pooled connection is held only as long as the visit runs, and the
    /// visitor can't wait for anything.
    pub(super) async fn visit(
        &self,
        stream_id: Uuid,
        range: StreamRange,
        visit: &mut StreamVisitor<'_>,
    ) -> Result<()> {
        let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let (lo, hi) = (to_i64(range.from.max(1)), range.to.map_or(i64::MAX, to_i64));
        let limit = range
            .limit
            .map_or(i64::MAX, |limit| i64::try_from(limit).unwrap_or(i64::MAX));
        if lo > hi || limit == 0 {
            return Ok(());
        }
        let context = format!("reading stream {stream_id}");
        let sql = match range.backwards {
            true => &self.sql.replay_backwards,
            false => &self.sql.replay_forwards,
        };
        let (client, statement) = self.stream_statement(sql, &context).await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&stream_id, &lo, &hi, &limit];
        let rows = client
            .query_raw(&statement, params)
            .await
            .map_err(pg_error(&context))?;
        let mut rows = std::pin::pin!(rows);
        let mut previous = None;
        while let Some(row) = rows.try_next().await.map_err(pg_error(&context))? {
            let event = rows::replayed_event(&row, stream_id)?;
            check_next(stream_id, event.version, &mut previous, range.backwards)?;
            if visit(event)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// [`EventStore::replay_from_snapshot`](crate::EventStore::replay_from_snapshot): the
    /// newest snapshot and the events from its version in one statement, one round trip. Its
    /// first row is the snapshot's (null if there is none); the events' rows follow and are
    /// lent from their buffers as [`visit`](Self::visit) lends them.
    pub(super) async fn visit_from_snapshot(
        &self,
        stream_id: Uuid,
        upto: Option<u64>,
        visit: &mut ReplayVisitor<'_>,
    ) -> Result<()> {
        let hi = upto.map_or(i64::MAX, |upto| i64::try_from(upto).unwrap_or(i64::MAX));
        let limit = i64::MAX;
        let context = format!("loading stream {stream_id} from its snapshot");
        let (client, statement) = self
            .stream_statement(&self.sql.replay_from_snapshot, &context)
            .await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&stream_id, &hi, &limit];
        let rows = client
            .query_raw(&statement, params)
            .await
            .map_err(pg_error(&context))?;
        let mut rows = std::pin::pin!(rows);
        let first = rows.try_next().await.map_err(pg_error(&context))?;
        let snapshot = match first {
            Some(row) if rows::replay_part(&row, stream_id)? == 0 => {
                rows::snapshot_part(&row, stream_id)?
            }
            _ => {
                return Err(Error::backend(
                    BACKEND,
                    context,
                    "the snapshot's row did not come first",
                ));
            }
        };
        if visit(Replay::Snapshot(snapshot))?.is_break() {
            return Ok(());
        }
        let mut previous = None;
        while let Some(row) = rows.try_next().await.map_err(pg_error(&context))? {
            let event = rows::replayed_event(&row, stream_id)?;
            check_next(stream_id, event.version, &mut previous, false)?;
            if visit(Replay::Event(event))?.is_break() {
                break;
            }
        }
        Ok(())
    }

    pub(super) async fn read_chunk(
        &self,
        stream_id: Uuid,
        lo: i64,
        hi: i64,
        limit: i64,
        backwards: bool,
    ) -> Result<Vec<StoredEvent>> {
        let context = format!("reading stream {stream_id}");
        let sql = match backwards {
            true => &self.sql.read_stream_backwards,
            false => &self.sql.read_stream_forwards,
        };
        let (client, statement) = self.stream_statement(sql, &context).await?;
        let rows = client
            .query(&statement, &[&stream_id, &lo, &hi, &limit])
            .await
            .map_err(pg_error(context))?;
        rows.iter()
            .map(|row| rows::stream_event(row, stream_id))
            .collect()
    }

    pub(super) async fn query_count(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        what: &str,
    ) -> Result<u64> {
        let context = format!("reading {what}");
        let client = self.client(&context).await?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(pg_error(&context))?;
        let row = client
            .query_one(&statement, params)
            .await
            .map_err(pg_error(&context))?;
        rows::count(&row, what)
    }
}

/// Checks that a stream read has no gaps (versions move by exactly one).
fn check_contiguous(
    stream: Uuid,
    chunk: &[StoredEvent],
    previous: &mut Option<u64>,
    backwards: bool,
) -> Result<()> {
    chunk
        .iter()
        .try_for_each(|event| check_next(stream, event.version, previous, backwards))
}

/// Checks that `version` follows the `previous` one read (by exactly one, in the read's
/// direction), and remembers it.
fn check_next(
    stream: Uuid,
    version: u64,
    previous: &mut Option<u64>,
    backwards: bool,
) -> Result<()> {
    if let Some(prev) = *previous {
        let expected = match backwards {
            true => prev.checked_sub(1),
            false => prev.checked_add(1),
        };
        if expected != Some(version) {
            return Err(Error::Corrupt {
                stream,
                version,
                message: format!("version {version} follows version {prev}: the stream has a gap"),
            });
        }
    }
    *previous = Some(version);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistence::position::Position;
    use std::time::SystemTime;

    #[test]
    pub(super) fn gaps_in_a_stream_read_are_corruption() {
        let stored = |version| StoredEvent {
            id: Uuid::now_v7(),
            stream_id: Uuid::nil(),
            category: String::new(),
            version,
            name: "E".into(),
            schema_version: 1,
            payload: Vec::new(),
            metadata: Default::default(),
            recorded_at: SystemTime::UNIX_EPOCH,
            position: Position::new(version),
        };
        let mut previous = None;
        assert!(
            check_contiguous(Uuid::nil(), &[stored(1), stored(2)], &mut previous, false).is_ok()
        );
        assert!(matches!(
            check_contiguous(Uuid::nil(), &[stored(4)], &mut previous, false),
            Err(Error::Corrupt { version: 4, .. })
        ));
        let mut previous = None;
        assert!(
            check_contiguous(Uuid::nil(), &[stored(3), stored(2)], &mut previous, true).is_ok()
        );
    }
}
