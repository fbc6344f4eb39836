//! A store outage is a 503 `service_unavailable` with `Retry-After`, never a 500; nothing is
//! written halfway; and the service recovers by itself when the store is back. On SQLite the
//! database file is made unwritable (`chattr +i`: immutable even for root); on DynamoDB the
//! test's own moto_server is frozen (SIGSTOP: calls time out), thawed, then killed
//! (connections refused).

use serde_json::json;

use crate::catalog::{admin, product_json};
use crate::helpers::{spawn_app_on, Backend, Storage, TestApp, PASSWORD};
use stark::security::password_hash::HashCost;

const PURCHASE: &str = "/api/services/purchase/";

fn buy() -> serde_json::Value {
    json!({ "product_id": "STARK-MK85", "plan_id": "GOLD", "payment_method": "STARK_PAY" })
}

/// A shop with a product, tony with 100.00 in his wallet; returns tony's token.
async fn shop(app: &TestApp) -> String {
    let admin = admin(app).await;
    assert_eq!(app.post_as("/api/services/products/", &admin, product_json("STARK-MK85")).await.status, 201);
    let t = app.token("tony@stark.example", "tony").await;
    let r = app
        .post_as("/api/admin/wallet/credit/", &admin, json!({ "email": "tony@stark.example", "amount_minor": 10_000 }))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    t
}

/// Every write the outage meets is a 503 with the code and `Retry-After`.
async fn writes_answer_503(app: &TestApp, tony: &str) {
    let signup = app.signup("pepper@stark.example", "pepper").await;
    let purchase = app.post_as(PURCHASE, tony, buy()).await;
    let login = app.login("tony@stark.example", PASSWORD).await;
    for (what, r) in [("signup", signup), ("purchase", purchase), ("login", login)] {
        assert_eq!((r.status, r.code()), (503, "service_unavailable"), "{what}: {}", r.body);
        assert_eq!(r.header("retry-after"), Some("5"), "{what}");
        assert!(r.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}");
    }
}

/// After the outage: money and subscriptions agree (a purchase happened whole or not at
/// all), and the service works again without anyone touching it.
async fn recovered(app: &TestApp, tony: &str, signup_may_have_landed: bool) {
    let r = app.signup("pepper@stark.example", "pepper").await;
    if signup_may_have_landed {
        assert!(r.status == 201 || (r.status, r.code()) == (409, "email_taken"), "{}", r.body);
    } else {
        assert_eq!(r.status, 201, "nothing of the failed signup was kept: {}", r.body);
    }
    let r = app.post_as(PURCHASE, tony, buy()).await;
    assert!(r.status == 201 || (r.status, r.code()) == (409, "already_subscribed"), "{}", r.body);
    let w = app.get("/api/services/wallet/", Some(tony)).await;
    assert_eq!(w.body["balance"]["amount_minor"], 5_000, "charged exactly once: {}", w.body);
    let subs = app.get("/api/services/my-subscriptions/", Some(tony)).await;
    assert_eq!(subs.body["subscriptions"].as_array().unwrap().len(), 1);
    assert_eq!(app.login("tony@stark.example", PASSWORD).await.status, 200);
}

/// `chattr +i` on the database file and its WAL (not the shared-memory file, which SQLite
/// maps: making that immutable would crash the process, not fail a write). Undone on drop,
/// so a failing test leaves a deletable directory.
struct Immutable(Vec<std::path::PathBuf>);

impl Immutable {
    fn set(files: Vec<std::path::PathBuf>) -> Immutable {
        for f in &files {
            let ok = std::process::Command::new("chattr").arg("+i").arg(f).status().is_ok_and(|s| s.success());
            assert!(
                ok,
                "chattr +i {} failed: this test needs root and a filesystem with the immutable flag",
                f.display()
            );
        }
        Immutable(files)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::process::Command::new("chattr").arg("-i").arg(f).status();
        }
    }
}

#[tokio::test]
async fn a_store_outage_answers_503_writes_nothing_half_and_recovers_by_itself() {
    match crate::BACKEND {
        Backend::Sqlite => {
            let app = spawn_app_on(Storage::fresh().await, HashCost::TEST).await;
            let tony = shop(&app).await;
            let db = app.data_dir.join("stark.db");
            let wal = app.data_dir.join("stark.db-wal");
            assert!(wal.exists(), "the store runs in WAL mode");
            let unwritable = Immutable::set(vec![db, wal]);
            writes_answer_503(&app, &tony).await;
            // Reading still works.
            assert_eq!(app.get("/api/services/products/", None).await.status, 200);
            drop(unwritable);
            recovered(&app, &tony, false).await;
        }
        Backend::Dynamodb => {
            let mut moto = crate::private_moto::PrivateMoto::start();
            let app = spawn_app_on(Storage::fresh_on(&moto.url).await, HashCost::TEST).await;
            let tony = shop(&app).await;
            moto.freeze();
            writes_answer_503(&app, &tony).await;
            let r = app.get("/api/services/products/", None).await;
            assert_eq!((r.status, r.code()), (503, "service_unavailable"), "{}", r.body);
            moto.thaw();
            // A call that timed out may still be applied once moto runs again: whole or
            // not at all, never half.
            recovered(&app, &tony, true).await;
            moto.kill();
            writes_answer_503(&app, &tony).await;
        }
    }
}
