//! [`RunningSystem`]: a system's components on tokio tasks, and how to wait for them and stop
//! them.

use std::time::Duration;

use tokio::time::Instant;

use super::component::Running;
use super::{System, SystemError};
use crate::application::claim::Claims;
use crate::application::projection::RunnerStatus;
use crate::persistence::position::Position;

/// How often [`RunningSystem::wait_until_idle`] looks again while components are behind.
const IDLE_CHECK: Duration = Duration::from_millis(5);

/// A [`System`] whose components run on tokio tasks.
pub struct RunningSystem<S> {
    store: S,
    aggregates: std::collections::BTreeMap<&'static str, &'static [&'static str]>,
    running: Vec<Box<dyn Running<S>>>,
    codec: crate::persistence::codec::PayloadCodec,
}

impl<S> std::fmt::Debug for RunningSystem<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.running.iter().map(|r| (r.name(), r.status())))
            .finish()
    }
}

impl<S: Claims> RunningSystem<S> {
    pub(super) fn start(system: System<S>) -> Self {
        let running = system
            .components
            .into_iter()
            .map(|component| component.spawn())
            .collect();
        Self {
            store: system.store,
            aggregates: system.aggregates,
            codec: system.codec,
            running,
        }
    }

    /// Each component's name and status (position, role, whether it runs, why it stopped).
    pub fn status(&self) -> Vec<(&'static str, RunnerStatus)> {
        self.running
            .iter()
            .map(|running| (running.name(), running.status()))
            .collect()
    }

    /// Waits until component `name` has processed everything up to `position`
    /// (read-your-writes: pass the position a command returned), at most `timeout`. `Ok(false)`
    /// if the time ran out or the system has no such component; an error if it stopped first.
    pub async fn wait_for(
        &mut self,
        name: &str,
        position: Position,
        timeout: Duration,
    ) -> Result<bool, SystemError> {
        match self.running.iter_mut().find(|r| r.name() == name) {
            Some(running) => running.wait_for(position, timeout).await,
            None => Ok(false),
        }
    }

    /// Waits until nothing is left to process: no component has an event it follows stored
    /// after its position, and the log did not grow while that was checked (a process's caused
    /// events are followed too). At most `timeout`; `Ok(false)` if it ran out. An error if a
    /// component stopped with one.
    pub async fn wait_until_idle(&self, timeout: Duration) -> Result<bool, SystemError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.idle().await? {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(IDLE_CHECK).await;
        }
    }

    /// One look: every component caught up with the log as it was before the look.
    async fn idle(&self) -> Result<bool, SystemError> {
        let before = self.store.last_position().await?;
        for running in &self.running {
            let status = running.status();
            if !status.running {
                return Err(SystemError::Stopped {
                    component: running.name(),
                    message: status.error.unwrap_or_else(|| "it was stopped".into()),
                });
            }
            if running.events_behind(1).await? > 0 {
                return Ok(false);
            }
        }
        Ok(self.store.last_position().await? == before)
    }

    /// Stops every component after the batch in hand and returns the system (its in-memory read
    /// models included), or the first error a component had stopped with.
    pub async fn stop(self) -> Result<System<S>, SystemError> {
        let mut components = Vec::with_capacity(self.running.len());
        let mut first_error = None;
        for running in self.running {
            let (component, outcome) = running.stop().await;
            components.extend(component);
            if let Err(error) = outcome {
                first_error.get_or_insert(error);
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(System {
                store: self.store,
                aggregates: self.aggregates,
                components,
                codec: self.codec,
            }),
        }
    }
}
