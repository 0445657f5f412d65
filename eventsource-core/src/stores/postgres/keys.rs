//! [`PostgresKeyStore`]: the data keys of encrypted payloads, kept in the store's own schema
//! (table `<events>_data_keys`), each wrapped by a [`MasterKey`] that stays in the
//! application's secrets.
//!
//! How it behaves under concurrency and what forgetting leaves behind: see [`PostgresKeyStore`].

use std::fmt;
use std::sync::Arc;

use tokio_postgres::Row;
use tokio_postgres::types::FromSql;
use uuid::Uuid;

use super::{BACKEND, PostgresStore, pg_error};
use crate::persistence::codec::{
    APPLICATION_SUBJECT, DataKey, KeyError, KeyId, KeyStore, MasterKey, SubjectKeys,
};
use crate::stores::sql::keys::{self as sql_keys, Ids, KeyRow, storage};

/// Data keys in a [`PostgresStore`]'s schema, wrapped by a [`MasterKey`]: what
/// [`PayloadCodec::encrypt`](crate::persistence::codec::PayloadCodec::encrypt) takes to encrypt
/// the store's payloads.
///
/// - **Reads** ([`KeyStore::keys`], and [`KeyStore::current_key`] once the subject has a key)
///   are one statement on a pooled connection: one consistent view, no lock.
/// - **Writes** (a subject's first key, [`KeyStore::rotate`], [`KeyStore::forget`]) each run in
///   one transaction that first makes sure the subject's own row exists (`INSERT … ON CONFLICT
///   DO NOTHING`, so two writers can't both create it) and locks it (`FOR UPDATE`). Writers of
///   one subject therefore take turns, in every process, and each reads the subject's keys
///   after the one before it committed: two processes asking for a new subject's first key at
///   once get the same key (the second finds the first's), concurrent rotations get distinct
///   ids, and a key is never added under an id a concurrent forgetting has just deleted. Writers
///   of different subjects don't wait for each other.
/// - **Forgetting** deletes the subject's key rows and records the highest id it had on its own
///   row (the tombstone), in one transaction. PostgreSQL removes deleted rows from its files
///   when it vacuums the table; backups and WAL archives taken before keep the keys, wrapped:
///   expire them as your retention rules say.
///
/// A key is never stored in plain: only wrapped by the master key and bound to its subject and
/// id, so the database alone reveals no payload, and a wrapped key copied to another row does
/// not unwrap. A master key that is not the one the keys were wrapped with is
/// [`KeyError::Unwrap`] naming the subject and key.
///
/// Cloning is cheap and shares the store's pool.
#[derive(Clone)]
pub struct PostgresKeyStore {
    store: PostgresStore,
    master: MasterKey,
    sql: Arc<KeySql>,
}

impl fmt::Debug for PostgresKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresKeyStore")
            .field("schema", &self.store.names.schema)
            .field("table", &self.store.names.data_keys())
            .field("master", &self.master)
            .finish_non_exhaustive()
    }
}

/// The statements, with the table's name filled in.
#[derive(Debug)]
struct KeySql {
    /// `$1 subject` → every row of the subject.
    select: String,
    /// `$1 subject`: the subject's own row, if missing.
    ensure_subject: String,
    /// `$1 subject`: locks the subject's own row until the transaction ends.
    lock_subject: String,
    /// `$1 subject, $2 key_id, $3 wrapped` → 0 rows if the id is taken.
    insert_key: String,
    /// `$1 subject` → deletes its keys.
    delete_keys: String,
    /// `$1 subject, $2 forgotten_through`.
    mark_forgotten: String,
}

impl KeySql {
    fn new(table: &str) -> Self {
        Self {
            select: format!(
                "SELECT key_id, wrapped, forgotten_through FROM {table} WHERE subject = $1::uuid"
            ),
            ensure_subject: format!(
                "INSERT INTO {table} (subject, key_id) VALUES ($1::uuid, 0) \
                 ON CONFLICT (subject, key_id) DO NOTHING"
            ),
            lock_subject: format!(
                "SELECT 1 FROM {table} WHERE subject = $1::uuid AND key_id = 0 FOR UPDATE"
            ),
            insert_key: format!(
                "INSERT INTO {table} (subject, key_id, wrapped) VALUES ($1::uuid, $2::int8, $3::bytea) \
                 ON CONFLICT (subject, key_id) DO NOTHING"
            ),
            delete_keys: format!("DELETE FROM {table} WHERE subject = $1::uuid AND key_id > 0"),
            mark_forgotten: format!(
                "UPDATE {table} SET forgotten_through = greatest(forgotten_through, $2::int8), \
                 recorded_at = now() WHERE subject = $1::uuid AND key_id = 0"
            ),
        }
    }
}

