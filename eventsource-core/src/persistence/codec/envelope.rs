//! The envelope: how a stored payload says how it was encoded, so records written over years
//! with changing settings all decode.
//!
//! A plain JSON payload has no envelope: it is the JSON document itself (what every record
//! written before codecs existed holds, and what the default settings still write, so the
//! database stays readable with `CAST(payload AS TEXT)`). Every other payload starts with a
//! NUL byte, which no JSON document does, followed by a header:
//!
//! | bytes | field | values |
//! |---|---|---|
//! | 0 | marker | `0x00` |
//! | 1 | envelope version | `1` |
//! | 2 | format | `0` JSON, `1` MessagePack |
//! | 3 | compression | `0` none, `1` LZ4 block (length first), `2` Zstandard frame |
//! | 4 | cipher | `0` none, `1` AES-256-GCM |
//! | 5–20 | subject (with a cipher) | the data subject whose key encrypts it; nil: the application's key |
//! | 21–24 | key id (with a cipher) | big-endian |
//! | 25–36 | nonce (with a cipher) | random per payload |
//!
//! then the body: the format's bytes, compressed if the header says so, then encrypted if it
//! says so (with a 16-byte tag at the end).
//!
//! A snapshot whose state holds the data of people other than its stream's subject (events
//! marked `personal(subject = field)`) is sealed again for each of them: a layer whose format
//! byte is `0xff` and whose body, once decrypted with that person's key, is the next envelope.
//! Forgetting any one of them makes the snapshot unreadable, and the state is replayed. The associated data of the encryption is the whole
//! header and the record it belongs to ([`RecordRef`]: event or snapshot, stream, version, name
//! and schema version), so a tampered header, a changed byte, a ciphertext copied to another
//! record and a wrong key each fail authentication.

use uuid::Uuid;

use super::cipher::{self, NONCE_LEN};
use super::compression::Algorithm;
use super::format::Format;
use super::keys::{DataKey, KeyId};

const MARKER: u8 = 0x00;
const VERSION: u8 = 1;
const CIPHER_NONE: u8 = 0;
const CIPHER_AES_256_GCM: u8 = 1;
/// The format byte of a layer: the body is another envelope.
const FORMAT_LAYER: u8 = 0xff;
/// Marker, version, format, compression, cipher.
const FIXED_LEN: usize = 5;
/// With a cipher: the fixed part, subject, key id, nonce.
const SEALED_LEN: usize = FIXED_LEN + 16 + 4 + NONCE_LEN;

/// Why a payload's envelope could not be opened. Wrapped in the error that names the record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The header is cut short or malformed.
    #[error("the payload's envelope is malformed: {message}")]
    Malformed {
        /// What was wrong.
        message: String,
    },
    /// The header names an encoding this build doesn't have.
    #[error("the payload uses {what} `{name}`, which this build can't read: {hint}")]
    Unsupported {
        /// What it is (`format`, `compression`, `cipher`, `envelope version`).
        what: &'static str,
        /// Its name or id.
        name: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// The compressed body doesn't decompress.
    #[error("the payload does not decompress ({algorithm}): {message}")]
    Decompress {
        /// The algorithm.
        algorithm: &'static str,
        /// What the decompressor said.
        message: String,
    },
    /// The body would decompress to more than the codec's limit.
    #[error(
        "the payload would decompress to {declared} bytes, more than the limit of {limit}; raise `PayloadCodec::max_payload` if that is expected"
    )]
    TooLarge {
        /// The size it declares (or reached).
        declared: u64,
        /// The limit.
        limit: usize,
    },
    /// The payload is encrypted, and this codec has no key store to decrypt it with.
    #[error(
        "the payload is encrypted (key {key_id} of subject {subject}), and no key store is configured: set `PayloadCodec::encrypt`"
    )]
    NoKeyStore {
        /// The key's subject.
        subject: Uuid,
        /// The key's id.
        key_id: KeyId,
    },
    /// The key the payload names does not exist, and its subject was never forgotten: the key
    /// store is not the one the payload was written with (or lost keys).
    #[error(
        "key {key_id} of subject {subject} is not in the key store, and the subject was never forgotten: is this the key store (and database) the payload was written with?"
    )]
    KeyMissing {
        /// The key's subject.
        subject: Uuid,
        /// The key's id.
        key_id: KeyId,
    },
    /// The key store failed while fetching the key.
    #[error("the key store failed while fetching key {key_id} of subject {subject}: {message}")]
    KeyStore {
        /// The key's subject.
        subject: Uuid,
        /// The key's id.
        key_id: KeyId,
        /// What the key store said.
        message: String,
    },
    /// Decryption failed: the payload was changed, belongs to another record, or the key is
    /// not the one it was encrypted with.
    #[error(
        "the payload fails authentication (key {key_id} of subject {subject}): it was changed, copied from another record, or the key is wrong"
    )]
    Authentication {
        /// The key's subject.
        subject: Uuid,
        /// The key's id.
        key_id: KeyId,
    },
}

