//! How to reach the server and how to lay out the store: [`NatsOptions`], and connecting.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_nats::jetstream::{self, stream};

use super::batch::{DIRECT_BATCH_SINCE, DirectGet};
use super::subjects::{Subjects, check_name};
use super::{BACKEND, Inner, NatsStore};
use crate::error::{Error, Result};
use crate::persistence::wake::CommitSignal;

/// The store name (streams and subject prefix) when none is given.
pub const DEFAULT_NAME: &str = "eventsource";

/// The oldest server version with atomic batch publish, which appends of several events need.
pub const ATOMIC_BATCH_SINCE: (u64, u64) = (2, 12);

/// How many messages one atomic batch may hold (the server's `jetstream.limits.batch.max_msgs`
/// default): an append writes one message per event, plus one for its tracking record.
pub const MAX_BATCH_MESSAGES: usize = 1000;

/// Where JetStream keeps the store's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    /// On disk (the default): survives a restart.
    #[default]
    File,
    /// In memory: lost when the server (or, replicated, a majority of its nodes) stops.
    Memory,
}

/// Options for [`NatsStore`]: the server URLs, the store's name, replication and limits.
///
/// ```no_run
/// # async fn demo() -> eventsource_core::Result<()> {
/// use eventsource_core::stores::nats::NatsStore;
///
/// let store = NatsStore::options("nats://127.0.0.1:14231,nats://127.0.0.1:14232")
///     .name("bank")
///     .replicas(3)
///     .connect()
///     .await?;
/// # let _ = store; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct NatsOptions {
    urls: Vec<String>,
    name: String,
    replicas: usize,
    storage: Storage,
    max_bytes: Option<i64>,
    request_timeout: Duration,
}

impl NatsOptions {
    /// Options for the servers at `urls` (one URL, or several separated by commas: any node of a
    /// cluster will do, the client finds the others).
    pub fn new(urls: impl AsRef<str>) -> Self {
        Self {
            urls: urls
                .as_ref()
                .split(',')
                .map(str::trim)
                .filter(|url| !url.is_empty())
                .map(str::to_owned)
                .collect(),
            name: DEFAULT_NAME.to_owned(),
            replicas: 1,
            storage: Storage::File,
            max_bytes: None,
            request_timeout: Duration::from_secs(10),
        }
    }

