//! Running one scenario on every store: a fresh memory store, a fresh SQLite file and a fresh
//! PostgreSQL schema (skipped with a message when the server is unreachable, except under
//! `CI=true`, where it fails).
//!
//! Not every test file that includes `support` runs scenarios on every store.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;

use eventsource_core::{EventStore, MemoryStore, PostgresStore, SqliteStore};

use super::postgres::{admin, unique_schema, url};

/// A store chosen at run time.
pub(crate) type Store = Arc<dyn EventStore>;

/// Runs `scenario` with each store's name and a fresh store; `tag` names the SQLite file and
/// the PostgreSQL schema (dropped afterwards).
pub(crate) async fn on_every_store<F, Fut>(tag: &str, scenario: F)
where
    F: Fn(&'static str, Store) -> Fut,
    Fut: Future<Output = ()>,
{
    scenario("memory", Arc::new(MemoryStore::new())).await;

    let dir = tempfile::tempdir().expect("a temporary directory");
    let sqlite = SqliteStore::open(dir.path().join(format!("{tag}.db")))
        .await
        .expect("open the SQLite store");
    scenario("sqlite", Arc::new(sqlite)).await;

    let Some(admin) = admin().await else {
        return;
    };
    let schema = unique_schema(tag);
    let store = PostgresStore::options(url())
        .schema(schema.clone())
        .connect()
        .await
        .expect("connect to PostgreSQL");
    scenario("postgres", Arc::new(store)).await;
    admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .expect("drop the test schema");
}

/// Every stored payload's bytes, concatenated: what someone reading the database sees.
pub(crate) async fn stored_bytes(store: &dyn EventStore) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut after = eventsource_core::Position::START;
    loop {
        let page = store
            .read_log(eventsource_core::LogQuery::after(after, 500))
            .await
            .unwrap();
        if page.is_empty() {
            return bytes;
        }
        for event in &page.events {
            bytes.extend_from_slice(&event.payload);
        }
        after = page.next;
    }
}
