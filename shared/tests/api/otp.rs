//! Verification and reset codes: expiry, the 5-try void, cooldown, the hourly cap,
//! persistence across a restart, and enumeration-safe answers.

use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_on, spawn_app_with, Storage, PASSWORD};
use stark::security::password_hash::HashCost;

fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

#[tokio::test]
async fn the_emailed_code_verifies_once() {
    let app = spawn_app().await;
    app.signup("tony@stark.example", "tony").await;
    let code = app.wait_for_code("tony@stark.example", 1).await;
    let r = app.post("/api/auth/verify-otp/", json!({ "email": "TONY@stark.example", "otp": code })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["user"]["email_verified"], true);
    assert!(r.body["message"].as_str().is_some());
    let r = app.post("/api/auth/verify-otp/", json!({ "email": "tony@stark.example", "otp": code })).await;
    assert_eq!((r.status, r.code()), (409, "already_verified"));
    assert_eq!(app.get("/api/health", None).await.status, 200);
}

#[tokio::test]
async fn unknown_email_and_bad_codes_are_otp_invalid() {
    let app = spawn_app().await;
    let r = app.post("/api/auth/verify-otp/", json!({ "email": "ghost@stark.example", "otp": "123456" })).await;
    assert_eq!((r.status, r.code()), (400, "otp_invalid"));
    for otp in [json!("12345"), json!("abcdef"), json!(123456), json!(null)] {
        let r = app.post("/api/auth/verify-otp/", json!({ "email": "ghost@stark.example", "otp": otp })).await;
        assert_eq!((r.status, r.code()), (400, "validation_error"), "{otp}");
        assert!(r.body["error"]["fields"]["otp"].is_string());
    }
}

#[tokio::test]
async fn a_code_expires_after_ten_minutes() {
    let app = spawn_app().await;
    app.signup("tony@stark.example", "tony").await;
    let code = app.wait_for_code("tony@stark.example", 1).await;
    app.advance(10 * 60);
    let r = app.post("/api/auth/verify-otp/", json!({ "email": "tony@stark.example", "otp": code })).await;
    assert_eq!((r.status, r.code()), (400, "otp_expired"));
}

