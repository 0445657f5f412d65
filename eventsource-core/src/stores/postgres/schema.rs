//! Names, SQL text and migrations of the PostgreSQL store.
//!
//! Every identifier that reaches SQL is validated against PostgreSQL's rules for unquoted
//! identifiers and then quoted anyway, so a configured name can never change a statement's shape.

use tokio_postgres::Transaction;

use super::horizon::{self, MAX_XID};
use super::{BACKEND, POSITION_SHIFT, pg_error};
use crate::error::{Error, Result};
use crate::stores::sql::{identifier, migration};

/// The longest schema name PostgreSQL keeps without truncating (`NAMEDATALEN - 1`).
const MAX_SCHEMA_NAME: usize = 63;

/// The longest table name accepted: the names derived from it append up to 15 bytes
/// (`_data_keys_pkey`) and must stay within PostgreSQL's 63.
pub(super) const MAX_TABLE_NAME: usize = 48;

/// The name of the migrations table inside the store's schema.
const MIGRATIONS_TABLE: &str = "eventsource_migrations";

/// Arbitrary first key of the advisory lock taken while migrating (`"ESRC"` in ASCII); the
/// second key is a hash of the schema name, so stores in different schemas migrate in parallel.
const MIGRATION_LOCK_CLASS: i32 = 0x4553_5243;

/// Checks `name` against PostgreSQL's rules for an unquoted identifier (letters, digits and
/// `_`, not starting with a digit or `pg_`), at most `max` bytes.
pub(super) fn validate_identifier(what: &str, name: &str, max: usize) -> Result<()> {
    let rules = identifier::Rules {
        backend: BACKEND,
        max_len: max,
        reserved_prefix: "pg_",
        engine: "PostgreSQL",
    };
    identifier::check(rules, what, name)
}

/// Quotes a validated identifier.
fn quote(name: &str) -> String {
    format!("\"{name}\"")
}

/// The configured, validated names of the store's schema and tables.
#[derive(Debug, Clone)]
pub(super) struct Names {
    pub(super) schema: String,
    pub(super) events: String,
    pub(super) snapshots: String,
    pub(super) tracking: String,
}

impl Names {
    pub(super) fn validate(&self) -> Result<()> {
        validate_identifier("schema", &self.schema, MAX_SCHEMA_NAME)?;
        let tables = [
            ("events table", &self.events),
            ("snapshots table", &self.snapshots),
            ("tracking table", &self.tracking),
        ];
        for (what, name) in tables {
            validate_identifier(what, name, MAX_TABLE_NAME)?;
            if name.as_str() == MIGRATIONS_TABLE {
                return Err(Error::Config {
                    backend: BACKEND,
                    message: format!("the {what} name `{name}` is taken by the migrations table"),
                });
            }
        }
        let tickets = self.tickets();
        let data_keys = self.data_keys();
        if self.events == self.snapshots
            || self.events == self.tracking
            || self.snapshots == self.tracking
            || [&tickets, &data_keys].contains(&&self.snapshots)
            || [&tickets, &data_keys].contains(&&self.tracking)
        {
            return Err(Error::Config {
                backend: BACKEND,
                message: format!(
                    "the events, snapshots and tracking tables need three different names, none of them `{tickets}` (the events table's tickets) or `{data_keys}` (its data keys), got `{}`, `{}` and `{}`",
                    self.events, self.snapshots, self.tracking
                ),
            });
        }
        Ok(())
    }

    /// `"schema"."table"`.
    fn table(&self, table: &str) -> String {
        format!("{}.{}", quote(&self.schema), quote(table))
    }

    /// The name of the events table's primary key `(stream_id, version)`: a unique violation on
    /// it is an optimistic-concurrency conflict.
    pub(super) fn stream_version_constraint(&self) -> String {
        format!("{}_pkey", self.events)
    }

    /// The table [`PostgresStore::append_in`](super::PostgresStore::append_in) inserts a row
    /// into (and deletes it again) to take a transaction id of its own: `<events>_tickets`.
    pub(super) fn tickets(&self) -> String {
        format!("{}_tickets", self.events)
    }

    /// The table of data keys (see [`PostgresKeyStore`](super::PostgresKeyStore)):
    /// `<events>_data_keys`.
    pub(super) fn data_keys(&self) -> String {
        format!("{}{}", self.events, crate::stores::sql::keys::TABLE_SUFFIX)
    }

