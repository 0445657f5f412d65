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
//!        recorded_at INTEGER,     -- microseconds since the Unix epoch (UTC)
//!        event_id BLOB,           -- the event's own id, 16 bytes (NULL: stored before ids)
//!        category TEXT)           -- the aggregate type; index (category, position)
//!                                 -- and index events_by_stream: (stream_id, version) with
//!                                 -- every column a stream read returns, so a stream's events
//!                                 -- lie together however their appends interleaved
//! snapshots(stream_id, version, aggregate, fingerprint, state BLOB, recorded_at)
//! tracking(tracker TEXT PRIMARY KEY, position INTEGER)
//! events_migrations(version INTEGER PRIMARY KEY, description TEXT, applied_at INTEGER)
//! events_projection_leases(tracker TEXT PRIMARY KEY,  -- a projection's active runner
//!        holder TEXT,             -- `<process id>:<uuid>` of the runner holding it
//!        expires_at INTEGER)      -- microseconds since the Unix epoch; renewed while it runs
//! events_data_keys(subject TEXT,  -- a data subject, hyphenated lower-case UUID
//!        key_id INTEGER,          -- 1, 2, …: a key; 0: the subject's own row; PRIMARY KEY with subject
//!        wrapped BLOB,            -- the data key wrapped by the master key; NULL on row 0
//!        forgotten_through INTEGER, -- on row 0: keys up to this id were deleted (forgotten)
//!        recorded_at INTEGER)     -- microseconds: the key's creation, or the last forgetting
//! ```

use rusqlite::{Connection, TransactionBehavior, params};

use super::options::TableNames;
use super::{BACKEND, micros_now};
use crate::error::{Error, Result};
use crate::stores::sql::migration;

/// One schema migration of this store's tables (see [`crate::stores::sql::migration`]).
type Migration = migration::Migration<TableNames>;

/// Every migration, in order. Append new ones; never edit one that has shipped.
const MIGRATIONS: &[Migration] = &[
    Migration {
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
    },
    Migration {
        version: 2,
        description: "event ids and categories, and the index for category-filtered log reads",
        sql: |t| {
            let events = &t.events;
            // Adding columns rewrites nothing: existing rows read NULL (no id: a stable one is
            // derived on read) and '' (no category).
            format!(
                "ALTER TABLE {events} ADD COLUMN event_id BLOB;
                 ALTER TABLE {events} ADD COLUMN category TEXT NOT NULL DEFAULT '';
                 CREATE INDEX IF NOT EXISTS {events}_by_category ON {events} (category, position);"
            )
        },
    },
    Migration {
        version: 3,
        description: "projection leases: one active runner per projection",
        sql: |t| {
            let leases = t.leases();
            format!(
                "CREATE TABLE IF NOT EXISTS {leases} (
                    tracker TEXT PRIMARY KEY NOT NULL,
                    holder TEXT NOT NULL,
                    expires_at INTEGER NOT NULL
                ) WITHOUT ROWID;"
            )
        },
    },
    Migration {
        version: 4,
        description: "data keys: per-subject encryption keys, wrapped by the master key, and the tombstones of forgotten subjects",
        sql: |t| {
            let keys = t.data_keys();
            format!(
                "CREATE TABLE IF NOT EXISTS {keys} (
                    subject TEXT NOT NULL,
                    key_id INTEGER NOT NULL CHECK (key_id >= 0),
                    wrapped BLOB,
                    forgotten_through INTEGER NOT NULL DEFAULT 0,
                    recorded_at INTEGER NOT NULL,
                    PRIMARY KEY (subject, key_id)
                ) WITHOUT ROWID;"
            )
        },
    },
    Migration {
        version: 5,
        description: "a covering index by stream and version, so a stream reads as one range of the index however its appends interleaved with other streams'",
        sql: |t| {
            let events = &t.events;
            let by_stream = t.events_by_stream();
            // The table stays ordered by position (the log reads it in order, category filter
            // through its own index); this index holds a second, stream-ordered copy of every
            // column a stream read returns. Without it a stream read walked the unique index
            // and then fetched each row from the table: one seek per event, each on another page
            // when streams were written at the same time. The unique index of migration 1 stays:
            // it enforces one event per version.
            format!(
                "CREATE INDEX IF NOT EXISTS {by_stream} ON {events}
                    (stream_id, version, name, schema_version, payload, metadata, recorded_at, event_id, category);"
            )
        },
    },
];

