//! Warm handler cost per endpoint, in process on the embedded store (criterion; bench
//! profile = release as shipped). Each request goes through `http::handle` (routing, the
//! handler, the response) on a SQLite store in a temp dir, production argon2, the enumeration
//! floor off (it is a sleep, not work) and a queue that keeps jobs in memory (as an SQS send
//! would, without the network). Every request runs in a `stark::timing` scope, so its time is
//! split into crypto (signatures, SHA-256, HMAC), hash (argon2id), I/O (store calls, with the
//! hop to the blocking pool) and the rest: the handler's own work. After criterion's figures
//! it prints p50 and p99 of each part per endpoint, over every timed request.
//!
//! Run with `cargo bench -p stark-cli --bench handlers`.

use bytes::Bytes;
use criterion::Criterion;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stark::app::AppContext;
use stark::domain::{otp_mac, Email, OtpCode, OtpPurpose, OtpRecord, Password, PasswordHash, Role, User, Username};
use stark::http::{router::ALL, ApiRequest};
use stark::ports::{EmailJob, EmailQueue, InfraError};
use stark::security::jwt::TokenSigner;
use stark::security::password_hash::{hash_with, HashCost, PasswordHasherService};
use stark::timing::Spent;

const PASSWORD: &str = "I-am-Iron-Man-3000";
const CODE: &str = "123456";

/// What an SQS send is to the handler, minus the network: the job is kept.
#[derive(Default)]
struct MemoryQueue(Mutex<Vec<EmailJob>>);

#[async_trait::async_trait]
impl EmailQueue for MemoryQueue {
    async fn enqueue(&self, job: &EmailJob) -> Result<(), InfraError> {
        let mut q = self.0.lock().unwrap();
        if q.len() > 10_000 {
            q.clear();
        }
        q.push(job.clone());
        Ok(())
    }
    async fn ping(&self) -> Result<(), InfraError> {
        Ok(())
    }
}

struct Bench {
    ctx: Arc<AppContext>,
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    hash: PasswordHash,
    n: std::sync::atomic::AtomicU64,
    samples: Mutex<BTreeMap<&'static str, Vec<(Duration, Spent)>>>,
}

struct Reply {
    status: u16,
    body: Value,
}

fn request(method: Method, path: &str, body: Option<Value>, token: Option<&str>) -> ApiRequest {
    let mut headers = HeaderMap::new();
    if let Some(t) = token {
        headers.insert("authorization", HeaderValue::from_str(&format!("Bearer {t}")).unwrap());
    }
    if body.is_some() {
        headers.insert("content-type", HeaderValue::from_static("application/json"));
    }
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    ApiRequest { method, path: path.to_string(), headers, body }
}

impl Bench {
    fn new() -> Bench {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ctx = rt.block_on(async {
            let cfg = stark::config::LocalConfig {
                hash_cost: HashCost::PRODUCTION,
                enumeration_floor: Duration::ZERO,
                ..stark::config::LocalConfig::embedded(dir.path().to_path_buf())
            };
            let clock = Arc::new(stark::clock::SystemClock);
            let (mut ctx, _worker) = stark::config::local_context(&cfg, clock).await.unwrap();
            ctx.email_queue = Arc::new(MemoryQueue::default());
            let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/catalog.json")).unwrap();
            let products = stark::http::handlers::catalog::parse_catalog(&text).unwrap();
            stark::app::catalog::load_catalog(&ctx, products).await.unwrap();
            Arc::new(ctx)
        });
        let hash = hash_with(HashCost::PRODUCTION, PASSWORD).unwrap();
        Bench { ctx, rt, _dir: dir, hash, n: Default::default(), samples: Default::default() }
    }

    fn signer(&self) -> &TokenSigner {
        self.ctx.keys.signer.as_ref().unwrap()
    }

