//! What a system runs, seen the same way whatever it is: a projector or a process manager as a
//! [`Component`] (catch up, spawn), and its live task as a [`Running`] one (status, lag, wait,
//! stop).

use std::any::Any;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::SystemError;
use crate::application::claim::Claims;
use crate::application::process::{Process, ProcessManager, RunningProcess};
use crate::application::projection::{
    Projection, ProjectionContext, Projector, RunnerStatus, RunningProjection,
};
use crate::domain::event::EventEnum;
use crate::error::Result;
use crate::persistence::position::Position;

/// A projector or a process manager, before it runs or after it stopped.
pub(super) trait Component<S>: Send {
    /// Its tracking name.
    fn name(&self) -> &'static str;
    /// "projection" or "process", for messages.
    fn kind(&self) -> &'static str;
    /// The stored names of the events it follows.
    fn events(&self) -> &'static [&'static str];
    /// Everything up to here is processed (`None` before its first run).
    fn position(&self) -> Option<Position>;
    /// Processes every event there is now; returns the position it reached.
    fn catch_up(&mut self) -> BoxFuture<'_, Result<Position, SystemError>>;
    /// Starts following the log on a tokio task.
    fn spawn(self: Box<Self>) -> Box<dyn Running<S>>;
    /// The projector or process manager itself, to hand out its projection or process.
    fn as_any(&self) -> &dyn Any;
}

/// A component running on a tokio task.
pub(super) trait Running<S>: Send {
    fn name(&self) -> &'static str;
    fn status(&self) -> RunnerStatus;
    /// How many of the events it follows are stored after its position (at most `cap`).
    fn events_behind(&self, cap: u64) -> BoxFuture<'_, Result<u64>>;
    fn wait_for(
        &mut self,
        position: Position,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<bool, SystemError>>;
    /// Stops it; hands the component back unless its task panicked.
    fn stop(self: Box<Self>) -> BoxFuture<'static, Stopped<S>>;
}

/// What stopping a running component gives back.
pub(super) type Stopped<S> = (Option<Box<dyn Component<S>>>, Result<(), SystemError>);

impl<P, S> Component<S> for Projector<P, S>
where
    P: Projection,
    S: Claims,
    P::Context: ProjectionContext<S>,
{
    fn name(&self) -> &'static str {
        P::NAME
    }
    fn kind(&self) -> &'static str {
        "projection"
    }
    fn events(&self) -> &'static [&'static str] {
        P::Event::NAMES
    }
    fn position(&self) -> Option<Position> {
        Projector::position(self)
    }
    fn catch_up(&mut self) -> BoxFuture<'_, Result<Position, SystemError>> {
        Box::pin(async move { Ok(Projector::catch_up(self).await?) })
    }
    fn spawn(self: Box<Self>) -> Box<dyn Running<S>> {
        Box::new(Projector::spawn(*self))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl<P: Process, S: Claims> Component<S> for ProcessManager<P, S> {
    fn name(&self) -> &'static str {
        P::NAME
    }
    fn kind(&self) -> &'static str {
        "process"
    }
    fn events(&self) -> &'static [&'static str] {
        P::Event::NAMES
    }
    fn position(&self) -> Option<Position> {
        ProcessManager::position(self)
    }
    fn catch_up(&mut self) -> BoxFuture<'_, Result<Position, SystemError>> {
        Box::pin(async move { Ok(ProcessManager::catch_up(self).await?) })
    }
    fn spawn(self: Box<Self>) -> Box<dyn Running<S>> {
        Box::new(ProcessManager::spawn(*self))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl<P, S> Running<S> for RunningProjection<P, S>
where
    P: Projection,
    S: Claims,
    P::Context: ProjectionContext<S>,
{
    fn name(&self) -> &'static str {
        P::NAME
    }
    fn status(&self) -> RunnerStatus {
        RunningProjection::status(self)
    }
    fn events_behind(&self, cap: u64) -> BoxFuture<'_, Result<u64>> {
        Box::pin(RunningProjection::events_behind(self, cap))
    }
    fn wait_for(
        &mut self,
        position: Position,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<bool, SystemError>> {
        Box::pin(async move { Ok(RunningProjection::wait_for(self, position, timeout).await?) })
    }
    fn stop(self: Box<Self>) -> BoxFuture<'static, Stopped<S>> {
        Box::pin(async move {
            let (projector, outcome) = RunningProjection::stop(*self).await;
            let component = projector.map(|p| Box::new(p) as Box<dyn Component<S>>);
            (component, outcome.map_err(SystemError::from))
        })
    }
}

impl<P: Process, S: Claims> Running<S> for RunningProcess<P, S> {
    fn name(&self) -> &'static str {
        P::NAME
    }
    fn status(&self) -> RunnerStatus {
        RunningProcess::status(self)
    }
    fn events_behind(&self, cap: u64) -> BoxFuture<'_, Result<u64>> {
        Box::pin(RunningProcess::events_behind(self, cap))
    }
    fn wait_for(
        &mut self,
        position: Position,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<bool, SystemError>> {
        Box::pin(async move { Ok(RunningProcess::wait_for(self, position, timeout).await?) })
    }
    fn stop(self: Box<Self>) -> BoxFuture<'static, Stopped<S>> {
        Box::pin(async move {
            let (manager, outcome) = RunningProcess::stop(*self).await;
            let component = manager.map(|m| Box::new(m) as Box<dyn Component<S>>);
            (component, outcome.map_err(SystemError::from))
        })
    }
}
