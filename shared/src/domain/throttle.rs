//! Pure rules for the two per-email limiters: the OTP send window and the login lockout.
//! State is stored as JSON through the `ThrottleStore` port with compare-and-swap.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

pub const SEND_COOLDOWN_SECS: i64 = 60;
pub const SENDS_PER_HOUR: usize = 5;
pub const LOCK_AFTER_FAILURES: u32 = 5;
pub const LOCK_BASE_SECS: i64 = 30;
pub const LOCK_MAX_SECS: i64 = 15 * 60;

/// Seconds to wait before trying again; always at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

fn retry_after(until: DateTime<Utc>, now: DateTime<Utc>) -> RetryAfter {
    let ms = (until - now).num_milliseconds().max(0);
    RetryAfter(((ms + 999) / 1000).max(1) as u64)
}

/// The times of recent sends for one email and purpose. `serde(default)`: a field added later
/// must not make stored state unreadable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SendWindow {
    pub sent_at: Vec<DateTime<Utc>>,
}

impl SendWindow {
    fn recent(&self, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        self.sent_at.iter().copied().filter(|t| now - *t < Duration::hours(1)).collect()
    }

    /// Admits one more send at `now`, or says how long to wait.
    pub fn admit(&self, now: DateTime<Utc>) -> Result<SendWindow, RetryAfter> {
        let mut recent = self.recent(now);
        recent.sort();
        if let Some(last) = recent.last() {
            if now - *last < Duration::seconds(SEND_COOLDOWN_SECS) {
                return Err(retry_after(*last + Duration::seconds(SEND_COOLDOWN_SECS), now));
            }
        }
        if recent.len() >= SENDS_PER_HOUR {
            return Err(retry_after(recent[recent.len() - SENDS_PER_HOUR] + Duration::hours(1), now));
        }
        recent.push(now);
        Ok(SendWindow { sent_at: recent })
    }

    /// Records a send that happened regardless of the window (the code sent at signup).
    pub fn record(&self, now: DateTime<Utc>) -> SendWindow {
        let mut recent = self.recent(now);
        recent.push(now);
        SendWindow { sent_at: recent }
    }

    /// When the state can be forgotten.
    pub fn expires_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.sent_at.iter().max().copied().unwrap_or(now) + Duration::hours(1)
    }
}

/// Consecutive failed logins for one submitted email.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoginFailures {
    pub consecutive: u32,
    pub locked_until: Option<DateTime<Utc>>,
}

impl LoginFailures {
    pub fn locked(&self, now: DateTime<Utc>) -> Option<RetryAfter> {
        self.locked_until.filter(|u| *u > now).map(|u| retry_after(u, now))
    }

    /// Counts one more failure. From the 5th in a row the account is locked for 30 s,
    /// doubling with each further failure, capped at 15 minutes.
    pub fn fail(&self, now: DateTime<Utc>) -> LoginFailures {
        let consecutive = self.consecutive.saturating_add(1);
        let locked_until = if consecutive >= LOCK_AFTER_FAILURES {
            let doublings = (consecutive - LOCK_AFTER_FAILURES).min(16);
            let secs = (LOCK_BASE_SECS << doublings).min(LOCK_MAX_SECS);
            Some(now + Duration::seconds(secs))
        } else {
            None
        };
        LoginFailures { consecutive, locked_until }
    }

    /// The state is kept a day past the last lock so that the count survives short pauses.
    pub fn expires_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.locked_until.unwrap_or(now).max(now) + Duration::hours(24)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn cooldown_then_hourly_cap() {
        let mut w = SendWindow::default().record(t0());
        assert_eq!(w.admit(t0() + Duration::seconds(10)), Err(RetryAfter(50)));
        for i in 1..5 {
            w = w.admit(t0() + Duration::seconds(61 * i)).unwrap();
        }
        assert_eq!(w.sent_at.len(), 5);
        // Sixth within the hour: wait until the first send is an hour old.
        let at = t0() + Duration::seconds(61 * 5);
        assert_eq!(w.admit(at), Err(RetryAfter(3600 - 305)));
        assert!(w.admit(t0() + Duration::seconds(3600)).is_ok());
    }

    #[test]
    fn lockout_doubles_and_caps() {
        let mut f = LoginFailures::default();
        for _ in 0..4 {
            f = f.fail(t0());
            assert_eq!(f.locked(t0()), None);
        }
        let expected = [30, 60, 120, 240, 480, 900, 900];
        for secs in expected {
            f = f.fail(t0());
            assert_eq!(f.locked(t0()), Some(RetryAfter(secs)));
        }
        assert_eq!(f.locked(t0() + Duration::seconds(900)), None);
    }
}
