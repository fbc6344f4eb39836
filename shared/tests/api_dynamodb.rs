//! The whole API suite again, with the DynamoDB store on moto_server behind the real local
//! server: the same rules must hold on the production adapter, not only on SQLite.

#[path = "support/aws.rs"]
mod aws;
#[path = "support/fake_translate.rs"]
mod fake_translate;
#[path = "api/helpers.rs"]
mod helpers;
#[path = "support/iam.rs"]
mod iam;
#[path = "support/parsed_mail.rs"]
mod parsed_mail;
#[path = "support/private_moto.rs"]
mod private_moto;

#[path = "api/billing.rs"]
mod billing;
#[path = "api/catalog.rs"]
mod catalog;
#[path = "api/conventions.rs"]
mod conventions;
#[path = "api/lifecycle.rs"]
mod lifecycle;
#[path = "api/login.rs"]
mod login;
#[path = "api/otp.rs"]
mod otp;
#[path = "api/outage.rs"]
mod outage;
#[path = "api/signup.rs"]
mod signup;
#[path = "api/tokens.rs"]
mod tokens;

const BACKEND: helpers::Backend = helpers::Backend::Dynamodb;

/// The catalog list is kept in process for a short bound: warm pages within it cost no
/// DynamoDB call, a write through the same process shows at once, and text in another
/// language still goes through the translation layer (L1 here) on every page.
#[tokio::test]
async fn warm_catalog_pages_make_no_dynamodb_call() {
    use stark::http::Endpoint::{GetProduct, ListProducts};
    let fake = fake_translate::FakeTranslate::start().await;
    let app = helpers::spawn_app_translated(&fake).await;
    let admin = catalog::admin(&app).await;
    assert_eq!(app.post_as("/api/services/products/", &admin, catalog::product_json("STARK-MK85")).await.status, 201);

    let first = app.get("/api/services/products/", None).await;
    assert_eq!(first.status, 200);
    let cold = app.storage().dynamodb_calls(ListProducts);
    assert!(cold >= 1, "the first page reads the store");
    for _ in 0..20 {
        let page = app.get("/api/services/products/", None).await;
        assert_eq!(page.body, first.body);
        assert_eq!(app.get("/api/services/products/STARK-MK85/", None).await.status, 200);
    }
    assert_eq!(app.storage().dynamodb_calls(ListProducts), cold, "warm pages within the bound read nothing");
    assert_eq!(app.storage().dynamodb_calls(GetProduct), 0, "a listed product comes from the list");

    // Translated text keeps its own path: one Translate call per text, then L1.
    let translated = |lang: &'static str| {
        app.send(app.client.get(format!("{}/api/services/products/", app.base)).header("accept-language", lang))
    };
    let fr = translated("fr").await;
    assert_eq!(fr.status, 200);
    let calls = fake.calls();
    assert!(calls > 0, "French text comes from the translator");
    assert_eq!(translated("fr").await.body, fr.body);
    assert_eq!(fake.calls(), calls, "then from the in-process cache");
    assert_eq!(app.storage().dynamodb_calls(ListProducts), cold);

    // A write through this process drops the list at once.
    let r =
        app.patch_as("/api/services/products/STARK-MK85/", &admin, serde_json::json!({ "name": "Mark LXXXVI" })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(app.get("/api/services/products/", None).await.body["products"][0]["name"], "Mark LXXXVI");
    assert_eq!(app.storage().dynamodb_calls(ListProducts), cold + 1);
}
