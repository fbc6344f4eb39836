//! The product registry through the API: who may write what, what anyone may read, and
//! every kind of bad input answered with a 400 that names the field.

use serde_json::{json, Value};
use stark::domain::Role;

use crate::helpers::{spawn_app, TestApp};

const PRODUCTS: &str = "/api/services/products/";

pub fn plan_json(id: &str, price: i64, trial_days: i64) -> Value {
    json!({
        "plan_id": id, "name": format!("Plan {id}"), "period": "monthly",
        "price": { "amount_minor": price, "currency": "USD" }, "trial_days": trial_days,
    })
}

pub fn product_json(id: &str) -> Value {
    json!({
        "product_id": id,
        "name": "Mark LXXXV",
        "description": "Nanotech armour.",
        "translations": { "es": { "name": "Marca LXXXV" } },
        "plans": [plan_json("BASIC", 1000, 0), plan_json("GOLD", 5000, 14)],
    })
}

pub async fn admin(app: &TestApp) -> String {
    app.token_with_role("admin@stark.example", "admin", Role::Admin).await
}

#[tokio::test]
async fn an_admin_creates_and_anyone_reads_active_products() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let r = app.post_as(PRODUCTS, &admin, product_json("STARK-MK85")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["product_id"], "STARK-MK85");
    assert_eq!(r.body["name"], "Mark LXXXV");
    let plans = r.body["plans"].as_array().unwrap();
    assert_eq!(
        plans[0],
        json!({
            "plan_id": "BASIC", "name": "Plan BASIC", "period": "monthly", "period_days": null,
            "price": { "amount_minor": 1000, "currency": "USD" }, "trial_days": 0,
        })
    );
    assert_eq!(plans[1]["plan_id"], "GOLD");

    // Anyone, no token: the list and the product.
    let list = app.get(PRODUCTS, None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["products"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["products"][0]["product_id"], "STARK-MK85");
    let one = app.get("/api/services/products/STARK-MK85/", None).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body, r.body);
    let one = app.get("/api/services/products/STARK-MK85", None).await;
    assert_eq!(one.status, 200, "served without the trailing slash too");

    let r = app.post_as(PRODUCTS, &admin, product_json("STARK-MK85")).await;
    assert_eq!((r.status, r.code()), (409, "product_exists"));

    // Archived products disappear for everyone reading.
    let r = app.patch_as("/api/services/products/STARK-MK85/", &admin, json!({ "status": "archived" })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(app.get(PRODUCTS, None).await.body["products"], json!([]));
    let r = app.get("/api/services/products/STARK-MK85/", None).await;
    assert_eq!((r.status, r.code()), (404, "product_not_found"));
    let r = app.patch_as("/api/services/products/STARK-MK85/", &admin, json!({ "status": "active" })).await;
    assert_eq!(r.status, 200);
    assert_eq!(app.get("/api/services/products/STARK-MK85/", None).await.status, 200);
}

