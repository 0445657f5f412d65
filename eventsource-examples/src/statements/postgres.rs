//! The statements read model as two tables in the store's PostgreSQL schema, written through the
//! projection's transaction ([`PostgresWork`]): each batch of rows commits with the projection's
//! tracking position, so the next run resumes right after the last event this one committed.

use eventsource_core::Position;
use eventsource_core::prelude::*;
use eventsource_core::stores::postgres::PostgresWork;

use super::line::ToEntry;
use super::{Balance, Report};
use crate::bank::{
    Closed, CreditedByTransfer, DebitedForTransfer, Deposited, FORGOTTEN_OWNER, Opened,
    RefundedForTransfer, TransferReceived, TransferSent, Withdrawn,
};
use eventsource_core::application::forget::SubjectForgotten;

/// The statements projection into the store's PostgreSQL schema; it counts the events it
/// handled in this run.
#[derive(Projection, Debug)]
#[projection(
    name = "bank-statements-postgres",
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
    context = PostgresWork
)]
pub struct PostgresStatements {
    /// `"schema".bank_balances`.
    balances: String,
    /// `"schema".bank_statement_lines`.
    lines: String,
    /// How many events it has handled in this run.
    pub processed: u64,
}

impl<E: ToEntry> Handle<E, PostgresWork> for PostgresStatements {
    async fn handle(
        &mut self,
        e: &Recorded<E>,
        work: &mut PostgresWork,
    ) -> Result<(), HandlerError> {
        let db = work.client();
        let entry = e.event.entry();
        let counterpart: Option<String> = match entry.counterpart() {
            Some(other) => db
                .query_opt(
                    &format!("SELECT owner FROM {} WHERE account = $1", self.balances),
                    &[&other],
                )
                .await?
                .map(|row| row.get(0)),
            None => None,
        };
        let before: Option<i64> = db
            .query_opt(
                &format!("SELECT cents FROM {} WHERE account = $1", self.balances),
                &[&e.stream_id],
            )
            .await?
            .map(|row| row.get(0));
        let balance = entry.balance_after(u64::try_from(before.unwrap_or(0))?);
        db.execute(
            &format!(
                "INSERT INTO {} AS b (account, owner, cents) VALUES ($1, coalesce($2, ''), $3)
                 ON CONFLICT (account) DO UPDATE
                 SET cents = excluded.cents, owner = coalesce($2, b.owner)",
                self.balances
            ),
            &[&e.stream_id, &entry.opened_by(), &i64::try_from(balance)?],
        )
        .await?;
        let line = entry.line(e.version, counterpart.as_deref(), balance);
        db.execute(
            &format!(
                "INSERT INTO {} (account, version, position, line) VALUES ($1, $2, $3, $4)",
                self.lines
            ),
            &[
                &e.stream_id,
                &i64::try_from(e.version)?,
                &i64::try_from(e.position.get())?,
                &line,
            ],
        )
        .await?;
        self.processed += 1;
        Ok(())
    }
}

/// An account's owner was forgotten: their name leaves the balances and every statement line
/// that quotes it (see the SQLite read model).
impl Handle<SubjectForgotten, PostgresWork> for PostgresStatements {
    async fn handle(
        &mut self,
        e: &Recorded<SubjectForgotten>,
        work: &mut PostgresWork,
    ) -> Result<(), HandlerError> {
        let db = work.client();
        let owner: Option<String> = db
            .query_opt(
                &format!("SELECT owner FROM {} WHERE account = $1", self.balances),
                &[&e.event.subject],
            )
            .await?
            .map(|row| row.get(0));
        if let Some(owner) = owner.filter(|o| !o.is_empty() && o != FORGOTTEN_OWNER) {
            db.execute(
                &format!("UPDATE {} SET line = replace(line, $1, $2)", self.lines),
                &[&owner, &FORGOTTEN_OWNER],
            )
            .await?;
        }
        db.execute(
            &format!("UPDATE {} SET owner = $2 WHERE account = $1", self.balances),
            &[&e.event.subject, &FORGOTTEN_OWNER],
        )
        .await?;
        self.processed += 1;
        Ok(())
    }
}

impl PostgresStatements {
    /// Creates the read model's tables in the store's schema if they are missing, and the
    /// projection that writes them.
    pub async fn create_tables(store: &PostgresStore) -> Result<Self, HandlerError> {
        let projection = Self::of(store);
        store
            .pool()
            .get()
            .await?
            .batch_execute(&projection.tables())
            .await?;
        Ok(projection)
    }

    /// The projection that writes the tables in `store`'s schema (which may not exist yet: see
    /// [`create_tables`](Self::create_tables) and [`clear`](Self::clear)).
    pub fn of(store: &PostgresStore) -> Self {
        let schema = store.schema();
        Self {
            balances: balances_table(store),
            lines: format!("\"{schema}\".bank_statement_lines"),
            processed: 0,
        }
    }

    /// Empties the read model inside the projection's transaction (creating its tables if they
    /// are missing), for a rebuild from the first event.
    pub async fn clear(&mut self, work: &mut PostgresWork) -> Result<(), HandlerError> {
        let db = work.client();
        db.batch_execute(&self.tables()).await?;
        db.batch_execute(&format!(
            "DELETE FROM {}; DELETE FROM {};",
            self.balances, self.lines
        ))
        .await?;
        self.processed = 0;
        Ok(())
    }

    fn tables(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} (
                 account uuid PRIMARY KEY,
                 owner   text NOT NULL,
                 cents   int8 NOT NULL
             );
             CREATE TABLE IF NOT EXISTS {} (
                 account  uuid NOT NULL,
                 version  int8 NOT NULL,
                 position int8 NOT NULL,
                 line     text NOT NULL,
                 PRIMARY KEY (account, version)
             );",
            self.balances, self.lines
        )
    }

    /// Reads every balance and the last `lines` lines of `account`'s statement from the tables.
    pub async fn report(
        &self,
        store: &PostgresStore,
        resumed_after: Position,
        account: Uuid,
        lines: usize,
    ) -> Result<Report, HandlerError> {
        let balances = read_balances(store, None).await?;
        let db = store.pool().get().await?;
        let mut statement: Vec<String> = db
            .query(
                &format!(
                    "SELECT line FROM {} WHERE account = $1 ORDER BY version DESC LIMIT $2",
                    self.lines
                ),
                &[&account, &i64::try_from(lines)?],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        statement.reverse();
        Ok(Report {
            kept_in: format!(
                "in the store's PostgreSQL schema `{}`, tables bank_balances and bank_statement_lines",
                store.schema()
            ),
            resumed_after,
            processed: self.processed,
            balances,
            statement,
        })
    }
}

/// `"schema".bank_balances`.
fn balances_table(store: &PostgresStore) -> String {
    format!("\"{}\".bank_balances", store.schema())
}

/// Reads every account's balance from the store's `bank_balances` table, by account id, or
/// only `account`'s (none if the read model has not seen it).
pub async fn read_balances(
    store: &PostgresStore,
    account: Option<Uuid>,
) -> Result<Vec<Balance>, HandlerError> {
    let db = store.pool().get().await?;
    db.query(
        &format!(
            "SELECT account, owner, cents FROM {} WHERE $1::uuid IS NULL OR account = $1
             ORDER BY account",
            balances_table(store)
        ),
        &[&account],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(Balance {
            account: row.get(0),
            owner: row.get(1),
            cents: u64::try_from(row.get::<_, i64>(2))?,
        })
    })
    .collect()
}
