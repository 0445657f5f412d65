//! [`PayloadCodec`]: how new payloads are written (format, compression, encryption) and how
//! every stored payload is read, whatever it was written with: each says so in its envelope.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::compression::Compression;
use super::envelope::{self, EnvelopeError, Header, RecordKind, RecordRef, SealWith};
use super::format::{Format, Json, MessagePack};
use super::keys::{APPLICATION_SUBJECT, DataKey, KeyError, KeyId, KeyStore, SubjectKeys};
use crate::domain::event::EventEnum;
use crate::error::{CodecError, DecodeError};
use crate::persistence::record::{ReplayedEvent, StoredEvent};

/// Payloads larger than this (after decompression) are refused by default.
pub const DEFAULT_MAX_PAYLOAD: usize = 64 << 20;

/// How long a subject's keys are kept in memory before they are read again (so a subject
/// forgotten by another process stops decoding here within this time).
pub const DEFAULT_KEY_CACHE_TTL: Duration = Duration::from_secs(60);

/// How payloads are encoded: the format new payloads are written in, whether they are
/// compressed, and whether they are encrypted and with which keys. Reading needs no settings
/// to match: every payload says in its envelope how it was written, so a store written over
/// years with changing settings decodes throughout (encrypted payloads need the key store).
///
/// The default writes plain JSON, exactly as stores without codecs did. Cloning is cheap and
/// clones share the key cache.
///
/// ```
/// use eventsource_core::persistence::codec::{Compression, Format, MemoryKeyStore, PayloadCodec};
///
/// let codec = PayloadCodec::new()
///     .format(Format::MessagePack)
///     .compress(Compression::lz4().above(128))
///     .encrypt(MemoryKeyStore::new());
/// assert_eq!(codec.to_string(), "messagepack, lz4 above 128 bytes, AES-256-GCM");
/// ```
#[derive(Clone, Default)]
pub struct PayloadCodec {
    settings: Arc<Settings>,
}

#[derive(Clone)]
struct Settings {
    format: Format,
    compression: Option<Compression>,
    keys: Option<Arc<KeyRing>>,
    max_payload: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            format: Format::Json,
            compression: None,
            keys: None,
            max_payload: DEFAULT_MAX_PAYLOAD,
        }
    }
}

impl fmt::Debug for PayloadCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayloadCodec")
            .field("format", &self.settings.format)
            .field("compression", &self.settings.compression)
            .field("key_store", &self.settings.keys.as_ref().map(|k| &k.store))
            .field("max_payload", &self.settings.max_payload)
            .finish()
    }
}

impl fmt::Display for PayloadCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.settings.format.name())?;
        if let Some(compression) = &self.settings.compression {
            write!(
                f,
                ", {} above {} bytes",
                compression.name(),
                compression.threshold()
            )?;
        }
        if self.settings.keys.is_some() {
            f.write_str(", AES-256-GCM")?;
        }
        Ok(())
    }
}

/// Keys fetched from the key store, per subject, for a while.
struct KeyRing {
    store: Arc<dyn KeyStore>,
    ttl: Duration,
    cache: Mutex<HashMap<Uuid, Cached>>,
}

struct Cached {
    keys: SubjectKeys,
    fetched: Instant,
}

/// Keys fetched this recently serve the decode or encode that fetched them, whatever the time
/// to live (with a TTL shorter than the time between fetching and using them, that decode would
/// fetch them again forever).
const IN_USE: Duration = Duration::from_secs(1);

impl KeyRing {
    /// `look` applied to the subject's keys in memory, to decode or encode with now, without
    /// copying the key list: what every payload sealed or opened asks.
    fn with_fresh<T>(&self, subject: Uuid, look: impl FnOnce(&SubjectKeys) -> T) -> Option<T> {
        let max_age = self.ttl.max(IN_USE);
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .get(&subject)
            .filter(|c| c.fetched.elapsed() < max_age)
            .map(|c| look(&c.keys))
    }

