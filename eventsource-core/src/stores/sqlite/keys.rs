//! [`SqliteKeyStore`]: the data keys of encrypted payloads, kept in the store's own SQLite file
//! (table `<events>_data_keys`), each wrapped by a [`MasterKey`] that stays in the
//! application's secrets.
//!
//! How it behaves under concurrency and what forgetting leaves behind: see [`SqliteKeyStore`].

use std::fmt;
use std::sync::Arc;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use uuid::Uuid;

use super::{BACKEND, Shared, SqliteStore, micros_now};
use crate::error::Error;
use crate::persistence::codec::{
    APPLICATION_SUBJECT, DataKey, KeyError, KeyId, KeyStore, MasterKey, SubjectKeys,
};
use crate::stores::sql::keys::{self as sql_keys, Ids, KeyRow, storage};

/// Data keys in a [`SqliteStore`]'s file, wrapped by a [`MasterKey`]: what
/// [`PayloadCodec::encrypt`](crate::persistence::codec::PayloadCodec::encrypt) takes to encrypt
/// the store's payloads.
///
/// - **Reads** ([`KeyStore::keys`], and [`KeyStore::current_key`] once the subject has a key)
///   run on a reader connection: one statement, so one consistent view, and they never wait
///   for a writer.
/// - **Writes** (a subject's first key, [`KeyStore::rotate`], [`KeyStore::forget`]) each run in
///   one `BEGIN IMMEDIATE` transaction on the store's writer connection, which SQLite runs one
///   at a time across every process on the file: two processes asking for a new subject's
///   first key at once get the same key (the second finds the first's), and a forgetting never
///   interleaves with a key being added.
/// - **Forgetting** deletes the subject's key rows and records the highest id it had on the
///   subject's own row (the tombstone), in one transaction, with `PRAGMA secure_delete` on so
///   SQLite overwrites the deleted keys in the file, then checkpoints the write-ahead log so
///   the pages that held them leave it too (best effort: a reader holding an old snapshot open
///   keeps the log until it finishes). Backups taken before keep the keys, wrapped: expire them
///   as your retention rules say.
///
/// A key is never stored in plain: only wrapped by the master key and bound to its subject and
/// id, so the file alone reveals no payload, and a wrapped key copied to another row does not
/// unwrap. A master key that is not the one the keys were wrapped with is
/// [`KeyError::Unwrap`] naming the subject and key.
///
/// Cloning is cheap and shares the store's connections.
#[derive(Clone)]
pub struct SqliteKeyStore {
    store: SqliteStore,
    master: MasterKey,
    sql: Arc<KeySql>,
}

impl fmt::Debug for SqliteKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteKeyStore")
            .field("table", &self.store.shared.options.tables.data_keys())
            .field("master", &self.master)
            .finish_non_exhaustive()
    }
}

/// The statements, with the table's name filled in.
#[derive(Debug)]
struct KeySql {
    /// `?1 subject` → every row of the subject.
    select: String,
    /// `?1 subject, ?2 recorded_at`: the subject's own row, if missing.
    ensure_subject: String,
    /// `?1 subject, ?2 key_id, ?3 wrapped, ?4 recorded_at` → 0 rows if the id is taken.
    insert_key: String,
    /// `?1 subject` → deletes its keys.
    delete_keys: String,
    /// `?1 subject, ?2 forgotten_through, ?3 recorded_at`.
    mark_forgotten: String,
}

