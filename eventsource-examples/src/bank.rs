//! The bank domain: accounts that are opened, take deposits and withdrawals, and send and
//! receive transfers. `Deposited` has three schema versions, so old stored deposits are
//! decoded through an upcaster chain:
//!
//! - version 1 `{"amount": 12}`: whole euros, no currency;
//! - version 2 `{"amount": 12, "currency": "EUR"}`: a function step added the currency;
//! - version 3 `{"cents": 1200, "currency": "EUR"}`: a typed step (`From<DepositedV2>`) moved to cents.

use std::time::Duration;

use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An account was opened. It names the owner, so it is personal data: with encryption on it is
/// encrypted with the account's own key, and once its owner is forgotten it decodes as
/// `Forgotten<Opened>` (see [`BankAccount::forgettable`]).
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(personal)]
pub struct Opened {
    /// Who owns it.
    pub owner: String,
    /// The account's currency (ISO code).
    pub currency: String,
}

/// Version 2 of `Deposited`: whole units with a currency. Kept so version-2 records decode.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "Deposited", version = 2, upcast(from = 1, with = deposited_v1_to_v2))]
pub struct DepositedV2 {
    /// Whole currency units.
    pub amount: u64,
    /// The currency.
    pub currency: String,
}

/// Version 1 stored `{"amount": N}` only; every account was in euros then.
fn deposited_v1_to_v2(mut value: Value) -> Result<Value, UpcastError> {
    let object = value
        .as_object_mut()
        .ok_or_else(|| UpcastError::new("a version-1 deposit must be a JSON object"))?;
    object
        .entry("currency")
        .or_insert_with(|| Value::from("EUR"));
    Ok(value)
}

/// Money was paid in.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(version = 3, upcast_from = DepositedV2)]
pub struct Deposited {
    /// The amount in cents.
    pub cents: u64,
    /// The currency.
    pub currency: String,
}

impl From<DepositedV2> for Deposited {
    fn from(old: DepositedV2) -> Self {
        Deposited {
            cents: old.amount.saturating_mul(100),
            currency: old.currency,
        }
    }
}

/// Money was taken out.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Withdrawn {
    /// The amount in cents.
    pub cents: u64,
}

/// Money left this account for another.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TransferSent {
    /// The receiving account.
    pub to: Uuid,
    /// The amount in cents.
    pub cents: u64,
}

/// Money arrived from another account.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TransferReceived {
    /// The sending account.
    pub from: Uuid,
    /// The amount in cents.
    pub cents: u64,
}

/// The account was closed: it takes no more deposits, withdrawals or transfers. Its balance
/// stays on it (the bank pays it out by other means), and a refund of a transfer it sent still
/// lands.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Closed {
    /// Why.
    pub reason: String,
}

/// The first step of a transfer run as a process ([`crate::transfers`]): the money left this
/// account for `to`.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct DebitedForTransfer {
    /// The transfer (its stream id).
    pub transfer: Uuid,
    /// The account the money goes to.
    pub to: Uuid,
    /// In cents.
    pub cents: u64,
}

/// The second step of a transfer run as a process: the money arrived on this account.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CreditedByTransfer {
    /// The transfer (its stream id).
    pub transfer: Uuid,
    /// The account the money came from.
    pub from: Uuid,
    /// In cents.
    pub cents: u64,
}

/// The compensation of a transfer run as a process: the target could not take the money, so it
/// went back to this account, which sent it.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RefundedForTransfer {
    /// The transfer (its stream id).
    pub transfer: Uuid,
    /// In cents.
    pub cents: u64,
    /// Why the target refused it.
    pub reason: String,
}

/// A bank account's state.
///
/// It keeps snapshots (`snapshot`): none are taken unless a repository asks for them with
/// `snapshot_every(n)` or `take_snapshot`, as the benchmark's `snapshots` variant does.
#[derive(Aggregate, Default, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[aggregate(
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
    ),
    snapshot
)]
pub struct BankAccount {
    /// Who owns it.
    pub owner: String,
    /// The currency.
    pub currency: String,
    /// The balance in cents.
    pub balance: u64,
    /// Whether the account was closed.
    pub closed: bool,
}

impl Apply<Opened> for BankAccount {
    fn apply(&mut self, event: &Opened) {
        self.owner = event.owner.clone();
        self.currency = event.currency.clone();
    }
}