    /// The subject's keys in memory if fetched less than `max_age` ago.
    fn cached(&self, subject: Uuid, max_age: Duration) -> Option<SubjectKeys> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .get(&subject)
            .filter(|c| c.fetched.elapsed() < max_age)
            .map(|c| c.keys.clone())
    }

    fn remember(&self, subject: Uuid, keys: SubjectKeys) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() > 100_000 {
            let ttl = self.ttl;
            cache.retain(|_, c| c.fetched.elapsed() < ttl);
        }
        cache.insert(
            subject,
            Cached {
                keys,
                fetched: Instant::now(),
            },
        );
    }

    fn forget_cached(&self, subject: Uuid) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.remove(&subject);
    }

    /// The subject's keys, from the cache (if younger than the TTL) or the store.
    async fn load(&self, subject: Uuid) -> Result<SubjectKeys, KeyError> {
        if let Some(keys) = self.cached(subject, self.ttl) {
            return Ok(keys);
        }
        let keys = self.store.keys(subject).await?;
        self.remember(subject, keys.clone());
        Ok(keys)
    }

    /// The subject's keys with at least one to write with.
    async fn load_for_writing(&self, subject: Uuid) -> Result<SubjectKeys, KeyError> {
        let keys = self.load(subject).await?;
        if keys.newest().is_some() {
            return Ok(keys);
        }
        self.store.current_key(subject).await?;
        let keys = self.store.keys(subject).await?;
        self.remember(subject, keys.clone());
        Ok(keys)
    }
}

/// The error for an event payload sealed in layers, which only snapshots are.
fn layered_event() -> DecodeError {
    EnvelopeError::Malformed {
        message: "an event's payload is sealed in layers, as only snapshots are".into(),
    }
    .into()
}

/// A decode that can't finish without keys that are not in memory yet.
#[derive(Debug)]
pub(crate) enum Pending {
    /// Decoding failed.
    Failed(DecodeError),
    /// The keys of this subject must be loaded first ([`PayloadCodec::load_keys`]).
    NeedsKeys(Uuid),
}

impl From<DecodeError> for Pending {
    fn from(error: DecodeError) -> Self {
        Pending::Failed(error)
    }
}

/// What the key cache holds for a payload's key.
enum Lookup {
    Found(DataKey),
    Forgotten,
    /// Newer than every key the cache knows.
    Newer,
    /// Older than the newest known, and not forgotten.
    Missing,
}

/// What a payload's envelope opened to.
enum Opened {
    /// The body, in this format.
    Body(Format, Vec<u8>),
    /// A layer: another envelope, to open in turn.
    Layer(Vec<u8>),
    /// The subject's key was deleted: the payload is forgotten.
    Forgotten(Uuid),
}

impl PayloadCodec {
    /// Plain JSON, uncompressed, unencrypted: the default.
    pub fn new() -> Self {
        Self::default()
    }

    fn with(mut self, f: impl FnOnce(&mut Settings)) -> Self {
        f(Arc::make_mut(&mut self.settings));
        self
    }

    /// Writes new payloads in `format`.
    pub fn format(self, format: Format) -> Self {
        self.with(|s| s.format = format)
    }

    /// Compresses new payloads (those at least the threshold long that get smaller).
    pub fn compress(self, compression: Compression) -> Self {
        self.with(|s| s.compression = Some(compression))
    }

    /// Encrypts new payloads with AES-256-GCM, with keys from `keys`: an event marked
    /// `#[event(personal)]` with its data subject's key, every other payload with the
    /// application's key ([`APPLICATION_SUBJECT`]). Also needed to read encrypted payloads.
    pub fn encrypt(self, keys: impl KeyStore) -> Self {
        self.encrypt_with(Arc::new(keys))
    }

    /// [`encrypt`](Self::encrypt) with a key store shared with other code.
    pub fn encrypt_with(self, keys: Arc<dyn KeyStore>) -> Self {
        self.with(|s| {
            s.keys = Some(Arc::new(KeyRing {
                store: keys,
                ttl: DEFAULT_KEY_CACHE_TTL,
                cache: Mutex::default(),
            }));
        })
    }

    /// How long keys stay in memory before they are read again (default
    /// [`DEFAULT_KEY_CACHE_TTL`]). A subject forgotten by another process still decodes here
    /// for up to this long. Zero reads them again for every load (keys a load fetched serve
    /// that load for up to a second). Call after [`encrypt`](Self::encrypt).
    pub fn key_cache_ttl(self, ttl: Duration) -> Self {
        self.with(|s| {
            if let Some(ring) = &s.keys {
                s.keys = Some(Arc::new(KeyRing {
                    store: ring.store.clone(),
                    ttl,
                    cache: Mutex::default(),
                }));
            }
        })
    }

    /// Refuses payloads that are (or decompress to) more than `bytes` (default
    /// [`DEFAULT_MAX_PAYLOAD`]).
    pub fn max_payload(self, bytes: usize) -> Self {
        self.with(|s| s.max_payload = bytes)
    }

