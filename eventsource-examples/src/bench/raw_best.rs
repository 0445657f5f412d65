//! The raw engine at its best, in the same run (issue 16): for each access pattern the fastest
//! shape the engine offers, written and read with the driver directly, so that a store
//! figure's ratio says how far the store is from the engine, not from a copy of itself (the
//! store-shape rows of [`raw`](super::raw) stay beside these: the gap between the two is what
//! the store's own row shape costs).
//!
//! - **Replay** (`raw-best-read`, W3 and W3-interleaved): a table clustered by stream and
//!   version with a compact stream id (SQLite: `WITHOUT ROWID`, `PRIMARY KEY (stream, version)`
//!   with a 16-byte `BLOB` stream; PostgreSQL: `PRIMARY KEY (stream uuid, version)`, the heap
//!   `CLUSTER`ed on it after writing), holding only `name`, `schema_version` and `payload`
//!   beside the key. The same events the workload writes (`Opened`, then `Deposited`); one
//!   stream is read with one prepared query and each payload decoded with `serde_json` into the
//!   bench's event types, the same `Opened` and `Deposited` the repository decodes.
//! - **W1** (`raw-best-single`): single-row commits, one prepared `INSERT` each (PostgreSQL:
//!   autocommitted, one round trip).
//! - **W2** (`raw-best-batch`): transactions of W2's events per aggregate; on PostgreSQL one
//!   `INSERT … SELECT * FROM unnest($1::uuid[], $2::int8[], …)` statement each.
//! - **W5** (`raw-best-concurrent`, with a `writers` field): N clients at once (N = W5's
//!   writers, and 16), each on its own connection committing single rows to its own stream.
//!
//! SQLite runs on its own file beside the store's (`<store>.best.db`) with the store's pragmas
//! (WAL, the same `synchronous` level, reads through a 256 MiB memory map as the store's
//! reader connections do), so it is the engine's best, not a different configuration.
//! PostgreSQL uses tables `best_events` and `best_interleaved` in the bench's schema.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use eventsource_core::Uuid;
use rusqlite::{Connection, params};

use super::raw::{RawRow, remove_sqlite_files};
use super::workloads::median;
use super::{BenchError, BenchResult};
use crate::bank::{Deposited, Opened};

/// The rows a replay baseline writes: `Opened` at version 1, then `Deposited`, each exactly as
/// the repository encodes it.
#[derive(Debug, Clone)]
pub struct EventRows {
    /// The first event of a stream.
    pub opened: RawRow,
    /// Every later event.
    pub deposited: RawRow,
}

impl EventRows {
    /// The row at `version` (from 1).
    fn at(&self, version: u64) -> &RawRow {
        if version == 1 {
            &self.opened
        } else {
            &self.deposited
        }
    }
}

/// Which of the two replay tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BestTable {
    /// W1, W2, W3 and W5's rows, each stream written in one go.
    Contiguous,
    /// W3-interleaved's streams, written round robin (one event per stream per round).
    Interleaved,
}

impl BestTable {
    fn name(self) -> &'static str {
        match self {
            BestTable::Contiguous => "best_events",
            BestTable::Interleaved => "best_interleaved",
        }
    }
}

/// What a replay baseline read.
#[derive(Debug, Clone, Copy)]
pub struct BestReplay {
    /// Rows read (and decoded) per run.
    pub rows: u64,
    /// The decoded deposits' sum, per run.
    pub cents: u64,
    /// The median run's seconds.
    pub seconds: f64,
    /// Runs timed.
    pub runs: u64,
}

/// Decodes stored rows the way a replay must, and checks that none is missing or out of order.
#[derive(Debug)]
struct Decoder<'a> {
    opened_name: &'a str,
    rows: u64,
    cents: u64,
}

impl<'a> Decoder<'a> {
    fn new(rows: &'a EventRows) -> Self {
        Self {
            opened_name: &rows.opened.name,
            rows: 0,
            cents: 0,
        }
    }

    /// One row: its version must be the next, its payload decodes into the event its name says.
    fn row(&mut self, version: i64, name: &str, payload: &[u8]) -> BenchResult<()> {
        self.rows += 1;
        if u64::try_from(version).ok() != Some(self.rows) {
            return Err(format!(
                "raw best replay: version {version} where {} was due",
                self.rows
            )
            .into());
        }
        if name == self.opened_name {
            let opened: Opened = serde_json::from_slice(payload)?;
            std::hint::black_box(opened);
        } else {
            let deposited: Deposited = serde_json::from_slice(payload)?;
            self.cents += deposited.cents;
        }
        Ok(())
    }
}

