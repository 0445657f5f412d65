//! The raw engine, in the same run: the same row shape written and read with the driver
//! directly (rusqlite, tokio-postgres), so the distance to the engine's limit is visible.
//!
//! Inserts go to a separate table (SQLite: a separate file beside the store's; PostgreSQL: a
//! `raw_events` table in the bench's schema) with the store's columns, key and indexes. Reads
//! use the store's own table with a plain query: the same rows the store reads, fetched the
//! fastest way the driver allows (one query for a stream, pages for the log), each row's
//! columns copied out but not decoded.
//!
//! These rows show what the store's shape costs; the engine's fastest shape for each access
//! pattern is measured beside them in [`raw_best`](super::raw_best).

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use eventsource_core::Uuid;
use rusqlite::{Connection, params};

use super::BenchResult;

/// One row's event columns, as the repository encodes a `Deposited`.
#[derive(Debug, Clone)]
pub struct RawRow {
    /// The stored event name.
    pub name: String,
    /// The schema version.
    pub schema_version: u32,
    /// The encoded payload.
    pub payload: Vec<u8>,
}

/// A stored event's columns, copied out of a driver row.
type Columns = (i64, String, i64, String, i64, Vec<u8>, Option<String>, i64);

/// Direct access to the engine under a store.
#[derive(Debug)]
pub enum RawEngine {
    /// rusqlite on a separate file (inserts) and on the store's file (reads).
    Sqlite(RawSqlite),
    /// tokio-postgres on its own connection.
    #[cfg(feature = "postgres")]
    Postgres(RawPostgres),
}

impl RawEngine {
    /// `rows` single-row transactions (one stream, versions 1, 2, …); returns seconds.
    pub async fn insert_single(&mut self, rows: u64, row: &RawRow) -> BenchResult<f64> {
        match self {
            RawEngine::Sqlite(raw) => tokio::task::block_in_place(|| raw.insert(rows, 1, row)),
            #[cfg(feature = "postgres")]
            RawEngine::Postgres(raw) => raw.insert(rows, 1, row).await,
        }
    }

    /// `transactions` transactions of `per_transaction` rows (a new stream each); returns
    /// seconds.
    pub async fn insert_batches(
        &mut self,
        transactions: u64,
        per_transaction: u64,
        row: &RawRow,
    ) -> BenchResult<f64> {
        match self {
            RawEngine::Sqlite(raw) => {
                tokio::task::block_in_place(|| raw.insert(transactions, per_transaction, row))
            }
            #[cfg(feature = "postgres")]
            RawEngine::Postgres(raw) => raw.insert(transactions, per_transaction, row).await,
        }
    }

    /// Reads a stream of the store's table in one query; returns (rows, seconds), or `None` when
    /// the store's table can't be reached (an in-memory SQLite database).
    pub async fn read_stream(&mut self, stream: Uuid) -> BenchResult<Option<(u64, f64)>> {
        match self {
            RawEngine::Sqlite(raw) => tokio::task::block_in_place(|| raw.read_stream(stream)),
            #[cfg(feature = "postgres")]
            RawEngine::Postgres(raw) => raw.read_stream(stream).await.map(Some),
        }
    }

    /// Reads the store's whole table in position order, `page` rows per query; returns
    /// (rows, seconds), or `None` as for [`read_stream`](Self::read_stream).
    pub async fn scan_log(&mut self, page: usize) -> BenchResult<Option<(u64, f64)>> {
        match self {
            RawEngine::Sqlite(raw) => tokio::task::block_in_place(|| raw.scan_log(page)),
            #[cfg(feature = "postgres")]
            RawEngine::Postgres(raw) => raw.scan_log(page).await.map(Some),
        }
    }
}

fn micros_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The SQLite raw engine.
#[derive(Debug)]
pub struct RawSqlite {
    conn: Connection,
    /// The raw file, removed on drop (`None` for in-memory).
    raw_file: Option<PathBuf>,
    /// The store's file, read by the read baselines.
    store_file: Option<PathBuf>,
    store_table: String,
}

