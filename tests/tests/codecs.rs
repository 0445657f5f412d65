//! Codecs end to end, on the memory store, SQLite (a file) and PostgreSQL (a fresh schema from
//! `EVENTSOURCE_POSTGRES_URL`; without a reachable server that part prints why and is skipped,
//! unless `CI=true`, where it fails):
//!
//! - **Every combination of settings** (JSON or MessagePack × no compression, LZ4 or, with the
//!   `zstd` feature, Zstandard × encrypted or not) written to one store, including one stream
//!   written with each in turn, then reopened (a new repository, a new key store; for SQLite a
//!   reopened file, for PostgreSQL a new connection) with *other* settings: every event and
//!   snapshot decodes, function and typed upcasters bring version-1 records of every format
//!   forward, and a projector sees every event. The stored envelopes are checked against the
//!   settings, so the combinations really were written.
//! - **Tampering** through the store's own tables (SQL `UPDATE` for SQLite and PostgreSQL; a
//!   copy of the log with the change for the memory store): a flipped ciphertext byte, a
//!   ciphertext copied to another version of its stream and to another stream, and a wrong key
//!   (keys of another store; for SQL stores also the right keys under another master key) are
//!   each [`Error::Decode`] naming the record, with the [`EnvelopeError`] that says why.
//! - **Forgetting a subject**: its personal events decode as `Forgotten` (the aggregate's and a
//!   rebuilt projection's forgotten handlers run), another subject's personal event in the same
//!   stream, that subject's own stream and the non-personal events are untouched, its snapshots
//!   and the repository's cache are gone, `SubjectForgotten` is recorded, and the tombstone holds
//!   for a reopened store; the subject can come back under new keys.
//! - **Key rotation**: new events name the newest key in their envelope, old ones stay readable,
//!   also for a reader in another process whose key cache predates the rotation.
//! - **The key store checks** of the conformance suite against `MemoryKeyStore`,
//!   `SqliteKeyStore` (several stores on one file) and `PostgresKeyStore` (several connections
//!   to one schema).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use eventsource_core::application::forget::{SubjectForgotten, forgotten_stream};
use eventsource_core::persistence::codec::{
    APPLICATION_SUBJECT, Compression, EnvelopeError, Format, KeyStore, MasterKey, MemoryKeyStore,
    PayloadCodec,
};
use eventsource_core::prelude::*;
use eventsource_core::projection::{HandlerError, ProjectionError};
use eventsource_core::stores::postgres::tokio_postgres::{self, Client};
use eventsource_core::stores::postgres::{PostgresKeyStore, PostgresOptions};
use eventsource_core::stores::sqlite::SqliteKeyStore;
use eventsource_core::testing::conformance;
use eventsource_core::{
    AppendBatch, DecodeError, Error, EventStore, LogQuery, NewEvent, PostgresStore, SqliteStore,
    StoredEvent, StreamRange,
};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod support;
use support::postgres::{Server, admin, unique_schema, url};

type Store = Arc<dyn EventStore>;

// ---------------------------------------------------------------------------------------------
// The domain: a customer, with personal data of their own and of the customers who referred
// them, and two events that changed shape since the previous release.

/// The customer's own data: encrypted with their key, forgotten with them.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(personal)]
struct Registered {
    name: String,
    email: String,
}

/// A note about the customer, by a member of staff. Version 2 added `pinned`, without a serde
/// default: the function step must run for a stored version 1 to decode, whatever its format
/// (and its `by`, a UUID, must come through the step's JSON value).
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(personal, version = 2, upcast(from = 1, with = pin_urgent_notes))]
struct Noted {
    text: String,
    pinned: bool,
    by: Uuid,
}

/// Who writes the notes.
const STAFF: Uuid = Uuid::from_u128(0x5747_aff0);

/// Version 1 notes starting with `!` were urgent: they become pinned.
fn pin_urgent_notes(mut value: Value) -> Result<Value, UpcastError> {
    let object = value
        .as_object_mut()
        .ok_or_else(|| UpcastError::new("a note is a JSON object"))?;
    let urgent = object
        .get("text")
        .and_then(Value::as_str)
        .is_some_and(|text| text.starts_with('!'));
    object.insert("pinned".into(), urgent.into());
    Ok(value)
}

/// The previous release's tier: premium or not. Kept to decode stored version-1 records.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "Tiered", version = 1)]
struct TieredV1 {
    premium: bool,
}

/// No personal data: encrypted (if at all) with the application's key.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(version = 2, upcast_from = TieredV1)]
struct Tiered {
    tier: u32,
}

impl From<TieredV1> for Tiered {
    fn from(v1: TieredV1) -> Self {
        Tiered {
            tier: if v1.premium { 2 } else { 1 },
        }
    }
}

/// Who referred this customer: the referrer's data, in this customer's stream.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(personal(subject = referrer))]
struct Referred {
    referrer: Uuid,
    note: String,
}

#[derive(Aggregate, Default, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[aggregate(events(Registered, Tiered, Noted, Referred), snapshot)]
struct Customer {
    name: Option<String>,
    email: Option<String>,
    registrations: u32,
    forgotten_registrations: u32,
    tier: u32,
    notes: Vec<(String, bool)>,
    /// The stored schema versions of forgotten notes.
    forgotten_notes: Vec<u32>,
    referrals: Vec<(Uuid, String)>,
    forgotten_referrals: Vec<Uuid>,
    /// How many events this load applied: the events after the snapshot it started from.
    #[serde(skip)]
    replayed: u64,
}

impl Customer {
    /// The state without `replayed`.
    fn data(&self) -> Customer {
        Customer {
            replayed: 0,
            ..self.clone()
        }
    }
}

impl Apply<Registered> for Customer {
    fn apply(&mut self, e: &Registered) {
        self.replayed += 1;
        self.registrations += 1;
        self.name = Some(e.name.clone());
        self.email = Some(e.email.clone());
    }
}

impl Apply<Forgotten<Registered>> for Customer {
    fn apply(&mut self, _: &Forgotten<Registered>) {
        self.replayed += 1;
        self.registrations += 1;
        self.forgotten_registrations += 1;
        self.name = None;
        self.email = None;
    }
}

impl Apply<Tiered> for Customer {
    fn apply(&mut self, e: &Tiered) {
        self.replayed += 1;
        self.tier = e.tier;
    }
}

impl Apply<Noted> for Customer {
    fn apply(&mut self, e: &Noted) {
        self.replayed += 1;
        assert_eq!(
            e.by, STAFF,
            "the author of a note comes through every format"
        );
        self.notes.push((e.text.clone(), e.pinned));
    }
}

impl Apply<Forgotten<Noted>> for Customer {
    fn apply(&mut self, e: &Forgotten<Noted>) {
        self.replayed += 1;
        self.forgotten_notes.push(e.schema_version);
    }
}

impl Apply<Referred> for Customer {
    fn apply(&mut self, e: &Referred) {
        self.replayed += 1;
        self.referrals.push((e.referrer, e.note.clone()));
    }
}

