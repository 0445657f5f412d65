//! Shared code for the example programs: the bank domain and its read model, opening a store
//! from a URL, the benchmark's workloads, and the bank as an HTTP service.

pub mod bank;
pub mod bench;
pub mod service;
pub mod statements;
pub mod transfers;

use std::sync::Arc;

use eventsource_core::persistence::codec::{
    Compression, KeyStore, MasterKey, MemoryKeyStore, PayloadCodec,
};
use eventsource_core::stores::sqlite::SqliteKeyStore;
use eventsource_core::{EventStore, MemoryStore, Result, SqliteStore};

/// A store opened from a URL, still as its own type: what a program needs to keep a read model
/// in the store's database (a projection with the store's transaction as its context takes
/// the concrete store). [`events`](Self::events) gives the same store behind the trait.
#[derive(Debug, Clone)]
pub enum OpenedStore {
    /// `memory://`: in process memory, gone on exit.
    Memory(Arc<MemoryStore>),
    /// `sqlite://FILE` or a bare file path (or `sqlite::memory:`, which has no file).
    Sqlite(SqliteStore),
    /// `postgres://…`, with the `postgres` feature.
    #[cfg(feature = "postgres")]
    Postgres(eventsource_core::PostgresStore),
}

impl OpenedStore {
    /// Opens a store from a URL:
    /// - `memory://` — in process memory, gone on exit;
    /// - `sqlite://path/to/file.db` (or a bare file path) — the embedded default;
    /// - `postgres://user@host:port/db` — PostgreSQL (with the `postgres` feature).
    pub async fn open(url: &str) -> Result<Self> {
        if url.starts_with("memory:") {
            return Ok(Self::Memory(Arc::new(MemoryStore::new())));
        }
        #[cfg(feature = "postgres")]
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(
                eventsource_core::PostgresStore::connect(url).await?,
            ));
        }
        #[cfg(not(feature = "postgres"))]
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Err(eventsource_core::Error::Config {
                backend: "postgres",
                message: "this program was built without the `postgres` feature".into(),
            });
        }
        if url.starts_with("sqlite:") {
            return Ok(Self::Sqlite(SqliteStore::connect(url).await?));
        }
        Ok(Self::Sqlite(SqliteStore::open(url).await?))
    }

    /// The codec the demo and the benchmark write with: with a master key, payloads are
    /// compressed (LZ4) and encrypted, with keys kept by the store's own key store (wrapped by
    /// `master`; in memory for the memory store); without one, plain JSON.
    pub fn codec(&self, master: Option<MasterKey>) -> PayloadCodec {
        let Some(master) = master else {
            return PayloadCodec::new();
        };
        let keys: Arc<dyn KeyStore> = match self {
            Self::Memory(_) => Arc::new(MemoryKeyStore::new()),
            Self::Sqlite(store) => Arc::new(SqliteKeyStore::new(store, master)),
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => Arc::new(
                eventsource_core::stores::postgres::PostgresKeyStore::new(store, master),
            ),
        };
        PayloadCodec::new()
            .compress(Compression::lz4())
            .encrypt_with(keys)
    }

    /// The same store behind the [`EventStore`] trait, for code that works on any store.
    pub fn events(&self) -> Arc<dyn EventStore> {
        match self {
            Self::Memory(store) => Arc::clone(store) as Arc<dyn EventStore>,
            Self::Sqlite(store) => Arc::new(store.clone()),
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => Arc::new(store.clone()),
        }
    }
}

/// Opens a store from a URL (see [`OpenedStore::open`]) behind the [`EventStore`] trait.
pub async fn open_store(url: &str) -> Result<Arc<dyn EventStore>> {
    Ok(OpenedStore::open(url).await?.events())
}
