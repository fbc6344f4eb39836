//! The daily lifecycle's rules (api.md, "Lifecycle (daily)"), without I/O: when a live
//! subscription is next due, what is due for it at a given time, and the state each step
//! leaves behind. The use case (`app::lifecycle`) reads, asks here, and commits.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{Plan, SubStatus, Subscription};

/// `expiry_reminder` goes out this many days before the end, latest first in a run.
pub const REMINDER_DAYS: [u32; 2] = [3, 1];
/// `renewal_low_balance` is checked this many days before a renewal.
pub const LOW_BALANCE_DAYS: u32 = 3;
/// A `past_due` subscription is retried 1, 2 and 3 days after its first failed attempt.
pub const RETRIES: u32 = 3;

/// How many partitions the DynamoDB due index is spread over by default (see README,
/// "Lifecycle capacity"). The count is part of the stored data: every write and every run of
/// a deployment must agree on it, so changing it means re-indexing the live subscriptions.
pub const DUE_SHARDS: u32 = 32;
/// The most a deployment may configure.
pub const MAX_DUE_SHARDS: u32 = 256;

/// The due shard of a subscription among `shards`: FNV-1a of its id, stable across builds and
/// platforms.
pub fn due_shard(subscription_id: &str, shards: u32) -> u32 {
    let hash = subscription_id.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    hash % shards.max(1)
}

/// The calendar day (UTC) a due time falls on: the due index is partitioned by it.
pub fn due_day(t: DateTime<Utc>) -> NaiveDate {
    t.date_naive()
}

/// An expiry reminder sent: for which period, and how many days before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminded {
    pub period_end: DateTime<Utc>,
    pub days_before: u32,
}

/// What the lifecycle has done to a subscription's current period, so a rerun does not do it
/// again. Every mark names the period it belongs to (or is reset with it), so a new period
/// starts clean by itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleMarks {
    /// When the first renewal attempt of the unpaid period failed. Retries count from here,
    /// not from the due date, so a late run still leaves the user three days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub past_due_since: Option<DateTime<Utc>>,
    /// Retries that failed since (0 to `RETRIES`).
    #[serde(default)]
    pub failed_retries: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminded: Option<Reminded>,
    /// The period end whose renewal was checked against the balance, notice sent or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_checked_for: Option<DateTime<Utc>>,
}

/// What the lifecycle owes a subscription now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// A trial reached its end: it expires.
    TrialEnd,
    /// An auto-renewing period reached its end: charge the renewal plan.
    Renewal,
    /// A `past_due` retry (`attempt` 1 to `RETRIES`).
    Retry { attempt: u32 },
    /// A period that will not renew reached its end (cancelled at period end): it is canceled.
    End,
    /// The latest expiry reminder due, `days_before` the end.
    Reminder { days_before: u32 },
    /// A few days before a renewal: is there money for it?
    BalanceCheck,
}

impl Subscription {
    /// A trial, or a paid period cancelled at its end: it stops by itself.
    fn will_not_renew(&self) -> bool {
        self.status == SubStatus::Trialing || (self.status == SubStatus::Active && !self.auto_renew)
    }

    /// A point `days` before the end, if it falls inside the period: a reminder for a 1-day
    /// trial would arrive with the trial itself, so it is not sent.
    fn before_end(&self, days: u32) -> Option<DateTime<Utc>> {
        let t = self.current_period_end - Duration::days(i64::from(days));
        (t > self.current_period_start).then_some(t)
    }

