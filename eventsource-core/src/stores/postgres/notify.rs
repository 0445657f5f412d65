//! Telling other processes that appends committed: a notifier task per store that sends
//! `NOTIFY "<channel>"` on a connection of its own once this process's appends have committed.
//!
//! PostgreSQL queues a committing transaction's notifications under a lock shared by the whole
//! database cluster, held until that transaction's commit is flushed: transactions that notify
//! commit one at a time, each waiting for the flushes of the others (the bench's four writers on
//! distinct streams committed no faster than one; on a server shared with other programs that
//! notify, one `NOTIFY` waited 20 to 35 ms for their commits). So
//! [`EventStore::append`](crate::EventStore::append) does not notify inside its transaction.
//! After its `COMMIT` is acknowledged it pokes this store's notifier and returns; the notifier
//! sends one `NOTIFY` in a transaction of its own (which flushes nothing) and, if more appends
//! committed meanwhile or within 2 ms after it, one more for all of them. Appenders never wait
//! for the lock, and a burst of appends costs a few notifications, not one each: at most 500 a
//! second, however many appends commit.
//!
//! The notification is sent after the events are committed, so a reader it wakes finds them.
//! If the process dies between the `COMMIT` and the `NOTIFY`, or the notifier's connection is
//! down, other processes' readers see the events after their poll interval: a lost wake-up
//! costs latency, never an event. [`PostgresStore::append_in`](super::PostgresStore::append_in)
//! can't know when the caller commits, so it still notifies inside the caller's transaction.
//!
//! The task starts on the first poke inside a tokio runtime, on a connection outside the pool
//! (the pool's config with `application_name` set to `<yours>-notifier`, or
//! `eventsource-notifier`), and stops when the last clone of the store is dropped.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_postgres::NoTls;

use super::listen::{describe, named_for};

/// The notifier's `application_name` when the connection config sets none; with one, the
/// notifier uses `<that name>-notifier`.
pub(super) const NOTIFIER_APPLICATION_NAME: &str = "eventsource-notifier";

/// The shortest time between two `NOTIFY`s: commits made within it after a `NOTIFY` are told
/// with one more when it is over. Each `NOTIFY` is a transaction on the server (it takes a
/// transaction id and writes a commit record) and a wake-up of every listening session of the
/// database; without this gap a steady stream of appends had the notifier send one almost
/// per append, back to back. Other processes' readers hear of a commit at most this much later.
const MIN_INTERVAL: Duration = Duration::from_millis(2);

/// The first wait before connecting again after a failure; it doubles on each failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the notifier sends, and where.
#[derive(Clone)]
struct Target {
    /// The pool's connection config, with the notifier's `application_name`.
    config: tokio_postgres::Config,
    /// `NOTIFY "<channel>"`.
    sql: String,
}

/// A store's notifier, shared by its clones.
pub(super) struct Notifier {
    target: Target,
    /// Poked after each commit; holds one permit while a `NOTIFY` is in flight, so commits
    /// made meanwhile are told with one more.
    pending: Arc<Notify>,
    /// The running task, if one was started (and not cancelled with its runtime).
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Notifier {
    /// A notifier sending `sql` (`NOTIFY "<channel>"`) over connections made with the pool's
    /// `config`.
    pub(super) fn new(config: tokio_postgres::Config, sql: String) -> Self {
        let config = named_for(config, "notifier", NOTIFIER_APPLICATION_NAME);
        Self {
            target: Target { config, sql },
            pending: Arc::new(Notify::new()),
            task: Mutex::new(None),
        }
    }

    /// After an append committed: makes sure a `NOTIFY` is sent after now, starting the task
    /// if it is not running. Outside a tokio runtime there is nothing to run it on, and other
    /// processes see the append after their poll interval.
    pub(super) fn committed(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        {
            let mut task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
            // A finished task was cancelled with the runtime it ran on: start one on this one.
            if task.as_ref().is_none_or(|task| task.is_finished()) {
                let notifier = runtime.spawn(run(Arc::clone(&self.pending), self.target.clone()));
                *task = Some(notifier.abort_handle());
            }
        }
        self.pending.notify_one();
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        let task = self.task.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = task.take() {
            task.abort();
        }
    }
}

/// The notifier task: for each poke (those made while a `NOTIFY` is in flight, or within
/// [`MIN_INTERVAL`] after it, count as one), one `NOTIFY`, reconnecting with capped backoff when
/// the connection fails. Runs until the store aborts it.
async fn run(pending: Arc<Notify>, target: Target) {
    let mut client: Option<tokio_postgres::Client> = None;
    let mut backoff = FIRST_BACKOFF;
    loop {
        pending.notified().await;
        loop {
            match send(&mut client, &target).await {
                Ok(()) => {
                    backoff = FIRST_BACKOFF;
                    tokio::time::sleep(MIN_INTERVAL).await;
                    break;
                }
                Err(error) => {
                    client = None;
                    tracing::warn!(
                        retry_in = ?backoff,
                        "eventsource: the PostgreSQL notifier could not send a commit notification \
                         ({error}); other processes' subscriptions see the commits after their poll interval"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Sends one `NOTIFY`, connecting first if there is no connection.
async fn send(client: &mut Option<tokio_postgres::Client>, target: &Target) -> Result<(), String> {
    let connected = match client.take() {
        Some(connected) if !connected.is_closed() => connected,
        _ => {
            let (connected, connection) = target
                .config
                .connect(NoTls)
                .await
                .map_err(|error| describe(&error))?;
            // Ends when the client is dropped (or the connection fails).
            tokio::spawn(connection);
            connected
        }
    };
    connected
        .batch_execute(&target.sql)
        .await
        .map_err(|error| describe(&error))?;
    *client = Some(connected);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notifier_names_itself_after_the_application() {
        let config: tokio_postgres::Config = "host=db application_name=orders".parse().unwrap();
        let notifier = Notifier::new(config, "NOTIFY \"es_0\"".into());
        assert_eq!(
            notifier.target.config.get_application_name(),
            Some("orders-notifier")
        );
        let config: tokio_postgres::Config = "host=db".parse().unwrap();
        let notifier = Notifier::new(config, "NOTIFY \"es_0\"".into());
        assert_eq!(
            notifier.target.config.get_application_name(),
            Some(NOTIFIER_APPLICATION_NAME)
        );
    }
}
