//! The [`EventStore`] contract, implemented on the pieces in the sibling modules.

use uuid::Uuid;

use super::plan::{Plan, check_versions};
use super::{BACKEND, PostgresStore, pg_error, rows};
use crate::error::{Error, Result};
use crate::persistence::position::Position;
use crate::persistence::record::{AppendBatch, LogPage, LogQuery, Snapshot, StreamRange};
use crate::persistence::store::{EventStore, EventStream, ReplayVisitor, StreamVisitor};
use crate::persistence::wake::WakeUps;

#[async_trait::async_trait]
impl EventStore for PostgresStore {
    async fn append(&self, batch: AppendBatch) -> Result<Position> {
        let plan = Plan::new(&batch)?;
        if plan.streams.is_empty() && plan.tracking.is_none() {
            return self.last_position().await;
        }
        let context = plan.describe();
        let mut client = self.client(&context).await?;
        let last = match plan.tracking {
            Some(tracking) => {
                self.write_tracked(&mut client, &plan, tracking, &context)
                    .await?
            }
            None if plan.count == 0 => {
                // Only expected versions to check, nothing to write.
                let statement = client
                    .prepare_cached(&self.sql.stream_versions)
                    .await
                    .map_err(pg_error(&context))?;
                let row = client
                    .query_one(&statement, &[&plan.streams])
                    .await
                    .map_err(pg_error(&context))?;
                let versions: Vec<i64> = row.try_get(0).map_err(pg_error(&context))?;
                check_versions(&plan, &versions)?;
                None
            }
            None => self.write_own(&client, &plan, &context).await?,
        };
        drop(client);
        // Committed: wake this process's readers now, without waiting for the notification to
        // come back from the server (it may still wake readers in other processes).
        if last.is_some() {
            self.wake.committed();
        }
        match last {
            Some(position) => Ok(position),
            None => self.last_position().await,
        }
    }

