//! What the PostgreSQL test files share: the server from `EVENTSOURCE_POSTGRES_URL`, a fresh
//! schema per store (dropped when the test finishes), and events whose payloads name their
//! stream and version.
//!
//! Tests share the server with each other and with other programs: nothing here assumes it is
//! idle. Each test file uses part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use eventsource_core::stores::postgres::tokio_postgres::{self, Client, NoTls};
use eventsource_core::stores::postgres::{PostgresOptions, PostgresStore};
use eventsource_core::{EventStore, LogQuery, NewEvent, StoredEvent, Uuid};

static SCHEMA_COUNTER: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn url() -> String {
    std::env::var("EVENTSOURCE_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A raw connection to the test server, or `None` (after printing why) if it is unreachable and
/// this is not CI.
pub(crate) async fn admin() -> Option<Client> {
    let url = url();
    let connect = tokio_postgres::connect(&url, NoTls);
    let outcome = match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Ok(Ok(pair)) => Ok(pair),
        Ok(Err(e)) => Err(match std::error::Error::source(&e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        }),
        Err(_) => Err("timed out after 10 s".into()),
    };
    match outcome {
        Ok((client, connection)) => {
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Some(client)
        }
        Err(reason) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PostgreSQL at {url} is unreachable ({reason}); CI=true requires it")
        }
        Err(reason) => {
            eprintln!(
                "skipping: PostgreSQL at {url} is unreachable ({reason}); set EVENTSOURCE_POSTGRES_URL"
            );
            None
        }
    }
}

pub(crate) fn unique_schema(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "es_test_{tag}_{}_{}_{nanos}",
        std::process::id(),
        SCHEMA_COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A test's server connection and the schemas it drops when the test finishes.
pub(crate) struct Server {
    pub(crate) admin: Client,
    pub(crate) schemas: Vec<String>,
}

impl Server {
    pub(crate) async fn start() -> Option<Self> {
        let admin = admin().await?;
        Some(Self {
            admin,
            schemas: Vec::new(),
        })
    }

    pub(crate) fn options(&mut self, tag: &str) -> PostgresOptions {
        let schema = unique_schema(tag);
        self.schemas.push(schema.clone());
        PostgresStore::options(url()).schema(schema)
    }

    pub(crate) async fn store(&mut self, tag: &str) -> PostgresStore {
        self.options(tag).connect().await.expect("connect")
    }

    pub(crate) async fn finish(mut self) {
        for schema in std::mem::take(&mut self.schemas) {
            self.admin
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .await
                .expect("drop the test schema");
        }
    }
}

/// A test that failed before [`Server::finish`] still drops its schemas, so a failing run leaves
/// nothing behind on the shared server (best effort, on a thread and a connection of its own:
/// `Drop` can't await).
impl Drop for Server {
    fn drop(&mut self) {
        let schemas = std::mem::take(&mut self.schemas);
        if schemas.is_empty() {
            return;
        }
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let (client, connection) = tokio_postgres::connect(&url(), NoTls).await.ok()?;
                tokio::spawn(connection);
                for schema in schemas {
                    let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                    let _ = client.batch_execute(&drop).await;
                }
                Some(())
            })
        });
        let _ = cleanup.join();
    }
}

pub(crate) fn event(name: &str, payload: String) -> NewEvent {
    NewEvent::new(name, 1, payload.into_bytes())
        .with_metadata(BTreeMap::from([("writer".to_string(), "test".to_string())]))
}

/// `count` events whose payloads name their stream and version, for checksums.
pub(crate) fn events_for(stream: Uuid, from_version: u64, count: u64) -> Vec<NewEvent> {
    (0..count)
        .map(|i| event("Counted", format!("{stream}:{}", from_version + i)))
        .collect()
}

pub(crate) async fn read_all(store: &PostgresStore) -> Vec<StoredEvent> {
    store
        .read_log(LogQuery::from_start(usize::MAX))
        .await
        .expect("read the whole log")
        .events
}

pub(crate) fn assert_strictly_increasing(events: &[StoredEvent]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].position < pair[1].position,
            "positions go {} then {}",
            pair[0].position,
            pair[1].position
        );
    }
}