    /// `"schema"."table"` for the data keys table.
    pub(super) fn data_keys_table(&self) -> String {
        self.table(&self.data_keys())
    }
}

/// One schema migration of this store's tables (see [`crate::stores::sql::migration`]),
/// applied once, in order, inside the migration transaction.
type Migration = migration::Migration<Names>;

/// Every migration, oldest first. Append new ones; never edit an applied one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "events, snapshots and tracking tables",
        sql: migration_1,
    },
    Migration {
        version: 2,
        description: "tickets table: append_in takes a transaction id after announcing itself",
        sql: migration_2,
    },
    Migration {
        version: 3,
        description: "event ids and categories, and the index for category-filtered log reads",
        sql: migration_3,
    },
    Migration {
        version: 4,
        description: "data keys: per-subject encryption keys, wrapped by the master key, and the tombstones of forgotten subjects",
        sql: migration_4,
    },
];

/// The schema version this build creates and expects.
pub const SCHEMA_VERSION: i32 = 4;

fn migration_1(names: &Names) -> String {
    let events = names.table(&names.events);
    let snapshots = names.table(&names.snapshots);
    let tracking = names.table(&names.tracking);
    let pkey = quote(&names.stream_version_constraint());
    let position_index = quote(&format!("{}_position_key", names.events));
    let snapshots_pkey = quote(&format!("{}_pkey", names.snapshots));
    let tracking_pkey = quote(&format!("{}_pkey", names.tracking));
    format!(
        "CREATE TABLE IF NOT EXISTS {events} (
            stream_id      uuid        NOT NULL,
            version        int8        NOT NULL CHECK (version >= 1),
            name           text        NOT NULL,
            schema_version int8        NOT NULL CHECK (schema_version BETWEEN 0 AND 4294967295),
            payload        bytea       NOT NULL,
            metadata       jsonb       NOT NULL DEFAULT '{{}}',
            recorded_at    timestamptz NOT NULL DEFAULT now(),
            position       int8        NOT NULL CHECK (position >= 1),
            CONSTRAINT {pkey} PRIMARY KEY (stream_id, version)
        );
        CREATE UNIQUE INDEX IF NOT EXISTS {position_index} ON {events} (position);
        CREATE TABLE IF NOT EXISTS {snapshots} (
            stream_id   uuid        NOT NULL,
            version     int8        NOT NULL CHECK (version >= 0),
            aggregate   text        NOT NULL,
            fingerprint int8        NOT NULL,
            state       bytea       NOT NULL,
            recorded_at timestamptz NOT NULL,
            CONSTRAINT {snapshots_pkey} PRIMARY KEY (stream_id, version)
        );
        CREATE TABLE IF NOT EXISTS {tracking} (
            tracker  text NOT NULL,
            position int8 NOT NULL CHECK (position >= 0),
            CONSTRAINT {tracking_pkey} PRIMARY KEY (tracker)
        );"
    )
}

fn migration_2(names: &Names) -> String {
    // Unlogged and without an index: a row lives only inside the subtransaction that inserts it
    // (see `horizon.rs`), so nothing here needs to survive a crash.
    let tickets = names.table(&names.tickets());
    format!("CREATE UNLOGGED TABLE IF NOT EXISTS {tickets} (pid int4 NOT NULL);")
}

fn migration_3(names: &Names) -> String {
    let events = names.table(&names.events);
    let by_category = quote(&format!("{}_by_category", names.events));
    // Adding a nullable column and one with a constant default rewrites no rows: existing
    // events read NULL (no id; a stable one is derived on read) and '' (no category). Building
    // the index holds writes back while it runs.
    format!(
        "ALTER TABLE {events} ADD COLUMN IF NOT EXISTS event_id uuid; \
         ALTER TABLE {events} ADD COLUMN IF NOT EXISTS category text NOT NULL DEFAULT ''; \
         CREATE INDEX IF NOT EXISTS {by_category} ON {events} (category, position);"
    )
}

fn migration_4(names: &Names) -> String {
    let keys = names.data_keys_table();
    let pkey = quote(&format!("{}_pkey", names.data_keys()));
    // Row 0 of a subject is its own: the tombstone, and what its writers lock (`keys.rs`).
    format!(
        "CREATE TABLE IF NOT EXISTS {keys} (
            subject           uuid        NOT NULL,
            key_id            int8        NOT NULL CHECK (key_id BETWEEN 0 AND 4294967295),
            wrapped           bytea,
            forgotten_through int8        NOT NULL DEFAULT 0 CHECK (forgotten_through BETWEEN 0 AND 4294967295),
            recorded_at       timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT {pkey} PRIMARY KEY (subject, key_id),
            CHECK ((key_id = 0) = (wrapped IS NULL))
        );"
    )
}

