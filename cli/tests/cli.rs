//! The `stark` binary as an operator runs it: bad input is one line and a non-zero exit,
//! `admin grant-role` changes the role in the store that `serve` uses, and `serve` answers.

#[path = "../../shared/tests/support/logs.rs"]
mod logs;
mod support;

use support::{code_for, serve, signup, stark};

fn one_line_failure(args: &[&str], dir: &std::path::Path) -> String {
    let out = stark().args(args).arg("--data-dir").arg(dir).output().unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?} printed: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn bad_arguments_fail_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    one_line_failure(&["frobnicate"], dir.path());
    one_line_failure(&["admin", "grant-role", "tony@stark.example", "overlord"], dir.path());
    one_line_failure(&["admin", "grant-role", "not-an-email", "admin"], dir.path());
    one_line_failure(&["serve", "--addr", "nowhere"], dir.path());
    one_line_failure(&["--store", "dynamodb", "admin", "grant-role", "a@stark.example", "admin"], dir.path());
    let err = one_line_failure(&["admin", "grant-role", "ghost@stark.example", "admin"], dir.path());
    assert!(err.contains("no user with email ghost@stark.example"), "{err}");
    for amount in ["abc", "0", "-5", "1.5", "100000001"] {
        let err = one_line_failure(&["admin", "credit", "tony@stark.example", amount], dir.path());
        assert!(err.contains("amount_minor"), "{err}");
    }
    let err = one_line_failure(&["admin", "credit", "ghost@stark.example", "100"], dir.path());
    assert!(err.contains("no user with email ghost@stark.example"), "{err}");
    one_line_failure(&["catalog", "load", "/no/such/file.json"], dir.path());
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"products":[{"product_id":"GOOD-ID","name":"x","description":"","plans":[{"plan_id":"P1","name":"p","period":"monthly","price":{"amount_minor":-1,"currency":"USD"}}]}]}"#).unwrap();
    let err = one_line_failure(&["catalog", "load", bad.to_str().unwrap()], dir.path());
    assert!(err.contains("products[0].plans[0].price.amount_minor"), "{err}");
    std::fs::write(&bad, "{ not json").unwrap();
    one_line_failure(&["catalog", "load", bad.to_str().unwrap()], dir.path());
}

