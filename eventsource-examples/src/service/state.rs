//! What the service runs on: the repositories the routes command, the statements read model
//! the balances come from, and the `transfers` process that moves the money, as the bank demo
//! wires them.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use eventsource_core::persistence::codec::PayloadCodec;
use eventsource_core::process::{ProcessError, RunningProcess};
use eventsource_core::{Claims, EventStore, HandlerError, ProcessManager, Repository};
use tokio::net::TcpListener;

use crate::OpenedStore;
use crate::bank::BankAccount;
use crate::statements::ReadSide;
use crate::transfers::{MoneyTransfer, Transfers};

/// How the service runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How payloads are written and read (see [`OpenedStore::codec`]).
    pub codec: PayloadCodec,
    /// How many times a command is tried on version conflicts before the service answers 409
    /// (`None`: the repository's default).
    pub max_attempts: Option<u32>,
    /// How long a read with `?after=` waits for the read model before it answers 503.
    pub read_timeout: Duration,
}

impl Default for Settings {
    /// Plain JSON payloads, the repository's retries, 5 s for the read model.
    fn default() -> Self {
        Self {
            codec: PayloadCodec::new(),
            max_attempts: None,
            read_timeout: Duration::from_secs(5),
        }
    }
}

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The statements read model failed (its tables, its projection).
    #[error("the statements read model failed: {0}")]
    ReadModel(HandlerError),
    /// The `transfers` process stopped with an error.
    #[error("the transfers process failed: {0}")]
    Process(#[from] ProcessError),
    /// Serving HTTP failed.
    #[error("serving HTTP failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The accounts repository, over any store.
pub(crate) type Accounts = Repository<BankAccount, Arc<dyn EventStore>>;
/// The transfers repository, over any store.
pub(crate) type TransferRequests = Repository<MoneyTransfer, Arc<dyn EventStore>>;

/// What every route shares.
pub(crate) struct Bank {
    pub(crate) accounts: Accounts,
    pub(crate) transfers: TransferRequests,
    pub(crate) read_side: ReadSide,
    pub(crate) read_timeout: Duration,
}

impl std::fmt::Debug for Bank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bank")
            .field("read_side", &self.read_side)
            .field("read_timeout", &self.read_timeout)
            .finish_non_exhaustive()
    }
}

/// The `transfers` process, running on the store's own type (its tracking and claim are the
/// store's).
#[derive(Debug)]
enum TransfersProcess {
    Memory(RunningProcess<Transfers, Arc<eventsource_core::MemoryStore>>),
    Sqlite(RunningProcess<Transfers, eventsource_core::SqliteStore>),
    #[cfg(feature = "postgres")]
    Postgres(RunningProcess<Transfers, eventsource_core::PostgresStore>),
    #[cfg(feature = "nats")]
    Nats(RunningProcess<Transfers, eventsource_core::stores::nats::NatsStore>),
}

impl TransfersProcess {
    fn spawn(store: &OpenedStore, codec: &PayloadCodec) -> Self {
        fn on<S: Claims>(store: S, codec: &PayloadCodec) -> RunningProcess<Transfers, S> {
            ProcessManager::new(store, Transfers)
                .codec(codec.clone())
                .spawn()
        }
        match store {
            OpenedStore::Memory(store) => Self::Memory(on(Arc::clone(store), codec)),
            OpenedStore::Sqlite(store) => Self::Sqlite(on(store.clone(), codec)),
            #[cfg(feature = "postgres")]
            OpenedStore::Postgres(store) => Self::Postgres(on(store.clone(), codec)),
            #[cfg(feature = "nats")]
            OpenedStore::Nats(store) => Self::Nats(on(store.clone(), codec)),
        }
    }

    async fn stop(self) -> Result<(), ProcessError> {
        match self {
            Self::Memory(running) => running.stop().await.1,
            Self::Sqlite(running) => running.stop().await.1,
            #[cfg(feature = "postgres")]
            Self::Postgres(running) => running.stop().await.1,
            #[cfg(feature = "nats")]
            Self::Nats(running) => running.stop().await.1,
        }
    }
}

/// The bank service: its repositories, read model and process, ready to serve HTTP.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use eventsource_examples::OpenedStore;
/// use eventsource_examples::service::{BankService, Settings};
///
/// let store = OpenedStore::open("sqlite://bank.db").await?;
/// let service = BankService::start(&store, Settings::default()).await?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// service.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct BankService {
    bank: Arc<Bank>,
    transfers: TransfersProcess,
}

impl BankService {
    /// Starts the statements read model (creating its tables if the store keeps them) and the
    /// `transfers` process on `store`.
    pub async fn start(store: &OpenedStore, settings: Settings) -> Result<Self, ServiceError> {
        let read_side = ReadSide::start(store, settings.codec.clone())
            .await
            .map_err(ServiceError::ReadModel)?;
        let mut accounts = Repository::new(store.events()).codec(settings.codec.clone());
        if let Some(attempts) = settings.max_attempts {
            accounts = accounts.max_attempts(attempts);
        }
        let transfers = Repository::new(store.events()).codec(settings.codec.clone());
        Ok(Self {
            bank: Arc::new(Bank {
                accounts,
                transfers,
                read_side,
                read_timeout: settings.read_timeout,
            }),
            transfers: TransfersProcess::spawn(store, &settings.codec),
        })
    }

    /// The HTTP routes (see [the module](super)).
    pub fn router(&self) -> Router {
        super::routes::router(Arc::clone(&self.bank))
    }

    /// Serves HTTP on `listener` until `shutdown` completes, lets the requests in flight finish,
    /// then stops the read model and the process.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServiceError> {
        if let Ok(address) = listener.local_addr() {
            tracing::info!(%address, "the bank service is listening");
        }
        let served = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await;
        let stopped = self.stop().await;
        served?;
        stopped
    }

    /// Stops the `transfers` process and the read model after the batches in hand.
    pub async fn stop(self) -> Result<(), ServiceError> {
        let process = self.transfers.stop().await;
        let read_model = match Arc::try_unwrap(self.bank) {
            Ok(bank) => bank.read_side.stop().await.map_err(ServiceError::ReadModel),
            Err(_) => {
                tracing::warn!("a router is still in use: the read model stops with the runtime");
                Ok(())
            }
        };
        process?;
        read_model
    }
}
