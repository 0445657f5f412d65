//! What the fuzz targets share: the bank example's own domain (`eventsource_examples::bank`),
//! whose events are decoded from arbitrary stored bytes.
//!
//! `Deposited` has three schema versions: version 1 `{"amount": N}`, version 2 adds the
//! currency (a function step), version 3 moves to cents (a typed `From` step).

use eventsource_core::EventEnum;

pub mod payload;

pub use eventsource_examples::bank::{
    BankAccount as Account, Deposited, DepositedV2, Opened, TransferSent, Withdrawn,
};

/// A stored event name: mostly one the aggregate knows (so the fuzzer reaches the payload
/// decoding), sometimes an arbitrary one.
pub fn pick_name(selector: u8, other: &str) -> &str {
    let known = <eventsource_examples::bank::BankAccountEvent as EventEnum>::NAMES;
    known.get(usize::from(selector)).copied().unwrap_or(other)
}
