use serde_json::json;

use crate::helpers::{code_in, spawn_app, PASSWORD};

#[tokio::test]
async fn signup_creates_an_unverified_user_and_emails_a_code() {
    let app = spawn_app().await;
    let r = app.signup("  Tony@Stark.Example ", "Tony_Stark").await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    let user = &r.body["user"];
    assert_eq!(user["email"], "tony@stark.example");
    assert_eq!(user["username"], "Tony_Stark");
    assert_eq!(user["role"], "user");
    assert_eq!(user["email_verified"], false);
    assert_eq!(user["locale"], "en");
    assert_eq!(user["created_at"], "2026-06-01T09:00:00Z");
    assert!(user["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(user.get("password_hash").is_none());
    let emails = app.wait_for_emails("tony@stark.example", 1).await;
    let code = code_in(&emails[0]);
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));
    assert!(emails[0].contains("Content-Type: multipart/alternative"));
}

#[tokio::test]
async fn email_and_username_must_be_unique() {
    let app = spawn_app().await;
    assert_eq!(app.signup("pepper@stark.example", "pepper").await.status, 201);
    let r = app.signup("PEPPER@stark.example", "other").await;
    assert_eq!((r.status, r.code()), (409, "email_taken"));
    let r = app.signup("potts@stark.example", "PePPeR").await;
    assert_eq!((r.status, r.code()), (409, "username_taken"));
}

#[tokio::test]
async fn every_bad_field_is_named() {
    let app = spawn_app().await;
    let cases = [
        (json!({ "email": "nope", "password": PASSWORD, "username": "okay" }), "email"),
        (json!({ "email": 7, "password": PASSWORD, "username": "okay" }), "email"),
        (json!({ "email": "a@stark.example", "password": "short", "username": "okay" }), "password"),
        (json!({ "email": "a@stark.example", "password": "x".repeat(129), "username": "okay" }), "password"),
        (json!({ "email": "a@stark.example", "password": ["x"], "username": "okay" }), "password"),
        (json!({ "email": "a@stark.example", "password": PASSWORD, "username": "ab" }), "username"),
        (json!({ "email": "a@stark.example", "password": PASSWORD, "username": "a".repeat(33) }), "username"),
        (json!({ "email": "a@stark.example", "password": PASSWORD, "username": "tony stark" }), "username"),
        (json!({ "email": "a@stark.example", "password": PASSWORD, "username": null }), "username"),
        (json!({ "email": "a@stark.example", "password": PASSWORD }), "username"),
    ];
    for (body, field) in cases {
        let r = app.post("/api/auth/signup/", body.clone()).await;
        assert_eq!((r.status, r.code()), (400, "validation_error"), "{body}");
        let fields = r.body["error"]["fields"].as_object().unwrap();
        assert_eq!(fields.keys().collect::<Vec<_>>(), vec![field], "{body}");
        assert!(fields[field].as_str().is_some_and(|m| !m.is_empty()));
    }
    app.flush_emails().await;
    assert_eq!(app.count_emails("a@stark.example"), 0, "no account, no email");
}

#[tokio::test]
async fn password_length_counts_characters() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/api/auth/signup/",
            json!({ "email": "u@stark.example", "password": "ü".repeat(8), "username": "umlaut" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}
