//! Login: credentials, verification, the progressive per-email lockout, hash upgrades, and
//! the production argon2 parameters end to end.

use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_on, Storage, PASSWORD};
use stark::domain::Email;
use stark::security::password_hash::{hash_with, HashCost};

#[tokio::test]
async fn login_returns_a_session() {
    let app = spawn_app().await;
    let id = app.verified_user("tony@stark.example", "tony").await;
    let r = app.login(" Tony@stark.example", PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 900);
    assert_eq!(r.body["access_token"].as_str().unwrap().split('.').count(), 3);
    assert!(r.body["refresh_token"].as_str().unwrap().len() >= 43);
    assert_eq!(r.body["user"]["id"], id.as_str());
    assert_eq!(r.body["user"]["email_verified"], true);
    assert!(r.body["message"].as_str().is_some());
}

#[tokio::test]
async fn unknown_email_and_wrong_password_look_the_same() {
    let app = spawn_app().await;
    app.verified_user("tony@stark.example", "tony").await;
    let wrong = app.login("tony@stark.example", "not-the-password").await;
    let unknown = app.login("ghost@stark.example", "not-the-password").await;
    assert_eq!((wrong.status, wrong.code()), (401, "invalid_credentials"));
    assert_eq!(wrong.status, unknown.status);
    assert_eq!(wrong.body, unknown.body);
}

#[tokio::test]
async fn an_unverified_account_cannot_log_in() {
    let app = spawn_app().await;
    app.signup("tony@stark.example", "tony").await;
    let r = app.login("tony@stark.example", PASSWORD).await;
    assert_eq!((r.status, r.code()), (403, "email_not_verified"));
    // A wrong password is still just wrong: verification status is not revealed to guessers.
    assert_eq!(app.login("tony@stark.example", "not-the-password").await.code(), "invalid_credentials");
}

#[tokio::test]
async fn failures_lock_progressively_and_success_resets() {
    let app = spawn_app().await;
    app.verified_user("tony@stark.example", "tony").await;
    for _ in 0..4 {
        assert_eq!(app.login("tony@stark.example", "wrong-password").await.status, 401);
    }
    let r = app.login("tony@stark.example", "wrong-password").await;
    assert_eq!((r.status, r.code()), (429, "too_many_attempts"));
    assert_eq!(r.header("retry-after"), Some("30"));
    // While locked even the right password is refused.
    app.advance(10);
    let r = app.login("tony@stark.example", PASSWORD).await;
    assert_eq!((r.status, r.header("retry-after")), (429, Some("20")));
    // Each further failure doubles the lock.
    app.advance(20);
    let r = app.login("tony@stark.example", "wrong-password").await;
    assert_eq!((r.status, r.header("retry-after")), (429, Some("60")));
    app.advance(60);
    let r = app.login("tony@stark.example", "wrong-password").await;
    assert_eq!(r.header("retry-after"), Some("120"));
    app.advance(120);
    assert_eq!(app.login("tony@stark.example", PASSWORD).await.status, 200);
    // The count starts again from zero.
    for _ in 0..4 {
        assert_eq!(app.login("tony@stark.example", "wrong-password").await.status, 401);
    }
}

#[tokio::test]
async fn the_lock_is_capped_at_fifteen_minutes() {
    let app = spawn_app().await;
    let mut last = None;
    for _ in 0..12 {
        let r = app.login("ghost@stark.example", "wrong-password").await;
        last = r.header("retry-after").map(str::to_string);
        if let Some(secs) = &last {
            app.advance(secs.parse().unwrap());
        }
    }
    assert_eq!(last.as_deref(), Some("900"));
}

#[tokio::test]
async fn an_unknown_email_locks_the_same_way() {
    let app = spawn_app().await;
    app.verified_user("tony@stark.example", "tony").await;
    for email in ["tony@stark.example", "ghost@stark.example"] {
        let statuses: Vec<(u16, Option<String>)> = {
            let mut v = Vec::new();
            for _ in 0..6 {
                let r = app.login(email, "wrong-password").await;
                v.push((r.status, r.header("retry-after").map(str::to_string)));
            }
            v
        };
        assert_eq!(
            statuses,
            vec![
                (401, None),
                (401, None),
                (401, None),
                (401, None),
                (429, Some("30".into())),
                (429, Some("30".into()))
            ],
            "{email}"
        );
    }
}