/// The engine's best shapes beside a store (none for memory or NATS).
#[derive(Debug)]
pub enum RawBest {
    /// rusqlite on a file of its own beside the store's.
    Sqlite(BestSqlite),
    /// tokio-postgres on connections of its own, tables in the bench's schema.
    #[cfg(feature = "postgres")]
    Postgres(BestPostgres),
}

impl RawBest {
    /// The replay tables' layout, in words (a figure's `layout`).
    pub fn layout(&self) -> &'static str {
        match self {
            RawBest::Sqlite(_) => "WITHOUT ROWID, PRIMARY KEY (stream BLOB 16 bytes, version)",
            #[cfg(feature = "postgres")]
            RawBest::Postgres(_) => {
                "PRIMARY KEY (stream uuid, version), heap CLUSTERed on it after writing"
            }
        }
    }

    /// `rows` single-row commits on one stream (versions 1, 2, …); returns seconds.
    pub async fn insert_single(&mut self, rows: u64, row: &RawRow) -> BenchResult<f64> {
        match self {
            RawBest::Sqlite(best) => tokio::task::block_in_place(|| best.insert(rows, 1, row)),
            #[cfg(feature = "postgres")]
            RawBest::Postgres(best) => best.insert_single(rows, row).await,
        }
    }

    /// `transactions` transactions of `per_transaction` rows, a new stream each; returns
    /// seconds.
    pub async fn insert_batches(
        &mut self,
        transactions: u64,
        per_transaction: u64,
        row: &RawRow,
    ) -> BenchResult<f64> {
        match self {
            RawBest::Sqlite(best) => {
                tokio::task::block_in_place(|| best.insert(transactions, per_transaction, row))
            }
            #[cfg(feature = "postgres")]
            RawBest::Postgres(best) => {
                best.insert_batches(transactions, per_transaction, row)
                    .await
            }
        }
    }

    /// `writers` clients at once, each on its own connection committing `commits` single rows
    /// to its own stream; returns seconds, after checking every row is there. `None` where the
    /// engine has one connection only (an in-memory SQLite database).
    pub async fn concurrent(
        &mut self,
        writers: u64,
        commits: u64,
        row: &RawRow,
    ) -> BenchResult<Option<f64>> {
        match self {
            RawBest::Sqlite(best) => {
                tokio::task::block_in_place(|| best.concurrent(writers, commits, row))
            }
            #[cfg(feature = "postgres")]
            RawBest::Postgres(best) => best.concurrent(writers, commits, row).await.map(Some),
        }
    }

    /// Writes one stream of `events` rows (`Opened`, then deposits) into `table` in one go,
    /// so its rows lie together.
    pub async fn write_stream(
        &mut self,
        table: BestTable,
        stream: Uuid,
        events: u64,
        rows: &EventRows,
    ) -> BenchResult<()> {
        match self {
            RawBest::Sqlite(best) => tokio::task::block_in_place(|| {
                best.write_round_robin(table, &[stream], events, rows)
            }),
            #[cfg(feature = "postgres")]
            RawBest::Postgres(best) => best.write_round_robin(table, &[stream], events, rows).await,
        }
    }

    /// Writes `per_stream` rows to each of `streams` round robin: round `r` is one transaction
    /// holding version `r + 1` of every stream. Returns seconds.
    pub async fn write_round_robin(
        &mut self,
        table: BestTable,
        streams: &[Uuid],
        per_stream: u64,
        rows: &EventRows,
    ) -> BenchResult<f64> {
        let start = Instant::now();
        match self {
            RawBest::Sqlite(best) => tokio::task::block_in_place(|| {
                best.write_round_robin(table, streams, per_stream, rows)
            })?,
            #[cfg(feature = "postgres")]
            RawBest::Postgres(best) => {
                best.write_round_robin(table, streams, per_stream, rows)
                    .await?;
            }
        }
        Ok(start.elapsed().as_secs_f64())
    }

    /// Reads `stream` from `table` `runs` times (after one untimed read that warms the cache,
    /// as the store's own reads are warm), decoding every payload; the median run.
    pub async fn replay(
        &mut self,
        table: BestTable,
        stream: Uuid,
        runs: u64,
        rows: &EventRows,
    ) -> BenchResult<BestReplay> {
        match self {
            RawBest::Sqlite(best) => {
                tokio::task::block_in_place(|| best.replay(table, stream, runs, rows))
            }
            #[cfg(feature = "postgres")]
            RawBest::Postgres(best) => best.replay(table, stream, runs, rows).await,
        }
    }
}

