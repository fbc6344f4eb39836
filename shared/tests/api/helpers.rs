//! `spawn_app`: the real local server on port 0 with fresh storage, a manual clock and a
//! client, plus helpers for the flows (signing up, reading codes from the `.eml` outbox).

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use stark::adapters::dynamodb::DynamoStore;
use stark::adapters::sqlite::SqliteStore;
use stark::app::{AppContext, Stores};
use stark::clock::ManualClock;
use stark::config::{self, LocalConfig};
use stark::security::password_hash::HashCost;

pub const PASSWORD: &str = "I-am-Iron-Man-3000";

/// Which store the suite runs on; each test binary that includes this suite sets
/// `crate::BACKEND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // each test binary constructs one of the two
pub enum Backend {
    Sqlite,
    Dynamodb,
}

/// What survives a restart: the data dir (keys, SQLite file, outbox) and, on DynamoDB, the table.
pub struct Storage {
    pub data_dir: PathBuf,
    _keep: Option<Arc<tempfile::TempDir>>,
    table: Option<(aws_sdk_dynamodb::Client, String, crate::iam::IamCheck)>,
}

impl Storage {
    pub async fn fresh() -> Storage {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let table = match crate::BACKEND {
            Backend::Sqlite => None,
            Backend::Dynamodb => {
                let (_, table) = crate::aws::dynamo_table().await;
                // Every request the server makes is checked against template.yaml's IAM.
                let iam = crate::iam::IamCheck::new();
                let conf = aws_sdk_dynamodb::config::Builder::from(&crate::aws::sdk_config().await)
                    .interceptor(iam.clone())
                    .build();
                Some((aws_sdk_dynamodb::Client::from_conf(conf), table, iam))
            }
        };
        Storage { data_dir: dir.path().to_path_buf(), _keep: Some(dir), table }
    }

