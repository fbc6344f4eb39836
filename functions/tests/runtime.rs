//! The deployable units themselves: each Lambda binary runs against a local Lambda Runtime
//! API (the protocol Lambda speaks to a `provided.al2023` bootstrap), with DynamoDB and SQS on
//! the moto_server that ./scripts/test starts. Events are the samples in `events/` with their
//! bodies and headers swapped in, so this also proves the samples are what the functions take.

#[path = "../../shared/tests/support/aws.rs"]
mod aws;
#[path = "../../shared/tests/support/logs.rs"]
mod logs;
#[path = "../../shared/tests/support/parsed_mail.rs"]
mod parsed_mail;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{json, Value};
use stark::http::router::{lambdas, Needs};
use tokio::sync::{mpsc, Mutex};

/// What a function reported for one event, or at init.
#[derive(Debug)]
enum Outcome {
    Response(Value),
    Error(String),
    InitError(String),
}

/// A minimal Lambda Runtime API for one function process.
struct RuntimeApi {
    addr: SocketAddr,
    events: mpsc::UnboundedSender<String>,
    outcomes: Mutex<mpsc::UnboundedReceiver<Outcome>>,
}

async fn serve_runtime(
    req: Request<Incoming>,
    events: Arc<Mutex<mpsc::UnboundedReceiver<String>>>,
    outcomes: mpsc::UnboundedSender<Outcome>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let path = req.uri().path().to_string();
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let text = String::from_utf8_lossy(&body).into_owned();
    if path.ends_with("/invocation/next") {
        let Some(event) = events.lock().await.recv().await else {
            return Ok(Response::builder().status(500).body(Full::new(Bytes::new())).unwrap());
        };
        let deadline = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() + 20_000;
        return Ok(Response::builder()
            .header("Lambda-Runtime-Aws-Request-Id", uuid::Uuid::new_v4().to_string())
            .header("Lambda-Runtime-Deadline-Ms", deadline.to_string())
            .header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:test")
            .header("Lambda-Runtime-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793")
            .header("Content-Type", "application/json")
            .body(Full::new(Bytes::from(event)))
            .unwrap());
    }
    let outcome = if path.ends_with("/init/error") {
        Outcome::InitError(text)
    } else if path.ends_with("/error") {
        Outcome::Error(text)
    } else {
        Outcome::Response(serde_json::from_str(&text).unwrap_or(Value::Null))
    };
    let _ = outcomes.send(outcome);
    Ok(Response::builder().status(202).body(Full::new(Bytes::new())).unwrap())
}

impl RuntimeApi {
    async fn start() -> RuntimeApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (events_tx, events_rx) = mpsc::unbounded_channel::<String>();
        let (outcomes_tx, outcomes_rx) = mpsc::unbounded_channel::<Outcome>();
        let events_rx = Arc::new(Mutex::new(events_rx));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (events, outcomes) = (events_rx.clone(), outcomes_tx.clone());
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req| serve_runtime(req, events.clone(), outcomes.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        RuntimeApi { addr, events: events_tx, outcomes: Mutex::new(outcomes_rx) }
    }

    async fn next_outcome(&self) -> Outcome {
        tokio::time::timeout(Duration::from_secs(30), self.outcomes.lock().await.recv())
            .await
            .expect("the function did not answer within 30 s")
            .expect("runtime API closed")
    }
}

/// One running function process with its own Runtime API.
struct Function {
    child: tokio::process::Child,
    runtime: RuntimeApi,
    name: &'static str,
    /// Everything the process wrote to stdout and stderr (its CloudWatch log on Lambda).
    log: Arc<Mutex<String>>,
    /// The readers of those pipes; they end when the process does.
    drains: Vec<tokio::task::JoinHandle<()>>,
}

fn drain(
    pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    log: Arc<Mutex<String>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut log = log.lock().await;
            log.push_str(&line);
            log.push('\n');
        }
    })
}

