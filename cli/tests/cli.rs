//! The `stark` binary as an operator runs it: bad input is one line and a non-zero exit,
//! `admin grant-role` changes the role in the store that `serve` uses, and `serve` answers.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn stark() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stark"));
    c.env_remove("STARK_DATA_DIR").env_remove("STARK_STORE").env_remove("STARK_QUEUE");
    c
}

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
}

#[test]
fn help_lists_the_environment_variables() {
    let out = stark().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for var in ["STARK_DATA_DIR", "STARK_STORE", "STARK_TABLE", "STARK_QUEUE", "STARK_EMAIL_QUEUE_URL"] {
        assert!(help.contains(var), "--help does not mention {var}");
    }
}

/// Starts `stark serve` on a free port; returns the child and its base URL.
fn serve(dir: &std::path::Path) -> (std::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = stark()
        .args(["serve", "--argon2", "test", "--addr", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("serve exited before listening").unwrap();
        if line.contains("listening on") {
            break;
        }
    }
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, format!("http://127.0.0.1:{port}"))
}

#[tokio::test]
async fn serve_runs_on_embedded_defaults_and_grant_role_reaches_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = serve(dir.path());
    let client = reqwest::Client::new();
    let health: serde_json::Value =
        client.get(format!("{base}/api/health/")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let r = client
        .post(format!("{base}/api/auth/signup/"))
        .json(&serde_json::json!({ "email": "tony@stark.example", "password": "I-am-Iron-Man", "username": "tony" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
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
    let mut code = None;
    for _ in 0..100 {
        let written = std::fs::read_dir(dir.path().join("outbox"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "eml"));
        if let Some(path) = written {
            let eml = std::fs::read_to_string(path).unwrap();
            let at = eml.find("code is ").unwrap() + 8;
            code = Some(eml[at..at + 6].to_string());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let r = client
        .post(format!("{base}/api/auth/verify-otp/"))
        .json(&serde_json::json!({ "email": "tony@stark.example", "otp": code.expect("no email in the outbox") }))
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
    child.kill().unwrap();
    child.wait().unwrap();
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