    /// The key store, if payloads are encrypted.
    pub fn key_store(&self) -> Option<&Arc<dyn KeyStore>> {
        self.settings.keys.as_ref().map(|ring| &ring.store)
    }

    /// The format new payloads are written in.
    pub fn written_format(&self) -> Format {
        self.settings.format
    }

    /// Loads the keys of `subjects` into memory (reads need them before decoding synchronously).
    pub(crate) async fn load_keys(
        &self,
        subjects: impl IntoIterator<Item = Uuid>,
    ) -> Result<(), KeyError> {
        if let Some(ring) = &self.settings.keys {
            for subject in subjects {
                ring.load(subject).await?;
            }
        }
        Ok(())
    }

    /// Loads the keys new payloads of `subjects` (and the application's) are encrypted with,
    /// creating them if needed.
    pub(crate) async fn load_keys_for_writing(
        &self,
        subjects: impl IntoIterator<Item = Uuid>,
    ) -> Result<(), KeyError> {
        if let Some(ring) = &self.settings.keys {
            ring.load_for_writing(APPLICATION_SUBJECT).await?;
            for subject in subjects {
                ring.load_for_writing(subject).await?;
            }
        }
        Ok(())
    }

    /// Adds a key to `subject`, which its new records use from now on. Older records stay
    /// readable with their own keys. Fails with [`KeyError::Storage`] if nothing is encrypted.
    pub async fn rotate_key(&self, subject: Uuid) -> Result<KeyId, KeyError> {
        let ring = self.ring()?;
        let id = ring.store.rotate(subject).await?;
        ring.forget_cached(subject);
        Ok(id)
    }

    /// Deletes `subject`'s keys: its encrypted records decode as forgotten from now on (through
    /// this codec and its clones at once; through other codecs, in this process or others,
    /// once their cached keys expire: see [`key_cache_ttl`](Self::key_cache_ttl)). Returns how
    /// many keys were deleted. [`Repository::forget`](crate::Repository::forget) also drops
    /// snapshots and cached states and records that it happened.
    pub async fn forget_keys(&self, subject: Uuid) -> Result<usize, KeyError> {
        let ring = self.ring()?;
        let deleted = ring.store.forget(subject).await;
        ring.forget_cached(subject);
        deleted
    }

    fn ring(&self) -> Result<&KeyRing, KeyError> {
        self.settings.keys.as_deref().ok_or_else(|| {
            KeyError::Storage(
                "payloads are not encrypted: configure a key store with `PayloadCodec::encrypt`"
                    .into(),
            )
        })
    }

    /// The key (in memory) new payloads of `subject` are sealed with.
    fn sealing_key(&self, subject: Uuid) -> Result<Option<(KeyId, DataKey)>, Uuid> {
        let Some(ring) = &self.settings.keys else {
            return Ok(None);
        };
        let newest = ring
            .with_fresh(subject, |keys| {
                keys.newest().map(|(id, key)| (id, key.clone()))
            })
            .flatten()
            .ok_or(subject)?;
        Ok(Some(newest))
    }

