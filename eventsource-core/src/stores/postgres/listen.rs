//! Wake-ups for readers: the store's `NOTIFY` channel, and the background listener that turns
//! each notification into a [`CommitSignal::notify`].
//!
//! Every commit of this store is followed by `NOTIFY "<channel>"`: sent by the store's notifier
//! once an [`EventStore::append`](crate::EventStore::append) has committed (`notify.rs`), or
//! inside the caller's transaction by [`append_in`](super::PostgresStore::append_in)
//! (PostgreSQL delivers it at commit, and drops it on rollback). One listener per store (shared by its clones) holds a
//! dedicated connection, outside the pool, that runs `LISTEN` and wakes the store's readers on
//! each notification. A notification carries nothing: readers always read the log, which is what
//! keeps them from skipping an event (see [`crate::persistence::wake`]).
//!
//! The listener starts the first time a reader asks for [`WakeUps`] inside a tokio runtime, and
//! stops when the last clone of the store is dropped. When its connection drops it wakes the
//! readers once (they re-read), logs a `tracing` warning and reconnects with capped backoff;
//! meanwhile readers poll. After each successful `LISTEN` it wakes them once more, since commits
//! made while it was away were not heard.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio_postgres::{AsyncMessage, NoTls};

use super::notify::Notifier;
use super::schema::stable_hash;
use crate::persistence::wake::{CommitSignal, WakeUps};

/// The first wait before reconnecting a lost listener connection; it doubles on each failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The listener's `application_name` when the connection config sets none; with one, the
/// listener uses `<that name>-listener`.
pub(super) const LISTENER_APPLICATION_NAME: &str = "eventsource-listener";

/// The notification channel of the store whose events table is `schema.events`:
/// `es_` and the table's 32-bit hash in hex, a valid identifier (always quoted in SQL).
/// Channels are per database, like the advisory locks that announce appenders.
pub(super) fn channel(schema: &str, events: &str) -> String {
    let hash = u32::from_ne_bytes(stable_hash(&format!("{schema}.{events}")).to_ne_bytes());
    format!("es_{hash:08x}")
}

/// What the listener needs to (re)connect.
#[derive(Clone)]
pub(super) struct ListenTarget {
    /// The pool's connection config, with the listener's `application_name`.
    pub(super) config: tokio_postgres::Config,
    /// The channel to `LISTEN` on.
    pub(super) channel: String,
}

impl ListenTarget {
    /// The pool's `config`, renamed for the listener so that `pg_stat_activity` tells it apart.
    pub(super) fn new(config: tokio_postgres::Config, channel: String) -> Self {
        let config = named_for(config, "listener", LISTENER_APPLICATION_NAME);
        Self { config, channel }
    }
}

/// `config` for one of the store's own connections outside the pool: its `application_name`
/// becomes `<that name>-<role>`, or `default` when it sets none, so that `pg_stat_activity`
/// tells the connection apart.
pub(super) fn named_for(
    mut config: tokio_postgres::Config,
    role: &str,
    default: &str,
) -> tokio_postgres::Config {
    let name = match config.get_application_name() {
        Some(name) => format!("{name}-{role}"),
        None => default.to_owned(),
    };
    config.application_name(name);
    config
}

/// A store's wake-up state, shared by its clones: the signal its readers wait on and, when the
/// store sends notifications, the listener task feeding it.
pub(super) struct Wake {
    signal: CommitSignal,
    /// `None` with `PostgresOptions::notify(false)`: no listener, readers hear only this
    /// process's own appends.
    target: Option<ListenTarget>,
    /// The running listener, if one was started (and not cancelled with its runtime).
    task: Mutex<Option<tokio::task::AbortHandle>>,
    /// Tells other processes of this process's commits (`notify.rs`); `None` with
    /// `PostgresOptions::notify(false)`.
    notifier: Option<Notifier>,
}

impl Wake {
    pub(super) fn new(target: Option<ListenTarget>, notifier: Option<Notifier>) -> Self {
        Self {
            signal: CommitSignal::new(),
            target,
            task: Mutex::new(None),
            notifier,
        }
    }

    /// After one of this process's own appends committed: wakes its readers, and has the
    /// notifier tell other processes.
    pub(super) fn committed(&self) {
        self.signal.notify();
        if let Some(notifier) = &self.notifier {
            notifier.committed();
        }
    }

    /// A reader's wake-ups, starting the listener if it is not running. Outside a tokio runtime
    /// there is nothing to run it on: no wake-ups, the reader polls.
    pub(super) fn wake_ups(self: &Arc<Self>) -> WakeUps {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return WakeUps::none();
        };
        if let Some(target) = &self.target {
            let mut task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
            // A finished task was cancelled with the runtime it ran on: start one on this one.
            if task.as_ref().is_none_or(|task| task.is_finished()) {
                let listener = runtime.spawn(listen(Arc::downgrade(self), target.clone()));
                *task = Some(listener.abort_handle());
            }
        }
        self.signal.wake_ups()
    }
}