    async fn call(&self, req: ApiRequest) -> Reply {
        let resp = stark::http::handle(&self.ctx, ALL, req).await;
        let body = if resp.body.is_empty() { Value::Null } else { serde_json::from_slice(&resp.body).unwrap() };
        Reply { status: resp.status.as_u16(), body }
    }

    /// One timed request, recorded under `name`; its status must be `expect`.
    async fn timed(&self, name: &'static str, req: ApiRequest, expect: u16) -> (Duration, Reply) {
        let start = Instant::now();
        let (resp, spent) = stark::timing::scope(stark::http::handle(&self.ctx, ALL, req)).await;
        let took = start.elapsed();
        assert_eq!(resp.status.as_u16(), expect, "{name}: {}", String::from_utf8_lossy(&resp.body));
        self.samples.lock().unwrap().entry(name).or_default().push((took, spent));
        let body = if resp.body.is_empty() { Value::Null } else { serde_json::from_slice(&resp.body).unwrap() };
        (took, Reply { status: resp.status.as_u16(), body: black_box(body) })
    }

    fn next(&self) -> u64 {
        self.n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// A new account straight in the store (no hash: they all share one production hash),
    /// with a pending verification code `CODE`; and an access token for it.
    async fn user(&self, role: Role, verified: bool) -> (User, String) {
        let n = self.next();
        let now = chrono::Utc::now();
        let email = Email::parse(&format!("bench{n}@stark.example")).unwrap();
        let user = User {
            id: uuid::Uuid::now_v7().to_string(),
            email: email.clone(),
            username: Username::parse(&format!("bench{n}")).unwrap(),
            role,
            email_verified: verified,
            locale: "en".into(),
            created_at: now,
            password_hash: self.hash.clone(),
            token_generation: 0,
        };
        let mac = otp_mac(self.ctx.pepper().unwrap(), OtpPurpose::Verification, &email, &OtpCode::parse(CODE).unwrap());
        self.ctx.stores.users.create_user(&user, &OtpRecord::new(mac, now), &[]).await.unwrap();
        let (token, _) = self.signer().issue(&user.id, role, now);
        (user, token)
    }

    async fn credit(&self, admin: &str, email: &Email, amount: i64) {
        let body = json!({ "email": email.as_str(), "amount_minor": amount });
        let r = self.call(request(Method::POST, "/api/admin/wallet/credit/", Some(body), Some(admin))).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    async fn purchase(&self, token: &str, product: &str, plan: &str) -> Reply {
        let body = json!({ "product_id": product, "plan_id": plan, "payment_method": "STARK_PAY" });
        self.call(request(Method::POST, "/api/services/purchase/", Some(body), Some(token))).await
    }

    async fn login(&self, email: &Email) -> Value {
        let body = json!({ "email": email.as_str(), "password": PASSWORD });
        let r = self.call(request(Method::POST, "/api/auth/login/", Some(body), None)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }
}

/// Registers `name` with criterion: each iteration runs `setup` (untimed), then the request
/// it returns (timed and recorded).
fn endpoint<S, F>(c: &mut Criterion, b: &Arc<Bench>, name: &'static str, expect: u16, mut setup: S)
where
    S: FnMut(Arc<Bench>) -> F,
    F: std::future::Future<Output = ApiRequest>,
{
    c.bench_function(name, |bencher| {
        bencher.iter_custom(|iters| {
            let bench = b.clone();
            b.rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let req = setup(bench.clone()).await;
                    total += bench.timed(name, req, expect).await.0;
                }
                total
            })
        })
    });
}

fn endpoints(c: &mut Criterion, b: &Arc<Bench>) {
    // Long-lived actors.
    let (admin, admin_token, buyer, buyer_token) = b.rt.block_on(async {
        let (admin, admin_token) = b.user(Role::Admin, true).await;
        let (buyer, buyer_token) = b.user(Role::User, true).await;
        b.credit(&admin_token, &buyer.email, 1_000_000).await;
        for (product, plan) in
            [("STARK-MK85", "MONTHLY_GOLD"), ("JARVIS-AI", "YEARLY_PRO"), ("FRIDAY-OPS", "SEASON_90")]
        {
            assert_eq!(b.purchase(&buyer_token, product, plan).await.status, 201);
        }
        (admin, admin_token, buyer, buyer_token)
    });
    let admin_token: &'static str = Box::leak(admin_token.into_boxed_str());
    let buyer_token: &'static str = Box::leak(buyer_token.into_boxed_str());
    let buyer_email: &'static str = Box::leak(buyer.email.as_str().to_string().into_boxed_str());
    let _ = admin;

    endpoint(c, b, "GET /api/health/", 200, |_| async { request(Method::GET, "/api/health/", None, None) });
    endpoint(c, b, "GET /api/auth/me/", 200, |_| async {
        request(Method::GET, "/api/auth/me/", None, Some(buyer_token))
    });
    endpoint(c, b, "GET /api/services/products/", 200, |_| async {
        request(Method::GET, "/api/services/products/", None, None)
    });
    endpoint(c, b, "GET /api/services/products/{id}/", 200, |_| async {
        request(Method::GET, "/api/services/products/STARK-MK85/", None, None)
    });
    endpoint(c, b, "GET /api/services/my-subscriptions/", 200, |_| async {
        request(Method::GET, "/api/services/my-subscriptions/", None, Some(buyer_token))
    });
    endpoint(c, b, "GET /api/services/wallet/", 200, |_| async {
        request(Method::GET, "/api/services/wallet/", None, Some(buyer_token))
    });
    endpoint(c, b, "GET /api/services/products/{id}/subscribers/", 200, |_| async {
        request(Method::GET, "/api/services/products/STARK-MK85/subscribers/", None, Some(admin_token))
    });
    endpoint(c, b, "POST /api/services/products/", 201, |b| async move {
        let body = json!({ "product_id": format!("BENCH-{}", b.next()), "name": "Bench", "description": "A product.",
            "plans": [{ "plan_id": "MONTHLY", "name": "Monthly", "period": "monthly",
                        "price": { "amount_minor": 1000, "currency": "USD" }, "trial_days": 7 }] });
        request(Method::POST, "/api/services/products/", Some(body), Some(admin_token))
    });
    endpoint(c, b, "PATCH /api/services/products/{id}/", 200, |b| async move {
        let body = json!({ "description": format!("Flies. Revision {}.", b.next()) });
        request(Method::PATCH, "/api/services/products/FRIDAY-OPS/", Some(body), Some(admin_token))
    });
    endpoint(c, b, "POST /api/services/products/{id}/plans/", 201, |b| async move {
        let id = format!("PLANS-{}", b.next());
        let body = json!({ "product_id": id, "name": "Plans", "description": "" });
        let r = b.call(request(Method::POST, "/api/services/products/", Some(body), Some(admin_token))).await;
        assert_eq!(r.status, 201);
        let plan = json!({ "plan_id": "WEEKLY", "name": "Weekly", "period": "weekly",
                           "price": { "amount_minor": 300, "currency": "USD" } });
        request(Method::POST, &format!("/api/services/products/{id}/plans/"), Some(plan), Some(admin_token))
    });
    endpoint(c, b, "POST /api/services/start-trial/", 201, |b| async move {
        let (_, token) = b.user(Role::User, true).await;
        let token: &'static str = Box::leak(token.into_boxed_str());
        request(Method::POST, "/api/services/start-trial/", Some(json!({ "product_id": "JARVIS-AI" })), Some(token))
    });
    endpoint(c, b, "POST /api/services/purchase/", 201, |b| async move {
        let (user, token) = b.user(Role::User, true).await;
        b.credit(admin_token, &user.email, 10_000).await;
        let mut req = request(
            Method::POST,
            "/api/services/purchase/",
            Some(json!({ "product_id": "STARK-MK85", "plan_id": "MONTHLY_GOLD", "payment_method": "STARK_PAY" })),
            Some(&token),
        );
        req.headers.insert("idempotency-key", HeaderValue::from_str(&format!("k{}", b.next())).unwrap());
        req
    });
    endpoint(c, b, "POST /api/services/subscriptions/{id}/cancel/", 200, |b| async move {
        let (user, token) = b.user(Role::User, true).await;
        b.credit(admin_token, &user.email, 10_000).await;
        let r = b.purchase(&token, "JARVIS-AI", "MONTHLY_BASIC").await;
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.body["subscription"]["subscription_id"].as_str().unwrap().to_string();
        request(Method::POST, &format!("/api/services/subscriptions/{id}/cancel/"), Some(json!({})), Some(&token))
    });
    endpoint(c, b, "POST /api/admin/users/role/", 200, |b| async move {
        let role = if b.next() % 2 == 0 { "provider" } else { "user" };
        request(
            Method::POST,
            "/api/admin/users/role/",
            Some(json!({ "email": buyer_email, "role": role })),
            Some(admin_token),
        )
    });
    endpoint(c, b, "POST /api/admin/wallet/credit/", 200, |_| async {
        request(
            Method::POST,
            "/api/admin/wallet/credit/",
            Some(json!({ "email": buyer_email, "amount_minor": 1 })),
            Some(admin_token),
        )
    });

    // The code flows: each iteration on an account of its own, made in the store.
    endpoint(c, b, "POST /api/auth/verify-otp/", 200, |b| async move {
        let (user, _) = b.user(Role::User, false).await;
        request(Method::POST, "/api/auth/verify-otp/", Some(json!({ "email": user.email.as_str(), "otp": CODE })), None)
    });
    endpoint(c, b, "POST /api/auth/resend-otp/", 202, |b| async move {
        let (user, _) = b.user(Role::User, false).await;
        request(Method::POST, "/api/auth/resend-otp/", Some(json!({ "email": user.email.as_str() })), None)
    });
    endpoint(c, b, "POST /api/auth/forgot-password/", 202, |b| async move {
        let (user, _) = b.user(Role::User, true).await;
        request(Method::POST, "/api/auth/forgot-password/", Some(json!({ "email": user.email.as_str() })), None)
    });
    // Sessions: refresh rotates one chain; logout ends the token that a refresh just issued.
    let session =
        Arc::new(Mutex::new(b.rt.block_on(b.login(&buyer.email))["refresh_token"].as_str().unwrap().to_string()));
    {
        let s = session.clone();
        c.bench_function("POST /api/auth/refresh/", |bencher| {
            bencher.iter_custom(|iters| {
                b.rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let token = s.lock().unwrap().clone();
                        let req =
                            request(Method::POST, "/api/auth/refresh/", Some(json!({ "refresh_token": token })), None);
                        let (took, r) = b.timed("POST /api/auth/refresh/", req, 200).await;
                        *s.lock().unwrap() = r.body["refresh_token"].as_str().unwrap().to_string();
                        total += took;
                    }
                    total
                })
            })
        });
    }
    // Logout ends a family of its own, made in the store.
    let buyer_id: &'static str = Box::leak(buyer.id.clone().into_boxed_str());
    endpoint(c, b, "POST /api/auth/logout/", 204, move |b| async move {
        let token = stark::security::new_opaque_token();
        let record = stark::ports::RefreshTokenRecord {
            token_hash: stark::security::token_hash(&token),
            user_id: buyer_id.to_string(),
            family_id: uuid::Uuid::now_v7().to_string(),
            generation: 0,
            rotated: false,
            expires_at: chrono::Utc::now() + chrono::Duration::days(1),
        };
        b.ctx.stores.refresh_tokens.create_family(&record).await.unwrap();
        request(Method::POST, "/api/auth/logout/", Some(json!({ "refresh_token": token })), None)
    });

    // The hashing endpoints: one production argon2id each (reset: one hash of the new password).
    let mut slow = c.benchmark_group("hashing");
    slow.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(4));
    let mut hashing =
        |name: &'static str,
         expect: u16,
         setup: fn(Arc<Bench>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ApiRequest>>>| {
            slow.bench_function(name, |bencher| {
                bencher.iter_custom(|iters| {
                    let bench = b.clone();
                    b.rt.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let req = setup(bench.clone()).await;
                            total += bench.timed(name, req, expect).await.0;
                        }
                        total
                    })
                })
            });
        };
    hashing("POST /api/auth/signup/", 201, |b| {
        Box::pin(async move {
            let n = b.next();
            let body = json!({ "email": format!("signup{n}@stark.example"), "password": PASSWORD, "username": format!("signup{n}") });
            request(Method::POST, "/api/auth/signup/", Some(body), None)
        })
    });
    hashing("POST /api/auth/login/", 200, |_| {
        Box::pin(async move {
            let body = json!({ "email": BUYER.get().unwrap(), "password": PASSWORD });
            request(Method::POST, "/api/auth/login/", Some(body), None)
        })
    });
    hashing("POST /api/auth/reset-password/", 200, |b| {
        Box::pin(async move {
            let (user, _) = b.user(Role::User, true).await;
            let now = chrono::Utc::now();
            let mac = otp_mac(
                b.ctx.pepper().unwrap(),
                OtpPurpose::PasswordReset,
                &user.email,
                &OtpCode::parse(CODE).unwrap(),
            );
            b.ctx
                .stores
                .otps
                .put_otp(&user.email, OtpPurpose::PasswordReset, &OtpRecord::new(mac, now), &[])
                .await
                .unwrap();
            let body = json!({ "email": user.email.as_str(), "otp": CODE, "new_password": "Jarvis-Is-My-Butler-42" });
            request(Method::POST, "/api/auth/reset-password/", Some(body), None)
        })
    });
    slow.finish();
}

