//! Shared code for the example programs: the bank domain and its read model, opening a store
//! from a URL, the benchmark's workloads, and the bank as an HTTP service.

pub mod bank;
pub mod bench;
pub mod service;
pub mod statements;
pub mod transfers;

use std::sync::Arc;

use eventsource_core::{EventStore, Result};

/// A store opened from a URL: [`eventsource_core::stores::AnyStore`], under the name the
/// example programs have always used.
pub use eventsource_core::stores::AnyStore as OpenedStore;

/// Opens a store from a URL (see [`OpenedStore::open`]) behind the [`EventStore`] trait.
pub async fn open_store(url: &str) -> Result<Arc<dyn EventStore>> {
    Ok(OpenedStore::open(url).await?.events())
}
