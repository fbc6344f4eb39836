//! Pure types and rules. No I/O, no AWS types.

mod catalog;
mod email;
pub mod lifecycle;
mod money;
mod otp;
mod password;
mod role;
mod subscription;
pub mod throttle;
mod user;
mod username;

pub use catalog::{
    InvalidId, Period, Plan, PlanId, Product, ProductId, ProductStatus, TextTranslation, MAX_PERIOD_DAYS,
    MAX_TRIAL_DAYS,
};
pub use email::{Email, InvalidEmail};
pub use lifecycle::{Due, LifecycleMarks};
pub use money::{Currency, Money, MAX_BALANCE_MINOR, MAX_CREDIT_MINOR, MAX_PRICE_MINOR};
pub use otp::{mac_matches, otp_mac, InvalidOtp, OtpCode, OtpPurpose, OtpRecord, OTP_MAX_WRONG_TRIES, OTP_TTL_MINUTES};
pub use password::{InvalidPassword, Password};
pub use role::Role;
pub use subscription::{upgrade_charge, Payment, SubStatus, Subscription, TxnKind, WalletTxn};
pub use user::{PasswordHash, User, UserView};
pub use username::{InvalidUsername, Username};

use chrono::{DateTime, SecondsFormat, Utc};

/// RFC 3339 in UTC with a `Z`, as the contract wants for every timestamp.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}