/// What a payload is: an event or a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// An event's payload.
    Event,
    /// A snapshot's state.
    Snapshot,
}

/// The record a payload belongs to, bound into its encryption.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    /// Event or snapshot.
    pub kind: RecordKind,
    /// The stream.
    pub stream_id: Uuid,
    /// The event's version (the snapshot's).
    pub version: u64,
    /// The event's name (the snapshot's aggregate).
    pub name: &'a str,
    /// The event's schema version (the snapshot's fingerprint).
    pub schema: u64,
}

impl RecordRef<'_> {
    /// The associated data: the header, then the record's identity (kind, stream, version,
    /// name's length and name, schema). Built on the stack when it fits, as it does for every
    /// name shorter than about a hundred bytes: it is made once per payload sealed or opened.
    fn associated(&self, header: &[u8]) -> Associated {
        let kind: &[u8] = match self.kind {
            RecordKind::Event => b"E",
            RecordKind::Snapshot => b"S",
        };
        let parts: [&[u8]; 7] = [
            header,
            kind,
            self.stream_id.as_bytes(),
            &self.version.to_be_bytes(),
            &(self.name.len() as u64).to_be_bytes(),
            self.name.as_bytes(),
            &self.schema.to_be_bytes(),
        ];
        let len = parts.iter().map(|part| part.len()).sum();
        let mut data = if len <= INLINE_ASSOCIATED {
            Associated::Inline([0; INLINE_ASSOCIATED], len)
        } else {
            Associated::Heap(vec![0; len])
        };
        let mut rest = data.as_mut_slice();
        for part in parts {
            let (this, after) = rest.split_at_mut(part.len());
            this.copy_from_slice(part);
            rest = after;
        }
        data
    }
}

/// Associated data of at most this many bytes is built on the stack.
const INLINE_ASSOCIATED: usize = 160;

/// A record's associated data (see [`RecordRef::associated`]).
enum Associated {
    /// On the stack: the buffer and how much of it is used.
    Inline([u8; INLINE_ASSOCIATED], usize),
    /// Longer than [`INLINE_ASSOCIATED`].
    Heap(Vec<u8>),
}

impl Associated {
    fn as_mut_slice(&mut self) -> &mut [u8] {
        match self {
            Self::Inline(buffer, len) => &mut buffer[..*len],
            Self::Heap(data) => data,
        }
    }
}

impl std::ops::Deref for Associated {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Inline(buffer, len) => &buffer[..*len],
            Self::Heap(data) => data,
        }
    }
}

/// The key a payload is sealed with.
pub(crate) struct SealWith<'k> {
    pub(crate) subject: Uuid,
    pub(crate) key_id: KeyId,
    pub(crate) key: &'k DataKey,
}

