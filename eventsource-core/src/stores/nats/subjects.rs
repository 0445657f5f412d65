//! The subject layout: which subject each event, tracking record and snapshot is stored under.
//!
//! Everything of one store lives under its prefix `P` (the store's name):
//!
//! | subject | what | JetStream stream |
//! |---|---|---|
//! | `P.e.<category>.<stream id>` | the events of one stream, one message each | `P` |
//! | `P.t.<tracker>` | a tracker's recorded positions, one message per tracked append | `P` |
//! | `P.s.<stream id>.<version>` | the snapshot of a stream at a version (one message per subject) | `P-snapshots` |
//!
//! A stream id is its UUID in hyphenated lower case. A category or tracker name made only of
//! ASCII letters, digits and `-` is its own token (`BankAccount`); any other name (empty,
//! unicode, with dots or spaces) is `_` followed by the hex of its UTF-8 bytes, so every name
//! maps to exactly one valid subject token and no two names to the same one.

use uuid::Uuid;

use crate::error::{Error, Result};

/// The subjects of one store.
#[derive(Debug, Clone)]
pub(super) struct Subjects {
    prefix: String,
}

impl Subjects {
    /// The subjects under `prefix`, which must be a valid store name (see [`check_name`]).
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The subjects the events stream captures.
    pub(super) fn event_stream_subjects(&self) -> Vec<String> {
        vec![self.all_events(), format!("{}.t.>", self.prefix)]
    }

    /// The subjects the snapshots stream captures.
    pub(super) fn snapshot_stream_subjects(&self) -> Vec<String> {
        vec![format!("{}.s.>", self.prefix)]
    }

    /// Every event of every stream.
    pub(super) fn all_events(&self) -> String {
        format!("{}.e.>", self.prefix)
    }

    /// The events of one category.
    pub(super) fn category(&self, category: &str) -> String {
        format!("{}.e.{}.*", self.prefix, token(category))
    }

    /// The subject one stream's events are published to.
    pub(super) fn stream(&self, category: &str, stream: Uuid) -> String {
        format!("{}.e.{}.{}", self.prefix, token(category), stream)
    }

    /// One stream's events whatever their category: the subject its concurrency check and its
    /// reads use.
    pub(super) fn stream_any_category(&self, stream: Uuid) -> String {
        format!("{}.e.*.{}", self.prefix, stream)
    }

    /// A tracker's records.
    pub(super) fn tracker(&self, tracker: &str) -> String {
        format!("{}.t.{}", self.prefix, token(tracker))
    }

    /// The key of a tracker's claim in the claims bucket.
    pub(super) fn claim_key(&self, tracker: &str) -> String {
        token(tracker)
    }

    /// The snapshot of `stream` at `version`.
    pub(super) fn snapshot(&self, stream: Uuid, version: u64) -> String {
        format!("{}.s.{}.{}", self.prefix, stream, version)
    }

    /// Every snapshot of `stream`.
    pub(super) fn snapshots_of(&self, stream: Uuid) -> String {
        format!("{}.s.{}.*", self.prefix, stream)
    }

    /// The version a snapshot subject names, if it is one of `stream`'s.
    pub(super) fn snapshot_version(&self, stream: Uuid, subject: &str) -> Option<u64> {
        subject
            .strip_prefix(&format!("{}.s.{}.", self.prefix, stream))?
            .parse()
            .ok()
    }
}

/// The subject token for a category or tracker name (see the module docs).
fn token(name: &str) -> String {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return name.to_owned();
    }
    let mut token = String::with_capacity(1 + 2 * name.len());
    token.push('_');
    for byte in name.bytes() {
        token.push_str(&format!("{byte:02x}"));
    }
    token
}

/// Checks a store name: it names the JetStream streams and prefixes every subject, so it must be
/// ASCII letters, digits, `-` and `_` only.
pub(super) fn check_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(Error::Config {
            backend: super::BACKEND,
            message: format!(
                "the store name `{name}` must be 1 to 64 ASCII letters, digits, `-` or `_`: it names the JetStream streams and prefixes every subject"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_their_own_token_and_every_other_name_is_hex() {
        assert_eq!(token("BankAccount"), "BankAccount");
        assert_eq!(token("order-line"), "order-line");
        assert_eq!(token(""), "_");
        assert_eq!(token("a.b"), "_612e62");
        assert_eq!(token("é"), "_c3a9");
        // `_` never starts a plain token, so a hex token can't collide with a plain name.
        assert_ne!(token("_61"), "_61");
        assert_ne!(token("_61"), token("a"));
    }

    #[test]
    fn the_layout_separates_events_tracking_and_snapshots() {
        let subjects = Subjects::new("bank");
        let id = Uuid::nil();
        assert_eq!(
            subjects.stream("Account", id),
            "bank.e.Account.00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(subjects.category("Account"), "bank.e.Account.*");
        assert_eq!(subjects.tracker("ledger"), "bank.t.ledger");
        let snapshot = subjects.snapshot(id, 7);
        assert_eq!(subjects.snapshot_version(id, &snapshot), Some(7));
        assert_eq!(subjects.snapshot_version(Uuid::max(), &snapshot), None);
    }

    #[test]
    fn store_names_must_be_subject_and_stream_safe() {
        assert!(check_name("eventsource_test-1").is_ok());
        for bad in ["", "a.b", "a b", "a*", "a>", "é"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
