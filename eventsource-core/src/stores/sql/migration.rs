//! Versioned schema migrations: each SQL store keeps a list, runs the ones a database has not
//! applied in order, records them, and refuses a database that a newer build migrated further.
//! Running them is the store's job (SQLite synchronously in one immediate transaction,
//! PostgreSQL under an advisory lock); the list and its rules live here once.

use crate::error::{Error, Result};

/// One migration: the schema version it brings the tables to, and its SQL for the configured
/// names `N`. Append new ones; never edit one that has shipped.
#[derive(Debug)]
pub(crate) struct Migration<N: 'static> {
    pub(crate) version: i64,
    pub(crate) description: &'static str,
    pub(crate) sql: fn(&N) -> String,
}

/// The version the last migration brings the schema to.
pub(crate) fn latest<N>(migrations: &[Migration<N>]) -> i64 {
    migrations.last().map_or(0, |m| m.version)
}

/// The migrations a database at version `applied` still needs, in order; a database beyond
/// this build's latest version (migrated by a newer build) is refused with a
/// [`Error::Config`] that says to upgrade, naming `tables`.
pub(crate) fn pending<'m, N>(
    migrations: &'m [Migration<N>],
    applied: i64,
    backend: &'static str,
    tables: &str,
) -> Result<impl Iterator<Item = &'m Migration<N>> + use<'m, N>> {
    let latest = latest(migrations);
    if applied > latest {
        return Err(Error::Config {
            backend,
            message: format!(
                "{tables} is at schema version {applied}, but this build of eventsource knows versions up to {latest}; upgrade eventsource to open it"
            ),
        });
    }
    Ok(migrations.iter().filter(move |m| m.version > applied))
}

/// Panics unless the versions run 1, 2, 3, … without gaps: for each store's unit test.
#[cfg(test)]
pub(crate) fn assert_sequence<N>(migrations: &[Migration<N>]) {
    for (index, migration) in migrations.iter().enumerate() {
        assert_eq!(
            migration.version,
            index as i64 + 1,
            "migration `{}` is out of sequence",
            migration.description
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &[Migration<()>] = &[
        Migration {
            version: 1,
            description: "one",
            sql: |_| "ONE".into(),
        },
        Migration {
            version: 2,
            description: "two",
            sql: |_| "TWO".into(),
        },
    ];

    #[test]
    fn pending_migrations_run_in_order_and_a_newer_database_is_refused() {
        assert_sequence(LIST);
        assert_eq!(latest(LIST), 2);
        let all: Vec<i64> = pending(LIST, 0, "test", "x")
            .unwrap()
            .map(|m| m.version)
            .collect();
        assert_eq!(all, vec![1, 2]);
        let rest: Vec<String> = pending(LIST, 1, "test", "x")
            .unwrap()
            .map(|m| (m.sql)(&()))
            .collect();
        assert_eq!(rest, vec!["TWO"]);
        assert_eq!(pending(LIST, 2, "test", "x").unwrap().count(), 0);
        let Err(Error::Config { message, .. }) = pending(LIST, 3, "test", "schema `s`") else {
            panic!("a newer database must be refused");
        };
        assert!(
            message.contains("schema `s` is at schema version 3"),
            "{message}"
        );
        assert!(message.contains("upgrade eventsource"), "{message}");
    }
}