/// The schema version this build creates.
pub(super) fn latest_version() -> i64 {
    migration::latest(MIGRATIONS)
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
    let pending = migration::pending(
        MIGRATIONS,
        current,
        BACKEND,
        &format!("the database's `{}` tables", tables.events),
    )?;
    for migration in pending {
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
    /// Only the columns a replay is lent (`version, name, schema_version, payload`): the
    /// covering index holds them all, and fewer columns are fewer bytes to copy out of it.
    pub(super) replay_forwards: String,
    pub(super) replay_backwards: String,
    /// `?1 after, ?2 limit, ?3 categories (JSON array or NULL), ?4 names (JSON array or
    /// NULL), ?5 to (inclusive)`: one statement per combination of filters, so each can use its
    /// index. Every variant declares `?5`, so each takes the same five parameters.
    pub(super) read_log: [String; 4],
    pub(super) last_position: String,
    pub(super) save_snapshot: String,
    pub(super) load_snapshot: String,
    pub(super) delete_snapshots: String,
    pub(super) tracking_position: String,
    pub(super) save_tracking: String,
    /// `?1 tracker` → deletes its record (a projection's rebuild).
    pub(super) delete_tracking: String,
    /// `?1 tracker, ?2 holder, ?3 expires_at, ?4 now`: takes the lease if it is free, expired
    /// or already this holder's (1 row changed), else changes nothing.
    pub(super) take_lease: String,
    /// `?1 tracker, ?2 holder, ?3 expires_at`: 0 rows if the holder lost it.
    pub(super) renew_lease: String,
    /// `?1 tracker, ?2 holder`.
    pub(super) release_lease: String,
}

impl Sql {
    pub(super) fn new(tables: &TableNames) -> Self {
        let TableNames {
            events,
            snapshots,
            tracking,
        } = tables;
        let leases = tables.leases();
        // Stream reads name their index: the planner could also take the unique index on
        // (stream_id, version) and fetch each row from the table, a seek per event.
        let by_stream = tables.events_by_stream();
        let stream_columns = "position, version, name, schema_version, payload, metadata, recorded_at, event_id, category";
        let replay_columns = "version, name, schema_version, payload";
        let log_columns = "position, stream_id, version, name, schema_version, payload, metadata, recorded_at, event_id, category";
        let filters = [
            "",
            "AND name IN (SELECT value FROM json_each(?4))",
            "AND category IN (SELECT value FROM json_each(?3))",
            "AND category IN (SELECT value FROM json_each(?3)) AND name IN (SELECT value FROM json_each(?4))",
        ];
        let read_log = filters.map(|filter| {
            format!(
                "SELECT {log_columns} FROM {events} WHERE position > ?1 AND position <= ?5 {filter} \
                 ORDER BY position LIMIT ?2"
            )
        });
        // A stream's range read through the covering index: `columns` of the events in
        // `version BETWEEN ?2 AND ?3`, at most `?4`, in `order`.
        let stream_range = |columns: &str, order: &str| {
            format!(
                "SELECT {columns} FROM {events} INDEXED BY {by_stream}
                 WHERE stream_id = ?1 AND version >= ?2 AND version <= ?3
                 ORDER BY version {order} LIMIT ?4"
            )
        };
        Self {
            insert_event: format!(
                "INSERT INTO {events} (stream_id, version, name, schema_version, payload, metadata, recorded_at, event_id, category)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ),
            stream_version: format!(
                "SELECT COALESCE(MAX(version), 0) FROM {events} WHERE stream_id = ?1"
            ),
            read_stream_forwards: stream_range(stream_columns, "ASC"),
            read_stream_backwards: stream_range(stream_columns, "DESC"),
            replay_forwards: stream_range(replay_columns, "ASC"),
            replay_backwards: stream_range(replay_columns, "DESC"),
            read_log,
            last_position: format!("SELECT COALESCE(MAX(position), 0) FROM {events}"),
            save_snapshot: format!(
                "INSERT OR REPLACE INTO {snapshots} (stream_id, version, aggregate, fingerprint, state, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ),
            load_snapshot: format!(
                "SELECT version, aggregate, fingerprint, state, recorded_at FROM {snapshots}
                 WHERE stream_id = ?1 AND version <= ?2 ORDER BY version DESC LIMIT 1"
            ),
            delete_snapshots: format!("DELETE FROM {snapshots} WHERE stream_id = ?1"),
            tracking_position: format!("SELECT position FROM {tracking} WHERE tracker = ?1"),
            delete_tracking: format!("DELETE FROM {tracking} WHERE tracker = ?1"),
            save_tracking: format!(
                "INSERT INTO {tracking} (tracker, position) VALUES (?1, ?2)
                 ON CONFLICT (tracker) DO UPDATE SET position = excluded.position"
            ),
            take_lease: format!(
                "INSERT INTO {leases} (tracker, holder, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tracker) DO UPDATE
                 SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE {leases}.holder = excluded.holder OR {leases}.expires_at <= ?4"
            ),
            renew_lease: format!(
                "UPDATE {leases} SET expires_at = ?3 WHERE tracker = ?1 AND holder = ?2"
            ),
            release_lease: format!("DELETE FROM {leases} WHERE tracker = ?1 AND holder = ?2"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_in_sequence() {
        migration::assert_sequence(MIGRATIONS);
        assert_eq!(latest_version(), 5);
    }
}
