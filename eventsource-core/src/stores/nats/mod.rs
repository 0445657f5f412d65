//! The NATS JetStream store (feature `nats`): a replicated log for when one database server is
//! not enough.
//!
//! ```no_run
//! # async fn demo() -> eventsource_core::Result<()> {
//! use eventsource_core::stores::nats::NatsStore;
//!
//! // Creates the JetStream streams `eventsource` and `eventsource-snapshots` if needed.
//! let store = NatsStore::connect("nats://127.0.0.1:14222").await?;
//!
//! // On a three-node cluster, every message kept by all three.
//! let store = NatsStore::options("nats://127.0.0.1:14231,nats://127.0.0.1:14232")
//!     .name("bank")
//!     .replicas(3)
//!     .connect()
//!     .await?;
//! # let _ = store; Ok(()) }
//! ```
//!
//! # Layout
//!
//! One store is two JetStream streams: `NAME` holds the events (one message per event) and the
//! tracking records, `NAME-snapshots` the snapshots (at most one message per subject). The
//! subjects are listed in [`subjects`](self#subjects): an event of stream `S` in category `C` is
//! published to `NAME.e.C.S`, so a category is a subject filter and a stream is a subject.
//!
//! # Appends: optimistic concurrency and atomicity
//!
//! - A position is the JetStream **stream sequence** of the event's message: assigned by the
//!   stream's leader when it commits, strictly increasing, the same on every replica. Tracking
//!   records are messages of the same stream, so positions have gaps where they are.
//! - For each stream of an append the store reads the stream's last message (`NAME.e.*.S`) and
//!   compares its version with the expected one ([`Error::Conflict`](crate::Error::Conflict) if they differ); the first
//!   message for the stream then carries `Nats-Expected-Last-Subject-Sequence` (that message's
//!   sequence, or 0 for a new stream) with `Nats-Expected-Last-Subject-Sequence-Subject:
//!   NAME.e.*.S`, so the server refuses it if any writer got in between, whatever category it
//!   used. A refusal is diagnosed by reading the versions again and reported as the same
//!   [`Error::Conflict`](crate::Error::Conflict). A tracking record is checked the same way on `NAME.t.TRACKER`.
//! - An append of one event (and no tracking record) is one message. Anything bigger, several
//!   events of one stream, several streams, or a tracking record, is one **atomic batch**
//!   (`Nats-Batch-Id`, `Nats-Batch-Sequence`, `Nats-Batch-Commit`, nats-server 2.12 and the
//!   stream's `allow_atomic`): the server stores all of its messages or none. A server without
//!   atomic batches refuses such appends with [`Error::Unsupported`](crate::Error::Unsupported) before anything is sent,
//!   rather than writing them message by message. A batch holds at most
//!   [`MAX_BATCH_MESSAGES`] messages.
//! - A message larger than the server's `max_payload` (1 MB unless configured) is refused with
//!   [`Error::Unsupported`](crate::Error::Unsupported) before anything is sent.
//! - An append whose answer does not come (timeout, connection lost after sending) is
//!   [`Error::OutcomeUnknown`](crate::Error::OutcomeUnknown); a server that has no leader for the stream right now (an election)
//!   is [`Error::Busy`](crate::Error::Busy).
//!
//! # Reads, and why a follower never skips
//!
//! A read takes many events per request: a **batched direct get** (`$JS.API.DIRECT.GET.NAME`
//! with `next_by_subj` and `batch`, up to 500 messages or 4 MiB; nats-server 2.11 and the
//! events stream's `allow_direct`, which the store sets, also on a store created before). Any
//! replica may answer a direct get, including a follower that has not applied the newest
//! appends yet. That can neither skip nor hide an event, because:
//!
//! - A replica applies the stream's Raft log in order (an atomic batch as one entry), so what
//!   it holds is a prefix of the log, and a batch is *every* message on the subject from the
//!   asked sequence up to that replica's end: a lagging replica answers short, never with a gap.
//!   Each batch starts right after the last message read, whichever replica answered it.
//! - A short answer is never taken as the end. When a replica says it has nothing more (its
//!   end-of-batch `Nats-Num-Pending` is 0, or it has no message at all), the next request goes
//!   to the stream's **leader** (`STREAM.MSG.GET`, `next_by_subj`), which has applied every
//!   acknowledged append: if the leader has nothing more either, the read ends; if it has, the
//!   replica lagged, and the read goes on from that message (in batches again). So every read
//!   ends with the leader's word, and sees every append acknowledged before it started
//!   (read-your-writes, also on replicas 3 through a follower's node).
//! - [`EventStore::read_log`] first takes the stream's last sequence from the leader (stream
//!   info) and reads up to it; a page that is not full says the next read starts there. Pages
//!   are therefore gap-free prefixes of the committed log, as before.
//! - A stream read checks that versions follow each other ([`Error::Corrupt`](crate::Error::Corrupt)
//!   otherwise).
//!
//! A stream read thus costs one batch per 500 events plus one request to the leader at its end.
//! The **one-request-per-event path** is kept only where batches are not available: a server
//! before 2.11 (Debian's 2.9), or a stream whose `allow_direct` the server did not take.
//! [`NatsStore::batched_reads`] says which path a store uses.
//!
//! # Reads from a version, and backwards
//!
//! JetStream gets the first message on a subject at or after a *sequence*, not the N-th one, so
//! a read from version N (the repository's read after a snapshot or its cached state) needs
//! the sequence of event N:
//!
//! - The store **remembers** where the events it sees are (per stream, the newest few: the last
//!   events of its appends, the ends of its reads, the newest event of its concurrency checks),
//!   and a snapshot's message keeps the sequence of the event it was taken at when the saver
//!   knew it. A read from a version known (or known to within 16 events below) starts there,
//!   at no extra request; its first message is checked to be that event, and a wrong hint (a
//!   stream deleted and made again, snapshots kept across a restore of the events) is
//!   forgotten and the start searched for.
//! - Otherwise the store **searches**: from the stream's newest event, and any known events
//!   around the version, each probe (a leader request) narrows the range of sequences, by
//!   interpolation and halving in turn, until it is within 16 events.
//!
//! A backwards read with a limit reads only the newest `limit` events of its range, forwards
//! from the version `limit` below the top (found as above), and hands them out newest first;
//! without a limit it reads its whole range.
//!
//! # Claims
//!
//! A process manager or a `System` running on this store takes its component's claim in the
//! key-value bucket `NAME-claims` (created at the first claim): a lease key per tracker,
//! renewed while it runs, expiring [`LEASE`] after a crashed holder's last renewal (see
//! [`NatsClaim`]).
//!
//! # Data keys
//!
//! [`NatsKeyStore`] keeps the data keys of encrypted payloads in the key-value bucket
//! `NAME-keys` (created at the first key asked for, replicated like the events): an entry per
//! data subject, written by compare-and-set on its revision, each key wrapped by the
//! application's master key. Forgetting a subject erases the revisions that held its keys.
//!
//! # Wake-ups
//!
//! [`EventStore::wake_ups`] wakes readers after this store's own appends and, once a reader
//! asked for wake-ups, after anyone's: an ordered consumer on `NAME.e.>` (headers only, new
//! messages only) delivers a notice for each stored event.

