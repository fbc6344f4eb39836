//! Re-deciding after a lost race. A use case that reads, decides and commits with conditions
//! (a purchase, a trial, a cancel, a credit, a limiter update, a lifecycle step) may lose its
//! condition to a concurrent change of the same records; it then reads again and decides
//! again. Losing is normal under contention and never a server error: the loser waits a
//! jittered, growing backoff, so a burst spreads out instead of colliding again in lockstep,
//! and tries again until a time budget is spent. Past the budget it gives up with
//! [`LockTimeout`], which the HTTP layer answers 409 `lock_timeout` with `Retry-After`.
//! The budget counts from the first attempt, so a slow store eats into it; every loser
//! still gets a few re-decides whatever the I/O took, because one re-read is usually all it
//! takes to reach the real answer (the money is gone: 402), and a slow store must not turn
//! that answer into a 409.
//!
//! ```ignore
//! let mut races = RetryPolicy::RACES.start("purchase");
//! loop {
//!     let state = read().await?;
//!     match commit(decide(state)).await? {
//!         Ok(()) => return Ok(..),
//!         Err(_lost) => races.lost().await?, // backs off, or LockTimeout
//!     }
//! }
//! ```

use std::time::Duration;
use tokio::time::Instant;

/// A write kept losing races against concurrent changes of the same records for the whole
/// budget. Not a bug and not an outage: the client may simply try again.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what} kept losing races for {budget:?}")]
pub struct LockTimeout {
    pub what: &'static str,
    pub budget: Duration,
}

/// What `Retry-After` says with a 409 `lock_timeout`, in seconds.
pub const LOCK_TIMEOUT_RETRY_AFTER: u64 = 1;

/// How long and how patiently a re-decide loop keeps trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Time from the first attempt after which a lost race is final.
    pub budget: Duration,
    /// The backoff after the first lost race, doubled after each further one…
    pub first_backoff: Duration,
    /// …up to this. Each wait is drawn uniformly from zero to the current backoff ("full
    /// jitter").
    pub max_backoff: Duration,
    /// Lost races that are always tried again, however long the attempts took.
    pub min_retries: u32,
}

impl RetryPolicy {
    /// For every re-decide loop on a request path or in a job. Three seconds is far more than
    /// a burst of a few dozen writes to one account needs to drain (each commit is a few
    /// milliseconds), and well inside the 10 s Lambda timeout and a client's patience.
    pub const RACES: RetryPolicy = RetryPolicy {
        budget: Duration::from_secs(3),
        first_backoff: Duration::from_millis(4),
        max_backoff: Duration::from_millis(250),
        min_retries: 3,
    };

    /// Starts counting for one use case; `what` names it in the error and the log.
    pub fn start(self, what: &'static str) -> Races {
        Races { policy: self, what, started: Instant::now(), lost: 0 }
    }
}

/// The races one call of a use case has lost so far.
#[derive(Debug)]
pub struct Races {
    policy: RetryPolicy,
    what: &'static str,
    started: Instant,
    lost: u32,
}

impl Races {
    /// Call after losing a race: waits the jittered backoff and returns, so the caller reads
    /// and decides again; or, when that wait would pass the budget, returns [`LockTimeout`]
    /// at once.
    pub async fn lost(&mut self) -> Result<(), LockTimeout> {
        let ceiling = self.policy.first_backoff.saturating_mul(1u32 << self.lost.min(16)).min(self.policy.max_backoff);
        self.lost += 1;
        let wait = ceiling.mul_f64(rand::Rng::gen_range(&mut rand::thread_rng(), 0.0..=1.0));
        if self.lost > self.policy.min_retries && self.started.elapsed() + wait > self.policy.budget {
            tracing::warn!(what = self.what, lost = self.lost, "gave up after losing races for the whole budget");
            return Err(LockTimeout { what: self.what, budget: self.policy.budget });
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// How many races were lost so far.
    pub fn count(&self) -> u32 {
        self.lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_loser_backs_off_then_gives_up_once_the_budget_is_spent() {
        let policy = RetryPolicy {
            budget: Duration::from_millis(60),
            first_backoff: Duration::from_millis(2),
            max_backoff: Duration::from_millis(10),
            min_retries: 0,
        };
        let mut races = policy.start("test");
        let started = std::time::Instant::now();
        let mut retries = 0;
        let err = loop {
            match races.lost().await {
                Ok(()) => retries += 1,
                Err(e) => break e,
            }
        };
        // It kept trying while the budget lasted, and never slept past it.
        assert!(retries >= 5, "{retries}");
        assert!(started.elapsed() <= Duration::from_millis(60) + Duration::from_millis(50));
        assert_eq!((err.what, err.budget), ("test", Duration::from_millis(60)));
    }

    #[tokio::test]
    async fn a_zero_budget_gives_up_on_the_first_lost_race() {
        let mut races = RetryPolicy { budget: Duration::ZERO, min_retries: 0, ..RetryPolicy::RACES }.start("test");
        assert!(races.lost().await.is_err());
    }

    #[tokio::test]
    async fn a_slow_first_attempt_still_gets_its_retries() {
        // The budget is gone before the first race is lost (a slow store), yet the loser
        // reads and decides again `min_retries` times before it gives up.
        let policy = RetryPolicy { budget: Duration::ZERO, ..RetryPolicy::RACES };
        let mut races = policy.start("test");
        for _ in 0..policy.min_retries {
            races.lost().await.expect("retried despite the spent budget");
        }
        assert!(races.lost().await.is_err());
        assert_eq!(races.count(), policy.min_retries + 1);
    }
}