static BUYER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn crypto(c: &mut Criterion) {
    let now = chrono::Utc::now();
    let signer = TokenSigner::generate();
    let verifier = signer.verifier();
    let (token, _) = signer.issue("018f0000-0000-7000-8000-000000000000", Role::User, now);
    let mut g = c.benchmark_group("crypto");
    g.bench_function("jwt verify (Ed25519, verify_strict)", |b| {
        b.iter(|| verifier.verify(black_box(&token), now).unwrap())
    });
    g.bench_function("jwt issue (Ed25519 sign)", |b| b.iter(|| signer.issue(black_box("u1"), Role::User, now)));
    g.bench_function("refresh token hash (SHA-256)", |b| {
        b.iter(|| stark::security::token_hash(black_box("a-43-char-opaque-refresh-token-in-base64url")))
    });
    let email = Email::parse("tony@stark.example").unwrap();
    let code = OtpCode::parse(CODE).unwrap();
    let pepper = [7u8; 32];
    g.bench_function("otp mac (HMAC-SHA-256)", |b| {
        b.iter(|| otp_mac(black_box(&pepper), OtpPurpose::Verification, &email, &code))
    });
    g.sample_size(10);
    g.bench_function("argon2id hash, production (m=19456 KiB, t=2)", |b| {
        b.iter(|| hash_with(HashCost::PRODUCTION, black_box(PASSWORD)).unwrap())
    });
    g.finish();
}

