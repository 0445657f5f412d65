//! Systems: the aggregates, projections and process managers of one application, declared once
//! and run together.
//!
//! - **In tests**, [`System::run_until_idle`] runs every component in one task, in the order
//!   they were added, round after round, until a round finds nothing left to process: the
//!   events a process causes are followed by the components after it, and by itself, in the
//!   same call. Deterministic: no task, no timer.
//! - **Live**, [`System::spawn`] runs each component on a tokio task of its own, following the
//!   log as it grows; [`RunningSystem`] reports their status, waits for a position
//!   (read-your-writes) or until nothing is left, and stops them.
//! - **Across processes** sharing one database, every process runs the same system: each
//!   component is active in one process at a time (it holds the component's claim, see
//!   [`Claims`]) and the others wait on standby, taking over from the recorded tracking
//!   position when the active one stops or dies.
//!
//! Declaring the aggregates lets the system check its wiring before it runs: every event a
//! component follows must be recorded by one of the declared aggregates (a component following
//! an event nobody records would wait forever). A system that declares no aggregate skips the
//! check (its events come from elsewhere).
//!
//! ```
//! use eventsource_core::prelude::*;
//! use eventsource_core::system::System;
//! use serde::{Deserialize, Serialize};
//! use std::collections::HashMap;
//!
//! #[derive(Event, Serialize, Deserialize, Debug, Clone)]
//! struct Ordered { cents: u64 }
//! #[derive(Aggregate, Default, Debug)]
//! #[aggregate(events(Ordered))]
//! struct Order { cents: u64 }
//! impl Apply<Ordered> for Order {
//!     fn apply(&mut self, e: &Ordered) { self.cents = e.cents; }
//! }
//!
//! #[derive(Event, Serialize, Deserialize, Debug, Clone)]
//! struct Invoiced { order: Uuid, cents: u64 }
//! #[derive(Aggregate, Default, Debug)]
//! #[aggregate(events(Invoiced))]
//! struct Invoice { cents: u64 }
//! impl Apply<Invoiced> for Invoice {
//!     fn apply(&mut self, e: &Invoiced) { self.cents = e.cents; }
//! }
//!
//! // A process: every order gets an invoice.
//! #[derive(Process)]
//! #[process(name = "invoicing", events(Ordered))]
//! struct Invoicing;
//! impl React<Ordered> for Invoicing {
//!     async fn react(&mut self, e: &Recorded<Ordered>, work: &mut ProcessWork<'_>) -> Result<(), HandlerError> {
//!         let invoice = work.load_or_default::<Invoice>(id_from_name("invoices", &e.stream_id.to_string())).await?;
//!         work.record(invoice, Invoiced { order: e.stream_id, cents: e.event.cents });
//!         Ok(())
//!     }
//! }
//!
//! // A projection of what the process causes.
//! #[derive(Projection, Default)]
//! #[projection(name = "receivables", events(Invoiced))]
//! struct Receivables { cents: u64 }
//! impl Handle<Invoiced> for Receivables {
//!     async fn handle(&mut self, e: &Recorded<Invoiced>, _: &mut ()) -> Result<(), HandlerError> {
//!         self.cents += e.event.cents;
//!         Ok(())
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let mut system = System::new(store.clone())
//!     .aggregate::<Order>()
//!     .aggregate::<Invoice>()
//!     .process(Invoicing)
//!     .projection(Receivables::default());
//!
//! let orders = system.repository::<Order>();
//! orders.create(Ordered { cents: 250 }).await?;
//! orders.create(Ordered { cents: 100 }).await?;
//!
//! // Tests: one task, until nothing is left (the process, then the projection of its events).
//! system.run_until_idle().await?;
//! assert_eq!(system.projection_ref::<Receivables>().unwrap().cents, 350);
//!
//! // Live: a task per component.
//! let mut running = system.spawn()?;
//! orders.create(Ordered { cents: 50 }).await?;
//! assert!(running.wait_until_idle(std::time::Duration::from_secs(5)).await?);
//! let system = running.stop().await?;
//! assert_eq!(system.projection_ref::<Receivables>().unwrap().cents, 400);
//! # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
//! ```