#[tokio::test]
async fn providers_own_what_they_create_and_users_write_nothing() {
    let app = spawn_app().await;
    let p1 = app.token_with_role("p1@stark.example", "provider1", Role::Provider).await;
    let p2 = app.token_with_role("p2@stark.example", "provider2", Role::Provider).await;
    let user = app.token("user@stark.example", "user1").await;
    let admin = admin(&app).await;

    let r = app.post_as(PRODUCTS, &user, product_json("USER-MADE")).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    let r = app.post(PRODUCTS, product_json("ANON-MADE")).await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
    assert_eq!(app.post_as(PRODUCTS, &p1, product_json("P1-PRODUCT")).await.status, 201);

    let path = "/api/services/products/P1-PRODUCT/";
    let r = app.patch_as(path, &p2, json!({ "name": "Stolen" })).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    let r = app.patch_as(path, &user, json!({ "name": "Stolen" })).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    let r = app.post_as(&format!("{path}plans/"), &p2, plan_json("EXTRA", 1, 0)).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    let r = app.send(app.authed(reqwest::Method::GET, &format!("{path}subscribers/"), &p2)).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));

    let r = app.patch_as(path, &p1, json!({ "name": "Renamed", "description": "New words." })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!((r.body["name"].as_str(), r.body["description"].as_str()), (Some("Renamed"), Some("New words.")));
    let r = app.patch_as(path, &admin, json!({ "name": "By admin" })).await;
    assert_eq!(r.status, 200, "admins manage every product");
    let r = app.post_as(&format!("{path}plans/"), &p1, plan_json("YEARLY", 9000, 0)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["plan_id"], "YEARLY");
    let r = app.post_as(&format!("{path}plans/"), &p1, plan_json("YEARLY", 9000, 0)).await;
    assert_eq!((r.status, r.code()), (409, "plan_exists"));
    let r = app.post_as("/api/services/products/NOPE-NOPE/plans/", &admin, plan_json("YEARLY", 1, 0)).await;
    assert_eq!((r.status, r.code()), (404, "product_not_found"));
    let r = app.patch_as("/api/services/products/NOPE-NOPE/", &admin, json!({ "name": "x" })).await;
    assert_eq!((r.status, r.code()), (404, "product_not_found"));
    let got = app.get(path, None).await;
    assert_eq!(got.body["name"], "By admin");
    assert_eq!(got.body["plans"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn custom_plans_carry_their_period_days() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let mut p = product_json("CUSTOM-1");
    p["plans"] = json!([{ "plan_id": "DAYS_45", "name": "45 days", "period": "custom", "period_days": 45,
                          "price": { "amount_minor": 700, "currency": "USD" } }]);
    let r = app.post_as(PRODUCTS, &admin, p).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["plans"][0]["period"], "custom");
    assert_eq!(r.body["plans"][0]["period_days"], 45);
    assert_eq!(r.body["plans"][0]["trial_days"], 0);
}

/// Each bad input is a 400 `validation_error` naming exactly the field.
#[tokio::test]
async fn bad_catalog_input_names_the_field() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let with = |f: &dyn Fn(&mut Value)| {
        let mut p = product_json("GOOD-ID");
        f(&mut p);
        p
    };
    let cases: Vec<(Value, &str)> = vec![
        (with(&|p| p["product_id"] = json!("bad id")), "product_id"),
        (with(&|p| p["product_id"] = json!("lower-case")), "product_id"),
        (with(&|p| p["product_id"] = json!("X")), "product_id"),
        (with(&|p| p["product_id"] = json!(42)), "product_id"),
        (with(&|p| p["name"] = json!("")), "name"),
        (with(&|p| p["name"] = json!("x".repeat(201))), "name"),
        (with(&|p| p["plans"][0]["plan_id"] = json!("gold")), "plans[0].plan_id"),
        (with(&|p| p["plans"][1]["plan_id"] = json!("BASIC")), "plans[1].plan_id"),
        (with(&|p| p["plans"][0]["price"]["amount_minor"] = json!(-1)), "plans[0].price.amount_minor"),
        (with(&|p| p["plans"][0]["price"]["amount_minor"] = json!(100_000_001)), "plans[0].price.amount_minor"),
        (with(&|p| p["plans"][0]["price"]["amount_minor"] = json!(10.5)), "plans[0].price.amount_minor"),
        (with(&|p| p["plans"][0]["price"]["amount_minor"] = json!(1e3)), "plans[0].price.amount_minor"),
        (with(&|p| p["plans"][0]["price"]["amount_minor"] = json!("1000")), "plans[0].price.amount_minor"),
        (
            with(&|p| p["plans"][0]["price"]["amount_minor"] = json!(9_223_372_036_854_775_807i64)),
            "plans[0].price.amount_minor",
        ),
        (with(&|p| p["plans"][0]["price"]["currency"] = json!("EUR")), "plans[0].price.currency"),
        (with(&|p| p["plans"][0]["price"] = json!(1000)), "plans[0].price"),
        (with(&|p| p["plans"][0]["period"] = json!("daily")), "plans[0].period"),
        (with(&|p| p["plans"][0]["period"] = json!("custom")), "plans[0].period_days"),
        (with(&|p| p["plans"][0]["period_days"] = json!(30)), "plans[0].period_days"),
        (
            with(&|p| {
                p["plans"][0]["period"] = json!("custom");
                p["plans"][0]["period_days"] = json!(0)
            }),
            "plans[0].period_days",
        ),
        (with(&|p| p["plans"][0]["trial_days"] = json!(-1)), "plans[0].trial_days"),
        (with(&|p| p["plans"][0]["trial_days"] = json!(731)), "plans[0].trial_days"),
        (with(&|p| p["plans"][0] = json!("GOLD")), "plans[0]"),
        (with(&|p| p["plans"] = json!({})), "plans"),
        (
            with(&|p| p["plans"] = Value::Array((0..51).map(|i| plan_json(&format!("P{i:02}"), 1, 0)).collect())),
            "plans",
        ),
        (with(&|p| p["translations"] = json!({ "xx": { "name": "?" } })), "translations.xx"),
        (with(&|p| p["translations"] = json!({ "es-MX": { "name": "?" } })), "translations.es-MX"),
        (with(&|p| p["translations"] = json!(["es"])), "translations"),
        (with(&|p| p["translations"] = json!({ "fr": { "name": 5 } })), "translations.fr.name"),
    ];
    for (body, field) in cases {
        let r = app.post_as(PRODUCTS, &admin, body.clone()).await;
        assert_eq!((r.status, r.code()), (400, "validation_error"), "{field}: {}", r.body);
        let fields = r.body["error"]["fields"].as_object().unwrap();
        assert!(fields.contains_key(field), "expected {field} in {fields:?}");
        assert_eq!(fields.len(), 1, "only {field} is wrong: {fields:?}");
    }
    // Nothing was created by any of them.
    assert_eq!(app.get(PRODUCTS, None).await.body["products"], json!([]));

    // The same rules hold for a plan posted alone and for PATCH.
    assert_eq!(app.post_as(PRODUCTS, &admin, product_json("GOOD-ID")).await.status, 201);
    let r = app
        .post_as("/api/services/products/GOOD-ID/plans/", &admin, json!({ "plan_id": "W1", "name": "w", "period": "weekly", "period_days": 7, "price": { "amount_minor": 1, "currency": "USD" } }))
        .await;
    assert_eq!(r.body["error"]["fields"].as_object().unwrap().keys().collect::<Vec<_>>(), ["period_days"]);
    let r = app.patch_as("/api/services/products/GOOD-ID/", &admin, json!({ "status": "deleted" })).await;
    assert_eq!(r.body["error"]["fields"].as_object().unwrap().keys().collect::<Vec<_>>(), ["status"]);
    let r = app.patch_as("/api/services/products/GOOD-ID/", &admin, json!({ "translations": { "klingon": {} } })).await;
    assert_eq!(r.status, 400);
    // A malformed id in the path is a 400 naming it; a well-formed unknown one is a 404.
    let r = app.get("/api/services/products/not%20an%20id/", None).await;
    assert_eq!((r.status, r.code()), (400, "validation_error"));
    assert!(r.body["error"]["fields"]["product_id"].is_string());
    let r = app.get("/api/services/products/UNKNOWN-ID/", None).await;
    assert_eq!((r.status, r.code()), (404, "product_not_found"));
}

