//! The projector: follows the log, hands each batch of events to a projection's handlers in
//! the store's context, commits the batch with the tracking position, and applies an error
//! policy; run to catch up (tests, rebuilds) or as a tokio task (live). It processes only while
//! it holds the projection's claim (see [`ProjectionContext`]), and waits on standby otherwise.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::context::{ProjectionContext, Standby};
use super::{HandlerError, Projection};
use crate::application::repository::Recorded;
use crate::application::retry::{Backoff, RetryPolicy};
use crate::application::subscription::Subscription;
use crate::domain::event::EventEnum;
use crate::error::{Error, Result};
use crate::persistence::codec::PayloadCodec;
use crate::persistence::position::Position;
use crate::persistence::record::{LogQuery, StoredEvent};
use crate::persistence::store::EventStore;

/// How long a live runner waits before it claims again after a transient store error (busy, or
/// a commit whose outcome is unknown): growing from 100 ms to 10 s.
const TRANSIENT: Backoff =
    Backoff::exponential(Duration::from_millis(100), Duration::from_secs(10));

/// What a projector does when a handler fails.
#[derive(Debug, Clone)]
pub enum ErrorPolicy {
    /// Stop at once. The tracking position stays on the event before the failing one.
    Stop,
    /// Try the failing batch again, waiting with the backoff between tries; after `attempts`
    /// tries in all, stop as [`ErrorPolicy::Stop`] does.
    Retry {
        /// Tries in all, the first included (at least 1).
        attempts: u32,
        /// The wait before each retry.
        backoff: Backoff,
    },
}

impl Default for ErrorPolicy {
    /// Three tries, 100 ms to 5 s apart, then stop.
    fn default() -> Self {
        ErrorPolicy::Retry {
            attempts: 3,
            backoff: Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5)),
        }
    }
}

/// Why a projector stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// A handler refused an event; the tracking position is on the event before it.
    #[error(
        "projection `{projection}` stopped at event `{event}` (stream {stream}, version {version}, position {position}): {source}"
    )]
    Handler {
        /// The projection's name.
        projection: &'static str,
        /// The failing event's name.
        event: String,
        /// Its stream.
        stream: uuid::Uuid,
        /// Its version in the stream.
        version: u64,
        /// Its position in the log.
        position: Position,
        /// What the handler said.
        source: HandlerError,
    },
    /// Reading, decoding or committing failed (a decode error names the record).
    #[error("projection `{projection}`: {source}")]
    Store {
        /// The projection's name.
        projection: &'static str,
        /// The store's error.
        source: Error,
    },
    /// A rebuild's `clear` failed; nothing was changed.
    #[error("projection `{projection}` could not clear its read model for a rebuild: {source}")]
    Rebuild {
        /// The projection's name.
        projection: &'static str,
        /// What `clear` said.
        source: HandlerError,
    },
    /// It stopped (by an error, or a call to stop) while something waited for it.
    #[error("{message}")]
    Stopped {
        /// The projection's name.
        projection: &'static str,
        /// Why: the error that stopped it, or that it was stopped.
        message: String,
    },
    /// The projection's task panicked or was cancelled.
    #[error("projection `{projection}`'s task ended abnormally: {message}")]
    Task {
        /// The projection's name.
        projection: &'static str,
        /// What the runtime said.
        message: String,
    },
}

/// What a projector is doing about the projection's claim (see [`ProjectionContext`]): only
/// the active runner of a projection processes events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerRole {
    /// Trying to take the claim; it doesn't know yet whether another runner holds it.
    Claiming,
    /// Another runner holds the claim: this one waits, trying again every
    /// [`standby_interval`](Projector::standby_interval), and takes over when it is free.
    Standby,
    /// It holds the claim and processes events.
    Active,
    /// It stopped (by a call or an error) and holds no claim.
    Stopped,
}

/// Where a running projection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerStatus {
    /// Everything up to here is processed (and committed, for a transactional context). On
    /// standby, what this runner last processed; the active runner may be further on.
    pub position: Position,
    /// Whether it is still running (`false` once stopped, by a call or an error).
    pub running: bool,
    /// Whether it is the projection's active runner or waits on standby.
    pub role: RunnerRole,
    /// Why it stopped, if an error stopped it.
    pub error: Option<String>,
    /// How many transient store errors (a busy store, a commit whose outcome is unknown) it
    /// rode out by claiming again, since it started: a number to watch.
    pub transient_errors: u64,
}