impl KeySql {
    fn new(table: &str) -> Self {
        Self {
            select: format!(
                "SELECT key_id, wrapped, forgotten_through FROM {table} WHERE subject = ?1"
            ),
            ensure_subject: format!(
                "INSERT INTO {table} (subject, key_id, wrapped, forgotten_through, recorded_at)
                 VALUES (?1, 0, NULL, 0, ?2) ON CONFLICT (subject, key_id) DO NOTHING"
            ),
            insert_key: format!(
                "INSERT INTO {table} (subject, key_id, wrapped, forgotten_through, recorded_at)
                 VALUES (?1, ?2, ?3, 0, ?4) ON CONFLICT (subject, key_id) DO NOTHING"
            ),
            delete_keys: format!("DELETE FROM {table} WHERE subject = ?1 AND key_id > 0"),
            mark_forgotten: format!(
                "UPDATE {table} SET forgotten_through = max(forgotten_through, ?2), recorded_at = ?3
                 WHERE subject = ?1 AND key_id = 0"
            ),
        }
    }
}

impl SqliteKeyStore {
    /// A key store on `store`'s file, wrapping keys with `master`. The table was created when
    /// the store opened (schema version 4); nothing is read or written until a key is asked
    /// for.
    ///
    /// ```
    /// use eventsource_core::SqliteStore;
    /// use eventsource_core::persistence::codec::{KeyStore, MasterKey, PayloadCodec};
    /// use eventsource_core::stores::sqlite::SqliteKeyStore;
    ///
    /// # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("es-doc-{}", uuid::Uuid::now_v7()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// # let path = dir.join("bank.db");
    /// // The master key comes from your secrets, never from the database it protects.
    /// # let hex = MasterKey::generate().to_hex();
    /// let master = MasterKey::from_hex(&hex)?;
    /// let store = SqliteStore::open(&path).await?;
    /// let keys = SqliteKeyStore::new(&store, master.clone());
    ///
    /// let customer = uuid::Uuid::now_v7();
    /// let (id, key) = keys.current_key(customer).await?;
    /// assert_eq!(id, 1);
    ///
    /// // Another process on the same file, with the same master key, finds the same key.
    /// let elsewhere = SqliteKeyStore::new(&SqliteStore::open(&path).await?, master);
    /// assert_eq!(elsewhere.current_key(customer).await?, (1, key));
    ///
    /// // Forgetting deletes the keys and leaves a tombstone.
    /// assert_eq!(keys.forget(customer).await?, 1);
    /// assert_eq!(elsewhere.keys(customer).await?.forgotten_through, 1);
    ///
    /// // Payloads written through this codec are encrypted with these keys.
    /// let codec = PayloadCodec::new().encrypt(keys);
    /// # let _ = codec; drop(elsewhere); drop(store); std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn new(store: &SqliteStore, master: MasterKey) -> Self {
        let sql = KeySql::new(&store.shared.options.tables.data_keys());
        Self {
            store: store.clone(),
            master,
            sql: Arc::new(sql),
        }
    }

    /// Runs `f` on the blocking pool; a failure to get there is a storage error.
    async fn run<T, F>(&self, f: F) -> Result<T, KeyError>
    where
        T: Send + 'static,
        F: FnOnce(&Shared, &KeySql) -> Result<T, KeyError> + Send + 'static,
    {
        let sql = Arc::clone(&self.sql);
        self.store
            .run(move |shared| Ok(f(shared, &sql)))
            .await
            .map_err(storage)?
    }
}

/// A driver error while `doing`, as a storage error.
fn failed(shared: &Shared, doing: &str) -> impl FnOnce(rusqlite::Error) -> KeyError {
    let error = shared.failed(doing.to_owned());
    move |e| storage(error(e))
}

/// Every row of `subject`, checked.
fn read(
    conn: &Connection,
    shared: &Shared,
    sql: &KeySql,
    subject: Uuid,
    doing: &str,
) -> Result<Ids, KeyError> {
    let mut statement = conn
        .prepare_cached(&sql.select)
        .map_err(failed(shared, doing))?;
    let rows = statement
        .query_map([subject.hyphenated().to_string()], key_row)
        .map_err(failed(shared, doing))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(failed(shared, doing))?;
    let rows = rows
        .into_iter()
        .collect::<Result<Vec<KeyRow>, String>>()
        .and_then(sql_keys::ids);
    rows.map_err(|message| sql_keys::bad_rows(BACKEND, doing, message))
}