/// How long a SQLite writer waits for another's lock before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The SQLite engine at its best: a file of its own (or an in-memory database beside an
/// in-memory store).
#[derive(Debug)]
pub struct BestSqlite {
    writer: Connection,
    /// The file, removed on drop (`None` in memory).
    file: Option<PathBuf>,
    synchronous: String,
    /// `PRAGMA mmap_size` of the read connection, as the store's readers have it.
    mmap_size: i64,
}

impl BestSqlite {
    /// Opens `file` (removing any earlier one; in memory if `None`) with the store's pragmas:
    /// WAL, `synchronous`, and readers mapping `mmap_size` bytes.
    pub fn open(file: Option<PathBuf>, synchronous: &str, mmap_size: i64) -> BenchResult<Self> {
        let writer = match &file {
            Some(path) => {
                remove_sqlite_files(path);
                let conn = Connection::open(path)?;
                let _mode: String =
                    conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
                conn
            }
            None => Connection::open_in_memory()?,
        };
        writer.pragma_update(None, "synchronous", synchronous)?;
        writer.busy_timeout(SQLITE_BUSY_TIMEOUT)?;
        for table in [BestTable::Contiguous, BestTable::Interleaved] {
            writer.execute_batch(&format!(
                "CREATE TABLE {} (
                    stream BLOB NOT NULL,
                    version INTEGER NOT NULL,
                    name TEXT NOT NULL,
                    schema_version INTEGER NOT NULL,
                    payload BLOB NOT NULL,
                    PRIMARY KEY (stream, version)
                ) WITHOUT ROWID;",
                table.name()
            ))?;
        }
        Ok(Self {
            writer,
            file,
            synchronous: synchronous.to_owned(),
            mmap_size,
        })
    }

    fn insert_sql(table: BestTable) -> String {
        format!(
            "INSERT INTO {} (stream, version, name, schema_version, payload) VALUES (?1, ?2, ?3, ?4, ?5)",
            table.name()
        )
    }

    fn insert(
        &mut self,
        transactions: u64,
        per_transaction: u64,
        row: &RawRow,
    ) -> BenchResult<f64> {
        let single_stream = per_transaction == 1;
        let mut stream = Uuid::now_v7();
        let mut version: i64 = 0;
        let sql = Self::insert_sql(BestTable::Contiguous);
        let start = Instant::now();
        for _ in 0..transactions {
            if !single_stream {
                stream = Uuid::now_v7();
                version = 0;
            }
            let tx = self
                .writer
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut insert = tx.prepare_cached(&sql)?;
                for _ in 0..per_transaction {
                    version += 1;
                    insert.execute(params![
                        &stream.as_bytes()[..],
                        version,
                        row.name,
                        i64::from(row.schema_version),
                        row.payload,
                    ])?;
                }
            }
            tx.commit()?;
        }
        Ok(start.elapsed().as_secs_f64())
    }

    fn concurrent(&mut self, writers: u64, commits: u64, row: &RawRow) -> BenchResult<Option<f64>> {
        let Some(path) = &self.file else {
            return Ok(None);
        };
        let sql = Self::insert_sql(BestTable::Contiguous);
        // Connections open before the clock starts; all start at once.
        let mut connections = Vec::new();
        for _ in 0..writers {
            let conn = Connection::open(path)?;
            conn.pragma_update(None, "synchronous", &self.synchronous)?;
            conn.busy_timeout(SQLITE_BUSY_TIMEOUT)?;
            connections.push((Uuid::now_v7(), conn));
        }
        let streams: Vec<Uuid> = connections.iter().map(|(stream, _)| *stream).collect();
        let barrier = std::sync::Barrier::new(connections.len() + 1);
        let seconds = std::thread::scope(|scope| -> BenchResult<f64> {
            let mut threads = Vec::new();
            for (stream, mut conn) in connections {
                let (barrier, sql) = (&barrier, &sql);
                threads.push(scope.spawn(move || -> Result<(), rusqlite::Error> {
                    barrier.wait();
                    for version in 1..=i64::try_from(commits).unwrap_or(i64::MAX) {
                        let tx = conn
                            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                        tx.prepare_cached(sql)?.execute(params![
                            &stream.as_bytes()[..],
                            version,
                            row.name,
                            i64::from(row.schema_version),
                            row.payload,
                        ])?;
                        tx.commit()?;
                    }
                    Ok(())
                }));
            }
            barrier.wait();
            let start = Instant::now();
            for thread in threads {
                thread
                    .join()
                    .map_err(|_| BenchError::from("a raw SQLite writer thread panicked"))??;
            }
            Ok(start.elapsed().as_secs_f64())
        })?;
        let mut count = self.writer.prepare(&format!(
            "SELECT count(*) FROM {} WHERE stream = ?1",
            BestTable::Contiguous.name()
        ))?;
        let mut written: u64 = 0;
        for stream in &streams {
            let n: i64 = count.query_row(params![&stream.as_bytes()[..]], |row| row.get(0))?;
            written += u64::try_from(n).unwrap_or(0);
        }
        super::workloads::check("raw best concurrent rows", written, writers * commits)?;
        Ok(Some(seconds))
    }

    fn write_round_robin(
        &mut self,
        table: BestTable,
        streams: &[Uuid],
        per_stream: u64,
        rows: &EventRows,
    ) -> BenchResult<()> {
        let sql = Self::insert_sql(table);
        // One stream: one transaction for all of it (the contiguous write); several: one
        // transaction per round.
        let rounds_per_transaction = if streams.len() == 1 { per_stream } else { 1 };
        let mut version = 1;
        while version <= per_stream {
            let last = (version + rounds_per_transaction - 1).min(per_stream);
            let tx = self
                .writer
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut insert = tx.prepare_cached(&sql)?;
                for round in version..=last {
                    let row = rows.at(round);
                    for stream in streams {
                        insert.execute(params![
                            &stream.as_bytes()[..],
                            i64::try_from(round)?,
                            row.name,
                            i64::from(row.schema_version),
                            row.payload,
                        ])?;
                    }
                }
            }
            tx.commit()?;
            version = last + 1;
        }
        Ok(())
    }

    fn replay(
        &mut self,
        table: BestTable,
        stream: Uuid,
        runs: u64,
        rows: &EventRows,
    ) -> BenchResult<BestReplay> {
        let reader = match &self.file {
            Some(path) => {
                let conn =
                    Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
                conn.pragma_update(None, "mmap_size", self.mmap_size)?;
                Some(conn)
            }
            None => None,
        };
        let conn = reader.as_ref().unwrap_or(&self.writer);
        let mut statement = conn.prepare(&format!(
            "SELECT version, name, schema_version, payload FROM {} WHERE stream = ?1 ORDER BY version",
            table.name()
        ))?;
        let mut read = || -> BenchResult<(u64, u64, Duration)> {
            let start = Instant::now();
            let mut decoder = Decoder::new(rows);
            let mut found = statement.query(params![&stream.as_bytes()[..]])?;
            while let Some(row) = found.next()? {
                let version: i64 = row.get(0)?;
                let name = row.get_ref(1)?.as_str()?;
                let _schema_version: i64 = row.get(2)?;
                decoder.row(version, name, row.get_ref(3)?.as_blob()?)?;
            }
            Ok((decoder.rows, decoder.cents, start.elapsed()))
        };
        read()?;
        let mut times = Vec::new();
        let (mut found, mut cents) = (0, 0);
        for _ in 0..runs.max(1) {
            let (n, sum, elapsed) = read()?;
            (found, cents) = (n, sum);
            times.push(elapsed);
        }
        Ok(BestReplay {
            rows: found,
            cents,
            seconds: median(times).as_secs_f64(),
            runs: runs.max(1),
        })
    }
}