/// Runs a projection `P` over the log of store `S`.
///
/// [`catch_up`](Self::catch_up) processes everything there is and returns (tests, rebuilds,
/// in-memory read models at start); [`spawn`](Self::spawn) keeps following the log on a tokio
/// task. Each batch of events (up to [`page_size`](Self::page_size)) is handed to the handlers
/// inside one context `P::Context` and committed with the projector's tracking position; see
/// the [module docs](super) for what each context guarantees.
///
/// Of the projectors of one projection on one shared database (in this process or others),
/// only the one holding the projection's claim processes events; the others wait on standby
/// and take over when it stops or dies, starting from the tracking position it recorded. See
/// [`ProjectionContext`] for what each store claims with.
#[derive(Debug)]
pub struct Projector<P: Projection, S> {
    store: S,
    projection: P,
    position: Option<Position>,
    page: usize,
    poll: Duration,
    standby_poll: Duration,
    policy: ErrorPolicy,
    /// How a batch whose commit met a version conflict is run again (a process's caused
    /// events; a projection's commit has no streams to conflict on).
    conflicts: RetryPolicy,
    /// What decodes the payloads (and holds the keys of encrypted ones).
    codec: PayloadCodec,
    /// Told after each committed batch (see [`on_progress`](Self::on_progress)).
    progress: Option<ProgressHook>,
}

/// What a projector reports after each batch it committed: a rebuild's progress bar is
/// driven by these (see [`Projector::on_progress`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// How many events the batch handled (and committed).
    pub handled: u64,
    /// Everything up to here is processed and committed.
    pub position: Position,
}

/// The function a projector reports its [`Progress`] to.
#[derive(Clone)]
struct ProgressHook(Arc<dyn Fn(Progress) + Send + Sync>);

impl std::fmt::Debug for ProgressHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressHook")
    }
}

