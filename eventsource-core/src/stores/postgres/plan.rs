//! An append planned before the database is touched: the events as parallel columns, the
//! streams with their expected versions, and why the append statement refused a batch.

use std::collections::HashSet;

use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::horizon::MAX_XID;
use super::{BACKEND, MAX_EVENTS_PER_TRANSACTION, pg_error};
use crate::error::{CodecError, Error, Result};
use crate::persistence::position::Position;
use crate::persistence::record::AppendBatch;

/// An append holds more events than one transaction can write ([`MAX_EVENTS_PER_TRANSACTION`]).
/// It is the source of the [`Error::Backend`] the append returns; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{events} events in one transaction, but at most {max} fit; split the append into several")]
pub struct BatchTooLarge {
    /// The events the transaction would have held.
    pub events: usize,
    /// [`MAX_EVENTS_PER_TRANSACTION`].
    pub max: usize,
}

/// An append's events as parallel columns, checked before the database is touched.
pub(super) struct Plan<'a> {
    /// Every stream of the batch, in batch order (also those with no events).
    pub(super) streams: Vec<Uuid>,
    pub(super) expected: Vec<u64>,
    /// The expected versions as int8; -1 (which no stream is at) for one beyond int8.
    pub(super) expected_sql: Vec<i64>,
    /// The number of events.
    pub(super) count: i64,
    /// One entry per event, in log order.
    pub(super) event_streams: Vec<Uuid>,
    pub(super) versions: Vec<i64>,
    pub(super) names: Vec<&'a str>,
    pub(super) schema_versions: Vec<i64>,
    pub(super) payloads: Vec<&'a [u8]>,
    pub(super) metadata: Vec<String>,
    pub(super) event_ids: Vec<Uuid>,
    pub(super) categories: Vec<&'a str>,
    pub(super) tracking: Option<(&'a str, i64, Position)>,
}

impl<'a> Plan<'a> {
    pub(super) fn new(batch: &'a AppendBatch) -> Result<Self> {
        let count = batch.event_count();
        if count > MAX_EVENTS_PER_TRANSACTION {
            return Err(too_large(count));
        }
        let mut seen = HashSet::with_capacity(batch.streams.len());
        let mut plan = Plan {
            streams: Vec::with_capacity(batch.streams.len()),
            expected: Vec::with_capacity(batch.streams.len()),
            expected_sql: Vec::with_capacity(batch.streams.len()),
            count: i64::try_from(count).unwrap_or(i64::MAX),
            event_streams: Vec::with_capacity(count),
            versions: Vec::with_capacity(count),
            names: Vec::with_capacity(count),
            schema_versions: Vec::with_capacity(count),
            payloads: Vec::with_capacity(count),
            metadata: Vec::with_capacity(count),
            event_ids: Vec::with_capacity(count),
            categories: Vec::with_capacity(count),
            tracking: None,
        };
        for append in &batch.streams {
            let stream = append.stream_id;
            if !seen.insert(stream) {
                return Err(Error::DuplicateStreamInBatch { stream });
            }
            plan.streams.push(stream);
            plan.expected.push(append.expected_version);
            plan.expected_sql
                .push(i64::try_from(append.expected_version).unwrap_or(-1));
            for (offset, event) in append.events.iter().enumerate() {
                // Versions beyond int8 can't be stored; such an expected version can't match the
                // stream either, so the append fails as a conflict before these are used.
                let version = append
                    .expected_version
                    .checked_add(offset as u64 + 1)
                    .and_then(|v| i64::try_from(v).ok())
                    .unwrap_or(i64::MAX);
                plan.event_streams.push(stream);
                plan.versions.push(version);
                plan.names.push(&event.name);
                plan.schema_versions.push(i64::from(event.schema_version));
                plan.payloads.push(&event.payload);
                plan.event_ids.push(event.id);
                plan.categories.push(&append.category);
                plan.metadata
                    .push(
                        serde_json::to_string(&event.metadata).map_err(|e| Error::Encode {
                            what: format!("metadata of event `{}`", event.name),
                            source: CodecError::new("json", e),
                        })?,
                    );
            }
        }
        if let Some(tracking) = &batch.tracking {
            let position = i64::try_from(tracking.position.get()).map_err(|_| {
                Error::backend(
                    BACKEND,
                    format!("recording tracker `{}`", tracking.tracker),
                    format!(
                        "position {} does not fit in PostgreSQL's int8",
                        tracking.position
                    ),
                )
            })?;
            plan.tracking = Some((&tracking.tracker, position, tracking.position));
        }
        Ok(plan)
    }

