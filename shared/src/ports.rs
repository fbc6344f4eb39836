//! The ports: what the use cases need from the outside world. Adapters live in `adapters/`.
//! Every store port has one contract suite (`tests/contract`) run against every adapter.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::domain::{
    Email, OtpPurpose, OtpRecord, PasswordHash, Payment, Plan, Product, ProductId, Role, Subscription, User, WalletTxn,
};

/// Infrastructure failure: the store or queue could not answer. Never shown to a client.
/// An adapter marks a failure of its dependency (see [`Unavailable`]); anything unmarked is
/// taken for our own bug.
pub type InfraError = anyhow::Error;

/// A dependency that is down, timing out or throttling (a connect error, a timeout,
/// throttling, `ServiceUnavailable`/`InternalServerError` from AWS, a busy, read-only or
/// failing SQLite file), as opposed to a bug of ours. The request may well succeed later, so
/// the HTTP layer answers 503 `service_unavailable` with `Retry-After`, not 500. Adapters wrap
/// the original error in it; [`is_unavailable`] finds it under any added context.
#[derive(Debug, thiserror::Error)]
#[error("{dependency} is unavailable")]
pub struct Unavailable {
    /// What failed, for the log: "DynamoDB", "SQLite", "SQS".
    pub dependency: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl Unavailable {
    pub fn error(dependency: &'static str, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> InfraError {
        anyhow::Error::new(Unavailable { dependency, source: source.into() })
    }
}

/// Whether `e` is a dependency failure rather than a bug.
pub fn is_unavailable(e: &InfraError) -> bool {
    e.chain().any(|cause| cause.is::<Unavailable>()) || e.downcast_ref::<Unavailable>().is_some()
}

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
    /// Creates the user, their first verification code and the email that carries it (an
    /// outbox entry) in one atomic write. Email and username (case-folded) are unique.
    async fn create_user(&self, user: &User, otp: &OtpRecord, outbox: &[OutboxEntry]) -> Result<(), CreateUserError>;
    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, InfraError>;
    async fn user_by_id(&self, id: &str) -> Result<Option<User>, InfraError>;
    /// The users of `ids` that exist, in any order: one round trip where the store can.
    async fn users_by_id(&self, ids: &[String]) -> Result<Vec<User>, InfraError> {
        let mut users = Vec::with_capacity(ids.len());
        for id in ids {
            users.extend(self.user_by_id(id).await?);
        }
        Ok(users)
    }
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
    /// Stores a new code, replacing any pending one for that email and purpose, together with
    /// the outbox entries of the email that carries it, in one atomic write.
    async fn put_otp(
        &self,
        email: &Email,
        purpose: OtpPurpose,
        otp: &OtpRecord,
        outbox: &[OutboxEntry],
    ) -> Result<(), InfraError>;
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

#[derive(Debug, thiserror::Error)]
pub enum CatalogWriteError {
    /// The product (or plan) id is taken.
    #[error("already exists")]
    Exists,
    /// The product does not exist.
    #[error("no such product")]
    NotFound,
    #[error(transparent)]
    Infra(#[from] InfraError),
}

#[async_trait]
pub trait CatalogStore: Send + Sync {
    /// Creates a product with its plans in one atomic write; `Exists` when the id is taken.
    async fn create_product(&self, product: &Product) -> Result<(), CatalogWriteError>;
    /// Replaces the product's own fields (not its plans) if its stored version is still
    /// `expected`, raising the version. False on a lost race or a missing product.
    async fn update_product(&self, product: &Product, expected: u64) -> Result<bool, InfraError>;
    /// `NotFound` without the product, `Exists` when the plan id is taken.
    async fn add_plan(&self, product_id: &ProductId, plan: &Plan) -> Result<(), CatalogWriteError>;
    /// Writes the product and its plans whatever is stored (ops: `stark catalog load`).
    /// Plans stored but not given are kept.
    async fn upsert_product(&self, product: &Product) -> Result<(), InfraError>;
    /// The product with its plans sorted (`Product::sort_plans`), in any status.
    async fn product(&self, id: &ProductId) -> Result<Option<Product>, InfraError>;
    /// Every product with its plans, in any status, by id.
    async fn list_products(&self) -> Result<Vec<Product>, InfraError>;
}

/// What a purchase or a trial needs to know about one user and one product, read together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    /// The subscription holding the user's live slot for the product, if any.
    pub live: Option<Subscription>,
    pub trial_used: bool,
    pub balance_minor: i64,
}

/// How a commit changes the user's one live slot for a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveSlot {
    /// Take the slot for the commit's subscription; fails if it is held.
    Claim,
    /// Free the slot; fails unless the commit's subscription holds it.
    Release,
}

/// A stored answer for an Idempotency-Key: what to replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    /// The body without its localized `message`, which is added in the replay's language.
    pub body: serde_json::Value,
    pub message_key: Option<String>,
}

