//! Where the server is, the schema and table names, the pool: [`PostgresOptions`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::claim;
use super::horizon::HorizonWatch;
use super::listen::{self, ListenTarget, Wake};
use super::notify::Notifier;
use super::schema::{Names, Sql};
use super::{BACKEND, PostgresStore};
use crate::error::{Error, Result};

/// How to reach the server.
#[derive(Clone)]
enum Target {
    Url(String),
    Config(Box<tokio_postgres::Config>),
}

/// Options for [`PostgresStore`]: where the server is, the schema and table names, and the pool.
///
/// ```
/// use eventsource_core::stores::postgres::PostgresOptions;
/// use std::time::Duration;
///
/// let options = PostgresOptions::new("postgres://app@db.internal/orders")
///     .schema("orders_events")
///     .pool_size(20)
///     .wait_timeout(Duration::from_secs(5));
/// # let _ = options;
/// ```
#[derive(Clone)]
pub struct PostgresOptions {
    target: Target,
    names: Names,
    pool_size: usize,
    wait_timeout: Duration,
    connect_timeout: Duration,
    appender_warning: Duration,
    notify: bool,
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The parsed config's Debug hides the password; a URL is never printed as given.
        let target = match &self.target {
            Target::Url(url) => url
                .parse::<tokio_postgres::Config>()
                .map(|c| format!("{c:?}"))
                .unwrap_or_else(|_| "<unparseable connection string>".into()),
            Target::Config(config) => format!("{config:?}"),
        };
        f.debug_struct("PostgresOptions")
            .field("target", &target)
            .field("names", &self.names)
            .field("pool_size", &self.pool_size)
            .field("wait_timeout", &self.wait_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("appender_warning", &self.appender_warning)
            .field("notify", &self.notify)
            .finish()
    }
}

impl PostgresOptions {
    /// Options for the server at `url` (`postgres://user:password@host:port/database`, or the
    /// `host=… user=…` key/value form), with schema `eventsource`, tables `events`, `snapshots`
    /// and `tracking`, a pool of 16 connections, a 30 s wait for a pooled connection and a 10 s
    /// connect timeout (unless the URL sets `connect_timeout`).
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_target(Target::Url(url.into()))
    }

    /// Options for a server described by a `tokio_postgres` config.
    pub fn from_config(config: tokio_postgres::Config) -> Self {
        Self::with_target(Target::Config(Box::new(config)))
    }

    fn with_target(target: Target) -> Self {
        Self {
            target,
            names: Names {
                schema: "eventsource".into(),
                events: "events".into(),
                snapshots: "snapshots".into(),
                tracking: "tracking".into(),
            },
            pool_size: 16,
            wait_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            appender_warning: Duration::from_secs(30),
            notify: true,
        }
    }

    /// The schema that holds the store's tables (created if missing). ASCII letters, digits and
    /// `_`, not starting with a digit or `pg_`, at most 63 bytes.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.names.schema = schema.into();
        self
    }

    /// The events table's name (default `events`; at most 48 bytes).
    pub fn events_table(mut self, name: impl Into<String>) -> Self {
        self.names.events = name.into();
        self
    }

    /// The snapshots table's name (default `snapshots`; at most 48 bytes).
    pub fn snapshots_table(mut self, name: impl Into<String>) -> Self {
        self.names.snapshots = name.into();
        self
    }

    /// The tracking table's name (default `tracking`; at most 48 bytes).
    pub fn tracking_table(mut self, name: impl Into<String>) -> Self {
        self.names.tracking = name.into();
        self
    }

    /// The most connections the pool opens (default 16, at least 1).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// How long an operation waits for a free pooled connection before failing (default 30 s).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// How long opening a connection may take, unless the URL sets `connect_timeout`
    /// (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long an appender of this store may keep its transaction open before a follower that
    /// waits for it logs a `tracing` warning naming the backend (pid, `application_name`,
    /// transaction age, state and the start of its query). Default 30 s; zero turns the warning
    /// off. [`PostgresStore::horizon`] reports the same for a health check.
    pub fn appender_warning(mut self, after: Duration) -> Self {
        self.appender_warning = after;
        self
    }

    /// Whether appends send a `NOTIFY` so that subscriptions in every process wake up as soon
    /// as events commit (default `true`). See [wake-ups](super#wake-ups).
    ///
    /// The cost: one more connection per store (the notifier, see
    /// [wake-ups](super#wake-ups)), which sends a `NOTIFY` after appends commit, one for all the
    /// appends that committed while its last one was in flight. Appends don't wait for it.
    /// PostgreSQL serializes committing transactions that notify under one cluster-wide lock;
    /// only the notifier's short transactions and [`PostgresStore::append_in`](super::PostgresStore::append_in)
    /// (which notifies inside the caller's transaction) take it. With `false`, appends send
    /// nothing and start no notifier or listener: subscriptions in this process still wake on
    /// this process's own appends, and see everyone else's after their poll interval.
    pub fn notify(mut self, notify: bool) -> Self {
        self.notify = notify;
        self
    }

    /// Connects, creating or migrating the schema.
    ///
    /// Fails with [`Error::Config`] for a bad URL, name or pool size, or a schema created by a
    /// newer build; with [`Error::Backend`] if the server can't be reached.
    pub async fn connect(self) -> Result<PostgresStore> {
        self.names.validate()?;
        if self.pool_size == 0 {
            return Err(Error::Config {
                backend: BACKEND,
                message: "the pool size is 0; it needs at least one connection".into(),
            });
        }
        let mut config = match self.target {
            Target::Url(url) => {
                url.parse::<tokio_postgres::Config>()
                    .map_err(|e| Error::Config {
                        backend: BACKEND,
                        message: format!("the connection string is not valid: {e}"),
                    })?
            }
            Target::Config(config) => *config,
        };
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(self.connect_timeout);
        }
        let connect_timeout = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(self.connect_timeout);
        let listen = self.notify.then(|| {
            let channel = listen::channel(&self.names.schema, &self.names.events);
            ListenTarget::new(config.clone(), channel)
        });
        let sql = Sql::render(
            &self.names,
            listen.as_ref().map(|target| target.channel.as_str()),
        );
        // The notifier sends the same statement `append_in` sends inside its transaction.
        let notifier = sql
            .notify
            .clone()
            .map(|notify| Notifier::new(config.clone(), notify));
        let claim_config = Arc::new(claim::claim_config(config.clone()));
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(self.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(self.wait_timeout))
            // Opening a connection includes the TCP connect and the startup exchange.
            .create_timeout(Some(connect_timeout.saturating_mul(2)))
            .recycle_timeout(Some(connect_timeout))
            .build()
            .map_err(|e| Error::Config {
                backend: BACKEND,
                message: format!("cannot build the connection pool: {e}"),
            })?;
        let store = PostgresStore {
            pool,
            sql: Arc::new(sql),
            wake: Arc::new(Wake::new(listen, notifier)),
            names: Arc::new(self.names),
            watch: Arc::new(HorizonWatch::new(self.appender_warning)),
            claim_config,
        };
        store.migrate().await?;
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_debug_hides_the_password() {
        let options = PostgresOptions::new("postgres://app:s3cret@db/orders");
        let shown = format!("{options:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("orders"), "{shown}");
    }
}