    pub(super) fn describe(&self) -> String {
        format!(
            "appending {} events to {} streams",
            self.names.len(),
            self.streams.len()
        )
    }

    /// The parameters of [`Sql::append`](schema::Sql).
    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 11] {
        [
            &self.event_streams,
            &self.versions,
            &self.names,
            &self.schema_versions,
            &self.payloads,
            &self.metadata,
            &self.count,
            &self.streams,
            &self.expected_sql,
            &self.event_ids,
            &self.categories,
        ]
    }
}

pub(super) fn too_large(events: usize) -> Error {
    Error::backend(
        BACKEND,
        "appending",
        BatchTooLarge {
            events,
            max: MAX_EVENTS_PER_TRANSACTION,
        },
    )
}

/// What the append statement reported.
#[derive(Debug)]
pub(super) struct Appended {
    /// Every stream was at its expected version and the events fit in the transaction.
    pub(super) passed: bool,
    pub(super) inserted: i64,
    /// The last event's position (0 if none).
    pub(super) last: i64,
    /// The versions the streams were at when the statement checked them, in batch order.
    pub(super) versions: Vec<i64>,
}

impl Appended {
    pub(super) fn read(row: &tokio_postgres::Row, context: &str) -> Result<Self> {
        Ok(Self {
            passed: row.try_get(0).map_err(pg_error(context))?,
            inserted: row.try_get(1).map_err(pg_error(context))?,
            last: row.try_get(2).map_err(pg_error(context))?,
            versions: row.try_get(3).map_err(pg_error(context))?,
        })
    }

    /// The last position, after checking that every event was written.
    pub(super) fn last_position(&self, plan: &Plan<'_>) -> Result<Option<Position>> {
        if self.inserted != plan.count {
            return Err(Error::backend(
                BACKEND,
                plan.describe(),
                format!(
                    "{} rows were inserted instead of {}",
                    self.inserted, plan.count
                ),
            ));
        }
        if plan.count == 0 {
            return Ok(None);
        }
        u64::try_from(self.last)
            .map(|last| Some(Position::new(last)))
            .map_err(|_| {
                Error::backend(
                    BACKEND,
                    plan.describe(),
                    format!("the database returned position {}", self.last),
                )
            })
    }
}

/// What [`Sql::append_own`](super::schema::Sql) reported: the append of a batch with events in
/// a transaction of its own.
#[derive(Debug)]
pub(super) struct AppendedOwn {
    /// 0 if the statement's checks refused the batch.
    pub(super) inserted: i64,
    /// The last event's position (0 if none was inserted).
    pub(super) last: i64,
    /// The transaction's id, to tell a refusal for its size from one for a version.
    pub(super) xid: i64,
}

impl AppendedOwn {
    pub(super) fn read(row: &tokio_postgres::Row, context: &str) -> Result<Self> {
        Ok(Self {
            inserted: row.try_get(0).map_err(pg_error(context))?,
            last: row.try_get(1).map_err(pg_error(context))?,
            xid: row.try_get(2).map_err(pg_error(context))?,
        })
    }

    /// Whether the checks let the batch through (the batch holds events, so a pass inserts).
    pub(super) fn passed(&self) -> bool {
        self.inserted > 0
    }

    /// The last position, after checking that every event was written.
    pub(super) fn last_position(&self, plan: &Plan<'_>) -> Result<Option<Position>> {
        Appended {
            passed: true,
            inserted: self.inserted,
            last: self.last,
            versions: Vec::new(),
        }
        .last_position(plan)
    }

    /// Why the statement refused the batch, from the versions read after it: the transaction
    /// id did not fit in a position, or the first stream not at its expected version.
    pub(super) fn refusal(&self, plan: &Plan<'_>, versions: &[i64]) -> Error {
        if !(1..=MAX_XID).contains(&self.xid) {
            return rejected(plan, &[], Scope::Own);
        }
        match check_versions(plan, versions) {
            Err(error) => error,
            // A stream was behind its expected version when the statement checked, and has
            // reached it since (another writer appended the versions in between): nothing was
            // written, and trying again is all there is to do.
            Ok(()) => Error::busy(
                BACKEND,
                plan.describe(),
                "a stream reached its expected version only after the append was refused; nothing was written",
            ),
        }
    }
}

