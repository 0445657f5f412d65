//! The context a store gives a projection's handlers, and how a batch of their work commits
//! together with the projection's tracking position.

use std::future::Future;

use crate::error::Result;
use crate::persistence::position::Position;
use crate::persistence::store::EventStore;

/// How a store hands a projection its context `Self` for a batch of events, and commits the
/// batch with the projection's tracking position. Implemented for `()` on every store (no
/// transaction; the position is kept in memory) and by the SQL stores for their transactions.
pub trait ProjectionContext<S: ?Sized>: Sized + Send {
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
}

/// No transaction: a read model in memory (rebuilt from the log each start) or elsewhere (it
/// keeps its own position; start the projector there).
impl<S: EventStore + ?Sized> ProjectionContext<S> for () {
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
}