#[tokio::test]
async fn a_code_just_inside_ten_minutes_still_works() {
    let app = spawn_app().await;
    app.signup("tony@stark.example", "tony").await;
    let code = app.wait_for_code("tony@stark.example", 1).await;
    app.advance(10 * 60 - 1);
    let r = app.post("/api/auth/verify-otp/", json!({ "email": "tony@stark.example", "otp": code })).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn the_fifth_wrong_try_voids_the_code() {
    let app = spawn_app().await;
    app.signup("tony@stark.example", "tony").await;
    let code = app.wait_for_code("tony@stark.example", 1).await;
    let bad = wrong(&code);
    for _ in 0..4 {
        let r = app.post("/api/auth/verify-otp/", json!({ "email": "tony@stark.example", "otp": bad })).await;
        assert_eq!((r.status, r.code()), (400, "otp_invalid"));
    }
    app.advance(20);
    let r = app.post("/api/auth/verify-otp/", json!({ "email": "tony@stark.example", "otp": bad })).await;
    assert_eq!((r.status, r.code()), (429, "otp_attempts_exceeded"));
    // Retry-After says when a new code can be asked for: the signup send's cooldown ends at 60 s.
    assert_eq!(r.header("retry-after"), Some("40"));
    // The right code no longer works: it was voided.
    let r = app.post("/api/auth/verify-otp/", json!({ "email": "tony@stark.example", "otp": code })).await;
    assert_eq!((r.status, r.code()), (400, "otp_invalid"));
    // A new code can be asked for once the cooldown passes, and it works.
    app.advance(41);
    assert_eq!(app.post("/api/auth/resend-otp/", json!({ "email": "tony@stark.example" })).await.status, 202);
    let fresh = app.wait_for_code("tony@stark.example", 2).await;
    let r = app.post("/api/auth/verify-otp/", json!({ "email": "tony@stark.example", "otp": fresh })).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn resend_has_a_cooldown_and_an_hourly_cap() {
    let app = spawn_app().await;
    app.signup("tony@stark.example", "tony").await;
    let first = app.wait_for_code("tony@stark.example", 1).await;
    // The signup code counts as a send.
    let r = app.post("/api/auth/resend-otp/", json!({ "email": "tony@stark.example" })).await;
    assert_eq!((r.status, r.code()), (429, "otp_resend_cooldown"));
    assert_eq!(r.header("retry-after"), Some("60"));
    app.advance(30);
    let r = app.post("/api/auth/resend-otp/", json!({ "email": "tony@stark.example" })).await;
    assert_eq!(r.header("retry-after"), Some("30"));
    app.advance(30);
    let r = app.post("/api/auth/resend-otp/", json!({ "email": "tony@stark.example" })).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(r.body["message"].as_str().is_some());
    app.wait_for_code("tony@stark.example", 2).await;
    // A new code replaces the old one: the stored record is the one made now, with fresh tries.
    let email = stark::domain::Email::parse("tony@stark.example").unwrap();
    let stored = app.ctx.stores.otps.get_otp(&email, stark::domain::OtpPurpose::Verification).await.unwrap().unwrap();
    assert_eq!(stored.created_at, crate::helpers::start_time() + chrono::Duration::seconds(60));
    // And the first code is dead (a one-in-a-million draw of the same code would fail here).
    let r = app.post("/api/auth/verify-otp/", json!({ "email": "tony@stark.example", "otp": first })).await;
    assert_eq!((r.status, r.code()), (400, "otp_invalid"));
    // Sends 3, 4 and 5 at one-minute steps; the sixth within the hour is refused.
    for n in 3..=5 {
        app.advance(60);
        let r = app.post("/api/auth/resend-otp/", json!({ "email": "tony@stark.example" })).await;
        assert_eq!(r.status, 202, "send {n}");
    }
    app.advance(60);
    let r = app.post("/api/auth/resend-otp/", json!({ "email": "tony@stark.example" })).await;
    assert_eq!((r.status, r.code()), (429, "otp_resend_cooldown"));
    // The first send (signup at t=0) leaves the hour at t=3600; we are at t=300.
    assert_eq!(r.header("retry-after"), Some("3300"));
    // The fifth email is written before the clock jumps past its code's expiry (an expired
    // code's email is dropped, not sent late); on a loaded machine it could still be queued.
    app.flush_emails().await;
    app.advance(3300);
    assert_eq!(app.post("/api/auth/resend-otp/", json!({ "email": "tony@stark.example" })).await.status, 202);
    assert_eq!(app.wait_for_emails("tony@stark.example", 6).await.len(), 6);
}

#[tokio::test]
async fn resend_and_forgot_answer_the_same_for_unknown_accounts() {
    let app = spawn_app().await;
    app.verified_user("known@stark.example", "known").await;
    app.advance(61); // past the cooldown of the signup send
    for path in ["/api/auth/resend-otp/", "/api/auth/forgot-password/"] {
        let known = app.post(path, json!({ "email": "known@stark.example" })).await;
        let unknown = app.post(path, json!({ "email": "unknown@stark.example" })).await;
        assert_eq!(unknown.status, 202, "{path}");
        assert_eq!(known.status, unknown.status, "{path}");
        assert_eq!(known.body, unknown.body, "{path}");
        // The limiter treats both alike too, so a burst reveals nothing either.
        let known = app.post(path, json!({ "email": "known@stark.example" })).await;
        let unknown = app.post(path, json!({ "email": "unknown@stark.example" })).await;
        assert_eq!((known.status, unknown.status), (429, 429), "{path}");
        assert_eq!(known.header("retry-after"), unknown.header("retry-after"));
    }
    app.flush_emails().await;
    assert_eq!(app.count_emails("unknown@stark.example"), 0);
    // known: the signup code and one reset code; a verified account gets no resend.
    assert_eq!(app.count_emails("known@stark.example"), 2);
}

#[tokio::test]
async fn codes_and_keys_survive_a_restart() {
    let app = spawn_app().await;
    app.verified_user("pepper@stark.example", "pepper").await;
    let token = app.login("pepper@stark.example", PASSWORD).await.body["access_token"].as_str().unwrap().to_string();
    app.signup("tony@stark.example", "tony").await;
    let code = app.wait_for_code("tony@stark.example", 1).await;
    let storage = app.stop().await;

    let app = spawn_app_on(storage, HashCost::TEST).await;
    let r = app.post("/api/auth/verify-otp/", json!({ "email": "tony@stark.example", "otp": code })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The signing key was kept: a token issued before the restart still checks out.
    assert_eq!(app.get("/api/auth/me/", Some(&token)).await.status, 200);
    // So was the send window: the signup send still blocks an immediate resend.
    let r = app.post("/api/auth/resend-otp/", json!({ "email": "tony@stark.example" })).await;
    assert_eq!(r.status, 429);
}

#[tokio::test]
async fn forgot_and_reset_password() {
    let app = spawn_app().await;
    app.verified_user("tony@stark.example", "tony").await;
    let session = app.login("tony@stark.example", PASSWORD).await;
    assert_eq!(session.status, 200);
    let old_refresh = session.body["refresh_token"].as_str().unwrap().to_string();

    let r = app.post("/api/auth/forgot-password/", json!({ "email": "tony@stark.example" })).await;
    assert_eq!(r.status, 202);
    let code = app.wait_for_code("tony@stark.example", 2).await;
    assert!(app.wait_for_emails("tony@stark.example", 2).await[1].contains("Reset your Stark password"));

    let r = app
        .post(
            "/api/auth/reset-password/",
            json!({ "email": "tony@stark.example", "otp": wrong(&code), "new_password": "Mark-42-is-better" }),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "otp_invalid"));
    let r = app
        .post(
            "/api/auth/reset-password/",
            json!({ "email": "tony@stark.example", "otp": code, "new_password": "short" }),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "validation_error"));
    assert!(r.body["error"]["fields"]["new_password"].is_string());
    let r = app
        .post(
            "/api/auth/reset-password/",
            json!({ "email": "tony@stark.example", "otp": code, "new_password": "Mark-42-is-better" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["message"].as_str().is_some());
    // The code is spent, the old password is dead, and so is every refresh token.
    let r = app
        .post(
            "/api/auth/reset-password/",
            json!({ "email": "tony@stark.example", "otp": code, "new_password": "Another-one-1" }),
        )
        .await;
    assert_eq!(r.code(), "otp_invalid");
    assert_eq!(app.login("tony@stark.example", PASSWORD).await.status, 401);
    assert_eq!(app.login("tony@stark.example", "Mark-42-is-better").await.status, 200);
    let r = app.post("/api/auth/refresh/", json!({ "refresh_token": old_refresh })).await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
}

#[tokio::test]
async fn reset_codes_expire_and_void_like_verification_codes() {
    let app = spawn_app().await;
    app.verified_user("tony@stark.example", "tony").await;
    app.post("/api/auth/forgot-password/", json!({ "email": "tony@stark.example" })).await;
    let code = app.wait_for_code("tony@stark.example", 2).await;
    for _ in 0..4 {
        let r = app
            .post(
                "/api/auth/reset-password/",
                json!({ "email": "tony@stark.example", "otp": wrong(&code), "new_password": "Mark-42-is-better" }),
            )
            .await;
        assert_eq!(r.code(), "otp_invalid");
    }
    let r = app
        .post(
            "/api/auth/reset-password/",
            json!({ "email": "tony@stark.example", "otp": wrong(&code), "new_password": "Mark-42-is-better" }),
        )
        .await;
    assert_eq!((r.status, r.code()), (429, "otp_attempts_exceeded"));
    app.advance(61);
    app.post("/api/auth/forgot-password/", json!({ "email": "tony@stark.example" })).await;
    let code = app.wait_for_code("tony@stark.example", 3).await;
    app.advance(600);
    let r = app
        .post(
            "/api/auth/reset-password/",
            json!({ "email": "tony@stark.example", "otp": code, "new_password": "Mark-42-is-better" }),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "otp_expired"));
    let r = app
        .post(
            "/api/auth/reset-password/",
            json!({ "email": "ghost@stark.example", "otp": code, "new_password": "Mark-42-is-better" }),
        )
        .await;
    assert_eq!(r.code(), "otp_invalid");
}

#[tokio::test]
async fn resend_and_forgot_take_at_least_the_floor_for_any_account() {
    // Not a speed target: a lower bound that a sleep guarantees, whatever the machine.
    let floor = std::time::Duration::from_millis(120);
    let app = spawn_app_with(Storage::fresh().await, HashCost::TEST, floor).await;
    app.signup("known@stark.example", "known").await;
    app.advance(61);
    for (path, email) in [
        ("/api/auth/resend-otp/", "known@stark.example"),
        ("/api/auth/resend-otp/", "unknown@stark.example"),
        ("/api/auth/forgot-password/", "known@stark.example"),
        ("/api/auth/forgot-password/", "unknown@stark.example"),
    ] {
        let started = std::time::Instant::now();
        let r = app.post(path, json!({ "email": email })).await;
        assert_eq!(r.status, 202, "{path} {email}");
        assert!(started.elapsed() >= floor, "{path} {email} answered in {:?}", started.elapsed());
    }
}