impl Drop for BestSqlite {
    fn drop(&mut self) {
        if let Some(path) = &self.file {
            remove_sqlite_files(path);
        }
    }
}

#[cfg(feature = "postgres")]
pub use postgres::BestPostgres;

#[cfg(feature = "postgres")]
mod postgres {
    use std::time::{Duration, Instant};

    use eventsource_core::Uuid;
    use eventsource_core::stores::postgres::tokio_postgres::Client;

    use super::{BestReplay, BestTable, Decoder, EventRows};
    use crate::bench::raw::{RawRow, connect_postgres};
    use crate::bench::workloads::{check, median};
    use crate::bench::{BenchError, BenchResult};

    /// Rows per `unnest` statement when a stream or a round is written.
    const ROWS_PER_STATEMENT: usize = 10_000;

    /// The PostgreSQL engine at its best: its own connection and tables in the bench's schema.
    #[derive(Debug)]
    pub struct BestPostgres {
        client: Client,
        url: String,
        schema: String,
    }

    impl BestPostgres {
        /// Connects and creates `best_events` and `best_interleaved` in `schema` (which must
        /// exist).
        pub async fn connect(url: &str, schema: &str) -> BenchResult<Self> {
            let client = connect_postgres(url).await?;
            for table in [BestTable::Contiguous, BestTable::Interleaved] {
                client
                    .batch_execute(&format!(
                        "CREATE TABLE \"{schema}\".{} (
                            stream         uuid  NOT NULL,
                            version        int8  NOT NULL,
                            name           text  NOT NULL,
                            schema_version int4  NOT NULL,
                            payload        bytea NOT NULL,
                            PRIMARY KEY (stream, version)
                         )",
                        table.name()
                    ))
                    .await?;
            }
            Ok(Self {
                client,
                url: url.to_owned(),
                schema: schema.to_owned(),
            })
        }