    /// Seals `body` (in the written format) for `record`, with `subject`'s key if encrypting.
    /// `Err(subject)` if that key is not in memory ([`load_keys_for_writing`] first).
    fn seal_body(
        &self,
        record: &RecordRef<'_>,
        subject: Uuid,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, Uuid> {
        let key = self.sealing_key(subject)?;
        let (compressed, body) = match self
            .settings
            .compression
            .as_ref()
            .and_then(|c| c.compress(&body))
        {
            Some((algorithm, compressed)) => (Some(algorithm), compressed),
            None => (None, body),
        };
        let with = key.as_ref().map(|(key_id, key)| SealWith {
            subject,
            key_id: *key_id,
            key,
        });
        Ok(envelope::seal(
            record,
            self.settings.format,
            compressed,
            with,
            body,
        ))
    }

    /// Encodes an event's payload for the record at `stream`/`version`. The keys must be in
    /// memory ([`load_keys_for_writing`] with the event's subject).
    pub(crate) fn encode_event<E: EventEnum>(
        &self,
        event: &E,
        stream: Uuid,
        version: u64,
    ) -> Result<Vec<u8>, CodecError> {
        let body = match self.settings.format {
            Format::Json => event.encode(&Json)?,
            Format::MessagePack => event.encode(&MessagePack)?,
        };
        let subject = event
            .data_subject()
            .resolve(stream)
            .unwrap_or(APPLICATION_SUBJECT);
        let record = RecordRef {
            kind: RecordKind::Event,
            stream_id: stream,
            version,
            name: event.name(),
            schema: u64::from(event.schema_version()),
        };
        self.seal_body(&record, subject, body).map_err(|subject| {
            CodecError::new(
                "encryption",
                format!("the key of subject {subject} was not loaded before encoding"),
            )
        })
    }

    /// Encodes a snapshot's state (already in the written format: see
    /// [`encode_state`](Self::encode_state)) for `stream` at `version`, with the stream's key if
    /// `personal` (the aggregate has personal events), else the application's.
    pub(crate) fn seal_snapshot(
        &self,
        record: &RecordRef<'_>,
        subject: Uuid,
        others: &[Uuid],
        state: Vec<u8>,
    ) -> Result<Vec<u8>, CodecError> {
        let not_loaded = |subject: Uuid| {
            CodecError::new(
                "encryption",
                format!("the key of subject {subject} was not loaded before encoding"),
            )
        };
        let mut sealed = self.seal_body(record, subject, state).map_err(not_loaded)?;
        for &other in others {
            let Some((key_id, key)) = self.sealing_key(other).map_err(not_loaded)? else {
                break;
            };
            let with = SealWith {
                subject: other,
                key_id,
                key: &key,
            };
            sealed = envelope::seal_layer(record, with, sealed);
        }
        Ok(sealed)
    }

    /// Opens a payload's envelope, with keys already in memory.
    fn open(&self, record: &RecordRef<'_>, payload: &[u8]) -> Result<Opened, Pending> {
        let header: Header = envelope::header(payload).map_err(DecodeError::from)?;
        let key = match (header.key, &self.settings.keys) {
            (None, _) | (Some(_), None) => None,
            (Some((subject, key_id)), Some(ring)) => {
                let found = ring
                    .with_fresh(subject, |keys| match keys.get(key_id) {
                        Some(key) => Lookup::Found(key.clone()),
                        None if key_id <= keys.forgotten_through
                            && subject != APPLICATION_SUBJECT =>
                        {
                            Lookup::Forgotten
                        }
                        None if key_id >= keys.next_id() => Lookup::Newer,
                        None => Lookup::Missing,
                    })
                    .ok_or(Pending::NeedsKeys(subject))?;
                match found {
                    Lookup::Found(key) => Some(key),
                    Lookup::Forgotten => return Ok(Opened::Forgotten(subject)),
                    // Newer than every key the cache knows: another process may have added it
                    // since (a rotation, a subject that came back). Read the keys again
                    // (`load_keys_or_fail` says if the key store doesn't have it either).
                    Lookup::Newer => {
                        ring.forget_cached(subject);
                        return Err(Pending::NeedsKeys(subject));
                    }
                    Lookup::Missing => {
                        return Err(DecodeError::from(EnvelopeError::KeyMissing {
                            subject,
                            key_id,
                        })
                        .into());
                    }
                }
            }
        };
        let body = envelope::open(
            record,
            payload,
            &header,
            key.as_ref(),
            self.settings.max_payload,
        )
        .map_err(DecodeError::from)?;
        if header.layer {
            return Ok(Opened::Layer(body));
        }
        Ok(Opened::Body(header.format, body))
    }

    /// Decodes an event lent by a replay with the keys in memory; [`Pending::NeedsKeys`] if
    /// its key isn't.
    pub(crate) fn decode_now<E: EventEnum>(&self, event: ReplayedEvent<'_>) -> Result<E, Pending> {
        let record = RecordRef {
            kind: RecordKind::Event,
            stream_id: event.stream_id,
            version: event.version,
            name: event.name,
            schema: u64::from(event.schema_version),
        };
        // The common case, plain JSON, decodes straight from the stored bytes.
        if event.payload.first() != Some(&0) {
            return Ok(E::decode(
                &Json,
                event.name,
                event.schema_version,
                event.payload,
            )?);
        }
        match self.open(&record, event.payload)? {
            Opened::Forgotten(subject) => {
                Ok(E::forgotten(event.name, event.schema_version, subject)?)
            }
            Opened::Layer(_) => Err(Pending::Failed(layered_event())),
            Opened::Body(Format::Json, body) => {
                Ok(E::decode(&Json, event.name, event.schema_version, &body)?)
            }
            Opened::Body(Format::MessagePack, body) => Ok(E::decode(
                &MessagePack,
                event.name,
                event.schema_version,
                &body,
            )?),
        }
    }

    /// Decodes a stored event, loading its key first if needed.
    pub async fn decode<E: EventEnum>(&self, stored: &StoredEvent) -> Result<E, DecodeError> {
        loop {
            match self.decode_now(stored.replayed()) {
                Ok(event) => return Ok(event),
                Err(Pending::Failed(error)) => return Err(error),
                Err(Pending::NeedsKeys(subject)) => {
                    self.load_keys_or_fail(&stored.payload, subject).await?
                }
            }
        }
    }

    /// Loads `subject`'s keys for decoding the record whose stored bytes are `payload`; a key
    /// store failure is a decode error naming the key.
    pub(crate) async fn load_keys_or_fail(
        &self,
        payload: &[u8],
        subject: Uuid,
    ) -> Result<(), DecodeError> {
        let Some(ring) = &self.settings.keys else {
            return Ok(());
        };
        let named = envelope::header(payload).ok().and_then(|h| h.key);
        match ring.load(subject).await {
            // Read just now, and the key the record names is not there: the key store doesn't
            // have it (asking again would find nothing new).
            Ok(keys)
                if named.is_some_and(|(s, id)| {
                    s == subject && keys.get(id).is_none() && id >= keys.next_id()
                }) =>
            {
                let key_id = named.map_or(0, |(_, id)| id);
                Err(EnvelopeError::KeyMissing { subject, key_id }.into())
            }
            Ok(_) => Ok(()),
            Err(error) => {
                let key_id = named.map_or(0, |(_, id)| id);
                Err(EnvelopeError::KeyStore {
                    subject,
                    key_id,
                    message: error.to_string(),
                }
                .into())
            }
        }
    }

    /// Loads the keys every record of `events` is encrypted with, so they decode without
    /// waiting (a projector's batch). Best effort: a key that doesn't load here is asked for
    /// again by the record that needs it, whose decode error then names it.
    pub(crate) async fn load_keys_of(&self, events: &[StoredEvent]) {
        let Some(ring) = &self.settings.keys else {
            return;
        };
        let mut subjects: Vec<Uuid> = Vec::new();
        for stored in events {
            if let Ok(Header {
                key: Some((subject, _)),
                ..
            }) = envelope::header(&stored.payload)
                && !subjects.contains(&subject)
                && ring.cached(subject, ring.ttl).is_none()
            {
                subjects.push(subject);
            }
        }
        for subject in subjects {
            if ring.load(subject).await.is_err() {
                return;
            }
        }
    }

    /// A snapshot's state body (in its format), opened with the keys in memory; `Ok(None)` if
    /// its key was forgotten.
    pub(crate) fn open_snapshot(
        &self,
        stream: Uuid,
        version: u64,
        aggregate: &str,
        fingerprint: u64,
        state: &[u8],
    ) -> Result<Option<(Format, Vec<u8>)>, Pending> {
        let record = RecordRef {
            kind: RecordKind::Snapshot,
            stream_id: stream,
            version,
            name: aggregate,
            schema: fingerprint,
        };
        let mut opened = self.open(&record, state)?;
        loop {
            match opened {
                Opened::Body(format, body) => return Ok(Some((format, body))),
                Opened::Forgotten(_) => return Ok(None),
                Opened::Layer(inner) => opened = self.open(&record, &inner)?,
            }
        }
    }

    /// The subject whose key a payload is encrypted with, if it is encrypted.
    pub fn subject_of(payload: &[u8]) -> Option<Uuid> {
        envelope::header(payload)
            .ok()?
            .key
            .map(|(subject, _)| subject)
    }

    /// Shows a stored event's payload as JSON, whatever its format, compression and
    /// encryption (for tools: the CLI, the catalog, a debugging session). `Ok(None)` if its
    /// subject was forgotten.
    pub async fn to_json(
        &self,
        stored: &StoredEvent,
    ) -> Result<Option<serde_json::Value>, DecodeError> {
        let record = RecordRef {
            kind: RecordKind::Event,
            stream_id: stored.stream_id,
            version: stored.version,
            name: &stored.name,
            schema: u64::from(stored.schema_version),
        };
        loop {
            match self.open(&record, &stored.payload) {
                Ok(Opened::Body(format, body)) => return Ok(Some(format.to_json(&body)?)),
                Ok(Opened::Forgotten(_)) => return Ok(None),
                Ok(Opened::Layer(_)) => return Err(layered_event()),
                Err(Pending::Failed(error)) => return Err(error),
                Err(Pending::NeedsKeys(subject)) => {
                    self.load_keys_or_fail(&stored.payload, subject).await?
                }
            }
        }
    }
}