/// Where an append ran, for telling why it was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// Its own transaction: the events always fit, only the transaction id can be too large.
    Own,
    /// The caller's transaction, which may already hold events.
    Callers,
}

/// Compares the versions read at the start of the transaction with the expected ones.
pub(super) fn check_versions(plan: &Plan<'_>, versions: &[i64]) -> Result<()> {
    if versions.len() != plan.streams.len() {
        return Err(Error::backend(
            BACKEND,
            plan.describe(),
            format!(
                "{} stream versions came back for {} streams",
                versions.len(),
                plan.streams.len()
            ),
        ));
    }
    for ((stream, expected), actual) in plan.streams.iter().zip(&plan.expected).zip(versions) {
        let actual = u64::try_from(*actual).map_err(|_| Error::Corrupt {
            stream: *stream,
            version: 0,
            message: format!("the stream's greatest version is {actual}"),
        })?;
        if actual != *expected {
            return Err(Error::Conflict {
                stream: *stream,
                expected: *expected,
                actual,
            });
        }
    }
    Ok(())
}

/// Why the append statement refused a batch, from the versions it saw: the first stream not at
/// its expected version; if all were, the events did not fit in the transaction's positions.
pub(super) fn rejected(plan: &Plan<'_>, versions: &[i64], scope: Scope) -> Error {
    if !versions.is_empty()
        && let Err(error) = check_versions(plan, versions)
    {
        return error;
    }
    match scope {
        Scope::Callers => too_large(usize::try_from(plan.count).unwrap_or(usize::MAX)),
        Scope::Own => Error::backend(
            BACKEND,
            plan.describe(),
            "the transaction id is too large to be encoded in a position (2^43 transactions have run)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistence::record::{NewEvent, StreamAppend, Tracking};

    fn event() -> NewEvent {
        NewEvent::new("Opened", 1, b"{}".to_vec())
    }

    #[test]
    fn a_stream_twice_is_refused_before_any_query() {
        let id = Uuid::now_v7();
        let batch = AppendBatch {
            streams: vec![
                StreamAppend {
                    stream_id: id,
                    category: "Account".into(),
                    expected_version: 0,
                    events: vec![event()],
                },
                StreamAppend {
                    stream_id: id,
                    category: "Account".into(),
                    expected_version: 1,
                    events: vec![event()],
                },
            ],
            tracking: None,
        };
        assert!(matches!(
            Plan::new(&batch),
            Err(Error::DuplicateStreamInBatch { stream }) if stream == id
        ));
    }

    #[test]
    fn a_batch_over_the_cap_is_refused_with_a_typed_source() {
        let batch = AppendBatch::single(
            Uuid::now_v7(),
            0,
            vec![event(); MAX_EVENTS_PER_TRANSACTION + 1],
        );
        let Err(Error::Backend { source, .. }) = Plan::new(&batch) else {
            panic!("expected a backend error");
        };
        let too_large = source.downcast_ref::<BatchTooLarge>();
        assert_eq!(
            too_large,
            Some(&BatchTooLarge {
                events: MAX_EVENTS_PER_TRANSACTION + 1,
                max: MAX_EVENTS_PER_TRANSACTION
            })
        );
    }

    #[test]
    fn plan_lays_out_versions_per_stream() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let batch = AppendBatch {
            streams: vec![
                StreamAppend {
                    stream_id: a,
                    category: "Account".into(),
                    expected_version: 3,
                    events: vec![event(), event()],
                },
                StreamAppend {
                    stream_id: b,
                    category: "Order".into(),
                    expected_version: 0,
                    events: vec![event()],
                },
            ],
            tracking: Some(Tracking {
                tracker: "t".into(),
                position: Position::new(7),
            }),
        };
        let plan = Plan::new(&batch).unwrap();
        assert_eq!(plan.event_streams, vec![a, a, b]);
        assert_eq!(plan.versions, vec![4, 5, 1]);
        assert_eq!(plan.metadata, vec!["{}"; 3]);
        assert_eq!(plan.categories, vec!["Account", "Account", "Order"]);
        let ids: Vec<Uuid> = batch
            .streams
            .iter()
            .flat_map(|s| s.events.iter().map(|e| e.id))
            .collect();
        assert_eq!(plan.event_ids, ids);
        assert_eq!(plan.tracking, Some(("t", 7, Position::new(7))));
    }
}
