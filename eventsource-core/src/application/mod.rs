//! The application layer: the repository that replays, decides and appends.

pub mod repository;
