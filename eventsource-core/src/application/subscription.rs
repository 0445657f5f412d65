//! Subscriptions: read the global log from a position, catch up, then wait for new events and
//! hand them over as they commit, in log order.
//!
//! A subscription only ever *reads the log*; a store's wake-up (an in-process signal, a
//! PostgreSQL `NOTIFY`) just tells it to read again. So it inherits the log's guarantees: it
//! never skips an event committed late by a concurrent writer, and never hands one over twice.
//! When the store sends no wake-up (another process writing the same SQLite file, a PostgreSQL
//! store whose notification connection is down), it reads again after its poll interval.

use std::collections::VecDeque;
use std::time::Duration;

use futures_core::Stream;

use crate::error::Result;
use crate::persistence::position::Position;
use crate::persistence::record::{LogQuery, StoredEvent};
use crate::persistence::store::EventStore;
use crate::persistence::wake::WakeUps;

/// How many events a subscription reads per page unless the query says otherwise.
pub const DEFAULT_PAGE: usize = 500;

/// How long a subscription waits for a wake-up before it reads again anyway.
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);

/// A live read of the global log: the events after a position that pass a query's filters,
/// the ones already stored first, then each new one as it commits.
///
/// ```
/// use eventsource_core::{AppendBatch, EventStore, LogQuery, MemoryStore, NewEvent, Position, Subscription, Uuid};
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let mut deposits = Subscription::new(&store, LogQuery::from_start(100).names(["Deposited"]));
///
/// let account = Uuid::now_v7();
/// let write = async {
///     for (version, name) in ["Opened", "Deposited", "Deposited"].into_iter().enumerate() {
///         let event = NewEvent::new(name, 1, "{}");
///         store.append(AppendBatch::single_in("Account", account, version as u64, vec![event])).await?;
///     }
///     Ok::<_, eventsource_core::Error>(())
/// };
/// let read = async {
///     let first = deposits.next().await?;    // waits for the commit, then reads it
///     let second = deposits.next().await?;
///     Ok::<_, eventsource_core::Error>((first.version, second.version))
/// };
/// let (written, read) = tokio::join!(write, read);
/// written?;
/// assert_eq!(read?, (2, 3));
/// assert_eq!(deposits.position(), Position::new(3));   // where it resumes after a restart
/// # Ok::<_, eventsource_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct Subscription<S> {
    store: S,
    query: LogQuery,
    wake_ups: WakeUps,
    poll: Duration,
    /// Events read and not handed over yet.
    buffer: VecDeque<StoredEvent>,
    /// Where the next read starts: past everything read (and, for a filtered read, past what
    /// the store scanned without a match).
    read_to: Position,
    /// After the last event handed over, or `read_to` once the buffer is empty.
    position: Position,
}

impl<S: EventStore> Subscription<S> {
    /// A subscription to the events after `query.after` that pass its category and name
    /// filters, read `query.limit` at a time (500 if the limit is 0). `store` can be a store,
    /// a reference to one or an `Arc`.
    ///
    /// A subscription follows the log without end, so a bound set with
    /// [`LogQuery::up_to`] is not applied: to read up to a position, page with
    /// [`EventStore::read_log`].
    pub fn new(store: S, mut query: LogQuery) -> Self {
        if query.limit == 0 {
            query.limit = DEFAULT_PAGE;
        }
        query.to = None;
        let wake_ups = store.wake_ups();
        Self {
            store,
            read_to: query.after,
            position: query.after,
            query,
            wake_ups,
            poll: DEFAULT_POLL,
            buffer: VecDeque::new(),
        }
    }

    /// How long to wait for a wake-up before reading again anyway (default 1 s): the latency
    /// when the store can't signal a commit (another process writing the same SQLite file, a
    /// PostgreSQL notification connection that is down).
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Whether the store wakes this subscription on commits (if not, it polls).
    pub fn is_live(&self) -> bool {
        self.wake_ups.is_live()
    }

    /// The position after the last event handed over: store it with what you made of the
    /// events, and resume with `LogQuery::after(position, …)`.
    pub fn position(&self) -> Position {
        self.position
    }

    /// The next event, waiting for one to commit if the subscription has caught up.
    pub async fn next(&mut self) -> Result<StoredEvent> {
        loop {
            if let Some(event) = self.pop() {
                return Ok(event);
            }
            self.fill().await?;
        }
    }

    /// The events read so far and not handed over, or, once caught up, the next that commit
    /// (waiting for at least one). Never empty.
    pub async fn next_batch(&mut self) -> Result<Vec<StoredEvent>> {
        if self.buffer.is_empty() {
            self.fill().await?;
        }
        let batch: Vec<StoredEvent> = self.buffer.drain(..).collect();
        self.position = self.read_to;
        Ok(batch)
    }

    /// Reads one page without waiting: the events after the position (possibly none), for a
    /// reader that wants to know whether it has caught up.
    pub async fn try_next_batch(&mut self) -> Result<Vec<StoredEvent>> {
        if self.buffer.is_empty() {
            self.read_page().await?;
        }
        let batch: Vec<StoredEvent> = self.buffer.drain(..).collect();
        self.position = self.read_to;
        Ok(batch)
    }

    /// Waits until a commit wakes the subscription, or its poll interval passes: what to do
    /// after [`try_next_batch`](Self::try_next_batch) came back empty, before reading again.
    /// A commit after that read (and before this wait) wakes it at once.
    pub async fn wait(&mut self) {
        self.wake_ups.wait(self.poll).await;
    }

    /// The subscription as a stream of events (it never ends; an error ends it after being
    /// yielded).
    pub fn into_stream(self) -> impl Stream<Item = Result<StoredEvent>> + Send
    where
        S: Send + 'static,
    {
        futures_util::stream::unfold(Some(self), |state| async move {
            let mut subscription = state?;
            match subscription.next().await {
                Ok(event) => Some((Ok(event), Some(subscription))),
                Err(error) => Some((Err(error), None)),
            }
        })
    }

    fn pop(&mut self) -> Option<StoredEvent> {
        let event = self.buffer.pop_front()?;
        self.position = match self.buffer.is_empty() {
            true => self.read_to,
            false => event.position,
        };
        Some(event)
    }

    /// Reads pages until one has events, waiting for a wake-up (or the poll interval) after
    /// each empty one.
    async fn fill(&mut self) -> Result<()> {
        loop {
            if self.read_page().await? {
                return Ok(());
            }
            self.wake_ups.wait(self.poll).await;
        }
    }

    /// Reads one page into the buffer; whether it had events.
    async fn read_page(&mut self) -> Result<bool> {
        // Before the read: a commit between the read and the wait still wakes the wait.
        self.wake_ups.mark_seen();
        let page = self
            .store
            .read_log(LogQuery {
                after: self.read_to,
                ..self.query.clone()
            })
            .await?;
        self.read_to = page.next.max(self.read_to);
        if page.is_empty() {
            if self.buffer.is_empty() {
                self.position = self.read_to;
            }
            return Ok(false);
        }
        self.buffer.extend(page.events);
        Ok(true)
    }
}
