//! Batched reads: many messages of a subject per request through JetStream's direct get
//! (`$JS.API.DIRECT.GET.NAME` with `batch`, nats-server 2.11 and the stream's `allow_direct`),
//! answered by whichever replica takes the request.
//!
//! A replica applies the stream's Raft log in order, so what one holds is a prefix of the log,
//! and a batch is every message on the subject from the asked sequence up to that replica's
//! end (or the batch size): never a gap, but possibly short when the replica lags. A
//! [`Cursor`], which the readers ([`read`](super::read), [`log`](super::log)) use, therefore
//! takes a batch that says its replica has nothing more (`Nats-Num-Pending: 0` at the end of
//! batch, or no message at all) as "ask the leader", never as "the end".

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::StatusCode;
use async_nats::jetstream::message::StreamMessage;
use futures_util::StreamExt;

use super::read::Get;
use super::{BACKEND, Inner};
use crate::error::{Error, Result};

/// The oldest server version whose direct get answers a `batch`.
pub(super) const DIRECT_BATCH_SINCE: (u64, u64) = (2, 11);

/// The most messages one batch asks for.
pub(super) const BATCH_MESSAGES: usize = 500;

/// The most payload bytes one batch asks for (the server stops after the message that
/// reaches it; the rest comes in the next batch).
const BATCH_BYTES: usize = 4 << 20;

/// What one batched direct get brought.
#[derive(Debug, Default)]
pub(super) struct Batch {
    /// The messages on the subject from the asked sequence, in sequence order, without gaps.
    pub(super) messages: Vec<StreamMessage>,
    /// Whether the replica that answered has more messages on the subject after the last one
    /// (its end-of-batch `Nats-Num-Pending`). `false` means only that *this replica* had no
    /// more: it may lag behind the leader.
    pub(super) more: bool,
}

/// How to reach the batched direct get of the events stream.
#[derive(Debug, Clone)]
pub(super) struct DirectGet {
    /// `$JS.API.DIRECT.GET.NAME`.
    pub(super) subject: String,
    /// How long to wait for each message of a batch.
    pub(super) timeout: Duration,
}

impl Inner {
    /// Up to `size` messages on `subject` from sequence `from` on, from whichever replica
    /// answers. Only called when the store has batched reads (`Inner::direct`).
    pub(super) async fn direct_batch(
        &self,
        direct: &DirectGet,
        subject: &str,
        from: u64,
        size: usize,
    ) -> Result<Batch> {
        let what = || format!("reading a batch of messages on `{subject}` from sequence {from}");
        let request = serde_json::json!({
            "seq": from.max(1),
            "next_by_subj": subject,
            "batch": size.max(1),
            "max_bytes": BATCH_BYTES,
        });
        let request = request.to_string().into();
        let inbox = self.client.new_inbox();
        let mut replies = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|error| Error::backend(BACKEND, what(), error))?;
        self.client
            .publish_with_reply(direct.subject.clone(), inbox, request)
            .await
            .map_err(|error| Error::backend(BACKEND, what(), error))?;
        let mut batch = Batch::default();
        loop {
            let reply = tokio::time::timeout(direct.timeout, replies.next())
                .await
                .map_err(|_| {
                    Error::backend(
                        BACKEND,
                        what(),
                        format!("no answer within {:?}", direct.timeout),
                    )
                })?
                .ok_or_else(|| Error::backend(BACKEND, what(), "the connection closed"))?;
            match reply.status {
                None => {
                    let message = StreamMessage::try_from(reply)
                        .map_err(|error| Error::backend(BACKEND, what(), error))?;
                    batch.messages.push(message);
                }
                // End of batch: how many messages on the subject the replica holds after it.
                Some(status) if status.as_u16() == 204 => {
                    batch.more = reply
                        .headers
                        .as_ref()
                        .and_then(|headers| headers.get("Nats-Num-Pending"))
                        .and_then(|pending| pending.as_str().parse::<u64>().ok())
                        .is_some_and(|pending| pending > 0);
                    return Ok(batch);
                }
                // Nothing on the subject at or after `from` on this replica (sent only in place
                // of the first message).
                Some(StatusCode::NOT_FOUND) => return Ok(batch),
                Some(status) => {
                    return Err(Error::backend(
                        BACKEND,
                        what(),
                        format!(
                            "the server answered {} {}",
                            status.as_u16(),
                            reply.description.as_deref().unwrap_or("")
                        ),
                    ));
                }
            }
        }
    }
}

