//! Subscriptions, payments and the wallet: the state and the arithmetic, no I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Email, Money, PlanId, ProductId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubStatus {
    Trialing,
    Active,
    PastDue,
    Canceled,
    Expired,
}

impl SubStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SubStatus::Trialing => "trialing",
            SubStatus::Active => "active",
            SubStatus::PastDue => "past_due",
            SubStatus::Canceled => "canceled",
            SubStatus::Expired => "expired",
        }
    }

    /// Live subscriptions hold the user's one live slot for their product.
    pub fn is_live(self) -> bool {
        matches!(self, SubStatus::Trialing | SubStatus::Active | SubStatus::PastDue)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// UUIDv7: sorts by creation time.
    pub subscription_id: String,
    pub user_id: String,
    /// Kept for the provider's subscriber list, which would otherwise read every user.
    pub user_email: Email,
    pub product_id: ProductId,
    pub plan_id: PlanId,
    pub status: SubStatus,
    pub current_period_start: DateTime<Utc>,
    pub current_period_end: DateTime<Utc>,
    /// Where the plan's periods are counted from (see `Period::end_after`), and how many
    /// whole periods have passed since: the current period ends after `period_index + 1`.
    pub anchor: DateTime<Utc>,
    pub period_index: u32,
    pub auto_renew: bool,
    pub scheduled_plan_id: Option<PlanId>,
    /// What the daily lifecycle did to the current period (reminders, dunning).
    #[serde(default)]
    pub marks: super::LifecycleMarks,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Raised by every write (compare-and-swap).
    pub version: u64,
}

impl Subscription {
    /// Whole days of access left, rounded up; 0 once the subscription is not live.
    pub fn days_remaining(&self, now: DateTime<Utc>) -> i64 {
        if !self.status.is_live() {
            return 0;
        }
        let secs = (self.current_period_end - now).num_seconds();
        if secs <= 0 {
            0
        } else {
            (secs + 86_399) / 86_400
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub payment_id: String,
    pub user_id: String,
    pub subscription_id: String,
    pub amount: Money,
    pub method: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TxnKind {
    Credit,
    Debit,
}

/// One change of a STARK_PAY balance. `amount` is positive; `kind` says which way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletTxn {
    pub transaction_id: String,
    pub user_id: String,
    pub kind: TxnKind,
    pub amount: Money,
    pub reference: String,
    pub created_at: DateTime<Utc>,
}

impl WalletTxn {
    /// The signed change to the balance.
    pub fn delta(&self) -> i64 {
        match self.kind {
            TxnKind::Credit => self.amount.amount_minor,
            TxnKind::Debit => -self.amount.amount_minor,
        }
    }
}

/// What an upgrade costs now: the new price minus the unused share of the current period's
/// price, never below zero.
///
/// Rounding: the unused share is `old_price × unused_seconds / period_seconds`, computed in
/// 128-bit integers and rounded half up to the minor unit (so 0.5 cent of credit becomes 1
/// cent); the charge is the new price minus that credit. No floating point is involved.
pub fn upgrade_charge(
    new_price: i64,
    old_price: i64,
    period_start: DateTime<Utc>,
    period_end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> i64 {
    let total = (period_end - period_start).num_seconds().max(1) as i128;
    let unused = ((period_end - now).num_seconds() as i128).clamp(0, total);
    let credit = (2 * i128::from(old_price) * unused + total) / (2 * total);
    (i128::from(new_price) - credit).max(0) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    #[test]
    fn proration_charges_the_difference_for_the_unused_share() {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let end = start + Duration::days(30);
        // Halfway: 10.00 credit of a 20.00 plan against 50.00.
        assert_eq!(upgrade_charge(5000, 2000, start, end, start + Duration::days(15)), 4000);
        // At the start the whole old price is credited; at the end nothing is.
        assert_eq!(upgrade_charge(5000, 2000, start, end, start), 3000);
        assert_eq!(upgrade_charge(5000, 2000, start, end, end), 5000);
        assert_eq!(upgrade_charge(5000, 2000, start, end, end + Duration::days(3)), 5000);
        // Never below zero.
        assert_eq!(upgrade_charge(100, 5000, start, end, start), 0);
    }

    #[test]
    fn proration_rounds_half_up_to_the_minor_unit() {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let end = start + Duration::seconds(4);
        // Credit 1 × 2/4 = 0.5 → 1; 3 × 1/4 = 0.75 → 1; 1 × 1/4 = 0.25 → 0.
        assert_eq!(upgrade_charge(10, 1, start, end, start + Duration::seconds(2)), 9);
        assert_eq!(upgrade_charge(10, 3, start, end, start + Duration::seconds(3)), 9);
        assert_eq!(upgrade_charge(10, 1, start, end, start + Duration::seconds(3)), 10);
        // Large prices do not overflow.
        let year_end = start + Duration::days(366);
        assert_eq!(upgrade_charge(100_000_000, 100_000_000, start, year_end, start), 0);
    }

    #[test]
    fn days_remaining_rounds_up_and_is_zero_when_not_live() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let mut s = Subscription {
            subscription_id: "s".into(),
            user_id: "u".into(),
            user_email: Email::parse("a@b.co").unwrap(),
            product_id: ProductId::parse("P1").unwrap(),
            plan_id: PlanId::parse("P2").unwrap(),
            status: SubStatus::Active,
            current_period_start: now,
            current_period_end: now + Duration::hours(30),
            anchor: now,
            period_index: 0,
            auto_renew: true,
            scheduled_plan_id: None,
            marks: Default::default(),
            created_at: now,
            updated_at: now,
            version: 1,
        };
        assert_eq!(s.days_remaining(now), 2);
        assert_eq!(s.days_remaining(now + Duration::hours(6)), 1);
        assert_eq!(s.days_remaining(now + Duration::hours(31)), 0);
        s.status = SubStatus::Canceled;
        assert_eq!(s.days_remaining(now), 0);
    }
}
