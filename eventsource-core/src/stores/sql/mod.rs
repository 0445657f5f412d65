//! What the SQL stores (SQLite and PostgreSQL) share: the rules for the identifiers they put
//! into SQL, and the list of versioned schema migrations each of them runs.

pub(crate) mod identifier;
pub(crate) mod migration;