impl Apply<Forgotten<Referred>> for Customer {
    fn apply(&mut self, e: &Forgotten<Referred>) {
        self.replayed += 1;
        self.forgotten_referrals.push(e.subject);
    }
}

/// The previous release, which stored `Noted` and `Tiered` at version 1.
mod release_1 {
    use super::TieredV1;
    use eventsource_core::Uuid;
    use eventsource_core::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[event(name = "Noted", version = 1, personal)]
    pub(crate) struct NotedV1 {
        pub(crate) text: String,
        pub(crate) by: Uuid,
    }

    #[derive(Aggregate, Default, Debug)]
    #[aggregate(name = "CustomerRelease1", events(NotedV1, TieredV1))]
    pub(crate) struct CustomerRelease1;

    impl Apply<NotedV1> for CustomerRelease1 {
        fn apply(&mut self, _: &NotedV1) {}
    }

    impl Apply<Forgotten<NotedV1>> for CustomerRelease1 {
        fn apply(&mut self, _: &Forgotten<NotedV1>) {}
    }

    impl Apply<TieredV1> for CustomerRelease1 {
        fn apply(&mut self, _: &TieredV1) {}
    }
}
use release_1::{CustomerRelease1, CustomerRelease1Event, NotedV1};

/// A read model of every customer: what each event and each forgotten event left in it.
#[derive(Projection, Default, Debug, Clone, PartialEq)]
#[projection(
    name = "customer_directory",
    events(Registered, Tiered, Noted, Referred, SubjectForgotten)
)]
struct Directory {
    names: BTreeMap<Uuid, String>,
    forgotten_registrations: BTreeSet<Uuid>,
    tiers: BTreeMap<Uuid, u32>,
    notes: BTreeSet<(Uuid, String, bool)>,
    forgotten_notes: BTreeSet<(Uuid, u64)>,
    referrals: BTreeSet<(Uuid, Uuid, String)>,
    forgotten_referrals: BTreeSet<(Uuid, Uuid)>,
    forgotten_subjects: Vec<Uuid>,
    events: usize,
}

impl Handle<Registered> for Directory {
    async fn handle(&mut self, e: &Recorded<Registered>, _: &mut ()) -> Result<(), HandlerError> {
        self.events += 1;
        self.names.insert(e.stream_id, e.event.name.clone());
        Ok(())
    }
}

impl Handle<Forgotten<Registered>> for Directory {
    async fn handle(
        &mut self,
        e: &Recorded<Forgotten<Registered>>,
        _: &mut (),
    ) -> Result<(), HandlerError> {
        self.events += 1;
        self.forgotten_registrations.insert(e.stream_id);
        Ok(())
    }
}

impl Handle<Tiered> for Directory {
    async fn handle(&mut self, e: &Recorded<Tiered>, _: &mut ()) -> Result<(), HandlerError> {
        self.events += 1;
        self.tiers.insert(e.stream_id, e.event.tier);
        Ok(())
    }
}

impl Handle<Noted> for Directory {
    async fn handle(&mut self, e: &Recorded<Noted>, _: &mut ()) -> Result<(), HandlerError> {
        self.events += 1;
        self.notes
            .insert((e.stream_id, e.event.text.clone(), e.event.pinned));
        Ok(())
    }
}

impl Handle<Forgotten<Noted>> for Directory {
    async fn handle(
        &mut self,
        e: &Recorded<Forgotten<Noted>>,
        _: &mut (),
    ) -> Result<(), HandlerError> {
        self.events += 1;
        self.forgotten_notes.insert((e.stream_id, e.version));
        Ok(())
    }
}

impl Handle<Referred> for Directory {
    async fn handle(&mut self, e: &Recorded<Referred>, _: &mut ()) -> Result<(), HandlerError> {
        self.events += 1;
        self.referrals
            .insert((e.stream_id, e.event.referrer, e.event.note.clone()));
        Ok(())
    }
}

impl Handle<Forgotten<Referred>> for Directory {
    async fn handle(
        &mut self,
        e: &Recorded<Forgotten<Referred>>,
        _: &mut (),
    ) -> Result<(), HandlerError> {
        self.events += 1;
        self.forgotten_referrals
            .insert((e.stream_id, e.event.subject));
        Ok(())
    }
}

impl Handle<SubjectForgotten> for Directory {
    async fn handle(
        &mut self,
        e: &Recorded<SubjectForgotten>,
        _: &mut (),
    ) -> Result<(), HandlerError> {
        self.events += 1;
        self.forgotten_subjects.push(e.event.subject);
        Ok(())
    }
}

/// A note long and repetitive enough that every compressor shrinks it.
fn long(text: &str) -> String {
    format!("{text}: {}", "call back about the invoice; ".repeat(12))
}

fn registered(name: &str) -> Registered {
    Registered {
        name: name.into(),
        email: format!("{}@example.com", name.to_lowercase()),
    }
}

// ---------------------------------------------------------------------------------------------
// Settings

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Lz4,
    #[cfg(feature = "zstd")]
    Zstd,
}

/// One combination of codec settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Settings {
    format: Format,
    compression: Option<Algorithm>,
    encrypted: bool,
}

impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}, {}, {}",
            self.format,
            self.compression
                .map_or("uncompressed".to_owned(), |a| format!("{a:?}")),
            if self.encrypted { "encrypted" } else { "plain" }
        )
    }
}

impl Settings {
    /// Every combination this build has.
    fn all() -> Vec<Settings> {
        let compressions = [
            None,
            Some(Algorithm::Lz4),
            #[cfg(feature = "zstd")]
            Some(Algorithm::Zstd),
        ];
        let mut all = Vec::new();
        for format in [Format::Json, Format::MessagePack] {
            for compression in compressions {
                for encrypted in [false, true] {
                    all.push(Settings {
                        format,
                        compression,
                        encrypted,
                    });
                }
            }
        }
        all
    }

    fn encrypted(format: Format, compression: Option<Algorithm>) -> Self {
        Settings {
            format,
            compression,
            encrypted: true,
        }
    }

    fn codec(&self, keys: &Arc<dyn KeyStore>) -> PayloadCodec {
        let mut codec = PayloadCodec::new().format(self.format);
        codec = match self.compression {
            None => codec,
            Some(Algorithm::Lz4) => codec.compress(Compression::lz4().above(16)),
            #[cfg(feature = "zstd")]
            Some(Algorithm::Zstd) => codec.compress(Compression::zstd(3).above(16)),
        };
        if self.encrypted {
            codec = codec.encrypt_with(Arc::clone(keys));
        }
        codec
    }

