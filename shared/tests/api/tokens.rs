//! Access and refresh tokens: `me`, JWT attacks, rotation, reuse revocation, logout.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signer, SigningKey};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{spawn_app, TestApp, PASSWORD};

async fn session(app: &TestApp) -> Value {
    app.verified_user("tony@stark.example", "tony").await;
    let r = app.login("tony@stark.example", PASSWORD).await;
    assert_eq!(r.status, 200);
    r.body
}

fn parts(token: &str) -> (Value, Value) {
    let p: Vec<&str> = token.split('.').collect();
    let h = serde_json::from_slice(&B64.decode(p[0]).unwrap()).unwrap();
    let c = serde_json::from_slice(&B64.decode(p[1]).unwrap()).unwrap();
    (h, c)
}

fn signing_key(app: &TestApp) -> SigningKey {
    let pem = std::fs::read_to_string(app.data_dir.join("jwt-ed25519.pem")).unwrap();
    SigningKey::from_pkcs8_pem(&pem).unwrap()
}

/// A token signed with the server's real key: only the claims are wrong.
fn sign_with(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
    format!("{input}.{}", B64.encode(key.sign(input.as_bytes()).to_bytes()))
}

async fn me_status(app: &TestApp, token: &str) -> (u16, String) {
    let r = app.get("/api/auth/me/", Some(token)).await;
    (r.status, r.code().to_string())
}

#[tokio::test]
async fn me_needs_a_valid_token() {
    let app = spawn_app().await;
    let s = session(&app).await;
    let token = s["access_token"].as_str().unwrap();
    let r = app.get("/api/auth/me/", Some(token)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["user"]["email"], "tony@stark.example");
    let (h, c) = parts(token);
    assert_eq!(h["alg"], "EdDSA");
    for claim in ["sub", "role", "iat", "exp", "iss", "aud", "jti"] {
        assert!(c.get(claim).is_some(), "claim {claim} missing");
    }
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 900);

    let r = app.get("/api/auth/me/", None).await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
    for bad in ["", "garbage", "a.b.c", "Basic dG9ueTpzdGFyaw=="] {
        let r = app.send(app.client.get(format!("{}/api/auth/me/", app.base)).header("authorization", bad)).await;
        assert_eq!((r.status, r.code()), (401, "unauthorized"), "{bad}");
    }
}

#[tokio::test]
async fn jwt_attacks_are_refused() {
    let app = spawn_app().await;
    let s = session(&app).await;
    let token = s["access_token"].as_str().unwrap().to_string();
    let (header, claims) = parts(&token);
    let p: Vec<&str> = token.split('.').collect();

    // alg: none, with and without a signature part.
    let none = B64.encode(json!({ "alg": "none", "typ": "JWT" }).to_string());
    assert_eq!(me_status(&app, &format!("{none}.{}.", p[1])).await.0, 401);
    assert_eq!(me_status(&app, &format!("{none}.{}.{}", p[1], p[2])).await.0, 401);

    // HS256 keyed with the public key, the classic algorithm-confusion attack.
    let public_pem = stark::security::jwt::TokenSigner::from_pkcs8_pem(
        &std::fs::read_to_string(app.data_dir.join("jwt-ed25519.pem")).unwrap(),
    )
    .unwrap()
    .public_key_pem()
    .unwrap();
    let hs_header = B64.encode(json!({ "alg": "HS256", "typ": "JWT" }).to_string());
    let input = format!("{hs_header}.{}", p[1]);
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(public_pem.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    let forged = format!("{input}.{}", B64.encode(mac.finalize().into_bytes()));
    assert_eq!(me_status(&app, &forged).await.0, 401);

    // Tampered payload: promote to admin, keep the signature.
    let mut admin = claims.clone();
    admin["role"] = json!("admin");
    let tampered = format!("{}.{}.{}", p[0], B64.encode(admin.to_string()), p[2]);
    assert_eq!(me_status(&app, &tampered).await.0, 401);

    // Correctly signed, but for another audience or issuer.
    let key = signing_key(&app);
    let mut wrong_aud = claims.clone();
    wrong_aud["aud"] = json!("someone-else");
    assert_eq!(me_status(&app, &sign_with(&key, &header, &wrong_aud)).await.0, 401);
    let mut wrong_iss = claims.clone();
    wrong_iss["iss"] = json!("evil");
    assert_eq!(me_status(&app, &sign_with(&key, &header, &wrong_iss)).await.0, 401);
    // The control: the same key and claims re-signed is accepted, so the refusals above are
    // about the claims and not the re-signing.
    assert_eq!(me_status(&app, &sign_with(&key, &header, &claims)).await.0, 200);

    // Expired: the clock passes the 15 minutes.
    app.advance(900);
    assert_eq!(me_status(&app, &token).await, (401, "unauthorized".into()));
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = spawn_app().await;
    let s = session(&app).await;
    let first = s["refresh_token"].as_str().unwrap().to_string();
    let r = app.post("/api/auth/refresh/", json!({ "refresh_token": first })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["user"]["email"], "tony@stark.example");
    let second = r.body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert_eq!(app.get("/api/auth/me/", r.body["access_token"].as_str()).await.status, 200);

    // Replaying the rotated token: refused, and the whole family with it.
    let r = app.post("/api/auth/refresh/", json!({ "refresh_token": first })).await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
    let r = app.post("/api/auth/refresh/", json!({ "refresh_token": second })).await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"));

    // Another login is a new family and unaffected.
    let again = app.login("tony@stark.example", PASSWORD).await;
    let r = app.post("/api/auth/refresh/", json!({ "refresh_token": again.body["refresh_token"] })).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn refresh_tokens_last_thirty_days() {
    let app = spawn_app().await;
    let s = session(&app).await;
    app.advance(30 * 24 * 3600 - 1);
    let r = app.post("/api/auth/refresh/", json!({ "refresh_token": s["refresh_token"] })).await;
    assert_eq!(r.status, 200);
    let next = r.body["refresh_token"].clone();
    app.advance(30 * 24 * 3600);
    let r = app.post("/api/auth/refresh/", json!({ "refresh_token": next })).await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = spawn_app().await;
    let s = session(&app).await;
    let r = app.post("/api/auth/logout/", json!({ "refresh_token": s["refresh_token"] })).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.body, Value::Null);
    let r = app.post("/api/auth/refresh/", json!({ "refresh_token": s["refresh_token"] })).await;
    assert_eq!(r.status, 401);
    // Unknown tokens log out quietly too.
    assert_eq!(app.post("/api/auth/logout/", json!({ "refresh_token": "nope" })).await.status, 204);
    let r = app.post("/api/auth/refresh/", json!({ "refresh_token": "nope" })).await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
    let r = app.post("/api/auth/refresh/", json!({})).await;
    assert_eq!((r.status, r.code()), (400, "validation_error"));
}

#[tokio::test]
async fn a_role_change_reaches_the_next_access_token() {
    let app = spawn_app().await;
    let s = session(&app).await;
    let id = s["user"]["id"].as_str().unwrap();
    app.ctx.stores.users.set_role(id, stark::domain::Role::Provider).await.unwrap();
    let r = app.post("/api/auth/refresh/", json!({ "refresh_token": s["refresh_token"] })).await;
    assert_eq!(parts(r.body["access_token"].as_str().unwrap()).1["role"], "provider");
    assert_eq!(r.body["user"]["role"], "provider");
}
