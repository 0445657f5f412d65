//! What the NATS test files share: the servers `.ci/nats start` runs (a single server at
//! `EVENTSOURCE_NATS_URL`, default `nats://127.0.0.1:14222`, and a three-node cluster at
//! `EVENTSOURCE_NATS_CLUSTER_URLS`, default `nats://127.0.0.1:14231,…14232,…14233`), a store of
//! its own for every test (its own JetStream streams and subject prefix, deleted at the end),
//! and the skip-or-fail rule: without a reachable server of version 2.12 or newer a test prints
//! why and passes, unless `CI=true`, where it fails.
#![allow(dead_code)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use eventsource_core::stores::nats::{NatsOptions, NatsStore};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The single server's URL.
pub(crate) fn single_url() -> String {
    std::env::var("EVENTSOURCE_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:14222".into())
}

/// The cluster's URLs, comma-separated.
pub(crate) fn cluster_urls() -> String {
    std::env::var("EVENTSOURCE_NATS_CLUSTER_URLS").unwrap_or_else(|_| {
        "nats://127.0.0.1:14231,nats://127.0.0.1:14232,nats://127.0.0.1:14233".into()
    })
}

/// A store name no other test (or run) uses.
pub(crate) fn unique_name(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "es-{tag}-{}-{}-{nanos:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Prints why the test is skipped, or fails under `CI=true`.
pub(crate) fn skip(reason: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{reason}; CI=true requires it (start the servers with `.ci/nats start`)");
    }
    eprintln!("skipping: {reason} (start the servers with `.ci/nats start`)");
}

/// The servers at `urls`, if they answer and take atomic batches; `None` after [`skip`].
pub(crate) struct Servers {
    pub(crate) urls: String,
    pub(crate) replicas: usize,
    /// Every store made, deleted by [`finish`](Self::finish).
    made: Mutex<Vec<NatsStore>>,
}

impl Servers {
    pub(crate) async fn single() -> Option<Self> {
        Self::probe(single_url(), 1).await
    }

    pub(crate) async fn cluster() -> Option<Self> {
        Self::probe(cluster_urls(), 3).await
    }

    async fn probe(urls: String, replicas: usize) -> Option<Self> {
        let servers = Self {
            urls,
            replicas,
            made: Mutex::new(Vec::new()),
        };
        let probe =
            tokio::time::timeout(Duration::from_secs(20), servers.options("probe").connect()).await;
        match probe {
            Ok(Ok(store)) if store.supports_atomic_batches() => {
                servers.made.lock().unwrap().push(store);
                Some(servers)
            }
            Ok(Ok(store)) => {
                let version = store.server_version().to_owned();
                let _ = store.destroy().await;
                skip(&format!(
                    "the NATS server at {} is version {version}, without atomic batch publish (2.12+)",
                    servers.urls
                ));
                None
            }
            Ok(Err(error)) => {
                skip(&format!("no NATS server at {}: {error}", servers.urls));
                None
            }
            Err(_) => {
                skip(&format!(
                    "the NATS server at {} did not answer in 20 s",
                    servers.urls
                ));
                None
            }
        }
    }

    /// Options for a fresh store of these servers.
    pub(crate) fn options(&self, tag: &str) -> NatsOptions {
        NatsStore::options(&self.urls)
            .name(unique_name(tag))
            .replicas(self.replicas)
    }

    /// A fresh store, deleted by [`finish`](Self::finish).
    pub(crate) async fn store(&self, tag: &str) -> NatsStore {
        let store = self
            .options(tag)
            .connect()
            .await
            .expect("connect a fresh NATS store");
        assert_eq!(store.replicas(), self.replicas, "the store's replicas");
        self.made.lock().unwrap().push(store.clone());
        store
    }

    /// Another connection to the same store (as another process would have).
    pub(crate) async fn reopen(&self, store: &NatsStore) -> NatsStore {
        NatsStore::options(&self.urls)
            .name(store.name())
            .replicas(self.replicas)
            .connect()
            .await
            .expect("connect to the same store again")
    }

    /// Deletes every store made.
    pub(crate) async fn finish(&self) {
        let made: Vec<NatsStore> = std::mem::take(&mut *self.made.lock().unwrap());
        for store in made {
            if let Err(error) = store.destroy().await {
                eprintln!("could not delete the test store {}: {error}", store.name());
            }
        }
    }
}
