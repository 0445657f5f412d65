//! A position in a store's global log (the notification log).

use std::fmt;

/// Where an event sits in a store's global log: followers page with it, tracking records store
/// it. Positions strictly increase in commit order; what a position *is* differs per store, so
/// compare positions of one store only, and never compute one:
///
/// | store | a position is | gaps |
/// |---|---|---|
/// | [`MemoryStore`](crate::MemoryStore) | the event's index in the log, from 1 | none |
/// | `SqliteStore` | the `events` table's `position` (its rowid, `AUTOINCREMENT`) | none, except after a failed or rolled-back append |
/// | `PostgresStore` | `xid << 20 \| n`: the writing transaction's 64-bit id and the event's index in it | large: consecutive events of one transaction differ by 1, of two transactions by about a million |
///
/// [`Position::START`] is before every event: read the log from there.
///
/// ```
/// use eventsource_core::Position;
///
/// let first = Position::new(1);
/// assert!(Position::START < first);
/// assert_eq!(first.get(), 1);
/// assert_eq!(first.to_string(), "1");
/// ```
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Position(u64);

impl Position {
    /// Before the first event: `after = Position::START` reads the log from its beginning.
    pub const START: Position = Position(0);

    /// A position from its stored number.
    pub const fn new(position: u64) -> Self {
        Position(position)
    }

    /// The stored number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<Position> for u64 {
    fn from(position: Position) -> Self {
        position.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_reads_as_its_number_in_messages() {
        assert_eq!(Position::new(42).to_string(), "42");
        let error = crate::Error::TrackingConflict {
            tracker: "ledger".into(),
            position: Position::new(3),
            recorded: Position::new(5),
        };
        assert_eq!(
            error.to_string(),
            "tracking conflict for `ledger`: position 3 is not after the recorded position 5; nothing was written"
        );
    }
}