    /// The envelope a payload written with these settings has: format and compression ids
    /// (compression only if `compressible`), and whether it names a key.
    fn expect(&self, payload: &[u8], compressible: bool, subject: Uuid, what: &str) {
        let found = envelope(payload);
        let plain_json = self.format == Format::Json
            && !self.encrypted
            && !(compressible && self.compression.is_some());
        if plain_json {
            assert_eq!(
                found, None,
                "{what} written with {self}: plain JSON has no envelope"
            );
            assert_eq!(payload.first(), Some(&b'{'), "{what}: plain JSON");
            return;
        }
        let Some(found) = found else {
            panic!("{what} written with {self} has no envelope");
        };
        let format = match self.format {
            Format::Json => 0,
            _ => 1,
        };
        let compression = match self.compression {
            Some(Algorithm::Lz4) if compressible => 1,
            #[cfg(feature = "zstd")]
            Some(Algorithm::Zstd) if compressible => 2,
            _ => 0,
        };
        assert_eq!(
            (found.format, found.compression),
            (format, compression),
            "{what} written with {self}: format and compression"
        );
        assert_eq!(
            found.key.map(|(s, _)| s),
            self.encrypted.then_some(subject),
            "{what} written with {self}: the key's subject"
        );
        assert_eq!(PayloadCodec::subject_of(payload), found.key.map(|(s, _)| s));
    }
}

/// What a payload's header says, read by the layout `persistence::codec::envelope` documents:
/// `None` for plain JSON (no envelope), else format and compression ids and the key (subject
/// and id) if encrypted.
#[derive(Debug, PartialEq, Eq)]
struct Envelope {
    format: u8,
    compression: u8,
    key: Option<(Uuid, u32)>,
}

fn envelope(payload: &[u8]) -> Option<Envelope> {
    if payload.first() != Some(&0) {
        return None;
    }
    assert!(payload.len() >= 5, "an envelope is at least 5 bytes");
    let key = (payload[4] == 1).then(|| {
        let subject = Uuid::from_slice(&payload[5..21]).expect("16 bytes");
        let id = u32::from_be_bytes(payload[21..25].try_into().expect("4 bytes"));
        (subject, id)
    });
    Some(Envelope {
        format: payload[2],
        compression: payload[3],
        key,
    })
}

// ---------------------------------------------------------------------------------------------
// The stores

/// Where a test's events and keys live, and how a process opens them again.
#[expect(
    clippy::large_enum_variant,
    reason = "one per scenario, never moved about"
)]
enum Place {
    Memory {
        store: Arc<MemoryStore>,
        keys: Arc<MemoryKeyStore>,
    },
    Sqlite {
        dir: tempfile::TempDir,
        master: MasterKey,
    },
    Postgres {
        options: PostgresOptions,
        /// Another schema: another store's keys.
        foreign: PostgresOptions,
        schema: String,
        admin: Client,
        master: MasterKey,
    },
}

/// A store and its key store, as one process opened them.
struct Opened {
    store: Store,
    keys: Arc<dyn KeyStore>,
}

/// A change made behind the store's back.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    /// Flips the last bit of the payload (in the authentication tag).
    Flip { stream: Uuid, version: u64 },
    /// Copies the payload of one record over another's.
    Copy { from: (Uuid, u64), to: (Uuid, u64) },
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Place::Memory { .. } => "memory",
            Place::Sqlite { .. } => "sqlite",
            Place::Postgres { .. } => "postgres",
        })
    }
}

impl Place {
    fn sqlite_path(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("codecs.db")
    }

    /// The store and its keys, opened as another process would: SQLite reopens the file,
    /// PostgreSQL connects again, the memory store is the one there is.
    async fn open(&self) -> Opened {
        match self {
            Place::Memory { store, keys } => Opened {
                store: store.clone(),
                keys: keys.clone(),
            },
            Place::Sqlite { dir, master } => {
                let store = SqliteStore::open(Self::sqlite_path(dir))
                    .await
                    .expect("open the SQLite file");
                let keys = Arc::new(SqliteKeyStore::new(&store, master.clone()));
                Opened {
                    store: Arc::new(store),
                    keys,
                }
            }
            Place::Postgres {
                options, master, ..
            } => {
                let store = options.clone().connect().await.expect("connect");
                let keys = Arc::new(PostgresKeyStore::new(&store, master.clone()));
                Opened {
                    store: Arc::new(store),
                    keys,
                }
            }
        }
    }

    /// The keys of another store, which has keys of its own for `subjects` (so a payload
    /// finds a key under its id, the wrong one).
    async fn foreign_keys(&self, subjects: &[Uuid]) -> Arc<dyn KeyStore> {
        let keys: Arc<dyn KeyStore> = match self {
            Place::Memory { .. } => Arc::new(MemoryKeyStore::new()),
            Place::Sqlite { dir, master } => {
                let other = SqliteStore::open(dir.path().join("another.db"))
                    .await
                    .expect("open another SQLite file");
                Arc::new(SqliteKeyStore::new(&other, master.clone()))
            }
            Place::Postgres {
                foreign, master, ..
            } => {
                let other = foreign.clone().connect().await.expect("connect");
                Arc::new(PostgresKeyStore::new(&other, master.clone()))
            }
        };
        for subject in subjects {
            keys.current_key(*subject).await.expect("a foreign key");
        }
        keys
    }

    /// This store's keys under another master key (SQL stores only).
    async fn keys_under_another_master(&self) -> Option<Arc<dyn KeyStore>> {
        match self {
            Place::Memory { .. } => None,
            Place::Sqlite { dir, .. } => {
                let store = SqliteStore::open(Self::sqlite_path(dir)).await.unwrap();
                Some(Arc::new(SqliteKeyStore::new(&store, MasterKey::generate())))
            }
            Place::Postgres { options, .. } => {
                let store = options.clone().connect().await.unwrap();
                Some(Arc::new(PostgresKeyStore::new(
                    &store,
                    MasterKey::generate(),
                )))
            }
        }
    }

    /// The store after `changes`: made with SQL `UPDATE`s on the store's own table for SQLite
    /// and PostgreSQL; for the memory store, a copy of its log with the changes.
    async fn tampered(&self, opened: &Opened, changes: &[Tamper]) -> Store {
        match self {
            Place::Memory { .. } => copy_with(&opened.store, changes).await,
            Place::Sqlite { dir, .. } => {
                let conn = rusqlite::Connection::open(Self::sqlite_path(dir)).unwrap();
                for change in changes {
                    match *change {
                        Tamper::Flip { stream, version } => {
                            let version = i64::try_from(version).unwrap();
                            let mut payload: Vec<u8> = conn
                                .query_row(
                                    "SELECT payload FROM events WHERE stream_id = ?1 AND version = ?2",
                                    rusqlite::params![stream.to_string(), version],
                                    |row| row.get(0),
                                )
                                .unwrap();
                            *payload.last_mut().unwrap() ^= 1;
                            let changed = conn
                                .execute(
                                    "UPDATE events SET payload = ?3 WHERE stream_id = ?1 AND version = ?2",
                                    rusqlite::params![stream.to_string(), version, payload],
                                )
                                .unwrap();
                            assert_eq!(changed, 1);
                        }
                        Tamper::Copy { from, to } => {
                            let (from_version, to_version) =
                                (i64::try_from(from.1).unwrap(), i64::try_from(to.1).unwrap());
                            let changed = conn
                                .execute(
                                    "UPDATE events SET payload = (SELECT payload FROM events WHERE stream_id = ?1 AND version = ?2)
                                     WHERE stream_id = ?3 AND version = ?4",
                                    rusqlite::params![from.0.to_string(), from_version, to.0.to_string(), to_version],
                                )
                                .unwrap();
                            assert_eq!(changed, 1);
                        }
                    }
                }
                self.open().await.store
            }
            Place::Postgres { schema, admin, .. } => {
                let events = format!("\"{schema}\".events");
                for change in changes {
                    let changed = match *change {
                        Tamper::Flip { stream, version } => {
                            let version = i64::try_from(version).unwrap();
                            let row = admin
                                .query_one(
                                    &format!("SELECT payload FROM {events} WHERE stream_id = $1 AND version = $2"),
                                    &[&stream, &version],
                                )
                                .await
                                .unwrap();
                            let mut payload: Vec<u8> = row.get(0);
                            *payload.last_mut().unwrap() ^= 1;
                            admin
                                .execute(
                                    &format!("UPDATE {events} SET payload = $3 WHERE stream_id = $1 AND version = $2"),
                                    &[&stream, &version, &payload],
                                )
                                .await
                                .unwrap()
                        }
                        Tamper::Copy { from, to } => {
                            let (from_version, to_version) =
                                (i64::try_from(from.1).unwrap(), i64::try_from(to.1).unwrap());
                            admin
                                .execute(
                                    &format!(
                                        "UPDATE {events} SET payload = (SELECT payload FROM {events} WHERE stream_id = $1 AND version = $2) \
                                         WHERE stream_id = $3 AND version = $4"
                                    ),
                                    &[&from.0, &from_version, &to.0, &to_version],
                                )
                                .await
                                .unwrap()
                        }
                    };
                    assert_eq!(changed, 1);
                }
                self.open().await.store
            }
        }
    }
}

