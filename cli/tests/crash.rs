//! `stark serve` killed with SIGKILL in the middle of work, then started again on the same
//! data dir: an Idempotency-Key the dead process held works again after its lease (and the
//! purchase runs exactly once), and every email the dead process had committed is in the
//! outbox at the new start, not a lease later.

mod support;

use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use support::{code_for, post, serve, signup, stark};

const PASSWORD: &str = "I-am-Iron-Man";

fn served_here(dir: &Path) -> support::Served {
    let mut cmd = stark();
    cmd.args(["--argon2", "test"]);
    serve(cmd, dir)
}

async fn verified_token(base: &str, outbox: &Path, email: &str, username: &str) -> String {
    assert_eq!(signup(base, email, username).await.0, 201);
    let code = code_for(outbox, email).await;
    assert_eq!(post(base, "/api/auth/verify-otp/", json!({ "email": email, "otp": code })).await.0, 200);
    let (status, body) = post(base, "/api/auth/login/", json!({ "email": email, "password": PASSWORD })).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

async fn purchase(base: &str, token: &str, key: &str, body: &Value) -> (u16, Option<String>, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/services/purchase/"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let replayed = r.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), replayed, r.json().await.unwrap_or(Value::Null))
}

async fn wallet(base: &str, token: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}/api/services/wallet/"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_key_held_by_a_killed_server_runs_exactly_once_after_its_lease() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut served = served_here(dir.path());
    let token = verified_token(&served.base, &served.outbox(), "tony@stark.example", "tony").await;
    let out = stark().args(["admin", "credit", "tony@stark.example", "100000", "--data-dir"]).arg(dir.path()).output();
    assert!(out.unwrap().status.success());
    let body = json!({ "product_id": "STARK-MK85", "plan_id": "MONTHLY_GOLD", "payment_method": "STARK_PAY" });
    let text = body.to_string();
    let raw = format!(
        "POST /api/services/purchase/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nIdempotency-Key: crash-1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    );
    let mut s = std::net::TcpStream::connect(served.base.trim_start_matches("http://")).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(2));
    served.kill_hard();
    let killed = Instant::now();
    let served = served_here(dir.path());
    // Whatever the dead process got to, once its lease (10 s) is over the key answers.
    tokio::time::sleep((killed + Duration::from_secs(11)).saturating_duration_since(Instant::now())).await;
    let (status, _, first) = purchase(&served.base, &token, "crash-1", &body).await;
    assert_eq!(status, 201, "{first}");
    let (status, replayed, again) = purchase(&served.base, &token, "crash-1", &body).await;
    assert_eq!((status, replayed.as_deref()), (201, Some("true")), "{again}");
    assert_eq!(again["payment"], first["payment"]);
    let price = first["payment"]["amount_minor"].as_i64().unwrap();
    let w = wallet(&served.base, &token).await;
    assert_eq!(w["balance"]["amount_minor"].as_i64().unwrap(), 100_000 - price, "charged exactly once: {w}");
    let debits = w["transactions"].as_array().unwrap().iter().filter(|t| t["type"] == "debit").count();
    assert_eq!(debits, 1, "{w}");
}

fn emails_to(outbox: &Path, to: &str) -> usize {
    std::fs::read_dir(outbox)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .filter(|e| std::fs::read_to_string(e.path()).unwrap_or_default().contains(&format!("\r\nTo: {to}\r\n")))
        .count()
}

#[tokio::test]
async fn every_email_committed_before_a_kill_is_written_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = served_here(dir.path());
    let base = served.base.clone();
    let emails: Vec<String> = (0..40).map(|i| format!("user{i}@stark.example")).collect();
    let burst: Vec<_> = emails
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let (base, e) = (base.clone(), e.clone());
            tokio::spawn(async move { signup(&base, &e, &format!("user{i}")).await })
        })
        .collect();
    // Kill in the middle of the burst: once some signups have been answered.
    let started = Instant::now();
    while !burst.iter().any(|t| t.is_finished()) && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    served.kill_hard();
    for t in burst {
        let _ = t.await; // answered or cut off; the store says which were committed
    }
    let served = served_here(dir.path());
    // Which signups were committed: their accounts exist (unverified: 403, not 401).
    let mut committed = Vec::new();
    for e in &emails {
        let (status, body) = post(&served.base, "/api/auth/login/", json!({ "email": e, "password": PASSWORD })).await;
        assert!(status == 403 || status == 401, "{status} {body}");
        if status == 403 {
            committed.push(e.clone());
        }
    }
    assert!(!committed.is_empty(), "some signups were committed before the kill");
    // The start sweep writes them, well before the dead process's leases (10 s) run out.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let missing: Vec<&String> = committed.iter().filter(|e| emails_to(&served.outbox(), e) == 0).collect();
        if missing.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no email yet for {missing:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