/// What a write transaction decided to do after reading the subject's rows.
enum Write {
    /// Nothing: the subject already has a key.
    Nothing,
    /// Add a new key with this id.
    Add(KeyId),
}

/// A driver error while `doing`, as a storage error.
fn failed(doing: &str) -> impl FnOnce(tokio_postgres::Error) -> KeyError {
    let error = pg_error(doing.to_owned());
    move |e| storage(error(e))
}

/// A column of a key row, or what is wrong with it.
fn column<'a, T: FromSql<'a>>(row: &'a Row, index: usize, name: &str) -> Result<T, String> {
    row.try_get(index)
        .map_err(|e| format!("column `{name}` does not read: {e}"))
}

/// Every row of `subject`, checked.
async fn read(
    client: &impl deadpool_postgres::GenericClient,
    sql: &KeySql,
    subject: Uuid,
    doing: &str,
) -> Result<Ids, KeyError> {
    let rows = client
        .query(&sql.select, &[&subject])
        .await
        .map_err(failed(doing))?;
    let rows = rows
        .iter()
        .map(|row| {
            Ok(KeyRow {
                key_id: column(row, 0, "key_id")?,
                wrapped: column(row, 1, "wrapped")?,
                forgotten_through: column(row, 2, "forgotten_through")?,
            })
        })
        .collect::<Result<Vec<KeyRow>, String>>()
        .and_then(sql_keys::ids);
    rows.map_err(|message| sql_keys::bad_rows(BACKEND, doing, message))
}

/// A transaction for a subject's writers: `READ COMMITTED` whatever the database's default, so
/// the reads after the lock on the subject's row see what the writer before committed (under
/// `REPEATABLE READ` they would see the transaction's first snapshot, or fail to serialize).
async fn begin<'c>(
    client: &'c mut deadpool_postgres::Object,
    doing: &str,
) -> Result<deadpool_postgres::Transaction<'c>, KeyError> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
        .start()
        .await
        .map_err(failed(doing))
}

impl PostgresKeyStore {
    /// A key store in `store`'s schema, wrapping keys with `master`. The table was created when
    /// the store connected (schema version 4); nothing is read or written until a key is asked
    /// for.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use eventsource_core::persistence::codec::{KeyStore, MasterKey, PayloadCodec};
    /// use eventsource_core::stores::postgres::{PostgresKeyStore, PostgresStore};
    ///
    /// // The master key comes from your secrets, never from the database it protects.
    /// let master = MasterKey::from_hex(&std::env::var("EVENTSOURCE_MASTER_KEY")?)?;
    /// let store = PostgresStore::connect("postgres://postgres@127.0.0.1:5432/test").await?;
    /// let keys = PostgresKeyStore::new(&store, master);
    ///
    /// let customer = uuid::Uuid::now_v7();
    /// let (id, _key) = keys.current_key(customer).await?;
    /// assert_eq!(id, 1);
    /// assert_eq!(keys.forget(customer).await?, 1);
    /// assert_eq!(keys.keys(customer).await?.forgotten_through, 1);
    ///
    /// // Payloads written through this codec are encrypted with these keys.
    /// let codec = PayloadCodec::new().encrypt(keys);
    /// # let _ = codec; Ok(()) }
    /// ```
    ///
    /// The same runs against a live server in this crate's `codecs` integration tests.
    pub fn new(store: &PostgresStore, master: MasterKey) -> Self {
        let sql = KeySql::new(&store.names.data_keys_table());
        Self {
            store: store.clone(),
            master,
            sql: Arc::new(sql),
        }
    }

