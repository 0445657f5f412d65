//! The statements read model in memory (context `()`): it works on every store and is rebuilt
//! from the log each time the program starts. The demo uses it on the memory store.
//!
//! Its accounts sit behind a lock shared with [`Accounts`] views, so a program can read the
//! balances while the projection runs on its own task (the service does, on every request).

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

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
    /// The accounts, by id, shared with the views [`accounts`](Self::accounts) hands out.
    accounts: Accounts,
    /// How many events it has handled.
    pub processed: u64,
}

/// A view of the accounts of a [`Statements`] read model, shared with it: it sees every event
/// the projection handles as soon as it is handled, from any task.
#[derive(Debug, Clone, Default)]
pub struct Accounts(Arc<RwLock<BTreeMap<Uuid, Statement>>>);

impl Accounts {
    /// Every account's balance, by account id, or only `account`'s (none if the read model has
    /// not seen it).
    pub fn balances(&self, account: Option<Uuid>) -> Vec<Balance> {
        let accounts = self.0.read().unwrap_or_else(PoisonError::into_inner);
        let balance = |(id, s): (&Uuid, &Statement)| Balance {
            account: *id,
            owner: s.owner.clone(),
            cents: s.balance,
        };
        match account {
            Some(id) => accounts
                .get_key_value(&id)
                .map(balance)
                .into_iter()
                .collect(),
            None => accounts.iter().map(balance).collect(),
        }
    }

    /// The last `lines` lines of `account`'s statement, oldest first.
    pub fn statement(&self, account: Uuid, lines: usize) -> Vec<String> {
        let accounts = self.0.read().unwrap_or_else(PoisonError::into_inner);
        accounts
            .get(&account)
            .map(|s| s.lines[s.lines.len().saturating_sub(lines)..].to_vec())
            .unwrap_or_default()
    }

    /// Changes the accounts under the lock (a handler holds it for one event, never across an
    /// `.await`).
    fn write<T>(&self, change: impl FnOnce(&mut BTreeMap<Uuid, Statement>) -> T) -> T {
        change(&mut self.0.write().unwrap_or_else(PoisonError::into_inner))
    }
}

impl<E: ToEntry> Handle<E> for Statements {
    async fn handle(&mut self, e: &Recorded<E>, _: &mut ()) -> Result<(), HandlerError> {
        let entry = e.event.entry();
        self.accounts.write(|accounts| {
            let counterpart = entry
                .counterpart()
                .and_then(|account| accounts.get(&account))
                .map(|statement| statement.owner.clone());
            let statement = accounts.entry(e.stream_id).or_default();
            if let Some(owner) = entry.opened_by() {
                owner.clone_into(&mut statement.owner);
            }
            statement.balance = entry.balance_after(statement.balance);
            let line = entry.line(e.version, counterpart.as_deref(), statement.balance);
            statement.lines.push(line);
        });
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
        self.accounts.write(|accounts| {
            let owner = accounts
                .get(&e.event.subject)
                .map(|s| s.owner.clone())
                .filter(|o| !o.is_empty() && o != FORGOTTEN_OWNER);
            if let Some(owner) = owner {
                for statement in accounts.values_mut() {
                    for line in &mut statement.lines {
                        *line = line.replace(&owner, FORGOTTEN_OWNER);
                    }
                }
            }
            if let Some(statement) = accounts.get_mut(&e.event.subject) {
                FORGOTTEN_OWNER.clone_into(&mut statement.owner);
            }
        });
        self.processed += 1;
        Ok(())
    }
}

impl Statements {
    /// A view of the accounts that follows this read model wherever it runs.
    pub fn accounts(&self) -> Accounts {
        self.accounts.clone()
    }

    /// Every balance and the last `lines` lines of `account`'s statement.
    pub fn report(&self, resumed_after: Position, account: Uuid, lines: usize) -> Report {
        Report {
            kept_in: "in memory, rebuilt from the log at each start".into(),
            resumed_after,
            processed: self.processed,
            balances: self.accounts.balances(None),
            statement: self.accounts.statement(account, lines),
        }
    }
}