/// A memory store holding `store`'s log with `changes` made (the same ids, streams, versions,
/// names and categories).
async fn copy_with(store: &Store, changes: &[Tamper]) -> Store {
    let log = store
        .read_log(LogQuery::from_start(usize::MAX))
        .await
        .unwrap()
        .events;
    let payloads: HashMap<(Uuid, u64), Vec<u8>> = log
        .iter()
        .map(|e| ((e.stream_id, e.version), e.payload.clone()))
        .collect();
    let copy = MemoryStore::new();
    for event in &log {
        let at = (event.stream_id, event.version);
        let mut payload = event.payload.clone();
        for change in changes {
            match *change {
                Tamper::Flip { stream, version } if (stream, version) == at => {
                    *payload.last_mut().unwrap() ^= 1;
                }
                Tamper::Copy { from, to } if to == at => payload = payloads[&from].clone(),
                _ => {}
            }
        }
        let record = NewEvent {
            id: event.id,
            name: event.name.clone(),
            schema_version: event.schema_version,
            payload,
            metadata: event.metadata.clone(),
        };
        copy.append(AppendBatch::single_in(
            event.category.clone(),
            event.stream_id,
            event.version - 1,
            vec![record],
        ))
        .await
        .unwrap();
    }
    Arc::new(copy)
}

/// Runs `scenario` on a memory store, a SQLite file and (when reachable) a PostgreSQL schema.
async fn on_every_store(tag: &str, scenario: impl AsyncFn(&Place)) {
    scenario(&Place::Memory {
        store: Arc::new(MemoryStore::new()),
        keys: Arc::new(MemoryKeyStore::new()),
    })
    .await;

    scenario(&Place::Sqlite {
        dir: tempfile::tempdir().expect("a temporary directory"),
        master: MasterKey::generate(),
    })
    .await;

    let Some(mut server) = Server::start().await else {
        return;
    };
    let options = server.options(tag).pool_size(4);
    let schema = options
        .clone()
        .connect()
        .await
        .expect("connect")
        .schema()
        .to_owned();
    let place = Place::Postgres {
        options,
        foreign: server.options(tag).pool_size(2),
        schema,
        admin: admin().await.expect("the server answered a moment ago"),
        master: MasterKey::generate(),
    };
    scenario(&place).await;
    drop(place);
    server.finish().await;
}

fn customers(store: &Store, codec: PayloadCodec) -> Repository<Customer, Store> {
    Repository::new(store.clone()).codec(codec)
}

async fn read(store: &Store, stream: Uuid) -> Vec<StoredEvent> {
    store
        .read_stream(stream, StreamRange::all())
        .try_collect()
        .await
        .expect("read the stream")
}

/// Appends `events` to the customer `id` (creating it if new).
async fn record(
    customers: &Repository<Customer, Store>,
    id: Uuid,
    events: Vec<CustomerEvent>,
) -> Customer {
    customers
        .execute_or_create(id, |_| Ok::<_, Infallible>(events.clone()))
        .await
        .unwrap_or_else(|e| panic!("recording events of customer {id}: {e}"))
        .state()
        .clone()
}

// ---------------------------------------------------------------------------------------------
// Every combination of settings, reopened with others