    /// Reminder points of this period not yet covered by one sent: (days before, when),
    /// earliest first.
    fn reminders_left(&self) -> impl Iterator<Item = (u32, DateTime<Utc>)> + '_ {
        let sent = self.marks.reminded.filter(|r| r.period_end == self.current_period_end).map(|r| r.days_before);
        REMINDER_DAYS
            .into_iter()
            .filter(move |d| sent.is_none_or(|s| *d < s))
            .filter_map(|d| self.before_end(d).map(|t| (d, t)))
    }

    fn balance_check_at(&self) -> Option<DateTime<Utc>> {
        if self.marks.balance_checked_for == Some(self.current_period_end) {
            return None;
        }
        self.before_end(LOW_BALANCE_DAYS)
    }

    fn retry_at(&self) -> DateTime<Utc> {
        let since = self.marks.past_due_since.unwrap_or(self.current_period_end);
        since + Duration::days(i64::from(self.marks.failed_retries + 1))
    }

    /// When the lifecycle next has something to do here: the earliest of the next reminder or
    /// balance check, the end, or the next retry. None once it has ended: the due index is
    /// sparse, and only live subscriptions are in it. Every write of a subscription stores
    /// this beside it, so the index is right by construction.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        match self.status {
            SubStatus::Trialing | SubStatus::Active if self.will_not_renew() => {
                Some(self.reminders_left().next().map_or(self.current_period_end, |(_, t)| t))
            }
            SubStatus::Trialing | SubStatus::Active => Some(self.balance_check_at().unwrap_or(self.current_period_end)),
            // Cancelled while past due: nothing more to try, it ends at the next run.
            SubStatus::PastDue if !self.auto_renew => Some(self.current_period_end),
            SubStatus::PastDue => Some(self.retry_at()),
            SubStatus::Canceled | SubStatus::Expired => None,
        }
    }

    /// What is due at `now`, in the contract's order of checks; None when nothing is.
    pub fn due_at(&self, now: DateTime<Utc>) -> Option<Due> {
        if self.next_due()? > now {
            return None;
        }
        let ended = self.current_period_end <= now;
        Some(match self.status {
            SubStatus::Trialing | SubStatus::Active if self.will_not_renew() => {
                if ended {
                    if self.status == SubStatus::Trialing {
                        Due::TrialEnd
                    } else {
                        Due::End
                    }
                } else {
                    // The latest reminder due; earlier ones are covered by it.
                    let (days_before, _) = self.reminders_left().filter(|(_, t)| *t <= now).last()?;
                    Due::Reminder { days_before }
                }
            }
            SubStatus::Trialing | SubStatus::Active if ended => Due::Renewal,
            SubStatus::Trialing | SubStatus::Active => Due::BalanceCheck,
            SubStatus::PastDue if !self.auto_renew => Due::End,
            SubStatus::PastDue => Due::Retry { attempt: self.marks.failed_retries + 1 },
            SubStatus::Canceled | SubStatus::Expired => return None,
        })
    }

    /// The plan a renewal charges: the scheduled downgrade when there is one.
    pub fn renewal_plan_id(&self) -> &super::PlanId {
        self.scheduled_plan_id.as_ref().unwrap_or(&self.plan_id)
    }

    fn touched(&mut self, now: DateTime<Utc>) {
        self.version += 1;
        self.updated_at = now;
    }

    /// The next period, paid, on `plan` (the renewal plan). It starts at the old end and is
    /// counted from the anchor, so periods never drift; a plan of another length (a scheduled
    /// downgrade from monthly to weekly) starts a new count at the old end.
    pub fn renewed(&self, plan: &Plan, same_length: bool, now: DateTime<Utc>) -> Subscription {
        let mut s = self.clone();
        let start = s.current_period_end;
        if same_length {
            s.period_index += 1;
        } else {
            s.anchor = start;
            s.period_index = 0;
        }
        s.current_period_start = start;
        s.current_period_end = plan.period.end_after(s.anchor, s.period_index + 1);
        s.plan_id = plan.plan_id.clone();
        s.scheduled_plan_id = None;
        s.status = SubStatus::Active;
        s.marks = LifecycleMarks::default();
        s.touched(now);
        s
    }

    /// The first renewal attempt failed: `past_due`, retried from `now`.
    pub fn payment_failed(&self, now: DateTime<Utc>) -> Subscription {
        let mut s = self.clone();
        s.status = SubStatus::PastDue;
        s.marks.past_due_since = Some(now);
        s.marks.failed_retries = 0;
        s.touched(now);
        s
    }

    /// A retry failed: retried again, or `expired` after the last one.
    pub fn retry_failed(&self, now: DateTime<Utc>) -> Subscription {
        let mut s = self.clone();
        s.marks.failed_retries += 1;
        if s.marks.failed_retries >= RETRIES {
            s.status = SubStatus::Expired;
            s.auto_renew = false;
        }
        s.touched(now);
        s
    }

    /// A trial or a non-renewing period ended.
    pub fn ended(&self, now: DateTime<Utc>) -> Subscription {
        let mut s = self.clone();
        s.status = if self.status == SubStatus::Trialing { SubStatus::Expired } else { SubStatus::Canceled };
        s.auto_renew = false;
        s.scheduled_plan_id = None;
        s.touched(now);
        s
    }

    pub fn reminded(&self, days_before: u32, now: DateTime<Utc>) -> Subscription {
        let mut s = self.clone();
        s.marks.reminded = Some(Reminded { period_end: self.current_period_end, days_before });
        s.touched(now);
        s
    }

    pub fn balance_checked(&self, now: DateTime<Utc>) -> Subscription {
        let mut s = self.clone();
        s.marks.balance_checked_for = Some(self.current_period_end);
        s.touched(now);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Email, Money, Period, PlanId, ProductId};
    use chrono::TimeZone;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, d, h, 0, 0).unwrap()
    }

    fn sub(status: SubStatus, start: DateTime<Utc>, end: DateTime<Utc>, auto_renew: bool) -> Subscription {
        Subscription {
            subscription_id: "0190-sub".into(),
            user_id: "u".into(),
            user_email: Email::parse("a@b.co").unwrap(),
            product_id: ProductId::parse("P1").unwrap(),
            plan_id: PlanId::parse("MONTHLY").unwrap(),
            status,
            current_period_start: start,
            current_period_end: end,
            anchor: start,
            period_index: 0,
            auto_renew,
            scheduled_plan_id: None,
            marks: LifecycleMarks::default(),
            created_at: start,
            updated_at: start,
            version: 1,
        }
    }

    fn monthly() -> Plan {
        Plan {
            plan_id: PlanId::parse("MONTHLY").unwrap(),
            name: "Monthly".into(),
            period: Period::Monthly,
            price: Money::usd(1000),
            trial_days: 0,
        }
    }

    #[test]
    fn a_trial_is_reminded_3_then_1_day_before_and_then_ends() {
        let s = sub(SubStatus::Trialing, at(1, 9), at(15, 9), false);
        assert_eq!(s.next_due(), Some(at(12, 9)));
        assert_eq!(s.due_at(at(12, 8)), None);
        assert_eq!(s.due_at(at(12, 9)), Some(Due::Reminder { days_before: 3 }));
        let s = s.reminded(3, at(12, 9));
        assert_eq!(s.next_due(), Some(at(14, 9)));
        let s = s.reminded(1, at(14, 9));
        assert_eq!(s.next_due(), Some(at(15, 9)));
        assert_eq!(s.due_at(at(15, 9)), Some(Due::TrialEnd));
        let s = s.ended(at(15, 9));
        assert_eq!(s.status, SubStatus::Expired);
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn a_late_run_sends_only_the_latest_reminder_and_none_once_the_end_is_due() {
        let s = sub(SubStatus::Trialing, at(1, 9), at(15, 9), false);
        assert_eq!(s.due_at(at(14, 10)), Some(Due::Reminder { days_before: 1 }));
        let s2 = s.reminded(1, at(14, 10));
        assert_eq!(s2.next_due(), Some(at(15, 9)), "the 3-day one is covered");
        assert_eq!(s.due_at(at(15, 9)), Some(Due::TrialEnd));
    }

    #[test]
    fn reminders_before_the_period_start_are_not_sent() {
        // A 2-day trial: the 3-day point is before it started; the 1-day one is inside.
        let s = sub(SubStatus::Trialing, at(1, 9), at(3, 9), false);
        assert_eq!(s.next_due(), Some(at(2, 9)));
        // A 1-day trial gets no reminder at all.
        let s = sub(SubStatus::Trialing, at(1, 9), at(2, 9), false);
        assert_eq!(s.next_due(), Some(at(2, 9)));
    }

    #[test]
    fn an_auto_renewing_period_is_checked_for_money_then_renewed_from_the_anchor() {
        let s = sub(SubStatus::Active, at(31, 0), at(31, 0) + chrono::Months::new(1), true);
        let feb28 = Utc.with_ymd_and_hms(2026, 2, 28, 0, 0, 0).unwrap();
        assert_eq!(s.current_period_end, feb28);
        assert_eq!(s.next_due(), Some(feb28 - Duration::days(3)));
        assert_eq!(s.due_at(feb28 - Duration::days(3)), Some(Due::BalanceCheck));
        let s = s.balance_checked(feb28 - Duration::days(3));
        assert_eq!(s.next_due(), Some(feb28));
        assert_eq!(s.due_at(feb28), Some(Due::Renewal));
        let r = s.renewed(&monthly(), true, feb28);
        assert_eq!(r.current_period_start, feb28);
        assert_eq!(r.current_period_end, Utc.with_ymd_and_hms(2026, 3, 31, 0, 0, 0).unwrap());
        assert_eq!(r.marks, LifecycleMarks::default());
        assert_eq!(r.version, s.version + 1);
    }

    #[test]
    fn dunning_retries_one_two_and_three_days_after_the_first_failure_then_expires() {
        let s = sub(SubStatus::Active, at(1, 0), at(8, 0), true).balance_checked(at(5, 0));
        // The run came a day late: the retries count from the failure, not from the end.
        let failed = s.payment_failed(at(9, 3));
        assert_eq!(failed.status, SubStatus::PastDue);
        assert_eq!(failed.next_due(), Some(at(10, 3)));
        assert_eq!(failed.due_at(at(10, 3)), Some(Due::Retry { attempt: 1 }));
        let r1 = failed.retry_failed(at(10, 3));
        assert_eq!(r1.next_due(), Some(at(11, 3)));
        let r2 = r1.retry_failed(at(11, 3));
        assert_eq!(r2.due_at(at(12, 3)), Some(Due::Retry { attempt: 3 }));
        let r3 = r2.retry_failed(at(12, 3));
        assert_eq!(r3.status, SubStatus::Expired);
        assert_eq!(r3.next_due(), None);
        // A retry that succeeds renews from the anchor: the period starts at the old end.
        let ok = r2.renewed(&monthly(), true, at(12, 3));
        assert_eq!((ok.status, ok.current_period_start), (SubStatus::Active, at(8, 0)));
        assert_eq!(ok.marks.past_due_since, None);
    }

    #[test]
    fn a_cancel_at_period_end_is_reminded_then_canceled_and_a_cancelled_past_due_ends() {
        let s = sub(SubStatus::Active, at(1, 0), at(20, 0), false);
        assert_eq!(s.due_at(at(17, 0)), Some(Due::Reminder { days_before: 3 }));
        assert_eq!(s.due_at(at(20, 0)), Some(Due::End));
        assert_eq!(s.ended(at(20, 0)).status, SubStatus::Canceled);
        let mut p = sub(SubStatus::PastDue, at(1, 0), at(20, 0), false);
        p.marks.past_due_since = Some(at(20, 3));
        assert_eq!(p.due_at(at(20, 4)), Some(Due::End));
        // Auto-renewing periods get no expiry reminder.
        let a = sub(SubStatus::Active, at(1, 0), at(20, 0), true);
        assert_eq!(a.due_at(at(19, 0)), Some(Due::BalanceCheck));
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(due_shard("0190-sub", 32), due_shard("0190-sub", 32));
        assert_eq!(due_shard("0190-sub", 1), 0);
        let mut seen = std::collections::HashSet::new();
        for i in 0..1000 {
            seen.insert(due_shard(&format!("01900000-{i:04}"), DUE_SHARDS));
        }
        assert_eq!(seen.len(), DUE_SHARDS as usize);
    }
}