#[tokio::test]
async fn the_lock_is_per_email() {
    let app = spawn_app().await;
    app.verified_user("tony@stark.example", "tony").await;
    app.verified_user("pepper@stark.example", "pepper").await;
    for _ in 0..5 {
        app.login("tony@stark.example", "wrong-password").await;
    }
    assert_eq!(app.login("tony@stark.example", PASSWORD).await.status, 429);
    assert_eq!(app.login("pepper@stark.example", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn an_outdated_hash_is_upgraded_on_login() {
    let app = spawn_app().await;
    let id = app.verified_user("tony@stark.example", "tony").await;
    let old = hash_with(HashCost { m_kib: 32, t: 1, p: 1 }, PASSWORD).unwrap();
    let current = app.ctx.stores.users.user_by_id(&id).await.unwrap().unwrap().password_hash;
    assert!(app.ctx.stores.users.set_password_hash(&id, &current, &old).await.unwrap());
    assert_eq!(app.login("tony@stark.example", PASSWORD).await.status, 200);
    let user = app.ctx.stores.users.user_by_id(&id).await.unwrap().unwrap();
    assert!(user.password_hash.0.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{:?}", user.password_hash.0);
    assert_eq!(app.login("tony@stark.example", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn production_argon2_parameters_end_to_end() {
    let app = spawn_app_on(Storage::fresh().await, HashCost::PRODUCTION).await;
    app.verified_user("tony@stark.example", "tony").await;
    let stored =
        app.ctx.stores.users.user_by_email(&Email::parse("tony@stark.example").unwrap()).await.unwrap().unwrap();
    assert!(stored.password_hash.0.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", stored.password_hash.0);
    assert_eq!(app.login("tony@stark.example", PASSWORD).await.status, 200);
    assert_eq!(app.login("tony@stark.example", "wrong-password").await.status, 401);
    assert_eq!(app.login("ghost@stark.example", PASSWORD).await.status, 401);
}

#[tokio::test]
async fn login_validates_its_fields() {
    let app = spawn_app().await;
    let r = app.post("/api/auth/login/", json!({ "email": "nope", "password": 5 })).await;
    assert_eq!((r.status, r.code()), (400, "validation_error"));
    let fields = r.body["error"]["fields"].as_object().unwrap();
    assert!(fields.contains_key("email") && fields.contains_key("password"));
}

#[tokio::test]
async fn a_burst_of_guesses_gets_no_more_checks_than_the_lockout_allows() {
    let app = spawn_app().await;
    app.verified_user("tony@stark.example", "tony").await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (client, base) = (app.client.clone(), app.base.clone());
        tasks.push(tokio::spawn(async move {
            client
                .post(format!("{base}/api/auth/login/"))
                .json(&json!({ "email": "tony@stark.example", "password": "wrong-password" }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(checked, 4, "only the first four guesses may be answered 401: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 16, "{statuses:?}");
    // And the account is locked for the right one too.
    assert_eq!(app.login("tony@stark.example", PASSWORD).await.status, 429);
}

#[tokio::test]
async fn a_password_outside_the_length_rule_is_simply_wrong() {
    let app = spawn_app().await;
    app.verified_user("tony@stark.example", "tony").await;
    let wrong = app.login("tony@stark.example", "not-the-password").await;
    for impossible in ["", &"x".repeat(129), &"é".repeat(5000)] {
        let r = app.login("tony@stark.example", impossible).await;
        assert_eq!((r.status, r.code()), (401, "invalid_credentials"), "{impossible:?}: {}", r.body);
        assert_eq!(r.body, wrong.body);
        let unknown = app.login("ghost@stark.example", impossible).await;
        assert_eq!((unknown.status, unknown.body), (401, wrong.body.clone()));
    }
    // They count like any wrong guess: this is tony's fifth failure in a row.
    let r = app.login("tony@stark.example", "short").await;
    assert_eq!((r.status, r.code()), (429, "too_many_attempts"));
}