        fn table(&self, table: BestTable) -> String {
            format!("\"{}\".{}", self.schema, table.name())
        }

        fn insert_one_sql(&self) -> String {
            format!(
                "INSERT INTO {} (stream, version, name, schema_version, payload) VALUES ($1, $2, $3, $4, $5)",
                self.table(BestTable::Contiguous)
            )
        }

        fn insert_many_sql(&self, table: BestTable) -> String {
            format!(
                "INSERT INTO {} (stream, version, name, schema_version, payload)
                 SELECT * FROM unnest($1::uuid[], $2::int8[], $3::text[], $4::int4[], $5::bytea[])",
                self.table(table)
            )
        }

        pub(super) async fn insert_single(&mut self, rows: u64, row: &RawRow) -> BenchResult<f64> {
            let insert = self.client.prepare(&self.insert_one_sql()).await?;
            let stream = Uuid::now_v7();
            let schema_version = schema_version(row)?;
            let start = Instant::now();
            for version in 1..=i64::try_from(rows).unwrap_or(i64::MAX) {
                self.client
                    .execute(
                        &insert,
                        &[&stream, &version, &row.name, &schema_version, &row.payload],
                    )
                    .await?;
            }
            Ok(start.elapsed().as_secs_f64())
        }

        pub(super) async fn insert_batches(
            &mut self,
            transactions: u64,
            per_transaction: u64,
            row: &RawRow,
        ) -> BenchResult<f64> {
            let insert = self
                .client
                .prepare(&self.insert_many_sql(BestTable::Contiguous))
                .await?;
            let n = usize::try_from(per_transaction)?;
            let schema_version = schema_version(row)?;
            let versions: Vec<i64> = (1..=i64::try_from(per_transaction)?).collect();
            let names = vec![row.name.as_str(); n];
            let schema_versions = vec![schema_version; n];
            let payloads = vec![row.payload.as_slice(); n];
            let start = Instant::now();
            for _ in 0..transactions {
                let streams = vec![Uuid::now_v7(); n];
                self.client
                    .execute(
                        &insert,
                        &[&streams, &versions, &names, &schema_versions, &payloads],
                    )
                    .await?;
            }
            Ok(start.elapsed().as_secs_f64())
        }