/// What two logins at once can reach: the hash floor of `./scripts/bench-serve` is cores ÷
/// the median of one hash alone, which assumes hashes on every core at once run as fast as
/// one alone. argon2id sweeps 19 MiB per hash, so they contend for the memory system; this
/// measures it: one hash at a time, then one per core at once, both through the hashing
/// service (its permits and reused buffers, as a login uses it).
fn hash_floor() {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(cores).enable_all().build().unwrap();
    let service = Arc::new(PasswordHasherService::new(HashCost::PRODUCTION).unwrap());
    let run = |at_once: usize, secs: f64| {
        rt.block_on(async {
            let start = Instant::now();
            let tasks: Vec<_> = (0..at_once)
                .map(|_| {
                    let service = service.clone();
                    tokio::spawn(async move {
                        let password = Password::parse(PASSWORD).unwrap();
                        let mut times = Vec::new();
                        while start.elapsed().as_secs_f64() < secs {
                            let t = Instant::now();
                            service.hash(&password).await.unwrap();
                            times.push(t.elapsed());
                        }
                        times
                    })
                })
                .collect();
            let mut times = Vec::new();
            for t in tasks {
                times.extend(t.await.unwrap());
            }
            let rate = times.len() as f64 / start.elapsed().as_secs_f64();
            times.sort();
            (rate, times[times.len() / 2].as_secs_f64() * 1e3)
        })
    };
    run(cores, 1.0); // warm-up: the buffers exist, the CPU is at speed
    let (alone_rate, alone_ms) = run(1, 4.0);
    let (parallel_rate, parallel_ms) = run(cores, 4.0);
    let ideal = cores as f64 / (alone_ms / 1e3);
    println!("\n## Hash floor (production argon2id through the hashing service)\n");
    println!("- one at a time: median {alone_ms:.1} ms, {alone_rate:.1} hashes/s");
    println!("- {cores} at once: median {parallel_ms:.1} ms each, {parallel_rate:.1} hashes/s");
    println!(
        "- ideal floor {cores} ÷ {alone_ms:.1} ms = {ideal:.1} hashes/s; {cores} at once reach {:.2}× of it",
        parallel_rate / ideal
    );
    println!("PARALLEL_HASHES_PER_SEC={parallel_rate:.2}");
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e6
}

