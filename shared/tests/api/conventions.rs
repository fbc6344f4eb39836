//! The contract's conventions: envelopes, body handling, paths, methods, headers.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_reports_each_dependency() {
    let app = spawn_app().await;
    let r = app.get("/api/health/", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({ "status": "ok", "dependencies": { "store": "ok", "email_queue": "ok" } }));
}

#[tokio::test]
async fn paths_work_with_and_without_the_trailing_slash() {
    let app = spawn_app().await;
    assert_eq!(app.get("/api/health", None).await.status, 200);
    assert_eq!(app.get("/api/health/", None).await.status, 200);
    let r = app.post("/api/auth/resend-otp", json!({ "email": "a@stark.example" })).await;
    assert_eq!(r.status, 202);
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405() {
    let app = spawn_app().await;
    let r = app.get("/api/nothing/here/", None).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let r = app.get("/api/auth/login/", None).await;
    assert_eq!((r.status, r.code()), (405, "method_not_allowed"));
    assert_eq!(r.header("allow"), Some("POST"));
    let r = app.post("/api/health/", json!({})).await;
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn every_response_carries_language_headers() {
    let app = spawn_app().await;
    for r in [
        app.get("/api/health/", None).await,
        app.get("/api/nope", None).await,
        app.post_raw("/api/auth/login/", "{").await,
        app.post_raw("/api/auth/login/", vec![b'a'; 70 * 1024]).await,
    ] {
        assert_eq!(r.header("content-language"), Some("en"), "{}", r.status);
        assert_eq!(r.header("vary"), Some("Accept-Language"), "{}", r.status);
    }
}

#[tokio::test]
async fn bodies_that_are_not_json_objects_are_malformed() {
    let app = spawn_app().await;
    for body in ["{", "not json", "[1,2]", "\"a string\"", "42", "null", "{\"email\": }"] {
        let r = app.post_raw("/api/auth/signup/", body).await;
        assert_eq!((r.status, r.code()), (400, "malformed_json"), "{body}");
        assert!(r.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test]
async fn an_empty_body_counts_as_an_empty_object() {
    let app = spawn_app().await;
    let r = app.post_raw("/api/auth/signup/", "").await;
    assert_eq!((r.status, r.code()), (400, "validation_error"));
    let fields = r.body["error"]["fields"].as_object().unwrap();
    for f in ["email", "password", "username"] {
        assert!(fields.contains_key(f), "{f} missing from {fields:?}");
    }
}

#[tokio::test]
async fn oversize_bodies_are_413() {
    let app = spawn_app().await;
    let big = format!("{{\"email\":\"{}\"}}", "a".repeat(65 * 1024));
    let r = app.post_raw("/api/auth/signup/", big).await;
    assert_eq!((r.status, r.code()), (413, "payload_too_large"));
    // Just under the limit is parsed normally.
    let fits = format!("{{\"pad\":\"{}\"}}", "a".repeat(60 * 1024));
    assert_eq!(app.post_raw("/api/auth/signup/", fits).await.code(), "validation_error");
}

#[tokio::test]
async fn unknown_fields_are_ignored() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/api/auth/signup/",
            json!({ "email": "x@stark.example", "password": "longenough", "username": "xx_x", "admin": true }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["user"]["role"], "user");
}
