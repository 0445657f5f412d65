//! Helpers shared by the integration test files.

pub(crate) mod child;
pub(crate) mod cluster;
pub(crate) mod markup;
pub(crate) mod nats;
pub(crate) mod nats_cluster;
pub(crate) mod postgres;
pub(crate) mod proxy;
pub(crate) mod rng;
pub(crate) mod stores;
