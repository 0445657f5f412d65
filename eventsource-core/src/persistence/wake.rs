//! Wake-ups: how a store tells its readers that new events may be readable.
//!
//! A wake-up carries no events and promises nothing: it only says "read the log again". Readers
//! always read the log itself (which is what keeps them from skipping an event), so a wake-up
//! that is lost, late or spurious costs latency or a read, never correctness. A store that can't
//! signal commits (another process writing the same SQLite file, a lost PostgreSQL `LISTEN`
//! connection) leaves its readers to poll.

use std::time::Duration;

use tokio::sync::watch;

/// The sending side, kept by a store: [`notify`](Self::notify) after each commit.
#[derive(Debug)]
pub struct CommitSignal {
    sender: watch::Sender<u64>,
}

impl Default for CommitSignal {
    fn default() -> Self {
        Self::new()
    }
}

impl CommitSignal {
    /// A signal no one listens to yet.
    pub fn new() -> Self {
        Self {
            sender: watch::Sender::new(0),
        }
    }

    /// Wakes every reader waiting on this store's [`WakeUps`].
    pub fn notify(&self) {
        self.sender
            .send_modify(|commits| *commits = commits.wrapping_add(1));
    }

    /// A receiver for a reader.
    pub fn wake_ups(&self) -> WakeUps {
        WakeUps {
            receiver: Some(self.sender.subscribe()),
        }
    }

    /// How many readers hold a receiver.
    pub fn readers(&self) -> usize {
        self.sender.receiver_count()
    }
}

/// The receiving side, held by a reader: between two reads it waits for a wake-up, or at most
/// a poll interval.
#[derive(Debug, Clone)]
pub struct WakeUps {
    receiver: Option<watch::Receiver<u64>>,
}

impl WakeUps {
    /// No wake-ups: the reader polls.
    pub fn none() -> Self {
        Self { receiver: None }
    }

    /// Whether the store sends wake-ups (if not, a reader only polls).
    pub fn is_live(&self) -> bool {
        self.receiver.is_some()
    }

    /// Marks every wake-up so far as seen. Call it *before* reading the log, so that a commit
    /// between the read and [`wait`](Self::wait) still wakes the wait.
    pub fn mark_seen(&mut self) {
        if let Some(receiver) = &mut self.receiver {
            receiver.borrow_and_update();
        }
    }

    /// Waits for a wake-up sent since [`mark_seen`](Self::mark_seen), or `poll` at most.
    /// Returns whether it was woken (rather than timed out).
    pub async fn wait(&mut self, poll: Duration) -> bool {
        match &mut self.receiver {
            Some(receiver) => match tokio::time::timeout(poll, receiver.changed()).await {
                Ok(Ok(())) => true,
                // The store was dropped: nothing will wake us any more; poll.
                Ok(Err(_)) => {
                    self.receiver = None;
                    tokio::time::sleep(poll).await;
                    false
                }
                Err(_) => false,
            },
            None => {
                tokio::time::sleep(poll).await;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_commit_after_mark_seen_wakes_a_later_wait() {
        let signal = CommitSignal::new();
        let mut wake = signal.wake_ups();
        assert!(wake.is_live());
        wake.mark_seen();
        signal.notify(); // between the read and the wait
        assert!(
            wake.wait(Duration::from_secs(3600)).await,
            "woken, not timed out"
        );
        wake.mark_seen();
        assert!(
            !wake.wait(Duration::from_millis(10)).await,
            "nothing new: times out"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_store_signal_a_reader_polls() {
        let mut wake = WakeUps::none();
        assert!(!wake.is_live());
        let before = tokio::time::Instant::now();
        assert!(!wake.wait(Duration::from_millis(250)).await);
        assert!(before.elapsed() >= Duration::from_millis(250));
        let signal = CommitSignal::new();
        let mut orphan = signal.wake_ups();
        drop(signal);
        orphan.mark_seen();
        assert!(!orphan.wait(Duration::from_millis(5)).await);
        assert!(
            !orphan.is_live(),
            "a dropped store's wake-ups turn into polling"
        );
    }
}
