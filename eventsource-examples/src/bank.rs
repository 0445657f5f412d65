//! The bank domain: accounts that are opened, take deposits and withdrawals, and send and
//! receive transfers. `Deposited` has three schema versions, so old stored deposits are
//! decoded through an upcaster chain:
//!
//! - version 1 `{"amount": 12}`: whole euros, no currency;
//! - version 2 `{"amount": 12, "currency": "EUR"}`: a function step added the currency;
//! - version 3 `{"cents": 1200, "currency": "EUR"}`: a typed step (`From<DepositedV2>`) moved to cents.

use eventsource_core::prelude::*;
use eventsource_core::{Error, Loaded};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An account was opened.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
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

/// A bank account's state.
///
/// It keeps snapshots (`snapshot`): none are taken unless a repository asks for them with
/// `snapshot_every(n)` or `take_snapshot`, as the benchmark's `snapshots` variant does.
#[derive(Aggregate, Default, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[aggregate(
    events(Opened, Deposited, Withdrawn, TransferSent, TransferReceived),
    snapshot
)]
pub struct BankAccount {
    /// Who owns it.
    pub owner: String,
    /// The currency.
    pub currency: String,
    /// The balance in cents.
    pub balance: u64,
}

impl Apply<Opened> for BankAccount {
    fn apply(&mut self, event: &Opened) {
        self.owner = event.owner.clone();
        self.currency = event.currency.clone();
    }
}

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
}

/// Formats cents as `12.34`.
pub fn cents(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

impl BankAccount {
    /// Decides a deposit.
    pub fn deposit(&self, cents: u64) -> Result<Deposited, BankError> {
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
}

/// A transfer's failure: refused by the domain, or by the store.
pub type TransferError = CommandError<BankError>;

/// Moves money between two accounts in one atomic append: both streams change, or neither.
/// Retries on a version conflict, like [`Repository::execute`].
pub async fn transfer<S: EventStore>(
    accounts: &Repository<BankAccount, S>,
    from: Uuid,
    to: Uuid,
    cents: u64,
) -> Result<(Loaded<BankAccount>, Loaded<BankAccount>), TransferError> {
    if from == to {
        return Err(CommandError::Rejected(BankError::SameAccount));
    }
    const ATTEMPTS: u32 = 5;
    for attempt in 1..=ATTEMPTS {
        let mut sender = accounts.get(from).await?;
        let mut receiver = accounts.get(to).await?;
        let withdrawal = sender.withdraw(cents).map_err(CommandError::Rejected)?;
        sender.record(TransferSent {
            to,
            cents: withdrawal.cents,
        });
        receiver.record(TransferReceived { from, cents });
        match accounts.save(&mut [&mut sender, &mut receiver]).await {
            Ok(_) => return Ok((sender, receiver)),
            Err(error) if error.is_conflict() && attempt < ATTEMPTS => continue,
            Err(error) => return Err(CommandError::Store(error)),
        }
    }
    Err(CommandError::Store(Error::TooManyConflicts {
        stream: from,
        attempts: ATTEMPTS,
    }))
}