/// A row, or what is wrong with it (a value of another type than the column's).
fn key_row(row: &Row<'_>) -> rusqlite::Result<Result<KeyRow, String>> {
    let integer = |index: usize, column: &str| -> rusqlite::Result<Result<i64, String>> {
        Ok(match row.get_ref(index)? {
            ValueRef::Integer(value) => Ok(value),
            _ => Err(format!(
                "column `{column}` holds something other than an integer"
            )),
        })
    };
    let key_id = match integer(0, "key_id")? {
        Ok(id) => id,
        Err(message) => return Ok(Err(message)),
    };
    let wrapped = match row.get_ref(1)? {
        ValueRef::Null => None,
        ValueRef::Blob(bytes) => Some(bytes.to_vec()),
        _ => {
            return Ok(Err(format!(
                "the row of key {key_id} holds its key in something other than a BLOB"
            )));
        }
    };
    let forgotten_through = match integer(2, "forgotten_through")? {
        Ok(value) => value,
        Err(message) => return Ok(Err(message)),
    };
    Ok(Ok(KeyRow {
        key_id,
        wrapped,
        forgotten_through,
    }))
}

/// What a write transaction decided to do after reading the subject's rows.
enum Write {
    /// Nothing: the subject already has a key.
    Nothing,
    /// Add this key.
    Add(KeyId, DataKey),
}

/// Runs `decide` on the subject's rows inside one `BEGIN IMMEDIATE` transaction and carries
/// out what it says; returns the rows as they are after it.
fn write_key(
    shared: &Shared,
    sql: &KeySql,
    master: &MasterKey,
    subject: Uuid,
    doing: &str,
    decide: impl FnOnce(&Ids) -> Result<Write, KeyError>,
) -> Result<(Option<KeyId>, Ids), KeyError> {
    let now = micros_now().map_err(storage)?;
    let id = subject.hyphenated().to_string();
    let mut conn = shared.writer();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(failed(shared, doing))?;
    tx.prepare_cached(&sql.ensure_subject)
        .and_then(|mut s| s.execute(params![id, now]))
        .map_err(failed(shared, doing))?;
    let before = read(&tx, shared, sql, subject, doing)?;
    let added = match decide(&before)? {
        Write::Nothing => None,
        Write::Add(key_id, key) => {
            let wrapped = master.wrap(subject, key_id, &key);
            let inserted = tx
                .prepare_cached(&sql.insert_key)
                .and_then(|mut s| s.execute(params![id, i64::from(key_id), wrapped, now]))
                .map_err(failed(shared, doing))?;
            // Under the write lock no other writer can have taken the id; if the table was
            // changed by hand meanwhile, say so rather than hand out a key that isn't stored.
            if inserted != 1 {
                return Err(sql_keys::bad_rows(
                    BACKEND,
                    doing,
                    format!("key id {key_id} was taken while it was being added"),
                ));
            }
            Some(key_id)
        }
    };
    let after = read(&tx, shared, sql, subject, doing)?;
    tx.commit().map_err(failed(shared, doing))?;
    Ok((added, after))
}

#[async_trait::async_trait]
impl KeyStore for SqliteKeyStore {
    async fn keys(&self, subject: Uuid) -> Result<SubjectKeys, KeyError> {
        let master = self.master.clone();
        self.run(move |shared, sql| {
            let doing = format!("reading the data keys of subject {subject}");
            let ids = shared
                .read(|conn| Ok(read(conn, shared, sql, subject, &doing)))
                .map_err(storage)??;
            ids.unwrap(&master, subject)
        })
        .await
    }

