//! Billing benchmarks through the real `stark serve` binary (bench profile = release):
//! purchase latency p50/p99, and the wall time of the 50-way races on SQLite and on DynamoDB
//! (moto_server, when `STARK_TEST_MOTO_URL` is set, as `./scripts/bench` does).
//! Run with `cargo bench -p stark-cli --bench billing`; results go into BENCHMARKS.md.

use std::time::Instant;

use serde_json::{json, Value};

#[path = "../tests/support/mod.rs"]
mod support;

const PASSWORD: &str = "I-am-Iron-Man";

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Server {
    served: support::Served,
    dir: tempfile::TempDir,
    /// Global options for ops commands against the same store.
    opts: Vec<String>,
}

fn serve(opts: &[String]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = support::stark();
    cmd.args(["--argon2", "test"]).args(opts);
    Server { served: support::serve(cmd, dir.path()), dir, opts: opts.to_vec() }
}

impl Server {
    fn ops(&self, args: &[&str]) {
        let out = support::stark().args(&self.opts).args(args).arg("--data-dir").arg(self.dir.path()).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A verified, signed-in user with `credit` minor units; returns the access token.
    async fn buyer(&self, client: &reqwest::Client, email: &str, username: &str, credit: i64) -> String {
        let base = &self.served.base;
        assert_eq!(support::signup(base, email, username).await.0, 201);
        let code = support::code_for(&self.served.outbox(), email).await;
        assert_eq!(support::post(base, "/api/auth/verify-otp/", json!({ "email": email, "otp": code })).await.0, 200);
        if credit > 0 {
            self.ops(&["admin", "credit", email, &credit.to_string()]);
        }
        let r: Value = client
            .post(format!("{base}/api/auth/login/"))
            .json(&json!({ "email": email, "password": PASSWORD }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["access_token"].as_str().unwrap().to_string()
    }
}

fn purchase(client: &reqwest::Client, base: &str, token: &str, key: &str, product: &str) -> reqwest::RequestBuilder {
    client
        .post(format!("{base}/api/services/purchase/"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&json!({ "product_id": product, "plan_id": "MONTHLY_GOLD", "payment_method": "STARK_PAY" }))
}

/// Fires 50 requests at once; returns the wall time in ms and the statuses.
async fn race(reqs: Vec<reqwest::RequestBuilder>) -> (f64, Vec<u16>) {
    let t = Instant::now();
    let tasks: Vec<_> =
        reqs.into_iter().map(|r| tokio::spawn(async move { r.send().await.unwrap().status().as_u16() })).collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    (t.elapsed().as_secs_f64() * 1e3, statuses)
}

async fn races(label: &str, opts: &[String]) {
    let s = serve(opts);
    let base = s.served.base.clone();
    let client = reqwest::Client::new();
    let price = 4999;
    let ok = |st: &[u16], code: u16| st.iter().filter(|&&x| x == code).count();

    let t = s.buyer(&client, "same@stark.example", "same", 10 * price).await;
    let (ms, st) = race((0..50).map(|_| purchase(&client, &base, &t, "one-key", "STARK-MK85")).collect()).await;
    assert_eq!(ok(&st, 201) + ok(&st, 409), 50);
    println!(
        "{label}: 50 purchases, one Idempotency-Key: {ms:.0} ms wall ({} × 201, {} × 409 in progress)",
        ok(&st, 201),
        ok(&st, 409)
    );

    let t = s.buyer(&client, "keys@stark.example", "keys", price).await;
    let (ms, st) = race((0..50).map(|i| purchase(&client, &base, &t, &format!("k{i}"), "STARK-MK85")).collect()).await;
    assert_eq!(ok(&st, 201), 1);
    println!(
        "{label}: 50 purchases, distinct keys, balance for one: {ms:.0} ms wall (1 × 201, {} × 409, {} × 402)",
        ok(&st, 409),
        ok(&st, 402)
    );

    let t = s.buyer(&client, "trial@stark.example", "trial", 0).await;
    let reqs = (0..50)
        .map(|_| {
            client
                .post(format!("{base}/api/services/start-trial/"))
                .bearer_auth(&t)
                .json(&json!({ "product_id": "STARK-MK85" }))
        })
        .collect();
    let (ms, st) = race(reqs).await;
    assert_eq!(ok(&st, 201), 1);
    println!("{label}: 50 start-trials: {ms:.0} ms wall (1 × 201, {} × 409)", ok(&st, 409));
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!("## billing benchmarks ({} logical CPUs)\n", std::thread::available_parallelism().map_or(0, |n| n.get()));
    rt.block_on(async {
        // 1. Purchase latency through stark serve (SQLite): 200 buyers, one purchase each, in
        //    sequence, each with its own Idempotency-Key (the full path: claim, read, commit).
        let s = serve(&[]);
        let client = reqwest::Client::new();
        let mut tokens = Vec::new();
        for i in 0..210 {
            tokens.push(s.buyer(&client, &format!("b{i}@stark.example"), &format!("buyer{i}"), 10_000).await);
        }
        let mut lat = Vec::new();
        for (i, t) in tokens.iter().enumerate() {
            let start = Instant::now();
            let r = purchase(&client, &s.served.base, t, &format!("order-{i}"), "STARK-MK85").send().await.unwrap();
            assert_eq!(r.status(), 201);
            r.bytes().await.unwrap();
            if i >= 10 {
                lat.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        lat.sort_by(f64::total_cmp);
        println!(
            "purchase via stark serve (SQLite, sequential, n=200): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            lat[lat.len() - 1]
        );
        drop(s);

        // 2. The 50-way races on each adapter.
        races("SQLite", &[]).await;
        match std::env::var("STARK_TEST_MOTO_URL") {
            Ok(url) => {
                std::env::set_var("AWS_ENDPOINT_URL", &url);
                std::env::set_var("AWS_REGION", "us-east-1");
                std::env::set_var("AWS_ACCESS_KEY_ID", "test");
                std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
                let table = format!("bench-billing-{}", std::process::id());
                let opts = vec!["--store".to_string(), "dynamodb".to_string(), "--table".to_string(), table];
                let out = support::stark().args(&opts).args(["admin", "create-table"]).output().unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                races("DynamoDB (moto_server)", &opts).await;
            }
            Err(_) => println!("DynamoDB races: not run (STARK_TEST_MOTO_URL is not set; ./scripts/bench sets it)"),
        }
    });
}
