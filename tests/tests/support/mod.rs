//! Helpers shared by the integration test files.

pub(crate) mod postgres;
pub(crate) mod stores;