/// Marks a claimed Idempotency-Key done with the response to replay. Conditional on the
/// claim still being ours (`token`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyCompletion {
    pub key: String,
    pub token: String,
    pub response: StoredResponse,
}

/// Every write of one business change, applied all together or not at all:
/// `TransactWriteItems` on DynamoDB, one transaction on SQLite. Each part carries its
/// condition; a failed condition aborts the whole commit with [`CommitError::Conflict`].
#[derive(Debug, Clone, Default)]
pub struct Commit {
    /// The subscription, with the version it was read at (None: it must be new).
    pub subscription: Option<(Subscription, Option<u64>)>,
    /// Changes the live slot of the commit's subscription (which must be set).
    pub live: Option<LiveSlot>,
    /// Marks the trial of the commit's subscription's product used; fails if it was.
    pub trial: bool,
    /// Applies a wallet change: a debit fails when the balance is short, a credit when it
    /// would pass `MAX_BALANCE_MINOR`.
    pub wallet: Option<WalletTxn>,
    pub payment: Option<Payment>,
    /// Completes the user's claimed Idempotency-Key (the user is the subscription's, or the
    /// wallet's).
    pub idempotency: Option<(String, IdempotencyCompletion)>,
    /// Email jobs, relayed to the queue after the commit (see `app::outbox`).
    pub outbox: Vec<OutboxEntry>,
}

/// Which condition stopped a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The subscription changed since it was read, or the live slot is taken (or not ours).
    Subscription,
    TrialUsed,
    Funds,
    /// The Idempotency-Key claim is no longer ours.
    Idempotency,
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("conflict: {0:?}")]
    Conflict(Conflict),
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// A claim on an Idempotency-Key, taken before the request runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    pub user_id: String,
    pub key: String,
    /// SHA-256 of the endpoint and the parsed body.
    pub request_hash: String,
    /// Identifies this claim, so only its holder completes or releases it.
    pub token: String,
    /// A claim whose holder died is taken over after this.
    pub lock_until: DateTime<Utc>,
    /// Kept this long (24 h).
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub request_hash: String,
    /// None while the first request is running.
    pub response: Option<StoredResponse>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    Claimed,
    /// A live record exists: its hash, and its response once done.
    Existing(IdempotencyRecord),
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Takes the key unless a live record holds it (one not past `expires_at`, and not a
    /// running claim past `lock_until`).
    async fn claim_idempotency(&self, claim: &IdempotencyClaim, now: DateTime<Utc>)
        -> Result<ClaimOutcome, InfraError>;
    /// Stores the response of a request that wrote nothing else (402, 404, 409…).
    async fn complete_idempotency(&self, user_id: &str, c: &IdempotencyCompletion) -> Result<bool, InfraError>;
    /// Drops our claim (the request failed on our side and may be retried).
    async fn release_idempotency(&self, user_id: &str, key: &str, token: &str) -> Result<(), InfraError>;
}

#[async_trait]
pub trait SubscriptionStore: Send + Sync {
    async fn account_state(&self, user_id: &str, product_id: &ProductId) -> Result<AccountState, InfraError>;
    async fn subscription(&self, user_id: &str, subscription_id: &str) -> Result<Option<Subscription>, InfraError>;
    /// The user's subscriptions, every status, newest first.
    async fn user_subscriptions(&self, user_id: &str) -> Result<Vec<Subscription>, InfraError>;
    /// A product's subscriptions, every status, newest first.
    async fn product_subscriptions(&self, product_id: &ProductId) -> Result<Vec<Subscription>, InfraError>;
    /// The balance and the latest `limit` transactions, newest first.
    async fn wallet(&self, user_id: &str, limit: usize) -> Result<(i64, Vec<WalletTxn>), InfraError>;
    /// The user's payments, newest first.
    async fn payments(&self, user_id: &str) -> Result<Vec<Payment>, InfraError>;
    async fn commit(&self, commit: &Commit) -> Result<(), CommitError>;
}

/// Where a page of due subscriptions ends: the next page starts after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueCursor {
    pub due_at: DateTime<Utc>,
    pub subscription_id: String,
}

/// What one lifecycle run did, by kind of step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    pub renewed: u64,
    pub past_due: u64,
    pub expired: u64,
    pub canceled: u64,
    pub reminders: u64,
    pub low_balance: u64,
    pub emails: u64,
    /// Subscriptions that kept losing races to concurrent changes, left for the next run.
    pub left: u64,
}

impl RunCounts {
    pub fn add(&mut self, o: &RunCounts) {
        self.renewed += o.renewed;
        self.past_due += o.past_due;
        self.expired += o.expired;
        self.canceled += o.canceled;
        self.reminders += o.reminders;
        self.low_balance += o.low_balance;
        self.emails += o.emails;
        self.left += o.left;
    }
}

