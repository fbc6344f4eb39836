//! Trials, purchases (new, during a trial, upgrade with proration, downgrade), cancellation,
//! the STARK_PAY wallet, Idempotency-Key, and the races that must not double-charge.

use serde_json::{json, Value};
use stark::ports::Clock;
use std::sync::Arc;

use crate::catalog::{admin, plan_json, product_json};
use crate::helpers::{spawn_app, TestApp};

const TRIAL: &str = "/api/services/start-trial/";
const PURCHASE: &str = "/api/services/purchase/";

/// An app with product STARK-MK85 (BASIC 10.00 no trial, GOLD 50.00 with 14 trial days) and
/// the admin's token.
async fn shop() -> (TestApp, String) {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let r = app.post_as("/api/services/products/", &admin, product_json("STARK-MK85")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    (app, admin)
}

async fn credit(app: &TestApp, admin: &str, email: &str, amount: i64) -> Value {
    let r = app.post_as("/api/admin/wallet/credit/", admin, json!({ "email": email, "amount_minor": amount })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["balance"].clone()
}

async fn wallet(app: &TestApp, token: &str) -> Value {
    let r = app.get("/api/services/wallet/", Some(token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn buy(plan: &str) -> Value {
    json!({ "product_id": "STARK-MK85", "plan_id": plan, "payment_method": "STARK_PAY" })
}

async fn purchase_with_key(app: &TestApp, token: &str, key: &str, body: Value) -> crate::helpers::Reply {
    app.send(app.authed(reqwest::Method::POST, PURCHASE, token).header("Idempotency-Key", key).json(&body)).await
}

async fn my_subscriptions(app: &TestApp, token: &str) -> Vec<Value> {
    let r = app.get("/api/services/my-subscriptions/", Some(token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["subscriptions"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_trial_is_one_per_user_and_product_ever() {
    let (app, admin) = shop().await;
    let pepper = app.token("pepper@stark.example", "pepper").await;
    let r = app.post_as(TRIAL, &pepper, json!({ "product_id": "STARK-MK85" })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sub = &r.body["subscription"];
    assert_eq!(sub["status"], "trialing");
    assert_eq!(sub["plan_id"], "GOLD", "without plan_id: the plan that offers a trial");
    assert_eq!(sub["days_remaining"], 14);
    assert_eq!(sub["current_period_end"], "2026-06-15T09:00:00Z");
    assert_eq!(sub["auto_renew"], false);
    assert!(r.body["message"].is_string());
    app.flush_emails().await;
    let emails = app.wait_for_emails("pepper@stark.example", 2).await;
    assert!(emails.last().unwrap().contains("trial"), "a trial_started email");

    let r = app.post_as(TRIAL, &pepper, json!({ "product_id": "STARK-MK85", "plan_id": "GOLD" })).await;
    assert_eq!((r.status, r.code()), (409, "trial_already_used"));
    // The marker survives purchase, cancellation and expiry.
    credit(&app, &admin, "pepper@stark.example", 5000).await;
    assert_eq!(app.post_as(PURCHASE, &pepper, buy("GOLD")).await.status, 201);
    let id = sub["subscription_id"].as_str().unwrap();
    let r = app
        .post_as(&format!("/api/services/subscriptions/{id}/cancel/"), &pepper, json!({ "at_period_end": false }))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.post_as(TRIAL, &pepper, json!({ "product_id": "STARK-MK85" })).await;
    assert_eq!((r.status, r.code()), (409, "trial_already_used"));
}

#[tokio::test]
async fn trial_errors_follow_the_contract() {
    let (app, _) = shop().await;
    let happy = app.token("happy@stark.example", "happy").await;
    let r = app.post_as(TRIAL, &happy, json!({ "product_id": "STARK-MK85", "plan_id": "BASIC" })).await;
    assert_eq!((r.status, r.code()), (422, "trial_not_available"));
    let r = app.post_as(TRIAL, &happy, json!({ "product_id": "STARK-MK99" })).await;
    assert_eq!((r.status, r.code()), (404, "product_not_found"));
    let r = app.post_as(TRIAL, &happy, json!({ "product_id": "STARK-MK85", "plan_id": "PLATINUM" })).await;
    assert_eq!((r.status, r.code()), (404, "plan_not_found"));
    let r = app.post_as(TRIAL, &happy, json!({ "product_id": "bad id" })).await;
    assert_eq!((r.status, r.code()), (400, "validation_error"));
    let r = app.post(TRIAL, json!({ "product_id": "STARK-MK85" })).await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
    // Signed up, not verified: the token exists, the purchase does not.
    let r = app.signup("rhodey@stark.example", "rhodey").await;
    assert_eq!(r.status, 201);
    let id = r.body["user"]["id"].as_str().unwrap().to_string();
    // A token for an unverified account can only come from a key holder; mint one as login would.
    let token = app.ctx.keys.signer.as_ref().unwrap().issue(&id, stark::domain::Role::User, app.clock.now()).0;
    let r = app.post_as(TRIAL, &token, json!({ "product_id": "STARK-MK85" })).await;
    assert_eq!((r.status, r.code()), (403, "email_not_verified"));
    // None of the refusals left a subscription behind.
    assert!(my_subscriptions(&app, &happy).await.is_empty());
}

#[tokio::test]
async fn a_purchase_debits_the_wallet_once_and_records_everything() {
    let (app, admin) = shop().await;
    let tony = app.token("tony@stark.example", "tony").await;
    let r = app.post_as(PURCHASE, &tony, buy("GOLD")).await;
    assert_eq!((r.status, r.code()), (402, "insufficient_funds"));
    assert_eq!(
        credit(&app, &admin, "tony@stark.example", 6000).await,
        json!({ "amount_minor": 6000, "currency": "USD" })
    );

    let r = app.post_as(PURCHASE, &tony, buy("GOLD")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sub = &r.body["subscription"];
    assert_eq!((sub["status"].as_str(), sub["plan_id"].as_str()), (Some("active"), Some("GOLD")));
    assert_eq!(sub["current_period_start"], "2026-06-01T09:00:00Z");
    assert_eq!(sub["current_period_end"], "2026-07-01T09:00:00Z");
    assert_eq!(sub["days_remaining"], 30);
    assert_eq!(sub["auto_renew"], true);
    let pay = &r.body["payment"];
    assert_eq!(
        (pay["amount_minor"].as_i64(), pay["currency"].as_str(), pay["method"].as_str()),
        (Some(5000), Some("USD"), Some("STARK_PAY"))
    );

    let w = wallet(&app, &tony).await;
    assert_eq!(w["balance"], json!({ "amount_minor": 1000, "currency": "USD" }));
    let txns = w["transactions"].as_array().unwrap();
    assert_eq!(txns.len(), 2);
    assert_eq!((txns[0]["type"].as_str(), txns[0]["amount"]["amount_minor"].as_i64()), (Some("debit"), Some(5000)));
    assert_eq!((txns[1]["type"].as_str(), txns[1]["amount"]["amount_minor"].as_i64()), (Some("credit"), Some(6000)));

    let r = app.post_as(PURCHASE, &tony, buy("GOLD")).await;
    assert_eq!((r.status, r.code()), (409, "already_subscribed"));
    assert_eq!(wallet(&app, &tony).await["balance"]["amount_minor"], 1000);
    let subs = my_subscriptions(&app, &tony).await;
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0]["subscription_id"], sub["subscription_id"]);

    app.flush_emails().await;
    let emails = app.wait_for_emails("tony@stark.example", 2).await;
    let confirmation =
        emails.iter().find(|e| e.contains("Subject: Payment received")).expect("payment_confirmation email");
    assert!(confirmation.contains("50.00 USD"), "the amount is formatted from minor units");
    assert!(confirmation.contains(pay["payment_id"].as_str().unwrap()));
    // Relayed at once: nothing is left in the outbox for the sweep.
    let far = app.clock.now() + chrono::Duration::days(365);
    assert!(app.ctx.stores.outbox.pending_outbox(far, None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_purchase_during_a_trial_converts_it_now() {
    let (app, admin) = shop().await;
    let t = app.token("happy@stark.example", "happy").await;
    let trial = app.post_as(TRIAL, &t, json!({ "product_id": "STARK-MK85" })).await;
    assert_eq!(trial.status, 201);
    credit(&app, &admin, "happy@stark.example", 5000).await;
    app.advance(3 * 86_400);
    let t = app.sign_in("happy@stark.example").await;
    let r = app.post_as(PURCHASE, &t, buy("BASIC")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sub = &r.body["subscription"];
    assert_eq!(sub["subscription_id"], trial.body["subscription"]["subscription_id"], "the same record");
    assert_eq!((sub["status"].as_str(), sub["plan_id"].as_str()), (Some("active"), Some("BASIC")));
    assert_eq!(sub["current_period_start"], "2026-06-04T09:00:00Z");
    assert_eq!(sub["current_period_end"], "2026-07-04T09:00:00Z");
    assert_eq!(r.body["payment"]["amount_minor"], 1000, "the full price: a trial has nothing to prorate");
    assert_eq!(my_subscriptions(&app, &t).await.len(), 1);
}

#[tokio::test]
async fn an_upgrade_is_prorated_and_a_downgrade_is_scheduled() {
    let (app, admin) = shop().await;
    let t = app.token("tony@stark.example", "tony").await;
    credit(&app, &admin, "tony@stark.example", 10_000).await;
    let first = app.post_as(PURCHASE, &t, buy("BASIC")).await;
    assert_eq!(first.status, 201);
    // Halfway through June's 30 days: 5.00 of BASIC's 10.00 is unused.
    app.advance(15 * 86_400);
    let t = app.sign_in("tony@stark.example").await;
    let r = app.post_as(PURCHASE, &t, buy("GOLD")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["payment"]["amount_minor"], 4500, "50.00 - 5.00 unused");
    let sub = &r.body["subscription"];
    assert_eq!(sub["subscription_id"], first.body["subscription"]["subscription_id"]);
    assert_eq!(sub["plan_id"], "GOLD");
    assert_eq!(sub["current_period_start"], "2026-06-16T09:00:00Z");
    assert_eq!(sub["current_period_end"], "2026-07-16T09:00:00Z");
    assert_eq!(wallet(&app, &t).await["balance"]["amount_minor"], 10_000 - 1000 - 4500);

    // Back down, after turning renewal off: nothing charged, the change waits for a renewal
    // that buying the cheaper plan turns back on.
    let id = sub["subscription_id"].as_str().unwrap();
    let r = app.post_as(&format!("/api/services/subscriptions/{id}/cancel/"), &t, json!({})).await;
    assert_eq!(r.body["subscription"]["auto_renew"], false);
    let r = app.post_as(PURCHASE, &t, buy("BASIC")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["payment"], Value::Null);
    assert_eq!(r.body["subscription"]["plan_id"], "GOLD");
    assert_eq!(r.body["subscription"]["scheduled_plan_id"], "BASIC");
    assert_eq!(r.body["subscription"]["auto_renew"], true);
    assert_eq!(wallet(&app, &t).await["balance"]["amount_minor"], 4500);
    assert_eq!(my_subscriptions(&app, &t).await.len(), 1);
}

#[tokio::test]
async fn cancel_at_period_end_or_now() {
    let (app, admin) = shop().await;
    let t = app.token("tony@stark.example", "tony").await;
    let other = app.token("loki@stark.example", "loki").await;
    credit(&app, &admin, "tony@stark.example", 10_000).await;
    let bought = app.post_as(PURCHASE, &t, buy("GOLD")).await;
    let id = bought.body["subscription"]["subscription_id"].as_str().unwrap().to_string();
    let path = format!("/api/services/subscriptions/{id}/cancel/");

    let r = app.post_as(&path, &other, json!({})).await;
    assert_eq!((r.status, r.code()), (404, "subscription_not_found"), "someone else's subscription is not found");
    let r = app.post_as(&path, &t, json!({ "at_period_end": "yes" })).await;
    assert_eq!((r.status, r.code()), (400, "validation_error"));

    let r = app.post_as(&path, &t, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sub = &r.body["subscription"];
    assert_eq!((sub["status"].as_str(), sub["auto_renew"].as_bool()), (Some("active"), Some(false)));
    assert_eq!(sub["days_remaining"], 30, "access runs to the end of the period");

    let r = app.post_as(&path, &t, json!({ "at_period_end": false })).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        (r.body["subscription"]["status"].as_str(), r.body["subscription"]["days_remaining"].as_i64()),
        (Some("canceled"), Some(0))
    );
    // Ended: a new purchase is a new subscription, and history is kept.
    let again = app.post_as(PURCHASE, &t, buy("BASIC")).await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_ne!(again.body["subscription"]["subscription_id"], json!(id));
    let subs = my_subscriptions(&app, &t).await;
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[0]["subscription_id"], again.body["subscription"]["subscription_id"], "newest first");
    assert_eq!(subs[1]["status"], "canceled");

    // The owner (here an admin-made product: an admin) sees every subscriber, newest first.
    let r = app.get("/api/services/products/STARK-MK85/subscribers/", Some(&admin)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let list = r.body["subscribers"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["email"], "tony@stark.example");
    assert_eq!(list[1]["subscription"]["status"], "canceled");
}

#[tokio::test]
async fn idempotency_keys_replay_refuse_and_keep_nothing_for_bad_input() {
    let (app, admin) = shop().await;
    let t = app.token("tony@stark.example", "tony").await;
    // A 402 is an outcome: it is kept and replayed, even after the wallet is topped up.
    let r = purchase_with_key(&app, &t, "k-402", buy("GOLD")).await;
    assert_eq!((r.status, r.code()), (402, "insufficient_funds"));
    credit(&app, &admin, "tony@stark.example", 20_000).await;
    let r = purchase_with_key(&app, &t, "k-402", buy("GOLD")).await;
    assert_eq!((r.status, r.code(), r.header("idempotent-replayed")), (402, "insufficient_funds", Some("true")));
    assert!(r.body["error"]["message"].is_string());

    // A 400 is not kept: the same key then runs for real.
    let mut bad = buy("GOLD");
    bad["product_id"] = json!("bad id");
    assert_eq!(purchase_with_key(&app, &t, "k-1", bad).await.status, 400);
    let first = purchase_with_key(&app, &t, "k-1", buy("GOLD")).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.header("idempotent-replayed"), None);
    // The same JSON, keys in another order and spaced differently: replayed, not charged.
    let same = r#"{ "payment_method": "STARK_PAY", "plan_id": "GOLD",   "product_id": "STARK-MK85" }"#;
    let r = app
        .send(
            app.authed(reqwest::Method::POST, PURCHASE, &t)
                .header("Idempotency-Key", "k-1")
                .header("content-type", "application/json")
                .body(same),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
    assert_eq!(r.body["payment"], first.body["payment"]);
    assert_eq!(r.body["subscription"]["subscription_id"], first.body["subscription"]["subscription_id"]);
    assert_eq!(wallet(&app, &t).await["balance"]["amount_minor"], 15_000, "charged once");
    // A different body under the same key.
    let r = purchase_with_key(&app, &t, "k-1", buy("BASIC")).await;
    assert_eq!((r.status, r.code()), (422, "idempotency_key_reused"));
    // Keys are per user.
    let pepper = app.token("pepper@stark.example", "pepper").await;
    let r = purchase_with_key(&app, &pepper, "k-1", buy("GOLD")).await;
    assert_eq!((r.status, r.code()), (402, "insufficient_funds"));
    // Too long a key names the header; 255 is fine.
    let r = purchase_with_key(&app, &t, &"k".repeat(256), buy("BASIC")).await;
    assert_eq!((r.status, r.code()), (400, "validation_error"));
    assert!(r.body["error"]["fields"]["Idempotency-Key"].is_string());
    let r = purchase_with_key(&app, &t, &"k".repeat(255), buy("BASIC")).await;
    assert_eq!(r.status, 200, "a downgrade under a 255-character key: {}", r.body);
    // Kept 24 hours: after that the key is new again.
    app.advance(24 * 3600 + 60);
    let t = app.sign_in("tony@stark.example").await;
    let r = purchase_with_key(&app, &t, "k-402", buy("GOLD")).await;
    assert_eq!((r.status, r.code(), r.header("idempotent-replayed")), (409, "already_subscribed", None));
}

#[tokio::test]
async fn a_key_whose_first_request_is_running_answers_request_in_progress() {
    let (app, admin) = shop().await;
    let t = app.token("tony@stark.example", "tony").await;
    credit(&app, &admin, "tony@stark.example", 20_000).await;
    let user_id = app.get("/api/auth/me/", Some(&t)).await.body["user"]["id"].as_str().unwrap().to_string();
    // Hold the key as a running request would.
    let body = buy("GOLD");
    let claim = stark::ports::IdempotencyClaim {
        user_id: user_id.clone(),
        key: "busy".into(),
        request_hash: stark::http::handlers::billing::request_hash("purchase", &body),
        token: "first-request".into(),
        lock_until: app.clock.now() + chrono::Duration::seconds(60),
        expires_at: app.clock.now() + chrono::Duration::hours(24),
    };
    let claimed = app.ctx.stores.idempotency.claim_idempotency(&claim, app.clock.now()).await.unwrap();
    assert_eq!(claimed, stark::ports::ClaimOutcome::Claimed);
    let r = purchase_with_key(&app, &t, "busy", body.clone()).await;
    assert_eq!((r.status, r.code()), (409, "request_in_progress"));
    let r = purchase_with_key(&app, &t, "busy", buy("BASIC")).await;
    assert_eq!((r.status, r.code()), (422, "idempotency_key_reused"));
    assert_eq!(wallet(&app, &t).await["balance"]["amount_minor"], 20_000);
    // A holder that died is taken over once its lock runs out.
    app.advance(61);
    let r = purchase_with_key(&app, &t, "busy", body).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test]
async fn bad_purchase_input_is_a_400_naming_the_field() {
    let (app, admin) = shop().await;
    let t = app.token("tony@stark.example", "tony").await;
    credit(&app, &admin, "tony@stark.example", 20_000).await;
    let r = app
        .post_as(PURCHASE, &t, json!({ "product_id": "STARK-MK85", "plan_id": "GOLD", "payment_method": "VISA" }))
        .await;
    assert_eq!((r.status, r.code()), (400, "unsupported_payment_method"));
    assert!(r.body["error"]["fields"]["payment_method"].is_string());
    for (body, field) in [
        (json!({ "product_id": "stark", "plan_id": "GOLD", "payment_method": "STARK_PAY" }), "product_id"),
        (json!({ "product_id": "STARK-MK85", "plan_id": "G", "payment_method": "STARK_PAY" }), "plan_id"),
        (json!({ "product_id": "STARK-MK85", "plan_id": "GOLD" }), "payment_method"),
        (json!({ "product_id": "STARK-MK85", "plan_id": 7, "payment_method": "STARK_PAY" }), "plan_id"),
    ] {
        let r = app.post_as(PURCHASE, &t, body).await;
        assert_eq!((r.status, r.code()), (400, "validation_error"), "{field}");
        assert!(r.body["error"]["fields"][field].is_string(), "{field}: {}", r.body);
    }
    let r = app.post_as(PURCHASE, &t, buy("PLATINUM")).await;
    assert_eq!((r.status, r.code()), (404, "plan_not_found"));
    let mut unknown = buy("GOLD");
    unknown["product_id"] = json!("STARK-MK99");
    let r = app.post_as(PURCHASE, &t, unknown).await;
    assert_eq!((r.status, r.code()), (404, "product_not_found"));
    assert_eq!(wallet(&app, &t).await["balance"]["amount_minor"], 20_000);

    // Admin credit and role: admins only, and every field checked.
    let r = app
        .post_as("/api/admin/wallet/credit/", &t, json!({ "email": "tony@stark.example", "amount_minor": 100 }))
        .await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    for amount in [json!(0), json!(-5), json!(1.5), json!("100"), json!(100_000_001)] {
        let r = app
            .post_as(
                "/api/admin/wallet/credit/",
                &admin,
                json!({ "email": "tony@stark.example", "amount_minor": amount }),
            )
            .await;
        assert_eq!((r.status, r.code()), (400, "validation_error"), "{amount}");
        assert!(r.body["error"]["fields"]["amount_minor"].is_string());
    }
    let r = app
        .post_as("/api/admin/wallet/credit/", &admin, json!({ "email": "nobody@stark.example", "amount_minor": 100 }))
        .await;
    assert_eq!((r.status, r.code()), (404, "user_not_found"));
    let r = app.post_as("/api/admin/users/role/", &t, json!({ "email": "tony@stark.example", "role": "admin" })).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    let r =
        app.post_as("/api/admin/users/role/", &admin, json!({ "email": "tony@stark.example", "role": "god" })).await;
    assert!(r.body["error"]["fields"]["role"].is_string());
    let r = app
        .post_as("/api/admin/users/role/", &admin, json!({ "email": "tony@stark.example", "role": "provider" }))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["user"]["role"], "provider");
}

/// Fires `n` requests at once and returns their answers.
async fn race(
    app: &Arc<TestApp>,
    n: usize,
    make: impl Fn(usize) -> reqwest::RequestBuilder,
) -> Vec<crate::helpers::Reply> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (app, req) = (app.clone(), make(i));
            tokio::spawn(async move { app.send(req).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn count(replies: &[crate::helpers::Reply], status: u16, code: &str) -> usize {
    replies.iter().filter(|r| r.status == status && (code.is_empty() || r.code() == code)).count()
}

#[tokio::test]
async fn fifty_purchases_with_one_key_charge_once() {
    let (app, admin) = shop().await;
    let t = app.token("tony@stark.example", "tony").await;
    credit(&app, &admin, "tony@stark.example", 100_000).await;
    let app = Arc::new(app);
    let replies = race(&app, 50, |_| {
        app.authed(reqwest::Method::POST, PURCHASE, &t).header("Idempotency-Key", "same-key").json(&buy("GOLD"))
    })
    .await;
    let fresh = replies.iter().filter(|r| r.status == 201 && r.header("idempotent-replayed").is_none()).count();
    let replayed =
        replies.iter().filter(|r| r.status == 201 && r.header("idempotent-replayed") == Some("true")).count();
    let busy = count(&replies, 409, "request_in_progress");
    assert_eq!(fresh, 1, "{:?}", replies.iter().map(|r| (r.status, r.code().to_string())).collect::<Vec<_>>());
    assert_eq!(fresh + replayed + busy, 50);
    assert_eq!(wallet(&app, &t).await["balance"]["amount_minor"], 95_000);
    let payments = replies
        .iter()
        .filter(|r| r.status == 201)
        .map(|r| r.body["payment"]["payment_id"].clone())
        .collect::<std::collections::HashSet<_>>();
    assert_eq!(payments.len(), 1, "every replay shows the one payment");
    assert_eq!(my_subscriptions(&app, &t).await.len(), 1);
}

#[tokio::test]
async fn fifty_purchases_against_a_balance_for_one_charge_once() {
    let (app, admin) = shop().await;
    let t = app.token("tony@stark.example", "tony").await;
    credit(&app, &admin, "tony@stark.example", 5000).await;
    let app = Arc::new(app);
    // Distinct keys, the same plan: one subscription, one charge; the rest are told why.
    let replies = race(&app, 50, |i| {
        app.authed(reqwest::Method::POST, PURCHASE, &t).header("Idempotency-Key", format!("key-{i}")).json(&buy("GOLD"))
    })
    .await;
    assert_eq!(
        count(&replies, 201, ""),
        1,
        "{:?}",
        replies.iter().map(|r| (r.status, r.code().to_string())).collect::<Vec<_>>()
    );
    assert_eq!(count(&replies, 409, "already_subscribed") + count(&replies, 402, "insufficient_funds"), 49);
    let w = wallet(&app, &t).await;
    assert_eq!(w["balance"]["amount_minor"], 0);
    assert_eq!(w["transactions"].as_array().unwrap().len(), 2, "one credit, one debit");
    assert_eq!(my_subscriptions(&app, &t).await.len(), 1);
}

#[tokio::test]
async fn fifty_purchases_of_different_products_never_overdraw() {
    let (app, admin) = shop().await;
    for i in 0..50 {
        let r = app
            .post_as(
                "/api/services/products/",
                &admin,
                json!({
                    "product_id": format!("GADGET-{i:02}"), "name": "Gadget", "description": "",
                    "plans": [plan_json("MONTHLY", 5000, 0)],
                }),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let t = app.token("tony@stark.example", "tony").await;
    credit(&app, &admin, "tony@stark.example", 5000).await;
    let app = Arc::new(app);
    let replies = race(&app, 50, |i| {
        let body =
            json!({ "product_id": format!("GADGET-{i:02}"), "plan_id": "MONTHLY", "payment_method": "STARK_PAY" });
        app.authed(reqwest::Method::POST, PURCHASE, &t).header("Idempotency-Key", format!("key-{i}")).json(&body)
    })
    .await;
    assert_eq!(count(&replies, 201, ""), 1);
    assert_eq!(count(&replies, 402, "insufficient_funds"), 49);
    let w = wallet(&app, &t).await;
    assert_eq!(w["balance"]["amount_minor"], 0, "never below zero");
    assert_eq!(w["transactions"].as_array().unwrap().len(), 2);
    assert_eq!(my_subscriptions(&app, &t).await.len(), 1, "no orphan subscription");
    let payments = app
        .ctx
        .stores
        .subscriptions
        .payments(app.get("/api/auth/me/", Some(&t)).await.body["user"]["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(payments.len(), 1, "no orphan payment");
}

#[tokio::test]
async fn fifty_concurrent_trials_start_one() {
    let (app, _) = shop().await;
    let t = app.token("happy@stark.example", "happy").await;
    let app = Arc::new(app);
    let replies =
        race(&app, 50, |_| app.authed(reqwest::Method::POST, TRIAL, &t).json(&json!({ "product_id": "STARK-MK85" })))
            .await;
    assert_eq!(count(&replies, 201, ""), 1);
    assert_eq!(count(&replies, 409, "trial_already_used") + count(&replies, 409, "already_subscribed"), 49);
    assert_eq!(my_subscriptions(&app, &t).await.len(), 1);
    app.flush_emails().await;
    let trial_emails =
        app.wait_for_emails("happy@stark.example", 2).await.iter().filter(|e| e.contains("trial has started")).count();
    assert_eq!(trial_emails, 1, "one trial_started email");
}

/// The sweep hands each pending entry over once per pass, even to the in-process queue, which
/// leaves an entry in the outbox until its worker is done: a pass ends instead of spinning.
#[tokio::test]
async fn a_sweep_hands_each_entry_over_once() {
    let app = spawn_app().await;
    let now = app.clock.now() - chrono::Duration::minutes(5);
    let entries: Vec<stark::ports::OutboxEntry> = (0..150)
        .map(|i| stark::ports::OutboxEntry {
            created_at: now,
            job: stark::ports::EmailJob {
                job_id: uuid::Uuid::now_v7().to_string(),
                template: stark::ports::EmailTemplate::TrialStarted,
                to: stark::domain::Email::parse(&format!("sweep{i}@stark.example")).unwrap(),
                locale: "en".into(),
                vars: [("username", "tony"), ("product", "Mark"), ("plan", "Gold"), ("period_end", "2026-07-01")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                not_after: None,
            },
        })
        .collect();
    // A DynamoDB transaction holds at most 100 items.
    for chunk in entries.chunks(50) {
        let commit = stark::ports::Commit { outbox: chunk.to_vec(), ..Default::default() };
        app.ctx.stores.subscriptions.commit(&commit).await.unwrap();
    }
    let handed = stark::app::outbox::sweep(&app.ctx, chrono::Duration::zero()).await.unwrap();
    assert_eq!(handed, 150, "each entry once");
    app.flush_emails().await;
    let written = std::fs::read_dir(app.outbox())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "eml"))
        .count();
    assert_eq!(written, 150);
    let far = app.clock.now() + chrono::Duration::days(1);
    assert!(app.ctx.stores.outbox.pending_outbox(far, None, 10).await.unwrap().is_empty(), "all handled and removed");
}

#[tokio::test]
async fn thirty_purchases_mixing_plans_never_answer_a_server_error() {
    let (app, admin) = shop().await;
    let r = app.post_as("/api/services/products/STARK-MK85/plans/", &admin, plan_json("PLATINUM", 9000, 0)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let t = app.token("tony@stark.example", "tony").await;
    credit(&app, &admin, "tony@stark.example", 10_000_000).await;
    let app = Arc::new(app);
    let plans = ["BASIC", "GOLD", "PLATINUM"];
    let replies = race(&app, 30, |i| app.authed(reqwest::Method::POST, PURCHASE, &t).json(&buy(plans[i % 3]))).await;
    let summary: Vec<_> = replies.iter().map(|r| (r.status, r.code().to_string())).collect();
    for r in &replies {
        let fine = matches!(r.status, 200 | 201) || (r.status, r.code()) == (409, "already_subscribed");
        let lost = (r.status, r.code()) == (409, "lock_timeout");
        assert!(fine || lost, "{summary:?}");
        if lost {
            assert_eq!(r.header("retry-after"), Some("1"), "a lock_timeout says when to come back");
        }
    }
    assert!(count(&replies, 201, "") >= 1, "{summary:?}");
    // Money is right: what left the wallet is exactly what the payments say.
    let w = wallet(&app, &t).await;
    let debits: i64 = w["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["type"] == "debit")
        .map(|x| x["amount"]["amount_minor"].as_i64().unwrap())
        .sum();
    assert_eq!(w["balance"]["amount_minor"].as_i64().unwrap(), 10_000_000 - debits);
    let user_id = app.get("/api/auth/me/", Some(&t)).await.body["user"]["id"].as_str().unwrap().to_string();
    let paid: i64 =
        app.ctx.stores.subscriptions.payments(&user_id).await.unwrap().iter().map(|p| p.amount.amount_minor).sum();
    assert_eq!(paid, debits);
    assert_eq!(my_subscriptions(&app, &t).await.len(), 1, "one subscription, changed in place");
}

#[tokio::test]
async fn a_client_that_resets_its_connection_does_not_leave_its_key_stuck() {
    use tokio::io::AsyncWriteExt;
    let (app, admin) = shop().await;
    let t = app.token("tony@stark.example", "tony").await;
    credit(&app, &admin, "tony@stark.example", 100_000).await;
    let body = buy("GOLD").to_string();
    let raw = format!(
        "POST {PURCHASE} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nIdempotency-Key: abort-1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    s.write_all(raw.as_bytes()).await.unwrap();
    // A reset (RST), not a polite close, right after the request. (A zero linger does not
    // block on drop, which is what the deprecation warns about.)
    #[allow(deprecated)]
    s.set_linger(Some(std::time::Duration::ZERO)).unwrap();
    drop(s);
    // Well inside the key's lease: the first request finished (or released the key) by itself.
    let started = std::time::Instant::now();
    let r = loop {
        let r = purchase_with_key(&app, &t, "abort-1", buy("GOLD")).await;
        if (r.status, r.code()) != (409, "request_in_progress") || started.elapsed() > std::time::Duration::from_secs(3)
        {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(r.status, 201, "replayed or run once, not stuck: {}", r.body);
    assert_eq!(wallet(&app, &t).await["balance"]["amount_minor"], 95_000, "charged once");
    assert_eq!(my_subscriptions(&app, &t).await.len(), 1);
    let again = purchase_with_key(&app, &t, "abort-1", buy("GOLD")).await;
    assert_eq!((again.status, again.header("idempotent-replayed")), (201, Some("true")));
}
