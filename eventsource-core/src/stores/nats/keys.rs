//! [`NatsKeyStore`]: the data keys of encrypted payloads, kept in the store's own JetStream
//! key-value bucket `NAME-keys`, each wrapped by a [`MasterKey`] that stays in the
//! application's secrets.
//!
//! One entry per data subject, under the subject's id, holding every key the subject has (still
//! wrapped) and its tombstone, as JSON:
//!
//! ```text
//! {"forgotten_through": 2, "keys": [{"id": 3, "wrapped": "<hex>"}]}
//! ```
//!
//! How it behaves under concurrency and what forgetting leaves behind: see [`NatsKeyStore`].

use std::fmt;

use async_nats::jetstream::kv::{self, Operation, UpdateErrorKind};
use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{BACKEND, Inner, NatsStore};
use crate::error::Error;
use crate::persistence::codec::{
    APPLICATION_SUBJECT, DataKey, KeyError, KeyId, KeyStore, MasterKey, SubjectKeys,
};
use crate::stores::sql::keys::{self as shared, Ids, storage};

/// The key bucket's name: the store's, with this after it.
pub(super) const BUCKET_SUFFIX: &str = "-keys";

/// How many revisions of an entry the bucket keeps (the key-value maximum). Every write erases
/// the revisions before it, so normally one is left; the limit only matters if erasing failed
/// many times in a row.
const HISTORY: i64 = 64;

/// How many times a write re-reads the subject's entry after losing a race before giving up.
const MAX_ROUNDS: usize = 100;

/// Data keys in a [`NatsStore`]'s key-value bucket `NAME-keys`, wrapped by a [`MasterKey`]:
/// what [`PayloadCodec::encrypt`](crate::persistence::codec::PayloadCodec::encrypt) takes to
/// encrypt the store's payloads.
///
/// - **The bucket** is created at the first use, replicated like the store's events stream
///   (`replicas`) and kept where it keeps them (file or memory). Reads go to the stream's
///   leader (the bucket does not allow direct gets), so a replica that lags never hides a key
///   another process has just created or shows one it has just forgotten.
/// - **One entry per subject** holds all of its keys and its tombstone. Every write (a
///   subject's first key, [`KeyStore::rotate`], [`KeyStore::forget`]) reads the entry and
///   writes the next one expecting the revision it read (compare-and-set on
///   `Nats-Expected-Last-Subject-Sequence`; a new subject's first entry expects none). A writer
///   that loses the race reads again and decides again: two processes asking for a new
///   subject's first key at once get the same key (the second finds the first's), concurrent
///   rotations get distinct ids, and a key is never added under an id a concurrent forgetting
///   has just deleted.
/// - **Forgetting** writes the subject's entry without keys and with the highest id it had as
///   its tombstone, then **erases** every older revision of the entry
///   (`STREAM.MSG.DELETE`, which overwrites the message in the server's files, on every
///   replica) — not a delete marker, which would leave the keys in the entry's history. After
///   it returns, the server has no revision holding the forgotten keys; a forgetting that
///   fails after the tombstone was written says so, and forgetting again finishes the erasing.
///   Every other write erases the revisions before it too (a failure there is logged, and
///   the next forgetting erases what is left), so old revisions don't pile up until the
///   bucket's history limit drops them, which removes a message without overwriting it. The
///   server's Raft log (replicas 3) and backups taken before keep the keys, wrapped, until the
///   log is compacted or the backups expire.
///
/// A key is never stored in plain: only wrapped by the master key and bound to its subject and
/// id, so the bucket alone reveals no payload, and a wrapped key copied to another entry does
/// not unwrap. A master key that is not the one the keys were wrapped with is
/// [`KeyError::Unwrap`] naming the subject and key; a malformed entry (or one deleted by hand,
/// which would hide a tombstone) is [`KeyError::Storage`] saying what is wrong.
///
/// Cloning is cheap and shares the store's connection.
#[derive(Clone)]
pub struct NatsKeyStore {
    store: NatsStore,
    master: MasterKey,
}

impl fmt::Debug for NatsKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsKeyStore")
            .field("bucket", &self.bucket())
            .field("master", &self.master)
            .finish_non_exhaustive()
    }
}

/// A subject's entry as stored (JSON).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    /// Keys up to this id were deleted when the subject was forgotten (0: never forgotten).
    forgotten_through: KeyId,
    /// The keys that exist.
    keys: Vec<StoredKey>,
}