/// FNV-1a, 32 bits: a hash that is the same in every build, for the advisory lock key.
pub(super) fn stable_hash(text: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in text.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    i32::from_ne_bytes(hash.to_ne_bytes())
}

/// Creates the schema and brings it to [`SCHEMA_VERSION`], under an advisory lock so that two
/// processes connecting at once don't race. Idempotent.
pub(super) async fn migrate(tx: &Transaction<'_>, names: &Names) -> Result<()> {
    let schema = quote(&names.schema);
    let migrations = names.table(MIGRATIONS_TABLE);
    let lock = stable_hash(&names.schema);
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&MIGRATION_LOCK_CLASS, &lock],
    )
    .await
    .map_err(pg_error(format!(
        "taking the migration lock of schema `{}`",
        names.schema
    )))?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {migrations} (
             version     int4        NOT NULL PRIMARY KEY,
             description text        NOT NULL,
             applied_at  timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(pg_error(format!("creating schema `{}`", names.schema)))?;
    let row = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {migrations}"),
            &[],
        )
        .await
        .map_err(pg_error("reading the applied schema version"))?;
    let applied: i32 = row
        .try_get(0)
        .map_err(pg_error("reading the applied schema version"))?;
    let pending = migration::pending(
        MIGRATIONS,
        i64::from(applied),
        BACKEND,
        &format!("schema `{}`", names.schema),
    )?;
    for migration in pending {
        let context = format!(
            "applying migration {} ({}) to schema `{}`",
            migration.version, migration.description, names.schema
        );
        tx.batch_execute(&(migration.sql)(names))
            .await
            .map_err(pg_error(context.clone()))?;
        tx.execute(
            &format!("INSERT INTO {migrations} (version, description) VALUES ($1::int8::int4, $2)"),
            &[&migration.version, &migration.description],
        )
        .await
        .map_err(pg_error(context))?;
    }
    // The migrations record versions, not table names: make sure the configured tables exist
    // (they don't if this schema was created with other table names).
    for table in [
        &names.events,
        &names.snapshots,
        &names.tracking,
        &names.tickets(),
        &names.data_keys(),
    ] {
        let row = tx
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&names.table(table)])
            .await
            .map_err(pg_error(format!("looking up table `{table}`")))?;
        let exists: bool = row
            .try_get(0)
            .map_err(pg_error(format!("looking up table `{table}`")))?;
        if !exists {
            return Err(Error::Config {
                backend: BACKEND,
                message: format!(
                    "schema `{}` is at version {SCHEMA_VERSION} but has no table `{table}`: it was created with other table names; use those, or another schema",
                    names.schema
                ),
            });
        }
    }
    // Positions come from transaction ids. Rows restored (pg_dump, logical replication) into a
    // cluster whose transaction counter is behind them would make new events sort before old
    // ones, and followers would skip them: refuse to start instead.
    let events = names.table(&names.events);
    let row = tx
        .query_one(
            &format!(
                "SELECT pg_current_xact_id()::text::int8, (SELECT max(position) FROM {events})"
            ),
            &[],
        )
        .await
        .map_err(pg_error(
            "comparing stored positions with the transaction counter",
        ))?;
    let xid: i64 = row
        .try_get(0)
        .map_err(pg_error("reading the transaction counter"))?;
    let newest: Option<i64> = row
        .try_get(1)
        .map_err(pg_error("reading the newest position"))?;
    if let Some(newest) = newest.filter(|p| (p >> POSITION_SHIFT) >= xid) {
        return Err(Error::Config {
            backend: BACKEND,
            message: format!(
                "schema `{}` holds events up to position {newest} (transaction {}), but this server is only at transaction {xid}: \
                 the events were restored or replicated from another cluster, and new events would sort before them in the log. \
                 Advance this cluster's transaction epoch past them (`pg_resetwal --epoch`, server stopped) before connecting",
                names.schema,
                newest >> POSITION_SHIFT
            ),
        });
    }
    Ok(())
}

