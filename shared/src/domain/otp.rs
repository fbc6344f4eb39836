use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use sha2::Sha256;
use std::fmt;
use subtle::ConstantTimeEq;

use super::Email;

pub const OTP_TTL_MINUTES: i64 = 10;
pub const OTP_MAX_WRONG_TRIES: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OtpPurpose {
    Verification,
    PasswordReset,
}

impl OtpPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            OtpPurpose::Verification => "verify",
            OtpPurpose::PasswordReset => "reset",
        }
    }
}

/// A six-digit code. Only ever shown to the mailer; `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct OtpCode(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidOtp;

impl OtpCode {
    pub fn generate() -> Self {
        // OsRng: the code must come from a CSPRNG.
        let n: u32 = rand::rngs::OsRng.gen_range(0..1_000_000);
        OtpCode(format!("{n:06}"))
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidOtp> {
        let s = raw.trim();
        if s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(OtpCode(s.to_string()))
        } else {
            Err(InvalidOtp)
        }
    }

    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OtpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OtpCode(******)")
    }
}

/// What is stored for a pending code: never the code, only a keyed hash of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpRecord {
    pub code_mac: String,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl OtpRecord {
    pub fn new(mac: String, now: DateTime<Utc>) -> Self {
        OtpRecord { code_mac: mac, attempts: 0, created_at: now, expires_at: now + Duration::minutes(OTP_TTL_MINUTES) }
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }
}

/// HMAC-SHA256 keyed by the server pepper, bound to the purpose and the address so that a
/// code cannot be replayed for another purpose or account.
pub fn otp_mac(pepper: &[u8], purpose: OtpPurpose, email: &Email, code: &OtpCode) -> String {
    crate::timing::time(crate::timing::Part::Crypto, || mac_hex(pepper, purpose, email, code))
}

fn mac_hex(pepper: &[u8], purpose: OtpPurpose, email: &Email, code: &OtpCode) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(pepper).expect("HMAC takes any key length");
    mac.update(purpose.as_str().as_bytes());
    mac.update(&[0]);
    mac.update(email.as_str().as_bytes());
    mac.update(&[0]);
    mac.update(code.0.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Constant-time comparison of two hex MACs.
pub fn mac_matches(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_are_six_digits() {
        for _ in 0..200 {
            let c = OtpCode::generate();
            assert_eq!(c.reveal().len(), 6);
            assert!(OtpCode::parse(c.reveal()).is_ok());
        }
    }

    #[test]
    fn parse_rejects_non_digits() {
        for bad in ["12345", "1234567", "12a456", "", "１２３４５６"] {
            assert!(OtpCode::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mac_binds_purpose_email_and_pepper() {
        let e = Email::parse("a@b.co").unwrap();
        let e2 = Email::parse("c@b.co").unwrap();
        let c = OtpCode::parse("123456").unwrap();
        let m = otp_mac(b"pepper", OtpPurpose::Verification, &e, &c);
        assert!(mac_matches(&m, &otp_mac(b"pepper", OtpPurpose::Verification, &e, &c)));
        assert!(!mac_matches(&m, &otp_mac(b"pepper", OtpPurpose::PasswordReset, &e, &c)));
        assert!(!mac_matches(&m, &otp_mac(b"pepper", OtpPurpose::Verification, &e2, &c)));
        assert!(!mac_matches(&m, &otp_mac(b"other", OtpPurpose::Verification, &e, &c)));
        assert!(!m.contains("123456"));
    }

    #[test]
    fn debug_hides_the_code() {
        assert_eq!(format!("{:?}", OtpCode::parse("123456").unwrap()), "OtpCode(******)");
    }
}