/// Writes a payload: `body` in `format`, already compressed with `compressed` if given,
/// encrypted with `key` if given. Plain JSON comes back as it was.
pub(crate) fn seal(
    record: &RecordRef<'_>,
    format: Format,
    compressed: Option<Algorithm>,
    key: Option<SealWith<'_>>,
    body: Vec<u8>,
) -> Vec<u8> {
    if format == Format::Json && compressed.is_none() && key.is_none() {
        return body;
    }
    let compression = compressed.map_or(0, Algorithm::id);
    let Some(key) = key else {
        let mut out = Vec::with_capacity(FIXED_LEN + body.len());
        out.extend_from_slice(&[MARKER, VERSION, format.id(), compression, CIPHER_NONE]);
        out.extend_from_slice(&body);
        return out;
    };
    let nonce = cipher::nonce();
    let mut header = Vec::with_capacity(SEALED_LEN + body.len() + 16);
    header.extend_from_slice(&[
        MARKER,
        VERSION,
        format.id(),
        compression,
        CIPHER_AES_256_GCM,
    ]);
    header.extend_from_slice(key.subject.as_bytes());
    header.extend_from_slice(&key.key_id.to_be_bytes());
    header.extend_from_slice(&nonce);
    let sealed = cipher::seal(key.key.cipher(), &nonce, &record.associated(&header), &body);
    header.extend_from_slice(&sealed);
    header
}

/// Seals an envelope (`inner`) again with another subject's key: a layer.
pub(crate) fn seal_layer(record: &RecordRef<'_>, key: SealWith<'_>, inner: Vec<u8>) -> Vec<u8> {
    let nonce = cipher::nonce();
    let mut header = Vec::with_capacity(SEALED_LEN + inner.len() + 16);
    header.extend_from_slice(&[MARKER, VERSION, FORMAT_LAYER, 0, CIPHER_AES_256_GCM]);
    header.extend_from_slice(key.subject.as_bytes());
    header.extend_from_slice(&key.key_id.to_be_bytes());
    header.extend_from_slice(&nonce);
    let sealed = cipher::seal(
        key.key.cipher(),
        &nonce,
        &record.associated(&header),
        &inner,
    );
    header.extend_from_slice(&sealed);
    header
}

/// A payload's header, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// A layer: the body is another envelope (the format is meaningless).
    pub(crate) layer: bool,
    pub(crate) format: Format,
    pub(crate) compression: Option<Algorithm>,
    /// The key that encrypts it: subject and id.
    pub(crate) key: Option<(Uuid, KeyId)>,
    nonce: [u8; NONCE_LEN],
    len: usize,
}

/// Reads a payload's header (plain JSON has none).
pub(crate) fn header(payload: &[u8]) -> Result<Header, EnvelopeError> {
    if payload.first() != Some(&MARKER) {
        return Ok(Header {
            layer: false,
            format: Format::Json,
            compression: None,
            key: None,
            nonce: [0; NONCE_LEN],
            len: 0,
        });
    }
    let malformed = |message: &str| EnvelopeError::Malformed {
        message: message.to_owned(),
    };
    let fixed = payload
        .get(..FIXED_LEN)
        .ok_or_else(|| malformed("shorter than its header"))?;
    if fixed[1] != VERSION {
        return Err(EnvelopeError::Unsupported {
            what: "envelope version",
            name: fixed[1].to_string(),
            hint: "it was written by a newer eventsource; upgrade this program",
        });
    }
    let layer = fixed[2] == FORMAT_LAYER;
    if layer && (fixed[3] != 0 || fixed[4] != CIPHER_AES_256_GCM) {
        return Err(malformed("a layer must be encrypted and uncompressed"));
    }
    let format = if layer {
        Format::Json
    } else {
        Format::from_id(fixed[2]).ok_or_else(|| EnvelopeError::Unsupported {
            what: "format",
            name: fixed[2].to_string(),
            hint: "it was written by a newer eventsource; upgrade this program",
        })?
    };
    let compression = match fixed[3] {
        0 => None,
        id => Some(
            Algorithm::from_id(id).ok_or_else(|| EnvelopeError::Unsupported {
                what: "compression",
                name: id.to_string(),
                hint: "it was written by a newer eventsource; upgrade this program",
            })?,
        ),
    };
    match fixed[4] {
        CIPHER_NONE => Ok(Header {
            layer,
            format,
            compression,
            key: None,
            nonce: [0; NONCE_LEN],
            len: FIXED_LEN,
        }),
        CIPHER_AES_256_GCM => {
            let sealed = payload
                .get(..SEALED_LEN)
                .ok_or_else(|| malformed("shorter than its encryption header"))?;
            let subject = Uuid::from_slice(&sealed[FIXED_LEN..FIXED_LEN + 16])
                .map_err(|e| malformed(&e.to_string()))?;
            let key_id = u32::from_be_bytes([
                sealed[FIXED_LEN + 16],
                sealed[FIXED_LEN + 17],
                sealed[FIXED_LEN + 18],
                sealed[FIXED_LEN + 19],
            ]);
            let mut nonce = [0; NONCE_LEN];
            nonce.copy_from_slice(&sealed[FIXED_LEN + 20..SEALED_LEN]);
            Ok(Header {
                layer,
                format,
                compression,
                key: Some((subject, key_id)),
                nonce,
                len: SEALED_LEN,
            })
        }
        id => Err(EnvelopeError::Unsupported {
            what: "cipher",
            name: id.to_string(),
            hint: "it was written by a newer eventsource; upgrade this program",
        }),
    }
}

