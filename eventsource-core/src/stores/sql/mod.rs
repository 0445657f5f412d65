//! What the SQL stores (SQLite and PostgreSQL) share: the rules for the identifiers they put
//! into SQL, the list of versioned schema migrations each of them runs, and the layout of the
//! table their key stores keep data keys in.

pub(crate) mod identifier;
pub(crate) mod keys;
pub(crate) mod migration;