/// One lifecycle run: all shards for one `now`, in process or fanned out over workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRun {
    pub run_id: String,
    pub now: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    /// Set when the last of its shards is done.
    pub finished_at: Option<DateTime<Utc>>,
    pub shards: u32,
    pub shards_done: u32,
    pub counts: RunCounts,
}

/// The lifecycle's own records: the due index, each shard's watermark, and the runs.
#[async_trait]
pub trait LifecycleStore: Send + Sync {
    /// How many shards the due index has: a run handles each of them.
    fn due_shards(&self) -> u32;
    /// Live subscriptions of `shard` due at or before `now`, by due time then id, at most
    /// `limit`, after `after` when given. `from` is the earliest due day that may still hold
    /// work (the shard's watermark): a store partitioned by day reads no day before it.
    async fn due_subscriptions(
        &self,
        shard: u32,
        from: chrono::NaiveDate,
        now: DateTime<Utc>,
        after: Option<&DueCursor>,
        limit: usize,
    ) -> Result<Vec<Subscription>, InfraError>;
    /// The earliest day that may still hold due work in `shard`; None before the first run.
    async fn watermark(&self, shard: u32) -> Result<Option<chrono::NaiveDate>, InfraError>;
    async fn set_watermark(&self, shard: u32, day: chrono::NaiveDate) -> Result<(), InfraError>;
    /// Records a run as started; a run already recorded (a retried schedule) is kept.
    async fn start_run(&self, run: &LifecycleRun) -> Result<(), InfraError>;
    /// Adds one shard's counts to its run, once: a shard finished again (a redelivered
    /// message) adds nothing. The run is finished when its last shard is.
    async fn finish_shard(
        &self,
        run_id: &str,
        shard: u32,
        counts: &RunCounts,
        at: DateTime<Utc>,
    ) -> Result<(), InfraError>;
    async fn run(&self, run_id: &str) -> Result<Option<LifecycleRun>, InfraError>;
    /// The latest runs, newest first.
    async fn recent_runs(&self, limit: usize) -> Result<Vec<LifecycleRun>, InfraError>;
}

/// One shard of one run: the message the scheduled `lifecycle` sends `lifecycle-worker`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardMessage {
    pub run_id: String,
    pub now: DateTime<Utc>,
    pub shard: u32,
}

/// Where a run's shards wait for a worker (SQS on AWS).
#[async_trait]
pub trait ShardQueue: Send + Sync {
    async fn send_shards(&self, messages: &[ShardMessage]) -> Result<(), InfraError>;
}

/// What DynamoDB's TTL deletes by itself on AWS, the embedded store deletes when asked
/// (daily, by the lifecycle run): expired codes, throttle windows, refresh tokens,
/// Idempotency-Key records and old email-log entries.
#[async_trait]
pub trait Housekeeping: Send + Sync {
    /// Deletes up to `batch` expired records per kind and round, until none is left. Returns
    /// how many went.
    async fn purge_expired(&self, now: DateTime<Utc>, batch: usize) -> Result<u64, InfraError>;
}

/// An email job written with the change that caused it, waiting to be relayed to the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub created_at: DateTime<Utc>,
    pub job: EmailJob,
}

