//! Retrying on version conflicts: how many attempts, and how long to wait between them.
//!
//! Two writers that conflict and retry at once conflict again. So before each retry a command
//! sleeps for a random time between zero and an exponentially growing, capped bound ("full
//! jitter"): the writers spread out, and a crowd of them clears in a few rounds instead of
//! retrying in lockstep. [`RetryPolicy`] is shared by every command of a
//! [`Repository`](crate::Repository) and by its [`UnitOfWork`](crate::UnitOfWork).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// How many times a command is tried by default before it gives up on version conflicts.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// How long to wait before retrying a command that hit a version conflict: exponential in the
/// number of conflicts so far, capped, with full jitter.
///
/// Before retry `n` (1 after the first conflict) the wait is uniformly random in
/// `0..=min(max, initial × 2^(n-1))`.
///
/// ```
/// use std::time::Duration;
/// use eventsource_core::Backoff;
///
/// let backoff = Backoff::exponential(Duration::from_millis(2), Duration::from_millis(50));
/// assert_eq!(backoff.bound(1), Duration::from_millis(2));
/// assert_eq!(backoff.bound(3), Duration::from_millis(8));
/// assert_eq!(backoff.bound(30), Duration::from_millis(50));   // capped
/// assert!(backoff.delay(3) <= Duration::from_millis(8));       // random, within the bound
/// assert_eq!(Backoff::none().delay(7), Duration::ZERO);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// Waits up to `initial` before the first retry, doubling the bound on every further
    /// conflict up to `max` (a `max` below `initial` caps at `max`).
    pub const fn exponential(initial: Duration, max: Duration) -> Self {
        Self { initial, max }
    }

    /// Retries at once, without waiting.
    pub const fn none() -> Self {
        Self {
            initial: Duration::ZERO,
            max: Duration::ZERO,
        }
    }

    /// The bound before the first retry.
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The cap on every bound.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The longest wait before retry `retry` (counted from 1; 0 is treated as 1).
    pub fn bound(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(63);
        let factor = 1u64 << doublings;
        let bound = u32::try_from(factor)
            .ok()
            .and_then(|factor| self.initial.checked_mul(factor))
            .unwrap_or(Duration::MAX);
        bound.min(self.max)
    }

    /// A random wait before retry `retry`: uniform in `0..=bound(retry)`, at nanosecond
    /// resolution.
    pub fn delay(&self, retry: u32) -> Duration {
        let bound = self.bound(retry);
        if bound.is_zero() {
            return Duration::ZERO;
        }
        let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(jitter(nanos))
    }
}

impl Default for Backoff {
    /// Up to 1 ms before the first retry, doubling up to 100 ms.
    fn default() -> Self {
        Self::exponential(Duration::from_millis(1), Duration::from_millis(100))
    }
}

/// How a command retries on version conflicts: at most `max_attempts` tries, waiting as the
/// [`Backoff`] says between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    backoff: Backoff,
}

impl RetryPolicy {
    /// At most `max_attempts` tries (at least 1) with `backoff` between them.
    pub fn new(max_attempts: u32, backoff: Backoff) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            backoff,
        }
    }

    /// How many times a command is tried at most (at least 1).
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait between attempts.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    pub(crate) fn with_max_attempts(self, max_attempts: u32) -> Self {
        Self::new(max_attempts, self.backoff)
    }

    pub(crate) fn with_backoff(self, backoff: Backoff) -> Self {
        Self::new(self.max_attempts, backoff)
    }

    /// Called after attempt `attempt` (from 1) failed with `error`. Returns the error itself if
    /// it is not a version conflict, [`Error::TooManyConflicts`] once the attempts are used up,
    /// and otherwise waits the backoff and returns `Ok` for the next attempt.
    pub(crate) async fn after_failure(&self, attempt: u32, error: Error) -> Result<()> {
        let Error::Conflict { stream, .. } = error else {
            return Err(error);
        };
        if attempt >= self.max_attempts {
            return Err(Error::TooManyConflicts {
                stream,
                attempts: attempt,
            });
        }
        let delay = self.backoff.delay(attempt);
        tracing::debug!(%stream, attempt, ?delay, %error, "version conflict; retrying");
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok(())
    }
}

impl Default for RetryPolicy {
    /// [`DEFAULT_MAX_ATTEMPTS`] tries with the default [`Backoff`].
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ATTEMPTS, Backoff::default())
    }
}