/// Every message on one subject after a sequence, in sequence order: read in batches from any
/// replica while there are batches, and from the leader whenever a replica runs out, so that
/// the end of a read is always the leader's (which holds every acknowledged append).
///
/// Without batched direct get (a server before 2.11, or a stream without `allow_direct`) every
/// message is a request to the leader.
#[derive(Debug)]
pub(super) struct Cursor {
    subject: String,
    /// The sequence of the last message handed out (0 before the first).
    after: u64,
    /// The last sequence to hand out, if the read has one (a log page's end).
    end: Option<u64>,
    /// Messages of the last batch not handed out yet.
    buffered: VecDeque<StreamMessage>,
    /// Whether the replica of the last batch had nothing more: the next read asks the leader.
    ask_leader: bool,
    /// Whether the leader said there is nothing more (or `end` was reached).
    finished: bool,
}

impl Cursor {
    /// A cursor on `subject` after sequence `after`, up to sequence `end` if given.
    pub(super) fn new(subject: String, after: u64, end: Option<u64>) -> Self {
        Self {
            subject,
            after,
            end,
            buffered: VecDeque::new(),
            ask_leader: false,
            finished: false,
        }
    }

    /// Moves the cursor to just after sequence `after`, dropping what it buffered.
    pub(super) fn seek(&mut self, after: u64) {
        self.after = after;
        self.buffered.clear();
        self.ask_leader = false;
        self.finished = false;
    }

    /// The next message, or `None` at the end. `wanted` is how many more messages the caller
    /// expects to take (the size of the next batch, at most [`BATCH_MESSAGES`]).
    pub(super) async fn next(
        &mut self,
        inner: &Inner,
        wanted: usize,
    ) -> Result<Option<StreamMessage>> {
        loop {
            if let Some(message) = self.buffered.pop_front() {
                self.after = message.sequence;
                return Ok(Some(message));
            }
            if self.finished {
                return Ok(None);
            }
            let from = self.after + 1;
            if self.end.is_some_and(|end| from > end) {
                self.finished = true;
                continue;
            }
            match &inner.direct {
                Some(direct) if !self.ask_leader => {
                    let size = wanted.clamp(1, BATCH_MESSAGES);
                    let batch = inner
                        .direct_batch(direct, &self.subject, from, size)
                        .await?;
                    // An empty batch, or one whose replica had no more: that replica may lag,
                    // so only the leader can say whether the subject ends here.
                    self.ask_leader = !batch.more;
                    self.take(batch.messages, from)?;
                }
                _ => {
                    let next = Get::Next {
                        subject: &self.subject,
                        from,
                    };
                    match inner.get(&inner.events, next).await? {
                        None => self.finished = true,
                        Some(message) => {
                            // The leader had more than the last replica: batches again.
                            self.ask_leader = false;
                            self.take(vec![message], from)?;
                        }
                    }
                }
            }
        }
    }

    /// Buffers messages read from `from` on, up to `end`.
    fn take(&mut self, messages: Vec<StreamMessage>, from: u64) -> Result<()> {
        let mut expected_above = from - 1;
        for message in messages {
            if message.sequence <= expected_above {
                return Err(Error::backend(
                    BACKEND,
                    format!(
                        "reading messages on `{}` from sequence {from}",
                        self.subject
                    ),
                    format!(
                        "the server sent sequence {} after {expected_above}: not in order",
                        message.sequence
                    ),
                ));
            }
            expected_above = message.sequence;
            if self.end.is_some_and(|end| message.sequence > end) {
                self.finished = true;
                break;
            }
            self.buffered.push_back(message);
        }
        Ok(())
    }
}
