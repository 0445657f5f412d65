//! The statements read model as two tables in the store's SQLite file, written through the
//! projection's transaction ([`SqliteWork`]): each batch of rows commits with the projection's
//! tracking position, so the next run resumes right after the last event this one committed.

use std::path::Path;
use std::time::Duration;

use eventsource_core::Position;
use eventsource_core::prelude::*;
use eventsource_core::stores::sqlite::SqliteWork;
use rusqlite::{Connection, OptionalExtension, params};

use super::line::ToEntry;
use super::{Balance, Report};
use crate::bank::{
    Closed, CreditedByTransfer, DebitedForTransfer, Deposited, FORGOTTEN_OWNER, Opened,
    RefundedForTransfer, TransferReceived, TransferSent, Withdrawn,
};
use eventsource_core::application::forget::SubjectForgotten;

/// The read model's tables, created by the demo if they are missing.
const TABLES: &str = "
CREATE TABLE IF NOT EXISTS bank_balances (
    account TEXT PRIMARY KEY,
    owner   TEXT NOT NULL,
    cents   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS bank_statement_lines (
    account  TEXT NOT NULL,
    version  INTEGER NOT NULL,
    position INTEGER NOT NULL,
    line     TEXT NOT NULL,
    PRIMARY KEY (account, version)
);";

/// The statements projection into the store's SQLite file; it counts the events it handled in
/// this run.
#[derive(Projection, Debug, Default)]
#[projection(
    name = "bank-statements-sqlite",
    events(
        Opened,
        Deposited,
        Withdrawn,
        TransferSent,
        TransferReceived,
        Closed,
        DebitedForTransfer,
        CreditedByTransfer,
        RefundedForTransfer,
        SubjectForgotten
    ),
    context = SqliteWork
)]
pub struct SqliteStatements {
    /// How many events it has handled in this run.
    pub processed: u64,
}

impl<E: ToEntry> Handle<E, SqliteWork> for SqliteStatements {
    async fn handle(&mut self, e: &Recorded<E>, work: &mut SqliteWork) -> Result<(), HandlerError> {
        let db = work.connection();
        let entry = e.event.entry();
        let account = e.stream_id.to_string();
        let counterpart: Option<String> = match entry.counterpart() {
            Some(other) => db
                .query_row(
                    "SELECT owner FROM bank_balances WHERE account = ?1",
                    [other.to_string()],
                    |row| row.get(0),
                )
                .optional()?,
            None => None,
        };
        let before: Option<i64> = db
            .query_row(
                "SELECT cents FROM bank_balances WHERE account = ?1",
                [&account],
                |row| row.get(0),
            )
            .optional()?;
        let balance = entry.balance_after(u64::try_from(before.unwrap_or(0))?);
        db.execute(
            "INSERT INTO bank_balances (account, owner, cents) VALUES (?1, coalesce(?2, ''), ?3)
             ON CONFLICT (account) DO UPDATE
             SET cents = excluded.cents, owner = coalesce(?2, bank_balances.owner)",
            params![account, entry.opened_by(), i64::try_from(balance)?],
        )?;
        db.execute(
            "INSERT INTO bank_statement_lines (account, version, position, line)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                account,
                i64::try_from(e.version)?,
                i64::try_from(e.position.get())?,
                entry.line(e.version, counterpart.as_deref(), balance),
            ],
        )?;
        self.processed += 1;
        Ok(())
    }
}

/// An account's owner was forgotten: their name leaves the balances and every statement line
/// that quotes it (the opening line of their account, and transfers to and from them in others'
/// statements). A rebuild would give the same: their `Opened` now decodes as forgotten.
impl Handle<SubjectForgotten, SqliteWork> for SqliteStatements {
    async fn handle(
        &mut self,
        e: &Recorded<SubjectForgotten>,
        work: &mut SqliteWork,
    ) -> Result<(), HandlerError> {
        let db = work.connection();
        let account = e.event.subject.to_string();
        let owner: Option<String> = db
            .query_row(
                "SELECT owner FROM bank_balances WHERE account = ?1",
                [&account],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(owner) = owner.filter(|o| !o.is_empty() && o != FORGOTTEN_OWNER) {
            db.execute(
                "UPDATE bank_statement_lines SET line = replace(line, ?1, ?2)",
                params![owner, FORGOTTEN_OWNER],
            )?;
        }
        db.execute(
            "UPDATE bank_balances SET owner = ?2 WHERE account = ?1",
            params![account, FORGOTTEN_OWNER],
        )?;
        self.processed += 1;
        Ok(())
    }
}

/// A connection of the demo's own to the store's file (for the tables and the report).
fn open(store: &SqliteStore) -> Result<(Connection, &Path), HandlerError> {
    let path = store
        .path()
        .ok_or("an in-memory SQLite store has no file to keep a read model in")?;
    let db = Connection::open(path)?;
    db.busy_timeout(Duration::from_secs(5))?;
    Ok((db, path))
}

/// Creates the read model's tables in the store's file if they are missing.
pub fn create_tables(store: &SqliteStore) -> Result<(), HandlerError> {
    open(store)?.0.execute_batch(TABLES)?;
    Ok(())
}

/// Reads every account's balance from the tables, by account id, or only `account`'s (none if
/// the read model has not seen it). It blocks on the file: call it from a blocking task in async
/// code.
pub fn read_balances(
    store: &SqliteStore,
    account: Option<Uuid>,
) -> Result<Vec<Balance>, HandlerError> {
    balances(&open(store)?.0, account)
}

fn balances(db: &Connection, account: Option<Uuid>) -> Result<Vec<Balance>, HandlerError> {
    db.prepare(
        "SELECT account, owner, cents FROM bank_balances
         WHERE ?1 IS NULL OR account = ?1 ORDER BY account",
    )?
    .query_map([account.map(|id| id.to_string())], |row| {
        Ok((row.get::<_, String>(0)?, row.get(1)?, row.get::<_, i64>(2)?))
    })?
    .map(|row| {
        let (account, owner, cents) = row?;
        Ok(Balance {
            account: Uuid::parse_str(&account)
                .map_err(|e| format!("bank_balances holds account `{account}`: {e}"))?,
            owner,
            cents: u64::try_from(cents)?,
        })
    })
    .collect()
}

impl SqliteStatements {
    /// Empties the read model inside the projection's transaction (creating its tables if they
    /// are missing), for a rebuild from the first event.
    pub fn clear(&mut self, work: &mut SqliteWork) -> Result<(), HandlerError> {
        work.connection().execute_batch(TABLES)?;
        work.connection()
            .execute_batch("DELETE FROM bank_balances; DELETE FROM bank_statement_lines;")?;
        self.processed = 0;
        Ok(())
    }

    /// Reads every balance and the last `lines` lines of `account`'s statement from the tables.
    pub fn report(
        &self,
        store: &SqliteStore,
        resumed_after: Position,
        account: Uuid,
        lines: usize,
    ) -> Result<Report, HandlerError> {
        let (db, path) = open(store)?;
        let balances = balances(&db, None)?;
        let mut statement = db
            .prepare(
                "SELECT line FROM bank_statement_lines WHERE account = ?1
                 ORDER BY version DESC LIMIT ?2",
            )?
            .query_map(params![account.to_string(), i64::try_from(lines)?], |row| {
                row.get(0)
            })?
            .collect::<Result<Vec<String>, _>>()?;
        statement.reverse();
        Ok(Report {
            kept_in: format!(
                "in the store's SQLite file {}, tables bank_balances and bank_statement_lines",
                path.display()
            ),
            resumed_after,
            processed: self.processed,
            balances,
            statement,
        })
    }
}