impl RawSqlite {
    /// Opens a raw database at `raw_file` (in memory if `None`) with the store's pragmas and
    /// table, next to the store's database `store_file`.
    pub fn open(
        raw_file: Option<PathBuf>,
        store_file: Option<PathBuf>,
        synchronous: &str,
    ) -> BenchResult<Self> {
        let conn = match &raw_file {
            Some(path) => {
                remove_sqlite_files(path);
                let conn = Connection::open(path)?;
                let _mode: String =
                    conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
                conn
            }
            None => Connection::open_in_memory()?,
        };
        conn.pragma_update(None, "synchronous", synchronous)?;
        conn.execute_batch(
            "CREATE TABLE raw_events (
                position INTEGER PRIMARY KEY AUTOINCREMENT,
                stream_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                name TEXT NOT NULL,
                schema_version INTEGER NOT NULL,
                payload BLOB NOT NULL,
                metadata TEXT,
                recorded_at INTEGER NOT NULL,
                UNIQUE (stream_id, version)
            );",
        )?;
        Ok(Self {
            conn,
            raw_file,
            store_file,
            store_table: "events".into(),
        })
    }

    fn insert(
        &mut self,
        transactions: u64,
        per_transaction: u64,
        row: &RawRow,
    ) -> BenchResult<f64> {
        let single_stream = per_transaction == 1;
        let mut stream = Uuid::now_v7();
        let mut buffer = Uuid::encode_buffer();
        let mut version: i64 = 0;
        let start = Instant::now();
        for _ in 0..transactions {
            if !single_stream {
                stream = Uuid::now_v7();
                version = 0;
            }
            let id = stream.hyphenated().encode_lower(&mut buffer);
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO raw_events (stream_id, version, name, schema_version, payload, metadata, recorded_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                let now = micros_now();
                for _ in 0..per_transaction {
                    version += 1;
                    insert.execute(params![
                        &*id,
                        version,
                        row.name,
                        i64::from(row.schema_version),
                        row.payload,
                        None::<String>,
                        now
                    ])?;
                }
            }
            tx.commit()?;
        }
        Ok(start.elapsed().as_secs_f64())
    }

    fn reader(&self) -> BenchResult<Option<Connection>> {
        let Some(path) = &self.store_file else {
            return Ok(None);
        };
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        // Reads through a memory map, as the store's reader connections do.
        conn.pragma_update(None, "mmap_size", 256_i64 * 1024 * 1024)?;
        Ok(Some(conn))
    }

    fn read_stream(&self, stream: Uuid) -> BenchResult<Option<(u64, f64)>> {
        let Some(conn) = self.reader()? else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT position, stream_id, version, name, schema_version, payload, metadata, recorded_at
             FROM {} WHERE stream_id = ?1 ORDER BY version",
            self.store_table
        );
        let mut statement = conn.prepare(&sql)?;
        let mut buffer = Uuid::encode_buffer();
        let id = stream.hyphenated().encode_lower(&mut buffer);
        // Warm the page cache as the store's own reads are warm.
        let _ = collect_rows(&mut statement, params![&*id])?;
        let start = Instant::now();
        let rows = collect_rows(&mut statement, params![&*id])?;
        let seconds = start.elapsed().as_secs_f64();
        Ok(Some((rows.len() as u64, seconds)))
    }

    fn scan_log(&self, page: usize) -> BenchResult<Option<(u64, f64)>> {
        let Some(conn) = self.reader()? else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT position, stream_id, version, name, schema_version, payload, metadata, recorded_at
             FROM {} WHERE position > ?1 ORDER BY position LIMIT ?2",
            self.store_table
        );
        let mut statement = conn.prepare(&sql)?;
        let limit = i64::try_from(page).unwrap_or(i64::MAX);
        let start = Instant::now();
        let (mut after, mut total) = (0_i64, 0_u64);
        loop {
            let rows = collect_rows(&mut statement, params![after, limit])?;
            let Some(last) = rows.last() else { break };
            after = last.0;
            total += rows.len() as u64;
        }
        Ok(Some((total, start.elapsed().as_secs_f64())))
    }
}

