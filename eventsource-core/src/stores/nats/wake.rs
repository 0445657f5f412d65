//! Wake-ups from everyone's appends: an ordered consumer on the events' subjects, headers only,
//! delivering a notice for each event stored after it started. A wake-up promises nothing
//! (readers read the log itself), so a consumer that fails only leaves readers to poll, and it
//! is started again by the next reader that asks.

use std::sync::{Arc, Weak};

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use futures_util::StreamExt;

use super::Inner;

impl Inner {
    /// Starts the watcher, once per store, if a Tokio runtime is running.
    pub(super) fn start_watcher(&self, this: &Arc<Inner>) {
        if self.watcher.get().is_some() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let task = runtime.spawn(watch(Arc::downgrade(this)));
        if let Err(task) = self.watcher.set(task.abort_handle()) {
            task.abort();
        }
    }
}

/// Notifies the store's readers of every stored event until the store is dropped.
async fn watch(store: Weak<Inner>) {
    let (events, filter) = match store.upgrade() {
        Some(inner) => (inner.events.clone(), inner.subjects.all_events()),
        None => return,
    };
    let consumer = events
        .create_consumer(OrderedConfig {
            filter_subject: filter,
            deliver_policy: DeliverPolicy::New,
            headers_only: true,
            ..Default::default()
        })
        .await;
    let mut messages = match consumer {
        Ok(consumer) => match consumer.messages().await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, "NATS store: no wake-ups from other writers; readers poll");
                return;
            }
        },
        Err(error) => {
            tracing::warn!(%error, "NATS store: no wake-ups from other writers; readers poll");
            return;
        }
    };
    while let Some(message) = messages.next().await {
        let Some(inner) = store.upgrade() else {
            return;
        };
        if let Err(error) = message {
            tracing::debug!(%error, "NATS store: the wake-up consumer failed; readers poll");
            return;
        }
        inner.commits.notify();
    }
}