mod append;
mod batch;
mod claim;
mod keys;
mod known;
mod log;
mod message;
mod options;
mod read;
mod snapshots;
mod subjects;
mod tracking;
mod wake;

use std::sync::{Arc, OnceLock};

use async_nats::jetstream;
use uuid::Uuid;

pub use claim::{LEASE, NatsClaim, RENEW_EVERY};
pub use keys::NatsKeyStore;
pub use options::{ATOMIC_BATCH_SINCE, DEFAULT_NAME, MAX_BATCH_MESSAGES, NatsOptions, Storage};

use crate::error::Result;
use crate::persistence::position::Position;
use crate::persistence::record::{AppendBatch, LogPage, LogQuery, Snapshot, StreamRange};
use crate::persistence::store::{EventStore, EventStream};
use crate::persistence::wake::{CommitSignal, WakeUps};
use subjects::Subjects;

/// The backend name in errors.
const BACKEND: &str = "nats";

/// An event store on NATS JetStream (see the [module docs](self)).
///
/// Cloning is cheap and shares the connection.
#[derive(Debug, Clone)]
pub struct NatsStore {
    inner: Arc<Inner>,
}

/// What the clones of one store share.
#[derive(Debug)]
struct Inner {
    client: async_nats::Client,
    context: jetstream::Context,
    /// The events and tracking records.
    events: jetstream::stream::Stream,
    snapshots: jetstream::stream::Stream,
    subjects: Subjects,
    /// Whether the server and the events stream take atomic batches.
    atomic: bool,
    /// Batched reads through direct get, where the server and the events stream have them.
    direct: Option<batch::DirectGet>,
    /// The largest message the server takes.
    max_payload: usize,
    server_version: String,
    /// Wakes readers after this store's appends.
    commits: CommitSignal,
    /// The task that turns everyone's appends into wake-ups, started by the first reader.
    watcher: OnceLock<tokio::task::AbortHandle>,
    /// The key-value bucket of claims, created by the first claim.
    claims: tokio::sync::OnceCell<async_nats::jetstream::kv::Store>,
    /// The key-value bucket of data keys, created by the first key asked for.
    keys: tokio::sync::OnceCell<async_nats::jetstream::kv::Store>,
    /// The sequences of events this store has seen, where reads from a version start.
    known: known::KnownSequences,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(watcher) = self.watcher.get() {
            watcher.abort();
        }
    }
}

