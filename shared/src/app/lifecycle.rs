//! The daily lifecycle (api.md, "Lifecycle (daily)"): every live subscription due by `now` is
//! moved on, one step at a time, each step one atomic commit with its conditions: the
//! subscription on its version, the wallet debit on the balance, the payment, the wallet
//! transaction and the email job. So a rerun, two runs at once or a run killed anywhere
//! charge nothing twice and send nothing twice: whatever a commit did moved the
//! subscription's version and its due time, and a loser reads again and decides again.
//!
//! Due subscriptions come from the due index shard by shard (`LifecycleStore`), a page at a
//! time, so memory is bounded by the page, whatever the count. `run_lifecycle` does every
//! shard in this process (`stark lifecycle run`, `stark serve`); on AWS the `lifecycle`
//! Lambda fans the shards out to `lifecycle-worker`, which calls `run_shard`.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::stream::{self, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::app::billing::{day, email_job, PAYMENT_METHOD};
use crate::app::retry::RetryPolicy;
use crate::app::{outbox, AppContext};
use crate::domain::lifecycle::{due_day, Due};
use crate::domain::{Money, Payment, Plan, Product, ProductId, SubStatus, Subscription, TxnKind, User, WalletTxn};
use crate::ports::{
    Commit, CommitError, Conflict, DeadLetters, DueCursor, EmailTemplate, InfraError, LifecycleRun, LiveSlot,
    OutboxEntry, RunCounts, ShardMessage, ShardQueue,
};

/// Due subscriptions read per page, and handled at once within a page.
const PAGE: usize = 100;
const CONCURRENCY: usize = 8;
/// A run reads at least this many days back, whatever the watermark says: a run with an
/// earlier `--now` than the last one, or a first run, still finds what is due.
pub const LOOKBACK_DAYS: i64 = 7;
/// Expired records the embedded store deletes per statement.
const PURGE_BATCH: usize = 1000;

/// How a run reports what it does, for a progress bar or a dry run's listing.
pub trait RunObserver: Send + Sync {
    /// One subscription handled (all of its steps).
    fn subscription_done(&self, _counts: &RunCounts) {}
    fn shard_done(&self, _shard: u32) {}
    /// A dry run's step, as one line.
    fn planned(&self, _line: &str) {}
}

/// Observes nothing.
pub struct Quiet;
impl RunObserver for Quiet {}

pub struct RunOptions<'a> {
    /// Decide and report, change nothing.
    pub dry_run: bool,
    pub observer: &'a dyn RunObserver,
    /// Stop taking new pages after this (a worker near its timeout): the shard is then
    /// incomplete, and a later call takes it up where its watermark says.
    pub deadline: Option<tokio::time::Instant>,
}

impl Default for RunOptions<'_> {
    fn default() -> Self {
        RunOptions { dry_run: false, observer: &Quiet, deadline: None }
    }
}

/// A run id: the run's `now` first, so ids sort by it, then something unique.
pub fn run_id(now: DateTime<Utc>, unique: &str) -> String {
    let tail: String = unique.chars().filter(|c| c.is_ascii_alphanumeric()).take(12).collect();
    format!("{}-{tail}", now.format("%Y%m%dT%H%M%SZ"))
}

/// The record of a run about to start.
pub fn new_run(run_id: String, now: DateTime<Utc>, started_at: DateTime<Utc>, shards: u32) -> LifecycleRun {
    LifecycleRun { run_id, now, started_at, finished_at: None, shards, shards_done: 0, counts: RunCounts::default() }
}

