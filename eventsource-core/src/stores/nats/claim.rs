//! One active runner per component: [`NatsClaim`], a lease in the key-value bucket
//! `NAME-claims`, renewed while the runner works.
//!
//! The bucket keeps one revision per key and drops a key [`LEASE`] after its last write
//! (`max_age`). A runner takes a tracker's lease by *creating* its key (refused while another
//! holder's key is there), renews it every [`RENEW_EVERY`] with an update that expects the
//! revision it wrote last (refused if anyone else wrote since), and releases it by purging it.
//! A holder that crashed is replaced once its key expires, at most [`LEASE`] after its last
//! renewal; a holder whose renewal is refused, or that could not renew for a whole lease, treats
//! the claim as lost. Expiry is the server's clock, so runners on different machines agree.

use std::fmt;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::{self, CreateErrorKind, UpdateErrorKind};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{BACKEND, Inner, NatsStore};
use crate::application::claim::Standby;
use crate::error::{Error, Result};

/// How long a lease lasts after it is taken or renewed: the longest a crashed holder keeps a
/// standby waiting.
pub const LEASE: Duration = Duration::from_secs(10);

/// How often the holder renews its lease (a quarter of it).
pub const RENEW_EVERY: Duration = Duration::from_millis(2500);

/// A component's claim on a NATS store: the lease key of its tracker, renewed by a background
/// task while it is held. Dropping it stops the renewals (the lease then expires); releasing it
/// purges the key at once.
pub struct NatsClaim {
    tracker: String,
    key: String,
    bucket: kv::Store,
    lost: watch::Receiver<bool>,
    /// The revision of the last renewal, which a release expects.
    revision: watch::Receiver<u64>,
    heartbeat: JoinHandle<()>,
}

impl fmt::Debug for NatsClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsClaim")
            .field("tracker", &self.tracker)
            .field("key", &self.key)
            .field("lost", &*self.lost.borrow())
            .finish()
    }
}

impl Drop for NatsClaim {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

impl Inner {
    /// The claims bucket, created at its first use.
    async fn claims(&self) -> Result<&kv::Store> {
        self.claims
            .get_or_try_init(|| async {
                let bucket = format!("{}-claims", self.events.cached_info().config.name);
                if let Ok(store) = self.context.get_key_value(&bucket).await {
                    return Ok(store);
                }
                self.context
                    .create_key_value(kv::Config {
                        bucket: bucket.clone(),
                        description: "eventsource: one active runner per component".into(),
                        history: 1,
                        max_age: LEASE,
                        num_replicas: self.events.cached_info().config.num_replicas,
                        ..Default::default()
                    })
                    .await
                    .map_err(|error| {
                        Error::backend(
                            BACKEND,
                            format!("creating the key-value bucket `{bucket}`"),
                            error,
                        )
                    })
            })
            .await
    }
}

impl NatsClaim {
    /// Waits until this runner holds `tracker`'s lease.
    async fn take(store: &NatsStore, tracker: &str, standby: &Standby) -> Result<Self> {
        let bucket = store.inner.claims().await?.clone();
        let key = store.inner.subjects.claim_key(tracker);
        let holder = uuid::Uuid::now_v7().to_string();
        loop {
            match bucket.create(&key, holder.clone().into()).await {
                Ok(revision) => {
                    let (lost_tx, lost) = watch::channel(false);
                    let (revision_tx, revision_rx) = watch::channel(revision);
                    let heartbeat = tokio::spawn(renew(
                        bucket.clone(),
                        key.clone(),
                        holder.clone(),
                        tracker.to_owned(),
                        revision_tx,
                        lost_tx,
                    ));
                    return Ok(Self {
                        tracker: tracker.to_owned(),
                        key,
                        bucket,
                        lost,
                        revision: revision_rx,
                        heartbeat,
                    });
                }
                Err(error) if matches!(error.kind(), CreateErrorKind::AlreadyExists) => {
                    standby.waiting();
                    tokio::time::sleep(standby.interval()).await;
                }
                Err(error) => {
                    return Err(Error::backend(
                        BACKEND,
                        format!("taking the claim of `{tracker}`"),
                        error,
                    ));
                }
            }
        }
    }

    /// Resolves once the lease is lost.
    async fn lost(&mut self) {
        if self.lost.wait_for(|lost| *lost).await.is_err() {
            // The heartbeat ended without saying so (it was aborted): nothing renews the lease.
            std::future::pending::<()>().await;
        }
    }

    /// Stops renewing and purges the key, so a standby takes over at its next try.
    async fn release(self) {
        self.heartbeat.abort();
        let revision = *self.revision.borrow();
        if let Err(error) = self
            .bucket
            .purge_expect_revision(&self.key, Some(revision))
            .await
        {
            tracing::debug!(tracker = %self.tracker, %error, "eventsource: releasing a NATS claim failed; it expires instead");
        }
    }
}

/// Renews the lease every [`RENEW_EVERY`] until it is lost or the task is aborted.
async fn renew(
    bucket: kv::Store,
    key: String,
    holder: String,
    tracker: String,
    revision: watch::Sender<u64>,
    lost: watch::Sender<bool>,
) {
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let last = *revision.borrow();
        match bucket.update(&key, holder.clone().into(), last).await {
            Ok(next) => {
                let _ = revision.send(next);
                renewed = Instant::now();
            }
            Err(error) if matches!(error.kind(), UpdateErrorKind::WrongLastRevision) => {
                tracing::warn!(component = %tracker, %error, "eventsource: another runner took this component's claim");
                let _ = lost.send(true);
                return;
            }
            Err(error) if renewed.elapsed() >= LEASE => {
                tracing::warn!(component = %tracker, %error, "eventsource: this component's lease expired before it could be renewed");
                let _ = lost.send(true);
                return;
            }
            Err(error) => {
                tracing::warn!(component = %tracker, %error, "eventsource: could not renew this component's lease; trying again");
            }
        }
    }
}

/// A lease key per tracker in the store's `NAME-claims` bucket.
impl crate::application::claim::Claims for NatsStore {
    type Claim = NatsClaim;

    async fn claim(&self, tracker: &str, standby: &Standby) -> Result<NatsClaim> {
        NatsClaim::take(self, tracker, standby).await
    }

    async fn claim_lost(claim: &mut NatsClaim) {
        claim.lost().await;
    }

    async fn release(&self, claim: NatsClaim) {
        claim.release().await;
    }
}
