//! [`ProcessManager`]: runs a process over the log, to catch up (tests) or on a tokio task
//! (live), on the projector's engine; [`RunningProcess`] is the live one; [`ProcessError`] says
//! why one stopped.

use crate::persistence::codec::PayloadCodec;
use std::time::Duration;

use super::Process;
use super::batch::Reacting;
use crate::application::claim::Claims;
use crate::application::projection::{
    ErrorPolicy, HandlerError, ProjectionError, Projector, RunnerRole, RunnerStatus,
    RunningProjection,
};
use crate::application::retry::{Backoff, RetryPolicy};
use crate::error::{Error, Result};
use crate::persistence::position::Position;

/// Why a process manager stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// A reaction failed (after the retries of the error policy); the process's tracking
    /// position is on the upstream event before it, and nothing the reaction recorded is
    /// written.
    #[error(
        "process `{process}` stopped at event `{event}` (stream {stream}, version {version}, position {position}): {source}"
    )]
    Reaction {
        /// The process's name.
        process: &'static str,
        /// The upstream event's name.
        event: String,
        /// Its stream.
        stream: uuid::Uuid,
        /// Its version in the stream.
        version: u64,
        /// Its position in the log.
        position: Position,
        /// What the reaction said.
        source: HandlerError,
    },
    /// Reading, decoding or appending failed (a decode error names the record; a batch that
    /// kept meeting version conflicts is [`Error::TooManyConflicts`]).
    #[error("process `{process}`: {source}")]
    Store {
        /// The process's name.
        process: &'static str,
        /// The store's error.
        source: Error,
    },
    /// It stopped (by an error, or a call to stop) while something waited for it.
    #[error("{message}")]
    Stopped {
        /// The process's name.
        process: &'static str,
        /// Why: the error that stopped it, or that it was stopped.
        message: String,
    },
    /// The process's task panicked or was cancelled.
    #[error("process `{process}`'s task ended abnormally: {message}")]
    Task {
        /// The process's name.
        process: &'static str,
        /// What the runtime said.
        message: String,
    },
}

impl ProcessError {
    /// The engine's error, told as the process's (for the status of a running process, which
    /// keeps a message, not the error).
    pub(super) fn from_projection(process: &'static str, error: &ProjectionError) -> String {
        match error {
            ProjectionError::Handler {
                event,
                stream,
                version,
                position,
                source,
                ..
            } => ProcessError::Reaction {
                process,
                event: event.clone(),
                stream: *stream,
                version: *version,
                position: *position,
                source: source.to_string().into(),
            }
            .to_string(),
            ProjectionError::Store { source, .. } => format!("process `{process}`: {source}"),
            other => other.to_string(),
        }
    }

    fn from_engine(process: &'static str, error: ProjectionError) -> Self {
        match error {
            ProjectionError::Handler {
                event,
                stream,
                version,
                position,
                source,
                ..
            } => ProcessError::Reaction {
                process,
                event,
                stream,
                version,
                position,
                source,
            },
            ProjectionError::Store { source, .. } => ProcessError::Store { process, source },
            ProjectionError::Stopped { message, .. } => ProcessError::Stopped { process, message },
            ProjectionError::Task { message, .. } => ProcessError::Task { process, message },
            other => ProcessError::Task {
                process,
                message: other.to_string(),
            },
        }
    }
}

/// The default conflict policy of a process: a conflict means another writer made progress,
/// so a process keeps trying (up to 50 times, 1 ms to 200 ms apart) before it stops.
fn default_conflicts() -> RetryPolicy {
    RetryPolicy::new(
        50,
        Backoff::exponential(Duration::from_millis(1), Duration::from_millis(200)),
    )
}

/// Runs a process `P` over the log of store `S`: for each batch of upstream events (up to
/// [`page_size`](Self::page_size)), their reactions in one [`ProcessWork`](super::ProcessWork),
/// then one atomic append of everything they recorded with the process's tracking position.
/// See the [module docs](super) for the guarantees.
///
/// [`catch_up`](Self::catch_up) reacts to everything there is and returns (tests; a
/// [`System`](crate::system::System) runs it until nothing is left); [`spawn`](Self::spawn)
/// keeps following the log on a tokio task, as the process's active runner or on standby.
#[derive(Debug)]
pub struct ProcessManager<P: Process, S> {
    engine: Projector<Reacting<P>, S>,
}

impl<P: std::fmt::Debug> std::fmt::Debug for Reacting<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<P: Process, S: Claims> ProcessManager<P, S> {
    /// A process manager for `process` over `store`, resuming from its tracking position.
    pub fn new(store: S, process: P) -> Self {
        Self {
            engine: Projector::new(store, Reacting(process, PayloadCodec::default()))
                .conflict_retry(default_conflicts()),
        }
    }

