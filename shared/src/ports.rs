//! The ports: what the use cases need from the outside world. Adapters live in `adapters/`.
//! Every store port has one contract suite (`tests/contract`) run against every adapter.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::domain::{Email, OtpPurpose, OtpRecord, PasswordHash, Role, User};

/// Infrastructure failure: the store or queue could not answer. Never shown to a client.
pub type InfraError = anyhow::Error;

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("email already registered")]
    EmailTaken,
    #[error("username already registered")]
    UsernameTaken,
    #[error(transparent)]
    Infra(#[from] InfraError),
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates the user and their first verification code in one atomic write. Email and
    /// username (case-folded) are unique.
    async fn create_user(&self, user: &User, otp: &OtpRecord) -> Result<(), CreateUserError>;
    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, InfraError>;
    async fn user_by_id(&self, id: &str) -> Result<Option<User>, InfraError>;
    /// Replaces the hash only if it is still `expected` (a concurrent reset wins). Returns
    /// false when the user is gone or the hash changed meanwhile.
    async fn set_password_hash(
        &self,
        user_id: &str,
        expected: &PasswordHash,
        hash: &PasswordHash,
    ) -> Result<bool, InfraError>;
    /// Returns false when there is no such user.
    async fn set_role(&self, user_id: &str, role: Role) -> Result<bool, InfraError>;
}

/// What a correct code unlocks, written in the same atomic step as consuming it.
#[derive(Debug, Clone)]
pub enum OtpRedemption {
    VerifyEmail { user_id: String },
    ResetPassword { user_id: String, new_hash: PasswordHash },
}

#[async_trait]
pub trait OtpStore: Send + Sync {
    /// Stores a new code, replacing any pending one for that email and purpose.
    async fn put_otp(&self, email: &Email, purpose: OtpPurpose, otp: &OtpRecord) -> Result<(), InfraError>;
    async fn get_otp(&self, email: &Email, purpose: OtpPurpose) -> Result<Option<OtpRecord>, InfraError>;
    /// Charges one try against the pending code before it is compared: atomically raises
    /// `attempts` by one if it is below `max` and returns the record as charged. None when
    /// there is no code or its tries are used up. Charging first means a burst of parallel
    /// guesses gets at most `max` comparisons.
    async fn take_attempt(&self, email: &Email, purpose: OtpPurpose, max: u32)
        -> Result<Option<OtpRecord>, InfraError>;
    /// Deletes the code if it is still `code_mac` (a wrong last try voids it).
    async fn delete_otp(&self, email: &Email, purpose: OtpPurpose, code_mac: &str) -> Result<(), InfraError>;
    /// Atomically deletes the code (only if it is still `code_mac`) and applies the redemption:
    /// marks the email verified, or sets the new password hash, marks the email verified and
    /// bumps the account's token generation, which revokes every refresh token issued before.
    /// Returns false if the code was no longer there.
    async fn redeem_otp(
        &self,
        email: &Email,
        purpose: OtpPurpose,
        code_mac: &str,
        redemption: &OtpRedemption,
    ) -> Result<bool, InfraError>;
}

/// A value with the version it was read at, for compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

/// Small per-key counters (send windows, login failures), updated with compare-and-swap.
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// An entry past its `expires_at` reads as an empty value (its version is kept).
    async fn load(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Versioned<String>>, InfraError>;
    /// Writes `value` if the stored version is still `expected` (None: absent). Returns
    /// false on a lost race; the caller reloads and retries.
    async fn store(
        &self,
        key: &str,
        value: &str,
        expected: Option<u64>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, InfraError>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    /// SHA-256 of the opaque token, hex.
    pub token_hash: String,
    pub user_id: String,
    pub family_id: String,
    /// The user's `token_generation` when issued; a newer generation revokes it.
    pub generation: u64,
    pub rotated: bool,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    Rotated,
    /// The old token had already been rotated (reuse): the family is now revoked.
    ReuseDetected,
    /// The family was revoked (logout or earlier reuse).
    FamilyRevoked,
    NotFound,
}

#[async_trait]
pub trait RefreshTokenStore: Send + Sync {
    /// Starts a new family with its first token.
    async fn create_family(&self, first: &RefreshTokenRecord) -> Result<(), InfraError>;
    async fn get_refresh(&self, token_hash: &str) -> Result<Option<RefreshTokenRecord>, InfraError>;
    /// Marks `old` (as just read) rotated and stores `next` in its family, atomically. If
    /// `old` was rotated already, revokes the family.
    async fn rotate(&self, old: &RefreshTokenRecord, next: &RefreshTokenRecord) -> Result<Rotation, InfraError>;
    /// Revokes a family; an unknown family is left alone.
    async fn revoke_family(&self, family_id: &str) -> Result<(), InfraError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailTemplate {
    OtpVerification,
    PasswordReset,
}

impl EmailTemplate {
    pub fn as_str(self) -> &'static str {
        match self {
            EmailTemplate::OtpVerification => "otp_verification",
            EmailTemplate::PasswordReset => "password_reset",
        }
    }
}

/// One email to send. It crosses the queue as JSON.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailJob {
    pub job_id: String,
    pub template: EmailTemplate,
    pub to: Email,
    pub locale: String,
    pub vars: BTreeMap<String, String>,
}

impl std::fmt::Debug for EmailJob {
    // Variables may hold a one-time code: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailJob")
            .field("job_id", &self.job_id)
            .field("template", &self.template)
            .field("to", &self.to)
            .field("locale", &self.locale)
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[async_trait]
pub trait EmailQueue: Send + Sync {
    async fn enqueue(&self, job: &EmailJob) -> Result<(), InfraError>;
    /// For the health endpoint.
    async fn ping(&self) -> Result<(), InfraError>;
}

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// A store reports whether it answers, for the health endpoint.
#[async_trait]
pub trait StorePing: Send + Sync {
    async fn ping(&self) -> Result<(), InfraError>;
}

/// Machine translation of catalog text (L3 of the translation layer).
#[async_trait]
pub trait Translator: Send + Sync {
    /// `text` translated from `source` into `target`. Any length: an adapter with a size
    /// limit splits the text itself.
    async fn translate(
        &self,
        text: &str,
        source: crate::i18n::Lang,
        target: crate::i18n::Lang,
    ) -> Result<String, InfraError>;
}

/// A shared store of translated fragments, keyed by `i18n::cache_key` (L2 of the translation
/// layer). Callers treat every error as a miss: a cache never fails a request.
#[async_trait]
pub trait TranslationCache: Send + Sync {
    /// The values for `keys`, in order, `None` for a miss: one round trip for all of them.
    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<String>>, InfraError>;
    /// Stores every `(key, value)`, each expiring after `ttl`: one round trip for all of them.
    async fn set_many(&self, entries: &[(String, String)], ttl: std::time::Duration) -> Result<(), InfraError>;
}
