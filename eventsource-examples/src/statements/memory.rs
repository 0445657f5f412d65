//! The statements read model in memory (context `()`): it works on every store and is rebuilt
//! from the log each time the program starts. The demo uses it on the memory store.

use std::collections::BTreeMap;

use eventsource_core::Position;
use eventsource_core::prelude::*;

use super::line::ToEntry;
use super::{Balance, Report};
use crate::bank::{
    Closed, CreditedByTransfer, DebitedForTransfer, Deposited, FORGOTTEN_OWNER, Opened,
    RefundedForTransfer, TransferReceived, TransferSent, Withdrawn,
};
use eventsource_core::application::forget::SubjectForgotten;

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
    )
)]
pub struct Statements {
    /// The accounts, by id.
    pub accounts: BTreeMap<Uuid, Statement>,
    /// How many events it has handled.
    pub processed: u64,
}

impl<E: ToEntry> Handle<E> for Statements {
    async fn handle(&mut self, e: &Recorded<E>, _: &mut ()) -> Result<(), HandlerError> {
        let entry = e.event.entry();
        let counterpart = entry
            .counterpart()
            .and_then(|account| self.accounts.get(&account))
            .map(|statement| statement.owner.clone());
        let statement = self.accounts.entry(e.stream_id).or_default();
        if let Some(owner) = entry.opened_by() {
            owner.clone_into(&mut statement.owner);
        }
        statement.balance = entry.balance_after(statement.balance);
        let line = entry.line(e.version, counterpart.as_deref(), statement.balance);
        statement.lines.push(line);
        self.processed += 1;
        Ok(())
    }
}

/// An account's owner was forgotten: their name leaves the balances and every statement line
/// that quotes it (see the SQLite read model).
impl Handle<SubjectForgotten> for Statements {
    async fn handle(
        &mut self,
        e: &Recorded<SubjectForgotten>,
        _: &mut (),
    ) -> Result<(), HandlerError> {
        let owner = self
            .accounts
            .get(&e.event.subject)
            .map(|s| s.owner.clone())
            .filter(|o| !o.is_empty() && o != FORGOTTEN_OWNER);
        if let Some(owner) = owner {
            for statement in self.accounts.values_mut() {
                for line in &mut statement.lines {
                    *line = line.replace(&owner, FORGOTTEN_OWNER);
                }
            }
        }
        if let Some(statement) = self.accounts.get_mut(&e.event.subject) {
            FORGOTTEN_OWNER.clone_into(&mut statement.owner);
        }
        self.processed += 1;
        Ok(())
    }
}

impl Statements {
    /// Every balance and the last `lines` lines of `account`'s statement.
    pub fn report(&self, resumed_after: Position, account: Uuid, lines: usize) -> Report {
        let statement = self
            .accounts
            .get(&account)
            .map(|s| &s.lines[s.lines.len().saturating_sub(lines)..])
            .unwrap_or_default();
        Report {
            kept_in: "in memory, rebuilt from the log at each start".into(),
            resumed_after,
            processed: self.processed,
            balances: self
                .accounts
                .values()
                .map(|s| Balance {
                    owner: s.owner.clone(),
                    cents: s.balance,
                })
                .collect(),
            statement: statement.to_vec(),
        }
    }
}
