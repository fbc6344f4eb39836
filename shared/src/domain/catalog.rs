//! The product registry: ids, plans, periods by the calendar.

use chrono::{DateTime, Days, Months, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

use super::Money;

/// `^[A-Z0-9][A-Z0-9_-]{1,63}$`: the shape of product and plan ids.
fn valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    (2..=64).contains(&b.len())
        && (b[0].is_ascii_uppercase() || b[0].is_ascii_digit())
        && b[1..].iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

macro_rules! catalog_id {
    ($name:ident) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, InvalidId> {
                if valid_id(raw) {
                    Ok($name(raw.to_string()))
                } else {
                    Err(InvalidId)
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                $name::parse(&s).map_err(|_| format!("invalid {}", stringify!($name)))
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidId;

catalog_id!(ProductId);
catalog_id!(PlanId);

/// The longest custom period and the longest trial, in days (two years).
pub const MAX_PERIOD_DAYS: u32 = 3650;
pub const MAX_TRIAL_DAYS: u32 = 730;

/// How long one paid period lasts. Months and years follow the calendar: a period is counted
/// from the subscription's anchor, so monthly from Jan 31 ends Feb 28 (or 29), then Mar 31.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "period", rename_all = "lowercase")]
pub enum Period {
    Weekly,
    Monthly,
    Yearly,
    Custom { period_days: u32 },
}

impl Period {
    pub fn name(self) -> &'static str {
        match self {
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Yearly => "yearly",
            Period::Custom { .. } => "custom",
        }
    }

    /// `period_days` as the contract shows it: set for custom plans only.
    pub fn custom_days(self) -> Option<u32> {
        match self {
            Period::Custom { period_days } => Some(period_days),
            _ => None,
        }
    }

    /// The end of the `n`th period counted from `anchor` (n = 1 is the first period's end).
    /// Counting from the anchor, not from the previous end, keeps a 31st-of-month anchor on
    /// the 31st whenever the month has one; the day clamps to the month's last day otherwise.
    pub fn end_after(self, anchor: DateTime<Utc>, n: u32) -> DateTime<Utc> {
        let far = DateTime::<Utc>::MAX_UTC;
        match self {
            Period::Weekly => anchor.checked_add_days(Days::new(7 * u64::from(n))),
            Period::Custom { period_days } => anchor.checked_add_days(Days::new(u64::from(period_days) * u64::from(n))),
            Period::Monthly => anchor.checked_add_months(Months::new(n)),
            Period::Yearly => anchor.checked_add_months(Months::new(12 * n)),
        }
        .unwrap_or(far)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub plan_id: PlanId,
    pub name: String,
    #[serde(flatten)]
    pub period: Period,
    pub price: Money,
    pub trial_days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProductStatus {
    Active,
    Archived,
}

impl ProductStatus {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(ProductStatus::Active),
            "archived" => Some(ProductStatus::Archived),
            _ => None,
        }
    }
}

/// A stored translation of a product's texts into one language; either field may be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextTranslation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub product_id: ProductId,
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub translations: BTreeMap<String, TextTranslation>,
    pub status: ProductStatus,
    /// The provider who created it; None for products made by an admin or loaded by ops.
    pub owner_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Raised by every change of the product's own fields (compare-and-swap).
    #[serde(default)]
    pub version: u64,
    /// Kept in their own records; sorted by price, then id.
    #[serde(skip)]
    pub plans: Vec<Plan>,
}

impl Product {
    pub fn plan(&self, id: &PlanId) -> Option<&Plan> {
        self.plans.iter().find(|p| &p.plan_id == id)
    }

    pub fn sort_plans(&mut self) {
        self.plans.sort_by(|a, b| (a.price.amount_minor, &a.plan_id).cmp(&(b.price.amount_minor, &b.plan_id)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 10, 30, 0).unwrap()
    }

    #[test]
    fn ids_follow_the_contract_pattern() {
        for ok in ["STARK-MK85", "MONTHLY_GOLD", "A1", "9Z", &"A".repeat(64)] {
            assert!(ProductId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "_AB", "-AB", "ab", "AB CD", "ÄB", "AB/C", &"A".repeat(65)] {
            assert!(ProductId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn monthly_clamps_to_month_end_and_returns_to_the_31st() {
        let m = Period::Monthly;
        // Leap year: Jan 31 → Feb 29 → Mar 31 → Apr 30.
        let a = at(2024, 1, 31);
        assert_eq!(m.end_after(a, 1), at(2024, 2, 29));
        assert_eq!(m.end_after(a, 2), at(2024, 3, 31));
        assert_eq!(m.end_after(a, 3), at(2024, 4, 30));
        // Common year: Feb 28.
        let a = at(2023, 1, 31);
        assert_eq!(m.end_after(a, 1), at(2023, 2, 28));
        assert_eq!(m.end_after(a, 2), at(2023, 3, 31));
        // Century rule: 2100 is not a leap year, 2000 was.
        assert_eq!(m.end_after(at(2100, 1, 31), 1), at(2100, 2, 28));
        assert_eq!(m.end_after(at(2000, 1, 31), 1), at(2000, 2, 29));
        // Across the year.
        assert_eq!(m.end_after(at(2024, 12, 31), 2), at(2025, 2, 28));
    }

    #[test]
    fn yearly_from_feb_29_clamps_then_returns_in_leap_years() {
        let y = Period::Yearly;
        let a = at(2024, 2, 29);
        assert_eq!(y.end_after(a, 1), at(2025, 2, 28));
        assert_eq!(y.end_after(a, 3), at(2027, 2, 28));
        assert_eq!(y.end_after(a, 4), at(2028, 2, 29));
    }

    #[test]
    fn weekly_and_custom_count_days() {
        assert_eq!(Period::Weekly.end_after(at(2024, 2, 26), 1), at(2024, 3, 4));
        assert_eq!(Period::Custom { period_days: 10 }.end_after(at(2024, 2, 25), 2), at(2024, 3, 16));
    }

    #[test]
    fn plan_json_has_the_contract_fields() {
        let p = Plan {
            plan_id: PlanId::parse("CUSTOM_45").unwrap(),
            name: "45 days".into(),
            period: Period::Custom { period_days: 45 },
            price: Money::usd(1500),
            trial_days: 7,
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["period"], "custom");
        assert_eq!(v["period_days"], 45);
        assert_eq!(serde_json::from_value::<Plan>(v).unwrap(), p);
    }
}