impl Function {
    async fn start(name: &'static str, env: &HashMap<&str, String>) -> Function {
        let runtime = RuntimeApi::start().await;
        let exe = match name {
            "signup" => env!("CARGO_BIN_EXE_signup"),
            "verify-otp" => env!("CARGO_BIN_EXE_verify-otp"),
            "login" => env!("CARGO_BIN_EXE_login"),
            "resend-otp" => env!("CARGO_BIN_EXE_resend-otp"),
            "session" => env!("CARGO_BIN_EXE_session"),
            "me" => env!("CARGO_BIN_EXE_me"),
            "password" => env!("CARGO_BIN_EXE_password"),
            "health" => env!("CARGO_BIN_EXE_health"),
            "fallback" => env!("CARGO_BIN_EXE_fallback"),
            "products" => env!("CARGO_BIN_EXE_products"),
            "catalog" => env!("CARGO_BIN_EXE_catalog"),
            "start-trial" => env!("CARGO_BIN_EXE_start-trial"),
            "purchase" => env!("CARGO_BIN_EXE_purchase"),
            "my-subscriptions" => env!("CARGO_BIN_EXE_my-subscriptions"),
            "subscriptions" => env!("CARGO_BIN_EXE_subscriptions"),
            "wallet" => env!("CARGO_BIN_EXE_wallet"),
            "admin" => env!("CARGO_BIN_EXE_admin"),
            "email-sender" => env!("CARGO_BIN_EXE_email-sender"),
            "outbox-sweep" => env!("CARGO_BIN_EXE_outbox-sweep"),
            "lifecycle" => env!("CARGO_BIN_EXE_lifecycle"),
            "lifecycle-worker" => env!("CARGO_BIN_EXE_lifecycle-worker"),
            other => panic!("no binary {other}"),
        };
        let child = tokio::process::Command::new(exe)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", runtime.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "test")
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut child = child;
        let drains =
            vec![drain(child.stdout.take().unwrap(), log.clone()), drain(child.stderr.take().unwrap(), log.clone())];
        Function { child, runtime, name, log, drains }
    }

    /// Sends `event` as it is; returns what the function answered.
    async fn invoke_raw(&self, event: &Value) -> Value {
        self.runtime.events.send(event.to_string()).unwrap();
        match self.runtime.next_outcome().await {
            Outcome::Response(r) => r,
            Outcome::Error(e) => panic!("{}: the invocation failed: {e}", self.name),
            Outcome::InitError(e) => panic!("{}: init failed: {e}", self.name),
        }
    }

    /// Sends this function's sample event with `method`, `path`, `body` and extra headers
    /// swapped in; returns (status, headers, parsed body).
    async fn invoke(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, Value, Value) {
        let sample =
            std::fs::read_to_string(format!("{}/../events/{}.json", env!("CARGO_MANIFEST_DIR"), self.name)).unwrap();
        let mut event: Value = serde_json::from_str(&sample).unwrap();
        event["rawPath"] = json!(path);
        event["requestContext"]["http"]["path"] = json!(path);
        event["requestContext"]["http"]["method"] = json!(method);
        event["body"] = body.map_or(Value::Null, |b| json!(b));
        for (k, v) in headers {
            event["headers"][*k] = json!(v);
        }
        self.runtime.events.send(event.to_string()).unwrap();
        match self.runtime.next_outcome().await {
            Outcome::Response(r) => {
                let status = r["statusCode"].as_u64().unwrap() as u16;
                let body = r["body"]
                    .as_str()
                    .filter(|b| !b.is_empty())
                    .map_or(Value::Null, |b| serde_json::from_str(b).unwrap());
                (status, r["headers"].clone(), body)
            }
            Outcome::Error(e) => panic!("{}: the invocation failed: {e}", self.name),
            Outcome::InitError(e) => panic!("{}: init failed: {e}", self.name),
        }
    }
}