    /// A fresh table on the DynamoDB at `endpoint` (a test's private moto_server), with the
    /// production timeouts scaled down so an outage shows in well under a second per call.
    #[allow(dead_code)]
    pub async fn fresh_on(endpoint: &str) -> Storage {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let timeouts = aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
            .connect_timeout(std::time::Duration::from_millis(300))
            .operation_attempt_timeout(std::time::Duration::from_millis(700))
            .operation_timeout(std::time::Duration::from_millis(1500))
            .build();
        let iam = crate::iam::IamCheck::new();
        let conf = aws_sdk_dynamodb::config::Builder::from(&crate::aws::sdk_config().await)
            .endpoint_url(endpoint)
            .timeout_config(timeouts)
            .interceptor(iam.clone())
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(conf);
        let table = crate::aws::unique("stark-outage");
        // Made with the SDK's own timeouts: a fresh moto can take longer than the app's
        // 700 ms attempt, and a retried CreateTable then finds the table it made (CI saw it).
        let setup = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&crate::aws::sdk_config().await).endpoint_url(endpoint).build(),
        );
        DynamoStore::create_table(&setup, &table).await.unwrap();
        Storage { data_dir: dir.path().to_path_buf(), _keep: Some(dir), table: Some((client, table, iam)) }
    }

    /// How many DynamoDB requests the server has made so far for `endpoint` (DynamoDB only).
    #[allow(dead_code)] // the DynamoDB suite only
    pub fn dynamodb_calls(&self, endpoint: stark::http::Endpoint) -> usize {
        let (_, _, iam) = self.table.as_ref().expect("counted on the DynamoDB store only");
        iam.calls.lock().unwrap().iter().filter(|(e, _)| *e == endpoint).count()
    }

    /// What the IAM check refused so far (DynamoDB only).
    pub fn iam_violations(&self) -> Vec<String> {
        self.table.as_ref().map(|(_, _, iam)| iam.violations.lock().unwrap().clone()).unwrap_or_default()
    }

    fn stores(&self) -> anyhow::Result<Stores> {
        Ok(match &self.table {
            None => {
                let store = Arc::new(SqliteStore::open(&self.data_dir.join("stark.db"))?);
                Stores::from_adapter(store.clone()).with_housekeeping(store)
            }
            // Four due shards, not the deployment's 32: the same code, an eighth of moto's work.
            Some((client, table, _)) => {
                Stores::from_adapter(Arc::new(DynamoStore::new(client.clone(), table.clone()).with_due_shards(4)))
            }
        })
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub ctx: Arc<AppContext>,
    pub data_dir: PathBuf,
    storage: Option<Storage>,
    outbox_queue: stark::adapters::inprocess_queue::InProcessQueue,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn start_time() -> DateTime<Utc> {
    "2026-06-01T09:00:00Z".parse().unwrap()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_on(Storage::fresh().await, HashCost::TEST).await
}

/// Starts the server on `storage` (a "restart" when that storage was used before). The
/// enumeration floor is off: tests that are not about timing should not wait for it.
pub async fn spawn_app_on(storage: Storage, cost: HashCost) -> TestApp {
    spawn_app_with(storage, cost, std::time::Duration::ZERO).await
}

pub async fn spawn_app_with(storage: Storage, cost: HashCost, enumeration_floor: std::time::Duration) -> TestApp {
    spawn_app_full(storage, cost, enumeration_floor, None).await
}

/// A server whose catalog texts go through Amazon Translate on the local fake server (the
/// in-process cache in front of it), instead of being served as written.
pub async fn spawn_app_translated(fake: &crate::fake_translate::FakeTranslate) -> TestApp {
    let translator = stark::adapters::amazon_translate::AmazonTranslate::from_conf(fake.config());
    let service = stark::i18n::TranslationService::new(
        Some(Arc::new(translator)),
        None,
        stark::i18n::TranslationSettings::default(),
    );
    spawn_app_full(Storage::fresh().await, HashCost::TEST, std::time::Duration::ZERO, Some(service)).await
}

/// The app behind a server with these limits (timeouts, connection cap).
#[allow(dead_code)] // the limits suite runs on SQLite alone: no store is involved
pub async fn spawn_app_limited(limits: stark::local::ServerLimits) -> TestApp {
    spawn_app_serving(Storage::fresh().await, HashCost::TEST, std::time::Duration::ZERO, None, limits).await
}

async fn spawn_app_full(
    storage: Storage,
    cost: HashCost,
    enumeration_floor: std::time::Duration,
    translations: Option<stark::i18n::TranslationService>,
) -> TestApp {
    spawn_app_serving(storage, cost, enumeration_floor, translations, stark::local::ServerLimits::default()).await
}

/// The server's warnings and errors (`RUST_LOG` to change the level) go to the test's captured
/// output, which the harness prints only when the test fails: a test that meets a 500 shows
/// the logged cause beside its assertion. The server runs on the test's own thread (a
/// current-thread runtime), where the capture applies.
fn capture_server_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_test_writer().try_init();
}

