//! Money: integer minor units with a currency, everywhere. There are no floats.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The currencies the platform accepts. STARK_PAY wallets hold US dollars, so that is all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Currency {
    #[serde(rename = "USD")]
    Usd,
}

impl Currency {
    pub fn as_str(self) -> &'static str {
        match self {
            Currency::Usd => "USD",
        }
    }

    pub fn parse(s: &str) -> Option<Currency> {
        match s {
            "USD" => Some(Currency::Usd),
            _ => None,
        }
    }

    /// Digits after the decimal point (cents: 2).
    pub fn minor_digits(self) -> u32 {
        match self {
            Currency::Usd => 2,
        }
    }
}

/// The highest price a plan may have: 1,000,000.00 USD. Anything above is a typo.
pub const MAX_PRICE_MINOR: i64 = 100_000_000;
/// The most an admin credits in one call, and the most a wallet may hold (no i64 overflow,
/// and a balance no real customer has).
pub const MAX_CREDIT_MINOR: i64 = 100_000_000;
pub const MAX_BALANCE_MINOR: i64 = 1_000_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub amount_minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn usd(amount_minor: i64) -> Money {
        Money { amount_minor, currency: Currency::Usd }
    }
}

impl fmt::Display for Money {
    /// `12.34 USD`; for emails and logs, never for arithmetic.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.currency.minor_digits();
        let per = 10u64.pow(digits);
        let sign = if self.amount_minor < 0 { "-" } else { "" };
        let abs = self.amount_minor.unsigned_abs();
        let width = digits as usize;
        write!(f, "{sign}{}.{:0width$} {}", abs / per, abs % per, self.currency.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_from_minor_units() {
        assert_eq!(Money::usd(1999).to_string(), "19.99 USD");
        assert_eq!(Money::usd(5).to_string(), "0.05 USD");
        assert_eq!(Money::usd(-120).to_string(), "-1.20 USD");
        assert_eq!(Money::usd(0).to_string(), "0.00 USD");
    }

    #[test]
    fn json_shape_is_the_contracts() {
        let v = serde_json::to_value(Money::usd(4999)).unwrap();
        assert_eq!(v, serde_json::json!({"amount_minor": 4999, "currency": "USD"}));
    }
}
