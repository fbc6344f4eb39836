use std::sync::Arc;

use crate::ports::*;
use crate::security::password_hash::PasswordHasherService;
use crate::security::secrets::{OtpPepper, TokenKeys};

/// Every store port, usually all served by one adapter object.
#[derive(Clone)]
pub struct Stores {
    pub users: Arc<dyn UserStore>,
    pub otps: Arc<dyn OtpStore>,
    pub throttle: Arc<dyn ThrottleStore>,
    pub refresh_tokens: Arc<dyn RefreshTokenStore>,
    pub catalog: Arc<dyn CatalogStore>,
    pub subscriptions: Arc<dyn SubscriptionStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub outbox: Arc<dyn OutboxStore>,
    pub email_log: Arc<dyn EmailLog>,
    pub lifecycle: Arc<dyn LifecycleStore>,
    /// The embedded store's stand-in for DynamoDB's TTL; None where the store expires
    /// records by itself.
    pub housekeeping: Option<Arc<dyn Housekeeping>>,
    pub ping: Arc<dyn StorePing>,
}

impl Stores {
    pub fn from_adapter<S>(adapter: Arc<S>) -> Self
    where
        S: UserStore
            + OtpStore
            + ThrottleStore
            + RefreshTokenStore
            + CatalogStore
            + SubscriptionStore
            + IdempotencyStore
            + OutboxStore
            + EmailLog
            + LifecycleStore
            + StorePing
            + 'static,
    {
        Stores {
            users: adapter.clone(),
            otps: adapter.clone(),
            throttle: adapter.clone(),
            refresh_tokens: adapter.clone(),
            // Catalog pages read the product list from process memory (see the module).
            catalog: Arc::new(crate::adapters::cached_catalog::CachedCatalog::new(
                adapter.clone(),
                crate::adapters::cached_catalog::CATALOG_TTL,
            )),
            subscriptions: adapter.clone(),
            idempotency: adapter.clone(),
            outbox: adapter.clone(),
            email_log: adapter.clone(),
            lifecycle: adapter.clone(),
            housekeeping: None,
            ping: adapter,
        }
    }

    /// The stores of an adapter that does not expire records by itself (SQLite).
    pub fn with_housekeeping(mut self, h: Arc<dyn Housekeeping>) -> Self {
        self.housekeeping = Some(h);
        self
    }
}

/// Everything a use case may touch. Built once per process (outside the Lambda handler).
pub struct AppContext {
    pub stores: Stores,
    pub email_queue: Arc<dyn EmailQueue>,
    pub clock: Arc<dyn Clock>,
    pub passwords: PasswordHasherService,
    pub keys: TokenKeys,
    pub otp_pepper: Option<OtpPepper>,
    /// resend-otp and forgot-password answer no sooner than this after admitting a send, so
    /// the work done only for an existing account (a store write and a queue send) does not
    /// show in their timing.
    pub enumeration_floor: std::time::Duration,
    /// Machine translation of catalog text (product names and descriptions) into the
    /// request's language, behind the L1/L2 caches. Serves the source text when off.
    pub translations: Arc<crate::i18n::TranslationService>,
}

impl AppContext {
    /// The pepper, or a clear error in a function deployed without it.
    pub fn pepper(&self) -> anyhow::Result<&[u8]> {
        self.otp_pepper
            .as_ref()
            .map(OtpPepper::expose)
            .ok_or_else(|| anyhow::anyhow!("this function was deployed without OTP_PEPPER"))
    }
}
