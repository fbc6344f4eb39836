//! Trials, purchases, cancellation and the STARK_PAY wallet. Each use case reads the user's
//! state, decides, and commits every write of the change at once with its conditions; when a
//! concurrent request wins a condition, it reads again and decides again, so races end in
//! the same answers as the same requests one after another.

use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

use crate::app::retry::{LockTimeout, RetryPolicy};
use crate::app::{outbox, AppContext};
use crate::domain::{
    upgrade_charge, Email, Money, Payment, Plan, PlanId, Product, ProductId, SubStatus, Subscription, TxnKind, User,
    WalletTxn,
};
use crate::ports::{
    Commit, CommitError, Conflict, EmailJob, EmailTemplate, IdempotencyCompletion, InfraError, LiveSlot, StoredResponse,
};

pub const PAYMENT_METHOD: &str = "STARK_PAY";

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("unauthorized")]
    Unauthorized,
    #[error("email not verified")]
    EmailNotVerified,
    #[error("product not found")]
    ProductNotFound,
    #[error("plan not found")]
    PlanNotFound,
    #[error("trial already used")]
    TrialUsed,
    #[error("already subscribed")]
    AlreadySubscribed,
    #[error("trial not available")]
    TrialNotAvailable,
    #[error("insufficient funds")]
    InsufficientFunds,
    #[error("subscription not found")]
    SubscriptionNotFound,
    #[error("user not found")]
    UserNotFound,
    #[error("the balance would pass its limit")]
    BalanceLimit,
    /// The Idempotency-Key claim was taken over while the request ran.
    #[error("request in progress")]
    RequestInProgress,
    /// Lost races for the whole retry budget: try again later (409 `lock_timeout`).
    #[error(transparent)]
    LockTimeout(#[from] LockTimeout),
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// A verified user, and an active product with the plan asked for.
async fn buyer(ctx: &AppContext, user_id: &str) -> Result<User, BillingError> {
    let user = ctx.stores.users.user_by_id(user_id).await?.ok_or(BillingError::Unauthorized)?;
    if !user.email_verified {
        return Err(BillingError::EmailNotVerified);
    }
    Ok(user)
}

async fn product(ctx: &AppContext, id: &ProductId) -> Result<Product, BillingError> {
    crate::app::catalog::active_product(ctx, id).await?.ok_or(BillingError::ProductNotFound)
}

pub(crate) fn email_job(user: &User, template: EmailTemplate, vars: Vec<(&str, String)>) -> EmailJob {
    let mut all = BTreeMap::from([("username".to_string(), user.username.as_str().to_string())]);
    all.extend(vars.into_iter().map(|(k, v)| (k.to_string(), v)));
    EmailJob {
        job_id: uuid::Uuid::now_v7().to_string(),
        template,
        to: user.email.clone(),
        locale: user.locale.clone(),
        vars: all,
        not_after: None,
    }
}

pub(crate) fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// Commits and relays the commit's emails. A lost condition comes back as `Ok(Err(..))`.
async fn commit(ctx: &AppContext, c: &Commit) -> Result<Result<(), Conflict>, BillingError> {
    match ctx.stores.subscriptions.commit(c).await {
        Ok(()) => {
            outbox::relay(ctx, &c.outbox).await;
            Ok(Ok(()))
        }
        Err(CommitError::Conflict(conflict)) => Ok(Err(conflict)),
        Err(CommitError::Infra(e)) => Err(BillingError::Infra(e)),
    }
}

pub async fn start_trial(
    ctx: &AppContext,
    user_id: &str,
    product_id: &ProductId,
    plan_id: Option<&PlanId>,
) -> Result<Subscription, BillingError> {
    let user = buyer(ctx, user_id).await?;
    let product = product(ctx, product_id).await?;
    let plan = match plan_id {
        Some(id) => product.plan(id).ok_or(BillingError::PlanNotFound)?,
        // The cheapest plan that offers a trial.
        None => product.plans.iter().find(|p| p.trial_days > 0).ok_or(BillingError::TrialNotAvailable)?,
    };
    if plan.trial_days == 0 {
        return Err(BillingError::TrialNotAvailable);
    }
    let mut races = RetryPolicy::RACES.start("start-trial");
    loop {
        let state = ctx.stores.subscriptions.account_state(user_id, product_id).await?;
        if state.trial_used {
            return Err(BillingError::TrialUsed);
        }
        if state.live.is_some() {
            return Err(BillingError::AlreadySubscribed);
        }
        let now = ctx.clock.now();
        let end = now + Duration::days(i64::from(plan.trial_days));
        let sub = Subscription {
            subscription_id: uuid::Uuid::now_v7().to_string(),
            user_id: user.id.clone(),
            user_email: user.email.clone(),
            product_id: product.product_id.clone(),
            plan_id: plan.plan_id.clone(),
            status: SubStatus::Trialing,
            current_period_start: now,
            current_period_end: end,
            anchor: now,
            period_index: 0,
            // A trial ends by itself; buying a plan converts it.
            auto_renew: false,
            scheduled_plan_id: None,
            marks: Default::default(),
            created_at: now,
            updated_at: now,
            version: 1,
        };
        let job = email_job(
            &user,
            EmailTemplate::TrialStarted,
            vec![
                ("product", product.name.clone()),
                ("plan", plan.name.clone()),
                ("days", plan.trial_days.to_string()),
                ("period_end", day(end)),
            ],
        );
        let c = Commit {
            subscription: Some((sub.clone(), None)),
            live: Some(LiveSlot::Claim),
            trial: true,
            outbox: vec![outbox::entry(ctx, job)],
            ..Commit::default()
        };
        match commit(ctx, &c).await? {
            Ok(()) => return Ok(sub),
            Err(Conflict::TrialUsed) => return Err(BillingError::TrialUsed),
            // Someone else took the slot: read again and answer as they left it.
            Err(_) => races.lost().await?,
        }
    }
}

/// The claimed Idempotency-Key a purchase completes in its own commit.
#[derive(Debug, Clone)]
pub struct IdempotencyTicket {
    pub key: String,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PurchaseOutcome {
    /// A new subscription, a trial converted, a lapsed one paid again, or an upgrade.
    Charged { subscription: Subscription, payment: Payment },
    /// A cheaper (or equal) plan, set to take effect at renewal. Nothing is charged.
    Scheduled { subscription: Subscription },
}

/// What one purchase would do, decided from the state read.
struct Decision {
    sub: Subscription,
    expected: Option<u64>,
    charge: Option<i64>,
}

fn decide(
    user: &User,
    product: &Product,
    plan: &Plan,
    live: Option<Subscription>,
    now: DateTime<Utc>,
) -> Result<Decision, BillingError> {
    let fresh_period = |sub: &mut Subscription| {
        sub.plan_id = plan.plan_id.clone();
        sub.status = SubStatus::Active;
        sub.current_period_start = now;
        sub.anchor = now;
        sub.period_index = 0;
        sub.current_period_end = plan.period.end_after(now, 1);
        sub.auto_renew = true;
        sub.scheduled_plan_id = None;
        // A new period: whatever the lifecycle did to the old one (dunning, reminders) is over.
        sub.marks = Default::default();
        sub.updated_at = now;
    };
    let Some(mut sub) = live else {
        let mut sub = Subscription {
            subscription_id: uuid::Uuid::now_v7().to_string(),
            user_id: user.id.clone(),
            user_email: user.email.clone(),
            product_id: product.product_id.clone(),
            plan_id: plan.plan_id.clone(),
            status: SubStatus::Active,
            current_period_start: now,
            current_period_end: now,
            anchor: now,
            period_index: 0,
            auto_renew: true,
            scheduled_plan_id: None,
            marks: Default::default(),
            created_at: now,
            updated_at: now,
            version: 1,
        };
        fresh_period(&mut sub);
        return Ok(Decision { sub, expected: None, charge: Some(plan.price.amount_minor) });
    };
    if !sub.status.is_live() {
        // The slot is freed in the same commit that ends a subscription.
        return Err(BillingError::Infra(anyhow::anyhow!(
            "the live slot of {} holds ended subscription {}",
            sub.product_id,
            sub.subscription_id
        )));
    }
    let expected = Some(sub.version);
    sub.version += 1;
    match sub.status {
        // The trial ends, or a lapsed payment is made good: a paid period starts now.
        SubStatus::Trialing | SubStatus::PastDue => {
            fresh_period(&mut sub);
            Ok(Decision { sub, expected, charge: Some(plan.price.amount_minor) })
        }
        _ if sub.plan_id == plan.plan_id => Err(BillingError::AlreadySubscribed),
        _ => {
            let old_price = product.plan(&sub.plan_id).map_or(0, |p| p.price.amount_minor);
            if plan.price.amount_minor > old_price {
                let charge = upgrade_charge(
                    plan.price.amount_minor,
                    old_price,
                    sub.current_period_start,
                    sub.current_period_end,
                    now,
                );
                fresh_period(&mut sub);
                Ok(Decision { sub, expected, charge: Some(charge) })
            } else {
                sub.scheduled_plan_id = Some(plan.plan_id.clone());
                // Buying the cheaper plan means renewing onto it, even after a cancel at
                // period end.
                sub.auto_renew = true;
                sub.updated_at = now;
                Ok(Decision { sub, expected, charge: None })
            }
        }
    }
}

/// Buys `plan_id` of `product_id` with STARK_PAY. `respond` renders the answer to keep for
/// the Idempotency-Key, which is completed in the purchase's own commit.
pub async fn purchase(
    ctx: &AppContext,
    user_id: &str,
    product_id: &ProductId,
    plan_id: &PlanId,
    ticket: Option<&IdempotencyTicket>,
    respond: &(dyn Fn(&PurchaseOutcome) -> StoredResponse + Send + Sync),
) -> Result<PurchaseOutcome, BillingError> {
    let user = buyer(ctx, user_id).await?;
    let product = product(ctx, product_id).await?;
    let plan = product.plan(plan_id).ok_or(BillingError::PlanNotFound)?;
    let mut races = RetryPolicy::RACES.start("purchase");
    loop {
        let state = ctx.stores.subscriptions.account_state(user_id, product_id).await?;
        let now = ctx.clock.now();
        let new = state.live.is_none();
        let d = decide(&user, &product, plan, state.live, now)?;
        let mut c = Commit { live: new.then_some(LiveSlot::Claim), ..Commit::default() };
        let outcome = match d.charge {
            Some(amount) => {
                if amount > state.balance_minor {
                    return Err(BillingError::InsufficientFunds);
                }
                let payment = Payment {
                    payment_id: uuid::Uuid::now_v7().to_string(),
                    user_id: user.id.clone(),
                    subscription_id: d.sub.subscription_id.clone(),
                    amount: Money { amount_minor: amount, currency: plan.price.currency },
                    method: PAYMENT_METHOD.to_string(),
                    created_at: now,
                };
                // A free plan, or an upgrade the credit covers, moves no money.
                if amount > 0 {
                    c.wallet = Some(WalletTxn {
                        transaction_id: payment.payment_id.clone(),
                        user_id: user.id.clone(),
                        kind: TxnKind::Debit,
                        amount: payment.amount,
                        reference: format!("{} {}", product.product_id, plan.plan_id),
                        created_at: now,
                    });
                }
                let job = email_job(
                    &user,
                    EmailTemplate::PaymentConfirmation,
                    vec![
                        ("product", product.name.clone()),
                        ("plan", plan.name.clone()),
                        ("amount_minor", payment.amount.amount_minor.to_string()),
                        ("currency", payment.amount.currency.as_str().to_string()),
                        ("period_end", day(d.sub.current_period_end)),
                        ("payment_id", payment.payment_id.clone()),
                    ],
                );
                c.outbox.push(outbox::entry(ctx, job));
                c.payment = Some(payment.clone());
                PurchaseOutcome::Charged { subscription: d.sub.clone(), payment }
            }
            None => PurchaseOutcome::Scheduled { subscription: d.sub.clone() },
        };
        c.subscription = Some((d.sub, d.expected));
        if let Some(t) = ticket {
            let done =
                IdempotencyCompletion { key: t.key.clone(), token: t.token.clone(), response: respond(&outcome) };
            c.idempotency = Some((user.id.clone(), done));
        }
        match commit(ctx, &c).await? {
            Ok(()) => return Ok(outcome),
            Err(Conflict::Idempotency) => return Err(BillingError::RequestInProgress),
            // Another request changed the subscription or spent the money: decide again.
            Err(_) => races.lost().await?,
        }
    }
}

/// Cancels at period end (auto-renew off, access kept) or now (`canceled`, access ends).
/// Someone else's subscription is not found. Cancelling one that has ended changes nothing.
pub async fn cancel(
    ctx: &AppContext,
    user_id: &str,
    subscription_id: &str,
    at_period_end: bool,
) -> Result<Subscription, BillingError> {
    let mut races = RetryPolicy::RACES.start("cancel");
    loop {
        let mut sub = ctx
            .stores
            .subscriptions
            .subscription(user_id, subscription_id)
            .await?
            .ok_or(BillingError::SubscriptionNotFound)?;
        if !sub.status.is_live() || (at_period_end && !sub.auto_renew && sub.scheduled_plan_id.is_none()) {
            return Ok(sub);
        }
        let now = ctx.clock.now();
        let expected = Some(sub.version);
        sub.version += 1;
        sub.updated_at = now;
        sub.auto_renew = false;
        sub.scheduled_plan_id = None;
        let mut c = Commit::default();
        if !at_period_end {
            sub.status = SubStatus::Canceled;
            sub.current_period_end = sub.current_period_end.min(now);
            c.live = Some(LiveSlot::Release);
        }
        c.outbox = canceled_email(ctx, &sub).await?;
        c.subscription = Some((sub.clone(), expected));
        match commit(ctx, &c).await? {
            Ok(()) => return Ok(sub),
            Err(_) => races.lost().await?,
        }
    }
}

/// The subscription_canceled email, for the subscriber (none if the account is gone).
async fn canceled_email(ctx: &AppContext, sub: &Subscription) -> Result<Vec<crate::ports::OutboxEntry>, BillingError> {
    let Some(user) = ctx.stores.users.user_by_id(&sub.user_id).await? else { return Ok(Vec::new()) };
    let product = ctx.stores.catalog.product(&sub.product_id).await?;
    let (product_name, plan_name) = match &product {
        Some(p) => (p.name.clone(), p.plan(&sub.plan_id).map_or(sub.plan_id.to_string(), |pl| pl.name.clone())),
        None => (sub.product_id.to_string(), sub.plan_id.to_string()),
    };
    let job = email_job(
        &user,
        EmailTemplate::SubscriptionCanceled,
        vec![("product", product_name), ("plan", plan_name), ("period_end", day(sub.current_period_end))],
    );
    Ok(vec![outbox::entry(ctx, job)])
}

/// Adds money to a user's wallet (admin). Returns the new balance.
pub async fn credit(
    ctx: &AppContext,
    email: &Email,
    amount_minor: i64,
    reference: Option<String>,
) -> Result<Money, BillingError> {
    let user = ctx.stores.users.user_by_email(email).await?.ok_or(BillingError::UserNotFound)?;
    let txn = WalletTxn {
        transaction_id: uuid::Uuid::now_v7().to_string(),
        user_id: user.id.clone(),
        kind: TxnKind::Credit,
        amount: Money::usd(amount_minor),
        reference: reference.unwrap_or_else(|| "admin credit".to_string()),
        created_at: ctx.clock.now(),
    };
    let c = Commit { wallet: Some(txn), ..Commit::default() };
    let mut races = RetryPolicy::RACES.start("credit");
    loop {
        match commit(ctx, &c).await? {
            Ok(()) => break,
            Err(Conflict::Funds) => return Err(BillingError::BalanceLimit),
            // Concurrent writes to the same wallet (a DynamoDB transaction conflict): the
            // same credit is still right, so it is simply tried again.
            Err(_) => races.lost().await?,
        }
    }
    let (balance, _) = ctx.stores.subscriptions.wallet(&user.id, 0).await?;
    Ok(Money::usd(balance))
}
