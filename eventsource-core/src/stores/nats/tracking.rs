//! Tracking records: one message per tracked append on `NAME.t.TRACKER`, the last one holding
//! the tracker's position.

use super::Inner;
use super::message;
use super::read::Get;
use crate::error::Result;
use crate::persistence::position::Position;

/// A tracker's recorded position and the sequence of the message that holds it (0 if none).
#[derive(Debug, Clone, Copy)]
pub(super) struct Recorded {
    pub(super) position: Position,
    pub(super) sequence: u64,
}

impl Inner {
    /// The tracker's last record.
    pub(super) async fn recorded(&self, tracker: &str) -> Result<Recorded> {
        let subject = self.subjects.tracker(tracker);
        let Some(record) = self.get(&self.events, Get::Last(&subject)).await? else {
            return Ok(Recorded {
                position: Position::START,
                sequence: 0,
            });
        };
        let sequence = record.sequence;
        Ok(Recorded {
            position: message::decode_tracking(&record.payload, Position::new(sequence))?,
            sequence,
        })
    }
}