    /// Decodes upstream payloads and writes the events reactions cause with `codec` (format,
    /// compression, encryption): give it the codec the aggregates' repositories use.
    pub fn codec(mut self, codec: PayloadCodec) -> Self {
        self.engine.projection_mut().1 = codec.clone();
        self.engine = self.engine.codec(codec);
        self
    }

    /// Reacts only to upstream events after `position`: for a process added to a store with a
    /// history, which must not act on events from before it existed (pass
    /// [`EventStore::last_position`](crate::EventStore::last_position) when you deploy it). A
    /// tracking position the store recorded further on wins, so keeping this call in the
    /// program is safe across restarts.
    pub fn starting_after(mut self, position: Position) -> Self {
        self.engine = self.engine.starting_after(position);
        self
    }

    /// At most this many upstream events per batch (one append; default 500, at least 1). A
    /// version conflict runs the whole batch again, so under heavy contention on the aggregates
    /// it touches, a smaller batch wastes less.
    pub fn page_size(mut self, events: usize) -> Self {
        self.engine = self.engine.page_size(events);
        self
    }

    /// How long a live process waits for a wake-up before reading again (default 1 s).
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.engine = self.engine.poll_interval(poll);
        self
    }

    /// How often a runner on standby tries to take the process's claim (default 500 ms).
    pub fn standby_interval(mut self, interval: Duration) -> Self {
        self.engine = self.engine.standby_interval(interval);
        self
    }

    /// What to do when a reaction fails (default: three tries, then stop).
    pub fn on_error(mut self, policy: ErrorPolicy) -> Self {
        self.engine = self.engine.on_error(policy);
        self
    }

    /// How a batch that met a version conflict is run again (default: up to 50 tries, 1 ms to
    /// 200 ms apart; then the process stops with [`Error::TooManyConflicts`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.engine = self.engine.conflict_retry(policy);
        self
    }

    /// The process.
    pub fn process(&self) -> &P {
        &self.engine.projection().0
    }

    /// The process, taken out.
    pub fn into_process(self) -> P {
        self.engine.into_projection().0
    }

    /// Every upstream event up to this position has been reacted to (`None` before the first
    /// run).
    pub fn position(&self) -> Option<Position> {
        self.engine.position()
    }

    /// Reacts to every upstream event there is now, then returns the position it reached. It
    /// takes the process's claim first (waiting while another runner holds it) and gives it up
    /// when done. Events its reactions cause are not reacted to in the same call if they arrive
    /// after the log was read; a [`System`](crate::system::System) runs its components until
    /// nothing is left.
    pub async fn catch_up(&mut self) -> Result<Position, ProcessError> {
        self.engine
            .catch_up()
            .await
            .map_err(|error| ProcessError::from_engine(P::NAME, error))
    }

    /// Runs on a tokio task, following the log until [`RunningProcess::stop`] or an error; on
    /// standby while another runner holds the process's claim.
    pub fn spawn(self) -> RunningProcess<P, S> {
        RunningProcess {
            engine: self.engine.spawn(),
        }
    }
}

/// A process manager running on a tokio task.
#[derive(Debug)]
pub struct RunningProcess<P: Process, S> {
    engine: RunningProjection<Reacting<P>, S>,
}

impl<P: Process, S: Claims> RunningProcess<P, S> {
    /// Where it stands now.
    pub fn status(&self) -> RunnerStatus {
        self.engine.status()
    }

    /// How many upstream events are stored after its position (at most `cap` counted).
    pub async fn events_behind(&self, cap: u64) -> Result<u64> {
        self.engine.events_behind(cap).await
    }

    /// Waits until every upstream event up to `position` has been reacted to, at most
    /// `timeout`. `Ok(false)` if the time ran out; an error if the process stopped first.
    pub async fn wait_for(
        &mut self,
        position: Position,
        timeout: Duration,
    ) -> Result<bool, ProcessError> {
        self.engine
            .wait_for(position, timeout)
            .await
            .map_err(|error| ProcessError::from_engine(P::NAME, error))
    }

    /// Waits until the runner takes `role` (for example [`RunnerRole::Active`] on a standby that
    /// should take over), at most `timeout`; whether it did.
    pub async fn wait_for_role(&mut self, role: RunnerRole, timeout: Duration) -> bool {
        self.engine.wait_for_role(role, timeout).await
    }

    /// Stops after the batch in hand, and returns the process manager and what ended it: `Ok`
    /// for this call, the error if one had stopped it already.
    pub async fn stop(self) -> (Option<ProcessManager<P, S>>, Result<(), ProcessError>) {
        let (engine, outcome) = self.engine.stop().await;
        (
            engine.map(|engine| ProcessManager { engine }),
            outcome.map_err(|error| ProcessError::from_engine(P::NAME, error)),
        )
    }
}
