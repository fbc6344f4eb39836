//! The daily lifecycle through the real server and store (api.md, "Lifecycle (daily)"): trial
//! ends, renewals from the anchor, scheduled downgrades, dunning, reminders, the low-balance
//! notice, and the guarantees: reruns, concurrent runs, interrupted runs and races charge and
//! send exactly once. On DynamoDB the run is checked against the lifecycle-worker's IAM.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use stark::app::lifecycle::{run_lifecycle, RunOptions};
use stark::ports::{Clock, LifecycleRun};
use std::sync::Arc;

use crate::catalog::admin;
use crate::helpers::{emails_to, spawn_app, TestApp};

const PURCHASE: &str = "/api/services/purchase/";
const PRODUCT: &str = "STARK-LC";

fn plan(id: &str, period: &str, price: i64, trial_days: i64) -> Value {
    json!({
        "plan_id": id, "name": format!("Plan {id}"), "period": period,
        "price": { "amount_minor": price, "currency": "USD" }, "trial_days": trial_days,
    })
}

/// An app with product STARK-LC: WEEKLY 7.00, MONTHLY 10.00, GOLD 50.00 monthly with a
/// 14-day trial, and the admin's token.
async fn shop() -> (TestApp, String) {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let product = json!({
        "product_id": PRODUCT, "name": "Lifecycle Suit", "description": "Renews by itself.",
        "plans": [plan("WEEKLY", "weekly", 700, 0), plan("MONTHLY", "monthly", 1000, 0), plan("GOLD", "monthly", 5000, 14)],
    });
    let r = app.post_as("/api/services/products/", &admin, product).await;
    assert_eq!(r.status, 201, "{}", r.body);
    (app, admin)
}

/// A verified, signed-in customer with `balance` in the wallet.
async fn customer(app: &TestApp, admin: &str, name: &str, balance: i64) -> (String, String) {
    let email = format!("{name}@stark.example");
    let token = app.token(&email, name).await;
    if balance > 0 {
        credit(app, admin, &email, balance).await;
    }
    (email, token)
}