    async fn current_key(&self, subject: Uuid) -> Result<(KeyId, DataKey), KeyError> {
        // The common case: the subject has a key already, found without the write lock.
        if let Some((id, key)) = self.keys(subject).await?.newest() {
            return Ok((id, key.clone()));
        }
        let master = self.master.clone();
        self.run(move |shared, sql| {
            let doing = format!("creating the first data key of subject {subject}");
            let (_, after) = write_key(shared, sql, &master, subject, &doing, |ids| {
                if !ids.keys.is_empty() {
                    // Another writer (another process, or a rotation) added one first.
                    return Ok(Write::Nothing);
                }
                let id = ids
                    .next_id()
                    .map_err(|message| sql_keys::bad_rows(BACKEND, &doing, message))?;
                Ok(Write::Add(id, DataKey::generate()))
            })?;
            newest(after.unwrap(&master, subject)?, &doing)
        })
        .await
    }

    async fn rotate(&self, subject: Uuid) -> Result<KeyId, KeyError> {
        let master = self.master.clone();
        self.run(move |shared, sql| {
            let doing = format!("adding a data key to subject {subject}");
            let (added, _) = write_key(shared, sql, &master, subject, &doing, |ids| {
                let id = ids
                    .next_id()
                    .map_err(|message| sql_keys::bad_rows(BACKEND, &doing, message))?;
                Ok(Write::Add(id, DataKey::generate()))
            })?;
            added.ok_or_else(|| sql_keys::bad_rows(BACKEND, &doing, "no key was added".to_owned()))
        })
        .await
    }

    async fn forget(&self, subject: Uuid) -> Result<usize, KeyError> {
        if subject == APPLICATION_SUBJECT {
            return Err(KeyError::ApplicationKey);
        }
        self.run(move |shared, sql| {
            let doing = format!("forgetting the data keys of subject {subject}");
            let deleted = forget(shared, sql, subject, &doing)?;
            checkpoint(shared, subject);
            Ok(deleted)
        })
        .await
    }
}

/// The newest of `keys`, which a write has just made sure exists.
fn newest(keys: SubjectKeys, doing: &str) -> Result<(KeyId, DataKey), KeyError> {
    keys.newest()
        .map(|(id, key)| (id, key.clone()))
        .ok_or_else(|| {
            sql_keys::bad_rows(
                BACKEND,
                doing,
                "the subject has no key after adding one".to_owned(),
            )
        })
}

/// Deletes the subject's keys and records its tombstone, in one transaction, with the deleted
/// rows overwritten in the file.
fn forget(shared: &Shared, sql: &KeySql, subject: Uuid, doing: &str) -> Result<usize, KeyError> {
    let now = micros_now().map_err(storage)?;
    let id = subject.hyphenated().to_string();
    let mut conn = shared.writer();
    let secure = SecureDelete::on(&conn, shared, doing)?;
    let outcome = (|| {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(failed(shared, doing))?;
        tx.prepare_cached(&sql.ensure_subject)
            .and_then(|mut s| s.execute(params![id, now]))
            .map_err(failed(shared, doing))?;
        let before = read(&tx, shared, sql, subject, doing)?;
        let deleted = tx
            .prepare_cached(&sql.delete_keys)
            .and_then(|mut s| s.execute(params![id]))
            .map_err(failed(shared, doing))?;
        tx.prepare_cached(&sql.mark_forgotten)
            .and_then(|mut s| s.execute(params![id, i64::from(before.highest()), now]))
            .map_err(failed(shared, doing))?;
        tx.commit().map_err(failed(shared, doing))?;
        Ok(deleted)
    })();
    secure.restore(&conn);
    outcome
}

/// `PRAGMA secure_delete` on the writer connection for one forgetting, then back as it was.
struct SecureDelete {
    was: i64,
}

impl SecureDelete {
    fn on(conn: &Connection, shared: &Shared, doing: &str) -> Result<Self, KeyError> {
        let was: i64 = conn
            .query_row("PRAGMA secure_delete", [], |row| row.get(0))
            .optional()
            .map_err(failed(shared, doing))?
            .unwrap_or(0);
        conn.pragma_update(None, "secure_delete", 1)
            .map_err(failed(shared, doing))?;
        Ok(Self { was })
    }

