//! The application layer: the repository that replays, decides and appends, with its snapshots
//! and cache.

mod cache;
pub mod repository;
mod snapshot;