/// Credits as the admin, signed in afresh (the clock may have moved past the last token).
async fn credit(app: &TestApp, _admin: &str, email: &str, amount: i64) {
    let admin = app.sign_in("admin@stark.example").await;
    let r = app.post_as("/api/admin/wallet/credit/", &admin, json!({ "email": email, "amount_minor": amount })).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn buy(app: &TestApp, token: &str, plan: &str) -> crate::helpers::Reply {
    app.post_as(PURCHASE, token, json!({ "product_id": PRODUCT, "plan_id": plan, "payment_method": "STARK_PAY" })).await
}

/// Runs the whole lifecycle at `now`, as the lifecycle-worker (its IAM on DynamoDB), and waits
/// for its emails.
async fn run_at(app: &TestApp, now: DateTime<Utc>) -> LifecycleRun {
    let run = crate::iam::AS_FUNCTION
        .scope("lifecycle-worker", run_lifecycle(&app.ctx, now, &RunOptions::default()))
        .await
        .unwrap();
    app.flush_emails().await;
    run
}

/// Moves the clock to `t` (only forward) and runs there: the platform's own daily run.
async fn run_on(app: &TestApp, t: DateTime<Utc>) -> LifecycleRun {
    let now = app.clock.now();
    if t > now {
        app.clock.advance(t - now);
    }
    run_at(app, t).await
}

/// A new access token (the clock may have passed the old one's 15 minutes).
async fn fresh(app: &TestApp, email: &str) -> String {
    app.sign_in(email).await
}

async fn subscription(app: &TestApp, email: &str) -> Value {
    let token = fresh(app, email).await;
    let r = app.get("/api/services/my-subscriptions/", Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["subscriptions"][0].clone()
}

async fn wallet(app: &TestApp, email: &str) -> Value {
    let token = fresh(app, email).await;
    let r = app.get("/api/services/wallet/", Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn balance(w: &Value) -> i64 {
    w["balance"]["amount_minor"].as_i64().unwrap()
}

/// The emails of one template sent to `to`, oldest first: subject and text part, decoded
/// as a mail client reads them.
fn sent(app: &TestApp, to: &str, template: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(app.outbox()) else { return Vec::new() };
    let mut names: Vec<_> = dir
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(&format!("-{template}.eml")))
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|p| std::fs::read(p).ok())
        .map(|raw| crate::parsed_mail::parse(&raw))
        .filter(|mail| mail.recipients.iter().any(|r| r == to))
        .map(|mail| format!("{}\n{}", mail.subject, mail.text))
        .collect()
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_trial_is_reminded_3_days_and_1_day_before_then_expires() {
    let (app, admin) = shop().await;
    let (email, token) = customer(&app, &admin, "happy", 0).await;
    let r = app.post_as("/api/services/start-trial/", &token, json!({ "product_id": PRODUCT })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let end = t(r.body["subscription"]["current_period_end"].as_str().unwrap());

    let run = run_on(&app, end - Duration::days(3)).await;
    assert_eq!((run.counts.reminders, run.counts.emails), (1, 1), "{run:?}");
    assert_eq!(sent(&app, &email, "expiry_reminder").len(), 1);
    // The same now again: nothing changes, nothing is sent.
    let again = run_at(&app, end - Duration::days(3)).await;
    assert_eq!(again.counts, Default::default());
    assert_eq!(sent(&app, &email, "expiry_reminder").len(), 1);

    run_on(&app, end - Duration::days(1)).await;
    let reminders = sent(&app, &email, "expiry_reminder");
    assert_eq!(reminders.len(), 2);
    assert!(reminders[1].contains("Days left: 1"), "{}", reminders[1]);

    let run = run_on(&app, end).await;
    assert_eq!((run.counts.expired, run.counts.emails), (1, 1), "{run:?}");
    let sub = subscription(&app, &email).await;
    assert_eq!((sub["status"].as_str(), sub["days_remaining"].as_i64()), (Some("expired"), Some(0)));
    assert_eq!(sent(&app, &email, "subscription_expired").len(), 1);
    // The slot is free: the product can be bought again (the trial stays used).
    credit(&app, &admin, &email, 1000).await;
    assert_eq!(buy(&app, &fresh(&app, &email).await, "MONTHLY").await.status, 201);
    let r =
        app.post_as("/api/services/start-trial/", &fresh(&app, &email).await, json!({ "product_id": PRODUCT })).await;
    assert_eq!(r.code(), "trial_already_used");
}

#[tokio::test]
async fn monthly_from_jan_31_renews_on_the_calendar_13_times_without_drift() {
    let (app, admin) = shop().await;
    app.clock.advance(t("2027-01-31T10:00:00Z") - app.clock.now());
    let (email, token) = customer(&app, &admin, "rhodey", 14 * 1000).await;
    assert_eq!(buy(&app, &token, "MONTHLY").await.status, 201);
    // Two runs on time, then one run that catches up with the other eleven periods.
    run_on(&app, t("2027-02-28T10:00:00Z")).await;
    run_on(&app, t("2027-03-31T10:00:00Z")).await;
    let run = run_on(&app, t("2028-02-29T10:00:00Z")).await;
    assert_eq!(run.counts.renewed, 11, "{run:?}");
    let sub = subscription(&app, &email).await;
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["current_period_start"], "2028-02-29T10:00:00Z");
    assert_eq!(sub["current_period_end"], "2028-03-31T10:00:00Z", "the 31st stays the 31st");
    let w = wallet(&app, &email).await;
    assert_eq!(balance(&w), 0, "14 periods paid: the purchase and 13 renewals");
    let renewals: Vec<&Value> = w["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["reference"].as_str().unwrap().starts_with("renewal"))
        .collect();
    assert_eq!(renewals.len(), 13);
    let mut periods: Vec<String> =
        renewals.iter().map(|t| t["reference"].as_str().unwrap().rsplit(' ').next().unwrap().to_string()).collect();
    periods.reverse();
    let ends: Vec<&str> = periods.iter().map(|p| &p[12..]).collect();
    assert_eq!(
        ends,
        [
            "2027-03-31",
            "2027-04-30",
            "2027-05-31",
            "2027-06-30",
            "2027-07-31",
            "2027-08-31",
            "2027-09-30",
            "2027-10-31",
            "2027-11-30",
            "2027-12-31",
            "2028-01-31",
            "2028-02-29",
            "2028-03-31"
        ]
    );
    assert!(renewals.iter().all(|t| t["type"] == "debit" && t["amount"]["amount_minor"] == 1000));
    assert!(renewals[0]["reference"].as_str().unwrap().contains(sub["subscription_id"].as_str().unwrap()));
    let mails = sent(&app, &email, "payment_confirmation");
    assert_eq!(mails.len(), 14);
    assert!(mails[13].contains("renewed") && mails[13].contains("2028-02-29 to 2028-03-31"), "{}", mails[13]);
}

#[tokio::test]
async fn a_scheduled_downgrade_is_applied_and_charged_at_its_price() {
    let (app, admin) = shop().await;
    let (email, token) = customer(&app, &admin, "pepper", 5000 + 1000).await;
    assert_eq!(buy(&app, &token, "GOLD").await.status, 201);
    let r = buy(&app, &token, "MONTHLY").await;
    assert_eq!((r.status, r.body["subscription"]["scheduled_plan_id"].as_str()), (200, Some("MONTHLY")));
    let end = t(r.body["subscription"]["current_period_end"].as_str().unwrap());
    let run = run_on(&app, end).await;
    assert_eq!(run.counts.renewed, 1, "{run:?}");
    let sub = subscription(&app, &email).await;
    assert_eq!((sub["plan_id"].as_str(), sub["scheduled_plan_id"].as_null()), (Some("MONTHLY"), Some(())));
    assert_eq!(balance(&wallet(&app, &email).await), 0, "charged 10.00, the downgrade's price");
}

#[tokio::test]
async fn a_short_wallet_goes_past_due_then_a_top_up_and_the_next_retry_renew_it() {
    let (app, admin) = shop().await;
    let (email, token) = customer(&app, &admin, "happy", 1000).await;
    let r = buy(&app, &token, "MONTHLY").await;
    assert_eq!(r.status, 201);
    let end = t(r.body["subscription"]["current_period_end"].as_str().unwrap());
    // Three days before: the wallet cannot pay the renewal, so it says so, once.
    let run = run_on(&app, end - Duration::days(3)).await;
    assert_eq!(run.counts.low_balance, 1, "{run:?}");
    let notice = sent(&app, &email, "renewal_low_balance");
    assert_eq!(notice.len(), 1);
    assert!(notice[0].contains("for 10.00 USD, and your STARK_PAY balance is 0.00 USD"), "{}", notice[0]);
    run_at(&app, end - Duration::days(2)).await;
    assert_eq!(sent(&app, &email, "renewal_low_balance").len(), 1, "once per period");

    // A run two hours late finds it short: past_due, retried from the failure, not the end.
    let failed_at = end + Duration::hours(2);
    let run = run_on(&app, failed_at).await;
    assert_eq!(run.counts.past_due, 1, "{run:?}");
    let sub = subscription(&app, &email).await;
    assert_eq!(sub["status"], "past_due");
    assert_eq!(sent(&app, &email, "payment_failed").len(), 1);
    assert_eq!(
        run_at(&app, end + Duration::days(1)).await.counts,
        Default::default(),
        "a day after the end is too soon"
    );

    credit(&app, &admin, &email, 1000).await;
    let run = run_on(&app, failed_at + Duration::days(1)).await;
    assert_eq!(run.counts.renewed, 1, "{run:?}");
    let sub = subscription(&app, &email).await;
    assert_eq!(sub["status"], "active");
    assert_eq!(t(sub["current_period_start"].as_str().unwrap()), end, "the period still counts from the anchor");
    assert_eq!(balance(&wallet(&app, &email).await), 0);
    assert_eq!(sent(&app, &email, "payment_failed").len(), 1, "payment_failed is sent once");
}

#[tokio::test]
async fn three_failed_retries_expire_it_and_nothing_is_charged() {
    let (app, admin) = shop().await;
    let (email, token) = customer(&app, &admin, "harley", 700).await;
    let r = buy(&app, &token, "WEEKLY").await;
    let end = t(r.body["subscription"]["current_period_end"].as_str().unwrap());
    assert_eq!(run_on(&app, end).await.counts.past_due, 1);
    for day in 1..=2 {
        let run = run_on(&app, end + Duration::days(day)).await;
        assert_eq!((run.counts.expired, run.counts.emails), (0, 0), "retry {day}: {run:?}");
        assert_eq!(subscription(&app, &email).await["status"], "past_due");
    }
    let run = run_on(&app, end + Duration::days(3)).await;
    assert_eq!((run.counts.expired, run.counts.emails), (1, 1), "{run:?}");
    assert_eq!(subscription(&app, &email).await["status"], "expired");
    assert_eq!(sent(&app, &email, "subscription_expired").len(), 1);
    let w = wallet(&app, &email).await;
    assert_eq!(balance(&w), 0);
    assert_eq!(w["transactions"].as_array().unwrap().iter().filter(|t| t["type"] == "debit").count(), 1);
}

#[tokio::test]
async fn a_purchase_during_past_due_pays_a_fresh_period() {
    let (app, admin) = shop().await;
    let (email, token) = customer(&app, &admin, "morgan", 1000).await;
    let r = buy(&app, &token, "MONTHLY").await;
    let end = t(r.body["subscription"]["current_period_end"].as_str().unwrap());
    run_on(&app, end).await;
    assert_eq!(subscription(&app, &email).await["status"], "past_due");
    credit(&app, &admin, &email, 5000).await;
    app.advance(3600);
    let r = buy(&app, &fresh(&app, &email).await, "GOLD").await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["subscription"]["status"], "active");
    assert_eq!(t(r.body["subscription"]["current_period_start"].as_str().unwrap()), app.clock.now());
    // The next day's retry finds nothing to do.
    assert_eq!(run_on(&app, end + Duration::days(1)).await.counts, Default::default());
    assert_eq!(balance(&wallet(&app, &email).await), 0);
}

#[tokio::test]
async fn reminders_go_only_to_subscriptions_that_will_not_renew_and_one_per_run() {
    let (app, admin) = shop().await;
    let (renewing, t1) = customer(&app, &admin, "renewer", 2000).await;
    let (leaving, t2) = customer(&app, &admin, "leaver", 1000).await;
    assert_eq!(buy(&app, &t1, "MONTHLY").await.status, 201);
    let r = buy(&app, &t2, "MONTHLY").await;
    let end = t(r.body["subscription"]["current_period_end"].as_str().unwrap());
    let id = r.body["subscription"]["subscription_id"].as_str().unwrap().to_string();
    let r =
        app.post_as(&format!("/api/services/subscriptions/{id}/cancel/"), &t2, json!({ "at_period_end": true })).await;
    assert_eq!(r.status, 200);
    // A late first run, past both reminder points: only the latest (1 day) goes out.
    let run = run_on(&app, end - Duration::hours(12)).await;
    assert_eq!(run.counts.reminders, 1, "{run:?}");
    let reminders = sent(&app, &leaving, "expiry_reminder");
    assert_eq!(reminders.len(), 1);
    assert!(reminders[0].contains("Days left: 1"), "{}", reminders[0]);
    assert!(sent(&app, &renewing, "expiry_reminder").is_empty(), "an auto-renewing subscription is not reminded");

    let run = run_on(&app, end).await;
    assert_eq!((run.counts.canceled, run.counts.renewed), (1, 1), "{run:?}");
    assert_eq!(subscription(&app, &leaving).await["status"], "canceled");
    assert_eq!(sent(&app, &leaving, "subscription_expired").len(), 1);
    assert_eq!(balance(&wallet(&app, &leaving).await), 0, "a cancelled subscription is not charged");
}

#[tokio::test]
async fn a_run_sixty_days_late_renews_weekly_period_by_period_while_the_money_lasts() {
    let (app, admin) = shop().await;
    let (email, token) = customer(&app, &admin, "ned", 700 * 6).await;
    let r = buy(&app, &token, "WEEKLY").await;
    let start = t(r.body["subscription"]["current_period_start"].as_str().unwrap());
    run_at(&app, start).await; // the last run before the outage
    let run = run_on(&app, start + Duration::days(60)).await;
    assert_eq!((run.counts.renewed, run.counts.past_due), (5, 1), "{run:?}");
    let sub = subscription(&app, &email).await;
    assert_eq!(sub["status"], "past_due");
    assert_eq!(t(sub["current_period_end"].as_str().unwrap()), start + Duration::weeks(6));
    let w = wallet(&app, &email).await;
    assert_eq!(balance(&w), 0, "never below zero");
    assert_eq!(sent(&app, &email, "payment_confirmation").len(), 6);
    assert_eq!(sent(&app, &email, "payment_failed").len(), 1);
}

#[tokio::test]
async fn two_runs_at_once_charge_each_renewal_once() {
    let (app, admin) = shop().await;
    let mut emails = Vec::new();
    let mut end = app.clock.now();
    for i in 0..12 {
        let (email, token) = customer(&app, &admin, &format!("racer{i}"), 700).await;
        let r = buy(&app, &token, "WEEKLY").await;
        end = t(r.body["subscription"]["current_period_end"].as_str().unwrap());
        emails.push(email);
        // Half of them can pay their renewal.
        if i % 2 == 0 {
            credit(&app, &admin, &emails[i], 700).await;
        }
    }
    app.clock.advance(end + Duration::minutes(5) - app.clock.now());
    let now = app.clock.now();
    let a = run_at(&app, now);
    let b = run_at(&app, now);
    let (a, b) = tokio::join!(a, b);
    assert_eq!(a.counts.renewed + b.counts.renewed, 6, "{a:?} {b:?}");
    assert_eq!(a.counts.past_due + b.counts.past_due, 6);
    for (i, email) in emails.iter().enumerate() {
        assert_eq!(balance(&wallet(&app, email).await), 0, "{email}");
        let confirmations = sent(&app, email, "payment_confirmation").len();
        let failures = sent(&app, email, "payment_failed").len();
        assert_eq!((confirmations, failures), if i % 2 == 0 { (2, 0) } else { (1, 1) }, "{email}");
    }
}

/// A subscription store that fails every commit after the first `ok` ones: a run that dies
/// halfway, with some of its work committed.
struct FailingAfter {
    inner: Arc<dyn stark::ports::SubscriptionStore>,
    ok: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl stark::ports::SubscriptionStore for FailingAfter {
    async fn account_state(&self, u: &str, p: &stark::domain::ProductId) -> anyhow::Result<stark::ports::AccountState> {
        self.inner.account_state(u, p).await
    }
    async fn subscription(&self, u: &str, s: &str) -> anyhow::Result<Option<stark::domain::Subscription>> {
        self.inner.subscription(u, s).await
    }
    async fn user_subscriptions(&self, u: &str) -> anyhow::Result<Vec<stark::domain::Subscription>> {
        self.inner.user_subscriptions(u).await
    }
    async fn product_subscriptions(
        &self,
        p: &stark::domain::ProductId,
    ) -> anyhow::Result<Vec<stark::domain::Subscription>> {
        self.inner.product_subscriptions(p).await
    }
    async fn wallet(&self, u: &str, limit: usize) -> anyhow::Result<(i64, Vec<stark::domain::WalletTxn>)> {
        self.inner.wallet(u, limit).await
    }
    async fn payments(&self, u: &str) -> anyhow::Result<Vec<stark::domain::Payment>> {
        self.inner.payments(u).await
    }
    async fn commit(&self, c: &stark::ports::Commit) -> Result<(), stark::ports::CommitError> {
        use std::sync::atomic::Ordering;
        if self.ok.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_err() {
            return Err(stark::ports::CommitError::Infra(anyhow::anyhow!("the store went away (injected)")));
        }
        self.inner.commit(c).await
    }
}

#[tokio::test]
async fn a_run_that_fails_halfway_is_finished_by_the_next_with_nothing_twice() {
    let (app, admin) = shop().await;
    let mut emails = Vec::new();
    for i in 0..10 {
        let (email, token) = customer(&app, &admin, &format!("halfway{i}"), 1400).await;
        assert_eq!(buy(&app, &token, "WEEKLY").await.status, 201);
        emails.push(email);
    }
    app.clock.advance(Duration::days(7));
    let now = app.clock.now();
    let mut stores = app.ctx.stores.clone();
    stores.subscriptions = Arc::new(FailingAfter { inner: stores.subscriptions.clone(), ok: 4.into() });
    let cfg = stark::config::LocalConfig {
        hash_cost: stark::security::password_hash::HashCost::TEST,
        // A second process beside the running server: it must not take the server's leases.
        takes_over_leases: false,
        ..stark::config::LocalConfig::embedded(app.data_dir.clone())
    };
    let (dying, queue) = stark::config::local_context_with(&cfg, app.clock.clone(), stores).await.unwrap();
    let err =
        crate::iam::AS_FUNCTION.scope("lifecycle-worker", run_lifecycle(&dying, now, &RunOptions::default())).await;
    assert!(err.is_err(), "the injected failure stops the run");
    queue.unwrap().flush().await.unwrap();
    let paid_before: usize = emails.iter().map(|e| sent(&app, e, "payment_confirmation").len() - 1).sum();
    assert_eq!(paid_before, 4, "four renewals were committed before the store failed");

    let run = run_at(&app, now).await;
    assert_eq!(run.counts.renewed, 6, "{run:?}");
    for email in &emails {
        assert_eq!(balance(&wallet(&app, email).await), 0, "{email}: charged once for the renewal");
        assert_eq!(sent(&app, email, "payment_confirmation").len(), 2, "{email}: one purchase, one renewal email");
    }
}

#[tokio::test]
async fn a_renewal_racing_an_upgrade_or_a_cancel_ends_as_if_one_came_after_the_other() {
    let (app, admin) = shop().await;
    let app = Arc::new(app);
    let (upgrader, t1) = customer(&app, &admin, "upgrader", 700 + 700 + 5000).await;
    let (canceller, t2) = customer(&app, &admin, "canceller", 700 + 700).await;
    let r = buy(&app, &t1, "WEEKLY").await;
    let end = t(r.body["subscription"]["current_period_end"].as_str().unwrap());
    let r2 = buy(&app, &t2, "WEEKLY").await;
    let cancel_path =
        format!("/api/services/subscriptions/{}/cancel/", r2.body["subscription"]["subscription_id"].as_str().unwrap());
    app.clock.advance(end - app.clock.now());
    let (t1, t2) = (fresh(&app, &upgrader).await, fresh(&app, &canceller).await);
    let run = run_at(&app, end);
    let upgrade = async {
        app.post_as(PURCHASE, &t1, json!({ "product_id": PRODUCT, "plan_id": "GOLD", "payment_method": "STARK_PAY" }))
            .await
    };
    let cancel = app.post_as(&cancel_path, &t2, json!({ "at_period_end": false }));
    let (_, up, cancelled) = tokio::join!(run, upgrade, cancel);
    assert_eq!(up.status, 201, "{}", up.body);
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);

    // The upgrader: either renewed then upgraded (a 7.00 renewal, then 50.00 less the unused
    // week), or upgraded first (50.00 less nothing: the week is over) and nothing renewed.
    let w = wallet(&app, &upgrader).await;
    let debits: Vec<i64> = w["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["type"] == "debit")
        .map(|t| t["amount"]["amount_minor"].as_i64().unwrap())
        .collect();
    let sub = subscription(&app, &upgrader).await;
    assert_eq!((sub["plan_id"].as_str(), sub["status"].as_str()), (Some("GOLD"), Some("active")));
    match debits.len() {
        2 => assert_eq!(debits, [5000, 700], "upgraded at the end of the week: full price"),
        3 => assert_eq!(debits, [5000 - 700, 700, 700], "renewed, then upgraded with a full week's credit"),
        _ => panic!("unexpected debits {debits:?}"),
    }
    assert_eq!(balance(&w), 700 + 700 + 5000 - debits.iter().sum::<i64>());
    // The canceller: canceled either way, charged at most for a renewal that came first.
    let sub = subscription(&app, &canceller).await;
    assert_eq!(sub["status"], "canceled");
    assert_eq!(run_at(&app, end + Duration::days(1)).await.counts.renewed, 0, "nothing is left to renew");
}

#[tokio::test]
async fn an_earlier_now_than_the_last_run_finds_less_and_undoes_nothing() {
    let (app, admin) = shop().await;
    let (email, token) = customer(&app, &admin, "happy", 700 * 3).await;
    let r = buy(&app, &token, "WEEKLY").await;
    let start = t(r.body["subscription"]["current_period_start"].as_str().unwrap());
    run_at(&app, start).await; // the platform's runs started with it
    app.clock.advance(Duration::days(14));
    assert_eq!(run_at(&app, start + Duration::days(14)).await.counts.renewed, 2);
    let before = subscription(&app, &email).await;
    let run = run_at(&app, start + Duration::days(7)).await;
    assert_eq!(run.counts, Default::default());
    assert_eq!(subscription(&app, &email).await, before);
    assert_eq!(balance(&wallet(&app, &email).await), 0);
}

#[tokio::test]
async fn runs_are_recorded_with_their_counts() {
    let (app, admin) = shop().await;
    let (_, token) = customer(&app, &admin, "happy", 1400).await;
    buy(&app, &token, "WEEKLY").await;
    let now = app.clock.now() + Duration::days(7);
    let run = run_on(&app, now).await;
    let shards = app.ctx.stores.lifecycle.due_shards();
    assert_eq!((run.shards_done, run.shards), (shards, shards));
    assert!(run.finished_at.is_some());
    assert_eq!((run.counts.renewed, run.counts.emails), (1, 1));
    let recent = app.ctx.stores.lifecycle.recent_runs(5).await.unwrap();
    assert_eq!(recent[0].run_id, run.run_id);
    let _ = emails_to; // the helpers' reader is used by other modules
}

#[tokio::test]
async fn a_shard_past_its_deadline_stops_after_a_page_and_the_next_call_finishes_it() {
    use stark::domain::*;
    use stark::ports::{Commit, LiveSlot};
    let (app, _admin) = shop().await;
    let now = app.clock.now();
    let stores = &app.ctx.stores;
    // More than a page of due trials in every shard of this store (created as the store's
    // own writes would, straight through the port).
    let shards = stores.lifecycle.due_shards();
    let mut per_shard = vec![0; shards as usize];
    let mut i = 0;
    while per_shard.iter().any(|c| *c < 101) {
        i += 1;
        let subscription_id = uuid::Uuid::now_v7().to_string();
        let shard = stark::domain::lifecycle::due_shard(&subscription_id, shards) as usize;
        if per_shard[shard] == 101 {
            continue;
        }
        per_shard[shard] += 1;
        let user = User {
            id: uuid::Uuid::now_v7().to_string(),
            email: Email::parse(&format!("page{i}@stark.example")).unwrap(),
            username: Username::parse(&format!("page{i}")).unwrap(),
            role: Role::User,
            email_verified: true,
            locale: "en".into(),
            created_at: now,
            password_hash: PasswordHash("$argon2id$unused".into()),
            token_generation: 0,
        };
        stores.users.create_user(&user, &OtpRecord::new("x".into(), now), &[]).await.unwrap();
        let sub = Subscription {
            subscription_id,
            user_id: user.id.clone(),
            user_email: user.email.clone(),
            product_id: ProductId::parse(PRODUCT).unwrap(),
            plan_id: PlanId::parse("GOLD").unwrap(),
            status: SubStatus::Trialing,
            current_period_start: now - Duration::days(14),
            current_period_end: now - Duration::hours(1),
            anchor: now - Duration::days(14),
            period_index: 0,
            auto_renew: false,
            scheduled_plan_id: None,
            marks: Default::default(),
            created_at: now,
            updated_at: now,
            version: 1,
        };
        let c =
            Commit { subscription: Some((sub, None)), live: Some(LiveSlot::Claim), trial: true, ..Commit::default() };
        stores.subscriptions.commit(&c).await.unwrap();
    }
    let run = stark::app::lifecycle::new_run("20260601T090000Z-deadline".into(), now, now, shards);
    stores.lifecycle.start_run(&run).await.unwrap();
    let passed = RunOptions { deadline: Some(tokio::time::Instant::now()), ..RunOptions::default() };
    let mut expired = 0;
    for shard in 0..shards {
        let first = crate::iam::AS_FUNCTION
            .scope("lifecycle-worker", stark::app::lifecycle::run_shard(&app.ctx, &run.run_id, now, shard, &passed))
            .await
            .unwrap();
        assert!(!first.complete, "shard {shard}: the deadline had passed");
        // One page, then it stops. (On moto a step now and then finds its trial already
        // ended by its own commit, answered as lost and applied all the same: not counted,
        // never done twice. So the page's count is at most 100, and what is left is checked
        // on the index below.)
        let handled = first.counts.expired + first.counts.left;
        assert!((95..=100).contains(&handled), "shard {shard}: one page, then it stops: {first:?}");
        assert_eq!(stores.lifecycle.watermark(shard).await.unwrap(), None, "an unfinished shard keeps its watermark");
        let rest = crate::iam::AS_FUNCTION
            .scope(
                "lifecycle-worker",
                stark::app::lifecycle::run_shard(&app.ctx, &run.run_id, now, shard, &RunOptions::default()),
            )
            .await
            .unwrap();
        assert!(rest.complete);
        expired += first.counts.expired + rest.counts.expired;
        let floor = now.date_naive() - Duration::days(30);
        let due = stores.lifecycle.due_subscriptions(shard, floor, now, None, 10).await.unwrap();
        assert_eq!(due, [], "shard {shard}: nothing left due");
    }
    assert!(expired <= 101 * u64::from(shards), "no trial ended twice: {expired}");
    assert!(expired >= 101 * u64::from(shards) - 5, "every trial ended: {expired}");
    app.flush_emails().await;
    let recorded = stores.lifecycle.run(&run.run_id).await.unwrap().unwrap();
    assert!(recorded.finished_at.is_some(), "{recorded:?}");
}