/// What an account's state keeps once its owner's data is forgotten: who owned it and in which
/// currency are gone with the `Opened` event; only a closed account may be forgotten, so
/// nothing needs them any more.
impl Apply<Forgotten<Opened>> for BankAccount {
    fn apply(&mut self, _: &Forgotten<Opened>) {
        FORGOTTEN_OWNER.clone_into(&mut self.owner);
    }
}

/// The owner an account shows once its owner's data was forgotten.
pub const FORGOTTEN_OWNER: &str = "(forgotten)";

impl Apply<Deposited> for BankAccount {
    fn apply(&mut self, event: &Deposited) {
        self.balance = self.balance.saturating_add(event.cents);
    }
}

impl Apply<Withdrawn> for BankAccount {
    fn apply(&mut self, event: &Withdrawn) {
        self.balance = self.balance.saturating_sub(event.cents);
    }
}

impl Apply<TransferSent> for BankAccount {
    fn apply(&mut self, event: &TransferSent) {
        self.balance = self.balance.saturating_sub(event.cents);
    }
}

impl Apply<TransferReceived> for BankAccount {
    fn apply(&mut self, event: &TransferReceived) {
        self.balance = self.balance.saturating_add(event.cents);
    }
}

impl Apply<Closed> for BankAccount {
    fn apply(&mut self, _: &Closed) {
        self.closed = true;
    }
}

impl Apply<DebitedForTransfer> for BankAccount {
    fn apply(&mut self, event: &DebitedForTransfer) {
        self.balance = self.balance.saturating_sub(event.cents);
    }
}

impl Apply<CreditedByTransfer> for BankAccount {
    fn apply(&mut self, event: &CreditedByTransfer) {
        self.balance = self.balance.saturating_add(event.cents);
    }
}

impl Apply<RefundedForTransfer> for BankAccount {
    fn apply(&mut self, event: &RefundedForTransfer) {
        self.balance = self.balance.saturating_add(event.cents);
    }
}

/// Why the bank refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankError {
    /// The account does not hold enough money.
    #[error("the balance is {}, which does not cover {}", cents(*balance), cents(*requested))]
    InsufficientFunds {
        /// The balance in cents.
        balance: u64,
        /// The amount asked for in cents.
        requested: u64,
    },
    /// Amounts must be positive.
    #[error("an amount must be more than zero")]
    ZeroAmount,
    /// A transfer to the same account.
    #[error("an account cannot transfer money to itself")]
    SameAccount,
    /// A transfer above what the limits service allows for the sending account.
    #[error("a transfer of {} is over this account's limit of {}", cents(*requested), cents(*limit))]
    OverLimit {
        /// The limit in cents.
        limit: u64,
        /// The amount asked for in cents.
        requested: u64,
    },
    /// The account is closed.
    #[error("the account is closed")]
    Closed,
    /// The account was never opened.
    #[error("there is no such account")]
    NoSuchAccount,
    /// The owner of an open account can't be forgotten: close the account first.
    #[error("the account is still open: close it before forgetting its owner")]
    StillOpen,
}