mod component;
mod running;

use std::collections::BTreeMap;

pub use running::RunningSystem;

use self::component::Component;
use crate::application::claim::Claims;
use crate::application::process::{Process, ProcessError, ProcessManager};
use crate::application::projection::{Projection, ProjectionContext, ProjectionError, Projector};
use crate::application::repository::Repository;
use crate::domain::aggregate::Aggregate;
use crate::domain::event::EventEnum;
use crate::error::Error;
use crate::persistence::codec::PayloadCodec;
use crate::persistence::position::Position;

/// Why a system could not start, or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SystemError {
    /// A projection stopped.
    #[error(transparent)]
    Projection(Box<ProjectionError>),
    /// A process manager stopped.
    #[error(transparent)]
    Process(Box<ProcessError>),
    /// A component follows an event that none of the system's aggregates records.
    #[error(
        "{kind} `{component}` follows the event `{event}`, which none of the system's aggregates ({aggregates}) records; add the aggregate that records it with `.aggregate::<A>()`"
    )]
    NotRecorded {
        /// "projection" or "process".
        kind: &'static str,
        /// The component's name.
        component: &'static str,
        /// The event's stored name.
        event: &'static str,
        /// The declared aggregates, comma separated.
        aggregates: String,
    },
    /// Two components have the same name, so they would share one tracking record.
    #[error(
        "two components of the system are named `{name}`: they would share one tracking record; give one another name"
    )]
    DuplicateName {
        /// The name.
        name: &'static str,
    },
    /// A running component stopped (by an error, or a panic of its task) while the system was
    /// waiting for it.
    #[error("{component} stopped: {message}")]
    Stopped {
        /// The component's name.
        component: &'static str,
        /// Why.
        message: String,
    },
    /// Reading the store failed while waiting.
    #[error(transparent)]
    Store(#[from] Error),
}

impl From<ProjectionError> for SystemError {
    fn from(error: ProjectionError) -> Self {
        SystemError::Projection(Box::new(error))
    }
}

impl From<ProcessError> for SystemError {
    fn from(error: ProcessError) -> Self {
        SystemError::Process(Box::new(error))
    }
}