        pub(super) async fn concurrent(
            &mut self,
            writers: u64,
            commits: u64,
            row: &RawRow,
        ) -> BenchResult<f64> {
            // Connections open and statements are prepared before the clock starts.
            let mut clients = Vec::new();
            for _ in 0..writers {
                let client = connect_postgres(&self.url).await?;
                let insert = client.prepare(&self.insert_one_sql()).await?;
                clients.push((Uuid::now_v7(), client, insert));
            }
            let streams: Vec<Uuid> = clients.iter().map(|(stream, ..)| *stream).collect();
            let schema_version = schema_version(row)?;
            let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(clients.len() + 1));
            let mut tasks = Vec::new();
            for (stream, client, insert) in clients {
                let (barrier, row) = (std::sync::Arc::clone(&barrier), row.clone());
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    for version in 1..=i64::try_from(commits).unwrap_or(i64::MAX) {
                        client
                            .execute(
                                &insert,
                                &[&stream, &version, &row.name, &schema_version, &row.payload],
                            )
                            .await?;
                    }
                    BenchResult::Ok(())
                }));
            }
            barrier.wait().await;
            let start = Instant::now();
            for task in tasks {
                task.await??;
            }
            let seconds = start.elapsed().as_secs_f64();
            let written: i64 = self
                .client
                .query_one(
                    &format!(
                        "SELECT count(*) FROM {} WHERE stream = ANY($1)",
                        self.table(BestTable::Contiguous)
                    ),
                    &[&streams],
                )
                .await?
                .try_get(0)?;
            check(
                "raw best concurrent rows",
                u64::try_from(written).unwrap_or(0),
                writers * commits,
            )?;
            Ok(seconds)
        }

        /// Round `r` holds version `r + 1` of every stream, in statements of at most
        /// [`ROWS_PER_STATEMENT`] rows (one stream: its rows in order, in statements of that
        /// size); then the table is `CLUSTER`ed on its key and analysed, so a stream's rows lie
        /// together on disk (PostgreSQL keeps no order on later writes: this is the best the
        /// engine can be made to read).
        pub(super) async fn write_round_robin(
            &mut self,
            table: BestTable,
            streams: &[Uuid],
            per_stream: u64,
            rows: &EventRows,
        ) -> BenchResult<()> {
            let insert = self.client.prepare(&self.insert_many_sql(table)).await?;
            // (stream, version) in write order.
            let order: Box<dyn Iterator<Item = (Uuid, u64)> + Send> = if streams.len() == 1 {
                let stream = streams[0];
                Box::new((1..=per_stream).map(move |version| (stream, version)))
            } else {
                let streams = streams.to_vec();
                Box::new((1..=per_stream).flat_map(move |version| {
                    streams
                        .clone()
                        .into_iter()
                        .map(move |stream| (stream, version))
                }))
            };
            let chunk = if streams.len() == 1 {
                ROWS_PER_STATEMENT
            } else {
                streams.len().min(ROWS_PER_STATEMENT)
            };
            let mut pending = Vec::with_capacity(chunk);
            let mut order = order.peekable();
            while order.peek().is_some() {
                pending.clear();
                pending.extend(order.by_ref().take(chunk));
                let ids: Vec<Uuid> = pending.iter().map(|(stream, _)| *stream).collect();
                let versions = pending
                    .iter()
                    .map(|(_, version)| i64::try_from(*version))
                    .collect::<Result<Vec<i64>, _>>()?;
                let names: Vec<&str> = pending
                    .iter()
                    .map(|(_, version)| rows.at(*version).name.as_str())
                    .collect();
                let schema_versions = pending
                    .iter()
                    .map(|(_, version)| schema_version(rows.at(*version)))
                    .collect::<BenchResult<Vec<i32>>>()?;
                let payloads: Vec<&[u8]> = pending
                    .iter()
                    .map(|(_, version)| rows.at(*version).payload.as_slice())
                    .collect();
                self.client
                    .execute(
                        &insert,
                        &[&ids, &versions, &names, &schema_versions, &payloads],
                    )
                    .await?;
            }
            let name = self.table(table);
            self.client
                .batch_execute(&format!(
                    "CLUSTER {name} USING {}_pkey; ANALYZE {name}",
                    table.name()
                ))
                .await?;
            Ok(())
        }

        pub(super) async fn replay(
            &mut self,
            table: BestTable,
            stream: Uuid,
            runs: u64,
            rows: &EventRows,
        ) -> BenchResult<BestReplay> {
            let select = self
                .client
                .prepare(&format!(
                    "SELECT version, name, schema_version, payload FROM {} WHERE stream = $1 ORDER BY version",
                    self.table(table)
                ))
                .await?;
            let read = async || -> BenchResult<(u64, u64, Duration)> {
                let start = Instant::now();
                let found = self.client.query(&select, &[&stream]).await?;
                let mut decoder = Decoder::new(rows);
                for row in &found {
                    let version: i64 = row.try_get(0)?;
                    let name: &str = row.try_get(1)?;
                    let _schema_version: i32 = row.try_get(2)?;
                    let payload: &[u8] = row.try_get(3)?;
                    decoder.row(version, name, payload)?;
                }
                Ok((decoder.rows, decoder.cents, start.elapsed()))
            };
            read().await?;
            let mut times = Vec::new();
            let (mut found, mut cents) = (0, 0);
            for _ in 0..runs.max(1) {
                let (n, sum, elapsed) = read().await?;
                (found, cents) = (n, sum);
                times.push(elapsed);
            }
            Ok(BestReplay {
                rows: found,
                cents,
                seconds: median(times).as_secs_f64(),
                runs: runs.max(1),
            })
        }
    }

    fn schema_version(row: &RawRow) -> BenchResult<i32> {
        i32::try_from(row.schema_version).map_err(|_| {
            BenchError::from(format!("schema version {} beyond int4", row.schema_version))
        })
    }
}
