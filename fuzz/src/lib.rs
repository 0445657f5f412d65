//! What the fuzz targets share: a small bank-like domain whose events are decoded from
//! arbitrary stored bytes.
//!
//! `Deposited` has three schema versions, like the bank example's: version 1 `{"amount": N}`,
//! version 2 adds the currency (a function step), version 3 moves to cents (a typed `From` step).

use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An account was opened.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Opened {
    /// Who owns it.
    pub owner: String,
    /// The account's currency.
    pub currency: String,
}

/// Version 2 of `Deposited`: whole units with a currency.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "Deposited", version = 2, upcast(from = 1, with = deposited_v1_to_v2))]
pub struct DepositedV2 {
    /// Whole currency units.
    pub amount: u64,
    /// The currency.
    pub currency: String,
}

/// Version 1 stored `{"amount": N}` only, in euros.
fn deposited_v1_to_v2(mut value: Value) -> Result<Value, UpcastError> {
    let object = value
        .as_object_mut()
        .ok_or_else(|| UpcastError::new("a version-1 deposit must be a JSON object"))?;
    object
        .entry("currency")
        .or_insert_with(|| Value::from("EUR"));
    Ok(value)
}

/// Money was paid in (version 3: cents).
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

/// Money left for another account.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TransferSent {
    /// The receiving account.
    pub to: Uuid,
    /// The amount in cents.
    pub cents: u64,
    /// A note, if any.
    pub note: Option<String>,
}

/// The account's state.
#[derive(Aggregate, Default, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[aggregate(events(Opened, Deposited, Withdrawn, TransferSent), snapshot)]
pub struct Account {
    /// Who owns it.
    pub owner: String,
    /// The currency.
    pub currency: String,
    /// The balance in cents.
    pub balance: u64,
    /// Where money went.
    pub sent_to: Vec<Uuid>,
}

impl Apply<Opened> for Account {
    fn apply(&mut self, event: &Opened) {
        self.owner = event.owner.clone();
        self.currency = event.currency.clone();
    }
}

impl Apply<Deposited> for Account {
    fn apply(&mut self, event: &Deposited) {
        self.balance = self.balance.saturating_add(event.cents);
    }
}

impl Apply<Withdrawn> for Account {
    fn apply(&mut self, event: &Withdrawn) {
        self.balance = self.balance.saturating_sub(event.cents);
    }
}

impl Apply<TransferSent> for Account {
    fn apply(&mut self, event: &TransferSent) {
        self.balance = self.balance.saturating_sub(event.cents);
        self.sent_to.push(event.to);
    }
}

/// A stored event name: mostly one the aggregate knows (so the fuzzer reaches the payload
/// decoding), sometimes an arbitrary one.
pub fn pick_name(selector: u8, other: &str) -> &str {
    const KNOWN: &[&str] = &["Opened", "Deposited", "Withdrawn", "TransferSent"];
    KNOWN.get(usize::from(selector)).copied().unwrap_or(other)
}
