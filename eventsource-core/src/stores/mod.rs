//! Store backends: one module each, the optional ones behind cargo features; and opening one
//! from a URL ([`AnyStore`]).

pub mod memory;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "nats"))]
mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod url;

pub use url::AnyStore;
