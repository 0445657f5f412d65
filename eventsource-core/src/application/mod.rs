//! The application layer: the repository that replays, decides and appends, with its snapshots
//! and cache; the command context stored with every event; retries with backoff; units of
//! work that save aggregates of several types in one atomic append; and subscriptions that
//! follow the log as it grows.

mod cache;
pub mod claim;
pub mod context;
pub mod forget;
pub mod process;
pub mod projection;
pub mod repository;
pub mod retry;
mod snapshot;
pub mod subscription;
pub mod system;
pub mod unit_of_work;
