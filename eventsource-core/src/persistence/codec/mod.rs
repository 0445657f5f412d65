//! Codecs: how events and snapshots become stored bytes and back.
//!
//! Two layers:
//! - a [`Codec`] is a serde format ([`Json`], [`MessagePack`]); the code the derives generate
//!   encodes and decodes through it, and function upcasters work on a [`serde_json::Value`],
//!   which any self-describing format decodes into;
//! - a [`PayloadCodec`] wraps the format's bytes in an envelope that says how they were
//!   written ([`envelope`]): the format, the compression ([`Compression`]) and the encryption
//!   (AES-256-GCM, with a key per data subject from a [`KeyStore`], bound to its record).
//!   Reading follows the envelope, so settings can change over the years and every record
//!   still decodes. Plain JSON has no envelope, so default stores stay readable in SQL.

mod cipher;
mod compression;
pub mod envelope;
mod format;
mod keys;
mod payloads;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::CodecError;

pub use compression::{Compression, DEFAULT_THRESHOLD};
pub use envelope::{EnvelopeError, RecordKind, RecordRef};
pub use format::{Format, Json, MessagePack};
pub use keys::{
    APPLICATION_SUBJECT, DataKey, KeyError, KeyId, KeyStore, MasterKey, MemoryKeyStore, SubjectKeys,
};
pub(crate) use payloads::Pending;
pub use payloads::{DEFAULT_KEY_CACHE_TTL, DEFAULT_MAX_PAYLOAD, PayloadCodec};

/// A serde format for payloads.
pub trait Codec: Send + Sync + 'static {
    /// The codec's name, used in error messages.
    const NAME: &'static str;

    /// Encodes a value.
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError>;

    /// Decodes a value.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError>;
}
