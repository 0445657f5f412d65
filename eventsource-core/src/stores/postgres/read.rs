//! Reading a stream in chunks, checking that its versions have no gaps.

use uuid::Uuid;

use super::{PostgresStore, pg_error, rows};
use crate::error::{Error, Result};
use crate::persistence::record::{StoredEvent, StreamRange};
use crate::persistence::store::EventStream;

/// How many events a stream read fetches per query.
const READ_CHUNK: i64 = 512;

impl PostgresStore {
    pub(super) fn event_stream(&self, stream_id: Uuid, range: StreamRange) -> EventStream<'_> {
        struct Cursor {
            lo: i64,
            hi: i64,
            remaining: usize,
            buffer: std::vec::IntoIter<StoredEvent>,
            previous: Option<u64>,
            exhausted: bool,
        }
        let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let start = Cursor {
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
                    let limit = READ_CHUNK.min(i64::try_from(cursor.remaining).unwrap_or(i64::MAX));
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

    pub(super) async fn read_chunk(
        &self,
        stream_id: Uuid,
        lo: i64,
        hi: i64,
        limit: i64,
        backwards: bool,
    ) -> Result<Vec<StoredEvent>> {
        let context = format!("reading stream {stream_id}");
        let client = self.client(&context).await?;
        let sql = match backwards {
            true => &self.sql.read_stream_backwards,
            false => &self.sql.read_stream_forwards,
        };
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(pg_error(&context))?;
        let rows = client
            .query(&statement, &[&stream_id, &lo, &hi, &limit])
            .await
            .map_err(pg_error(context))?;
        rows.iter().map(rows::event).collect()
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
    for event in chunk {
        if let Some(prev) = *previous {
            let expected = match backwards {
                true => prev.checked_sub(1),
                false => prev.checked_add(1),
            };
            if expected != Some(event.version) {
                return Err(Error::Corrupt {
                    stream,
                    version: event.version,
                    message: format!(
                        "version {} follows version {prev}: the stream has a gap",
                        event.version
                    ),
                });
            }
        }
        *previous = Some(event.version);
    }
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
