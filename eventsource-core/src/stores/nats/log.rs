//! The global log: pages of events in sequence order, filtered by category (a subject per
//! category) and by name, and the last position.

use async_nats::jetstream::message::StreamMessage;

use super::read::Get;
use super::{BACKEND, Inner};
use crate::error::{Error, Result};
use crate::persistence::position::Position;
use crate::persistence::record::{LogPage, LogQuery};

/// One subject filter's reader: the next message on it not yet looked at.
struct Head {
    subject: String,
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
        let from = query.after.get() + 1;
        let mut heads = Vec::with_capacity(subjects.len());
        for subject in subjects {
            let next = self.next_on(&subject, from, end).await?;
            heads.push(Head { subject, next });
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
            head.next = self
                .next_on(&head.subject, message.sequence + 1, end)
                .await?;
            let event = Self::event(&message)?;
            page.next = event.position;
            if query.names.is_empty() || query.names.contains(&event.name) {
                page.events.push(event);
                if page.events.len() >= query.limit {
                    return Ok(page);
                }
            }
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

    /// The next message on `subject` at or after `from`, if it is at most `end`.
    async fn next_on(&self, subject: &str, from: u64, end: u64) -> Result<Option<StreamMessage>> {
        if from > end {
            return Ok(None);
        }
        Ok(self
            .get(&self.events, Get::Next { subject, from })
            .await?
            .filter(|message| message.sequence <= end))
    }

    /// The sequence of the events stream's last message (an event or a tracking record).
    pub(super) async fn last_sequence(&self) -> Result<u64> {
        let info = self.events.get_info().await.map_err(|error| {
            Error::backend(BACKEND, "reading the events stream's last sequence", error)
        })?;
        Ok(info.state.last_sequence)
    }
}
