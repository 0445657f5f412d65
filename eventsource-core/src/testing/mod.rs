//! Test support (feature `testing`): for store authors, and for the tests of a domain.
//!
//! - [`conformance`] is the suite every [`EventStore`](crate::EventStore) must pass: the stores
//!   in this crate run it, and a third-party store runs it with one call.
//! - [`scenario`] holds the given/when/then helpers domain tests are written with: an
//!   aggregate's command ([`AggregateScenario`](scenario::AggregateScenario)), a projection's
//!   read model ([`ProjectionScenario`](scenario::ProjectionScenario)) and a process manager's
//!   reactions ([`ProcessScenario`](scenario::ProcessScenario)), each run on a
//!   [`MemoryStore`](crate::MemoryStore) through the real repository, projector or process
//!   manager.
//! - [`counting`] holds [`CountingStore`](counting::CountingStore), which wraps a store and
//!   counts what it is asked for (appends tried, events read per stream read, snapshots loaded
//!   and saved) and fails appends on request: for tests that check what a load or a command
//!   costs, and what it does when the store fails.
//!
//! ```toml
//! [dev-dependencies]
//! eventsource-core = { version = "…", features = ["testing"] }
//! tokio = { version = "1", features = ["rt-multi-thread", "macros"] }
//! ```

pub mod conformance;
pub mod counting;
pub mod scenario;
