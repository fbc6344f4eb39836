//! The daily lifecycle at volume: N subscriptions due for renewal, each with a user and the
//! money for it, then one `stark lifecycle run` (the release binary, as an operator runs it)
//! timed with its peak RSS, on the embedded store at 10k and 100k; and `run_lifecycle` in
//! process on DynamoDB (moto) at a smaller count (LIFECYCLE_BENCH_DYNAMO, 2,000 by default).
//! Each renewal is one transaction (subscription, wallet debit, payment, wallet transaction,
//! outbox entry) and one `.eml` written before the command exits.
//! Run with `cargo bench -p stark-cli --bench lifecycle`; results go into BENCHMARKS.md.

#[path = "../../shared/tests/support/aws.rs"]
mod aws;

use chrono::{DateTime, Duration, Utc};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use stark::app::Stores;
use stark::domain::*;
use stark::ports::*;

/// Counts the DynamoDB calls a client makes (each call once, whatever its retries).
#[derive(Debug, Default, Clone)]
struct CountCalls(Arc<AtomicUsize>);

impl aws_sdk_dynamodb::config::Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "CountCalls"
    }
    fn read_before_execution(
        &self,
        _: &aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef<'_>,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn now() -> DateTime<Utc> {
    "2026-12-02T03:00:00Z".parse().unwrap()
}

fn product() -> Product {
    Product {
        product_id: ProductId::parse("BENCH-1").unwrap(),
        name: "Bench Suit".into(),
        description: "Renews.".into(),
        translations: Default::default(),
        status: ProductStatus::Active,
        owner_id: None,
        created_at: now() - Duration::days(60),
        updated_at: now() - Duration::days(60),
        version: 1,
        plans: vec![Plan {
            plan_id: PlanId::parse("MONTHLY").unwrap(),
            name: "Monthly".into(),
            period: Period::Monthly,
            price: Money::usd(999),
            trial_days: 0,
        }],
    }
}

/// `n` users, each with 9.99 in the wallet and a monthly subscription that ended an hour
/// before `now()` (its balance already checked, so the renewal is its one step). `at_once`
/// users are written concurrently (moto answers each call slowly, not many slowly).
async fn seed(stores: &Stores, n: usize, at_once: usize) {
    stores.catalog.create_product(&product()).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        if tasks.len() >= at_once {
            tasks.join_next().await.unwrap().unwrap();
        }
        tasks.spawn(seed_one(stores.clone(), i));
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
}

async fn seed_one(stores: Stores, i: usize) {
    let start = now() - Duration::hours(1) - Duration::days(30);
    let user = User {
        id: uuid::Uuid::now_v7().to_string(),
        email: Email::parse(&format!("bench{i}@stark.example")).unwrap(),
        username: Username::parse(&format!("bench{i}")).unwrap(),
        role: Role::User,
        email_verified: true,
        locale: "en".into(),
        created_at: start,
        password_hash: PasswordHash("$argon2id$unused".into()),
        token_generation: 0,
    };
    let otp = OtpRecord::new("unused".into(), start);
    match stores.users.create_user(&user, &otp, &[]).await {
        // moto sometimes applies a transaction and answers it failed; the SDK's retry of the
        // same items then finds them: this very user was written.
        Ok(()) | Err(CreateUserError::EmailTaken) => {}
        Err(e) => panic!("seeding user {i}: {e:?}"),
    }
    let end = now() - Duration::hours(1);
    let mut sub = Subscription {
        subscription_id: uuid::Uuid::now_v7().to_string(),
        user_id: user.id.clone(),
        user_email: user.email.clone(),
        product_id: ProductId::parse("BENCH-1").unwrap(),
        plan_id: PlanId::parse("MONTHLY").unwrap(),
        status: SubStatus::Active,
        current_period_start: start,
        current_period_end: end,
        anchor: start,
        period_index: 0,
        auto_renew: true,
        scheduled_plan_id: None,
        marks: Default::default(),
        created_at: start,
        updated_at: start,
        version: 1,
    };
    sub.marks.balance_checked_for = Some(end);
    let credit = WalletTxn {
        transaction_id: uuid::Uuid::now_v7().to_string(),
        user_id: user.id.clone(),
        kind: TxnKind::Credit,
        amount: Money::usd(999),
        reference: "bench".into(),
        created_at: start,
    };
    let c = Commit {
        subscription: Some((sub, None)),
        live: Some(LiveSlot::Claim),
        wallet: Some(credit),
        ..Commit::default()
    };
    stores.subscriptions.commit(&c).await.unwrap();
}