/// The SQL text of every statement the store runs, rendered once from the configured names.
#[derive(Debug)]
pub(super) struct Sql {
    /// The whole append in one statement (see [`Sql::render`]). Parameters: the events as
    /// parallel arrays `$1 stream_id uuid[], $2 version int8[], $3 name text[],
    /// $4 schema_version int8[], $5 payload bytea[], $6 metadata text[]`, `$7` their count,
    /// every stream of the batch with its expected version, `$8 uuid[], $9 int8[]`, and
    /// `$10 event_id uuid[], $11 category text[]`, again one per event. One row
    /// back: whether the checks passed, how many events were inserted, the last position, and
    /// the versions the streams were at when the statement checked them.
    pub(super) append: String,
    /// The append of a batch with at least one event in a transaction of its own and nothing
    /// else to write ([`EventStore::append`](crate::EventStore::append) without a tracking
    /// record): the same parameters as [`Sql::append`], but only what that case needs, so that
    /// the server initialises and runs a plan of a few nodes instead of some thirty. It runs
    /// alone in an implicit transaction (no `BEGIN`/`COMMIT`) and takes the announcement
    /// (`horizon.rs`) itself before its transaction id, so an append is one statement. Its
    /// transaction wrote nothing before, so the events are numbered from 0 under its id, with
    /// no look-up of earlier positions; the versions the streams were at are not returned
    /// (the store reads them only when the batch is refused). One row back: how many events
    /// were inserted (0 if a stream was not at its expected version, or the transaction id or
    /// the count did not fit in a position), the last position, and the transaction id.
    pub(super) append_own: String,
    /// The same inside a caller's transaction ([`PostgresStore::append_in`]): positions come
    /// from the transaction id of the current subtransaction, taken by inserting a ticket row.
    ///
    /// [`PostgresStore::append_in`]: super::PostgresStore::append_in
    pub(super) append_in: String,
    /// Deletes the ticket rows [`Sql::append_in`] inserted on this connection.
    pub(super) delete_tickets: String,
    /// Announces an appender of this store, before its transaction takes an id (`horizon.rs`).
    pub(super) announce: String,
    /// Reads `pg_locks` for the statement sent right after it (`horizon.rs`).
    pub(super) observe_horizon: String,
    /// `→ horizon, committed events at or above it` ([`super::HorizonStatus`]).
    pub(super) horizon_status: String,
    /// `→ the oldest open appender of this store` ([`super::OpenAppender`]).
    pub(super) oldest_appender: String,
    /// `$1 uuid[]` → each stream's current version, in argument order.
    pub(super) stream_versions: String,
    /// `$1 tracker, $2 position` → 1 row written if the position moved forward (from 0 for a
    /// tracker without a record), else 0.
    pub(super) upsert_tracking: String,
    /// `$1 tracker` → the recorded position (no row if none).
    pub(super) tracking_position: String,
    /// `$1 tracker` → deletes its record (a projection's rebuild).
    pub(super) delete_tracking: String,
    /// `$1 stream` → its version (0 if unknown).
    pub(super) stream_version: String,
    /// `$1 stream, $2 from, $3 to, $4 limit` → events oldest first (without their stream id).
    pub(super) read_stream_forwards: String,
    /// `$1 stream, $2 from, $3 to, $4 limit` → events newest first (without their stream id).
    pub(super) read_stream_backwards: String,
    /// `$1 stream, $2 from, $3 to, $4 limit` → the [`REPLAY_COLUMNS`] of events oldest first.
    pub(super) replay_forwards: String,
    /// `$1 stream, $2 from, $3 to, $4 limit` → the [`REPLAY_COLUMNS`] of events newest first.
    pub(super) replay_backwards: String,
    /// `$1 after, $2 limit, $3 categories, $4 names, $5 to (inclusive)` → the greatest
    /// position below the horizon and at most `to`, then the log events below it and up to `to` (their columns after that one; no event columns
    /// in the single row of an empty page). One statement per combination of filters (none,
    /// names, categories, both), so each uses its index.
    pub(super) read_log: [String; 4],
    /// → the greatest position below the visibility horizon (0 if none).
    pub(super) last_position: String,
    /// `NOTIFY "<channel>"`: sent by the notifier after appends commit (`notify.rs`), and inside
    /// the caller's transaction by `append_in`; `None` when the store doesn't notify.
    pub(super) notify: Option<String>,
    /// `$1..$6` → saves a snapshot, replacing one at the same stream and version.
    pub(super) save_snapshot: String,
    /// `$1 stream` → its newest snapshot.
    pub(super) load_snapshot: String,
    /// `$1 stream, $2 to, $3 limit` → one row for its newest snapshot at or below `to` (the
    /// snapshot's `version, aggregate, fingerprint, state, recorded_at`, all null if it has
    /// none), then the [`REPLAY_COLUMNS`] of the events from the snapshot's version (from 1
    /// without one) up to `to`, oldest first; each row ends with its part, 0 for the snapshot's
    /// row and 1 for an event's. One round trip for a load from a snapshot (`read.rs`).
    pub(super) replay_from_snapshot: String,
    /// `$1 stream, $2 version` → its newest snapshot at or below the version.
    pub(super) load_snapshot_at: String,
    /// `$1 stream`: deletes its snapshots.
    pub(super) delete_snapshots: String,
}

