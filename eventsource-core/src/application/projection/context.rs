//! The context a store gives a projection's handlers, how a batch of their work commits
//! together with the projection's tracking position, and the claim that keeps a projection to
//! one active runner.

use std::future::Future;

pub use crate::application::claim::Standby;

use crate::error::Result;
use crate::persistence::position::Position;
use crate::persistence::store::EventStore;

/// How a store hands a projection its context `Self` for a batch of events, and commits the
/// batch with the projection's tracking position. Implemented for `()` on every store (no
/// transaction; the position is kept in memory) and by the SQL stores for their transactions.
///
/// # One active runner
///
/// Before it processes anything, a projector takes the projection's **claim** with
/// [`claim`](Self::claim) and holds it for as long as it runs. A store whose read models are
/// shared between processes makes the claim exclusive: of the projectors of one projection (one
/// tracker name) on one database, in any number of processes, one is active and the others
/// wait on standby; when the active one stops, crashes or loses its connection, a standby takes
/// the claim, re-reads the tracking position and carries on. `()` claims nothing: an in-memory
/// read model belongs to its process, and every process runs its own.
///
/// The claim keeps runners from working side by side; it is not what makes a batch exactly
/// once. A projector notices a lost claim between batches, so a batch in flight when the claim
/// went can still commit: [`commit`](Self::commit) records positions only forward, so of two
/// runners committing the same events only one succeeds. The other fails with
/// [`TrackingConflict`](crate::Error::TrackingConflict), and its projector drops that batch and
/// claims again from the recorded position (or, if a handler's write collides with the other
/// runner's first, with the handler's error, and the error policy applies).
pub trait ProjectionContext<S: ?Sized>: Sized + Send {
    /// What a projector holds while it is the projection's active runner; giving it up
    /// ([`release`](Self::release), or dropping it) lets a standby take over.
    type Claim: Send;

    /// Waits until this runner is the projection's active one, and returns its claim. While
    /// another runner holds the claim, it calls [`Standby::waiting`] and tries again every
    /// [`Standby::interval`]. Cancelling the future gives up waiting.
    fn claim(
        store: &S,
        tracker: &str,
        standby: &Standby,
    ) -> impl Future<Output = Result<Self::Claim>> + Send;

    /// Resolves when `claim` is lost: its connection ended, or its lease expired and another
    /// runner took it. The projector then stops processing and goes back to standby. Never
    /// resolves for a claim that can't be lost.
    fn claim_lost(claim: &mut Self::Claim) -> impl Future<Output = ()> + Send;

    /// Gives `claim` up at once, so that a standby takes over without waiting for it to expire.
    fn release(claim: Self::Claim, store: &S) -> impl Future<Output = ()> + Send;

    /// Where the projection resumes: its recorded tracking position (or the start).
    fn resume_position(store: &S, tracker: &str) -> impl Future<Output = Result<Position>> + Send;

    /// Starts a batch.
    fn begin(store: &S, tracker: &str) -> impl Future<Output = Result<Self>> + Send;

    /// Commits the batch's writes and the tracking position `position` together.
    fn commit(
        self,
        store: &S,
        tracker: &str,
        position: Position,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Drops the batch's writes.
    fn rollback(self) -> impl Future<Output = ()> + Send;

    /// Commits the batch's writes (a rebuild clearing the read model) and deletes the
    /// projection's tracking record in the same transaction, so the projection starts over.
    fn forget(self, store: &S, tracker: &str) -> impl Future<Output = Result<()>> + Send;
}

/// No transaction: a read model in memory (rebuilt from the log each start) or elsewhere (it
/// keeps its own position; start the projector there). No claim: every process runs its own.
impl<S: EventStore + ?Sized> ProjectionContext<S> for () {
    type Claim = ();

    async fn claim(_: &S, _: &str, _: &Standby) -> Result<()> {
        Ok(())
    }

    async fn claim_lost(_: &mut ()) {
        std::future::pending::<()>().await;
    }

    async fn release(_: (), _: &S) {}

    async fn resume_position(_: &S, _: &str) -> Result<Position> {
        Ok(Position::START)
    }

    async fn begin(_: &S, _: &str) -> Result<Self> {
        Ok(())
    }

    async fn commit(self, _: &S, _: &str, _: Position) -> Result<()> {
        Ok(())
    }

    async fn rollback(self) {}

    async fn forget(self, _: &S, _: &str) -> Result<()> {
        Ok(())
    }
}
