//! Keys for encrypting payloads: a data key per data subject (a person, or the application
//! itself), kept by a [`KeyStore`]. Forgetting a subject deletes its keys and leaves a
//! tombstone, so its records decode as forgotten (crypto-shredding) while a key that is merely
//! missing (a wrong or empty key store) is an error, never mistaken for forgetting.
//!
//! Stores that keep keys in a database wrap each data key with a [`MasterKey`] that never
//! leaves the application's configuration.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{KeyInit, OsRng};
use async_trait::async_trait;
use uuid::Uuid;

use super::cipher;

/// A key's number within its subject: 1 for the first, one more for each rotation.
pub type KeyId = u32;

/// The subject of the application's own key: records without personal data are encrypted
/// with it, and it can't be forgotten.
pub const APPLICATION_SUBJECT: Uuid = Uuid::nil();

/// A 256-bit data key. Its `Debug` shows no key material.
///
/// It keeps its cipher ready (the AES key schedule and the GHASH key), shared by its clones:
/// preparing it costs about as much as decrypting a small payload, and every payload
/// encrypted with the key would otherwise pay it again. It goes when the last clone does (the
/// key cache drops its clones when a subject is forgotten).
#[derive(Clone)]
pub struct DataKey {
    bytes: [u8; 32],
    cipher: Arc<Aes256Gcm>,
}

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self::from_bytes(Aes256Gcm::generate_key(OsRng).into())
    }

    /// A key from its bytes (a key store reading its own storage).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            bytes,
            cipher: Arc::new(cipher::prepare(&bytes)),
        }
    }

    /// The key's bytes (a key store writing its own storage: wrap them first, see
    /// [`MasterKey::wrap`]).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The prepared cipher.
    pub(crate) fn cipher(&self) -> &Aes256Gcm {
        &self.cipher
    }
}

impl PartialEq for DataKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for DataKey {}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// The key that wraps data keys kept in a database: the database alone reveals no payload.
///
/// Keep it in the application's secrets (an environment variable, a secret manager), never
/// in the database it protects. Losing it loses every encrypted payload.
///
/// ```
/// use eventsource_core::persistence::codec::MasterKey;
///
/// let key = MasterKey::generate();
/// let hex = key.to_hex();                 // store this in your secrets
/// assert_eq!(MasterKey::from_hex(&hex).unwrap(), key);
/// assert!(MasterKey::from_hex("not a key").is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey(pub(crate) [u8; 32]);

impl MasterKey {
    /// A fresh random master key.
    pub fn generate() -> Self {
        Self(Aes256Gcm::generate_key(OsRng).into())
    }

    /// A master key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A master key from 64 hexadecimal digits.
    pub fn from_hex(hex: &str) -> Result<Self, KeyError> {
        let hex = hex.trim();
        let bad = || KeyError::BadMasterKey {
            message: format!(
                "expected 64 hexadecimal digits (32 bytes), got {} characters",
                hex.chars().count()
            ),
        };
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(bytes))
    }

    /// The key as 64 hexadecimal digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// `key` encrypted for storage, bound to its subject and id (a wrapped key copied to
    /// another subject or id does not unwrap).
    pub fn wrap(&self, subject: Uuid, id: KeyId, key: &DataKey) -> Vec<u8> {
        cipher::wrap(&self.0, &wrap_binding(subject, id), key.as_bytes())
    }

    /// The data key from its stored, wrapped form.
    pub fn unwrap(&self, subject: Uuid, id: KeyId, wrapped: &[u8]) -> Result<DataKey, KeyError> {
        cipher::unwrap(&self.0, &wrap_binding(subject, id), wrapped)
            .map(DataKey::from_bytes)
            .ok_or(KeyError::Unwrap { subject, id })
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

fn wrap_binding(subject: Uuid, id: KeyId) -> Vec<u8> {
    let mut binding = b"eventsource data key".to_vec();
    binding.extend_from_slice(subject.as_bytes());
    binding.extend_from_slice(&id.to_be_bytes());
    binding
}

/// What a key store holds for one subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectKeys {
    /// The keys that still exist, by id.
    pub keys: Vec<(KeyId, DataKey)>,
    /// Keys up to this id were deleted when the subject was forgotten (0: never forgotten).
    pub forgotten_through: KeyId,
}