/// Every shard, in this process, then the embedded store's expiry. Returns the run as
/// recorded (a dry run records nothing and returns what it would have done).
pub async fn run_lifecycle(
    ctx: &AppContext,
    now: DateTime<Utc>,
    opts: &RunOptions<'_>,
) -> Result<LifecycleRun, InfraError> {
    let shards = ctx.stores.lifecycle.due_shards();
    let mut run = new_run(run_id(now, &uuid::Uuid::new_v4().simple().to_string()), now, ctx.clock.now(), shards);
    if !opts.dry_run {
        ctx.stores.lifecycle.start_run(&run).await?;
    }
    let mut failure = None;
    for shard in 0..shards {
        match run_shard(ctx, &run.run_id, now, shard, opts).await {
            Ok(done) => run.counts.add(&done.counts),
            // The other shards still run; this one is taken up again by the next run.
            Err(e) => {
                tracing::error!(shard, error = %crate::logs::chain(&e), "lifecycle shard failed");
                failure.get_or_insert(e);
            }
        }
        opts.observer.shard_done(shard);
    }
    if !opts.dry_run {
        if let Some(h) = &ctx.stores.housekeeping {
            // The wall clock, not the run's `now`: a run for a later `--now` must not delete
            // what is still valid.
            let purged = h.purge_expired(ctx.clock.now(), PURGE_BATCH).await?;
            tracing::info!(purged, "expired records deleted");
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if !opts.dry_run {
        if let Some(recorded) = ctx.stores.lifecycle.run(&run.run_id).await? {
            return Ok(recorded);
        }
    }
    run.finished_at = Some(ctx.clock.now());
    run.shards_done = shards;
    Ok(run)
}

/// The scheduled run on AWS: records the run and sends one message per shard. `unique` is
/// the schedule event's id, so a retried invocation makes the same run id and its shards'
/// counts are added once.
pub async fn fan_out(
    ctx: &AppContext,
    queue: &dyn ShardQueue,
    now: DateTime<Utc>,
    unique: &str,
) -> Result<LifecycleRun, InfraError> {
    let shards = ctx.stores.lifecycle.due_shards();
    let run = new_run(run_id(now, unique), now, ctx.clock.now(), shards);
    ctx.stores.lifecycle.start_run(&run).await?;
    let messages: Vec<ShardMessage> =
        (0..shards).map(|shard| ShardMessage { run_id: run.run_id.clone(), now, shard }).collect();
    queue.send_shards(&messages).await?;
    Ok(run)
}

/// What a worker made of one shard message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardOutcome {
    Done(RunCounts),
    /// The deadline came first; the rest was handed on as a new message.
    HandedOn(RunCounts),
    /// Not a shard message of ours: parked with the reason, never retried.
    Parked(String),
}

/// One message of the lifecycle queue (`lifecycle-worker`). An error means "retry it later";
/// a message that can never work is parked in `dead` at once, so it is never a crash loop.
pub async fn work_shard(
    ctx: &AppContext,
    queue: &dyn ShardQueue,
    dead: &dyn DeadLetters,
    body: &str,
    deadline: Option<tokio::time::Instant>,
) -> Result<ShardOutcome, InfraError> {
    let shards = ctx.stores.lifecycle.due_shards();
    let message = match serde_json::from_str::<ShardMessage>(body) {
        Ok(m) if m.shard < shards => m,
        Ok(m) => return park(dead, body, format!("shard {} is not below the shard count {shards}", m.shard)).await,
        Err(e) => return park(dead, body, format!("not a lifecycle shard message: {e}")).await,
    };
    let opts = RunOptions { deadline, ..RunOptions::default() };
    let done = run_shard(ctx, &message.run_id, message.now, message.shard, &opts).await?;
    if done.complete {
        return Ok(ShardOutcome::Done(done.counts));
    }
    // Not an error: a large shard simply takes more than one invocation. What is done is
    // committed; the next message starts from the shard's watermark.
    queue.send_shards(std::slice::from_ref(&message)).await?;
    Ok(ShardOutcome::HandedOn(done.counts))
}

async fn park(dead: &dyn DeadLetters, body: &str, reason: String) -> Result<ShardOutcome, InfraError> {
    tracing::error!(%reason, "lifecycle message parked in the dead-letter queue");
    dead.park(body, &reason).await?;
    Ok(ShardOutcome::Parked(reason))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardDone {
    pub counts: RunCounts,
    /// False when the deadline came first: what is left is still due.
    pub complete: bool,
}

/// One shard of a run: everything in it due by `now`, page by page. The shard's watermark
/// moves to the earliest day that may still hold work, and the counts are added to the run.
pub async fn run_shard(
    ctx: &AppContext,
    run_id: &str,
    now: DateTime<Utc>,
    shard: u32,
    opts: &RunOptions<'_>,
) -> Result<ShardDone, InfraError> {
    let lifecycle = &ctx.stores.lifecycle;
    let floor = due_day(now) - Duration::days(LOOKBACK_DAYS);
    let from = lifecycle.watermark(shard).await?.map_or(floor, |w| w.min(floor));
    let products = ProductCache::default();
    let mut counts = RunCounts::default();
    let mut earliest_left: Option<NaiveDate> = None;
    let mut after: Option<DueCursor> = None;
    let mut settling: Option<futures::future::BoxFuture<'static, Result<(), InfraError>>> = None;
    let mut complete = true;
    loop {
        // At least one page per call, so a worker handed a shard near its deadline still
        // makes progress and the hand-on can never loop.
        if after.is_some() && opts.deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            complete = false;
            break;
        }
        let page = lifecycle.due_subscriptions(shard, from, now, after.as_ref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(DueCursor {
            due_at: last.next_due().unwrap_or(last.current_period_end),
            subscription_id: last.subscription_id.clone(),
        });
        let full = page.len() == PAGE;
        // The page's users in one read: their address, name and language for the emails.
        let mut ids: Vec<String> = page.iter().map(|s| s.user_id.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        let users: HashMap<String, User> =
            ctx.stores.users.users_by_id(&ids).await?.into_iter().map(|u| (u.id.clone(), u)).collect();
        let handled: Vec<Result<Handled, InfraError>> = stream::iter(page)
            .map(|sub| {
                let user = users.get(&sub.user_id);
                handle(ctx, sub, user, now, opts, &products)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for h in handled {
            let h = h?;
            counts.add(&h.counts);
            if let Some(d) = h.left_on {
                earliest_left = Some(earliest_left.map_or(d, |e| e.min(d)));
            }
            opts.observer.subscription_done(&h.counts);
        }
        // The emails of the page before are written before the next page is read, while
        // this page's are being written: memory stays bounded by two pages even with the
        // in-process queue, and its worker and these commits overlap.
        if !opts.dry_run {
            if let Some(before) = settling.replace(ctx.email_queue.settle()) {
                before.await?;
            }
        }
        if !full {
            break;
        }
    }
    if let Some(last) = settling {
        last.await?;
    }
    if !complete {
        return Ok(ShardDone { counts, complete });
    }
    if !opts.dry_run {
        let mark = earliest_left.map_or(due_day(now), |d| d.min(due_day(now)));
        lifecycle.set_watermark(shard, mark).await?;
        lifecycle.finish_shard(run_id, shard, &counts, ctx.clock.now()).await?;
    }
    Ok(ShardDone { counts, complete: true })
}

/// The products a run has read, each once.
#[derive(Default)]
struct ProductCache(Mutex<HashMap<ProductId, Option<Arc<Product>>>>);

impl ProductCache {
    async fn get(&self, ctx: &AppContext, id: &ProductId) -> Result<Option<Arc<Product>>, InfraError> {
        if let Some(p) = self.0.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
            return Ok(p.clone());
        }
        // Archived products keep renewing their subscribers: archiving stops new sales only.
        let p = ctx.stores.catalog.product(id).await?.map(Arc::new);
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), p.clone());
        Ok(p)
    }
}

struct Handled {
    counts: RunCounts,
    /// Left for the next run (kept losing, or its plan is gone): the day it is due.
    left_on: Option<NaiveDate>,
}

/// One step: the commit, the subscription it leaves, and what it counts.
struct Step {
    commit: Commit,
    next: Subscription,
    counts: RunCounts,
    /// A charge, whose debit may fail on the balance.
    charge: bool,
    line: String,
}

/// Moves one subscription through everything due for it by `now`: a subscription several
/// periods behind renews period by period, each a charge and an email, until it is current
/// or goes `past_due`.
async fn handle(
    ctx: &AppContext,
    indexed: Subscription,
    user: Option<&User>,
    now: DateTime<Utc>,
    opts: &RunOptions<'_>,
    products: &ProductCache,
) -> Result<Handled, InfraError> {
    // What the index gave may be stale (DynamoDB's index is eventually consistent): the
    // commit's version condition catches that, and the loser reads it again.
    let mut sub = indexed;
    let mut counts = RunCounts::default();
    // The shared policy for lost races; past its budget the step is left for the next run
    // (never an error that stops this one).
    let mut races = RetryPolicy::RACES.start("lifecycle step");
    // Set when a charge failed on the balance: decide the failure next.
    let mut short = false;
    // A dry run charges nothing, so it follows the balance itself.
    let mut dry_balance: Option<i64> = None;
    loop {
        let Some(due) = sub.due_at(now) else { return Ok(Handled { counts, left_on: None }) };
        let left = || due_day(sub.next_due().unwrap_or(now));
        let Some(product) = products.get(ctx, &sub.product_id).await? else {
            tracing::error!(subscription_id = %sub.subscription_id, product_id = %sub.product_id, "due subscription of a product that does not exist");
            return Ok(Handled { counts: left_one(counts), left_on: Some(left()) });
        };
        if opts.dry_run && matches!(due, Due::Renewal | Due::Retry { .. }) && dry_balance.is_none() {
            dry_balance = Some(ctx.stores.subscriptions.wallet(&sub.user_id, 0).await?.0);
        }
        let Some(step) = decide(ctx, &sub, user, due, &product, now, short, dry_balance).await? else {
            tracing::error!(subscription_id = %sub.subscription_id, plan_id = %sub.renewal_plan_id(), "due subscription's plan does not exist");
            return Ok(Handled { counts: left_one(counts), left_on: Some(left()) });
        };
        if opts.dry_run {
            opts.observer.planned(&step.line);
            if let (Some(b), Some(w)) = (dry_balance.as_mut(), &step.commit.wallet) {
                *b -= w.amount.amount_minor;
            }
            counts.add(&step.counts);
            sub = step.next;
            continue;
        }
        match ctx.stores.subscriptions.commit(&step.commit).await {
            Ok(()) => {
                outbox::relay(ctx, &step.commit.outbox).await;
                counts.add(&step.counts);
                sub = step.next;
                short = false;
                races = RetryPolicy::RACES.start("lifecycle step");
            }
            Err(CommitError::Conflict(Conflict::Funds)) if step.charge => short = true,
            Err(CommitError::Conflict(_)) => {
                if races.lost().await.is_err() {
                    tracing::warn!(subscription_id = %sub.subscription_id, "lifecycle step kept losing races; left for the next run");
                    return Ok(Handled { counts: left_one(counts), left_on: Some(left()) });
                }
                short = false;
                match ctx.stores.subscriptions.subscription(&sub.user_id, &sub.subscription_id).await? {
                    Some(fresh) => sub = fresh,
                    None => return Ok(Handled { counts, left_on: None }),
                }
            }
            Err(CommitError::Infra(e)) => return Err(e),
        }
    }
}

fn left_one(mut c: RunCounts) -> RunCounts {
    c.left += 1;
    c
}

/// The step `due` asks for, ready to commit. `short`: the last charge failed on the balance,
/// so this is the failure. None when the plan to charge does not exist.
#[allow(clippy::too_many_arguments)]
async fn decide(
    ctx: &AppContext,
    sub: &Subscription,
    user: Option<&User>,
    due: Due,
    product: &Product,
    now: DateTime<Utc>,
    short: bool,
    dry_balance: Option<i64>,
) -> Result<Option<Step>, InfraError> {
    let plan_name = |id| product.plan(id).map_or_else(|| id.to_string(), |p: &Plan| p.name.clone());
    let mut counts = RunCounts::default();
    let mut outbox: Vec<OutboxEntry> = Vec::new();
    // No user (an account deleted under its subscription): the step is taken, no email.
    let mut job = |template: EmailTemplate, vars: Vec<(&str, String)>, counts: &mut RunCounts| {
        if let Some(u) = user {
            outbox.push(outbox::entry(ctx, email_job(u, template, vars)));
            counts.emails += 1;
        }
    };
    let base =
        |next: &Subscription| Commit { subscription: Some((next.clone(), Some(sub.version))), ..Commit::default() };
    let step = match due {
        Due::TrialEnd | Due::End => {
            let next = sub.ended(now);
            if next.status == SubStatus::Expired {
                counts.expired += 1;
            } else {
                counts.canceled += 1;
            }
            job(
                EmailTemplate::SubscriptionExpired,
                vec![
                    ("product", product.name.clone()),
                    ("plan", plan_name(&sub.plan_id)),
                    ("period_end", day(sub.current_period_end)),
                ],
                &mut counts,
            );
            let line = format!("{} {} {}: {}", sub.subscription_id, sub.product_id, sub.plan_id, next.status.as_str());
            Step { commit: Commit { live: Some(LiveSlot::Release), ..base(&next) }, next, counts, charge: false, line }
        }
        Due::Renewal | Due::Retry { .. } => {
            let Some(plan) = product.plan(sub.renewal_plan_id()).or_else(|| product.plan(&sub.plan_id)) else {
                return Ok(None);
            };
            let price = plan.price;
            let short = short || dry_balance.is_some_and(|b| b < price.amount_minor);
            if short {
                failed_charge(sub, due, product, plan, now, &mut counts, &mut job)
            } else {
                let same_length = product.plan(&sub.plan_id).is_some_and(|old| old.period == plan.period);
                let next = sub.renewed(plan, same_length, now);
                let payment = Payment {
                    payment_id: uuid::Uuid::now_v7().to_string(),
                    user_id: sub.user_id.clone(),
                    subscription_id: sub.subscription_id.clone(),
                    amount: price,
                    method: PAYMENT_METHOD.to_string(),
                    created_at: now,
                };
                let period = format!("{}..{}", day(next.current_period_start), day(next.current_period_end));
                // A free plan moves no money; its renewal is still recorded as a payment of 0.
                let wallet = (price.amount_minor > 0).then(|| WalletTxn {
                    transaction_id: payment.payment_id.clone(),
                    user_id: sub.user_id.clone(),
                    kind: TxnKind::Debit,
                    amount: price,
                    reference: format!("renewal {} {} {} {period}", sub.product_id, plan.plan_id, sub.subscription_id),
                    created_at: now,
                });
                counts.renewed += 1;
                job(
                    EmailTemplate::PaymentConfirmation,
                    vec![
                        ("renewal", "true".to_string()),
                        ("product", product.name.clone()),
                        ("plan", plan.name.clone()),
                        ("amount_minor", price.amount_minor.to_string()),
                        ("currency", price.currency.as_str().to_string()),
                        ("period_start", day(next.current_period_start)),
                        ("period_end", day(next.current_period_end)),
                        ("payment_id", payment.payment_id.clone()),
                    ],
                    &mut counts,
                );
                let line = format!(
                    "{} {} {}: renew on {} for {} ({period})",
                    sub.subscription_id, sub.product_id, sub.plan_id, plan.plan_id, price
                );
                let commit = Commit { wallet, payment: Some(payment), ..base(&next) };
                Step { commit, next, counts, charge: price.amount_minor > 0, line }
            }
        }
        Due::Reminder { days_before } => {
            let next = sub.reminded(days_before, now);
            counts.reminders += 1;
            job(
                EmailTemplate::ExpiryReminder,
                vec![
                    ("product", product.name.clone()),
                    ("plan", plan_name(&sub.plan_id)),
                    ("period_end", day(sub.current_period_end)),
                    ("days", days_before.to_string()),
                ],
                &mut counts,
            );
            let line = format!(
                "{} {} {}: remind {days_before} day(s) before the end",
                sub.subscription_id, sub.product_id, sub.plan_id
            );
            Step { commit: base(&next), next, counts, charge: false, line }
        }
        Due::BalanceCheck => {
            let next = sub.balance_checked(now);
            let plan = product.plan(sub.renewal_plan_id()).or_else(|| product.plan(&sub.plan_id));
            let balance = ctx.stores.subscriptions.wallet(&sub.user_id, 0).await?.0;
            let mut line =
                format!("{} {} {}: balance enough for the renewal", sub.subscription_id, sub.product_id, sub.plan_id);
            if let Some(plan) = plan.filter(|p| balance < p.price.amount_minor) {
                counts.low_balance += 1;
                job(
                    EmailTemplate::RenewalLowBalance,
                    vec![
                        ("product", product.name.clone()),
                        ("plan", plan.name.clone()),
                        ("period_end", day(sub.current_period_end)),
                        ("amount_minor", plan.price.amount_minor.to_string()),
                        ("currency", plan.price.currency.as_str().to_string()),
                        ("balance_minor", balance.to_string()),
                    ],
                    &mut counts,
                );
                line = format!(
                    "{} {} {}: low balance ({} for {})",
                    sub.subscription_id,
                    sub.product_id,
                    sub.plan_id,
                    Money { amount_minor: balance, currency: plan.price.currency },
                    plan.price
                );
            }
            Step { commit: base(&next), next, counts, charge: false, line }
        }
    };
    let mut step = step;
    step.commit.outbox = outbox;
    Ok(Some(step))
}

/// The balance could not pay the renewal: the first failure makes it `past_due` and says so
/// once; a failed retry waits for the next, and the last one ends it.
fn failed_charge(
    sub: &Subscription,
    due: Due,
    product: &Product,
    plan: &Plan,
    now: DateTime<Utc>,
    counts: &mut RunCounts,
    job: &mut impl FnMut(EmailTemplate, Vec<(&str, String)>, &mut RunCounts),
) -> Step {
    let base =
        |next: &Subscription| Commit { subscription: Some((next.clone(), Some(sub.version))), ..Commit::default() };
    let head = format!("{} {} {}", sub.subscription_id, sub.product_id, sub.plan_id);
    match due {
        Due::Retry { attempt } => {
            let next = sub.retry_failed(now);
            if next.status == SubStatus::Expired {
                counts.expired += 1;
                job(
                    EmailTemplate::SubscriptionExpired,
                    vec![
                        ("product", product.name.clone()),
                        ("plan", plan.name.clone()),
                        ("period_end", day(sub.current_period_end)),
                    ],
                    counts,
                );
                let line = format!("{head}: retry {attempt} short of {}, expired", plan.price);
                Step {
                    commit: Commit { live: Some(LiveSlot::Release), ..base(&next) },
                    next,
                    counts: *counts,
                    charge: false,
                    line,
                }
            } else {
                let line = format!("{head}: retry {attempt} short of {}", plan.price);
                Step { commit: base(&next), next, counts: *counts, charge: false, line }
            }
        }
        _ => {
            let next = sub.payment_failed(now);
            counts.past_due += 1;
            job(
                EmailTemplate::PaymentFailed,
                vec![
                    ("product", product.name.clone()),
                    ("plan", plan.name.clone()),
                    ("amount_minor", plan.price.amount_minor.to_string()),
                    ("currency", plan.price.currency.as_str().to_string()),
                ],
                counts,
            );
            let line = format!("{head}: renewal short of {}, past_due", plan.price);
            Step { commit: base(&next), next, counts: *counts, charge: false, line }
        }
    }
}
