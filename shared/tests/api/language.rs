//! Language negotiation through the real local server: `Content-Language` and `Vary` on
//! every response, errors included, and texts in the negotiated language.

use serde_json::json;

use stark::i18n::{text_in, Lang};

use crate::helpers::{spawn_app, Reply, TestApp};

impl TestApp {
    async fn get_in(&self, path: &str, accept_language: &str) -> Reply {
        self.send(self.client.get(format!("{}{path}", self.base)).header("accept-language", accept_language)).await
    }

    async fn post_in(&self, path: &str, accept_language: &str, body: impl Into<reqwest::Body>) -> Reply {
        self.send(
            self.client.post(format!("{}{path}", self.base)).header("accept-language", accept_language).body(body),
        )
        .await
    }
}

fn assert_in(r: &Reply, lang: Lang) {
    assert_eq!(r.header("content-language"), Some(lang.as_str()), "{} {}", r.status, r.body);
    assert_eq!(r.header("vary"), Some("Accept-Language"), "{}", r.status);
}

/// The error message is the catalog's text for its code in `lang`.
fn assert_error_in(r: &Reply, lang: Lang) {
    assert_in(r, lang);
    assert_eq!(r.body["error"]["message"], text_in(lang, r.code()), "{}", r.body);
}

#[tokio::test]
async fn errors_are_answered_in_the_negotiated_language() {
    let app = spawn_app().await;
    let fr = "fr-CA;q=0.9, de;q=0.8";
    let r = app.get_in("/api/nothing/here/", fr).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    assert_error_in(&r, Lang::Fr);
    assert_ne!(r.body["error"]["message"], text_in(Lang::En, "not_found"));

    let r = app.get_in("/api/auth/login/", "ja").await;
    assert_eq!(r.status, 405);
    assert_error_in(&r, Lang::Ja);

    let r = app.post_in("/api/auth/login/", "de-AT", "{").await;
    assert_eq!((r.status, r.code()), (400, "malformed_json"));
    assert_error_in(&r, Lang::De);

    // Refused by the local server before the body is read: still localized.
    let r = app.post_in("/api/auth/login/", "hi", vec![b'a'; 70 * 1024]).await;
    assert_eq!((r.status, r.code()), (413, "payload_too_large"));
    assert_error_in(&r, Lang::Hi);
}

#[tokio::test]
async fn field_problems_are_localized_too() {
    let app = spawn_app().await;
    let r = app.post_in("/api/auth/signup/", "es-MX", r#"{"email": "not-an-email", "password": 5}"#).await;
    assert_eq!((r.status, r.code()), (400, "validation_error"));
    assert_error_in(&r, Lang::Es);
    let fields = &r.body["error"]["fields"];
    assert_eq!(fields["email"], text_in(Lang::Es, "field.email"));
    assert_eq!(fields["password"], text_in(Lang::Es, "field.string"));
    assert_eq!(fields["username"], text_in(Lang::Es, "field.required"));
}

#[tokio::test]
async fn successes_carry_the_language_and_a_localized_message() {
    let app = spawn_app().await;
    let r = app.get_in("/api/health/", "en;q=0, ja;q=0.5, *;q=0.1").await;
    assert_eq!(r.status, 200);
    assert_in(&r, Lang::Ja);

    let r = app.post_in("/api/auth/resend-otp/", "de", json!({ "email": "nobody@stark.example" }).to_string()).await;
    assert_eq!(r.status, 202);
    assert_in(&r, Lang::De);
    assert_eq!(r.body["message"], text_in(Lang::De, "resend_ok"));
}

#[tokio::test]
async fn garbage_or_unsupported_languages_fall_back_to_english_quietly() {
    let app = spawn_app().await;
    for header in ["!!!", "pt-BR, zh;q=0.9", "fr;q=0", ";;;", "x".repeat(8000).as_str()] {
        let r = app.get_in("/api/nope/", header).await;
        assert_eq!(r.status, 404, "{header:?}");
        assert_error_in(&r, Lang::En);
    }
    // Without the header at all.
    let r = app.get("/api/nope/", None).await;
    assert_error_in(&r, Lang::En);
}

#[tokio::test]
async fn signup_stores_the_negotiated_language_as_the_locale() {
    let app = spawn_app().await;
    let body = json!({ "email": "pepper@stark.example", "password": crate::helpers::PASSWORD, "username": "pepper" });
    let r = app.post_in("/api/auth/signup/", "es-ES, en;q=0.5", body.to_string()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["user"]["locale"], "es");
    assert_eq!(r.body["message"], text_in(Lang::Es, "signup_ok"));
    assert_in(&r, Lang::Es);
}