/// Runs `stark <global args> lifecycle run --now now()` under /usr/bin/time: (seconds, peak
/// RSS in MiB, the summary line).
fn run_stark(global: &[&str]) -> (f64, f64, String) {
    // LIFECYCLE_BENCH_STARK=PATH: another build of `stark` (a before, in the same sitting).
    let stark = std::env::var("LIFECYCLE_BENCH_STARK").unwrap_or_else(|_| env!("CARGO_BIN_EXE_stark").to_string());
    let t = Instant::now();
    // LIFECYCLE_BENCH_PERF=FILE: record a profile of the run with `perf record -g`.
    let perf: Vec<String> = std::env::var("LIFECYCLE_BENCH_PERF")
        .map(|f| vec!["perf".into(), "record".into(), "-F".into(), "499".into(), "-g".into(), "-o".into(), f])
        .unwrap_or_default();
    let out = std::process::Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .args(&perf)
        .arg(&stark)
        .args(global)
        .args(["lifecycle", "run", "--now", "2026-12-02T03:00:00Z"])
        .env("RUST_LOG", "error")
        .output()
        .expect("/usr/bin/time runs (Debian package time)");
    let secs = t.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stark lifecycle run failed: {stderr}");
    let kib: f64 = stderr.lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or(f64::NAN);
    (secs, kib / 1024.0, String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("## lifecycle benchmark ({} logical CPUs)\n", std::thread::available_parallelism().map_or(0, |n| n.get()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let counts: Vec<usize> = std::env::var("LIFECYCLE_BENCH_COUNTS")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    for n in counts {
        let dir = tempfile::tempdir().unwrap();
        let t = Instant::now();
        rt.block_on(async {
            let store = Arc::new(stark::adapters::sqlite::SqliteStore::open(&dir.path().join("stark.db")).unwrap());
            seed(&Stores::from_adapter(store), n, 1).await;
        });
        let seeded = t.elapsed().as_secs_f64();
        let (secs, rss, summary) = run_stark(&["--data-dir", dir.path().to_str().unwrap()]);
        assert!(summary.contains(&format!(": {n} renewed, 0 past_due")), "{summary}");
        let emails = std::fs::read_dir(dir.path().join("outbox")).unwrap().count();
        assert_eq!(emails, n, "one email per renewal, written before exit");
        println!(
            "SQLite, {n} due renewals (seeded in {seeded:.1} s): {secs:.2} s wall = {:.0} renewals/s = {:.0} µs each; peak RSS {rss:.1} MiB; {emails} .eml written",
            n as f64 / secs,
            secs * 1e6 / n as f64
        );
    }

    if std::env::var("STARK_TEST_MOTO_URL").is_err() {
        println!("DynamoDB: not run (STARK_TEST_MOTO_URL is not set; ./scripts/bench sets it)");
        return;
    }
    let n: usize = std::env::var("LIFECYCLE_BENCH_DYNAMO").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    if n == 0 {
        println!("DynamoDB: not run (LIFECYCLE_BENCH_DYNAMO=0)");
        return;
    }
    // In process, on a client with the SDK's default timeouts: `stark lifecycle run` bounds
    // each AWS call at 6 s, and moto (its long GIL switch interval, which its transactions
    // need) answers some calls slower than that. The same use case and adapters as the CLI.
    let (secs, summary) = rt.block_on(async {
        let (client, table) = aws::dynamo_table().await;
        let calls = CountCalls::default();
        let client =
            aws_sdk_dynamodb::Client::from_conf(client.config().to_builder().interceptor(calls.clone()).build());
        let store = Arc::new(stark::adapters::dynamodb::DynamoStore::new(client, table));
        let stores = Stores::from_adapter(store);
        let t = Instant::now();
        seed(&stores, n, 8).await;
        println!("DynamoDB on moto: {n} subscriptions seeded in {:.1} s", t.elapsed().as_secs_f64());
        let dir = tempfile::tempdir().unwrap();
        let cfg = stark::config::LocalConfig::embedded(dir.path().to_path_buf());
        let clock = Arc::new(stark::clock::SystemClock);
        let (ctx, queue) = stark::config::local_context_with(&cfg, clock, stores).await.unwrap();
        let t = Instant::now();
        let before = calls.0.load(Ordering::Relaxed);
        let run = stark::app::lifecycle::run_lifecycle(&ctx, now(), &Default::default()).await.unwrap();
        // As the CLI does: what a commit moto applied but reported lost left in the outbox.
        let swept = stark::app::outbox::sweep(&ctx, chrono::Duration::zero()).await.unwrap();
        queue.expect("the in-process queue").flush().await.unwrap();
        let secs = t.elapsed().as_secs_f64();
        let made = calls.0.load(Ordering::Relaxed) - before;
        let emails = std::fs::read_dir(dir.path().join("outbox")).unwrap().count();
        assert_eq!(emails, n, "one email per renewal, written before the run returns");
        let summary = format!(
            "{:?}, {} shards, {swept} swept from the outbox; {made} DynamoDB calls = {:.2} per renewal, email log included",
            run.counts,
            run.shards,
            made as f64 / n as f64
        );
        assert_eq!((run.counts.renewed, run.counts.past_due), (n as u64, 0), "{summary}");
        (secs, summary)
    });
    println!(
        "DynamoDB on moto, {n} due renewals ({summary}): {secs:.2} s wall = {:.2} ms per renewal",
        secs * 1e3 / n as f64
    );
}