impl SubjectKeys {
    /// The key with this id, if it still exists.
    pub fn get(&self, id: KeyId) -> Option<&DataKey> {
        self.keys.iter().find(|(k, _)| *k == id).map(|(_, key)| key)
    }

    /// The id the subject's next key gets: after every key it has and had (a forgotten key's id
    /// is never given again, so no old record names a new key).
    pub fn next_id(&self) -> KeyId {
        self.keys
            .iter()
            .map(|(id, _)| *id)
            .max()
            .unwrap_or(0)
            .max(self.forgotten_through)
            + 1
    }

    /// The newest key: what new records are encrypted with.
    pub fn newest(&self) -> Option<(KeyId, &DataKey)> {
        self.keys
            .iter()
            .max_by_key(|(id, _)| *id)
            .map(|(id, key)| (*id, key))
    }
}

/// Why a key store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The master key given to a key store is malformed.
    #[error("the master key is malformed: {message}")]
    BadMasterKey {
        /// What was wrong.
        message: String,
    },
    /// A stored data key did not unwrap: the master key is not the one it was wrapped with, or
    /// the stored key was changed.
    #[error(
        "data key {id} of subject {subject} does not unwrap: the master key is not the one it was stored with, or the stored key was changed"
    )]
    Unwrap {
        /// The subject.
        subject: Uuid,
        /// The key's id.
        id: KeyId,
    },
    /// The application's own key can't be forgotten: records without personal data use it.
    #[error(
        "the application's key (subject {APPLICATION_SUBJECT}) can't be forgotten: records without personal data are encrypted with it"
    )]
    ApplicationKey,
    /// The key store's storage failed.
    #[error("the key store failed: {0}")]
    Storage(#[source] crate::error::BoxError),
}

/// Where data keys are kept: one or more per subject, the newest used for new records.
///
/// Implemented by [`MemoryKeyStore`], and by the SQLite, PostgreSQL and NATS stores' key
/// stores, which keep the keys (wrapped by a [`MasterKey`]) in the store's own database (a
/// key-value bucket on NATS).
#[async_trait]
pub trait KeyStore: Send + Sync + fmt::Debug + 'static {
    /// Every key `subject` has, and how far it was forgotten.
    async fn keys(&self, subject: Uuid) -> Result<SubjectKeys, KeyError>;

    /// The newest key of `subject`, creating its first if it has none (and a new one if all of
    /// its keys were forgotten: a subject that comes back starts afresh).
    async fn current_key(&self, subject: Uuid) -> Result<(KeyId, DataKey), KeyError>;

    /// Adds a key to `subject`, which new records use from now on; older records stay
    /// readable with their own keys. Returns the new key's id.
    async fn rotate(&self, subject: Uuid) -> Result<KeyId, KeyError>;

    /// Deletes every key of `subject` and remembers that it was forgotten. Returns how many
    /// keys were deleted. Refuses [`APPLICATION_SUBJECT`].
    async fn forget(&self, subject: Uuid) -> Result<usize, KeyError>;
}

#[async_trait]
impl<K: KeyStore + ?Sized> KeyStore for std::sync::Arc<K> {
    async fn keys(&self, subject: Uuid) -> Result<SubjectKeys, KeyError> {
        (**self).keys(subject).await
    }
    async fn current_key(&self, subject: Uuid) -> Result<(KeyId, DataKey), KeyError> {
        (**self).current_key(subject).await
    }
    async fn rotate(&self, subject: Uuid) -> Result<KeyId, KeyError> {
        (**self).rotate(subject).await
    }
    async fn forget(&self, subject: Uuid) -> Result<usize, KeyError> {
        (**self).forget(subject).await
    }
}