/// A customer written with one combination of settings.
struct Written {
    id: Uuid,
    settings: Settings,
    state: Customer,
    referrer: Uuid,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_combination_of_settings_decodes_when_reopened_with_other_settings() {
    on_every_store("matrix", async |place| {
        let settings = Settings::all();
        let opened = place.open().await;
        let mut written = Vec::new();
        // One stream written with every combination in turn, as settings change over the years.
        let years = Uuid::now_v7();
        let mut years_state = Customer::default();
        for (i, s) in settings.iter().enumerate() {
            let codec = s.codec(&opened.keys);
            let id = Uuid::now_v7();
            let referrer = Uuid::now_v7();
            // The previous release stored version 1 of `Noted` and `Tiered`.
            Repository::<CustomerRelease1, Store>::new(opened.store.clone())
                .codec(codec.clone())
                .create_with_id(
                    id,
                    [
                        CustomerRelease1Event::from(NotedV1 {
                            text: long("!urgent"),
                            by: STAFF,
                        }),
                        TieredV1 { premium: true }.into(),
                    ],
                )
                .await
                .unwrap();
            let customers = customers(&opened.store, codec.clone());
            record(
                &customers,
                id,
                vec![
                    registered(&format!("Customer{i}")).into(),
                    Noted {
                        by: STAFF,
                        text: long("today"),
                        pinned: false,
                    }
                    .into(),
                    Referred {
                        referrer,
                        note: long("met at the fair"),
                    }
                    .into(),
                ],
            )
            .await;
            assert_eq!(customers.take_snapshot(id).await.unwrap(), 5);
            let state = record(&customers, id, vec![Tiered { tier: 3 }.into()]).await;
            assert_eq!(
                (state.tier, state.notes[0].clone(), state.registrations),
                (3, (long("!urgent"), true), 1),
                "{place}, {s}: upcast on the writing side"
            );

            // The records and the snapshot were really written with these settings.
            let stored = read(&opened.store, id).await;
            let subjects = [
                id,
                APPLICATION_SUBJECT,
                id,
                id,
                referrer,
                APPLICATION_SUBJECT,
            ];
            let compressible = [true, false, false, true, true, false];
            for ((event, subject), compressible) in stored.iter().zip(subjects).zip(compressible) {
                let what = format!("{place}: {} at version {}", event.name, event.version);
                s.expect(&event.payload, compressible, subject, &what);
            }
            let snapshot = opened.store.load_snapshot(id, None).await.unwrap().unwrap();
            if s.encrypted {
                // The state holds the referrer's data: its snapshot is sealed once more, with
                // the referrer's key, around the envelope of these settings.
                let layer = envelope(&snapshot.state).expect("an envelope");
                assert_eq!(
                    (layer.format, layer.compression, layer.key.map(|(s, _)| s)),
                    (0xff, 0, Some(referrer)),
                    "{place}: the snapshot written with {s}: sealed for the referrer"
                );
            } else {
                s.expect(&snapshot.state, true, id, &format!("{place}: the snapshot"));
            }

            written.push(Written {
                id,
                settings: *s,
                state,
                referrer,
            });
        }
        // The years: every combination in turn, the plain ones first (a codec that reads
        // encrypted records encrypts the new ones too, so encryption is never turned off).
        let mut history = settings.clone();
        history.sort_by_key(|s| s.encrypted);
        for (i, s) in history.iter().enumerate() {
            let note = Noted {
                by: STAFF,
                text: long(&format!("year {i}")),
                pinned: i % 2 == 0,
            };
            let mut events = vec![CustomerEvent::from(note)];
            if i == 0 {
                events.insert(0, registered("Years").into());
            }
            years_state = record(
                &customers(&opened.store, s.codec(&opened.keys)),
                years,
                events,
            )
            .await;
        }
        let stored = read(&opened.store, years).await;
        for (s, event) in history.iter().zip(&stored[1..]) {
            let what = format!("{place}: the years, version {}", event.version);
            s.expect(&event.payload, true, years, &what);
        }
        customers(
            &opened.store,
            history[history.len() - 1].codec(&opened.keys),
        )
        .take_snapshot(years)
        .await
        .unwrap();
        drop(opened);

        // Another process, other settings: a reader needs keys only for encrypted records.
        let reopened = place.open().await;
        let n = settings.len();
        for (i, w) in written.iter().enumerate() {
            let mut reads = settings[(i + n / 2 + 1) % n];
            reads.encrypted |= w.settings.encrypted;
            assert_ne!(reads, w.settings);
            let customers = customers(&reopened.store, reads.codec(&reopened.keys));
            let what = format!("{place}: written {}, read {reads}", w.settings);
            let loaded = customers
                .get(w.id)
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(loaded.state().data(), w.state.data(), "{what}");
            assert_eq!(
                loaded.state().replayed,
                1,
                "{what}: the load started from the snapshot"
            );
            let history = customers.history(w.id).await.unwrap();
            assert_eq!(history.len(), 6, "{what}");
            assert!(
                matches!(&history[4].event, CustomerEvent::Referred(r) if r.referrer == w.referrer),
                "{what}: {:?}",
                history[4].event
            );
            // Up to version 2: the previous release's records, upcast, without the snapshot.
            let early = customers.get_at(w.id, 2).await.unwrap();
            assert_eq!(
                (
                    early.state().tier,
                    early.state().notes.clone(),
                    early.state().replayed
                ),
                (2, vec![(long("!urgent"), true)], 2),
                "{what}: version-1 records through the upcasters"
            );
            for stored in read(&reopened.store, w.id).await {
                let json = customers.payload_codec().to_json(&stored).await.unwrap();
                assert!(
                    json.is_some_and(|j| j.is_object()),
                    "{what}: {} as JSON",
                    stored.name
                );
            }
        }
        for reads in [settings[0], settings[n - 1]] {
            let reads = Settings {
                encrypted: true,
                ..reads
            };
            let loaded = customers(&reopened.store, reads.codec(&reopened.keys))
                .get(years)
                .await
                .unwrap_or_else(|e| panic!("{place}: the years stream read with {reads}: {e}"));
            assert_eq!(
                loaded.state().data(),
                years_state.data(),
                "{place}: years, read with {reads}"
            );
            assert_eq!(loaded.state().notes.len(), n);
            assert_eq!(
                loaded.state().replayed,
                0,
                "{place}: years loaded from its snapshot"
            );
        }

        // A projector sees every event, whatever it was written with.
        let reads = Settings::encrypted(Format::MessagePack, None);
        let mut projector = Projector::new(reopened.store.clone(), Directory::default())
            .codec(reads.codec(&reopened.keys));
        projector.catch_up().await.unwrap();
        let directory = projector.projection();
        assert_eq!(
            directory.events,
            6 * n + n + 1,
            "{place}: every event projected"
        );
        assert_eq!(directory.names.len(), n + 1);
        for w in &written {
            assert!(
                directory.notes.contains(&(w.id, long("!urgent"), true)),
                "{place}"
            );
            assert!(
                directory.notes.contains(&(w.id, long("today"), false)),
                "{place}"
            );
            assert_eq!(directory.tiers[&w.id], 3);
            assert!(
                directory
                    .referrals
                    .contains(&(w.id, w.referrer, long("met at the fair")))
            );
        }
        assert!(
            directory.forgotten_registrations.is_empty() && directory.forgotten_notes.is_empty()
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Tampering and wrong keys

/// `result` is `Error::Decode` naming the record at `stream`/`version` (`event`), whose source is
/// the envelope error `matches` accepts.
#[track_caller]
fn assert_record_error<T: fmt::Debug>(
    result: Result<T, Error>,
    (stream, version, event): (Uuid, u64, &str),
    matches: impl Fn(&EnvelopeError) -> bool,
    what: &str,
) {
    match result {
        Err(error @ Error::Decode { .. }) => {
            let Error::Decode {
                stream: s,
                version: v,
                event: e,
                source,
                ..
            } = &error
            else {
                unreachable!()
            };
            assert_eq!(
                (*s, *v, e.as_str()),
                (stream, version, event),
                "{what}: {error}"
            );
            match source {
                DecodeError::Envelope(envelope) if matches(envelope) => {}
                other => panic!("{what}: the wrong reason: {other:?}"),
            }
            let message = error.to_string();
            assert!(
                message.contains(&stream.to_string())
                    && message.contains(&format!("version {version}")),
                "{what}: the message names the record: {message}"
            );
        }
        other => panic!("{what}: expected a decode error naming the record, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_moved_and_wrongly_keyed_ciphertexts_are_typed_errors_naming_the_record() {
    on_every_store("tamper", async |place| {
        let opened = place.open().await;
        let settings = Settings::encrypted(Format::MessagePack, Some(Algorithm::Lz4));
        let writer = customers(&opened.store, settings.codec(&opened.keys));
        // First in the log, a customer written before encryption was turned on.
        let plain = Uuid::now_v7();
        record(
            &customers(&opened.store, PayloadCodec::new()),
            plain,
            vec![registered("Plain").into()],
        )
        .await;
        // Each customer: Registered, then two notes (the same event, schema and subject).
        let mut ids = Vec::new();
        for name in ["Flipped", "MovedWithin", "Source", "MovedAcross"] {
            let id = Uuid::now_v7();
            record(
                &writer,
                id,
                vec![
                    registered(name).into(),
                    Noted { by: STAFF, text: long("first"), pinned: false }.into(),
                    Noted { by: STAFF, text: long("second"), pinned: true }.into(),
                ],
            )
            .await;
            ids.push(id);
        }
        let [flipped, within, source, across] = ids[..] else { unreachable!() };
        let fresh = || customers(&opened.store, settings.codec(&opened.keys));
        for id in &ids {
            fresh().get(*id).await.unwrap_or_else(|e| panic!("{place}: before tampering: {e}"));
        }

        let tampered = place
            .tampered(
                &opened,
                &[
                    Tamper::Flip { stream: flipped, version: 2 },
                    Tamper::Copy { from: (within, 2), to: (within, 3) },
                    Tamper::Copy { from: (source, 2), to: (across, 2) },
                ],
            )
            .await;
        let reader = customers(&tampered, settings.codec(&opened.keys));
        let authentication = |subject: Uuid| {
            move |e: &EnvelopeError| {
                matches!(e, EnvelopeError::Authentication { subject: s, key_id: 1 } if *s == subject)
            }
        };
        assert_record_error(
            reader.get(flipped).await,
            (flipped, 2, "Noted"),
            authentication(flipped),
            &format!("{place}: a flipped byte"),
        );
        assert_record_error(
            reader.get(within).await,
            (within, 3, "Noted"),
            authentication(within),
            &format!("{place}: a ciphertext copied to the next version"),
        );
        assert_record_error(
            reader.get(across).await,
            (across, 2, "Noted"),
            // It names the source's key, which exists: the record's identity is what fails.
            authentication(source),
            &format!("{place}: a ciphertext copied to another stream"),
        );
        // The same error when reading the record one by one, and as JSON.
        let moved = read(&tampered, across).await;
        assert_record_error(
            reader.decode(&moved[1]).await,
            (across, 2, "Noted"),
            authentication(source),
            &format!("{place}: decoding the moved record"),
        );
        assert!(matches!(
            reader.payload_codec().to_json(&moved[1]).await,
            Err(DecodeError::Envelope(EnvelopeError::Authentication { .. }))
        ));
        // The copied-from record is intact, as is every record before a tampered one.
        let intact = reader.get(source).await.unwrap();
        assert_eq!(intact.state().notes.len(), 2, "{place}");
        assert_eq!(reader.get_at(flipped, 1).await.unwrap().state().registrations, 1);

        // Keys of another store: its key 1 of each subject is not the one the records name.
        let foreign = place.foreign_keys(&[source, APPLICATION_SUBJECT]).await;
        let wrong = customers(&opened.store, settings.codec(&foreign));
        assert_record_error(
            wrong.get(source).await,
            (source, 1, "Registered"),
            authentication(source),
            &format!("{place}: another store's keys"),
        );
        // Keys another store never had: missing, not forgotten.
        assert_record_error(
            wrong.get(flipped).await,
            (flipped, 1, "Registered"),
            |e| matches!(e, EnvelopeError::KeyMissing { subject, key_id: 1 } if *subject == flipped),
            &format!("{place}: a key the key store doesn't have"),
        );
        // No key store at all.
        let keyless = customers(&opened.store, PayloadCodec::new());
        assert_record_error(
            keyless.get(source).await,
            (source, 1, "Registered"),
            |e| matches!(e, EnvelopeError::NoKeyStore { subject, key_id: 1 } if *subject == source),
            &format!("{place}: no key store"),
        );
        // The right keys under another master key: they don't unwrap.
        if let Some(other_master) = place.keys_under_another_master().await {
            let wrong = customers(&opened.store, settings.codec(&other_master));
            assert_record_error(
                wrong.get(source).await,
                (source, 1, "Registered"),
                |e| {
                    matches!(e, EnvelopeError::KeyStore { subject, key_id: 1, message }
                        if *subject == source && message.contains("does not unwrap"))
                },
                &format!("{place}: another master key"),
            );
            // A projector names the record whose key failed, not the first of its batch.
            let mut projector = Projector::new(opened.store.clone(), Directory::default())
                .codec(settings.codec(&other_master));
            match projector.catch_up().await {
                Err(ProjectionError::Store { source, .. }) => assert_record_error(
                    Err::<(), _>(source),
                    (flipped, 1, "Registered"),
                    |e| matches!(e, EnvelopeError::KeyStore { subject, .. } if *subject == flipped),
                    &format!("{place}: a projector with another master key"),
                ),
                other => panic!("{place}: a projector with another master key gave {other:?}"),
            }
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Forgetting a subject

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_subject_decodes_as_forgotten_and_nobody_else_is_touched() {
    on_every_store("forget", async |place| {
        let opened = place.open().await;
        let settings = Settings::encrypted(Format::Json, Some(Algorithm::Lz4));
        let customers = customers(&opened.store, settings.codec(&opened.keys)).with_cache(100);
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        record(&customers, bob, vec![registered("Bob").into()]).await;
        record(
            &customers,
            ada,
            vec![
                registered("Ada").into(),
                Tiered { tier: 2 }.into(),
                Noted {
                    by: STAFF,
                    text: long("prefers mornings"),
                    pinned: true,
                }
                .into(),
                // Bob's data, in Ada's stream.
                Referred {
                    referrer: bob,
                    note: long("Bob's colleague"),
                }
                .into(),
            ],
        )
        .await;
        customers.take_snapshot(ada).await.unwrap();
        customers.take_snapshot(bob).await.unwrap();
        let mut directory = Projector::new(opened.store.clone(), Directory::default())
            .codec(customers.payload_codec().clone());
        directory.catch_up().await.unwrap();
        assert_eq!(directory.projection().names[&ada], "Ada");
        assert_eq!(customers.cached_len(), 2);

        let forgetting = customers.forget(ada).await.unwrap();
        assert_eq!(
            forgetting.recorded,
            SubjectForgotten {
                subject: ada,
                keys_deleted: 1,
                snapshots_deleted: 1
            },
            "{place}"
        );

        // The cache and Ada's snapshots are gone; Bob's snapshot stays.
        assert_eq!(customers.cached_len(), 0, "{place}");
        assert!(
            opened
                .store
                .load_snapshot(ada, None)
                .await
                .unwrap()
                .is_none(),
            "{place}"
        );
        assert!(
            opened
                .store
                .load_snapshot(bob, None)
                .await
                .unwrap()
                .is_some(),
            "{place}"
        );

        // Ada's personal events decode as forgotten; her tier, and Bob's data in her stream, don't.
        let expected = Customer {
            registrations: 1,
            forgotten_registrations: 1,
            tier: 2,
            forgotten_notes: vec![2],
            referrals: vec![(bob, long("Bob's colleague"))],
            replayed: 4,
            ..Customer::default()
        };
        let check = async |customers: &Repository<Customer, Store>, what: &str| {
            let ada_now = customers
                .get(ada)
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(ada_now.state(), &expected, "{what}");
            let history = customers.history(ada).await.unwrap();
            let names: Vec<(&str, bool)> = history
                .iter()
                .map(|r| match &r.event {
                    CustomerEvent::Forgotten(record) => (record.name, true),
                    other => (other.name(), false),
                })
                .collect();
            assert_eq!(
                names,
                [
                    ("Registered", true),
                    ("Tiered", false),
                    ("Noted", true),
                    ("Referred", false)
                ],
                "{what}"
            );
            let CustomerEvent::Forgotten(record) = &history[0].event else {
                unreachable!()
            };
            assert_eq!((record.subject, record.schema_version), (ada, 1), "{what}");
            let bob_now = customers.get(bob).await.unwrap();
            assert_eq!(bob_now.state().name.as_deref(), Some("Bob"), "{what}");
        };
        check(&customers, &format!("{place}: in the forgetting process")).await;

        // The record of it, with the command context's metadata.
        let recorded = read(&opened.store, forgotten_stream(ada)).await;
        assert_eq!(recorded.len(), 1, "{place}");
        assert_eq!(recorded[0].name, "SubjectForgotten");
        let payload: SubjectForgotten = serde_json::from_slice(&recorded[0].payload).unwrap();
        assert_eq!(payload.subject, ada);
        assert_eq!(recorded[0].position, forgetting.position);

        // A projection rebuilt from the log gets the forgotten values.
        directory
            .rebuild(|projection, _| {
                Box::pin(async move {
                    *projection = Directory::default();
                    Ok(())
                })
            })
            .await
            .unwrap();
        let rebuilt = directory.projection();
        assert_eq!(
            rebuilt.names.keys().collect::<Vec<_>>(),
            [&bob],
            "{place}: only Bob's name is left"
        );
        assert_eq!(
            rebuilt.forgotten_registrations,
            BTreeSet::from([ada]),
            "{place}"
        );
        assert_eq!(
            rebuilt.forgotten_notes,
            BTreeSet::from([(ada, 3)]),
            "{place}"
        );
        assert_eq!(rebuilt.notes, BTreeSet::new(), "{place}");
        assert_eq!(rebuilt.tiers[&ada], 2);
        assert_eq!(
            rebuilt.referrals,
            BTreeSet::from([(ada, bob, long("Bob's colleague"))]),
            "{place}"
        );
        assert_eq!(rebuilt.forgotten_subjects, [ada], "{place}");

        // Another process sees the tombstone (SQLite and PostgreSQL keep it in the database).
        let reopened = place.open().await;
        let elsewhere = customers_of(&reopened, settings);
        check(&elsewhere, &format!("{place}: reopened")).await;
        assert!(
            reopened.keys.keys(ada).await.unwrap().forgotten_through >= 1,
            "{place}: the tombstone"
        );

        // Ada comes back: new events under a new key, the old ones still forgotten.
        record(&elsewhere, ada, vec![registered("Ada").into()]).await;
        let stored = read(&reopened.store, ada).await;
        assert_eq!(
            envelope(&stored[4].payload).and_then(|e| e.key),
            Some((ada, 2)),
            "{place}"
        );
        let back = elsewhere.get(ada).await.unwrap();
        assert_eq!(
            (
                back.state().name.as_deref(),
                back.state().forgotten_registrations
            ),
            (Some("Ada"), 1),
            "{place}"
        );
    })
    .await;
}

fn customers_of(opened: &Opened, settings: Settings) -> Repository<Customer, Store> {
    customers(&opened.store, settings.codec(&opened.keys))
}

// ---------------------------------------------------------------------------------------------
// Key rotation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_rotation_new_events_use_the_newest_key_and_old_ones_stay_readable() {
    on_every_store("rotate", async |place| {
        let opened = place.open().await;
        let settings = Settings::encrypted(Format::MessagePack, None);
        let codec = settings.codec(&opened.keys);
        let customers = customers(&opened.store, codec.clone());
        let id = Uuid::now_v7();
        record(
            &customers,
            id,
            vec![registered("Cy").into(), Tiered { tier: 1 }.into()],
        )
        .await;
        assert_eq!(codec.rotate_key(id).await.unwrap(), 2, "{place}");
        assert_eq!(
            codec.rotate_key(APPLICATION_SUBJECT).await.unwrap(),
            2,
            "{place}"
        );
        record(
            &customers,
            id,
            vec![
                Noted {
                    by: STAFF,
                    text: "rotated".into(),
                    pinned: false,
                }
                .into(),
                Tiered { tier: 2 }.into(),
            ],
        )
        .await;
        let keys: Vec<Option<(Uuid, u32)>> = read(&opened.store, id)
            .await
            .iter()
            .map(|e| envelope(&e.payload).and_then(|e| e.key))
            .collect();
        assert_eq!(
            keys,
            [
                Some((id, 1)),
                Some((APPLICATION_SUBJECT, 1)),
                Some((id, 2)),
                Some((APPLICATION_SUBJECT, 2)),
            ],
            "{place}: each event names the key it was written with"
        );
        let listed = opened.keys.keys(id).await.unwrap();
        assert_eq!(
            listed.keys.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            [1, 2]
        );

        // Old and new decode, here and in another process.
        let expected = Customer {
            name: Some("Cy".into()),
            email: Some("cy@example.com".into()),
            registrations: 1,
            tier: 2,
            notes: vec![("rotated".into(), false)],
            replayed: 4,
            ..Customer::default()
        };
        assert_eq!(
            customers.get(id).await.unwrap().state(),
            &expected,
            "{place}"
        );
        let reopened = place.open().await;
        let elsewhere = customers_of(&reopened, settings);
        assert_eq!(
            elsewhere.get(id).await.unwrap().state(),
            &expected,
            "{place}: reopened"
        );
    })
    .await;
}

/// A reader whose key cache predates another process's rotation finds the new key (it reads
/// the key store again when a record names a key newer than any it knows), and so does one
/// whose cache predates the subject being forgotten and coming back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_finds_keys_another_process_added_since_it_cached_the_subject() {
    on_every_store("stale", async |place| {
        let settings = Settings::encrypted(Format::Json, None);
        let (writing, reading) = (place.open().await, place.open().await);
        let writer = customers_of(&writing, settings);
        let reader = customers_of(&reading, settings);
        let id = Uuid::now_v7();
        record(&writer, id, vec![registered("Di").into()]).await;
        assert_eq!(
            reader.get(id).await.unwrap().state().registrations,
            1,
            "{place}"
        );

        assert_eq!(writer.payload_codec().rotate_key(id).await.unwrap(), 2);
        record(
            &writer,
            id,
            vec![
                Noted {
                    by: STAFF,
                    text: "after".into(),
                    pinned: false,
                }
                .into(),
            ],
        )
        .await;
        let after = reader
            .get(id)
            .await
            .unwrap_or_else(|e| panic!("{place}: a key rotated by another process: {e}"));
        assert_eq!(after.state().notes.len(), 1, "{place}");

        // Forgotten and back elsewhere: the new key is found; the old records are forgotten
        // here too once the cached keys are read again (at most the key cache's TTL later).
        writer.forget(id).await.unwrap();
        record(&writer, id, vec![registered("Di").into()]).await;
        let stored = read(&reading.store, id).await;
        assert_eq!(
            envelope(&stored[2].payload).and_then(|e| e.key),
            Some((id, 3))
        );
        reader
            .decode(&stored[2])
            .await
            .unwrap_or_else(|e| panic!("{place}: a key added after the subject came back: {e}"));
        // The same for a record that names a key the store really doesn't have.
        let mut missing = stored[2].clone();
        missing.payload[21..25].copy_from_slice(&9_u32.to_be_bytes());
        assert_record_error(
            reader.decode(&missing).await,
            (id, 3, "Registered"),
            |e| matches!(e, EnvelopeError::KeyMissing { key_id: 9, .. }),
            &format!("{place}: a key id no process ever created"),
        );
    })
    .await;
}

/// A key cache that keeps nothing (a time to live of zero) reads the keys again for every
/// load, so a subject forgotten by another process is forgotten here at the next load; the keys
/// a load fetched serve that load (it doesn't fetch them forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_zero_key_cache_ttl_every_load_reads_the_keys_again() {
    let store: Store = Arc::new(MemoryStore::new());
    let keys: Arc<dyn KeyStore> = Arc::new(MemoryKeyStore::new());
    let settings = Settings::encrypted(Format::Json, None);
    let uncached = customers(&store, settings.codec(&keys).key_cache_ttl(Duration::ZERO));
    let work = async {
        let id = Uuid::now_v7();
        record(&uncached, id, vec![registered("Eve").into()]).await;
        let loaded = uncached.get(id).await.unwrap();
        assert_eq!(loaded.state().name.as_deref(), Some("Eve"));
        // Another process forgets her.
        customers(&store, settings.codec(&keys))
            .forget(id)
            .await
            .unwrap();
        let forgotten = uncached.get(id).await.unwrap();
        assert_eq!(forgotten.state().forgotten_registrations, 1);
        let stored = read(&store, id).await;
        assert!(matches!(
            uncached.decode(&stored[0]).await.unwrap(),
            CustomerEvent::Forgotten(_)
        ));
    };
    tokio::time::timeout(Duration::from_secs(60), work)
        .await
        .expect("with a zero TTL, a load keeps fetching the keys it has just fetched");
}

// ---------------------------------------------------------------------------------------------
// The key store checks

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_sqlite_and_postgres_key_stores_pass_the_key_store_checks() {
    let memory = Arc::new(MemoryKeyStore::new());
    conformance::run_key_store(|| {
        let keys = Arc::clone(&memory);
        async move { keys }
    })
    .await;

    let dir = tempfile::tempdir().unwrap();
    let (path, master) = (dir.path().join("keys.db"), MasterKey::generate());
    conformance::run_key_store(|| {
        let (path, master) = (path.clone(), master.clone());
        async move { SqliteKeyStore::new(&SqliteStore::open(&path).await.unwrap(), master) }
    })
    .await;

    let Some(mut server) = Server::start().await else {
        return;
    };
    let options = server.options("keys").pool_size(4);
    conformance::run_key_store(|| {
        let (options, master) = (options.clone(), master.clone());
        async move { PostgresKeyStore::new(&options.connect().await.unwrap(), master) }
    })
    .await;

    // The same where transactions are serializable by default: the key store's own are not.
    let schema = unique_schema("keys_serializable");
    server.schemas.push(schema.clone());
    let mut config: tokio_postgres::Config = url().parse().unwrap();
    config.options("-c default_transaction_isolation=serializable");
    let options = PostgresOptions::from_config(config)
        .schema(schema)
        .pool_size(4);
    conformance::run_key_store(|| {
        let (options, master) = (options.clone(), master.clone());
        async move { PostgresKeyStore::new(&options.connect().await.unwrap(), master) }
    })
    .await;
    server.finish().await;
}

/// A key store that opens with the store's own files and tables: nothing besides the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_stores_keep_their_keys_in_the_stores_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank.db");
    let store = eventsource_core::SqliteOptions::file(&path)
        .events_table("bank_events")
        .open()
        .await
        .unwrap();
    let keys = SqliteKeyStore::new(&store, MasterKey::generate());
    keys.current_key(Uuid::now_v7()).await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let rows: i64 = conn
        .query_row(
            "SELECT count(*) FROM bank_events_data_keys WHERE key_id > 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 1);

    let Some(mut server) = Server::start().await else {
        return;
    };
    let store: PostgresStore = server
        .options("keytable")
        .events_table("bank_events")
        .connect()
        .await
        .unwrap();
    let keys = PostgresKeyStore::new(&store, MasterKey::generate());
    let subject = Uuid::now_v7();
    keys.current_key(subject).await.unwrap();
    let row = server
        .admin
        .query_one(
            &format!(
                "SELECT count(*) FROM \"{}\".bank_events_data_keys WHERE subject = $1 AND key_id > 0",
                store.schema()
            ),
            &[&subject],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    server.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Snapshots holding other people's data

/// Ada's state holds Bob's data (a `personal(subject = referrer)` event in her stream). Her
/// snapshot is sealed once more with Bob's key, so forgetting Bob, whose own stream's snapshots
/// are the only ones `forget` deletes, still makes it unreadable: the next load replays Ada's
/// events and sees the referral as forgotten, while her own data stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetting_a_person_reaches_the_snapshots_of_others_that_hold_their_data() {
    on_every_store("referrer", async |place| {
        let opened = place.open().await;
        let codec = || Settings::encrypted(Format::MessagePack, None).codec(&opened.keys);
        let customers = customers(&opened.store, codec());
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        record(&customers, bob, vec![registered("Bob").into()]).await;
        record(
            &customers,
            ada,
            vec![
                registered("Ada").into(),
                Referred {
                    referrer: bob,
                    note: long("Bob's colleague"),
                }
                .into(),
                Tiered { tier: 2 }.into(),
            ],
        )
        .await;
        assert_eq!(customers.take_snapshot(ada).await.unwrap(), 3);
        // Read back through a new codec: the snapshot opens (both keys exist) and is used.
        let before = Repository::<Customer, Store>::new(opened.store.clone())
            .codec(codec())
            .get(ada)
            .await
            .unwrap();
        assert_eq!(
            before.state().replayed,
            0,
            "{place}: loaded from the snapshot"
        );
        assert_eq!(
            before.state().referrals,
            vec![(bob, long("Bob's colleague"))]
        );

        let forgetting = customers.forget(bob).await.unwrap();
        assert_eq!(
            forgetting.recorded.snapshots_deleted, 0,
            "{place}: Bob has none"
        );
        assert!(
            opened
                .store
                .load_snapshot(ada, None)
                .await
                .unwrap()
                .is_some(),
            "{place}: Ada's snapshot is still stored, but sealed for Bob too"
        );

        let after = Repository::<Customer, Store>::new(opened.store.clone())
            .codec(codec())
            .get(ada)
            .await
            .unwrap();
        assert_eq!(
            after.state().replayed,
            3,
            "{place}: the snapshot no longer opens, so every event is replayed"
        );
        assert_eq!(
            after.state().referrals,
            Vec::new(),
            "{place}: Bob's note is gone"
        );
        assert_eq!(after.state().forgotten_referrals, vec![bob], "{place}");
        assert_eq!(
            (after.state().name.as_deref(), after.state().tier),
            (Some("Ada"), 2),
            "{place}: Ada's own data stays"
        );
    })
    .await;
}