impl Drop for Wake {
    fn drop(&mut self) {
        let task = self.task.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = task.take() {
            task.abort();
        }
    }
}

/// Wakes the readers of the store behind `wake`; `false` if the store is gone.
fn wake_readers(wake: &Weak<Wake>) -> bool {
    match wake.upgrade() {
        Some(wake) => {
            wake.signal.notify();
            true
        }
        None => false,
    }
}

/// Why a listening session ended.
enum Ended {
    /// Every clone of the store was dropped: stop.
    StoreGone,
    /// The connection failed or could not be made; `listened` if `LISTEN` had succeeded.
    Lost { error: String, listened: bool },
}

/// The listener task: listens until the store is dropped, reconnecting with capped backoff.
async fn listen(wake: Weak<Wake>, target: ListenTarget) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match session(&wake, &target).await {
            Ended::StoreGone => return,
            Ended::Lost { error, listened } => {
                if listened {
                    backoff = FIRST_BACKOFF;
                    // Readers re-read (and poll until the next LISTEN succeeds).
                    if !wake_readers(&wake) {
                        return;
                    }
                }
                tracing::warn!(
                    channel = %target.channel,
                    retry_in = ?backoff,
                    "eventsource: the PostgreSQL wake-up connection is down ({error}); subscriptions poll until it is back"
                );
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
        if wake.strong_count() == 0 {
            return;
        }
    }
}

/// One connection: connect, `LISTEN`, then wake the readers on every notification until the
/// connection fails or the store is dropped.
async fn session(wake: &Weak<Wake>, target: &ListenTarget) -> Ended {
    let lost = |error: String, listened| Ended::Lost { error, listened };
    let (client, mut connection) = match target.config.connect(NoTls).await {
        Ok(pair) => pair,
        Err(error) => return lost(describe(&error), false),
    };
    // The connection is driven here, not spawned: notifications come out of `poll_message`.
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    // `client` lives until the session ends: dropping it would close the connection.
    let listen = format!("LISTEN \"{}\"", target.channel);
    let listening = client.batch_execute(&listen);
    tokio::pin!(listening);
    loop {
        tokio::select! {
            done = &mut listening => match done {
                Ok(()) => break,
                Err(error) => return lost(describe(&error), false),
            },
            message = futures_util::StreamExt::next(&mut messages) => match message {
                Some(Ok(_)) => {} // a notice, or a notification sent before LISTEN finished
                Some(Err(error)) => return lost(describe(&error), false),
                None => return lost("the server closed the connection".into(), false),
            },
        }
    }
    tracing::debug!(channel = %target.channel, "eventsource: listening for commits");
    // Commits made before LISTEN took effect were not heard: read once.
    if !wake_readers(wake) {
        return Ended::StoreGone;
    }
    loop {
        match futures_util::StreamExt::next(&mut messages).await {
            Some(Ok(AsyncMessage::Notification(_))) => {
                if !wake_readers(wake) {
                    return Ended::StoreGone;
                }
            }
            Some(Ok(AsyncMessage::Notice(notice))) => {
                tracing::debug!(channel = %target.channel, "eventsource: notice on the wake-up connection: {notice}");
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => return lost(describe(&error), true),
            None => return lost("the server closed the connection".into(), true),
        }
    }
}

/// A driver error with its cause (a connection error's message alone is often just "error
/// connecting to server").
pub(super) fn describe(error: &tokio_postgres::Error) -> String {
    match std::error::Error::source(error) {
        Some(source) => format!("{error}: {source}"),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_is_a_short_identifier_named_for_the_events_table() {
        let channel = channel("eventsource", "events");
        assert_eq!(channel.len(), 11);
        assert!(channel.starts_with("es_"));
        assert!(
            channel
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        );
        assert_ne!(
            super::channel("eventsource", "events"),
            super::channel("other", "events")
        );
    }

    #[test]
    fn the_listener_names_itself_after_the_application() {
        let config: tokio_postgres::Config = "host=db application_name=orders".parse().unwrap();
        let target = ListenTarget::new(config, "es_0".into());
        assert_eq!(
            target.config.get_application_name(),
            Some("orders-listener")
        );
        let config: tokio_postgres::Config = "host=db".parse().unwrap();
        let target = ListenTarget::new(config, "es_0".into());
        assert_eq!(
            target.config.get_application_name(),
            Some(LISTENER_APPLICATION_NAME)
        );
    }
}