    fn restore(self, conn: &Connection) {
        if let Err(error) = conn.pragma_update(None, "secure_delete", self.was) {
            tracing::warn!(%error, "eventsource: could not restore PRAGMA secure_delete after forgetting a subject");
        }
    }
}

/// Moves the forgetting out of the write-ahead log into the file and empties the log, so the
/// pages that held the deleted keys don't linger in it. Best effort: a reader still on an
/// older snapshot keeps the log for now (SQLite reuses it later).
fn checkpoint(shared: &Shared, subject: Uuid) {
    if shared.readers.is_none() {
        return; // in memory: no file, no log
    }
    let conn = shared.writer();
    let outcome: rusqlite::Result<(i64, i64, i64)> =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        });
    match outcome {
        Ok((0, _, _)) => {}
        Ok(_) => {
            tracing::debug!(%subject, "eventsource: a reader kept the write-ahead log after a subject was forgotten; SQLite overwrites it later")
        }
        Err(error) => {
            let error: Error = shared.failed("checkpointing after forgetting a subject")(error);
            tracing::warn!(%subject, %error, "eventsource: could not checkpoint the write-ahead log after forgetting a subject");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn file_store(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(dir.path().join("keys.db")).await.unwrap()
    }

    fn raw(dir: &tempfile::TempDir) -> Connection {
        Connection::open(dir.path().join("keys.db")).unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn keys_are_stored_wrapped_and_unwrap_only_with_their_master_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(&dir).await;
        let master = MasterKey::generate();
        let keys = SqliteKeyStore::new(&store, master.clone());
        let subject = Uuid::now_v7();
        let (id, key) = keys.current_key(subject).await.unwrap();
        let wrapped: Vec<u8> = raw(&dir)
            .query_row(
                "SELECT wrapped FROM events_data_keys WHERE subject = ?1 AND key_id = ?2",
                params![subject.hyphenated().to_string(), id],
                |row| row.get(0),
            )
            .unwrap();
        assert!(
            !wrapped.windows(32).any(|w| w == key.as_bytes()),
            "the key is stored in plain"
        );
        assert_eq!(master.unwrap(subject, id, &wrapped).unwrap(), key);

        let wrong = SqliteKeyStore::new(&store, MasterKey::generate());
        match wrong.keys(subject).await {
            Err(KeyError::Unwrap { subject: s, id: 1 }) => assert_eq!(s, subject),
            other => panic!("a wrong master key gave {other:?}"),
        }
        let shown = format!("{keys:?}");
        assert!(
            shown.contains("events_data_keys") && shown.contains("MasterKey(..)"),
            "{shown}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn malformed_rows_and_a_missing_table_are_storage_errors_naming_the_subject() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(&dir).await;
        let keys = SqliteKeyStore::new(&store, MasterKey::generate());
        let subject = Uuid::now_v7();
        keys.current_key(subject).await.unwrap();
        let id = subject.hyphenated().to_string();
        for (tamper, says) in [
            (
                "UPDATE events_data_keys SET wrapped = 'text' WHERE subject = ?1 AND key_id = 1",
                "other than a BLOB",
            ),
            (
                "UPDATE events_data_keys SET wrapped = NULL WHERE subject = ?1 AND key_id = 1",
                "key 1 holds no key",
            ),
            (
                "UPDATE events_data_keys SET key_id = 1 << 40 WHERE subject = ?1 AND key_id = 1",
                "key id 1099511627776",
            ),
            (
                "UPDATE events_data_keys SET forgotten_through = 'x' WHERE subject = ?1 AND key_id = 0",
                "forgotten_through",
            ),
        ] {
            let conn = raw(&dir);
            let saved: Vec<(i64, Option<Vec<u8>>, rusqlite::types::Value)> = conn
                .prepare("SELECT key_id, wrapped, forgotten_through FROM events_data_keys WHERE subject = ?1")
                .unwrap()
                .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            conn.execute(tamper, [&id]).unwrap();
            for outcome in [
                keys.keys(subject).await.map(|_| ()),
                keys.rotate(subject).await.map(|_| ()),
            ] {
                match outcome {
                    Err(KeyError::Storage(error)) => {
                        let message = error.to_string();
                        assert!(message.contains(says), "{tamper}: {message}");
                        assert!(message.contains(&id), "{tamper}: {message}");
                    }
                    other => panic!("{tamper} gave {other:?}"),
                }
            }
            conn.execute("DELETE FROM events_data_keys WHERE subject = ?1", [&id])
                .unwrap();
            for (key_id, wrapped, through) in saved {
                conn.execute(
                    "INSERT INTO events_data_keys VALUES (?1, ?2, ?3, ?4, 0)",
                    params![id, key_id, wrapped, through],
                )
                .unwrap();
            }
            assert_eq!(keys.keys(subject).await.unwrap().keys.len(), 1);
        }
        raw(&dir)
            .execute_batch("DROP TABLE events_data_keys")
            .unwrap();
        match keys.current_key(Uuid::now_v7()).await {
            Err(KeyError::Storage(error)) => {
                let message = error.to_string();
                assert!(
                    message.contains("reading the data keys of subject"),
                    "{message}"
                );
                assert!(message.contains("no such table"), "{message}");
            }
            other => panic!("a missing table gave {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn forgetting_leaves_no_copy_of_the_wrapped_keys_in_the_file_or_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(&dir).await;
        let keys = SqliteKeyStore::new(&store, MasterKey::generate());
        let (subject, kept) = (Uuid::now_v7(), Uuid::now_v7());
        keys.current_key(subject).await.unwrap();
        keys.rotate(subject).await.unwrap();
        keys.current_key(kept).await.unwrap();
        let wrapped: Vec<Vec<u8>> = raw(&dir)
            .prepare("SELECT wrapped FROM events_data_keys WHERE key_id > 0 ORDER BY subject = ?1 DESC, key_id")
            .unwrap()
            .query_map([subject.hyphenated().to_string()], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let on_disk = || {
            let mut bytes = std::fs::read(dir.path().join("keys.db")).unwrap();
            bytes.extend(std::fs::read(dir.path().join("keys.db-wal")).unwrap_or_default());
            bytes
        };
        let found = |bytes: &[u8], key: &[u8]| bytes.windows(key.len()).any(|w| w == key);
        // Before: the wrapped keys are in the file or its log.
        let before = on_disk();
        assert!(wrapped.iter().all(|w| found(&before, w)));

        assert_eq!(keys.forget(subject).await.unwrap(), 2);
        let after = on_disk();
        assert!(
            !found(&after, &wrapped[0]),
            "the forgotten key 1 is still on disk"
        );
        assert!(
            !found(&after, &wrapped[1]),
            "the forgotten key 2 is still on disk"
        );
        assert!(
            found(&after, &wrapped[2]),
            "the other subject's key must stay"
        );
        // The connection is as it was: other deletes are not slowed down.
        let secure: i64 = store
            .shared
            .writer()
            .query_row("PRAGMA secure_delete", [], |r| r.get(0))
            .unwrap();
        assert_eq!(secure, 0);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_table_is_named_after_the_events_table() {
        let store = super::super::SqliteOptions::in_memory()
            .events_table("bank_events")
            .open()
            .await
            .unwrap();
        let keys = SqliteKeyStore::new(&store, MasterKey::generate());
        keys.current_key(Uuid::now_v7()).await.unwrap();
        let rows: i64 = store
            .shared
            .writer()
            .query_row("SELECT count(*) FROM bank_events_data_keys", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(rows, 2, "the subject's own row and its key");
        let clash = super::super::SqliteOptions::in_memory()
            .events_table("bank")
            .snapshots_table("bank_data_keys")
            .open()
            .await;
        assert!(matches!(clash, Err(Error::Config { .. })), "{clash:?}");
    }
}