fn collect_rows(
    statement: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
) -> BenchResult<Vec<Columns>> {
    let rows = statement.query_map(params, |row| {
        Ok((
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
            row.get(5)?,
            row.get(6)?,
            row.get(7)?,
        ))
    })?;
    Ok(rows.collect::<Result<Vec<Columns>, _>>()?)
}

/// Removes a database file and its WAL files, if there.
pub fn remove_sqlite_files(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}

impl Drop for RawSqlite {
    fn drop(&mut self) {
        if let Some(path) = &self.raw_file {
            remove_sqlite_files(path);
        }
    }
}

#[cfg(feature = "postgres")]
pub use postgres::RawPostgres;

#[cfg(feature = "postgres")]
mod postgres {
    use std::time::{Instant, SystemTime};

    use eventsource_core::Uuid;
    use eventsource_core::stores::postgres::tokio_postgres::{self, Client, NoTls};

    use super::{RawRow, micros_now};
    use crate::bench::BenchResult;

    /// The PostgreSQL raw engine: its own connection, the bench's schema.
    #[derive(Debug)]
    pub struct RawPostgres {
        client: Client,
        schema: String,
    }

    impl RawPostgres {
        /// Connects and creates `<schema>.raw_events` (the schema must exist or is created).
        pub async fn connect(url: &str, schema: &str) -> BenchResult<Self> {
            let client = connect(url).await?;
            client
                .batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
                     CREATE TABLE \"{schema}\".raw_events (
                        stream_id      uuid        NOT NULL,
                        version        int8        NOT NULL CHECK (version >= 1),
                        name           text        NOT NULL,
                        schema_version int8        NOT NULL,
                        payload        bytea       NOT NULL,
                        metadata       jsonb       NOT NULL DEFAULT '{{}}',
                        recorded_at    timestamptz NOT NULL DEFAULT now(),
                        position       int8        NOT NULL CHECK (position >= 1),
                        PRIMARY KEY (stream_id, version)
                     );
                     CREATE UNIQUE INDEX ON \"{schema}\".raw_events (position);"
                ))
                .await?;
            Ok(Self {
                client,
                schema: schema.to_owned(),
            })
        }

        /// Single rows go in with a one-row `INSERT … VALUES` (autocommit, one round trip);
        /// batches with one `INSERT … SELECT FROM unnest(…)` per transaction, as the store does.
        pub(super) async fn insert(
            &mut self,
            transactions: u64,
            per_transaction: u64,
            row: &RawRow,
        ) -> BenchResult<f64> {
            let schema = &self.schema;
            let single = self
                .client
                .prepare(&format!(
                    "INSERT INTO \"{schema}\".raw_events (stream_id, version, name, schema_version, payload, metadata, position)
                     VALUES ($1, $2, $3, $4, $5, '{{}}'::text::jsonb, $6)"
                ))
                .await?;
            let batch = self
                .client
                .prepare(&format!(
                    "INSERT INTO \"{schema}\".raw_events (stream_id, version, name, schema_version, payload, metadata, position)
                     SELECT t.stream_id, t.version, t.name, t.schema_version, t.payload, t.metadata::jsonb, t.position
                     FROM unnest($1::uuid[], $2::int8[], $3::text[], $4::int8[], $5::bytea[], $6::text[], $7::int8[])
                          AS t(stream_id, version, name, schema_version, payload, metadata, position)"
                ))
                .await?;
            let schema_version = i64::from(row.schema_version);
            let mut position: i64 = micros_now();
            let mut stream = Uuid::now_v7();
            let mut version: i64 = 0;
            let start = Instant::now();
            for _ in 0..transactions {
                if per_transaction == 1 {
                    version += 1;
                    position += 1;
                    self.client
                        .execute(
                            &single,
                            &[
                                &stream,
                                &version,
                                &row.name,
                                &schema_version,
                                &row.payload,
                                &position,
                            ],
                        )
                        .await?;
                    continue;
                }
                stream = Uuid::now_v7();
                let n = usize::try_from(per_transaction).unwrap_or(usize::MAX);
                let streams = vec![stream; n];
                let versions: Vec<i64> = (1..=per_transaction as i64).collect();
                let names = vec![row.name.as_str(); n];
                let schema_versions = vec![schema_version; n];
                let payloads = vec![row.payload.as_slice(); n];
                let metadata = vec!["{}"; n];
                let positions: Vec<i64> = (position + 1..=position + n as i64).collect();
                position += n as i64;
                self.client
                    .execute(
                        &batch,
                        &[
                            &streams,
                            &versions,
                            &names,
                            &schema_versions,
                            &payloads,
                            &metadata,
                            &positions,
                        ],
                    )
                    .await?;
            }
            Ok(start.elapsed().as_secs_f64())
        }

        pub(super) async fn read_stream(&mut self, stream: Uuid) -> BenchResult<(u64, f64)> {
            let statement = self
                .client
                .prepare(&format!(
                    "SELECT stream_id, version, name, schema_version, payload, metadata::text, recorded_at, position
                     FROM \"{}\".events WHERE stream_id = $1 ORDER BY version",
                    self.schema
                ))
                .await?;
            let _warm = self.client.query(&statement, &[&stream]).await?;
            let start = Instant::now();
            let rows = self.client.query(&statement, &[&stream]).await?;
            let mut copied = Vec::with_capacity(rows.len());
            for row in &rows {
                copied.push(columns(row)?);
            }
            Ok((copied.len() as u64, start.elapsed().as_secs_f64()))
        }

        pub(super) async fn scan_log(&mut self, page: usize) -> BenchResult<(u64, f64)> {
            let statement = self
                .client
                .prepare(&format!(
                    "SELECT stream_id, version, name, schema_version, payload, metadata::text, recorded_at, position
                     FROM \"{}\".events WHERE position > $1 ORDER BY position LIMIT $2",
                    self.schema
                ))
                .await?;
            let limit = i64::try_from(page).unwrap_or(i64::MAX);
            let start = Instant::now();
            let (mut after, mut total) = (0_i64, 0_u64);
            loop {
                let rows = self.client.query(&statement, &[&after, &limit]).await?;
                let mut copied = Vec::with_capacity(rows.len());
                for row in &rows {
                    copied.push(columns(row)?);
                }
                let Some(last) = copied.last() else { break };
                after = last.7;
                total += copied.len() as u64;
            }
            Ok((total, start.elapsed().as_secs_f64()))
        }

        /// Drops the bench's schema with everything in it.
        pub async fn drop_schema(&self) -> BenchResult<()> {
            self.client
                .batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                    self.schema
                ))
                .await?;
            Ok(())
        }
    }

    type PgColumns = (Uuid, i64, String, i64, Vec<u8>, String, SystemTime, i64);

    fn columns(row: &tokio_postgres::Row) -> BenchResult<PgColumns> {
        Ok((
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
            row.try_get(4)?,
            row.try_get(5)?,
            row.try_get(6)?,
            row.try_get(7)?,
        ))
    }

    /// A plain connection, its driver task spawned.
    pub async fn connect(url: &str) -> BenchResult<Client> {
        let (client, connection) = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio_postgres::connect(url, NoTls),
        )
        .await
        .map_err(|_| format!("connecting to {url} timed out after 5 s"))??;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                eprintln!("bench: the raw PostgreSQL connection failed: {error}");
            }
        });
        Ok(client)
    }
}

#[cfg(feature = "postgres")]
pub use postgres::connect as connect_postgres;
