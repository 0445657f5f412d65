//! The tables, their migrations, and every SQL statement the store runs.
//!
//! What a person finds with `sqlite3 bank.db`:
//!
//! ```text
//! events(position INTEGER PRIMARY KEY AUTOINCREMENT,   -- the global log position
//!        stream_id TEXT,          -- the aggregate id, hyphenated lower-case UUID
//!        version INTEGER,         -- from 1 within the stream; UNIQUE(stream_id, version)
//!        name TEXT, schema_version INTEGER,
//!        payload BLOB,            -- the encoded event (JSON by default: `CAST(payload AS TEXT)`)
//!        metadata TEXT,           -- a JSON object of strings, NULL when empty
//!        recorded_at INTEGER)     -- microseconds since the Unix epoch (UTC)
//! snapshots(stream_id, version, aggregate, fingerprint, state BLOB, recorded_at)
//! tracking(tracker TEXT PRIMARY KEY, position INTEGER)
//! events_migrations(version INTEGER PRIMARY KEY, description TEXT, applied_at INTEGER)
//! ```

use rusqlite::{Connection, TransactionBehavior, params};

use super::options::TableNames;
use super::{BACKEND, micros_now};
use crate::error::{Error, Result};

/// One schema migration: the version it brings the schema to and the SQL that does it.
struct Migration {
    version: i64,
    description: &'static str,
    sql: fn(&TableNames) -> String,
}

/// Every migration, in order. Append new ones; never edit one that has shipped.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "events, snapshots and tracking tables",
    sql: |t| {
        let TableNames {
            events,
            snapshots,
            tracking,
        } = t;
        format!(
            "CREATE TABLE IF NOT EXISTS {events} (
                position INTEGER PRIMARY KEY AUTOINCREMENT,
                stream_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                name TEXT NOT NULL,
                schema_version INTEGER NOT NULL,
                payload BLOB NOT NULL,
                metadata TEXT,
                recorded_at INTEGER NOT NULL,
                UNIQUE (stream_id, version)
            );
            CREATE TABLE IF NOT EXISTS {snapshots} (
                stream_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                aggregate TEXT NOT NULL,
                fingerprint INTEGER NOT NULL,
                state BLOB NOT NULL,
                recorded_at INTEGER NOT NULL,
                PRIMARY KEY (stream_id, version)
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS {tracking} (
                tracker TEXT PRIMARY KEY NOT NULL,
                position INTEGER NOT NULL
            ) WITHOUT ROWID;"
        )
    },
}];

/// The schema version this build creates.
pub(super) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Brings the schema up to date. Idempotent: a migration that has run is recorded and skipped.
/// Runs in one `BEGIN IMMEDIATE` transaction, so two processes opening a new file at once
/// don't both migrate.
pub(super) fn migrate(conn: &mut Connection, tables: &TableNames) -> Result<i64> {
    let migrations = tables.migrations();
    let failed = |doing: &str| {
        let doing = doing.to_owned();
        move |e: rusqlite::Error| Error::backend(BACKEND, doing, e)
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(failed("starting the schema migration"))?;
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {migrations} (
            version INTEGER PRIMARY KEY NOT NULL,
            description TEXT NOT NULL,
            applied_at INTEGER NOT NULL
        )"
    ))
    .map_err(failed("creating the migrations table"))?;
    let current: i64 = tx
        .query_row(
            &format!("SELECT COALESCE(MAX(version), 0) FROM {migrations}"),
            [],
            |row| row.get(0),
        )
        .map_err(failed("reading the schema version"))?;
    let latest = latest_version();
    if current > latest {
        return Err(Error::Config {
            backend: BACKEND,
            message: format!(
                "the database's `{}` tables are at schema version {current}, but this build of eventsource knows versions up to {latest}; upgrade eventsource to open it",
                tables.events
            ),
        });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.execute_batch(&(migration.sql)(tables))
            .map_err(failed(&format!(
                "running schema migration {} ({})",
                migration.version, migration.description
            )))?;
        tx.execute(
            &format!(
                "INSERT INTO {migrations} (version, description, applied_at) VALUES (?1, ?2, ?3)"
            ),
            params![migration.version, migration.description, micros_now()?],
        )
        .map_err(failed("recording a schema migration"))?;
    }
    tx.commit()
        .map_err(failed("committing the schema migration"))?;
    Ok(latest)
}

/// The SQL the store runs, with its table names filled in once at open.
#[derive(Debug)]
pub(super) struct Sql {
    pub(super) insert_event: String,
    pub(super) stream_version: String,
    pub(super) read_stream_forwards: String,
    pub(super) read_stream_backwards: String,
    pub(super) read_log: String,
    pub(super) read_log_named: String,
    pub(super) last_position: String,
    pub(super) save_snapshot: String,
    pub(super) load_snapshot: String,
    pub(super) tracking_position: String,
    pub(super) save_tracking: String,
}

impl Sql {
    pub(super) fn new(tables: &TableNames) -> Self {
        let TableNames {
            events,
            snapshots,
            tracking,
        } = tables;
        let stream_columns =
            "position, version, name, schema_version, payload, metadata, recorded_at";
        let log_columns =
            "position, stream_id, version, name, schema_version, payload, metadata, recorded_at";
        Self {
            insert_event: format!(
                "INSERT INTO {events} (stream_id, version, name, schema_version, payload, metadata, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ),
            stream_version: format!(
                "SELECT COALESCE(MAX(version), 0) FROM {events} WHERE stream_id = ?1"
            ),
            read_stream_forwards: format!(
                "SELECT {stream_columns} FROM {events}
                 WHERE stream_id = ?1 AND version >= ?2 AND version <= ?3
                 ORDER BY version LIMIT ?4"
            ),
            read_stream_backwards: format!(
                "SELECT {stream_columns} FROM {events}
                 WHERE stream_id = ?1 AND version >= ?2 AND version <= ?3
                 ORDER BY version DESC LIMIT ?4"
            ),
            read_log: format!(
                "SELECT {log_columns} FROM {events} WHERE position > ?1 ORDER BY position LIMIT ?2"
            ),
            read_log_named: format!(
                "SELECT {log_columns} FROM {events}
                 WHERE position > ?1 AND name IN (SELECT value FROM json_each(?3))
                 ORDER BY position LIMIT ?2"
            ),
            last_position: format!("SELECT COALESCE(MAX(position), 0) FROM {events}"),
            save_snapshot: format!(
                "INSERT OR REPLACE INTO {snapshots} (stream_id, version, aggregate, fingerprint, state, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ),
            load_snapshot: format!(
                "SELECT version, aggregate, fingerprint, state, recorded_at FROM {snapshots}
                 WHERE stream_id = ?1 AND version <= ?2 ORDER BY version DESC LIMIT 1"
            ),
            tracking_position: format!("SELECT position FROM {tracking} WHERE tracker = ?1"),
            save_tracking: format!(
                "INSERT INTO {tracking} (tracker, position) VALUES (?1, ?2)
                 ON CONFLICT (tracker) DO UPDATE SET position = excluded.position"
            ),
        }
    }
}
