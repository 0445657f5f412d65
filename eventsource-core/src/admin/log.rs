//! Reading the log up to a position, page by page: how `streams`, `export` and the lag of
//! `projections` see a consistent prefix of the log, even while writers go on appending.

use crate::error::Error;
use crate::persistence::position::Position;
use crate::persistence::record::{LogQuery, StoredEvent};
use crate::persistence::store::EventStore;

/// How many events a page of the log holds while the admin reads it.
pub(super) const PAGE: usize = 1_000;

/// Hands the events of `query` (its filters, after its position) up to `end` to `visit`, a
/// page at a time, until `visit` returns `false` or the log is read to `end`.
pub(super) async fn each_page<E: From<Error>>(
    store: &dyn EventStore,
    query: LogQuery,
    end: Position,
    mut visit: impl FnMut(Vec<StoredEvent>) -> Result<bool, E>,
) -> Result<(), E> {
    let mut after = query.after;
    while after < end {
        let page = store
            .read_log(
                LogQuery {
                    after,
                    limit: PAGE,
                    ..query.clone()
                }
                .up_to(end),
            )
            .await?;
        let next = page.next;
        if !visit(page.events)? || next <= after {
            break;
        }
        after = next;
    }
    Ok(())
}