/// The aggregates, projections and process managers of an application, over one store. See
/// the [module docs](self).
pub struct System<S> {
    store: S,
    /// Declared aggregates by name, with the events each records.
    aggregates: BTreeMap<&'static str, &'static [&'static str]>,
    components: Vec<Box<dyn Component<S>>>,
    codec: PayloadCodec,
}

impl<S> std::fmt::Debug for System<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("System")
            .field("aggregates", &self.aggregates.keys().collect::<Vec<_>>())
            .field(
                "components",
                &self.components.iter().map(|c| c.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl<S: Claims> System<S> {
    /// An empty system over `store`.
    pub fn new(store: S) -> Self {
        Self {
            store,
            aggregates: BTreeMap::new(),
            components: Vec::new(),
            codec: PayloadCodec::default(),
        }
    }

    /// How payloads are written and read (format, compression, encryption; see
    /// [`PayloadCodec`]): used by [`repository`](Self::repository) and by the projectors and
    /// process managers that [`projection`](Self::projection) and [`process`](Self::process)
    /// add after this call. One added with [`projector`](Self::projector) or
    /// [`process_manager`](Self::process_manager) keeps the codec it was built with.
    pub fn codec(mut self, codec: PayloadCodec) -> Self {
        self.codec = codec;
        self
    }

    /// Declares an aggregate type of the application: the events it records may be followed.
    pub fn aggregate<A: Aggregate>(mut self) -> Self {
        self.aggregates
            .insert(A::NAME, <A::Event as EventEnum>::NAMES);
        self
    }

    /// Adds a projection, run by a [`Projector`] with its defaults.
    pub fn projection<P>(self, projection: P) -> Self
    where
        P: Projection,
        P::Context: ProjectionContext<S>,
    {
        let projector = Projector::new(self.store.clone(), projection).codec(self.codec.clone());
        self.projector(projector)
    }

    /// Adds a projection with a projector of your settings (page size, poll interval, error
    /// policy).
    pub fn projector<P>(mut self, projector: Projector<P, S>) -> Self
    where
        P: Projection,
        P::Context: ProjectionContext<S>,
    {
        self.components.push(Box::new(projector));
        self
    }

    /// Adds a process, run by a [`ProcessManager`] with its defaults.
    pub fn process<P: Process>(self, process: P) -> Self {
        let manager = ProcessManager::new(self.store.clone(), process).codec(self.codec.clone());
        self.process_manager(manager)
    }

    /// Adds a process with a manager of your settings.
    pub fn process_manager<P: Process>(mut self, manager: ProcessManager<P, S>) -> Self {
        self.components.push(Box::new(manager));
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// A repository of aggregate `A` over the system's store.
    pub fn repository<A: Aggregate>(&self) -> Repository<A, S> {
        Repository::new(self.store.clone()).codec(self.codec.clone())
    }

    /// The projection `P`, as its projector holds it (an in-memory read model is read here),
    /// if the system has one.
    pub fn projection_ref<P>(&self) -> Option<&P>
    where
        P: Projection,
        P::Context: ProjectionContext<S>,
    {
        self.components.iter().find_map(|component| {
            let projector = component.as_any().downcast_ref::<Projector<P, S>>()?;
            Some(projector.projection())
        })
    }

    /// The process `P`, if the system has one.
    pub fn process_ref<P: Process>(&self) -> Option<&P> {
        self.components.iter().find_map(|component| {
            let manager = component.as_any().downcast_ref::<ProcessManager<P, S>>()?;
            Some(manager.process())
        })
    }

    /// Checks the wiring: no two components share a name, and (if any aggregate is declared)
    /// every event a component follows is recorded by a declared aggregate.
    pub fn check(&self) -> Result<(), SystemError> {
        let mut names = std::collections::BTreeSet::new();
        for component in &self.components {
            if !names.insert(component.name()) {
                return Err(SystemError::DuplicateName {
                    name: component.name(),
                });
            }
        }
        if self.aggregates.is_empty() {
            return Ok(());
        }
        for component in &self.components {
            for &event in component.events() {
                let recorded = self
                    .aggregates
                    .values()
                    .any(|events| events.contains(&event));
                if !recorded {
                    return Err(SystemError::NotRecorded {
                        kind: component.kind(),
                        component: component.name(),
                        event,
                        aggregates: self
                            .aggregates
                            .keys()
                            .copied()
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            }
        }
        Ok(())
    }

    /// Runs every component in this task, in the order they were added, round after round,
    /// until a whole round moves no component on (a call with nothing to do takes one round): everything stored (including what the
    /// processes caused along the way) is processed. Returns how many rounds it took and the
    /// position the last component reached. Each component takes its claim for its turn, so
    /// this waits while another process runs a component live.
    pub async fn run_until_idle(&mut self) -> Result<Idle, SystemError> {
        self.check()?;
        let mut reached: Vec<Option<Position>> =
            self.components.iter().map(|c| c.position()).collect();
        let mut rounds = 0;
        loop {
            rounds += 1;
            let mut moved = false;
            for (component, reached) in self.components.iter_mut().zip(&mut reached) {
                let position = component.catch_up().await?;
                moved |= *reached != Some(position);
                *reached = Some(position);
            }
            if !moved {
                let position = reached.iter().flatten().max().copied();
                return Ok(Idle {
                    rounds,
                    position: position.unwrap_or(Position::START),
                });
            }
        }
    }

    /// Starts every component on a tokio task of its own (each as its component's active
    /// runner, or on standby while another process holds the claim). Fails without starting
    /// anything if [`check`](Self::check) does.
    pub fn spawn(self) -> Result<RunningSystem<S>, SystemError> {
        self.check()?;
        Ok(RunningSystem::start(self))
    }
}

/// What [`System::run_until_idle`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Idle {
    /// Rounds over all components, the last one (which moved nothing) included.
    pub rounds: usize,
    /// The furthest position a component reached.
    pub position: Position,
}
