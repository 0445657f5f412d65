//! Persistence: the stored record, codecs and the store contract.

pub mod codec;
pub mod position;
pub mod record;
pub mod store;
pub mod wake;