/// One key of a [`Record`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKey {
    id: KeyId,
    /// The key wrapped by the master key, in hexadecimal.
    wrapped: String,
}

/// A subject's entry as read: its revision (0 if it has none) and what it says.
#[derive(Debug)]
struct Read {
    revision: u64,
    ids: Ids,
}

/// What a write found when it tried to store the entry.
enum Written {
    /// Stored, at this revision.
    At(u64),
    /// Another writer stored a revision after the one read.
    Lost,
}

/// The entry `ids` stands for, as stored.
fn encode(ids: &Ids) -> Vec<u8> {
    let record = Record {
        forgotten_through: ids.forgotten_through,
        keys: ids
            .keys
            .iter()
            .map(|(id, wrapped)| StoredKey {
                id: *id,
                wrapped: to_hex(wrapped),
            })
            .collect(),
    };
    // A struct of integers and strings always serializes.
    serde_json::to_vec(&record).unwrap_or_default()
}

/// What a stored entry says, or what is wrong with it (`Err(message)`).
fn decode(value: &[u8]) -> Result<Ids, String> {
    let record: Record = serde_json::from_slice(value)
        .map_err(|e| format!("the entry is not a data keys record: {e}"))?;
    let mut keys = Vec::with_capacity(record.keys.len());
    for key in record.keys {
        if key.id == 0 {
            return Err("the entry holds a key with id 0 (ids start at 1)".into());
        }
        if keys.iter().any(|(id, _)| *id == key.id) {
            return Err(format!("the entry holds key {} twice", key.id));
        }
        let wrapped =
            from_hex(&key.wrapped).ok_or_else(|| format!("key {} is not hexadecimal", key.id))?;
        keys.push((key.id, wrapped));
    }
    keys.sort_by_key(|(id, _)| *id);
    Ok(Ids {
        keys,
        forgotten_through: record.forgotten_through,
    })
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.is_ascii() {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

/// A failed request while `doing`, as a storage error.
fn failed<E: Into<crate::error::BoxError>>(doing: &str) -> impl FnOnce(E) -> KeyError + '_ {
    move |error| storage(Error::backend(BACKEND, doing.to_owned(), error))
}

/// A malformed entry as a storage error, naming the subject and what was being done.
fn malformed(doing: &str, message: String) -> KeyError {
    shared::bad_rows(BACKEND, doing, message)
}

impl Inner {
    /// The key bucket, created at its first use.
    async fn key_bucket(&self) -> Result<&kv::Store, KeyError> {
        self.keys
            .get_or_try_init(|| async {
                let events = &self.events.cached_info().config;
                let bucket = format!("{}{BUCKET_SUFFIX}", events.name);
                let doing = format!("creating the key-value bucket `{bucket}`");
                // A key-value bucket is a stream `KV_<bucket>` on `$KV.<bucket>.>`; made here
                // rather than by the client's `create_key_value`, which denies deleting
                // messages (forgetting erases old revisions) and allows direct gets (a lagging
                // replica could answer).
                self.context
                    .get_or_create_stream(stream::Config {
                        name: format!("KV_{bucket}"),
                        description: Some(
                            "eventsource: data keys wrapped by the master key, an entry per data subject"
                                .into(),
                        ),
                        subjects: vec![format!("$KV.{bucket}.>")],
                        max_messages_per_subject: HISTORY,
                        num_replicas: events.num_replicas,
                        storage: events.storage,
                        allow_rollup: true,
                        deny_delete: false,
                        deny_purge: false,
                        allow_direct: false,
                        discard: stream::DiscardPolicy::New,
                        ..Default::default()
                    })
                    .await
                    .map_err(failed(&doing))?;
                self.context
                    .get_key_value(&bucket)
                    .await
                    .map_err(failed(&doing))
            })
            .await
    }
}

impl NatsKeyStore {
    /// A key store in `store`'s key-value bucket `NAME-keys`, wrapping keys with `master`.
    /// Nothing is read or written until a key is asked for; the bucket is created then.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use eventsource_core::persistence::codec::{KeyStore, MasterKey, PayloadCodec};
    /// use eventsource_core::stores::nats::{NatsKeyStore, NatsStore};
    ///
    /// // The master key comes from your secrets, never from the servers it protects.
    /// let master = MasterKey::from_hex(&std::env::var("EVENTSOURCE_MASTER_KEY")?)?;
    /// let store = NatsStore::connect("nats://127.0.0.1:14222").await?;
    /// let keys = NatsKeyStore::new(&store, master);
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
    /// The same runs against live servers in the workspace's `nats_keys` tests.
    pub fn new(store: &NatsStore, master: MasterKey) -> Self {
        Self {
            store: store.clone(),
            master,
        }
    }

    /// The key-value bucket holding the keys: `NAME-keys`.
    pub fn bucket(&self) -> String {
        format!("{}{BUCKET_SUFFIX}", self.store.name())
    }

    async fn bucket_store(&self) -> Result<&kv::Store, KeyError> {
        self.store.inner.key_bucket().await
    }

    /// The subject's entry, checked.
    async fn read(&self, subject: Uuid, doing: &str) -> Result<Read, KeyError> {
        let bucket = self.bucket_store().await?;
        let Some(entry) = bucket
            .entry(entry_key(subject))
            .await
            .map_err(failed(doing))?
        else {
            return Ok(Read {
                revision: 0,
                ids: Ids::default(),
            });
        };
        if !matches!(entry.operation, Operation::Put) {
            return Err(malformed(
                doing,
                format!(
                    "the entry of subject {subject} was deleted outside the key store (revision {}): \
                     its keys and tombstone are gone, so which ids its records name is unknown",
                    entry.revision
                ),
            ));
        }
        let ids = decode(&entry.value).map_err(|message| {
            malformed(doing, format!("revision {}: {message}", entry.revision))
        })?;
        Ok(Read {
            revision: entry.revision,
            ids,
        })
    }

    /// Stores `ids` as the subject's entry if its revision is still `revision` (0: if it has
    /// none).
    async fn write(
        &self,
        subject: Uuid,
        revision: u64,
        ids: &Ids,
        doing: &str,
    ) -> Result<Written, KeyError> {
        let bucket = self.bucket_store().await?;
        match bucket
            .update(entry_key(subject), encode(ids).into(), revision)
            .await
        {
            Ok(revision) => Ok(Written::At(revision)),
            Err(error) if lost_race(&error) => Ok(Written::Lost),
            Err(error) => Err(failed(doing)(error)),
        }
    }

    /// Erases every revision of the subject's entry before `revision` (the one just written),
    /// overwriting them in the server's files. Returns how many were erased.
    async fn erase_before(
        &self,
        subject: Uuid,
        revision: u64,
        doing: &str,
    ) -> Result<usize, KeyError> {
        let bucket = self.bucket_store().await?;
        let key_subject = format!("{}{}", bucket.prefix, entry_key(subject));
        let mut from = 1;
        let mut erased = 0;
        while from < revision {
            let older = match bucket
                .stream
                .get_first_raw_message_by_subject(&key_subject, from)
                .await
            {
                Ok(message) => message.sequence,
                Err(error) if matches!(error.kind(), LastRawMessageErrorKind::NoMessageFound) => {
                    break;
                }
                Err(error) => return Err(failed(doing)(error)),
            };
            if older >= revision {
                break;
            }
            // Another writer may have erased it meanwhile: then there is nothing to do.
            match bucket.stream.delete_message(older).await {
                Ok(_) => erased += 1,
                Err(error) if is_not_found(&error) => {}
                Err(error) => return Err(failed(doing)(error)),
            }
            from = older + 1;
        }
        Ok(erased)
    }

    /// Tidies up after a write that added a key: erases the revisions before it (they hold only
    /// keys the new one holds too). A failure is logged, not returned: the key was stored, and
    /// forgetting erases what is left.
    async fn tidy(&self, subject: Uuid, revision: u64, doing: &str) {
        if let Err(error) = self.erase_before(subject, revision, doing).await {
            tracing::warn!(%subject, revision, %error, "eventsource: could not erase the older revisions of a data keys entry; forgetting the subject erases them");
        }
    }

    /// Adds a key to the subject, unless `keep` says the keys it has will do (then its newest
    /// is returned); returns the key added.
    async fn add_key(
        &self,
        subject: Uuid,
        doing: &str,
        keep: impl Fn(&Ids) -> bool,
    ) -> Result<(KeyId, DataKey), KeyError> {
        for round in 0..MAX_ROUNDS {
            let read = self.read(subject, doing).await?;
            if keep(&read.ids) {
                let keys = read.ids.unwrap(&self.master, subject)?;
                return keys
                    .newest()
                    .map(|(id, key)| (id, key.clone()))
                    .ok_or_else(|| malformed(doing, "the subject has no key to keep".into()));
            }
            let id = read
                .ids
                .next_id()
                .map_err(|message| malformed(doing, message))?;
            let key = DataKey::generate();
            let mut next = read.ids;
            next.keys.push((id, self.master.wrap(subject, id, &key)));
            match self.write(subject, read.revision, &next, doing).await? {
                Written::At(revision) => {
                    self.tidy(subject, revision, doing).await;
                    return Ok((id, key));
                }
                // Another writer got in first: read what it wrote and decide again.
                Written::Lost => after_lost_race(round).await,
            }
        }
        Err(gave_up(doing))
    }
}

/// Waits a little before reading again after the `round`th lost race: on a replicated bucket
/// the winner's revision may be proposed but not yet readable, and reading at once would find
/// the old one again.
async fn after_lost_race(round: usize) {
    let millis = u64::try_from(round.min(20)).unwrap_or(20);
    tokio::time::sleep(std::time::Duration::from_millis(1 + millis)).await;
}

/// The error of a write that lost [`MAX_ROUNDS`] races in a row.
fn gave_up(doing: &str) -> KeyError {
    storage(Error::backend(
        BACKEND,
        doing.to_owned(),
        format!(
            "other writers changed the subject's entry {MAX_ROUNDS} times in a row while it was being written"
        ),
    ))
}

/// The entry key of `subject`: its id.
fn entry_key(subject: Uuid) -> String {
    subject.hyphenated().to_string()
}

/// Whether a write was refused because the entry has a revision after the one it expected:
/// against the stored revisions (10071, which the client reports as a wrong last revision), or,
/// on a replicated bucket, against one its leader has proposed but not yet applied (10164, which
/// it does not).
fn lost_race(error: &kv::UpdateError) -> bool {
    if matches!(error.kind(), UpdateErrorKind::WrongLastRevision) {
        return true;
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(api) = cause.downcast_ref::<async_nats::jetstream::Error>() {
            return [10071, 10164].contains(&api.error_code().0);
        }
        source = cause.source();
    }
    false
}

/// Whether a message delete failed because the message is gone already.
fn is_not_found(error: &stream::DeleteMessageError) -> bool {
    use async_nats::jetstream::ErrorCode;
    // JetStream's "sequence not found" (10043), or "no message found" (10037).
    matches!(
        error.kind(),
        stream::DeleteMessageErrorKind::JetStream(e)
            if [ErrorCode::SEQUENCE_NOT_FOUND, ErrorCode::NO_MESSAGE_FOUND].contains(&e.error_code())
    )
}

#[async_trait::async_trait]
impl KeyStore for NatsKeyStore {
    async fn keys(&self, subject: Uuid) -> Result<SubjectKeys, KeyError> {
        let doing = format!("reading the data keys of subject {subject}");
        let read = self.read(subject, &doing).await?;
        read.ids.unwrap(&self.master, subject)
    }

    async fn current_key(&self, subject: Uuid) -> Result<(KeyId, DataKey), KeyError> {
        let doing = format!("creating the first data key of subject {subject}");
        // A subject with a key keeps it; one without (new, or forgotten) gets one.
        self.add_key(subject, &doing, |ids| !ids.keys.is_empty())
            .await
    }

    async fn rotate(&self, subject: Uuid) -> Result<KeyId, KeyError> {
        let doing = format!("adding a data key to subject {subject}");
        let (id, _) = self.add_key(subject, &doing, |_| false).await?;
        Ok(id)
    }

    async fn forget(&self, subject: Uuid) -> Result<usize, KeyError> {
        if subject == APPLICATION_SUBJECT {
            return Err(KeyError::ApplicationKey);
        }
        let doing = format!("forgetting the data keys of subject {subject}");
        for round in 0..MAX_ROUNDS {
            let read = self.read(subject, &doing).await?;
            let deleted = read.ids.keys.len();
            let through = read.ids.highest();
            let revision = if deleted == 0 {
                // Nothing to delete (forgotten before, or never had a key): only make sure no
                // older revision is left, which a forgetting that failed half-way can leave.
                read.revision
            } else {
                let tombstone = Ids {
                    keys: Vec::new(),
                    forgotten_through: through,
                };
                match self
                    .write(subject, read.revision, &tombstone, &doing)
                    .await?
                {
                    Written::At(revision) => revision,
                    Written::Lost => {
                        after_lost_race(round).await;
                        continue;
                    }
                }
            };
            if revision > 0 {
                self.erase_before(subject, revision, &doing).await?;
            }
            return Ok(deleted);
        }
        Err(gave_up(&doing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_as_keys_and_a_tombstone() {
        let ids = Ids {
            keys: vec![(3, vec![0xab, 0x01]), (5, Vec::new())],
            forgotten_through: 2,
        };
        let stored = encode(&ids);
        assert_eq!(
            String::from_utf8(stored.clone()).unwrap(),
            r#"{"forgotten_through":2,"keys":[{"id":3,"wrapped":"ab01"},{"id":5,"wrapped":""}]}"#
        );
        let read = decode(&stored).unwrap();
        assert_eq!(read.keys, ids.keys);
        assert_eq!(
            (read.forgotten_through, read.highest(), read.next_id()),
            (2, 5, Ok(6))
        );
        // Keys come back in id order whatever order they were stored in.
        let read = decode(
            br#"{"forgotten_through":0,"keys":[{"id":2,"wrapped":"02"},{"id":1,"wrapped":"01"}]}"#,
        )
        .unwrap();
        assert_eq!(read.keys, vec![(1, vec![1]), (2, vec![2])]);
    }

    #[test]
    fn malformed_entries_are_errors_that_say_what_is_wrong() {
        for (entry, says) in [
            ("not json", "not a data keys record"),
            (
                r#"{"forgotten_through":-1,"keys":[]}"#,
                "not a data keys record",
            ),
            (r#"{"forgotten_through":0}"#, "missing field `keys`"),
            (
                r#"{"forgotten_through":0,"keys":[],"x":1}"#,
                "unknown field",
            ),
            (
                r#"{"forgotten_through":0,"keys":[{"id":4294967296,"wrapped":""}]}"#,
                "not a data keys record",
            ),
            (
                r#"{"forgotten_through":0,"keys":[{"id":0,"wrapped":""}]}"#,
                "id 0",
            ),
            (
                r#"{"forgotten_through":0,"keys":[{"id":1,"wrapped":""},{"id":1,"wrapped":""}]}"#,
                "key 1 twice",
            ),
            (
                r#"{"forgotten_through":0,"keys":[{"id":1,"wrapped":"abc"}]}"#,
                "not hexadecimal",
            ),
            (
                r#"{"forgotten_through":0,"keys":[{"id":1,"wrapped":"zz"}]}"#,
                "not hexadecimal",
            ),
            (
                r#"{"forgotten_through":0,"keys":[{"id":1,"wrapped":"é1"}]}"#,
                "not hexadecimal",
            ),
            (
                r#"{"forgotten_through":0,"keys":[{"id":1,"wrapped":"éé"}]}"#,
                "not hexadecimal",
            ),
        ] {
            let message = decode(entry.as_bytes()).unwrap_err();
            assert!(message.contains(says), "{message}");
        }
    }

    #[test]
    fn stored_keys_unwrap_only_with_their_master_key_subject_and_id() {
        let (master, subject, key) = (MasterKey::generate(), Uuid::now_v7(), DataKey::generate());
        let ids = Ids {
            keys: vec![(1, master.wrap(subject, 1, &key))],
            forgotten_through: 0,
        };
        let stored = encode(&ids);
        let keys = decode(&stored).unwrap().unwrap(&master, subject).unwrap();
        assert_eq!(keys.get(1), Some(&key));
        assert!(matches!(
            decode(&stored).unwrap().unwrap(&MasterKey::generate(), subject),
            Err(KeyError::Unwrap { subject: s, id: 1 }) if s == subject
        ));
        assert!(matches!(
            decode(&stored).unwrap().unwrap(&master, Uuid::now_v7()),
            Err(KeyError::Unwrap { .. })
        ));
        assert_eq!(from_hex(&to_hex(&[0, 15, 255])), Some(vec![0, 15, 255]));
    }
}