/// The body of a payload whose header is `header`: decrypted with `key` (which the caller
/// found for `header.key`), then decompressed (to at most `limit` bytes).
pub(crate) fn open(
    record: &RecordRef<'_>,
    payload: &[u8],
    header: &Header,
    key: Option<&DataKey>,
    limit: usize,
) -> Result<Vec<u8>, EnvelopeError> {
    let body = &payload[header.len..];
    let decrypted = match (header.key, key) {
        (None, _) => None,
        (Some((subject, key_id)), None) => {
            return Err(EnvelopeError::NoKeyStore { subject, key_id });
        }
        (Some((subject, key_id)), Some(key)) => {
            let associated = record.associated(&payload[..header.len]);
            let decrypted = cipher::open(key.cipher(), &header.nonce, &associated, body)
                .ok_or(EnvelopeError::Authentication { subject, key_id })?;
            Some(decrypted)
        }
    };
    let len = decrypted.as_ref().map_or(body.len(), Vec::len);
    match (header.compression, decrypted) {
        (None, _) if len > limit => Err(EnvelopeError::TooLarge {
            declared: len as u64,
            limit,
        }),
        // Decrypted: the body is ours already, no copy.
        (None, Some(decrypted)) => Ok(decrypted),
        (None, None) => Ok(body.to_vec()),
        (Some(algorithm), decrypted) => {
            algorithm.decompress(decrypted.as_deref().unwrap_or(body), limit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(version: u64) -> RecordRef<'static> {
        RecordRef {
            kind: RecordKind::Event,
            stream_id: Uuid::from_u128(7),
            version,
            name: "Deposited",
            schema: 2,
        }
    }

    /// The associated data is the header and the record's fields in a fixed order, whether it
    /// is built on the stack or (for a long name) on the heap: a change here would make every
    /// stored ciphertext fail authentication.
    #[test]
    fn associated_data_is_the_header_then_the_record() {
        for name in ["Deposited".to_owned(), "N".repeat(500)] {
            let record = RecordRef {
                kind: RecordKind::Snapshot,
                stream_id: Uuid::from_u128(0x0102),
                version: 7,
                name: &name,
                schema: 0x0a0b,
            };
            let header = [MARKER, VERSION, 1, 2, CIPHER_AES_256_GCM];
            let mut expected = header.to_vec();
            expected.push(b'S');
            expected.extend_from_slice(&0x0102u128.to_be_bytes());
            expected.extend_from_slice(&7u64.to_be_bytes());
            expected.extend_from_slice(&(name.len() as u64).to_be_bytes());
            expected.extend_from_slice(name.as_bytes());
            expected.extend_from_slice(&0x0a0bu64.to_be_bytes());
            let built = record.associated(&header);
            assert_eq!(&*built, &expected[..]);
            assert_eq!(
                matches!(built, Associated::Inline(..)),
                expected.len() <= INLINE_ASSOCIATED
            );
        }
    }

    #[test]
    fn plain_json_has_no_envelope() {
        let body = br#"{"amount":5}"#.to_vec();
        let sealed = seal(&record(1), Format::Json, None, None, body.clone());
        assert_eq!(sealed, body);
        let header = header(&sealed).unwrap();
        assert_eq!(
            (header.format, header.compression, header.key),
            (Format::Json, None, None)
        );
        assert_eq!(
            open(&record(1), &sealed, &header, None, 1 << 20).unwrap(),
            body
        );
    }

    #[test]
    fn an_encrypted_payload_opens_only_for_its_own_record_and_key() {
        let key = DataKey::generate();
        let subject = Uuid::from_u128(42);
        let with = || SealWith {
            subject,
            key_id: 3,
            key: &key,
        };
        let body = b"\x82\xa6amount\x05".to_vec();
        let sealed = seal(
            &record(1),
            Format::MessagePack,
            None,
            Some(with()),
            body.clone(),
        );
        let h = header(&sealed).unwrap();
        assert_eq!((h.format, h.key), (Format::MessagePack, Some((subject, 3))));
        assert_eq!(
            open(&record(1), &sealed, &h, Some(&key), 1 << 20).unwrap(),
            body
        );

        let refused = |payload: &[u8], record: RecordRef<'_>, key: &DataKey| {
            let h = header(payload).unwrap();
            open(&record, payload, &h, Some(key), 1 << 20).unwrap_err()
        };
        let authentication = EnvelopeError::Authentication { subject, key_id: 3 };
        // Another record (version 2), a wrong key, a flipped ciphertext byte, a tampered header.
        assert_eq!(refused(&sealed, record(2), &key), authentication);
        assert_eq!(
            refused(&sealed, record(1), &DataKey::generate()),
            authentication
        );
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(refused(&flipped, record(1), &key), authentication);
        let mut tampered = sealed.clone();
        tampered[3] = 1; // claims LZ4 compression
        assert_eq!(refused(&tampered, record(1), &key), authentication);
        // Without a key store: a typed error naming the key.
        assert_eq!(
            open(&record(1), &sealed, &h, None, 1 << 20).unwrap_err(),
            EnvelopeError::NoKeyStore { subject, key_id: 3 }
        );
    }

    #[test]
    fn a_layer_opens_to_the_envelope_inside_only_with_its_own_key() {
        let (inner_key, outer_key) = (DataKey::generate(), DataKey::generate());
        let (stream, other) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let record = RecordRef {
            kind: RecordKind::Snapshot,
            ..record(4)
        };
        let inner = seal(
            &record,
            Format::Json,
            None,
            Some(SealWith {
                subject: stream,
                key_id: 1,
                key: &inner_key,
            }),
            b"{}".to_vec(),
        );
        let outer = seal_layer(
            &record,
            SealWith {
                subject: other,
                key_id: 7,
                key: &outer_key,
            },
            inner.clone(),
        );
        let h = header(&outer).unwrap();
        assert!(h.layer);
        assert_eq!(h.key, Some((other, 7)));
        assert_eq!(
            open(&record, &outer, &h, Some(&outer_key), 1 << 20).unwrap(),
            inner
        );
        assert_eq!(
            open(&record, &outer, &h, Some(&inner_key), 1 << 20).unwrap_err(),
            EnvelopeError::Authentication {
                subject: other,
                key_id: 7
            }
        );
        // A layer must be encrypted and uncompressed.
        assert!(matches!(
            header(&[0, 1, 0xff, 0, 0]),
            Err(EnvelopeError::Malformed { .. })
        ));
    }

    #[test]
    fn malformed_and_future_headers_are_typed_errors() {
        for (payload, expect) in [
            (&[0u8, 1, 0][..], "shorter than its header"),
            (
                &[0, 1, 0, 0, 1, 9][..],
                "shorter than its encryption header",
            ),
        ] {
            let err = header(payload).unwrap_err();
            assert!(err.to_string().contains(expect), "{err}");
        }
        for payload in [
            [0u8, 2, 0, 0, 0],
            [0, 1, 9, 0, 0],
            [0, 1, 0, 9, 0],
            [0, 1, 0, 0, 9],
        ] {
            assert!(matches!(
                header(&payload),
                Err(EnvelopeError::Unsupported { .. })
            ));
        }
        // An uncompressed body over the limit.
        let sealed = seal(&record(1), Format::MessagePack, None, None, vec![1; 100]);
        let h = header(&sealed).unwrap();
        assert!(matches!(
            open(&record(1), &sealed, &h, None, 10),
            Err(EnvelopeError::TooLarge { limit: 10, .. })
        ));
    }
}