/// Formats cents as `12.34`.
pub fn cents(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

impl BankAccount {
    /// Decides a deposit.
    pub fn deposit(&self, cents: u64) -> Result<Deposited, BankError> {
        self.open()?;
        if cents == 0 {
            return Err(BankError::ZeroAmount);
        }
        Ok(Deposited {
            cents,
            currency: self.currency.clone(),
        })
    }

    /// Decides a withdrawal; refuses an overdraft.
    pub fn withdraw(&self, cents: u64) -> Result<Withdrawn, BankError> {
        self.open()?;
        if cents == 0 {
            return Err(BankError::ZeroAmount);
        }
        if cents > self.balance {
            return Err(BankError::InsufficientFunds {
                balance: self.balance,
                requested: cents,
            });
        }
        Ok(Withdrawn { cents })
    }

    /// Refuses anything on a closed account.
    fn open(&self) -> Result<(), BankError> {
        if self.closed {
            return Err(BankError::Closed);
        }
        Ok(())
    }

    /// Whether the owner's data may be forgotten: only once the account is closed (a bank keeps
    /// what it needs to run an open account; the request waits until it is closed).
    pub fn forgettable(&self) -> Result<(), BankError> {
        if !self.closed {
            return Err(BankError::StillOpen);
        }
        Ok(())
    }

    /// Decides closing the account.
    pub fn close(&self, reason: impl Into<String>) -> Result<Closed, BankError> {
        self.open()?;
        Ok(Closed {
            reason: reason.into(),
        })
    }

    /// Decides the receiving half of a transfer: refuses a closed account.
    pub fn receive(&self, from: Uuid, cents: u64) -> Result<TransferReceived, BankError> {
        self.open()?;
        Ok(TransferReceived { from, cents })
    }

    /// Decides the first step of a transfer run as a process: the money leaves this account.
    /// Refuses a closed account and an overdraft.
    pub fn debit_for(
        &self,
        transfer: Uuid,
        to: Uuid,
        cents: u64,
    ) -> Result<DebitedForTransfer, BankError> {
        let withdrawal = self.withdraw(cents)?;
        Ok(DebitedForTransfer {
            transfer,
            to,
            cents: withdrawal.cents,
        })
    }

    /// Decides the second step: the money arrives. Refuses a closed account (the transfer is
    /// then compensated).
    pub fn credit_for(
        &self,
        transfer: Uuid,
        from: Uuid,
        cents: u64,
    ) -> Result<CreditedByTransfer, BankError> {
        self.open()?;
        Ok(CreditedByTransfer {
            transfer,
            from,
            cents,
        })
    }
}

/// A transfer's failure: refused by the domain, or by the store.
pub type TransferError = CommandError<BankError>;

/// The limits service a transfer asks before it decides (in a real bank, a remote call to a
/// risk system): how much an account may send in one transfer.
#[derive(Debug, Clone)]
pub struct TransferLimits {
    /// The limit for every account, in cents.
    pub per_transfer: u64,
    /// How long the simulated remote call takes.
    pub latency: Duration,
}

impl Default for TransferLimits {
    /// 10,000.00 per transfer, answered in 1 ms.
    fn default() -> Self {
        Self {
            per_transfer: 1_000_000, // cents: 10,000.00
            latency: Duration::from_millis(1),
        }
    }
}

impl TransferLimits {
    /// The most `account` may send in one transfer, in cents.
    pub async fn limit_for(&self, account: Uuid) -> u64 {
        let _ = account;
        tokio::time::sleep(self.latency).await;
        self.per_transfer
    }
}

/// A transfer that was saved: both accounts after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    /// The sending account's balance after the transfer, in cents.
    pub sender_balance: u64,
    /// The sending account's version after the transfer.
    pub sender_version: u64,
    /// The receiving account's balance after the transfer, in cents.
    pub receiver_balance: u64,
    /// The receiving account's version after the transfer.
    pub receiver_version: u64,
}

impl BankAccount {
    /// Decides the sending half of a transfer: refuses an overdraft and an amount over `limit`.
    pub fn send(&self, to: Uuid, cents: u64, limit: u64) -> Result<TransferSent, BankError> {
        if cents > limit {
            return Err(BankError::OverLimit {
                limit,
                requested: cents,
            });
        }
        let withdrawal = self.withdraw(cents)?;
        Ok(TransferSent {
            to,
            cents: withdrawal.cents,
        })
    }
}

/// Moves money between two accounts as one unit of work: both streams change in one atomic
/// append, or neither does. The decision awaits the limits service; on a version conflict (a
/// concurrent command moved either account) the whole unit runs again on fresh state, with the
/// repository's attempts and backoff.
pub async fn transfer<S: EventStore>(
    accounts: &Repository<BankAccount, S>,
    limits: &TransferLimits,
    from: Uuid,
    to: Uuid,
    cents: u64,
) -> Result<Transfer, TransferError> {
    if from == to {
        return Err(CommandError::Rejected(BankError::SameAccount));
    }
    accounts
        .unit_of_work()
        .run(|work| {
            Box::pin(async move {
                let sender = work.load::<BankAccount>(from).await?;
                let receiver = work.load::<BankAccount>(to).await?;
                let limit = limits.limit_for(from).await;
                let sent = work[sender]
                    .send(to, cents, limit)
                    .map_err(CommandError::Rejected)?;
                let received = work[receiver]
                    .receive(from, cents)
                    .map_err(CommandError::Rejected)?;
                work.record(sender, sent);
                work.record(receiver, received);
                let after = |account: &Loaded<BankAccount>| {
                    (
                        account.balance,
                        account.version() + account.pending().len() as u64,
                    )
                };
                let (sender_balance, sender_version) = after(&work[sender]);
                let (receiver_balance, receiver_version) = after(&work[receiver]);
                Ok(Transfer {
                    sender_balance,
                    sender_version,
                    receiver_balance,
                    receiver_version,
                })
            })
        })
        .await
}