    /// Runs `decide` on the subject's rows in one transaction holding the lock on the
    /// subject's own row, and adds the key it asks for. Returns the added key's id and the rows
    /// as they are after it.
    async fn write_key(
        &self,
        subject: Uuid,
        doing: &str,
        decide: impl FnOnce(&Ids) -> Result<Write, KeyError>,
    ) -> Result<(Option<KeyId>, Ids), KeyError> {
        let sql = &self.sql;
        let mut client = self.store.client(doing).await.map_err(storage)?;
        let tx = begin(&mut client, doing).await?;
        tx.execute(&sql.ensure_subject, &[&subject])
            .await
            .map_err(failed(doing))?;
        tx.execute(&sql.lock_subject, &[&subject])
            .await
            .map_err(failed(doing))?;
        let before = read(&tx, sql, subject, doing).await?;
        let added = match decide(&before)? {
            Write::Nothing => None,
            Write::Add(key_id) => {
                let wrapped = self.master.wrap(subject, key_id, &DataKey::generate());
                let inserted = tx
                    .execute(&sql.insert_key, &[&subject, &i64::from(key_id), &wrapped])
                    .await
                    .map_err(failed(doing))?;
                // Every writer of this subject holds its row's lock; a row added by hand
                // meanwhile is reported rather than a key handed out that isn't stored.
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
        let after = read(&tx, sql, subject, doing).await?;
        tx.commit().await.map_err(failed(doing))?;
        Ok((added, after))
    }
}

#[async_trait::async_trait]
impl KeyStore for PostgresKeyStore {
    async fn keys(&self, subject: Uuid) -> Result<SubjectKeys, KeyError> {
        let doing = format!("reading the data keys of subject {subject}");
        let client = self.store.client(&doing).await.map_err(storage)?;
        let ids = read(&client, &self.sql, subject, &doing).await?;
        ids.unwrap(&self.master, subject)
    }

    async fn current_key(&self, subject: Uuid) -> Result<(KeyId, DataKey), KeyError> {
        // The common case: the subject has a key already, found without a lock.
        if let Some((id, key)) = self.keys(subject).await?.newest() {
            return Ok((id, key.clone()));
        }
        let doing = format!("creating the first data key of subject {subject}");
        let (_, after) = self
            .write_key(subject, &doing, |ids| {
                if !ids.keys.is_empty() {
                    // Another writer (another process, or a rotation) added one first.
                    return Ok(Write::Nothing);
                }
                ids.next_id()
                    .map(Write::Add)
                    .map_err(|message| sql_keys::bad_rows(BACKEND, &doing, message))
            })
            .await?;
        let keys = after.unwrap(&self.master, subject)?;
        keys.newest()
            .map(|(id, key)| (id, key.clone()))
            .ok_or_else(|| {
                sql_keys::bad_rows(
                    BACKEND,
                    &doing,
                    "the subject has no key after adding one".to_owned(),
                )
            })
    }

    async fn rotate(&self, subject: Uuid) -> Result<KeyId, KeyError> {
        let doing = format!("adding a data key to subject {subject}");
        let (added, _) = self
            .write_key(subject, &doing, |ids| {
                ids.next_id()
                    .map(Write::Add)
                    .map_err(|message| sql_keys::bad_rows(BACKEND, &doing, message))
            })
            .await?;
        added.ok_or_else(|| sql_keys::bad_rows(BACKEND, &doing, "no key was added".to_owned()))
    }

    async fn forget(&self, subject: Uuid) -> Result<usize, KeyError> {
        if subject == APPLICATION_SUBJECT {
            return Err(KeyError::ApplicationKey);
        }
        let doing = format!("forgetting the data keys of subject {subject}");
        let sql = &self.sql;
        let mut client = self.store.client(&doing).await.map_err(storage)?;
        let tx = begin(&mut client, &doing).await?;
        tx.execute(&sql.ensure_subject, &[&subject])
            .await
            .map_err(failed(&doing))?;
        tx.execute(&sql.lock_subject, &[&subject])
            .await
            .map_err(failed(&doing))?;
        let before = read(&tx, sql, subject, &doing).await?;
        let deleted = tx
            .execute(&sql.delete_keys, &[&subject])
            .await
            .map_err(failed(&doing))?;
        tx.execute(
            &sql.mark_forgotten,
            &[&subject, &i64::from(before.highest())],
        )
        .await
        .map_err(failed(&doing))?;
        tx.commit().await.map_err(failed(&doing))?;
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }
}
