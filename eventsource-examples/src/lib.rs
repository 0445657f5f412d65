//! Shared code for the example programs: the bank domain and its read model, opening a store
//! from a URL, and the benchmark's workloads.

pub mod bank;
pub mod bench;
pub mod statements;

use std::sync::Arc;

use eventsource_core::{EventStore, MemoryStore, Result, SqliteStore};

/// Opens a store from a URL:
/// - `memory://` — in process memory, gone on exit;
/// - `sqlite://path/to/file.db` (or a bare file path) — the embedded default;
/// - `postgres://user@host:port/db` — PostgreSQL (with the `postgres` feature).
pub async fn open_store(url: &str) -> Result<Arc<dyn EventStore>> {
    if url.starts_with("memory:") {
        return Ok(Arc::new(MemoryStore::new()));
    }
    #[cfg(feature = "postgres")]
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(
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
        return Ok(Arc::new(SqliteStore::connect(url).await?));
    }
    Ok(Arc::new(SqliteStore::open(url).await?))
}