impl NatsStore {
    /// Connects to the server(s) at `urls` with the default options.
    pub async fn connect(urls: impl AsRef<str>) -> Result<Self> {
        Self::options(urls).connect().await
    }

    /// Options for the server(s) at `urls`: one URL, or several separated by commas.
    pub fn options(urls: impl AsRef<str>) -> NatsOptions {
        NatsOptions::new(urls)
    }

    /// The JetStream stream holding the events and tracking records (also the subject prefix).
    pub fn name(&self) -> &str {
        &self.inner.events.cached_info().config.name
    }

    /// Whether appends of several events, several streams or with a tracking record work here
    /// (the server has atomic batch publish). Without it they fail with
    /// [`Error::Unsupported`](crate::Error::Unsupported).
    pub fn supports_atomic_batches(&self) -> bool {
        self.inner.atomic
    }

    /// Whether reads take many events per request (batched direct get: nats-server 2.11 or
    /// newer). Without it every event of a read is a request to the stream's leader.
    pub fn batched_reads(&self) -> bool {
        self.inner.direct.is_some()
    }

    /// The version of the server the store connected to.
    pub fn server_version(&self) -> &str {
        &self.inner.server_version
    }

    /// How many replicas the events stream has.
    pub fn replicas(&self) -> usize {
        self.inner.events.cached_info().config.num_replicas
    }

    /// Deletes the store's streams and buckets and everything in them (for tests and tools;
    /// nothing asks).
    pub async fn destroy(&self) -> Result<()> {
        let buckets = [
            format!("{}-claims", self.name()),
            format!("{}{}", self.name(), keys::BUCKET_SUFFIX),
        ];
        for bucket in buckets {
            // A bucket exists only once it was used (a claim, a data key): not finding it is
            // fine.
            if self.inner.context.get_key_value(&bucket).await.is_ok() {
                self.inner
                    .context
                    .delete_key_value(&bucket)
                    .await
                    .map_err(|error| {
                        crate::Error::backend(
                            BACKEND,
                            format!("deleting the key-value bucket `{bucket}`"),
                            error,
                        )
                    })?;
            }
        }
        for stream in [&self.inner.events, &self.inner.snapshots] {
            let name = &stream.cached_info().config.name;
            self.inner
                .context
                .delete_stream(name)
                .await
                .map_err(|error| {
                    crate::Error::backend(
                        BACKEND,
                        format!("deleting the JetStream stream `{name}`"),
                        error,
                    )
                })?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl EventStore for NatsStore {
    async fn append(&self, batch: AppendBatch) -> Result<Position> {
        let position = self.inner.append(batch).await?;
        self.inner.commits.notify();
        Ok(position)
    }

    fn read_stream(&self, stream_id: Uuid, range: StreamRange) -> EventStream<'_> {
        self.inner.read_stream(stream_id, range)
    }

    async fn stream_version(&self, stream_id: Uuid) -> Result<u64> {
        Ok(self
            .inner
            .last_of_stream(stream_id)
            .await?
            .map_or(0, |last| last.version))
    }

    async fn read_log(&self, query: LogQuery) -> Result<LogPage> {
        self.inner.read_log(query).await
    }

    async fn last_position(&self) -> Result<Position> {
        self.inner.last_position().await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        self.inner.save_snapshot(snapshot).await
    }

    async fn load_snapshot(
        &self,
        stream_id: Uuid,
        at_or_below: Option<u64>,
    ) -> Result<Option<Snapshot>> {
        self.inner.load_snapshot(stream_id, at_or_below).await
    }

    async fn delete_snapshots(&self, stream_id: Uuid) -> Result<u64> {
        self.inner.delete_snapshots(stream_id).await
    }

    async fn tracking_position(&self, tracker: &str) -> Result<Position> {
        Ok(self.inner.recorded(tracker).await?.position)
    }

    fn wake_ups(&self) -> WakeUps {
        self.inner.start_watcher(&self.inner);
        self.inner.commits.wake_ups()
    }
}