#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Entries written before `before`, oldest first (by time, then job id), at most `limit`;
    /// with `after`, only those that come after that entry (the next page).
    async fn pending_outbox(
        &self,
        before: DateTime<Utc>,
        after: Option<&OutboxEntry>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, InfraError>;
    /// Removes a relayed entry; an entry already gone is fine.
    async fn delete_outbox(&self, entry: &OutboxEntry) -> Result<(), InfraError>;
    /// `delete_outbox` for every entry; one write where the store can.
    async fn delete_outbox_many(&self, entries: &[OutboxEntry]) -> Result<(), InfraError> {
        for e in entries {
            self.delete_outbox(e).await?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailTemplate {
    OtpVerification,
    PasswordReset,
    PaymentConfirmation,
    TrialStarted,
    ExpiryReminder,
    PaymentFailed,
    SubscriptionExpired,
    SubscriptionCanceled,
    RenewalLowBalance,
}

impl EmailTemplate {
    /// Every email of api.md ("Emails").
    pub const ALL: [EmailTemplate; 9] = [
        EmailTemplate::OtpVerification,
        EmailTemplate::PasswordReset,
        EmailTemplate::PaymentConfirmation,
        EmailTemplate::TrialStarted,
        EmailTemplate::ExpiryReminder,
        EmailTemplate::PaymentFailed,
        EmailTemplate::SubscriptionExpired,
        EmailTemplate::SubscriptionCanceled,
        EmailTemplate::RenewalLowBalance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EmailTemplate::OtpVerification => "otp_verification",
            EmailTemplate::PasswordReset => "password_reset",
            EmailTemplate::PaymentConfirmation => "payment_confirmation",
            EmailTemplate::TrialStarted => "trial_started",
            EmailTemplate::ExpiryReminder => "expiry_reminder",
            EmailTemplate::PaymentFailed => "payment_failed",
            EmailTemplate::SubscriptionExpired => "subscription_expired",
            EmailTemplate::SubscriptionCanceled => "subscription_canceled",
            EmailTemplate::RenewalLowBalance => "renewal_low_balance",
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
    /// An email that is useless after this (a one-time code past its expiry) is dropped
    /// instead of sent late.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<DateTime<Utc>>,
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
            .field("not_after", &self.not_after)
            .finish()
    }
}

#[async_trait]
pub trait EmailQueue: Send + Sync {
    async fn enqueue(&self, job: &EmailJob) -> Result<(), InfraError>;
    /// Hands over an outbox entry. True when the queue now holds it durably and the caller
    /// removes it from the outbox; false when the queue removes it itself once delivered
    /// (a queue that a crash would empty).
    async fn enqueue_entry(&self, entry: &OutboxEntry) -> Result<bool, InfraError> {
        self.enqueue(&entry.job).await.map(|()| true)
    }
    /// Resolves once every job handed over before the call is handled, for a queue that
    /// handles them in this process (so a long batch job holds a page or two of emails in
    /// memory, not all of them). The mark is placed at the call, so a caller may go on and
    /// await it later. A remote queue holds jobs durably once `enqueue` returns: nothing to
    /// wait for.
    fn settle(&self) -> futures::future::BoxFuture<'static, Result<(), InfraError>> {
        Box::pin(std::future::ready(Ok(())))
    }
    /// For the health endpoint.
    async fn ping(&self) -> Result<(), InfraError>;
}

/// An email ready to send: rendered, addressed.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    pub job_id: String,
    /// Which email this is (an SES tag, part of the `.eml` file name).
    pub template: EmailTemplate,
    pub to: Email,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl std::fmt::Debug for OutgoingEmail {
    // The bodies may hold a one-time code.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingEmail").field("job_id", &self.job_id).field("to", &self.to).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SendFailure {
    /// The provider refused this message for good (a rejected or invalid address): record it,
    /// do not retry.
    #[error("rejected: {0}")]
    Rejected(String),
    /// Worth another try later (throttling, an outage, a configuration being fixed).
    #[error(transparent)]
    Transient(#[from] InfraError),
}

/// Sends one email: SES v2 on AWS, `.eml` files locally. Returns the provider's message id.
#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, SendFailure>;
}

/// What the email log knows about a job when a sender takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendClaim {
    /// Ours to send now.
    Claimed,
    /// Sent before (a redelivery): send nothing.
    Sent { message_id: String },
    /// Refused for good before: send nothing.
    Rejected { reason: String },
    /// Another sender holds it (until its lease runs out).
    InFlight,
}

/// Which jobs were sent, so a redelivered message sends nothing twice.
#[async_trait]
pub trait EmailLog: Send + Sync {
    /// Takes the job for sending until `lease_until`, unless it was sent or rejected, or
    /// another live lease holds it: one that ends after `now`. (A sender that takes over the
    /// leases of a dead process passes a later `now`; see `notify::Sender`.) Records are kept
    /// until `keep_until`.
    async fn claim_send(
        &self,
        job_id: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        keep_until: DateTime<Utc>,
    ) -> Result<SendClaim, InfraError>;
    async fn mark_sent(&self, job_id: &str, message_id: &str) -> Result<(), InfraError>;
    /// `claim_send` for every job of a batch, answers in the same order; one write where the
    /// store can (the embedded one: one transaction for the lot).
    async fn claim_sends(
        &self,
        job_ids: &[&str],
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        keep_until: DateTime<Utc>,
    ) -> Result<Vec<SendClaim>, InfraError> {
        let mut claims = Vec::with_capacity(job_ids.len());
        for id in job_ids {
            claims.push(self.claim_send(id, now, lease_until, keep_until).await?);
        }
        Ok(claims)
    }
    /// `mark_sent` for every `(job id, message id)`.
    async fn mark_sent_many(&self, sent: &[(&str, &str)]) -> Result<(), InfraError> {
        for (id, message_id) in sent {
            self.mark_sent(id, message_id).await?;
        }
        Ok(())
    }
    /// Records that the provider refused the job's address, and why.
    async fn mark_rejected(&self, job_id: &str, to: &Email, reason: &str) -> Result<(), InfraError>;
    /// Gives the job back (the send failed and will be retried).
    async fn release_send(&self, job_id: &str) -> Result<(), InfraError>;
}

/// Where a message that can never be sent is parked for people to look at: the email
/// queue's dead-letter queue.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    async fn park(&self, body: &str, reason: &str) -> Result<(), InfraError>;
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