async fn environment() -> (HashMap<&'static str, String>, aws_sdk_sqs::Client, String) {
    let (_, table) = aws::dynamo_table().await;
    let (sqs, queue_url) = aws::sqs_queue().await;
    let secret = stark::security::secrets::new_deployment_secret().unwrap();
    let text = |k: &str| secret[k].as_str().unwrap().to_string();
    let env = HashMap::from([
        ("AWS_ENDPOINT_URL", aws::moto_url()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ("TABLE_NAME", table),
        ("EMAIL_QUEUE_URL", queue_url.clone()),
        ("JWT_PRIVATE_KEY", text("jwt_private_key_pem")),
        ("JWT_PUBLIC_KEY", text("jwt_public_key_pem")),
        ("OTP_PEPPER", text("otp_pepper")),
    ]);
    (env, sqs, queue_url)
}

/// What a function needs by its endpoints (`Needs`, the same table that start-up checks
/// and that a test holds template.yaml to), plus `extra`.
fn env_for(all: &HashMap<&'static str, String>, name: &str, extra: &[&str]) -> HashMap<&'static str, String> {
    // The workers serve no endpoint: they get what `extra` names.
    let served = lambdas::ALL.iter().find(|(n, _)| *n == name).map_or(&[][..], |l| l.1);
    let needs = Needs::of(served);
    let mut keep = vec!["AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "TABLE_NAME"];
    keep.extend(extra);
    for (needed, var) in [
        (needs.signing_key, "JWT_PRIVATE_KEY"),
        (needs.verifying_key, "JWT_PUBLIC_KEY"),
        (needs.otp_pepper, "OTP_PEPPER"),
        (needs.email_queue, "EMAIL_QUEUE_URL"),
    ] {
        if needed {
            keep.push(var);
        }
    }
    all.iter().filter(|(k, _)| keep.contains(k)).map(|(k, v)| (*k, v.clone())).collect()
}

#[tokio::test]
async fn the_lambdas_serve_the_auth_flow() {
    let (all, sqs, queue_url) = environment().await;
    // health pings the queue, so the template gives it the URL though it sends nothing.
    let health = Function::start("health", &env_for(&all, "health", &["EMAIL_QUEUE_URL"])).await;
    let signup = Function::start("signup", &env_for(&all, "signup", &[])).await;
    let verify = Function::start("verify-otp", &env_for(&all, "verify-otp", &[])).await;
    let login = Function::start("login", &env_for(&all, "login", &[])).await;
    let me = Function::start("me", &env_for(&all, "me", &[])).await;

    let (status, headers, body) = health.invoke("GET", "/api/health/", None, &[]).await;
    assert_eq!((status, &body["status"]), (200, &json!("ok")), "{body}");
    assert_eq!(headers["content-language"], "en");
    assert_eq!(headers["vary"], "Accept-Language");

    let signup_body = r#"{"email":"Tony@Stark.example","password":"I-am-Iron-Man","username":"tony"}"#;
    let (status, _, body) = signup.invoke("POST", "/api/auth/signup/", Some(signup_body), &[]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["email"], "tony@stark.example");
    // The same function, warm, without the trailing slash: the email is taken now.
    let (status, _, body) = signup.invoke("POST", "/api/auth/signup", Some(signup_body), &[]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("email_taken")));

    let jobs = take_jobs(&sqs, &queue_url).await;
    assert_eq!(jobs.len(), 1, "one email job for one signup: {jobs:?}");
    let code = jobs[0]["vars"]["code"].as_str().unwrap().to_string();

    let (status, _, body) = verify
        .invoke(
            "POST",
            "/api/auth/verify-otp/",
            Some(&json!({ "email": "tony@stark.example", "otp": code }).to_string()),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, _, session) = login
        .invoke("POST", "/api/auth/login/", Some(r#"{"email":"tony@stark.example","password":"I-am-Iron-Man"}"#), &[])
        .await;
    assert_eq!(status, 200, "{session}");
    let bearer = format!("Bearer {}", session["access_token"].as_str().unwrap());

    let (status, _, body) = me.invoke("GET", "/api/auth/me/", None, &[("authorization", &bearer)]).await;
    assert_eq!((status, &body["user"]["email"]), (200, &json!("tony@stark.example")), "{body}");
    // The sample event's token is well-formed but unsigned.
    let (status, _, body) = me.invoke("GET", "/api/auth/me/", None, &[]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));

    // Bad input through the Lambda path: never a 5xx.
    let (status, _, body) = signup.invoke("POST", "/api/auth/signup/", Some("{"), &[]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("malformed_json")));
    let big = format!("{{\"email\":\"{}\"}}", "a".repeat(70 * 1024));
    let (status, _, body) = signup.invoke("POST", "/api/auth/signup/", Some(&big), &[]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("payload_too_large")));
    // A route of another function is not served here.
    let (status, _, _) = signup.invoke("POST", "/api/auth/login/", Some("{}"), &[]).await;
    assert_eq!(status, 404);

    // What no route takes reaches the $default fallback: the contract's 404 and 405.
    let fallback = Function::start("fallback", &env_for(&all, "fallback", &[])).await;
    let (status, headers, body) = fallback.invoke("GET", "/api/auth/login/", None, &[]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (405, Some("method_not_allowed")), "{body}");
    assert_eq!(headers["allow"], "POST");
    let (status, headers, body) = fallback.invoke("GET", "/api/nothing/here", None, &[]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    assert_eq!(headers["content-language"], "en");
    // The session and password functions: refresh rotates, logout ends the family, and a
    // forgotten password is reset with the emailed code.
    let resend = Function::start("resend-otp", &env_for(&all, "resend-otp", &[])).await;
    let session_fn = Function::start("session", &env_for(&all, "session", &[])).await;
    let password = Function::start("password", &env_for(&all, "password", &[])).await;
    let refresh_body = json!({ "refresh_token": session["refresh_token"] }).to_string();
    let (status, _, refreshed) = session_fn.invoke("POST", "/api/auth/refresh/", Some(&refresh_body), &[]).await;
    assert_eq!(status, 200, "{refreshed}");
    let (status, _, _) = session_fn.invoke("POST", "/api/auth/refresh/", Some(&refresh_body), &[]).await;
    assert_eq!(status, 401, "a rotated token is refused");
    let (status, _, _) = session_fn.invoke("POST", "/api/auth/logout/", Some(&refresh_body), &[]).await;
    assert_eq!(status, 204);
    // The signup's code counts as a send: a resend within the minute is refused, with when.
    let (status, headers, body) =
        resend.invoke("POST", "/api/auth/resend-otp/", Some(r#"{"email":"tony@stark.example"}"#), &[]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("otp_resend_cooldown")), "{body}");
    assert!(headers["retry-after"].as_str().is_some_and(|s| s.parse::<u64>().is_ok_and(|n| (1..=60).contains(&n))));
    let (status, _, _) =
        password.invoke("POST", "/api/auth/forgot-password/", Some(r#"{"email":"tony@stark.example"}"#), &[]).await;
    assert_eq!(status, 202);
    let jobs = take_jobs(&sqs, &queue_url).await;
    assert_eq!(jobs.len(), 1, "only the reset code was queued: {jobs:?}");
    assert_eq!(jobs[0]["template"], "password_reset");
    let reset_code = jobs[0]["vars"]["code"].as_str().unwrap().to_string();
    let reset =
        json!({ "email": "tony@stark.example", "otp": reset_code, "new_password": "Mark-42-is-better" }).to_string();
    let (status, _, body) = password.invoke("POST", "/api/auth/reset-password/", Some(&reset), &[]).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = login
        .invoke(
            "POST",
            "/api/auth/login/",
            Some(r#"{"email":"tony@stark.example","password":"Mark-42-is-better"}"#),
            &[],
        )
        .await;
    assert_eq!(status, 200);

    // Nothing secret reached any function's log: not a code, a password, a token, the pepper
    // or the signing key. (The logs are what CloudWatch would hold.) The processes are stopped
    // and their pipes drained first, so no late line escapes the check.
    let numbers = [code, reset_code];
    let texts = [
        "I-am-Iron-Man".to_string(),
        "Mark-42-is-better".to_string(),
        session["access_token"].as_str().unwrap().to_string(),
        session["refresh_token"].as_str().unwrap().to_string(),
        refreshed["refresh_token"].as_str().unwrap().to_string(),
        all["OTP_PEPPER"].clone(),
        "PRIVATE KEY".to_string(),
    ];
    for mut f in [health, signup, verify, login, me, fallback, resend, session_fn, password] {
        let _ = f.child.kill().await;
        for d in f.drains.drain(..) {
            d.await.unwrap();
        }
        let log = f.log.lock().await.clone();
        assert!(log.contains("\"request\""), "{}: expected request log lines, got: {log}", f.name);
        for secret in &texts {
            assert!(!log.contains(secret.as_str()), "{} logged a secret: {log}", f.name);
        }
        for number in &numbers {
            assert!(!logs::contains_number(&log, number), "{} logged a code: {log}", f.name);
        }
    }
}

/// Signs a user up and verifies the address through the Lambdas; returns an access token
/// and the user's id.
async fn verified_user(
    fns: (&Function, &Function, &Function),
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    email: &str,
    username: &str,
) -> (String, String) {
    let (signup, verify, login) = fns;
    let body = json!({ "email": email, "password": "I-am-Iron-Man", "username": username }).to_string();
    let (status, _, created) = signup.invoke("POST", "/api/auth/signup/", Some(&body), &[]).await;
    assert_eq!(status, 201, "{created}");
    let jobs = take_jobs(sqs, queue_url).await;
    let code = jobs.iter().find(|j| j["to"] == email).expect("the signup email job")["vars"]["code"].clone();
    let (status, _, _) = verify
        .invoke("POST", "/api/auth/verify-otp/", Some(&json!({ "email": email, "otp": code }).to_string()), &[])
        .await;
    assert_eq!(status, 200);
    let creds = json!({ "email": email, "password": "I-am-Iron-Man" }).to_string();
    let (status, _, session) = login.invoke("POST", "/api/auth/login/", Some(&creds), &[]).await;
    assert_eq!(status, 200, "{session}");
    let token = format!("Bearer {}", session["access_token"].as_str().unwrap());
    (token, created["user"]["id"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn the_lambdas_serve_catalog_trial_and_purchase() {
    let (all, sqs, queue_url) = environment().await;
    let signup = Function::start("signup", &env_for(&all, "signup", &[])).await;
    let verify = Function::start("verify-otp", &env_for(&all, "verify-otp", &[])).await;
    let login = Function::start("login", &env_for(&all, "login", &[])).await;
    let auth = (&signup, &verify, &login);
    let (_, admin_id) = verified_user(auth, &sqs, &queue_url, "admin@stark.example", "admin").await;
    // Granted as `stark admin grant-role` does, then signed in again for a token with the role.
    let sdk = aws::sdk_config().await;
    let store =
        stark::adapters::dynamodb::DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), all["TABLE_NAME"].clone());
    assert!(stark::ports::UserStore::set_role(&store, &admin_id, stark::domain::Role::Admin).await.unwrap());
    let creds = r#"{"email":"admin@stark.example","password":"I-am-Iron-Man"}"#;
    let (_, _, session) = login.invoke("POST", "/api/auth/login/", Some(creds), &[]).await;
    let admin = format!("Bearer {}", session["access_token"].as_str().unwrap());
    let (buyer, _) = verified_user(auth, &sqs, &queue_url, "tony@stark.example", "tony").await;

    let catalog = Function::start("catalog", &env_for(&all, "catalog", &[])).await;
    let products = Function::start("products", &env_for(&all, "products", &[])).await;
    let product = json!({
        "product_id": "STARK-MK85", "name": "Mark LXXXV", "description": "Nanotech armour.",
        "plans": [{ "plan_id": "MONTHLY_GOLD", "name": "Gold", "period": "monthly",
                    "price": { "amount_minor": 4999, "currency": "USD" }, "trial_days": 14 }],
    })
    .to_string();
    let (status, _, body) =
        catalog.invoke("POST", "/api/services/products/", Some(&product), &[("authorization", &admin)]).await;
    assert_eq!(status, 201, "{body}");
    let (status, _, body) =
        catalog.invoke("POST", "/api/services/products/", Some(&product), &[("authorization", &buyer)]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));
    let (status, _, body) = products.invoke("GET", "/api/services/products/", None, &[]).await;
    assert_eq!((status, body["products"][0]["product_id"].as_str()), (200, Some("STARK-MK85")), "{body}");
    let (status, _, body) = products.invoke("GET", "/api/services/products/STARK-MK85/", None, &[]).await;
    assert_eq!((status, body["plans"][0]["price"]["amount_minor"].as_i64()), (200, Some(4999)));

    let trial = Function::start("start-trial", &env_for(&all, "start-trial", &[])).await;
    let purchase = Function::start("purchase", &env_for(&all, "purchase", &[])).await;
    let admin_fn = Function::start("admin", &env_for(&all, "admin", &[])).await;
    let mine = Function::start("my-subscriptions", &env_for(&all, "my-subscriptions", &[])).await;
    let subs = Function::start("subscriptions", &env_for(&all, "subscriptions", &[])).await;
    let wallet = Function::start("wallet", &env_for(&all, "wallet", &[])).await;

    let (status, _, body) = trial
        .invoke(
            "POST",
            "/api/services/start-trial/",
            Some(r#"{"product_id":"STARK-MK85"}"#),
            &[("authorization", &buyer)],
        )
        .await;
    assert_eq!((status, body["subscription"]["status"].as_str()), (201, Some("trialing")), "{body}");
    let buy = r#"{"product_id":"STARK-MK85","plan_id":"MONTHLY_GOLD","payment_method":"STARK_PAY"}"#;
    let headers = [("authorization", buyer.as_str()), ("idempotency-key", "order-1")];
    let (status, _, body) = purchase.invoke("POST", "/api/services/purchase/", Some(buy), &headers).await;
    assert_eq!((status, body["error"]["code"].as_str()), (402, Some("insufficient_funds")), "{body}");
    let credit = r#"{"email":"tony@stark.example","amount_minor":5000}"#;
    let (status, _, body) =
        admin_fn.invoke("POST", "/api/admin/wallet/credit/", Some(credit), &[("authorization", &admin)]).await;
    assert_eq!((status, body["balance"]["amount_minor"].as_i64()), (200, Some(5000)), "{body}");
    let (status, _, _) = purchase.invoke("POST", "/api/services/purchase/", Some(buy), &headers).await;
    assert_eq!(status, 402, "a refusal is replayed under its key");
    let headers = [("authorization", buyer.as_str()), ("idempotency-key", "order-2")];
    let (status, _, bought) = purchase.invoke("POST", "/api/services/purchase/", Some(buy), &headers).await;
    assert_eq!((status, bought["subscription"]["status"].as_str()), (201, Some("active")), "{bought}");
    let (status, replay_headers, replay) =
        purchase.invoke("POST", "/api/services/purchase/", Some(buy), &headers).await;
    assert_eq!((status, &replay["payment"]), (201, &bought["payment"]));
    assert_eq!(replay_headers["idempotent-replayed"], "true");
    let (status, _, body) = wallet.invoke("GET", "/api/services/wallet/", None, &[("authorization", &buyer)]).await;
    assert_eq!((status, body["balance"]["amount_minor"].as_i64()), (200, Some(1)), "{body}");
    let (status, _, body) =
        mine.invoke("GET", "/api/services/my-subscriptions/", None, &[("authorization", &buyer)]).await;
    assert_eq!((status, body["subscriptions"].as_array().map(Vec::len)), (200, Some(1)));
    let id = bought["subscription"]["subscription_id"].as_str().unwrap();
    let (status, _, body) = subs
        .invoke("POST", &format!("/api/services/subscriptions/{id}/cancel/"), Some("{}"), &[("authorization", &buyer)])
        .await;
    assert_eq!((status, body["subscription"]["auto_renew"].as_bool()), (200, Some(false)), "{body}");
    let (status, _, body) = catalog
        .invoke("GET", "/api/services/products/STARK-MK85/subscribers/", None, &[("authorization", &admin)])
        .await;
    assert_eq!((status, body["subscribers"][0]["email"].as_str()), (200, Some("tony@stark.example")), "{body}");

    // The trial, the payment and the cancellation each queued their email, through the outbox.
    let jobs = take_jobs(&sqs, &queue_url).await;
    let mut templates: Vec<&str> = jobs.iter().filter_map(|j| j["template"].as_str()).collect();
    templates.sort();
    assert_eq!(templates, ["payment_confirmation", "subscription_canceled", "trial_started"], "{jobs:?}");

    for mut f in [signup, verify, login, catalog, products, trial, purchase, admin_fn, mine, subs, wallet] {
        let _ = f.child.kill().await;
        for d in f.drains.drain(..) {
            d.await.unwrap();
        }
        let log = f.log.lock().await.clone();
        assert!(log.contains("\"request\""), "{}: expected request log lines, got: {log}", f.name);
        for secret in [&admin[7..], &buyer[7..], "I-am-Iron-Man", "PRIVATE KEY"] {
            assert!(!log.contains(secret), "{} logged a secret: {log}", f.name);
        }
    }
}

#[tokio::test]
async fn the_workers_sweep_the_outbox_and_send_with_ses() {
    let (all, sqs, queue_url) = environment().await;
    let (_, dlq_url) = aws::sqs_queue().await;
    let ses = aws::ses_client().await;
    ses.create_email_identity().email_identity("no-reply@stark.example").send().await.unwrap();
    let to = format!("{}@stark.example", aws::unique("worker"));

    // An email job that its relay could not queue, left in the outbox a minute ago.
    let sdk = aws::sdk_config().await;
    let store =
        stark::adapters::dynamodb::DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), all["TABLE_NAME"].clone());
    let job = json!({
        "job_id": uuid::Uuid::new_v4().to_string(), "template": "otp_verification", "to": to, "locale": "en",
        "vars": { "username": "tony", "code": "731946", "ttl_minutes": "10" },
    });
    let entry = stark::ports::OutboxEntry {
        created_at: chrono::Utc::now() - chrono::Duration::minutes(1),
        job: serde_json::from_value(job.clone()).unwrap(),
    };
    let commit = stark::ports::Commit { outbox: vec![entry], ..Default::default() };
    stark::ports::SubscriptionStore::commit(&store, &commit).await.unwrap();

    let sweep = Function::start("outbox-sweep", &env_for(&all, "outbox-sweep", &["EMAIL_QUEUE_URL"])).await;
    let sample: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}/../events/outbox-sweep.json", env!("CARGO_MANIFEST_DIR"))).unwrap(),
    )
    .unwrap();
    assert_eq!(sweep.invoke_raw(&sample).await, json!({ "sent": 1 }));
    assert_eq!(sweep.invoke_raw(&sample).await, json!({ "sent": 0 }), "sent once");
    let out = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let messages = out.messages.unwrap_or_default();
    assert_eq!(messages.len(), 1);

    // The sender takes the batch as SQS delivers it: the swept job and a poison message.
    let mut env = env_for(&all, "email-sender", &[]);
    env.insert("MAIL_FROM", "Stark Industries <no-reply@stark.example>".into());
    env.insert("DEAD_LETTER_QUEUE_URL", dlq_url.clone());
    env.insert("AWS_ENDPOINT_URL_SESV2", aws::moto_ses_url());
    let sender = Function::start("email-sender", &env).await;
    let mut event: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}/../events/email-sender.json", env!("CARGO_MANIFEST_DIR"))).unwrap(),
    )
    .unwrap();
    let template = event["Records"][0].clone();
    let mut good = template.clone();
    good["messageId"] = json!(messages[0].message_id());
    good["body"] = json!(messages[0].body());
    let mut poison = template;
    poison["messageId"] = json!("poison-1");
    poison["body"] = json!("%%% not a job");
    event["Records"] = json!([good, poison]);
    let answer = sender.invoke_raw(&event).await;
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let answer = sender.invoke_raw(&event).await;
    assert_eq!(answer["batchItemFailures"], json!([]), "a redelivery is not a failure either");
    let data: Value = reqwest_like_get(&format!("{}/moto-api/data.json", aws::moto_ses_url())).await;
    let sent = parsed_mail::ses_sent_to(&data, &to);
    assert_eq!(sent.len(), 1, "one email, though the batch came twice");
    assert!(sent[0].html.contains("731946") && sent[0].text.contains("731946"));
    let parked =
        sqs.receive_message().queue_url(&dlq_url).max_number_of_messages(10).wait_time_seconds(1).send().await.unwrap();
    assert_eq!(parked.messages.unwrap_or_default().iter().filter(|m| m.body() == Some("%%% not a job")).count(), 2);

    for mut f in [sweep, sender] {
        let _ = f.child.kill().await;
        for d in f.drains.drain(..) {
            d.await.unwrap();
        }
        let log = f.log.lock().await.clone();
        assert!(!logs::contains_number(&log, "731946"), "{} logged the code: {log}", f.name);
    }
}

fn sample(name: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(format!("{}/../events/{name}.json", env!("CARGO_MANIFEST_DIR"))).unwrap(),
    )
    .unwrap()
}

/// Messages waiting on `url`, removed from it: (body, `reason` attribute).
async fn take_messages(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if got.messages().is_empty() {
            return out;
        }
        for m in got.messages() {
            let reason =
                m.message_attributes().and_then(|a| a.get("reason")).and_then(|v| v.string_value()).map(str::to_string);
            out.push((m.body().unwrap().to_string(), reason));
            sqs.delete_message().queue_url(url).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
        }
    }
}