/// A random number in `0..=bound`. The randomness only has to keep writers from retrying in
/// lockstep: a splitmix64 step over a shared counter seeded from the clock is plenty, and costs
/// no dependency.
fn jitter(bound: u64) -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let clock = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            elapsed.subsec_nanos() as u64 ^ elapsed.as_secs()
        });
    let step = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    let random = splitmix64(step ^ clock.rotate_left(32));
    match bound.checked_add(1) {
        Some(span) => random % span,
        None => random,
    }
}

fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_bound_doubles_from_initial_and_stops_at_max() {
        let backoff = Backoff::exponential(MS, 100 * MS);
        let bounds: Vec<_> = (1..=9).map(|retry| backoff.bound(retry)).collect();
        assert_eq!(bounds, [1, 2, 4, 8, 16, 32, 64, 100, 100].map(|ms| ms * MS));
        assert_eq!(backoff.bound(0), MS, "retry 0 counts as the first");
        assert_eq!(backoff.bound(u32::MAX), 100 * MS, "no overflow");
        let huge = Backoff::exponential(Duration::MAX, Duration::MAX);
        assert_eq!(
            huge.bound(40),
            Duration::MAX,
            "saturates instead of overflowing"
        );
    }

    #[test]
    fn a_max_below_initial_caps_every_bound() {
        let backoff = Backoff::exponential(10 * MS, 3 * MS);
        assert_eq!(backoff.bound(1), 3 * MS);
        assert_eq!(backoff.bound(5), 3 * MS);
    }

    #[test]
    fn delays_stay_within_the_bound_and_spread_over_it() {
        let backoff = Backoff::exponential(MS, 100 * MS);
        for retry in 1..=12 {
            let bound = backoff.bound(retry);
            let delays: Vec<_> = (0..500).map(|_| backoff.delay(retry)).collect();
            assert!(delays.iter().all(|d| *d <= bound), "retry {retry}");
            // Full jitter: the waits cover the range, not just its top (a lockstep retry).
            assert!(delays.iter().any(|d| *d < bound / 4), "retry {retry}");
            assert!(delays.iter().any(|d| *d > bound / 2), "retry {retry}");
        }
    }

    #[test]
    fn no_backoff_never_waits() {
        assert!((1..100).all(|retry| Backoff::none().delay(retry).is_zero()));
        assert_eq!(jitter(0), 0);
        let _ = jitter(u64::MAX); // the full range does not overflow
    }

    #[test]
    fn a_policy_tries_at_least_once() {
        assert_eq!(RetryPolicy::new(0, Backoff::none()).max_attempts(), 1);
        assert_eq!(RetryPolicy::default().max_attempts(), DEFAULT_MAX_ATTEMPTS);
        assert_eq!(
            RetryPolicy::default().with_max_attempts(9).max_attempts(),
            9
        );
    }

    #[test]
    fn a_policy_reports_the_backoff_it_was_given() {
        let backoff = Backoff::exponential(2 * MS, 50 * MS);
        assert_eq!(RetryPolicy::new(3, backoff).backoff(), backoff);
        let none = RetryPolicy::default().with_backoff(Backoff::none());
        assert_eq!(none.backoff(), Backoff::none());
        assert_eq!(
            none.max_attempts(),
            DEFAULT_MAX_ATTEMPTS,
            "the attempts are kept"
        );
    }

    #[tokio::test]
    async fn the_last_conflict_becomes_too_many_conflicts_and_other_errors_pass() {
        let policy = RetryPolicy::new(3, Backoff::none());
        let stream = Uuid::now_v7();
        let conflict = || Error::Conflict {
            stream,
            expected: 1,
            actual: 2,
        };
        assert!(policy.after_failure(1, conflict()).await.is_ok());
        assert!(policy.after_failure(2, conflict()).await.is_ok());
        match policy.after_failure(3, conflict()).await {
            Err(Error::TooManyConflicts {
                stream: named,
                attempts: 3,
            }) => assert_eq!(named, stream),
            other => panic!("expected TooManyConflicts, got {other:?}"),
        }
        let not_found = Error::NotFound {
            aggregate: "X",
            stream,
        };
        assert!(matches!(
            policy.after_failure(1, not_found).await,
            Err(Error::NotFound { .. })
        ));
    }
}