/// Product texts in the request's language: the stored translation field by field, the rest
/// machine-translated (here by the local TranslateText server), English served as written.
#[tokio::test]
async fn products_are_served_in_the_request_language() {
    let fake = crate::fake_translate::FakeTranslate::start().await;
    let app = crate::helpers::spawn_app_translated(&fake).await;
    let admin = admin(&app).await;
    assert_eq!(app.post_as(PRODUCTS, &admin, product_json("STARK-MK85")).await.status, 201);
    let get = |lang: &'static str| {
        app.send(
            app.client.get(format!("{}/api/services/products/STARK-MK85/", app.base)).header("accept-language", lang),
        )
    };
    let es = get("es-MX, en;q=0.5").await;
    assert_eq!(es.header("content-language"), Some("es"));
    assert_eq!(es.body["name"], "Marca LXXXV", "the stored translation");
    assert_eq!(es.body["description"], "[es] Nanotech armour.", "machine-translated: none stored");
    let calls = fake.calls();
    let en = get("en").await;
    assert_eq!(
        (en.body["name"].as_str(), en.body["description"].as_str()),
        (Some("Mark LXXXV"), Some("Nanotech armour."))
    );
    let list = app.send(app.client.get(format!("{}{PRODUCTS}", app.base)).header("accept-language", "fr")).await;
    assert_eq!(list.body["products"][0]["name"], "[fr] Mark LXXXV");
    assert_eq!(list.header("content-language"), Some("fr"));
    // Warm: the same texts again cost no Translate call.
    let before = fake.calls();
    assert!(before > calls, "French was translated");
    get("es").await;
    app.send(app.client.get(format!("{}{PRODUCTS}", app.base)).header("accept-language", "fr")).await;
    assert_eq!(fake.calls(), before);
    // Translate down: German is served as written, still a 200, and not cached as German.
    fake.fail(true);
    let de = get("de").await;
    assert_eq!((de.status, de.body["description"].as_str()), (200, Some("Nanotech armour.")));
    fake.fail(false);
    assert_eq!(get("de").await.body["description"], "[de] Nanotech armour.");
}

#[tokio::test]
async fn names_are_one_line_and_descriptions_keep_only_line_breaks() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let evil = "Evil\r\nBcc: injected@attacker.test\r\nX-Injected: yes";
    let cases = [
        (json!({ "name": evil }), "name", "field.one_line"),
        (json!({ "name": "Tab\there" }), "name", "field.one_line"),
        (
            json!({ "plans": [{ "plan_id": "GOLD", "name": evil, "period": "monthly",
            "price": { "amount_minor": 100, "currency": "USD" }, "trial_days": 3 }] }),
            "plans[0].name",
            "",
        ),
        (json!({ "translations": { "fr": { "name": "Mal\nfait" } } }), "translations.fr.name", ""),
        (json!({ "description": "bell\u{7} and escape \u{1b}[31m" }), "description", ""),
    ];
    for (i, (patch, field, _)) in cases.iter().enumerate() {
        let mut body = product_json(&format!("EVIL-{i}"));
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = app.post_as(PRODUCTS, &admin, body).await;
        assert_eq!((r.status, r.code()), (400, "validation_error"), "{field}: {}", r.body);
        let fields = r.body["error"]["fields"].as_object().unwrap();
        assert!(fields.contains_key(*field), "{field} is named: {}", r.body);
    }
    // Nothing of it was stored.
    assert_eq!(app.get(PRODUCTS, None).await.body["products"], json!([]));
    // A description may run over several lines.
    let mut body = product_json("GOOD-ONE");
    body["description"] = json!("Line one.\r\nLine two.\nLine three.");
    let r = app.post_as(PRODUCTS, &admin, body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["description"], "Line one.\nLine two.\nLine three.");
    // And a rename is held to the same rule.
    let r = app.patch_as("/api/services/products/GOOD-ONE/", &admin, json!({ "name": evil })).await;
    assert_eq!((r.status, r.body["error"]["fields"]["name"].is_string()), (400, true), "{}", r.body);
}