async fn spawn_app_serving(
    storage: Storage,
    cost: HashCost,
    enumeration_floor: std::time::Duration,
    translations: Option<stark::i18n::TranslationService>,
    limits: stark::local::ServerLimits,
) -> TestApp {
    capture_server_logs();
    let clock = Arc::new(ManualClock::new(start_time()));
    let cfg = LocalConfig { hash_cost: cost, enumeration_floor, ..LocalConfig::embedded(storage.data_dir.clone()) };
    let stores = storage.stores().unwrap();
    let (mut ctx, outbox_queue) = config::local_context_with(&cfg, clock.clone(), stores).await.unwrap();
    if let Some(t) = translations {
        ctx.translations = Arc::new(t);
    }
    let ctx = Arc::new(ctx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server_ctx = ctx.clone();
    let server = tokio::spawn(async move {
        stark::local::serve(server_ctx, listener, limits, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    TestApp {
        base,
        client: reqwest::Client::new(),
        clock,
        ctx,
        data_dir: storage.data_dir.clone(),
        storage: Some(storage),
        outbox_queue: outbox_queue.expect("the API suite runs on the in-process queue"),
        stop: Some(stop),
        server: Some(server),
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(storage) = &self.storage {
            let refused = storage.iam_violations();
            if !refused.is_empty() && !std::thread::panicking() {
                panic!("store calls that template.yaml's IAM would refuse on AWS:\n{}", refused.join("\n"));
            }
        }
    }
}

impl TestApp {
    /// Stops the server and hands back its storage, to start another on it.
    #[allow(dead_code)] // the DynamoDB suite only
    pub fn storage(&self) -> &Storage {
        self.storage.as_ref().expect("storage")
    }

    pub async fn stop(mut self) -> Storage {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
        self.storage.take().expect("storage")
    }

    pub fn advance(&self, secs: i64) {
        self.clock.advance(Duration::seconds(secs));
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        Reply { status, headers, body }
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.client.post(format!("{}{path}", self.base)).json(&body)).await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        self.send(self.client.post(format!("{}{path}", self.base)).body(body)).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    pub async fn signup(&self, email: &str, username: &str) -> Reply {
        self.post("/api/auth/signup/", json!({ "email": email, "password": PASSWORD, "username": username })).await
    }

    /// Signs up and verifies; returns the user's id.
    pub async fn verified_user(&self, email: &str, username: &str) -> String {
        let r = self.signup(email, username).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let code = self.wait_for_code(email, 1).await;
        let r = self.post("/api/auth/verify-otp/", json!({ "email": email, "otp": code })).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["user"]["id"].as_str().unwrap().to_string()
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post("/api/auth/login/", json!({ "email": email, "password": password })).await
    }

    /// A verified user's access token.
    pub async fn token(&self, email: &str, username: &str) -> String {
        self.verified_user(email, username).await;
        let r = self.login(email, PASSWORD).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["access_token"].as_str().unwrap().to_string()
    }

    /// A verified user with `role` (granted through the store, as `stark admin grant-role`
    /// does), signed in after the grant.
    pub async fn token_with_role(&self, email: &str, username: &str, role: stark::domain::Role) -> String {
        let id = self.verified_user(email, username).await;
        assert!(self.ctx.stores.users.set_role(&id, role).await.unwrap());
        let r = self.login(email, PASSWORD).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["access_token"].as_str().unwrap().to_string()
    }

    /// A new access token for an existing verified user (after the clock moved past the
    /// 15-minute lifetime of the last one).
    pub async fn sign_in(&self, email: &str) -> String {
        let r = self.login(email, PASSWORD).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["access_token"].as_str().unwrap().to_string()
    }

    /// A request with a bearer token and a JSON body.
    pub fn authed(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base)).bearer_auth(token)
    }

    pub async fn post_as(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send(self.authed(reqwest::Method::POST, path, token).json(&body)).await
    }

    pub async fn patch_as(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send(self.authed(reqwest::Method::PATCH, path, token).json(&body)).await
    }

    pub fn outbox(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }

    /// Waits until at least `n` emails to `to` are in the outbox; returns the code in the
    /// newest one.
    pub async fn wait_for_code(&self, to: &str, n: usize) -> String {
        let emails = self.wait_for_emails(to, n).await;
        code_in(emails.last().unwrap())
    }

    pub async fn wait_for_emails(&self, to: &str, n: usize) -> Vec<String> {
        for _ in 0..200 {
            let found = emails_to(&self.outbox(), to);
            if found.len() >= n {
                return found;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("expected {n} email(s) to {to} in {}", self.outbox().display());
    }

    /// Waits until every email queued so far is written. Lets a test assert that nothing was sent.
    pub async fn flush_emails(&self) {
        self.outbox_queue.flush().await.unwrap();
    }

    pub fn count_emails(&self, to: &str) -> usize {
        emails_to(&self.outbox(), to).len()
    }
}

/// Emails to `to`, oldest first (file names start with a time-ordered job id).
pub fn emails_to(outbox: &Path, to: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(outbox) else { return Vec::new() };
    let mut paths: Vec<PathBuf> =
        dir.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "eml")).collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter(|eml| eml.contains(&format!("\r\nTo: {to}\r\n")))
        .collect()
}

/// The six-digit code in an email's text part.
pub fn code_in(eml: &str) -> String {
    let marker = "code is ";
    let at = eml.find(marker).expect("no code in email") + marker.len();
    eml[at..at + 6].to_string()
}
