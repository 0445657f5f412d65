//! How a process runs on the projector's engine: [`Reacting`] presents a process as a
//! projection whose context is a [`ReactionBatch`], a unit of work that collects what a batch of
//! reactions records and commits it with the process's tracking position in one append.
//!
//! The projector brings everything else: the claim and standby, resuming from the tracking
//! position, paging through the log, the error policy, stopping, and re-running a batch whose
//! commit met a version conflict.

use std::sync::Arc;

use super::{Process, ProcessError};
use crate::application::claim::{Claims, Standby};
use crate::application::context::CommandContext;
use crate::application::projection::{
    HandlerError, Projection, ProjectionContext, ProjectionError,
};
use crate::application::repository::Recorded;
use crate::application::unit_of_work::{Work, WorkState};
use crate::error::{Error, Result};
use crate::persistence::codec::PayloadCodec;
use crate::persistence::position::Position;
use crate::persistence::record::{Metadata, Tracking};
use crate::persistence::store::EventStore;

/// A process seen as a projection whose "read model" is the events it causes, written with
/// this codec.
pub(crate) struct Reacting<P>(pub(crate) P, pub(crate) PayloadCodec);

impl<P: Process> Projection for Reacting<P> {
    const NAME: &'static str = P::NAME;
    type Event = P::Event;
    type Context = ReactionBatch;

    async fn project(
        &mut self,
        event: Recorded<P::Event>,
        batch: &mut ReactionBatch,
    ) -> Result<(), HandlerError> {
        let context = CommandContext::caused_by(event.id, &event.metadata).with_actor(P::NAME);
        let state = batch.take_state();
        batch.codec.get_or_insert_with(|| self.1.clone());
        let mut work = Work::new(&*batch.store, self.1.clone(), state);
        work.enter_context(context.to_metadata());
        let outcome = context.scope(self.0.react(event, &mut work)).await;
        batch.state = Some(work.into_state());
        outcome
    }

    fn describe(error: &ProjectionError) -> String {
        ProcessError::from_projection(P::NAME, error).to_string()
    }
}

/// What the reactions of one batch recorded, on the store they loaded from.
pub(crate) struct ReactionBatch {
    store: Arc<dyn EventStore>,
    state: Option<WorkState<dyn EventStore>>,
    /// The process's codec, set by its first reaction (a batch without reactions commits only
    /// its tracking position, and encodes nothing).
    codec: Option<PayloadCodec>,
}

impl ReactionBatch {
    fn take_state(&mut self) -> WorkState<dyn EventStore> {
        // Absent only while a reaction runs; a reaction cancelled mid-way drops the batch.
        self.state
            .take()
            .unwrap_or_else(|| WorkState::new(Metadata::new()))
    }
}

impl<S: Claims> ProjectionContext<S> for ReactionBatch {
    type Claim = S::Claim;

    async fn claim(store: &S, tracker: &str, standby: &Standby) -> Result<S::Claim> {
        store.claim(tracker, standby).await
    }

    async fn claim_lost(claim: &mut S::Claim) {
        S::claim_lost(claim).await;
    }

    async fn release(claim: S::Claim, store: &S) {
        store.release(claim).await;
    }

    async fn resume_position(store: &S, tracker: &str) -> Result<Position> {
        store.tracking_position(tracker).await
    }

    async fn begin(store: &S, _: &str) -> Result<Self> {
        Ok(Self {
            store: Arc::new(store.clone()),
            state: Some(WorkState::new(Metadata::new())),
            codec: None,
        })
    }

    /// One append: every event the batch's reactions recorded, and the tracking position.
    async fn commit(mut self, _: &S, tracker: &str, position: Position) -> Result<()> {
        let state = self.take_state();
        let codec = self.codec.take().unwrap_or_default();
        let mut work = Work::new(&*self.store, codec, state);
        let tracking = Tracking {
            tracker: tracker.to_owned(),
            position,
        };
        work.commit(Some(tracking)).await.map(drop)
    }

    async fn rollback(self) {}

    /// A process has no read model to clear, and its caused events stay: starting it over
    /// would react to every upstream event a second time. [`ProcessManager`](super::ProcessManager)
    /// offers no rebuild, so this only answers a direct call.
    async fn forget(self, _: &S, tracker: &str) -> Result<()> {
        Err(Error::Config {
            backend: "process",
            message: format!(
                "process `{tracker}` can't be rebuilt: its caused events are stored, and reacting again would cause them twice"
            ),
        })
    }
}
