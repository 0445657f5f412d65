//! [`BankAccount`](crate::bank::BankAccount)'s twin that keeps snapshots, for W1's `snapshots`
//! variant. The bank domain's own aggregate declares no snapshots, so the bench brings its own
//! with the same events, state and `Apply` impls, plus `#[aggregate(snapshot)]`; the repository
//! sets how often with [`Repository::snapshot_every`](eventsource_core::Repository::snapshot_every).

use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

use crate::bank::{Deposited, Opened, TransferReceived, TransferSent, Withdrawn};

/// A bank account whose state can be snapshotted.
#[derive(Aggregate, Default, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[aggregate(
    events(Opened, Deposited, Withdrawn, TransferSent, TransferReceived),
    snapshot
)]
pub struct SnapshottedAccount {
    /// Who owns it.
    pub owner: String,
    /// The currency.
    pub currency: String,
    /// The balance in cents.
    pub balance: u64,
}

impl Apply<Opened> for SnapshottedAccount {
    fn apply(&mut self, event: &Opened) {
        self.owner = event.owner.clone();
        self.currency = event.currency.clone();
    }
}

impl Apply<Deposited> for SnapshottedAccount {
    fn apply(&mut self, event: &Deposited) {
        self.balance = self.balance.saturating_add(event.cents);
    }
}

impl Apply<Withdrawn> for SnapshottedAccount {
    fn apply(&mut self, event: &Withdrawn) {
        self.balance = self.balance.saturating_sub(event.cents);
    }
}

impl Apply<TransferSent> for SnapshottedAccount {
    fn apply(&mut self, event: &TransferSent) {
        self.balance = self.balance.saturating_sub(event.cents);
    }
}

impl Apply<TransferReceived> for SnapshottedAccount {
    fn apply(&mut self, event: &TransferReceived) {
        self.balance = self.balance.saturating_add(event.cents);
    }
}

/// The balance of either account type, for the bench's checks.
pub trait Balance {
    /// The balance in cents.
    fn balance_cents(&self) -> u64;
}

impl Balance for crate::bank::BankAccount {
    fn balance_cents(&self) -> u64 {
        self.balance
    }
}

impl Balance for SnapshottedAccount {
    fn balance_cents(&self) -> u64 {
        self.balance
    }
}