    fn read_stream(&self, stream_id: Uuid, range: StreamRange) -> EventStream<'_> {
        self.event_stream(stream_id, range)
    }

    /// One query for the whole range, its rows visited as they arrive (see `read.rs`).
    async fn visit_stream(
        &self,
        stream_id: Uuid,
        range: StreamRange,
        visit: &mut StreamVisitor<'_>,
    ) -> Result<()> {
        self.visit(stream_id, range, visit).await
    }

    /// The snapshot and the events after it in one statement (see `read.rs`).
    async fn replay_from_snapshot(
        &self,
        stream_id: Uuid,
        upto: Option<u64>,
        visit: &mut ReplayVisitor<'_>,
    ) -> Result<()> {
        self.visit_from_snapshot(stream_id, upto, visit).await
    }

    async fn stream_version(&self, stream_id: Uuid) -> Result<u64> {
        self.query_count(
            &self.sql.stream_version,
            &[&stream_id],
            &format!("the version of stream {stream_id}"),
        )
        .await
    }

    async fn read_log(&self, query: LogQuery) -> Result<LogPage> {
        let empty = |next| LogPage {
            events: Vec::new(),
            next,
        };
        let Ok(after) = i64::try_from(query.after.get()) else {
            return Ok(empty(query.after)); // no position is that large
        };
        if query.limit == 0 {
            return Ok(empty(query.after));
        }
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        // No stored position is above `i64::MAX`: a larger bound is no bound.
        let to = query
            .to
            .map_or(i64::MAX, |to| i64::try_from(to.get()).unwrap_or(i64::MAX));
        // Each category is its own index scan, merged: a category listed twice would return
        // its events twice. (Names are matched with `= ANY`, where a repeat is harmless.)
        let mut categories: Vec<&str> = query.categories.iter().map(String::as_str).collect();
        categories.sort_unstable();
        categories.dedup();
        let variant =
            usize::from(!query.names.is_empty()) + 2 * usize::from(!categories.is_empty());
        let context = format!("reading the log after position {after}");
        let client = self.client(&context).await?;
        let rows = self
            .below_horizon(
                &client,
                &self.sql.read_log[variant],
                &[&after, &limit, &categories, &query.names, &to],
                &context,
            )
            .await?;
        drop(client);
        // Every row starts with the greatest position below the horizon; an empty page is one
        // row with no event columns.
        let Some(first) = rows.first() else {
            return Err(Error::backend(
                BACKEND,
                context,
                "the log query returned no row",
            ));
        };
        let last = Position::new(rows::count(first, "the last log position")?);
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let no_event: Option<Uuid> = row.try_get(1).map_err(pg_error(&context))?;
            if no_event.is_some() {
                events.push(rows::event_at(row, 1)?);
            }
        }
        let next = match events.last() {
            Some(event) if events.len() == query.limit => event.position,
            _ => {
                // Caught up with the horizon: say so if an open appender is holding it back.
                self.watch_horizon().await;
                query.after.max(last)
            }
        };
        Ok(LogPage { events, next })
    }

    async fn last_position(&self) -> Result<Position> {
        let what = "the last log position";
        let context = format!("reading {what}");
        let client = self.client(&context).await?;
        let rows = self
            .below_horizon(&client, &self.sql.last_position, &[], &context)
            .await?;
        let row = rows.first().ok_or_else(|| {
            Error::backend(BACKEND, context.as_str(), "the query returned no row")
        })?;
        rows::count(row, what).map(Position::new)
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        let context = format!(
            "saving the snapshot of stream {} at version {}",
            snapshot.stream_id, snapshot.version
        );
        let version = i64::try_from(snapshot.version).map_err(|_| {
            Error::backend(
                BACKEND,
                context.clone(),
                "the version does not fit in PostgreSQL's int8",
            )
        })?;
        // int8 with the same bits: PostgreSQL has no unsigned 64-bit type.
        let fingerprint = i64::from_ne_bytes(snapshot.fingerprint.to_ne_bytes());
        let client = self.client(&context).await?;
        let statement = client
            .prepare_cached(&self.sql.save_snapshot)
            .await
            .map_err(pg_error(&context))?;
        client
            .execute(
                &statement,
                &[
                    &snapshot.stream_id,
                    &version,
                    &snapshot.aggregate,
                    &fingerprint,
                    &snapshot.state,
                    &snapshot.recorded_at,
                ],
            )
            .await
            .map_err(pg_error(context))?;
        Ok(())
    }

    async fn delete_snapshots(&self, stream_id: Uuid) -> Result<u64> {
        let context = format!("deleting the snapshots of stream {stream_id}");
        let client = self.client(&context).await?;
        let statement = client
            .prepare_cached(&self.sql.delete_snapshots)
            .await
            .map_err(pg_error(&context))?;
        client
            .execute(&statement, &[&stream_id])
            .await
            .map_err(pg_error(context))
    }

    async fn load_snapshot(
        &self,
        stream_id: Uuid,
        at_or_below: Option<u64>,
    ) -> Result<Option<Snapshot>> {
        let context = format!("loading a snapshot of stream {stream_id}");
        let client = self.client(&context).await?;
        let row = match at_or_below {
            None => {
                let statement = client
                    .prepare_cached(&self.sql.load_snapshot)
                    .await
                    .map_err(pg_error(&context))?;
                client.query_opt(&statement, &[&stream_id]).await
            }
            Some(version) => {
                let version = i64::try_from(version).unwrap_or(i64::MAX);
                let statement = client
                    .prepare_cached(&self.sql.load_snapshot_at)
                    .await
                    .map_err(pg_error(&context))?;
                client.query_opt(&statement, &[&stream_id, &version]).await
            }
        }
        .map_err(pg_error(context))?;
        row.as_ref().map(rows::snapshot).transpose()
    }

    async fn tracking_position(&self, tracker: &str) -> Result<Position> {
        let what = format!("the position of tracker `{tracker}`");
        let context = format!("reading {what}");
        let client = self.client(&context).await?;
        let statement = client
            .prepare_cached(&self.sql.tracking_position)
            .await
            .map_err(pg_error(&context))?;
        let row = client
            .query_opt(&statement, &[&tracker])
            .await
            .map_err(pg_error(context))?;
        match row {
            Some(row) => rows::count(&row, &what).map(Position::new),
            None => Ok(Position::START),
        }
    }

    /// Wake-ups from the store's `NOTIFY` channel, heard by one listener per store (shared by
    /// its clones) on a connection of its own, started here on the first call inside a tokio
    /// runtime; outside one, none. See [wake-ups](super#wake-ups).
    fn wake_ups(&self) -> WakeUps {
        self.wake.wake_ups()
    }
}