fn report(b: &Bench) {
    println!("\n## Warm handler cost per endpoint (µs; in process, SQLite, production argon2)\n");
    println!(
        "| endpoint | n | total p50 | total p99 | crypto p50 | hash p50 | I/O p50 | I/O p99 | rest p50 | rest p99 | rest CPU p50 | rest CPU p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let samples = b.samples.lock().unwrap();
    let (mut worst_rest, mut worst_cpu) = (0.0f64, (0.0f64, ""));
    for (name, s) in samples.iter() {
        let col = |f: &dyn Fn(&(Duration, Spent)) -> Duration| {
            let mut v: Vec<Duration> = s.iter().map(f).collect();
            v.sort();
            v
        };
        let total = col(&|x| x.0);
        let crypto = col(&|x| x.1.crypto);
        let hash = col(&|x| x.1.hash);
        let io = col(&|x| x.1.io);
        let rest = col(&|x| x.0.saturating_sub(x.1.crypto + x.1.hash + x.1.io));
        let own = col(&|x| x.1.own_cpu);
        worst_rest = worst_rest.max(pct(&rest, 0.99));
        let own_p99 = pct(&own, 0.99);
        if own_p99 > worst_cpu.0 {
            worst_cpu = (own_p99, name);
        }
        println!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            s.len(),
            pct(&total, 0.5),
            pct(&total, 0.99),
            pct(&crypto, 0.5),
            pct(&hash, 0.5),
            pct(&io, 0.5),
            pct(&io, 0.99),
            pct(&rest, 0.5),
            pct(&rest, 0.99),
            pct(&own, 0.5),
            own_p99
        );
    }
    println!(
        "\nHighest rest p99: {worst_rest:.1} µs wall; as CPU time {:.1} µs ({}) (target ≤ 100 µs).",
        worst_cpu.0, worst_cpu.1
    );
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args();
    crypto(&mut c);
    hash_floor();
    let b = Arc::new(Bench::new());
    let buyer = b.rt.block_on(async {
        let (u, _) = b.user(Role::User, true).await;
        u.email.as_str().to_string()
    });
    let _ = BUYER.set(buyer);
    endpoints(&mut c, &b);
    c.final_summary();
    report(&b);
}
