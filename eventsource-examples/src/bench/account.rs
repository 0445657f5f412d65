//! What the workloads need to know of an account beyond the `Aggregate` trait.

/// The balance of an account, for the bench's end-of-workload checks.
pub trait Balance {
    /// The balance in cents.
    fn balance_cents(&self) -> u64;
}

impl Balance for crate::bank::BankAccount {
    fn balance_cents(&self) -> u64 {
        self.balance
    }
}
