//! The same `stark` binary on the AWS adapters: DynamoDB and SQS on the moto_server that
//! ./scripts/test starts. A missing moto is a loud failure, never a skip. Also proves that a
//! failing dependency never turns into a leak or a lost signup.

#[path = "../../shared/tests/support/aws.rs"]
mod aws;
mod support;

use serde_json::{json, Value};
use support::{post, signup, Served};

use aws::{moto_url, unique};

/// `stark` pointed at moto through the usual AWS variables, as an operator would.
fn stark() -> std::process::Command {
    let mut c = support::stark();
    c.env("AWS_ENDPOINT_URL", moto_url())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_PROFILE");
    c
}

fn serve(table: &str, queue_url: &str, dir: &tempfile::TempDir) -> Served {
    let mut cmd = stark();
    cmd.args(["--argon2", "test", "--store", "dynamodb", "--table", table, "--queue", "sqs", "--queue-url", queue_url]);
    support::serve(cmd, dir.path())
}

fn create_table() -> String {
    let table = unique("stark-cli");
    let out = stark().args(["admin", "create-table", "--store", "dynamodb", "--table", &table]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    table
}

#[tokio::test]
async fn serve_on_dynamodb_and_sqs() {
    let table = create_table();
    let (sqs, url) = aws::sqs_queue().await;
    let dir = tempfile::tempdir().unwrap();
    let s = serve(&table, &url, &dir);

    let health: Value = reqwest::get(format!("{}/api/health/", s.base)).await.unwrap().json().await.unwrap();
    assert_eq!(health, json!({ "status": "ok", "dependencies": { "store": "ok", "email_queue": "ok" } }));

    let (status, body) = signup(&s.base, "tony@stark.example", "tony").await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = signup(&s.base, "tony@stark.example", "tony2").await;
    assert_eq!(status, 409);

    // The email job is on the queue, whole.
    let msgs =
        sqs.receive_message().queue_url(&url).max_number_of_messages(10).wait_time_seconds(1).send().await.unwrap();
    let jobs: Vec<Value> = msgs.messages().iter().map(|m| serde_json::from_str(m.body().unwrap()).unwrap()).collect();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["template"], "otp_verification");
    assert_eq!(jobs[0]["to"], "tony@stark.example");
    let code = jobs[0]["vars"]["code"].as_str().unwrap().to_string();

    let (status, body) =
        post(&s.base, "/api/auth/verify-otp/", json!({ "email": "tony@stark.example", "otp": code })).await;
    assert_eq!(status, 200, "{body}");
    let (status, login) =
        post(&s.base, "/api/auth/login/", json!({ "email": "tony@stark.example", "password": "I-am-Iron-Man" })).await;
    assert_eq!(status, 200, "{login}");
    let (status, refreshed) =
        post(&s.base, "/api/auth/refresh/", json!({ "refresh_token": login["refresh_token"] })).await;
    assert_eq!(status, 200, "{refreshed}");
    let (status, _) = post(&s.base, "/api/auth/refresh/", json!({ "refresh_token": login["refresh_token"] })).await;
    assert_eq!(status, 401, "reuse of a rotated token");

    // grant-role works on DynamoDB too.
    let out = stark()
        .args(["admin", "grant-role", "tony@stark.example", "admin", "--store", "dynamodb", "--table", &table])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, login) =
        post(&s.base, "/api/auth/login/", json!({ "email": "tony@stark.example", "password": "I-am-Iron-Man" })).await;
    assert_eq!(login["user"]["role"], "admin");
}

#[tokio::test]
async fn an_unreachable_queue_does_not_lose_the_signup() {
    let table = create_table();
    let dir = tempfile::tempdir().unwrap();
    let s = serve(&table, &format!("{}/123456789012/no-such-queue", moto_url()), &dir);
    let r = reqwest::get(format!("{}/api/health/", s.base)).await.unwrap();
    assert_eq!(r.status(), 503);
    let health: Value = r.json().await.unwrap();
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["dependencies"]["store"], "ok");
    assert_ne!(health["dependencies"]["email_queue"], "ok");
    // The account is committed even though its email could not be queued.
    let (status, body) = signup(&s.base, "tony@stark.example", "tony").await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = signup(&s.base, "tony@stark.example", "tony").await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("email_taken")));
}

#[tokio::test]
async fn a_missing_table_is_a_clean_500_and_a_degraded_health() {
    let (_, url) = aws::sqs_queue().await;
    let dir = tempfile::tempdir().unwrap();
    let s = serve(&unique("no-such-table"), &url, &dir);
    let r = reqwest::get(format!("{}/api/health/", s.base)).await.unwrap();
    assert_eq!(r.status(), 503);
    let (status, body) =
        post(&s.base, "/api/auth/login/", json!({ "email": "tony@stark.example", "password": "I-am-Iron-Man" })).await;
    assert_eq!(status, 500);
    assert_eq!(body["error"]["code"], "internal_error");
    let text = body.to_string();
    for leak in ["ResourceNotFound", "DynamoDB", "no-such-table", "dispatch"] {
        assert!(!text.contains(leak), "500 body leaks {leak}: {text}");
    }
}