#[tokio::test]
async fn the_lifecycle_fans_out_and_its_worker_renews_once() {
    use stark::domain::*;
    use stark::ports::{CatalogStore, Commit, LiveSlot, SubscriptionStore, UserStore};
    let (all, sqs, email_queue) = environment().await;
    let (_, lifecycle_queue) = aws::sqs_queue().await;
    let (_, dlq) = aws::sqs_queue().await;
    let sdk = aws::sdk_config().await;
    let store =
        stark::adapters::dynamodb::DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), all["TABLE_NAME"].clone())
            .with_due_shards(4);

    // A customer whose weekly subscription ended before the sample event's 03:00 run.
    let now: chrono::DateTime<chrono::Utc> = "2026-12-02T03:00:00Z".parse().unwrap();
    let start = now - chrono::Duration::days(7) - chrono::Duration::hours(1);
    let user = User {
        id: uuid::Uuid::now_v7().to_string(),
        email: Email::parse("rhodey@stark.example").unwrap(),
        username: Username::parse("rhodey").unwrap(),
        role: Role::User,
        email_verified: true,
        locale: "en".into(),
        created_at: start,
        password_hash: PasswordHash("$argon2id$unused".into()),
        token_generation: 0,
    };
    let otp = OtpRecord { code_mac: "x".into(), attempts: 0, created_at: start, expires_at: start };
    store.create_user(&user, &otp, &[]).await.unwrap();
    let plan = Plan {
        plan_id: PlanId::parse("WEEKLY").unwrap(),
        name: "Weekly".into(),
        period: Period::Weekly,
        price: Money::usd(700),
        trial_days: 0,
    };
    let product = Product {
        product_id: ProductId::parse("WAR-MACHINE").unwrap(),
        name: "War Machine".into(),
        description: "Armour.".into(),
        translations: Default::default(),
        status: ProductStatus::Active,
        owner_id: None,
        created_at: start,
        updated_at: start,
        version: 1,
        plans: vec![plan.clone()],
    };
    store.create_product(&product).await.unwrap();
    let credit = WalletTxn {
        transaction_id: uuid::Uuid::now_v7().to_string(),
        user_id: user.id.clone(),
        kind: TxnKind::Credit,
        amount: Money::usd(700),
        reference: "test".into(),
        created_at: start,
    };
    store.commit(&Commit { wallet: Some(credit), ..Default::default() }).await.unwrap();
    let sub = Subscription {
        subscription_id: uuid::Uuid::now_v7().to_string(),
        user_id: user.id.clone(),
        user_email: user.email.clone(),
        product_id: product.product_id.clone(),
        plan_id: plan.plan_id.clone(),
        status: SubStatus::Active,
        current_period_start: start,
        current_period_end: start + chrono::Duration::days(7),
        anchor: start,
        period_index: 0,
        auto_renew: true,
        scheduled_plan_id: None,
        marks: Default::default(),
        created_at: start,
        updated_at: start,
        version: 1,
    };
    store
        .commit(&Commit { subscription: Some((sub.clone(), None)), live: Some(LiveSlot::Claim), ..Default::default() })
        .await
        .unwrap();

    let mut env = env_for(&all, "lifecycle", &[]);
    env.insert("LIFECYCLE_QUEUE_URL", lifecycle_queue.clone());
    env.insert("DUE_SHARDS", "4".into());
    let scheduler = Function::start("lifecycle", &env).await;
    let answer = scheduler.invoke_raw(&sample("lifecycle")).await;
    assert_eq!(answer["shards"], 4, "{answer}");
    let run_id = answer["run_id"].as_str().unwrap().to_string();
    assert!(run_id.starts_with("20261202T030000Z-"), "{run_id}");
    // A retried schedule event is the same run.
    assert_eq!(scheduler.invoke_raw(&sample("lifecycle")).await["run_id"], json!(run_id));
    let mut shards: Vec<Value> = take_messages(&sqs, &lifecycle_queue)
        .await
        .into_iter()
        .map(|(b, _)| serde_json::from_str(&b).unwrap())
        .collect();
    shards.sort_by_key(|m| m["shard"].as_u64());
    shards.dedup();
    assert_eq!(shards.len(), 4, "{shards:?}");

    let mut env = env_for(&all, "lifecycle-worker", &["EMAIL_QUEUE_URL"]);
    env.insert("LIFECYCLE_QUEUE_URL", lifecycle_queue.clone());
    env.insert("DEAD_LETTER_QUEUE_URL", dlq.clone());
    env.insert("DUE_SHARDS", "4".into());
    let worker = Function::start("lifecycle-worker", &env).await;
    let mut event = sample("lifecycle-worker");
    let template = event["Records"][0].clone();
    let mut records: Vec<Value> = shards
        .iter()
        .map(|m| {
            let mut r = template.clone();
            r["messageId"] = json!(format!("shard-{}", m["shard"]));
            r["body"] = json!(m.to_string());
            r
        })
        .collect();
    let mut poison = template.clone();
    poison["messageId"] = json!("poison");
    poison["body"] = json!("{\"shard\": \"all of them\"}");
    records.push(poison);
    let mut too_far = template;
    too_far["messageId"] = json!("too-far");
    too_far["body"] = json!(json!({ "run_id": run_id, "now": "2026-12-02T03:00:00Z", "shard": 9 }).to_string());
    records.push(too_far);
    event["Records"] = json!(records);
    let answer = worker.invoke_raw(&event).await;
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    // The same messages again (SQS redelivers at least once): nothing twice.
    let answer = worker.invoke_raw(&event).await;
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");

    let (balance, txns) = store.wallet(&user.id, 10).await.unwrap();
    assert_eq!(balance, 0, "renewed once: {txns:?}\n{}", worker.log.lock().await);
    let renewed = store.subscription(&user.id, &sub.subscription_id).await.unwrap().unwrap();
    assert_eq!(renewed.current_period_start, sub.current_period_end);
    let jobs = take_jobs(&sqs, &email_queue).await;
    let templates: Vec<&str> = jobs.iter().filter_map(|j| j["template"].as_str()).collect();
    assert_eq!(templates.iter().filter(|t| **t == "payment_confirmation").count(), 1, "{jobs:?}");
    let parked = take_messages(&sqs, &dlq).await;
    assert_eq!(parked.len(), 4, "the poison and the unknown shard, twice each: {parked:?}");
    assert!(parked.iter().all(|(_, reason)| reason.is_some()), "each with its reason: {parked:?}");
    let recorded = stark::ports::LifecycleStore::run(&store, &run_id).await.unwrap().unwrap();
    assert_eq!((recorded.shards_done, recorded.counts.renewed), (4, 1), "{recorded:?}");
    assert!(recorded.finished_at.is_some());

    for mut f in [scheduler, worker] {
        let _ = f.child.kill().await;
        for d in f.drains.drain(..) {
            d.await.unwrap();
        }
        let log = f.log.lock().await.clone();
        assert!(!log.contains("PRIVATE KEY"), "{}: {log}", f.name);
    }
}

