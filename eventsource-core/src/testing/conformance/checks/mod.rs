//! The checks, one file per area. Each check is a public function taking a fresh, empty store.

mod appends;
mod categories;
mod concurrency;
mod log;
mod payloads;
mod snapshots;
mod streams;
mod subscriptions;
mod tracking;

use payloads::all_bytes;
use snapshots::{compare_snapshot, snapshot};
use tracking::tracking_only;

pub use appends::*;
pub use categories::*;
pub use concurrency::*;
pub use log::*;
pub use payloads::*;
pub use snapshots::*;
pub use streams::*;
pub use subscriptions::*;
pub use tracking::*;

use super::support::Outcome;
use super::{CheckResult, Failure};

/// Names the failure of a check body after the check.
pub(super) async fn named(name: &'static str, body: impl Future<Output = Outcome>) -> CheckResult {
    body.await.map_err(|message| Failure::new(name, message))
}
