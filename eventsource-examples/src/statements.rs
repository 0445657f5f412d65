//! The bank's read side: a projection that keeps every account's balance and statement, built
//! from the log (not from the aggregates), for the demo to print.
//!
//! It is an in-memory read model (context `()`), so it works on every store and is rebuilt
//! from the log each time the program starts; a read model in the store's own database would
//! use the store's transaction (`SqliteWork`, `PostgresWork`) and resume where it stopped.

use std::collections::BTreeMap;

use eventsource_core::prelude::*;

use crate::bank::{Deposited, Opened, TransferReceived, TransferSent, Withdrawn, cents};

/// One account as the read model sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Statement {
    /// Who owns it.
    pub owner: String,
    /// Its balance in cents.
    pub balance: u64,
    /// One line per event, oldest first.
    pub lines: Vec<String>,
}

/// Balances and statements of every account, by account id.
#[derive(Projection, Debug, Default)]
#[projection(
    name = "bank-statements",
    events(Opened, Deposited, Withdrawn, TransferSent, TransferReceived)
)]
pub struct Statements {
    /// The accounts, by id.
    pub accounts: BTreeMap<Uuid, Statement>,
}

impl Statements {
    fn line<E>(&mut self, event: &Recorded<E>, change: i128, what: String) {
        let statement = self.accounts.entry(event.stream_id).or_default();
        statement.balance = u64::try_from(i128::from(statement.balance) + change).unwrap_or(0);
        let sign = if change < 0 { "-" } else { "+" };
        statement.lines.push(format!(
            "v{:<3} {:<40} {sign}{:>10}   balance {:>10}",
            event.version,
            what,
            cents(change.unsigned_abs().try_into().unwrap_or(u64::MAX)),
            cents(statement.balance)
        ));
    }
}

impl Handle<Opened> for Statements {
    async fn handle(&mut self, e: &Recorded<Opened>, _: &mut ()) -> Result<(), HandlerError> {
        self.accounts.entry(e.stream_id).or_default().owner = e.event.owner.clone();
        self.line(
            e,
            0,
            format!("opened by {} in {}", e.event.owner, e.event.currency),
        );
        Ok(())
    }
}

impl Handle<Deposited> for Statements {
    async fn handle(&mut self, e: &Recorded<Deposited>, _: &mut ()) -> Result<(), HandlerError> {
        self.line(e, i128::from(e.event.cents), "deposit".into());
        Ok(())
    }
}

impl Handle<Withdrawn> for Statements {
    async fn handle(&mut self, e: &Recorded<Withdrawn>, _: &mut ()) -> Result<(), HandlerError> {
        self.line(e, -i128::from(e.event.cents), "withdrawal".into());
        Ok(())
    }
}

impl Handle<TransferSent> for Statements {
    async fn handle(&mut self, e: &Recorded<TransferSent>, _: &mut ()) -> Result<(), HandlerError> {
        let to = self.owner_of(e.event.to);
        self.line(e, -i128::from(e.event.cents), format!("transfer to {to}"));
        Ok(())
    }
}

impl Handle<TransferReceived> for Statements {
    async fn handle(
        &mut self,
        e: &Recorded<TransferReceived>,
        _: &mut (),
    ) -> Result<(), HandlerError> {
        let from = self.owner_of(e.event.from);
        self.line(
            e,
            i128::from(e.event.cents),
            format!("transfer from {from}"),
        );
        Ok(())
    }
}

impl Statements {
    fn owner_of(&self, account: Uuid) -> String {
        self.accounts
            .get(&account)
            .map_or_else(|| account.to_string(), |s| s.owner.clone())
    }
}
