//! The JSON the service reads and writes: request bodies (unknown fields refused), and what the
//! routes answer. Amounts are in cents, positions are the log's global positions (what a read
//! passes as `?after=` to see a command's effect).

use std::time::UNIX_EPOCH;

use eventsource_core::{Aggregate, EventEnum, Json, Loaded, Position, Recorded, Uuid};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bank::{BankAccount, BankAccountEvent};
use crate::statements::Balance;
use crate::transfers::{MoneyTransfer, TransferStatus};

/// `POST /accounts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenAccount {
    pub(crate) owner: String,
    /// An ISO 4217 code; EUR if absent.
    pub(crate) currency: Option<String>,
}

/// `POST /accounts/{id}/deposits` and `/withdrawals`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Amount {
    pub(crate) cents: u64,
}

/// `POST /accounts/{id}/close`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Close {
    pub(crate) reason: String,
}

/// `POST /transfers`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestTransfer {
    pub(crate) from: Uuid,
    pub(crate) to: Uuid,
    pub(crate) cents: u64,
}

/// `?after=POSITION`: wait until the read model has handled the log up to there.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct After {
    pub(crate) after: Option<u64>,
}

/// An account after a command: its new version and balance, and the position of the last event
/// the command wrote.
#[derive(Debug, Serialize)]
pub(crate) struct AccountChanged {
    id: Uuid,
    version: u64,
    balance_cents: u64,
    closed: bool,
    position: u64,
}

impl AccountChanged {
    pub(crate) fn new(account: &Loaded<BankAccount>, position: Position) -> Self {
        Self {
            id: account.id(),
            version: account.version(),
            balance_cents: account.balance,
            closed: account.closed,
            position: position.get(),
        }
    }
}

/// `GET /accounts/{id}`: the account as its events say now, and the position of its last
/// event.
#[derive(Debug, Serialize)]
pub(crate) struct Account {
    id: Uuid,
    version: u64,
    owner: String,
    currency: String,
    balance_cents: u64,
    closed: bool,
    position: u64,
}

impl Account {
    pub(crate) fn new(account: Loaded<BankAccount>, position: Position) -> Self {
        let (id, version) = (account.id(), account.version());
        let BankAccount {
            owner,
            currency,
            balance,
            closed,
        } = account.into_state();
        Self {
            id,
            version,
            owner,
            currency,
            balance_cents: balance,
            closed,
            position: position.get(),
        }
    }
}

/// One event of `GET /accounts/{id}/history`, decoded (and upcast to today's schema), with the
/// command context it was written in.
#[derive(Debug, Serialize)]
pub(crate) struct HistoryEntry {
    version: u64,
    position: u64,
    event_id: Uuid,
    event: &'static str,
    /// The schema version it was stored at (it is shown at today's).
    stored_schema_version: u32,
    /// Its fields; `null` if its owner's data was forgotten.
    data: Value,
    forgotten: bool,
    recorded_at_ms: u128,
    correlation_id: Option<Uuid>,
    causation_id: Option<Uuid>,
    actor: Option<String>,
}

impl HistoryEntry {
    /// Fails if a decoded event does not encode as JSON again (it always does: the bank's
    /// events are plain serde structs).
    pub(crate) fn new(recorded: &Recorded<BankAccountEvent>) -> Result<Self, String> {
        let (data, forgotten) = match &recorded.event {
            BankAccountEvent::Forgotten(_) => (Value::Null, true),
            event => {
                let bytes = event.encode(&Json).map_err(|e| e.to_string())?;
                (
                    serde_json::from_slice(&bytes).map_err(|e| e.to_string())?,
                    false,
                )
            }
        };
        Ok(Self {
            version: recorded.version,
            position: recorded.position.get(),
            event_id: recorded.id,
            event: recorded.event.name(),
            stored_schema_version: recorded.stored_schema_version,
            data,
            forgotten,
            recorded_at_ms: recorded
                .recorded_at
                .duration_since(UNIX_EPOCH)
                .map(|since| since.as_millis())
                .unwrap_or(0),
            correlation_id: recorded.correlation_id(),
            causation_id: recorded.causation_id(),
            actor: recorded.actor().map(str::to_owned),
        })
    }
}

/// `GET /accounts/{id}/history`.
#[derive(Debug, Serialize)]
pub(crate) struct History {
    pub(crate) id: Uuid,
    pub(crate) aggregate: &'static str,
    pub(crate) events: Vec<HistoryEntry>,
}

impl History {
    pub(crate) fn new(id: Uuid, events: Vec<HistoryEntry>) -> Self {
        Self {
            id,
            aggregate: BankAccount::NAME,
            events,
        }
    }
}

/// `POST /transfers`: the request was stored; the `transfers` process takes it from there.
#[derive(Debug, Serialize)]
pub(crate) struct TransferAccepted {
    pub(crate) id: Uuid,
    pub(crate) status: TransferStatus,
    pub(crate) position: u64,
}

/// `GET /transfers/{id}`, with the position of its last event: once it is finished, a read of
/// the balances `?after=` it sees the money where it went (the credit or refund is appended
/// with the transfer's last event).
#[derive(Debug, Serialize)]
pub(crate) struct Transfer {
    id: Uuid,
    version: u64,
    from: Uuid,
    to: Uuid,
    cents: u64,
    status: TransferStatus,
    reason: Option<String>,
    position: u64,
}

impl Transfer {
    pub(crate) fn new(transfer: Loaded<MoneyTransfer>, position: Position) -> Self {
        let (id, version) = (transfer.id(), transfer.version());
        let MoneyTransfer {
            from,
            to,
            cents,
            status,
            reason,
        } = transfer.into_state();
        Self {
            id,
            version,
            from,
            to,
            cents,
            status,
            reason,
            position: position.get(),
        }
    }
}

/// One balance from the read model.
#[derive(Debug, Serialize)]
pub(crate) struct BalanceBody {
    account: Uuid,
    owner: String,
    cents: u64,
}

impl From<Balance> for BalanceBody {
    fn from(balance: Balance) -> Self {
        Self {
            account: balance.account,
            owner: balance.owner,
            cents: balance.cents,
        }
    }
}

/// `GET /balances`: every balance the read model holds as of `position`.
#[derive(Debug, Serialize)]
pub(crate) struct Balances {
    pub(crate) position: u64,
    pub(crate) balances: Vec<BalanceBody>,
}

/// `GET /balances/{id}`.
#[derive(Debug, Serialize)]
pub(crate) struct OneBalance {
    pub(crate) position: u64,
    #[serde(flatten)]
    pub(crate) balance: BalanceBody,
}
