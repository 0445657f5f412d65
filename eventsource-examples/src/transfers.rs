//! Transfers run as a process: a business process over three aggregates, each step its own
//! append, tied together by the `transfers` process manager.
//!
//! ```text
//! TransferRequested (transfer)                      a customer asks
//!   └─ process: debit the source
//!        ├─ DebitedForTransfer (source)             the money left the source
//!        │    └─ process: credit the target
//!        │         ├─ CreditedByTransfer (target)   ┐ one append
//!        │         │  TransferCompleted (transfer)  ┘
//!        │         └─ the target is closed or unknown: compensate
//!        │            RefundedForTransfer (source)  ┐ one append
//!        │            TransferCompensated (transfer)┘
//!        └─ the source refuses (closed, overdrawn, unknown)
//!             TransferDeclined (transfer)
//! ```
//!
//! Each reaction's events are appended together with the process's tracking position, in the
//! order drawn (the transfer's own event last, so the position of a finished transfer's last
//! event is past the money's move: waiting for it, a read model sees the credit or refund), so every
//! step happens exactly once, even if the process is killed between steps; the events of one
//! transfer share the correlation id of its request, and each names the event it followed as
//! its cause. Money in flight (debited, not yet credited or refunded) is on no account for a
//! moment; once the process has caught up, the balances add up to what was deposited.

use eventsource_core::prelude::*;
use serde::{Deserialize, Serialize};

use crate::bank::{BankAccount, BankError, DebitedForTransfer, RefundedForTransfer};

/// A customer asked to move money from one account to another.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TransferRequested {
    /// The account the money leaves.
    pub from: Uuid,
    /// The account it goes to.
    pub to: Uuid,
    /// In cents.
    pub cents: u64,
}

/// The money arrived on the target account.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TransferCompleted {
    /// In cents.
    pub cents: u64,
}

/// The target could not take the money, and it went back to the source.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TransferCompensated {
    /// Why the target refused it.
    pub reason: String,
}

/// The source refused to pay: nothing moved.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TransferDeclined {
    /// Why.
    pub reason: String,
}

/// Where a transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TransferStatus {
    /// Not requested (an empty stream).
    #[default]
    None,
    /// Requested; the process has not finished it.
    Requested,
    /// The money arrived.
    Completed,
    /// The money went back to the source.
    Compensated,
    /// Nothing moved.
    Declined,
}

/// One transfer: its stream records the request and how it ended.
#[derive(Aggregate, Default, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[aggregate(events(
    TransferRequested,
    TransferCompleted,
    TransferCompensated,
    TransferDeclined
))]
pub struct MoneyTransfer {
    /// The source account.
    pub from: Uuid,
    /// The target account.
    pub to: Uuid,
    /// In cents.
    pub cents: u64,
    /// Where it stands.
    pub status: TransferStatus,
    /// Why it was compensated or declined.
    pub reason: Option<String>,
}

impl Apply<TransferRequested> for MoneyTransfer {
    fn apply(&mut self, e: &TransferRequested) {
        (self.from, self.to, self.cents) = (e.from, e.to, e.cents);
        self.status = TransferStatus::Requested;
    }
}

impl Apply<TransferCompleted> for MoneyTransfer {
    fn apply(&mut self, _: &TransferCompleted) {
        self.status = TransferStatus::Completed;
    }
}

impl Apply<TransferCompensated> for MoneyTransfer {
    fn apply(&mut self, e: &TransferCompensated) {
        self.status = TransferStatus::Compensated;
        self.reason = Some(e.reason.clone());
    }
}

impl Apply<TransferDeclined> for MoneyTransfer {
    fn apply(&mut self, e: &TransferDeclined) {
        self.status = TransferStatus::Declined;
        self.reason = Some(e.reason.clone());
    }
}

impl MoneyTransfer {
    /// Decides a request: a positive amount between two different accounts.
    pub fn request(from: Uuid, to: Uuid, cents: u64) -> Result<TransferRequested, BankError> {
        if from == to {
            return Err(BankError::SameAccount);
        }
        if cents == 0 {
            return Err(BankError::ZeroAmount);
        }
        Ok(TransferRequested { from, to, cents })
    }

    /// Whether the process has finished with it (completed, compensated or declined).
    pub fn is_finished(&self) -> bool {
        matches!(
            self.status,
            TransferStatus::Completed | TransferStatus::Compensated | TransferStatus::Declined
        )
    }
}

/// Requests a transfer: a new `MoneyTransfer` stream whose first event the `transfers` process
/// picks up. Returns its id.
pub async fn request<S: EventStore>(
    transfers: &Repository<MoneyTransfer, S>,
    from: Uuid,
    to: Uuid,
    cents: u64,
) -> Result<Uuid, CommandError<BankError>> {
    let requested = MoneyTransfer::request(from, to, cents).map_err(CommandError::Rejected)?;
    Ok(transfers.create(requested).await?)
}

/// The `transfers` process: debits the source when a transfer is requested, then credits the
/// target, or refunds the source if the target can't take it.
#[derive(Process, Debug, Default)]
#[process(name = "transfers", events(TransferRequested, DebitedForTransfer))]
pub struct Transfers;

impl React<TransferRequested> for Transfers {
    async fn react(
        &mut self,
        e: &Recorded<TransferRequested>,
        work: &mut ProcessWork<'_>,
    ) -> Result<(), HandlerError> {
        let TransferRequested { from, to, cents } = e.event;
        let transfer = work.load::<MoneyTransfer>(e.stream_id).await?;
        let source = work.load_or_default::<BankAccount>(from).await?;
        let debit = if work[source].version() == 0 {
            Err(BankError::NoSuchAccount)
        } else {
            work[source].debit_for(e.stream_id, to, cents)
        };
        match debit {
            Ok(debited) => work.record(source, debited),
            Err(refusal) => work.record(
                transfer,
                TransferDeclined {
                    reason: refusal.to_string(),
                },
            ),
        }
        Ok(())
    }
}

impl React<DebitedForTransfer> for Transfers {
    async fn react(
        &mut self,
        e: &Recorded<DebitedForTransfer>,
        work: &mut ProcessWork<'_>,
    ) -> Result<(), HandlerError> {
        let DebitedForTransfer {
            transfer: id,
            to,
            cents,
        } = e.event;
        let source = e.stream_id;
        // The transfer is loaded last, so its event ends the append (a unit of work appends in
        // the order it loaded): the position of a finished transfer's last event is past the
        // credit or refund, and a reader who waits for it sees where the money went.
        let target = work.load_or_default::<BankAccount>(to).await?;
        let credit = if work[target].version() == 0 {
            Err(BankError::NoSuchAccount)
        } else {
            work[target].credit_for(id, source, cents)
        };
        match credit {
            Ok(credited) => {
                work.record(target, credited);
                let transfer = work.load::<MoneyTransfer>(id).await?;
                work.record(transfer, TransferCompleted { cents });
            }
            Err(refusal) => {
                let source = work.load::<BankAccount>(source).await?;
                let transfer = work.load::<MoneyTransfer>(id).await?;
                let reason = format!("the target refused it: {refusal}");
                work.record(
                    source,
                    RefundedForTransfer {
                        transfer: id,
                        cents,
                        reason: reason.clone(),
                    },
                );
                work.record(transfer, TransferCompensated { reason });
            }
        }
        Ok(())
    }
}
