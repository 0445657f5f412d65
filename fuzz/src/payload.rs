//! What the `payload_envelope` target and its seed generator (`examples/payload_seeds.rs`)
//! share: the input's framing, a key store whose keys are known (so that payloads sealed by a
//! codec in one run open in another), and the codec settings payloads are written with.

use std::sync::Arc;
use std::time::SystemTime;

use eventsource_core::persistence::codec::{
    APPLICATION_SUBJECT, Compression, DataKey, Format, KeyError, KeyId, KeyStore, PayloadCodec,
    SubjectKeys,
};
use eventsource_core::{EventEnum, EventStore, MemoryStore, Position, StoredEvent, Uuid};

/// The stream every input's record belongs to.
pub const STREAM: Uuid = Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_00e1);

/// A subject the key store says was forgotten (its keys 1 and 2 deleted).
pub const FORGOTTEN_SUBJECT: Uuid = Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0f06);

/// The reading codec's limit: a payload may not be (or decompress to) more than this.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// The application's one data key (key id 1): fixed, so seeds written once stay valid.
const APPLICATION_KEY: [u8; 32] = *b"eventsource fuzz application key";

/// [`STREAM`]'s keys 1 and 2 (its personal events, `Opened`, are written with key 2).
const STREAM_KEYS: [[u8; 32]; 2] = [
    *b"eventsource fuzz stream key no 1",
    *b"eventsource fuzz stream key no 2",
];

/// A key store with fixed contents: the application's key 1, keys 1 and 2 of [`STREAM`] (the
/// account's own subject), a forgotten subject, and nothing for anyone else (a payload naming
/// another subject's key is a `KeyMissing` error).
#[derive(Debug, Clone, Copy, Default)]
pub struct FixedKeys;

#[eventsource_core::async_trait]
impl KeyStore for FixedKeys {
    async fn keys(&self, subject: Uuid) -> Result<SubjectKeys, KeyError> {
        Ok(match subject {
            APPLICATION_SUBJECT => SubjectKeys {
                keys: vec![(1, DataKey::from_bytes(APPLICATION_KEY))],
                forgotten_through: 0,
            },
            STREAM => SubjectKeys {
                keys: vec![
                    (1, DataKey::from_bytes(STREAM_KEYS[0])),
                    (2, DataKey::from_bytes(STREAM_KEYS[1])),
                ],
                forgotten_through: 0,
            },
            FORGOTTEN_SUBJECT => SubjectKeys {
                keys: Vec::new(),
                forgotten_through: 2,
            },
            _ => SubjectKeys::default(),
        })
    }

    async fn current_key(&self, subject: Uuid) -> Result<(KeyId, DataKey), KeyError> {
        let keys = self.keys(subject).await?;
        let (id, key) = keys
            .newest()
            .ok_or_else(|| KeyError::Storage("the fuzz key store makes no keys".into()))?;
        Ok((id, key.clone()))
    }

    async fn rotate(&self, _: Uuid) -> Result<KeyId, KeyError> {
        Err(KeyError::Storage("the fuzz key store is fixed".into()))
    }

    async fn forget(&self, _: Uuid) -> Result<usize, KeyError> {
        Err(KeyError::Storage("the fuzz key store is fixed".into()))
    }
}

/// The codec the target reads with: any format, compression and encryption, the fixed keys,
/// [`MAX_PAYLOAD`]. A new one per input, so every input goes through loading its keys.
pub fn reader() -> PayloadCodec {
    PayloadCodec::new()
        .encrypt(FixedKeys)
        .max_payload(MAX_PAYLOAD)
}

/// Every combination of format, compression (threshold 0, so that every payload that shrinks
/// is compressed) and encryption, named like `msgpack+zstd+aes`.
pub fn writers() -> Vec<(String, PayloadCodec)> {
    let mut writers = Vec::new();
    for format in [Format::Json, Format::MessagePack] {
        let compressions = [
            None,
            Some(Compression::lz4().above(0)),
            Some(Compression::zstd(3).above(0)),
        ];
        for compression in compressions {
            for encrypted in [false, true] {
                let mut name = String::from(match format {
                    Format::MessagePack => "msgpack",
                    _ => "json",
                });
                let mut codec = PayloadCodec::new().format(format);
                if let Some(compression) = compression {
                    name = format!("{name}+{}", compression.name());
                    codec = codec.compress(compression);
                }
                if encrypted {
                    name.push_str("+aes");
                    codec = codec.encrypt(FixedKeys);
                }
                writers.push((name, codec));
            }
        }
    }
    writers
}

/// Whose payload an input is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An event of [`STREAM`] at `version`.
    Event {
        /// The stored name.
        name: String,
        /// The version in the stream.
        version: u64,
        /// The schema version.
        schema_version: u32,
    },
    /// The account's snapshot at version 1 of [`STREAM`].
    Snapshot,
}

/// An input: three header bytes, then the stored payload.
///
/// - byte 0: odd for a snapshot; even for an event, whose name is the bank account's event
///   number `byte / 2` (an unknown name beyond them);
/// - byte 1: the event's version in the stream;
/// - byte 2: the event's schema version.
///
/// Missing header bytes count as 0.
#[derive(Debug)]
pub struct Input<'a> {
    /// The record.
    pub record: Record,
    /// The payload, as a store would return it.
    pub payload: &'a [u8],
}

/// The bank account's event names, in the enum's order.
fn names() -> &'static [&'static str] {
    <eventsource_examples::bank::BankAccountEvent as EventEnum>::NAMES
}

impl<'a> Input<'a> {
    /// Reads an input.
    pub fn parse(data: &'a [u8]) -> Self {
        let byte = |i: usize| data.get(i).copied().unwrap_or(0);
        let record = if byte(0) % 2 == 1 {
            Record::Snapshot
        } else {
            Record::Event {
                name: crate::pick_name(byte(0) / 2, "Unknown").to_owned(),
                version: u64::from(byte(1)),
                schema_version: u32::from(byte(2)),
            }
        };
        Input {
            record,
            payload: data.get(3..).unwrap_or_default(),
        }
    }
}

/// The input bytes for `payload` of `record` (the inverse of [`Input::parse`] for records it
/// can express: a known name, a version and schema version below 256).
pub fn frame(record: &Record, payload: &[u8]) -> Option<Vec<u8>> {
    let header = match record {
        Record::Snapshot => [1, 0, 0],
        Record::Event {
            name,
            version,
            schema_version,
        } => {
            let index = names().iter().position(|n| n == name)?;
            [
                u8::try_from(index * 2).ok()?,
                u8::try_from(*version).ok()?,
                u8::try_from(*schema_version).ok()?,
            ]
        }
    };
    let mut data = header.to_vec();
    data.extend_from_slice(payload);
    Some(data)
}

/// A stored event of [`STREAM`] as a store would return it.
pub fn stored_event(name: &str, version: u64, schema_version: u32, payload: &[u8]) -> StoredEvent {
    StoredEvent {
        id: Uuid::nil(),
        stream_id: STREAM,
        category: "BankAccount".to_owned(),
        version,
        name: name.to_owned(),
        schema_version,
        payload: payload.to_vec(),
        metadata: Default::default(),
        recorded_at: SystemTime::UNIX_EPOCH,
        position: Position::START,
    }
}

/// An empty memory store behind the trait.
pub fn memory_store() -> Arc<dyn EventStore> {
    Arc::new(MemoryStore::new())
}
