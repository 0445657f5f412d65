//! The bank's read side: every account's balance and statement, built from the log (not from
//! the aggregates) by a projection, for the demo to print.
//!
//! Where the read model lives follows the store:
//! - on SQLite ([`sqlite`]) and PostgreSQL ([`postgres`]) it is two tables in the store's own
//!   database, `bank_balances` and `bank_statement_lines`, written through the store's
//!   transaction (`SqliteWork`, `PostgresWork`), so each batch commits with the projection's
//!   tracking position: every event counts exactly once, and the next run resumes where this one
//!   stopped;
//! - on the memory store ([`memory`]) it is a map in memory, rebuilt from the log at each start.
//!
//! The three share [`line`](mod@line): what an event does to its account's balance and the text of its
//! statement line. What differs is only where the rows are kept and how they are read back.

pub mod line;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sqlite;

use eventsource_core::persistence::codec::PayloadCodec;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use eventsource_core::projection::{ProjectionContext, ProjectionError, RunningProjection};
use eventsource_core::{
    EventStore, HandlerError, Position, Projection, Projector, SqliteStore, Uuid,
};

use crate::OpenedStore;
pub use memory::Statements;

/// One account's balance, as the read model keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    /// The account (its stream id).
    pub account: Uuid,
    /// Who owns the account.
    pub owner: String,
    /// Its balance in cents.
    pub cents: u64,
}

/// What the read model holds once the projection has stopped, read back from where it lives.
#[derive(Debug, Clone)]
pub struct Report {
    /// Where the read model lives, in words.
    pub kept_in: String,
    /// The tracking position the projection started after: where an earlier run stopped, or
    /// the start of the log.
    pub resumed_after: Position,
    /// How many events this run handled.
    pub processed: u64,
    /// Every account's balance, by account id.
    pub balances: Vec<Balance>,
    /// The last lines of the statement asked for, oldest first.
    pub statement: Vec<String>,
}

/// The statements projection running beside the demo, in the form the store allows.
#[derive(Debug)]
pub enum ReadSide {
    /// In memory (the memory store, or an SQLite database with no file), with a view of its
    /// accounts.
    Memory(Follower<Statements, Arc<dyn EventStore>>, memory::Accounts),
    /// Tables in the store's SQLite file.
    Sqlite(Follower<sqlite::SqliteStatements, SqliteStore>),
    /// Tables in the store's PostgreSQL schema.
    #[cfg(feature = "postgres")]
    Postgres(Follower<postgres::PostgresStatements, eventsource_core::PostgresStore>),
}

/// A running projection and the tracking position it started after.
pub struct Follower<P: Projection, S> {
    store: S,
    running: RunningProjection<P, S>,
    resumed_after: Position,
}

impl<P: Projection, S> fmt::Debug for Follower<P, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Follower")
            .field("projection", &P::NAME)
            .field("status", &self.running.status())
            .field("resumed_after", &self.resumed_after)
            .finish_non_exhaustive()
    }
}

impl<P, S> Follower<P, S>
where
    P: Projection,
    S: EventStore + Clone + Send + Sync + 'static,
    P::Context: ProjectionContext<S>,
{
    async fn spawn(store: S, projection: P, codec: PayloadCodec) -> Result<Self, HandlerError> {
        let resumed_after = store.tracking_position(P::NAME).await?;
        let running = Projector::new(store.clone(), projection)
            .codec(codec)
            .poll_interval(Duration::from_secs(1))
            .spawn();
        Ok(Self {
            store,
            running,
            resumed_after,
        })
    }

    async fn stop(self) -> Result<(P, S, Position), HandlerError> {
        let (projector, outcome) = self.running.stop().await;
        outcome?;
        let projection = projector
            .ok_or("the statements projection ended without its projector")?
            .into_projection();
        Ok((projection, self.store, self.resumed_after))
    }
}

impl ReadSide {
    /// Creates the read model's tables if the store keeps them, and starts the projection: it
    /// resumes after its tracking position and follows the log live, decoding with `codec`
    /// (which brings the keys of encrypted events).
    pub async fn start(store: &OpenedStore, codec: PayloadCodec) -> Result<Self, HandlerError> {
        Ok(match store {
            OpenedStore::Sqlite(sqlite) if sqlite.path().is_some() => {
                sqlite::create_tables(sqlite)?;
                Self::Sqlite(Follower::spawn(sqlite.clone(), Default::default(), codec).await?)
            }
            #[cfg(feature = "postgres")]
            OpenedStore::Postgres(pg) => {
                let projection = postgres::PostgresStatements::create_tables(pg).await?;
                Self::Postgres(Follower::spawn(pg.clone(), projection, codec).await?)
            }
            _ => {
                let statements = Statements::default();
                let accounts = statements.accounts();
                Self::Memory(
                    Follower::spawn(store.events(), statements, codec).await?,
                    accounts,
                )
            }
        })
    }

    /// Waits until the projection has handled everything up to `position`, at most `timeout`
    /// (`Ok(false)` if the time ran out). Any number of tasks may wait at once.
    pub async fn wait_for(
        &self,
        position: Position,
        timeout: Duration,
    ) -> Result<bool, ProjectionError> {
        match self {
            Self::Memory(f, _) => f.running.wait_for(position, timeout).await,
            Self::Sqlite(f) => f.running.wait_for(position, timeout).await,
            #[cfg(feature = "postgres")]
            Self::Postgres(f) => f.running.wait_for(position, timeout).await,
        }
    }

    /// How far the projection has got: every event up to this position is in the read model.
    pub fn position(&self) -> Position {
        match self {
            Self::Memory(f, _) => f.running.status().position,
            Self::Sqlite(f) => f.running.status().position,
            #[cfg(feature = "postgres")]
            Self::Postgres(f) => f.running.status().position,
        }
    }

    /// Reads every account's balance from the read model while the projection runs, by account
    /// id, or only `account`'s (none if the read model has not seen it yet).
    pub async fn balances(&self, account: Option<Uuid>) -> Result<Vec<Balance>, HandlerError> {
        match self {
            Self::Memory(_, accounts) => Ok(accounts.balances(account)),
            Self::Sqlite(f) => {
                let store = f.store.clone();
                tokio::task::spawn_blocking(move || sqlite::read_balances(&store, account)).await?
            }
            #[cfg(feature = "postgres")]
            Self::Postgres(f) => postgres::read_balances(&f.store, account).await,
        }
    }

    /// Stops the projection after the batch in hand; the error it had stopped with, if any.
    pub async fn stop(self) -> Result<(), HandlerError> {
        match self {
            Self::Memory(f, _) => f.stop().await.map(drop),
            Self::Sqlite(f) => f.stop().await.map(drop),
            #[cfg(feature = "postgres")]
            Self::Postgres(f) => f.stop().await.map(drop),
        }
    }

    /// Stops the projection and reads the read model back: every balance, and the last `lines`
    /// lines of `account`'s statement.
    pub async fn finish(self, account: Uuid, lines: usize) -> Result<Report, HandlerError> {
        match self {
            Self::Memory(f, _) => {
                let (statements, _, resumed_after) = f.stop().await?;
                Ok(statements.report(resumed_after, account, lines))
            }
            Self::Sqlite(f) => {
                let (statements, store, resumed_after) = f.stop().await?;
                statements.report(&store, resumed_after, account, lines)
            }
            #[cfg(feature = "postgres")]
            Self::Postgres(f) => {
                let (statements, store, resumed_after) = f.stop().await?;
                statements
                    .report(&store, resumed_after, account, lines)
                    .await
            }
        }
    }
}
