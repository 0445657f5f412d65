//! Test support for store authors (feature `testing`).
//!
//! [`conformance`] is the suite every [`EventStore`](crate::EventStore) must pass: the stores in
//! this crate run it, and a third-party store runs it with one call.
//!
//! ```toml
//! [dev-dependencies]
//! eventsource-core = { version = "…", features = ["testing"] }
//! tokio = { version = "1", features = ["rt-multi-thread", "macros"] }
//! ```

pub mod conformance;
