//! The global log: pages of events in sequence order, filtered by category (a subject per
//! category) and by name, and the last position.

use async_nats::jetstream::message::StreamMessage;

use super::batch::{BATCH_MESSAGES, Cursor};
use super::read::Get;
use super::{BACKEND, Inner};
use crate::error::{Error, Result};
use crate::persistence::position::Position;
use crate::persistence::record::{LogPage, LogQuery};

/// One subject filter's reader: its cursor and the next message on it not yet merged.
struct Head {
    cursor: Cursor,
    next: Option<StreamMessage>,
}

impl Inner {
    pub(super) async fn read_log(&self, query: LogQuery) -> Result<LogPage> {
        // Everything up to the stream's last sequence *now* is stored and readable (a prefix of
        // the log), so a page that is not full can say the next read starts there.
        let last = self.last_sequence().await?;
        let end = query.to.map_or(last, |to| to.get().min(last));
        let mut page = LogPage {
            events: Vec::new(),
            next: query.after,
        };
        if end <= query.after.get() || query.limit == 0 {
            return Ok(page);
        }
        let mut subjects: Vec<String> = if query.categories.is_empty() {
            vec![self.subjects.all_events()]
        } else {
            query
                .categories
                .iter()
                .map(|category| self.subjects.category(category))
                .collect()
        };
        subjects.sort();
        subjects.dedup();
        // With a name filter, an unknown share of the messages is skipped: read full batches.
        let wanted = |taken: usize| {
            if query.names.is_empty() {
                query.limit.saturating_sub(taken)
            } else {
                BATCH_MESSAGES
            }
        };
        let mut heads = Vec::with_capacity(subjects.len());
        for subject in subjects {
            let mut cursor = Cursor::new(subject, query.after.get(), Some(end));
            let next = cursor.next(self, wanted(0)).await?;
            heads.push(Head { cursor, next });
        }
        loop {
            // The head with the lowest sequence is the next message of the filtered log.
            let Some(head) = heads
                .iter_mut()
                .filter(|head| head.next.is_some())
                .min_by_key(|head| head.next.as_ref().map_or(u64::MAX, |m| m.sequence))
            else {
                page.next = Position::new(end);
                return Ok(page);
            };
            let Some(message) = head.next.take() else {
                continue;
            };
            let event = Self::event(&message)?;
            page.next = event.position;
            if query.names.is_empty() || query.names.contains(&event.name) {
                page.events.push(event);
                if page.events.len() >= query.limit {
                    return Ok(page);
                }
            }
            head.next = head.cursor.next(self, wanted(page.events.len())).await?;
        }
    }

    pub(super) async fn last_position(&self) -> Result<Position> {
        let all = self.subjects.all_events();
        Ok(Position::new(
            self.get(&self.events, Get::Last(&all))
                .await?
                .map_or(0, |message| message.sequence),
        ))
    }

    /// The sequence of the events stream's last message (an event or a tracking record).
    pub(super) async fn last_sequence(&self) -> Result<u64> {
        let info = self.events.get_info().await.map_err(|error| {
            Error::backend(BACKEND, "reading the events stream's last sequence", error)
        })?;
        Ok(info.state.last_sequence)
    }
}
