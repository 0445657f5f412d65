//! The domain model: events, aggregates and how one applies the other.

pub mod aggregate;
pub mod event;
pub mod id;
pub mod personal;