/// Keys in memory, for tests and for a [`MemoryStore`](crate::MemoryStore): gone when the
/// process ends, with every payload encrypted under them.
#[derive(Debug, Default)]
pub struct MemoryKeyStore {
    subjects: Mutex<HashMap<Uuid, SubjectKeys>>,
}

impl MemoryKeyStore {
    /// An empty key store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<Uuid, SubjectKeys>) -> T) -> T {
        let mut subjects = self
            .subjects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut subjects)
    }
}

#[async_trait]
impl KeyStore for MemoryKeyStore {
    async fn keys(&self, subject: Uuid) -> Result<SubjectKeys, KeyError> {
        Ok(self.with(|s| s.get(&subject).cloned().unwrap_or_default()))
    }

    async fn current_key(&self, subject: Uuid) -> Result<(KeyId, DataKey), KeyError> {
        Ok(self.with(|s| {
            let keys = s.entry(subject).or_default();
            if let Some((id, key)) = keys.newest() {
                return (id, key.clone());
            }
            let (id, key) = (keys.next_id(), DataKey::generate());
            keys.keys.push((id, key.clone()));
            (id, key)
        }))
    }

    async fn rotate(&self, subject: Uuid) -> Result<KeyId, KeyError> {
        Ok(self.with(|s| {
            let keys = s.entry(subject).or_default();
            let id = keys.next_id();
            keys.keys.push((id, DataKey::generate()));
            id
        }))
    }

    async fn forget(&self, subject: Uuid) -> Result<usize, KeyError> {
        if subject == APPLICATION_SUBJECT {
            return Err(KeyError::ApplicationKey);
        }
        Ok(self.with(|s| {
            let keys = s.entry(subject).or_default();
            let through = keys.next_id() - 1;
            let deleted = keys.keys.len();
            keys.keys.clear();
            keys.forgotten_through = through;
            deleted
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_keys_rotate_forget_and_come_back_under_new_ids() {
        let store = MemoryKeyStore::new();
        let person = Uuid::now_v7();
        let (first, key) = store.current_key(person).await.unwrap();
        assert_eq!(first, 1);
        assert_eq!(store.current_key(person).await.unwrap(), (1, key.clone()));
        assert_eq!(store.rotate(person).await.unwrap(), 2);
        let (newest, newest_key) = store.current_key(person).await.unwrap();
        assert_eq!(newest, 2);
        assert_ne!(newest_key, key);
        assert_eq!(store.keys(person).await.unwrap().get(1), Some(&key));

        assert_eq!(store.forget(person).await.unwrap(), 2);
        let after = store.keys(person).await.unwrap();
        assert_eq!((after.keys.len(), after.forgotten_through), (0, 2));
        // A subject that comes back gets a key no old record names.
        assert_eq!(store.current_key(person).await.unwrap().0, 3);
        assert!(matches!(
            store.forget(APPLICATION_SUBJECT).await,
            Err(KeyError::ApplicationKey)
        ));
    }

    #[test]
    fn wrapped_keys_unwrap_only_with_their_master_key_subject_and_id() {
        let master = MasterKey::generate();
        let (subject, key) = (Uuid::now_v7(), DataKey::generate());
        let wrapped = master.wrap(subject, 1, &key);
        assert_eq!(master.unwrap(subject, 1, &wrapped).unwrap(), key);
        for (master, subject, id) in [
            (MasterKey::generate(), subject, 1),
            (master.clone(), Uuid::now_v7(), 1),
            (master.clone(), subject, 2),
        ] {
            assert!(matches!(
                master.unwrap(subject, id, &wrapped),
                Err(KeyError::Unwrap { .. })
            ));
        }
        assert!(master.unwrap(subject, 1, &wrapped[..10]).is_err());
        assert_eq!(format!("{master:?} {key:?}"), "MasterKey(..) DataKey(..)");
    }
}
