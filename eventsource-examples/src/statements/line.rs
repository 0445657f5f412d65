//! What every statements read model shares, wherever it keeps its rows: what an event does to
//! its account (the balance arithmetic) and the text of its statement line.

use eventsource_core::{Forgotten, Uuid};

use crate::bank::{
    Closed, CreditedByTransfer, DebitedForTransfer, Deposited, FORGOTTEN_OWNER, Opened,
    RefundedForTransfer, TransferReceived, TransferSent, Withdrawn, cents,
};

/// What one event puts on its account's statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'e> {
    /// The change to the balance in cents: negative for money out, zero for the opening.
    pub change: i128,
    what: What<'e>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum What<'e> {
    Opened {
        owner: &'e str,
        currency: &'e str,
    },
    /// An `Opened` whose owner was forgotten.
    OpenedForgotten,
    Deposit,
    Withdrawal,
    TransferTo(Uuid),
    TransferFrom(Uuid),
    Refund,
    Closed,
}

impl Entry<'_> {
    /// The account's owner, named by the event that opened it.
    pub fn opened_by(&self) -> Option<&str> {
        match self.what {
            What::Opened { owner, .. } => Some(owner),
            What::OpenedForgotten => Some(FORGOTTEN_OWNER),
            _ => None,
        }
    }

    /// The other account of a transfer, whose owner the line names.
    pub fn counterpart(&self) -> Option<Uuid> {
        match self.what {
            What::TransferTo(account) | What::TransferFrom(account) => Some(account),
            _ => None,
        }
    }

    /// The balance after this entry (money out never takes it below zero: the domain refuses
    /// an overdraft before it is stored).
    pub fn balance_after(&self, balance: u64) -> u64 {
        u64::try_from(i128::from(balance) + self.change).unwrap_or(0)
    }

    /// The statement line for the event at `version`, with the balance after it;
    /// `counterpart_owner` names the other account of a transfer (its id if `None`).
    pub fn line(&self, version: u64, counterpart_owner: Option<&str>, balance: u64) -> String {
        let other = || {
            counterpart_owner.map_or_else(
                || {
                    self.counterpart()
                        .map(|id| id.to_string())
                        .unwrap_or_default()
                },
                str::to_owned,
            )
        };
        let what = match self.what {
            What::Opened { owner, currency } => format!("opened by {owner} in {currency}"),
            What::OpenedForgotten => format!("opened by {FORGOTTEN_OWNER}"),
            What::Deposit => "deposit".into(),
            What::Withdrawal => "withdrawal".into(),
            What::TransferTo(_) => format!("transfer to {}", other()),
            What::TransferFrom(_) => format!("transfer from {}", other()),
            What::Refund => "refund of a transfer".into(),
            What::Closed => "closed".into(),
        };
        let sign = if self.change < 0 { "-" } else { "+" };
        let amount = cents(self.change.unsigned_abs().try_into().unwrap_or(u64::MAX));
        format!(
            "v{version:<3} {what:<40} {sign}{amount:>10}   balance {:>10}",
            cents(balance)
        )
    }
}

/// An event a statement has a line for: each read model's handler is one generic impl over it.
pub trait ToEntry: Send + Sync + 'static {
    /// What the event puts on its account's statement.
    fn entry(&self) -> Entry<'_>;
}

impl ToEntry for Opened {
    fn entry(&self) -> Entry<'_> {
        Entry {
            change: 0,
            what: What::Opened {
                owner: &self.owner,
                currency: &self.currency,
            },
        }
    }
}

impl ToEntry for Forgotten<Opened> {
    fn entry(&self) -> Entry<'_> {
        Entry {
            change: 0,
            what: What::OpenedForgotten,
        }
    }
}

impl ToEntry for Deposited {
    fn entry(&self) -> Entry<'_> {
        Entry {
            change: i128::from(self.cents),
            what: What::Deposit,
        }
    }
}

impl ToEntry for Withdrawn {
    fn entry(&self) -> Entry<'_> {
        Entry {
            change: -i128::from(self.cents),
            what: What::Withdrawal,
        }
    }
}

impl ToEntry for TransferSent {
    fn entry(&self) -> Entry<'_> {
        Entry {
            change: -i128::from(self.cents),
            what: What::TransferTo(self.to),
        }
    }
}

impl ToEntry for TransferReceived {
    fn entry(&self) -> Entry<'_> {
        Entry {
            change: i128::from(self.cents),
            what: What::TransferFrom(self.from),
        }
    }
}

impl ToEntry for Closed {
    fn entry(&self) -> Entry<'_> {
        Entry {
            change: 0,
            what: What::Closed,
        }
    }
}

impl ToEntry for DebitedForTransfer {
    fn entry(&self) -> Entry<'_> {
        Entry {
            change: -i128::from(self.cents),
            what: What::TransferTo(self.to),
        }
    }
}

impl ToEntry for CreditedByTransfer {
    fn entry(&self) -> Entry<'_> {
        Entry {
            change: i128::from(self.cents),
            what: What::TransferFrom(self.from),
        }
    }
}

impl ToEntry for RefundedForTransfer {
    fn entry(&self) -> Entry<'_> {
        Entry {
            change: i128::from(self.cents),
            what: What::Refund,
        }
    }
}