    /// The store's name (default [`DEFAULT_NAME`]): it names the JetStream streams (`NAME` for
    /// events and tracking, `NAME-snapshots` for snapshots) and prefixes every subject. ASCII
    /// letters, digits, `-` and `_`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How many servers keep a copy of every message (default 1; 3 on a three-node cluster
    /// survives the loss of one node). Used when the store's streams are created; an existing
    /// store keeps its own.
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }

    /// Where the messages are kept (default [`Storage::File`]).
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }

    /// The most bytes the events stream may hold. When it is full, appends fail (the stream
    /// discards *new* messages, never old events). Default: no limit but the server's.
    pub fn max_bytes(mut self, max_bytes: i64) -> Self {
        self.max_bytes = Some(max_bytes);
        self
    }

    /// How long to wait for the server's answer to a request (default 10 s). An append that
    /// times out is [`Error::OutcomeUnknown`].
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Connects, creating the store's streams if they don't exist.
    pub async fn connect(self) -> Result<NatsStore> {
        check_name(&self.name)?;
        if self.urls.is_empty() {
            return Err(Error::Config {
                backend: BACKEND,
                message:
                    "no server URL given (expected nats://host:port, several separated by commas)"
                        .into(),
            });
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(Error::Config {
                backend: BACKEND,
                message: format!(
                    "{} replicas asked for; JetStream keeps 1 to 5",
                    self.replicas
                ),
            });
        }
        let client = async_nats::ConnectOptions::new()
            .request_timeout(Some(self.request_timeout))
            .connect(self.urls.as_slice())
            .await
            .map_err(|error| {
                Error::backend(
                    BACKEND,
                    format!("connecting to {}", self.urls.join(",")),
                    error,
                )
            })?;
        let info = client.server_info();
        let atomic_server = version_at_least(&info.version, ATOMIC_BATCH_SINCE);
        let context = jetstream::ContextBuilder::new()
            .timeout(self.request_timeout)
            .build(client.clone());
        let subjects = Subjects::new(&self.name);
        let events = self
            .stream(
                &context,
                stream::Config {
                    name: self.name.clone(),
                    description: Some("eventsource: events and tracking records".into()),
                    subjects: subjects.event_stream_subjects(),
                    allow_atomic_publish: atomic_server,
                    // Batched reads (direct get); see the module docs on reads.
                    allow_direct: true,
                    // Events are never deleted one by one, and a full store refuses appends
                    // rather than dropping old events.
                    deny_delete: true,
                    discard: stream::DiscardPolicy::New,
                    max_bytes: self.max_bytes.unwrap_or(-1),
                    ..self.common()
                },
            )
            .await?;
        // The server echoes the setting only if it knows it (an old server drops it).
        let atomic = atomic_server && events.cached_info().config.allow_atomic_publish;
        let direct = self.direct_get(&context, events).await?;
        let events = direct.stream;
        let direct = direct.get;
        let snapshots = self
            .stream(
                &context,
                stream::Config {
                    name: format!("{}-snapshots", self.name),
                    description: Some("eventsource: snapshots, one per stream and version".into()),
                    subjects: subjects.snapshot_stream_subjects(),
                    max_messages_per_subject: 1,
                    ..self.common()
                },
            )
            .await?;
        tracing::debug!(
            store = %self.name,
            server = %info.version,
            atomic,
            batched_reads = direct.is_some(),
            "connected to NATS JetStream"
        );
        Ok(NatsStore {
            inner: Arc::new(Inner {
                client,
                max_payload: info.max_payload,
                server_version: info.version,
                context,
                events,
                snapshots,
                subjects,
                atomic,
                direct,
                commits: CommitSignal::new(),
                watcher: OnceLock::new(),
                claims: tokio::sync::OnceCell::new(),
                keys: tokio::sync::OnceCell::new(),
                known: Default::default(),
            }),
        })
    }

    /// Batched reads on the events stream: on a server with batched direct get, a store created
    /// before reads were batched gets `allow_direct` now (a change the server allows on a live
    /// stream). `None` where the server is too old: reads then ask the leader per event.
    async fn direct_get(
        &self,
        context: &jetstream::Context,
        mut events: stream::Stream,
    ) -> Result<WithDirectGet> {
        let version = context.client().server_info().version;
        if !version_at_least(&version, DIRECT_BATCH_SINCE) {
            return Ok(WithDirectGet {
                stream: events,
                get: None,
            });
        }
        let name = events.cached_info().config.name.clone();
        if !events.cached_info().config.allow_direct {
            let config = stream::Config {
                allow_direct: true,
                ..events.cached_info().config.clone()
            };
            context.update_stream(config).await.map_err(|error| {
                Error::backend(
                    BACKEND,
                    format!("allowing direct gets on the JetStream stream `{name}`"),
                    error,
                )
            })?;
            events = self
                .stream(context, events.cached_info().config.clone())
                .await?;
        }
        let get = events.cached_info().config.allow_direct.then(|| DirectGet {
            subject: format!("$JS.API.DIRECT.GET.{name}"),
            timeout: self.request_timeout,
        });
        Ok(WithDirectGet {
            stream: events,
            get,
        })
    }

    /// What both streams share.
    fn common(&self) -> stream::Config {
        stream::Config {
            num_replicas: self.replicas,
            storage: match self.storage {
                Storage::File => stream::StorageType::File,
                Storage::Memory => stream::StorageType::Memory,
            },
            max_messages: -1,
            max_messages_per_subject: -1,
            max_consumers: -1,
            deny_purge: false,
            ..Default::default()
        }
    }

    /// Gets the stream `config` names, or creates it.
    async fn stream(
        &self,
        context: &jetstream::Context,
        config: stream::Config,
    ) -> Result<stream::Stream> {
        let name = config.name.clone();
        context.get_or_create_stream(config).await.map_err(|error| {
            Error::backend(
                BACKEND,
                format!("creating the JetStream stream `{name}`"),
                error,
            )
        })
    }
}

/// The events stream as [`NatsOptions::direct_get`] left it, and how to batch reads on it.
struct WithDirectGet {
    stream: stream::Stream,
    get: Option<DirectGet>,
}

/// Whether a server version string (`2.12.1`, `2.14.0-beta.2`) is at least `major.minor`.
fn version_at_least(version: &str, (major, minor): (u64, u64)) -> bool {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .map(|part| part.parse::<u64>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    found >= (major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions_compare_by_major_and_minor() {
        assert!(version_at_least("2.12.0", (2, 12)));
        assert!(version_at_least("2.15.1", (2, 12)));
        assert!(version_at_least("3.0.0-beta", (2, 12)));
        assert!(!version_at_least("2.9.10", (2, 12)));
        assert!(!version_at_least("garbage", (2, 12)));
    }

    #[test]
    fn urls_are_split_on_commas() {
        let options = NatsOptions::new("nats://a:1, nats://b:2,");
        assert_eq!(options.urls, ["nats://a:1", "nats://b:2"]);
    }
}