impl<P, S> Projector<P, S>
where
    P: Projection,
    S: EventStore + Clone + Send + Sync + 'static,
    P::Context: ProjectionContext<S>,
{
    /// A projector for `projection` over `store`, resuming from the tracking position the
    /// context keeps (the start, for `()`).
    pub fn new(store: S, projection: P) -> Self {
        Self {
            store,
            projection,
            position: None,
            page: 500,
            poll: Duration::from_secs(1),
            standby_poll: Duration::from_millis(500),
            policy: ErrorPolicy::default(),
            conflicts: RetryPolicy::default(),
            codec: PayloadCodec::default(),
            progress: None,
        }
    }

    /// Calls `report` after each batch the projector committed, with how many events it
    /// handled and the position reached: what a progress bar needs (the admin CLI's
    /// `rebuild` draws one). It runs on the projector's task between batches: keep it quick.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use eventsource_core::prelude::*;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Event, Serialize, Deserialize, Debug, Clone)]
    /// struct Ticked;
    /// #[derive(Aggregate, Default, Debug)]
    /// #[aggregate(events(Ticked))]
    /// struct Clock;
    /// impl Apply<Ticked> for Clock { fn apply(&mut self, _: &Ticked) {} }
    ///
    /// #[derive(Projection, Default)]
    /// #[projection(name = "ticks", events(Ticked))]
    /// struct Ticks(u64);
    /// impl Handle<Ticked> for Ticks {
    ///     async fn handle(&mut self, _: &Recorded<Ticked>, _: &mut ()) -> Result<(), HandlerError> {
    ///         self.0 += 1;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let store = Arc::new(MemoryStore::new());
    /// let clocks = Repository::<Clock, _>::new(store.clone());
    /// let id = clocks.create(Ticked).await?;
    /// for _ in 0..9 {
    ///     clocks.execute(id, |_| Ok::<_, std::convert::Infallible>(Ticked)).await.unwrap();
    /// }
    /// let seen = Arc::new(AtomicU64::new(0));
    /// let counter = seen.clone();
    /// let mut ticks = Projector::new(store, Ticks::default())
    ///     .page_size(4)
    ///     .on_progress(move |p| { counter.fetch_add(p.handled, Ordering::Relaxed); });
    /// ticks.rebuild(|ticks, _| Box::pin(async move { ticks.0 = 0; Ok(()) })).await?;
    /// assert_eq!((ticks.projection().0, seen.load(Ordering::Relaxed)), (10, 10));
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn on_progress(mut self, report: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(ProgressHook(Arc::new(report)));
        self
    }

    /// Decodes payloads with `codec`: needed for encrypted payloads (its key store), not for
    /// formats or compression, which every codec reads.
    pub fn codec(mut self, codec: PayloadCodec) -> Self {
        self.codec = codec;
        self
    }

    /// The projection, to adjust before it runs.
    pub(crate) fn projection_mut(&mut self) -> &mut P {
        &mut self.projection
    }

    /// How a batch whose commit met a version conflict is run again.
    pub(crate) fn conflict_retry(mut self, policy: RetryPolicy) -> Self {
        self.conflicts = policy;
        self
    }

    /// Starts after `position` instead: for a read model elsewhere that keeps its own position,
    /// or a new read model that only needs what happens from now on. A tracking position the
    /// store recorded further on wins.
    pub fn starting_after(mut self, position: Position) -> Self {
        self.position = Some(position);
        self
    }

    /// At most this many events per batch (one context, one commit; default 500, at least 1).
    pub fn page_size(mut self, events: usize) -> Self {
        self.page = events.max(1);
        self
    }

    /// How long a live projector waits for a wake-up before reading again (default 1 s).
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// How often a projector on standby tries to take the projection's claim (default 500 ms):
    /// the longest a takeover waits after the active runner let go. A runner that loses its
    /// claim also waits this long before it tries to take it again, so a standby goes first.
    pub fn standby_interval(mut self, interval: Duration) -> Self {
        self.standby_poll = interval;
        self
    }

    /// What to do when a handler fails (default: three tries, then stop).
    pub fn on_error(mut self, policy: ErrorPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The projection (an in-memory read model is read here).
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The projection, taken out.
    pub fn into_projection(self) -> P {
        self.projection
    }

    /// Everything up to this position is processed (`None` before the first run).
    pub fn position(&self) -> Option<Position> {
        self.position
    }

    /// Processes every event there is now, then returns the position it reached. It takes the
    /// projection's claim first (waiting while another runner holds it) and gives it up when
    /// done.
    pub async fn catch_up(&mut self) -> Result<Position, ProjectionError> {
        let standby = self.standby(None);
        let claim = P::Context::claim(&self.store, P::NAME, &standby)
            .await
            .map_err(|source| self.store_error(source))?;
        let outcome = self.catch_up_claimed().await;
        P::Context::release(claim, &self.store).await;
        outcome
    }

    /// Rebuilds the read model from the first event: takes the claim, runs `clear` in one
    /// context (delete the read model's rows there), commits it together with the removal of
    /// the tracking record, then catches up from the start. An in-memory read model (`()`)
    /// is cleared by `clear` too. Run it while no other runner of this projection is active
    /// (it waits on standby until none is).
    pub async fn rebuild<F>(&mut self, clear: F) -> Result<Position, ProjectionError>
    where
        F: for<'a> FnOnce(
            &'a mut P,
            &'a mut P::Context,
        ) -> futures_util::future::BoxFuture<'a, Result<(), HandlerError>>,
    {
        let standby = self.standby(None);
        let claim = P::Context::claim(&self.store, P::NAME, &standby)
            .await
            .map_err(|source| self.store_error(source))?;
        let outcome = async {
            let mut cx = P::Context::begin(&self.store, P::NAME)
                .await
                .map_err(|source| self.store_error(source))?;
            if let Err(source) = clear(&mut self.projection, &mut cx).await {
                cx.rollback().await;
                return Err(ProjectionError::Rebuild {
                    projection: P::NAME,
                    source,
                });
            }
            cx.forget(&self.store, P::NAME)
                .await
                .map_err(|source| self.store_error(source))?;
            self.position = Some(Position::START);
            tracing::info!(projection = P::NAME, "rebuilding from the first event");
            self.catch_up_claimed().await
        }
        .await;
        P::Context::release(claim, &self.store).await;
        outcome
    }

    async fn catch_up_claimed(&mut self) -> Result<Position, ProjectionError> {
        self.resume().await?;
        let mut subscription = self.subscribe();
        loop {
            let events = subscription
                .try_next_batch()
                .await
                .map_err(|source| self.store_error(source))?;
            let read_to = subscription.position();
            if events.is_empty() {
                self.position = Some(read_to);
                return Ok(read_to);
            }
            self.process(events, read_to).await?;
        }
    }

    /// Runs on a tokio task, following the log until [`RunningProjection::stop`] or an error.
    /// It takes the projection's claim first, waiting on standby while another runner holds
    /// it, and goes back to standby if it loses the claim. A transient store error (a busy
    /// store, a commit whose outcome is unknown: [`Error::is_retryable`]; or, for a process, a
    /// batch that met version conflicts on every try) doesn't stop it: it
    /// gives up the claim, waits (100 ms, growing to 10 s while the errors go on) and claims
    /// again, resuming from the recorded tracking position. Other errors stop it.
    pub fn spawn(self) -> RunningProjection<P, S> {
        let (status, watch) = watch::channel(RunnerStatus {
            position: self.position.unwrap_or(Position::START),
            running: true,
            role: RunnerRole::Claiming,
            error: None,
            transient_errors: 0,
        });
        let status = Arc::new(status);
        let stop = Arc::new(Notify::new());
        let store = self.store.clone();
        let task = tokio::spawn(self.run(status, Arc::clone(&stop)));
        RunningProjection {
            store,
            watch,
            stop,
            task,
        }
    }

    async fn run(
        mut self,
        status: Arc<watch::Sender<RunnerStatus>>,
        stop: Arc<Notify>,
    ) -> (Self, Result<(), ProjectionError>) {
        let outcome = self.follow(&status, &stop).await;
        let position = self.position.unwrap_or(Position::START);
        status.send_modify(|status| {
            status.position = position;
            status.running = false;
            status.role = RunnerRole::Stopped;
            status.error = outcome.as_ref().err().map(P::describe);
        });
        (self, outcome)
    }

    /// Takes the claim (on standby while another runner holds it), processes while it holds
    /// it, and starts over when it loses it.
    async fn follow(
        &mut self,
        status: &Arc<watch::Sender<RunnerStatus>>,
        stop: &Notify,
    ) -> Result<(), ProjectionError> {
        let (mut transient, mut failed_at) = (0, None);
        loop {
            let standby = self.standby(Some(Arc::clone(status)));
            let claimed = tokio::select! {
                biased;
                () = stop.notified() => return Ok(()),
                claimed = P::Context::claim(&self.store, P::NAME, &standby) => claimed,
            };
            let outcome = match claimed {
                Ok(mut claim) => {
                    tracing::info!(
                        projection = P::NAME,
                        "this runner holds the projection's claim and is active"
                    );
                    status.send_modify(|s| s.role = RunnerRole::Active);
                    let outcome = self.follow_claimed(&mut claim, status, stop).await;
                    P::Context::release(claim, &self.store).await;
                    outcome
                }
                Err(source) => Err(self.store_error(source)),
            };
            let pause = match outcome {
                Ok(Ended::Stopped) => return Ok(()),
                // A runner that lost its claim may be the one in trouble (its connection, its
                // clock): the standbys get one interval to take over first.
                Ok(Ended::Lost) => self.standby_poll,
                // A busy store, a commit whose outcome is unknown, or a process's batch that kept
                // meeting version conflicts: nothing is lost by trying again from the recorded
                // tracking position (a batch that did commit moved it).
                Err(ProjectionError::Store { source, .. })
                    if source.is_retryable()
                        || matches!(source, Error::TooManyConflicts { .. }) =>
                {
                    // Errors in a row, at the same position, wait longer each time.
                    if failed_at != self.position {
                        (transient, failed_at) = (0, self.position);
                    }
                    transient += 1;
                    status.send_modify(|s| s.transient_errors += 1);
                    let pause = TRANSIENT.delay(transient);
                    tracing::warn!(
                        projection = P::NAME, error = %source, ?pause,
                        "a transient store error; this runner claims again and resumes from the recorded position"
                    );
                    pause
                }
                Err(error) => return Err(error),
            };
            status.send_modify(|s| s.role = RunnerRole::Claiming);
            tokio::select! {
                biased;
                () = stop.notified() => return Ok(()),
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    async fn follow_claimed(
        &mut self,
        claim: &mut <P::Context as ProjectionContext<S>>::Claim,
        status: &watch::Sender<RunnerStatus>,
        stop: &Notify,
    ) -> Result<Ended, ProjectionError> {
        self.resume().await?;
        let mut subscription = self.subscribe();
        let position = subscription.position();
        status.send_modify(|s| s.position = position);
        let mut caught_up = false;
        loop {
            let events = tokio::select! {
                biased;
                () = stop.notified() => return Ok(Ended::Stopped),
                () = P::Context::claim_lost(claim) => {
                    tracing::warn!(
                        projection = P::NAME,
                        "this runner lost the projection's claim; it goes back to standby"
                    );
                    return Ok(Ended::Lost);
                }
                // Once caught up, wait for a commit (or the poll interval) before reading again.
                events = async {
                    if caught_up {
                        subscription.wait().await;
                    }
                    subscription.try_next_batch().await
                } => events.map_err(|e| self.store_error(e))?,
            };
            let read_to = subscription.position();
            caught_up = events.is_empty();
            if caught_up {
                // Nothing it follows up to `read_to`: that much is done too, so a wait for a
                // position of an event it doesn't follow (one a process caused, say) returns.
                self.position = Some(read_to);
                status.send_if_modified(|s| {
                    let moved = s.position < read_to;
                    s.position = s.position.max(read_to);
                    moved
                });
                continue;
            }
            match self.process(events, read_to).await {
                Ok(()) => {}
                Err(ProjectionError::Store {
                    source: Error::TrackingConflict { recorded, .. },
                    ..
                }) => {
                    // Another runner recorded a later position: it was active meanwhile.
                    tracing::warn!(
                        projection = P::NAME, %recorded,
                        "another runner moved the projection on; this one claims it again"
                    );
                    return Ok(Ended::Lost);
                }
                Err(error) => return Err(error),
            }
            status.send_modify(|s| s.position = read_to);
        }
    }

    /// What a claim is told while another runner holds it: log once at `info`, and show
    /// [`RunnerRole::Standby`] in `status` (if running on a task).
    fn standby(&self, status: Option<Arc<watch::Sender<RunnerStatus>>>) -> Standby {
        let logged = AtomicBool::new(false);
        Standby::new(P::NAME, self.standby_poll, move || {
            if !logged.swap(true, Ordering::Relaxed) {
                tracing::info!(
                    projection = P::NAME,
                    "another runner of this projection is active; this one waits on standby and takes over when it stops"
                );
            }
            if let Some(status) = &status {
                status.send_if_modified(|s| {
                    let changed = s.role != RunnerRole::Standby;
                    s.role = RunnerRole::Standby;
                    changed
                });
            }
        })
    }

    /// Once the claim is held: where to start. The recorded tracking position (the previous
    /// active runner moved it), or this projector's own if it is further on (an in-memory read
    /// model's, or the one given to [`starting_after`](Self::starting_after)). Never before the
    /// recorded position: what is recorded there is done, and doing it again would apply it
    /// twice.
    async fn resume(&mut self) -> Result<(), ProjectionError> {
        let recorded = P::Context::resume_position(&self.store, P::NAME)
            .await
            .map_err(|source| self.store_error(source))?;
        self.position = Some(self.position.map_or(recorded, |own| own.max(recorded)));
        Ok(())
    }

    fn subscribe(&self) -> Subscription<S> {
        let start = self.position.unwrap_or(Position::START);
        let query = LogQuery::after(start, self.page).names(P::Event::NAMES.iter().copied());
        Subscription::new(self.store.clone(), query).poll_interval(self.poll)
    }

    /// One batch: decode, hand to the handlers in one context, commit with `read_to`; on a
    /// handler error, the error policy. After version conflicts the batch may commit in
    /// smaller parts (see [`run_batch`](Self::run_batch)); it returns once all of it is.
    async fn process(
        &mut self,
        events: Vec<StoredEvent>,
        read_to: Position,
    ) -> Result<(), ProjectionError> {
        let mut done = 0;
        let mut tries = 0;
        while done < events.len() {
            tries += 1;
            match self.run_batch(&events[done..], read_to).await {
                Ok(committed) => {
                    done += committed;
                    tries = 0;
                    let position = match done == events.len() {
                        true => read_to,
                        false => events[done - 1].position,
                    };
                    self.position = Some(position);
                    if let Some(ProgressHook(report)) = &self.progress {
                        report(Progress {
                            handled: committed as u64,
                            position,
                        });
                    }
                }
                Err(Failure::Store(source)) => return Err(self.store_error(source)),
                Err(Failure::Handler { index, source }) => {
                    let failed = done + index;
                    let retry = match &self.policy {
                        ErrorPolicy::Retry { attempts, backoff } if tries < (*attempts).max(1) => {
                            Some(backoff.delay(tries))
                        }
                        _ => None,
                    };
                    match retry {
                        Some(delay) => {
                            tracing::warn!(
                                projection = P::NAME, position = %events[failed].position,
                                error = %source, tries, "a handler failed; trying the batch again"
                            );
                            tokio::time::sleep(delay).await;
                        }
                        None => return Err(self.stop_before(&events, done, failed, source).await),
                    }
                }
            }
        }
        Ok(())
    }

    /// Hands `events` to the handlers in one context and commits it with `read_to`; returns
    /// how many events it committed. A commit that meets a version conflict (a process's caused
    /// events, raced by another writer) runs again in a fresh context, as the conflict policy
    /// allows, on half as many events each time (down to one): the shorter the work between
    /// loading and appending, the likelier it commits while other writers keep the aggregates
    /// busy. A part commits with the position of its last event.
    async fn run_batch(
        &mut self,
        events: &[StoredEvent],
        read_to: Position,
    ) -> Result<usize, Failure> {
        let mut conflicts = 0;
        let mut take = events.len();
        loop {
            let part = &events[..take];
            let position = match take == events.len() {
                true => read_to,
                false => part[take - 1].position,
            };
            let mut cx = P::Context::begin(&self.store, P::NAME)
                .await
                .map_err(Failure::Store)?;
            if let Err(failure) = self.handle_all(part, &mut cx).await {
                cx.rollback().await;
                return Err(failure);
            }
            match cx.commit(&self.store, P::NAME, position).await {
                Ok(()) => return Ok(take),
                Err(error) => {
                    conflicts += 1;
                    self.conflicts
                        .after_failure(conflicts, error)
                        .await
                        .map_err(Failure::Store)?;
                    take = (take / 2).max(1);
                }
            }
        }
    }

    /// Stops at `events[failed]`: commits the events from `done` up to it (so the tracking
    /// position is on the event before the failing one) and reports it.
    async fn stop_before(
        &mut self,
        events: &[StoredEvent],
        mut done: usize,
        failed: usize,
        source: HandlerError,
    ) -> ProjectionError {
        while done < failed {
            let last = events[failed - 1].position;
            match self.run_batch(&events[done..failed], last).await {
                Ok(committed) => {
                    done += committed;
                    self.position = Some(events[done - 1].position);
                }
                Err(Failure::Store(error)) => return self.store_error(error),
                // A handler that fails differently the second time: report the first
                // failure; what is not committed yet stays so.
                Err(Failure::Handler { .. }) => break,
            }
        }
        let event = &events[failed];
        tracing::error!(
            projection = P::NAME, position = %event.position, stream = %event.stream_id,
            version = event.version, event = %event.name, error = %source,
            "a handler failed; the projection stops"
        );
        ProjectionError::Handler {
            projection: P::NAME,
            event: event.name.clone(),
            stream: event.stream_id,
            version: event.version,
            position: event.position,
            source,
        }
    }

    async fn handle_all(
        &mut self,
        events: &[StoredEvent],
        cx: &mut P::Context,
    ) -> Result<(), Failure> {
        let decode_error = |stored: &StoredEvent, source| {
            Failure::Store(Error::Decode {
                stream: stored.stream_id,
                version: stored.version,
                event: stored.name.clone(),
                schema_version: stored.schema_version,
                source,
            })
        };
        // A key that fails to load here fails again for the record that needs it, named below.
        self.codec.load_keys_of(events).await;
        for (index, stored) in events.iter().enumerate() {
            let event = self
                .codec
                .decode::<P::Event>(stored)
                .await
                .map_err(|source| decode_error(stored, source))?;
            self.projection
                .project(Recorded::new(event, stored.clone()), cx)
                .await
                .map_err(|source| Failure::Handler { index, source })?;
        }
        Ok(())
    }

    fn store_error(&self, source: Error) -> ProjectionError {
        ProjectionError::Store {
            projection: P::NAME,
            source,
        }
    }
}

/// Why a run under one claim ended without an error.
enum Ended {
    /// [`RunningProjection::stop`] was called.
    Stopped,
    /// The claim was lost, or another runner moved the projection on.
    Lost,
}

/// Why a batch failed.
enum Failure {
    Store(Error),
    Handler { index: usize, source: HandlerError },
}

/// A projector running on a tokio task.
#[derive(Debug)]
pub struct RunningProjection<P: Projection, S> {
    store: S,
    watch: watch::Receiver<RunnerStatus>,
    stop: Arc<Notify>,
    task: JoinHandle<(Projector<P, S>, Result<(), ProjectionError>)>,
}

impl<P: Projection, S> RunningProjection<P, S> {
    /// Where it stands now.
    pub fn status(&self) -> RunnerStatus {
        self.watch.borrow().clone()
    }

    /// How many events it handles are stored after its position: its lag, counted by reading
    /// the log's positions from there (the cost grows with the lag; at most `cap` are counted,
    /// `Ok(cap)` meaning "at least").
    pub async fn events_behind(&self, cap: u64) -> Result<u64>
    where
        S: EventStore,
    {
        let mut after = self.status().position;
        let mut behind = 0;
        while behind < cap {
            let page = self
                .store
                .read_log(LogQuery::after(after, 10_000).names(P::Event::NAMES.iter().copied()))
                .await?;
            if page.is_empty() {
                break;
            }
            behind += page.len() as u64;
            after = page.next;
        }
        Ok(behind.min(cap))
    }

    /// Waits until everything up to `position` is processed (read-your-writes: pass the
    /// position an append or a command returned), at most `timeout`. `Ok(false)` if the time
    /// ran out; an error if the projection stopped before reaching it.
    ///
    /// It takes `&self`, so any number of tasks (the requests of a service reading the model)
    /// can wait at once, each for its own position.
    pub async fn wait_for(
        &self,
        position: Position,
        timeout: Duration,
    ) -> Result<bool, ProjectionError> {
        let mut watch = self.watch.clone();
        let reached = tokio::time::timeout(
            timeout,
            watch.wait_for(|status| status.position >= position || !status.running),
        )
        .await
        .map(|status| status.map(|status| status.clone()));
        match reached {
            Err(_) => Ok(false),
            Ok(Ok(status)) if status.position >= position => Ok(true),
            Ok(Ok(status)) => Err(ProjectionError::Stopped {
                projection: P::NAME,
                message: status.error.unwrap_or_else(|| {
                    format!("`{}` was stopped before it reached the position", P::NAME)
                }),
            }),
            Ok(Err(_)) => Err(ProjectionError::Task {
                projection: P::NAME,
                message: "its task is gone".into(),
            }),
        }
    }

    /// Waits until the runner takes `role` (for example [`RunnerRole::Active`] on a standby that
    /// should take over), at most `timeout`; whether it did. A runner that stopped can't take
    /// another role: waiting for one returns `false` at once.
    pub async fn wait_for_role(&mut self, role: RunnerRole, timeout: Duration) -> bool {
        let taken = tokio::time::timeout(
            timeout,
            self.watch.wait_for(|status| {
                status.role == role || (status.role == RunnerRole::Stopped && !status.running)
            }),
        )
        .await;
        matches!(taken, Ok(Ok(status)) if status.role == role)
    }

    /// Stops after the batch in hand, and returns the projector (with its in-memory read model)
    /// and what ended it: `Ok` for this call, the error if one had stopped it already.
    pub async fn stop(self) -> (Option<Projector<P, S>>, Result<(), ProjectionError>) {
        self.stop.notify_one();
        match self.task.await {
            Ok((projector, outcome)) => (Some(projector), outcome),
            Err(join) => (
                None,
                Err(ProjectionError::Task {
                    projection: P::NAME,
                    message: join.to_string(),
                }),
            ),
        }
    }
}