/// GET with hyper (the functions' tests have no HTTP client crate): the JSON body.
async fn reqwest_like_get(url: &str) -> Value {
    let uri: hyper::Uri = url.parse().unwrap();
    let stream = tokio::net::TcpStream::connect((uri.host().unwrap(), uri.port_u16().unwrap())).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::get(uri.path()).header("host", uri.host().unwrap()).body(Full::new(Bytes::new())).unwrap();
    let resp = send.send_request(req).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

/// The email jobs waiting on the queue, removed from it.
async fn take_jobs(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<Value> {
    let out =
        sqs.receive_message().queue_url(url).max_number_of_messages(10).wait_time_seconds(1).send().await.unwrap();
    let mut jobs = Vec::new();
    for m in out.messages() {
        jobs.push(serde_json::from_str(m.body().unwrap()).unwrap());
        sqs.delete_message().queue_url(url).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
    }
    jobs
}

#[tokio::test]
async fn a_function_without_its_secret_fails_at_init() {
    let (all, _, _) = environment().await;
    // login signs tokens: without JWT_PRIVATE_KEY it must refuse to start (Lambda reports a
    // failed init and retries a fresh environment), not answer 500 to every request later.
    let mut env = env_for(&all, "login", &["JWT_PUBLIC_KEY"]);
    env.remove("JWT_PRIVATE_KEY");
    let mut login = Function::start("login", &env).await;
    let status = tokio::time::timeout(Duration::from_secs(20), login.child.wait()).await.unwrap().unwrap();
    assert!(!status.success());
    for d in login.drains.drain(..) {
        d.await.unwrap();
    }
    let log = login.log.lock().await.clone();
    assert!(log.contains("JWT_PRIVATE_KEY is not set"), "log was: {log}");
    assert!(!log.contains("BEGIN"), "no key material in the log");
}
