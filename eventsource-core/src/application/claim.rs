//! One active runner per component: the claim a projector or a process manager takes before it
//! processes anything, so that of the runners of one component on one shared database (in any
//! number of processes) one works and the others wait on standby, taking over when it stops or
//! dies.
//!
//! | store | claim | a crashed holder is replaced |
//! |---|---|---|
//! | [`PostgresStore`](crate::PostgresStore) | a session advisory lock on a connection of its own | as soon as the server sees its connection end |
//! | [`SqliteStore`](crate::SqliteStore) | a lease row in the file, renewed while it runs | once its lease expires (10 s) |
//! | [`MemoryStore`] | none: the store lives in one process | — |
//!
//! A claim keeps runners from working side by side; it is not what makes their work exactly
//! once. That is the tracking position committed with the work, which only moves forward: of
//! two runners committing the same events (one lost its claim mid-batch), only one succeeds.

use std::future::Future;
use std::time::Duration;

use crate::error::Result;
use crate::persistence::store::EventStore;
use crate::stores::memory::MemoryStore;

/// A store that can make one runner of a component (named by its tracker) the active one among
/// all the processes sharing the store: what a [`ProcessManager`](crate::process::ProcessManager)
/// and a [`System`](crate::system::System) need of a store.
pub trait Claims: EventStore + Clone + 'static {
    /// What the active runner holds; giving it up ([`release`](Self::release), or dropping
    /// it) lets a standby take over.
    type Claim: Send + 'static;

    /// Waits until this runner is the active one for `tracker`, and returns its claim. While
    /// another runner holds the claim, it calls [`Standby::waiting`] and tries again every
    /// [`Standby::interval`]. Cancelling the future gives up waiting.
    fn claim(
        &self,
        tracker: &str,
        standby: &Standby,
    ) -> impl Future<Output = Result<Self::Claim>> + Send;

    /// Resolves when `claim` is lost: its connection ended, or its lease expired and another
    /// runner took it. Never resolves for a claim that can't be lost.
    fn claim_lost(claim: &mut Self::Claim) -> impl Future<Output = ()> + Send;

    /// Gives `claim` up at once, so that a standby takes over without waiting for it to expire.
    fn release(&self, claim: Self::Claim) -> impl Future<Output = ()> + Send;
}

/// The memory store lives in one process: every runner of it is the only one.
impl Claims for MemoryStore {
    type Claim = ();

    async fn claim(&self, _: &str, _: &Standby) -> Result<()> {
        Ok(())
    }

    async fn claim_lost(_: &mut ()) {
        std::future::pending::<()>().await;
    }

    async fn release(&self, _: ()) {}
}

impl<S: Claims> Claims for std::sync::Arc<S> {
    type Claim = S::Claim;

    fn claim(
        &self,
        tracker: &str,
        standby: &Standby,
    ) -> impl Future<Output = Result<S::Claim>> + Send {
        (**self).claim(tracker, standby)
    }

    fn claim_lost(claim: &mut S::Claim) -> impl Future<Output = ()> + Send {
        S::claim_lost(claim)
    }

    fn release(&self, claim: S::Claim) -> impl Future<Output = ()> + Send {
        (**self).release(claim)
    }
}

/// What a claim ([`Claims::claim`], [`ProjectionContext::claim`](crate::projection::ProjectionContext::claim))
/// is told while it waits for another runner to let go: how often to try, and whom to tell that
/// this runner is on standby.
pub struct Standby {
    interval: Duration,
    tracker: String,
    on_standby: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Standby {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standby")
            .field("interval", &self.interval)
            .field("tracker", &self.tracker)
            .finish_non_exhaustive()
    }
}

impl Standby {
    pub(crate) fn new(
        tracker: &str,
        interval: Duration,
        on_standby: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        Self {
            interval,
            tracker: tracker.to_owned(),
            on_standby: Box::new(on_standby),
        }
    }

    /// How long to wait between two tries to take the claim.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Says that another runner holds the claim and this one waits: logs it (at `info`) and
    /// shows it in the projector's status. Call it on each failed try; it logs only the first.
    pub fn waiting(&self) {
        (self.on_standby)();
    }

    /// The projection's tracking name, for log lines.
    pub fn tracker(&self) -> &str {
        &self.tracker
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memory store's claim can't be lost. The clock is paused: the hour passes at once
    /// when nothing else is left to run, so the test waits for no real time.
    #[tokio::test(start_paused = true)]
    async fn a_memory_store_claim_is_held_until_released() {
        let store = MemoryStore::new();
        let standby = Standby::new("ledger", Duration::from_millis(10), || {
            panic!("nobody else can hold a memory store's claim")
        });
        // The claim is `()`: taken at once, nothing to hold.
        store.claim("ledger", &standby).await.unwrap();
        let lost =
            tokio::time::timeout(Duration::from_secs(3600), MemoryStore::claim_lost(&mut ())).await;
        assert!(lost.is_err(), "the claim was reported lost");
        store.release(()).await;
    }
}
