//! What the SQL stores (SQLite and PostgreSQL) share: the rules for the identifiers they put
//! into SQL, the list of versioned schema migrations each of them runs, and the layout of the
//! table their key stores keep data keys in (whose reading, unwrapping and errors the NATS key
//! store shares too).

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod identifier;
pub(crate) mod keys;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod migration;
