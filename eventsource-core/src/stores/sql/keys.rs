//! What the SQL stores' key stores share: the layout of the data keys table, turning its rows
//! back into a subject's keys (with a typed error, never a panic, for a malformed row), and
//! the error for a failed statement.
//!
//! One table per store, `<events>_data_keys`, in the store's own database (SQLite) or schema
//! (PostgreSQL):
//!
//! ```text
//! subject            -- the data subject (nil: the application's own key)
//! key_id             -- 1, 2, …: a data key; 0: the subject's own row
//! wrapped            -- a data key wrapped by the master key (bound to subject and key_id);
//!                    -- NULL on the subject's own row
//! forgotten_through  -- on the subject's own row: keys up to this id were deleted when the
//!                    -- subject was forgotten (0: never forgotten)
//! recorded_at        -- when the key was created, or the subject last forgotten
//! primary key (subject, key_id)
//! ```
//!
//! The subject's own row is what writers of one subject take turns on (PostgreSQL locks it;
//! SQLite serialises every write anyway), and it holds the tombstone that tells a forgotten
//! subject apart from a key that is merely missing.
//!
//! The NATS key store keeps the same things (keys by id, still wrapped, and the tombstone) in
//! one key-value entry per subject, and shares [`Ids`] (next id, tombstone, unwrapping) and the
//! errors with the SQL stores.

use uuid::Uuid;

use crate::error::Error;
use crate::persistence::codec::{DataKey, KeyError, KeyId, MasterKey, SubjectKeys};

/// The data keys table's name: the events table's, with this after it.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) const TABLE_SUFFIX: &str = "_data_keys";

/// One row of the data keys table, as read.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[derive(Debug)]
pub(crate) struct KeyRow {
    pub(crate) key_id: i64,
    pub(crate) wrapped: Option<Vec<u8>>,
    pub(crate) forgotten_through: i64,
}

/// What the rows of one subject say, before any key is unwrapped.
#[derive(Debug, Default)]
pub(crate) struct Ids {
    /// The keys that exist, by id, still wrapped.
    pub(crate) keys: Vec<(KeyId, Vec<u8>)>,
    /// Keys up to this id were deleted when the subject was forgotten.
    pub(crate) forgotten_through: KeyId,
}

impl Ids {
    /// The id the subject's next key gets (see [`SubjectKeys::next_id`]).
    pub(crate) fn next_id(&self) -> Result<KeyId, String> {
        self.keys
            .iter()
            .map(|(id, _)| *id)
            .max()
            .unwrap_or(0)
            .max(self.forgotten_through)
            .checked_add(1)
            .ok_or_else(|| format!("the subject has used every key id up to {}", KeyId::MAX))
    }

    /// The highest id the subject has or had: what forgetting it now records.
    pub(crate) fn highest(&self) -> KeyId {
        self.keys
            .iter()
            .map(|(id, _)| *id)
            .max()
            .unwrap_or(0)
            .max(self.forgotten_through)
    }

    /// Every key unwrapped with `master`.
    pub(crate) fn unwrap(self, master: &MasterKey, subject: Uuid) -> Result<SubjectKeys, KeyError> {
        let keys = self
            .keys
            .into_iter()
            .map(|(id, wrapped)| Ok((id, master.unwrap(subject, id, &wrapped)?)))
            .collect::<Result<Vec<(KeyId, DataKey)>, KeyError>>()?;
        Ok(SubjectKeys {
            keys,
            forgotten_through: self.forgotten_through,
        })
    }
}

/// Reads a subject's rows; a row that breaks the table's rules is an error saying which and
/// why (`Err(message)`).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn ids(rows: impl IntoIterator<Item = KeyRow>) -> Result<Ids, String> {
    let mut ids = Ids::default();
    for row in rows {
        let key_id = KeyId::try_from(row.key_id).map_err(|_| {
            format!(
                "a row has key id {}, outside 0..={}",
                row.key_id,
                KeyId::MAX
            )
        })?;
        let through = KeyId::try_from(row.forgotten_through).map_err(|_| {
            format!(
                "the row of key {key_id} has forgotten_through {}, outside 0..={}",
                row.forgotten_through,
                KeyId::MAX
            )
        })?;
        match (key_id, row.wrapped) {
            (0, None) => ids.forgotten_through = through,
            (0, Some(_)) => return Err("the subject's own row (key id 0) holds a key".into()),
            (id, Some(wrapped)) => ids.keys.push((id, wrapped)),
            (id, None) => return Err(format!("the row of key {id} holds no key")),
        }
    }
    ids.keys.sort_by_key(|(id, _)| *id);
    Ok(ids)
}

/// A malformed row of the keys table, as the source of a storage error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BadKeyRow(pub(crate) String);

/// A key store's failure: `error` (a driver error already mapped to the store's [`Error`],
/// whose context says what was being done) as [`KeyError::Storage`].
pub(crate) fn storage(error: Error) -> KeyError {
    KeyError::Storage(Box::new(error))
}

/// A malformed row as [`KeyError::Storage`], naming the subject and what was being done.
pub(crate) fn bad_rows(backend: &'static str, doing: &str, message: String) -> KeyError {
    storage(Error::backend(
        backend,
        doing.to_owned(),
        BadKeyRow(message),
    ))
}

#[cfg(all(test, any(feature = "sqlite", feature = "postgres")))]
mod tests {
    use super::*;

    fn row(key_id: i64, wrapped: Option<&[u8]>, forgotten_through: i64) -> KeyRow {
        KeyRow {
            key_id,
            wrapped: wrapped.map(<[u8]>::to_vec),
            forgotten_through,
        }
    }

    #[test]
    fn rows_read_back_as_keys_and_a_tombstone() {
        let read = ids([
            row(3, Some(b"c"), 0),
            row(0, None, 2),
            row(1, Some(b"a"), 0),
        ])
        .unwrap();
        assert_eq!(read.keys, vec![(1, b"a".to_vec()), (3, b"c".to_vec())]);
        assert_eq!(
            (read.forgotten_through, read.highest(), read.next_id()),
            (2, 3, Ok(4))
        );
        let empty = ids(Vec::new()).unwrap();
        assert_eq!((empty.highest(), empty.next_id()), (0, Ok(1)));
    }

    #[test]
    fn malformed_rows_are_errors_that_say_what_is_wrong() {
        for (rows, says) in [
            (vec![row(-1, Some(b"k"), 0)], "key id -1"),
            (vec![row(1 << 40, Some(b"k"), 0)], "outside"),
            (vec![row(0, None, -3)], "forgotten_through -3"),
            (vec![row(0, Some(b"k"), 0)], "holds a key"),
            (vec![row(2, None, 0)], "key 2 holds no key"),
        ] {
            let message = ids(rows).unwrap_err();
            assert!(message.contains(says), "{message}");
        }
        let full = Ids {
            keys: vec![(KeyId::MAX, Vec::new())],
            forgotten_through: 0,
        };
        assert!(full.next_id().is_err());
    }

    #[test]
    fn keys_unwrap_only_with_their_master_key() {
        let (master, subject, key) = (MasterKey::generate(), Uuid::now_v7(), DataKey::generate());
        let wrapped = master.wrap(subject, 1, &key);
        let read = || ids([row(1, Some(&wrapped), 0)]).unwrap();
        let keys = read().unwrap(&master, subject).unwrap();
        assert_eq!(keys.get(1), Some(&key));
        assert!(matches!(
            read().unwrap(&MasterKey::generate(), subject),
            Err(KeyError::Unwrap { subject: s, id: 1 }) if s == subject
        ));
    }
}