/// The columns of a stored event, in the order [`super::rows::event_at`] reads them.
const EVENT_COLUMNS: &str = "stream_id, version, name, schema_version, payload, metadata::text, \
     recorded_at, position, event_id, category";

/// The columns of an event of a stream being read, in the order [`super::rows::stream_event`]
/// reads them: [`EVENT_COLUMNS`] without the stream id, which the reader knows.
const STREAM_EVENT_COLUMNS: &str = "version, name, schema_version, payload, metadata::text, \
     recorded_at, position, event_id, category";

/// The columns of an event a replay is lent, in the order [`super::rows::replayed_event`] reads
/// them: what rebuilds state, without metadata (`jsonb` the server would render as text for
/// every row), id, category, time or position.
const REPLAY_COLUMNS: &str = "version, name, schema_version, payload";

/// The columns of a snapshot, in the order [`super::rows::snapshot`] reads them.
const SNAPSHOT_COLUMNS: &str = "stream_id, version, aggregate, fingerprint, state, recorded_at";

impl Sql {
    pub(super) fn render(names: &Names, channel: Option<&str>) -> Self {
        let events = names.table(&names.events);
        let snapshots = names.table(&names.snapshots);
        let tracking = names.table(&names.tracking);
        let max_xid = MAX_XID;
        // No appender of this store can still commit a row below this position (`horizon.rs`).
        let horizon = horizon::horizon_sql();
        let tickets = names.table(&names.tickets());
        // The append statement, with the transaction id its positions come from. Its own
        // transaction: the top-level id, taken after the announcement. A caller's transaction:
        // the current subtransaction's id, which a ticket row's `xmin` shows, widened to 64 bits
        // from the top-level id (a subtransaction's id is above its parent's).
        let own_xid = "SELECT pg_current_xact_id()::text::int8 AS xid";
        let subtransaction_xid = "SELECT top.xid + ((ticket.xmin32 - (top.xid & 4294967295) + 4294967296) % 4294967296) AS xid \
             FROM (SELECT pg_current_xact_id()::text::int8 AS xid) AS top, ticket";
        let ticket = format!(
            "ticket AS (INSERT INTO {tickets} (pid) VALUES (pg_backend_pid()) \
                        RETURNING xmin::text::int8 AS xmin32), "
        );
        let append = |ticket: &str, xid: &str| -> String {
            format!(
                "WITH {ticket}x AS ({xid}), \
                 slot AS ( \
                    SELECT x.xid, \
                           coalesce((SELECT max(e.position) FROM {events} AS e \
                                      WHERE x.xid <= {max_xid} \
                                        AND e.position >= (x.xid << {POSITION_SHIFT}) \
                                        AND e.position < ((x.xid + 1) << {POSITION_SHIFT})) \
                                    - (x.xid << {POSITION_SHIFT}) + 1, 0) AS first \
                    FROM x), \
                 current AS MATERIALIZED ( \
                    SELECT c.n, c.expected, \
                           coalesce((SELECT max(e.version) FROM {events} AS e \
                                      WHERE e.stream_id = c.id), 0) AS actual \
                    FROM unnest($8::uuid[], $9::int8[]) WITH ORDINALITY AS c(id, expected, n)), \
                 ok AS ( \
                    SELECT slot.xid, slot.first FROM slot \
                    WHERE slot.xid BETWEEN 1 AND {max_xid} \
                      AND slot.first + $7::int8 <= {slots} \
                      AND NOT EXISTS (SELECT 1 FROM current WHERE current.actual <> current.expected)), \
                 inserted AS ( \
                    INSERT INTO {events} (stream_id, version, name, schema_version, payload, metadata, position, event_id, category) \
                    SELECT t.stream_id, t.version, t.name, t.schema_version, t.payload, t.metadata::jsonb, \
                           (ok.xid << {POSITION_SHIFT}) | (ok.first + t.n - 1), t.event_id, t.category \
                    FROM ok, \
                         unnest($1::uuid[], $2::int8[], $3::text[], $4::int8[], $5::bytea[], $6::text[], $10::uuid[], $11::text[]) \
                         WITH ORDINALITY AS t(stream_id, version, name, schema_version, payload, metadata, event_id, category, n) \
                    RETURNING position) \
                 SELECT EXISTS (SELECT 1 FROM ok), \
                        (SELECT count(*) FROM inserted), \
                        (SELECT coalesce(max(position), 0) FROM inserted), \
                        ARRAY(SELECT current.actual FROM current ORDER BY current.n)",
                slots = 1_i64 << POSITION_SHIFT,
            )
        };
        // A transaction of its own, the statement alone in it (an implicit transaction,
        // committed when the server reaches the statement's Sync): no earlier events under its
        // id, so positions are `xid << 20 | index` with the index from 0, and no `slot` look-up.
        // The announcement comes first: `x` takes the transaction id from `announced`'s row, so
        // the lock is held before the id exists (both CTEs are volatile, hence evaluated once
        // and before the insert reads its first row). The checks are conditions that don't
        // depend on the row (a one-time filter evaluated once, before the first row is
        // inserted); a writer racing past them hits the (stream_id, version) key.
        let announce = horizon::announce_sql(names);
        let append_own = format!(
            "WITH announced AS MATERIALIZED ({announce} AS done), \
                  x AS MATERIALIZED ( \
                     SELECT pg_catalog.pg_current_xact_id()::text::int8 AS xid FROM announced), \
                  inserted AS ( \
                INSERT INTO {events} (stream_id, version, name, schema_version, payload, metadata, position, event_id, category) \
                SELECT t.stream_id, t.version, t.name, t.schema_version, t.payload, t.metadata::jsonb, \
                       (x.xid << {POSITION_SHIFT}) | (t.n - 1), t.event_id, t.category \
                FROM x, \
                     unnest($1::uuid[], $2::int8[], $3::text[], $4::int8[], $5::bytea[], $6::text[], $10::uuid[], $11::text[]) \
                     WITH ORDINALITY AS t(stream_id, version, name, schema_version, payload, metadata, event_id, category, n) \
                WHERE x.xid BETWEEN 1 AND {max_xid} \
                  AND $7::int8 <= {slots} \
                  AND NOT EXISTS (SELECT 1 FROM unnest($8::uuid[], $9::int8[]) AS c(id, expected) \
                                  WHERE coalesce((SELECT max(e.version) FROM {events} AS e \
                                                  WHERE e.stream_id = c.id), 0) <> c.expected) \
                RETURNING position) \
             SELECT count(*), coalesce(max(inserted.position), 0), (SELECT x.xid FROM x) \
             FROM inserted",
            slots = 1_i64 << POSITION_SHIFT,
        );
        // The rows of one page. Without a category filter: the position index, in order. With
        // one: for each category its own range scan of the (category, position) index, at
        // most a page each, merged; so a filtered read touches only matching categories' rows,
        // whatever the planner's statistics say.
        let scans = [
            format!(
                "SELECT e.* FROM {events} AS e, h \
                 WHERE e.position > $1::int8 AND e.position < h.bound AND e.position <= h.upto \
                 ORDER BY e.position ASC LIMIT $2::int8"
            ),
            format!(
                "SELECT e.* FROM {events} AS e, h \
                 WHERE e.position > $1::int8 AND e.position < h.bound AND e.position <= h.upto AND e.name = ANY($4::text[]) \
                 ORDER BY e.position ASC LIMIT $2::int8"
            ),
            format!(
                "SELECT e.* FROM h, unnest($3::text[]) AS c(category), LATERAL ( \
                    SELECT * FROM {events} AS x \
                    WHERE x.category = c.category AND x.position > $1::int8 AND x.position < h.bound \
                      AND x.position <= h.upto \
                    ORDER BY x.position ASC LIMIT $2::int8) AS e \
                 ORDER BY e.position ASC LIMIT $2::int8"
            ),
            format!(
                "SELECT e.* FROM h, unnest($3::text[]) AS c(category), LATERAL ( \
                    SELECT * FROM {events} AS x \
                    WHERE x.category = c.category AND x.position > $1::int8 AND x.position < h.bound \
                      AND x.position <= h.upto \
                      AND x.name = ANY($4::text[]) \
                    ORDER BY x.position ASC LIMIT $2::int8) AS e \
                 ORDER BY e.position ASC LIMIT $2::int8"
            ),
        ];
        // `h` takes the horizon (and the query's inclusive bound `upto`) once; the first column
        // is the greatest position below the horizon and up to the bound, which
        // is where the next read starts when this page is not full (a filtered follower never
        // rescans what it passed). It is one backward step of the position index: written as
        // `max(e.position) FROM events, h` (a join), PostgreSQL aggregated every row below the
        // horizon, a full index scan per page (250 ms a page at 1,000,000 events).
        let columns = EVENT_COLUMNS
            .split(", ")
            .map(|c| format!("page.{}", c.trim_end_matches("::text")))
            .collect::<Vec<_>>()
            .join(", ")
            .replace("page.metadata", "page.metadata::text");
        let read_log = scans.map(|scan| {
            format!(
                "WITH h AS MATERIALIZED (SELECT {horizon} AS bound, $5::int8 AS upto, \
                                            $3::text[] AS categories, $4::text[] AS names), \
                 page AS ({scan}) \
                 SELECT coalesce((SELECT e.position FROM {events} AS e \
                                  WHERE e.position < (SELECT h.bound FROM h) \
                                    AND e.position <= (SELECT h.upto FROM h) \
                                  ORDER BY e.position DESC LIMIT 1), 0), \
                        {columns} \
                 FROM (SELECT 1) AS one LEFT JOIN page ON true \
                 ORDER BY page.position ASC"
            )
        });
        let versions = format!(
            "ARRAY(SELECT coalesce((SELECT max(e.version) FROM {events} AS e WHERE e.stream_id = u.id), 0) \
                   FROM unnest($1::uuid[]) WITH ORDINALITY AS u(id, n) ORDER BY u.n)"
        );
        // A stream's range read: `columns` of the events in `version BETWEEN $2 AND $3`, at most
        // `$4`, in `order`. `LIMIT (SELECT $4)`: the planner can't see the limit, assumes a
        // tenth of the stream's rows, and walks the primary key in order. Shown a large limit (a
        // replay), it read a long stream's rows by bitmap and sorted them, so the first row came
        // only after the last was read (12 ms instead of 5 for 10,000 events).
        let stream_range = |columns: &str, order: &str| {
            format!(
                "SELECT {columns} FROM {events} \
                 WHERE stream_id = $1::uuid AND version >= $2::int8 AND version <= $3::int8 \
                 ORDER BY version {order} LIMIT (SELECT $4::int8)"
            )
        };
        Self {
            // Checks and insert in one statement, so that a tracked append is BEGIN, the
            // announcement, this and the tracking upsert, then COMMIT. `x` takes the transaction
            // id; `slot` finds where positions under that id continue (after events written
            // under it before); `ok` has a row only if every stream is at its expected version,
            // the transaction id fits in a position and the events fit after `first`.
            // A writer racing past the check hits the (stream_id, version) primary key.
            append: append("", own_xid),
            append_own,
            append_in: append(&ticket, subtransaction_xid),
            delete_tickets: format!("DELETE FROM {tickets} WHERE pid = pg_backend_pid()"),
            announce,
            horizon_status: horizon::status_sql(&events),
            observe_horizon: horizon::observe_sql(names),
            oldest_appender: horizon::oldest_appender_sql(names),
            stream_versions: format!("SELECT {versions}"),
            upsert_tracking: format!(
                // `WHERE $2 > 0`: a tracker without a record is at 0, so 0 is not forward.
                "INSERT INTO {tracking} AS t (tracker, position) \
                 SELECT $1::text, $2::int8 WHERE $2::int8 > 0 \
                 ON CONFLICT (tracker) DO UPDATE SET position = EXCLUDED.position \
                 WHERE t.position < EXCLUDED.position"
            ),
            tracking_position: format!("SELECT position FROM {tracking} WHERE tracker = $1::text"),
            delete_tracking: format!("DELETE FROM {tracking} WHERE tracker = $1::text"),
            stream_version: format!(
                "SELECT coalesce(max(version), 0) FROM {events} WHERE stream_id = $1::uuid"
            ),
            read_stream_forwards: stream_range(STREAM_EVENT_COLUMNS, "ASC"),
            read_stream_backwards: stream_range(STREAM_EVENT_COLUMNS, "DESC"),
            replay_forwards: stream_range(REPLAY_COLUMNS, "ASC"),
            replay_backwards: stream_range(REPLAY_COLUMNS, "DESC"),
            read_log,
            last_position: format!(
                "SELECT coalesce(max(position), 0) FROM {events} WHERE position < {horizon}"
            ),
            notify: channel.map(|channel| format!("NOTIFY {}", quote(channel))),
            save_snapshot: format!(
                "INSERT INTO {snapshots} ({SNAPSHOT_COLUMNS}) \
                 VALUES ($1::uuid, $2::int8, $3::text, $4::int8, $5::bytea, $6::timestamptz) \
                 ON CONFLICT (stream_id, version) DO UPDATE SET \
                   aggregate = EXCLUDED.aggregate, fingerprint = EXCLUDED.fingerprint, \
                   state = EXCLUDED.state, recorded_at = EXCLUDED.recorded_at"
            ),
            load_snapshot: format!(
                "SELECT {SNAPSHOT_COLUMNS} FROM {snapshots} WHERE stream_id = $1::uuid \
                 ORDER BY version DESC LIMIT 1"
            ),
            // The snapshot's row first: an `Append` runs its branches in order (a parallel one
            // could not, and the reader fails rather than misread if it ever came second). The
            // events' branch is the replay's own index walk, from the snapshot's version.
            replay_from_snapshot: format!(
                "WITH snapshot AS MATERIALIZED ( \
                   SELECT version, aggregate, fingerprint, state, recorded_at FROM {snapshots} \
                   WHERE stream_id = $1::uuid AND version <= $2::int8 \
                   ORDER BY version DESC LIMIT 1) \
                 (SELECT s.version, s.aggregate, s.fingerprint, s.state, s.recorded_at, 0 AS part \
                    FROM (VALUES (0)) AS one (x) LEFT JOIN snapshot AS s ON true) \
                 UNION ALL \
                 (SELECT {REPLAY_COLUMNS}, NULL::timestamptz, 1 FROM {events} \
                    WHERE stream_id = $1::uuid \
                      AND version >= coalesce((SELECT version FROM snapshot), 1) \
                      AND version <= $2::int8 \
                    ORDER BY version ASC LIMIT (SELECT $3::int8))"
            ),
            delete_snapshots: format!("DELETE FROM {snapshots} WHERE stream_id = $1::uuid"),
            load_snapshot_at: format!(
                "SELECT {SNAPSHOT_COLUMNS} FROM {snapshots} \
                 WHERE stream_id = $1::uuid AND version <= $2::int8 \
                 ORDER BY version DESC LIMIT 1"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_follow_postgres_rules() {
        assert!(validate_identifier("schema", "eventsource", 63).is_ok());
        assert!(validate_identifier("schema", "_es_2", 63).is_ok());
        for bad in [
            "",
            "1abc",
            "a-b",
            "a b",
            "a\"b",
            "é",
            "pg_catalog",
            "x; DROP TABLE y",
        ] {
            let error = validate_identifier("schema", bad, 63).unwrap_err();
            assert!(
                matches!(
                    error,
                    Error::Config {
                        backend: "postgres",
                        ..
                    }
                ),
                "{bad:?} gave {error}"
            );
        }
        assert!(validate_identifier("table", &"a".repeat(48), MAX_TABLE_NAME).is_ok());
        assert!(validate_identifier("table", &"a".repeat(49), MAX_TABLE_NAME).is_err());
    }

    #[test]
    fn table_names_must_differ() {
        let names = Names {
            schema: "s".into(),
            events: "events".into(),
            snapshots: "events".into(),
            tracking: "tracking".into(),
        };
        assert!(matches!(names.validate(), Err(Error::Config { .. })));
        let names = Names {
            snapshots: MIGRATIONS_TABLE.into(),
            ..names
        };
        assert!(matches!(names.validate(), Err(Error::Config { .. })));
        let names = Names {
            snapshots: "events_data_keys".into(),
            ..names
        };
        assert!(
            matches!(names.validate(), Err(Error::Config { message, .. }) if message.contains("data keys"))
        );
    }

    #[test]
    fn migrations_are_in_sequence_and_the_schema_version_is_the_last() {
        migration::assert_sequence(MIGRATIONS);
        assert_eq!(i64::from(SCHEMA_VERSION), migration::latest(MIGRATIONS));
    }

    #[test]
    fn stable_hash_is_stable() {
        // FNV-1a of "" and "a", from the reference vectors.
        assert_eq!(stable_hash("") as u32, 0x811c_9dc5);
        assert_eq!(stable_hash("a") as u32, 0xe40c_292c);
    }
}