#[tokio::test]
async fn serve_seeds_the_demo_catalog_and_credit_and_catalog_load_reach_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = stark();
    cmd.args(["--argon2", "test"]);
    let served = serve(cmd, dir.path());
    let base = &served.base;
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{base}{path}")).send();
    let list: serde_json::Value = get("/api/services/products/").await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = list["products"].as_array().unwrap().iter().filter_map(|p| p["product_id"].as_str()).collect();
    assert!(ids.contains(&"STARK-MK85"), "{list}");
    let mk85: serde_json::Value = get("/api/services/products/STARK-MK85/").await.unwrap().json().await.unwrap();
    assert!(mk85["plans"].as_array().unwrap().iter().any(|p| p["plan_id"] == "MONTHLY_GOLD"), "{mk85}");

    assert_eq!(signup(base, "tony@stark.example", "tony").await.0, 201);
    let code = code_for(&served.outbox(), "tony@stark.example").await;
    let (status, _) =
        support::post(base, "/api/auth/verify-otp/", serde_json::json!({ "email": "tony@stark.example", "otp": code }))
            .await;
    assert_eq!(status, 200);
    let out =
        stark().args(["admin", "credit", "tony@stark.example", "5000", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "credited 50.00 USD to tony@stark.example; balance 50.00 USD"
    );

    let (_, login) = support::post(
        base,
        "/api/auth/login/",
        serde_json::json!({ "email": "tony@stark.example", "password": "I-am-Iron-Man" }),
    )
    .await;
    let token = login["access_token"].as_str().unwrap();
    let r = client
        .post(format!("{base}/api/services/purchase/"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "product_id": "STARK-MK85", "plan_id": "MONTHLY_GOLD", "payment_method": "STARK_PAY" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // The payment confirmation reaches the .eml outbox.
    let mut found = false;
    for _ in 0..200 {
        found = std::fs::read_dir(served.outbox())
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with("payment_confirmation.eml"));
        if found {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(found, "no payment_confirmation .eml");

    // `catalog load` writes into the store the server reads.
    let file = dir.path().join("more.json");
    std::fs::write(&file, r#"{"products":[{"product_id":"PEPPER-CRM","name":"Pepper CRM","description":"Run the company.","plans":[{"plan_id":"MONTHLY","name":"Monthly","period":"monthly","price":{"amount_minor":2500,"currency":"USD"},"trial_days":7}]}]}"#).unwrap();
    let out = stark().args(["catalog", "load"]).arg(&file).arg("--data-dir").arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let crm: serde_json::Value = get("/api/services/products/PEPPER-CRM/").await.unwrap().json().await.unwrap();
    assert_eq!(crm["plans"][0]["price"]["amount_minor"], 2500, "{crm}");
}

#[tokio::test]
async fn a_catalog_loaded_before_the_first_start_is_not_replaced_by_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mine.json");
    std::fs::write(&file, r#"{"products":[{"product_id":"ONLY-ONE","name":"Only","description":"","plans":[]}]}"#)
        .unwrap();
    let out = stark().args(["catalog", "load"]).arg(&file).arg("--data-dir").arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), format!("loaded 1 product(s) from {}", file.display()));
    let served = serve(stark(), dir.path());
    let list: serde_json::Value =
        reqwest::get(format!("{}/api/services/products/", served.base)).await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = list["products"].as_array().unwrap().iter().filter_map(|p| p["product_id"].as_str()).collect();
    assert_eq!(ids, ["ONLY-ONE"]);
}

#[test]
fn help_lists_the_environment_variables() {
    let out = stark().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for var in [
        "STARK_DATA_DIR",
        "STARK_STORE",
        "STARK_TABLE",
        "STARK_QUEUE",
        "STARK_EMAIL_QUEUE_URL",
        "STARK_TRANSLATE",
        "STARK_REDIS_URL",
    ] {
        assert!(help.contains(var), "--help does not mention {var}");
    }
}

#[tokio::test]
async fn serve_runs_on_embedded_defaults_and_grant_role_reaches_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = stark();
    cmd.args(["--argon2", "test"]);
    let served = serve(cmd, dir.path());
    let base = &served.base;
    let client = reqwest::Client::new();
    let health: serde_json::Value =
        client.get(format!("{base}/api/health/")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(signup(base, "tony@stark.example", "tony").await.0, 201);
    assert!(dir.path().join("stark.db").exists());
    assert!(dir.path().join("jwt-ed25519.pem").exists());

    // The ops command works on the same SQLite file while the server runs.
    let out = stark()
        .args(["admin", "grant-role", "TONY@stark.example", "provider", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "tony@stark.example is now provider");

    // Verify through the API (the code is in the .eml outbox) and see the role in the session.
    let code = code_for(&served.outbox(), "tony@stark.example").await;
    let r = client
        .post(format!("{base}/api/auth/verify-otp/"))
        .json(&serde_json::json!({ "email": "tony@stark.example", "otp": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let login: serde_json::Value = client
        .post(format!("{base}/api/auth/login/"))
        .json(&serde_json::json!({ "email": "tony@stark.example", "password": "I-am-Iron-Man" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(login["user"]["role"], "provider");
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish_and_writes_their_emails() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = stark();
    // Production hashing, so each signup is still running when the signal lands.
    cmd.env("RUST_LOG", "debug");
    let served = serve(cmd, dir.path());
    let base = served.base.clone();
    let mut signups = Vec::new();
    for i in 0..6 {
        let base = base.clone();
        signups.push(tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{base}/api/auth/signup/"))
                .json(&serde_json::json!({ "email": format!("user{i}@stark.example"), "password": "I-am-Iron-Man", "username": format!("user{i}") }))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    // Stop it as soon as the first signup is done: with production hashing and at most one
    // hash per core, the others are still running then.
    let outbox = served.outbox();
    for _ in 0..500 {
        let written = std::fs::read_dir(&outbox)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "eml"));
        if written {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // `terminate` blocks until the process exits; the signups must keep running meanwhile.
    let (status, log, served) = tokio::task::spawn_blocking(move || {
        let mut served = served;
        let (status, log) = served.terminate();
        (status, log, served)
    })
    .await
    .unwrap();
    assert!(status.success(), "serve should exit cleanly on SIGTERM: {status:?}\n{log}");
    assert!(log.contains("stark serve: stopped"), "{log}");
    let mut created = 0;
    for s in signups {
        if s.await.unwrap().ok() == Some(201) {
            created += 1;
        }
    }
    // Every account that was committed has its email on disk: none was lost to the stop.
    let emails: Vec<String> = std::fs::read_dir(served.outbox())
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(created >= 1, "at least one signup should have been answered: {log}");
    // The stop really did overlap the signups: some finished after the signal.
    let stop_at = log.find("shutting down").expect("the server logs its shutdown");
    assert!(
        log[stop_at..].contains("/api/auth/signup/"),
        "no signup was in flight at the signal; the test proves nothing: {log}"
    );
    assert_eq!(emails.len(), created, "{log}");
    // The .eml is the code's only local home: at debug level the log has the emails' paths,
    // and neither a code nor the password.
    assert!(log.contains("email sent"), "{log}");
    assert!(!log.contains("I-am-Iron-Man"), "{log}");
    for eml in &emails {
        let at = eml.find("code is ").unwrap() + 8;
        assert!(!logs::contains_number(&log, &eml[at..at + 6]), "a code reached the log: {log}");
    }
}

#[test]
fn keys_generate_prints_a_usable_secret() {
    let out = stark().args(["keys", "generate"]).output().unwrap();
    assert!(out.status.success());
    let secret: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let signer =
        stark::security::jwt::TokenSigner::from_pkcs8_pem(secret["jwt_private_key_pem"].as_str().unwrap()).unwrap();
    let verifier =
        stark::security::jwt::TokenVerifier::from_public_key_pem(secret["jwt_public_key_pem"].as_str().unwrap())
            .unwrap();
    let (token, _) = signer.issue("u1", stark::domain::Role::User, chrono::Utc::now());
    assert!(verifier.verify(&token, chrono::Utc::now()).is_ok());
    let pepper = secret["otp_pepper"].as_str().unwrap();
    assert!(pepper.len() == 64 && pepper.bytes().all(|b| b.is_ascii_hexdigit()), "{pepper}");
}

#[tokio::test]
async fn health_shows_the_translation_cache_without_depending_on_it() {
    let redis = std::env::var("STARK_TEST_REDIS_URL").expect(
        "STARK_TEST_REDIS_URL is not set: run the tests through ./scripts/test, which makes sure Redis answers",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = stark();
    cmd.args(["--redis-url", &redis]);
    let served = serve(cmd, dir.path());
    let health: serde_json::Value =
        reqwest::get(format!("{}/api/health/", served.base)).await.unwrap().json().await.unwrap();
    assert_eq!(health["dependencies"]["translation_cache"], "ok", "{health}");
    // A cache nobody answers for is shown down, and the service is still up.
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = stark();
    cmd.args(["--redis-url", "redis://127.0.0.1:9"]);
    let served = serve(cmd, dir.path());
    let r = reqwest::get(format!("{}/api/health/", served.base)).await.unwrap();
    assert_eq!(r.status(), 200);
    let health: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (health["status"].as_str(), health["dependencies"]["translation_cache"].as_str()),
        (Some("ok"), Some("down"))
    );
}

/// `stark lifecycle run` as an operator uses it: a dry run lists and changes nothing, a run
/// renews once and exits with its emails written, a second run at the same time does nothing,
/// and a bad `--now` is one line and exit 2.
#[tokio::test]
async fn lifecycle_run_renews_once_with_a_dry_run_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = {
        let mut c = stark();
        c.args(["--argon2", "test"]).env("STARK_LIFECYCLE_EVERY", "0");
        serve(c, dir.path())
    };
    let base = served.base.clone();
    assert_eq!(signup(&base, "rhodey@stark.example", "rhodey").await.0, 201);
    let code = code_for(&served.outbox(), "rhodey@stark.example").await;
    let body = serde_json::json!({ "email": "rhodey@stark.example", "otp": code });
    assert_eq!(support::post(&base, "/api/auth/verify-otp/", body).await.0, 200);
    let out = stark()
        .args(["admin", "credit", "rhodey@stark.example", "10000", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let creds = serde_json::json!({ "email": "rhodey@stark.example", "password": "I-am-Iron-Man" });
    let (_, login) = support::post(&base, "/api/auth/login/", creds).await;
    let r = reqwest::Client::new()
        .post(format!("{base}/api/services/purchase/"))
        .bearer_auth(login["access_token"].as_str().unwrap())
        .json(&serde_json::json!({ "product_id": "STARK-MK85", "plan_id": "MONTHLY_GOLD", "payment_method": "STARK_PAY" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let bought: serde_json::Value = r.json().await.unwrap();
    let end: chrono::DateTime<chrono::Utc> =
        bought["subscription"]["current_period_end"].as_str().unwrap().parse().unwrap();
    served.terminate();
    let emails = || std::fs::read_dir(dir.path().join("outbox")).unwrap().count();
    let before = emails();

    let at = (end + chrono::Duration::hours(1)).to_rfc3339();
    let run = |extra: &[&str]| {
        let mut c = stark();
        c.args(["lifecycle", "run", "--now", &at]).args(extra).arg("--data-dir").arg(dir.path());
        c.output().unwrap()
    };
    let dry = run(&["--dry-run"]);
    assert!(dry.status.success(), "{}", String::from_utf8_lossy(&dry.stderr));
    let text = String::from_utf8(dry.stdout).unwrap();
    assert!(text.contains("renew on MONTHLY_GOLD for 49.99 USD"), "{text}");
    assert!(text.lines().last().unwrap().starts_with("dry run (nothing changed): lifecycle run"), "{text}");
    assert_eq!(emails(), before, "a dry run sends nothing");

    let real = run(&[]);
    assert!(real.status.success(), "{}", String::from_utf8_lossy(&real.stderr));
    let text = String::from_utf8(real.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "one summary line: {text}");
    assert!(
        text.contains(": 1 renewed, 0 past_due, 0 expired, 0 canceled, 0 reminders, 0 low_balance, 1 emails in "),
        "{text}"
    );
    assert_eq!(emails(), before + 1, "the renewal's email is written before the command exits");

    let again = run(&[]);
    let text = String::from_utf8(again.stdout).unwrap();
    assert!(text.contains(": 0 renewed,") && text.contains(" 0 emails in "), "{text}");
    assert_eq!(emails(), before + 1);

    let bad =
        stark().args(["lifecycle", "run", "--now", "yesterday"]).arg("--data-dir").arg(dir.path()).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8(bad.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("RFC 3339"), "{err}");
}

/// `stark serve` runs the lifecycle by itself, at start and then on its interval.
#[tokio::test]
async fn serve_runs_the_lifecycle_at_start_and_on_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = stark();
    c.args(["--argon2", "test"]).env("STARK_LIFECYCLE_EVERY", "1");
    let _served = serve(c, dir.path());
    let store = stark::adapters::sqlite::SqliteStore::open(&dir.path().join("stark.db")).unwrap();
    let mut runs = Vec::new();
    for _ in 0..100 {
        runs = stark::ports::LifecycleStore::recent_runs(&store, 10).await.unwrap();
        if runs.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(runs.len() >= 2, "{runs:?}");
    assert!(runs.iter().all(|r| r.finished_at.is_some()), "{runs:?}");
}
