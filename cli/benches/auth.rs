//! Auth benchmarks through the real `stark serve` binary (bench profile = release):
//! one argon2id hash, login p50/p99, and signup→verify→login throughput.
//! Run with `cargo bench -p stark-cli --bench auth`; results go into BENCHMARKS.md.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use stark::security::password_hash::{hash_with, HashCost};

const PASSWORD: &str = "I-am-Iron-Man-3000";

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[path = "../tests/support/mod.rs"]
mod support;

/// `stark serve` over a temp dir that lives as long as it.
struct Server {
    served: support::Served,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Server {
    type Target = support::Served;
    fn deref(&self) -> &support::Served {
        &self.served
    }
}

fn serve(argon2: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = support::stark();
    cmd.args(["--argon2", argon2]);
    Server { served: support::serve(cmd, dir.path()), _dir: dir }
}

/// Codes by address, read from the outbox as new files appear.
#[derive(Default)]
struct Codes {
    seen: HashSet<PathBuf>,
    by_email: HashMap<String, String>,
}

async fn code_for(codes: &Mutex<Codes>, outbox: &Path, email: &str) -> String {
    for _ in 0..2000 {
        {
            let mut c = codes.lock().unwrap();
            if let Some(code) = c.by_email.remove(email) {
                return code;
            }
            for entry in std::fs::read_dir(outbox).into_iter().flatten().flatten() {
                let p = entry.path();
                if p.extension().is_some_and(|e| e == "eml") && c.seen.insert(p.clone()) {
                    let eml = std::fs::read_to_string(&p).unwrap();
                    let to = eml.split("\r\nTo: ").nth(1).unwrap().split("\r\n").next().unwrap().to_string();
                    let at = eml.find("code is ").unwrap() + 8;
                    c.by_email.insert(to, eml[at..at + 6].to_string());
                }
            }
            if let Some(code) = c.by_email.remove(email) {
                return code;
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("no code for {email}");
}

async fn flow(client: &reqwest::Client, s: &Server, codes: &Mutex<Codes>, email: &str, username: &str) {
    let r = client
        .post(format!("{}/api/auth/signup/", s.base))
        .json(&json!({ "email": email, "password": PASSWORD, "username": username }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let code = code_for(codes, &s.outbox(), email).await;
    let r = client
        .post(format!("{}/api/auth/verify-otp/", s.base))
        .json(&json!({ "email": email, "otp": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .post(format!("{}/api/auth/login/", s.base))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!("## auth benchmarks ({} logical CPUs)\n", std::thread::available_parallelism().map_or(0, |n| n.get()));

    // 1. One argon2id hash, production parameters, in this process (release build).
    let mut hashes: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            hash_with(HashCost::PRODUCTION, PASSWORD).unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    hashes.sort_by(f64::total_cmp);
    println!("argon2id m=19456 t=2 p=1, one hash: median {:.1} ms, min {:.1} ms (n=15)", pct(&hashes, 0.5), hashes[0]);

    rt.block_on(async {
        let client = reqwest::Client::new();
        // 2. Login latency through stark serve, production parameters, one client in sequence.
        let s = serve("production");
        let codes = Mutex::new(Codes::default());
        flow(&client, &s, &codes, "tony@stark.example", "tony").await;
        let mut lat = Vec::new();
        for i in 0..210 {
            let t = Instant::now();
            let r = client
                .post(format!("{}/api/auth/login/", s.base))
                .json(&json!({ "email": "tony@stark.example", "password": PASSWORD }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
            if i >= 10 {
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        lat.sort_by(f64::total_cmp);
        println!(
            "login via stark serve (production argon2, sequential, n=200): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            lat[lat.len() - 1]
        );
        drop(s);

        // 3. signup -> verify -> login throughput with the test argon2 parameters.
        let s = Arc::new(serve("test"));
        let codes = Arc::new(Mutex::new(Codes::default()));
        let (workers, per_worker) = (8, 50);
        let t = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..workers {
            let (client, s, codes) = (client.clone(), s.clone(), codes.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..per_worker {
                    flow(&client, &s, &codes, &format!("u{w}x{i}@stark.example"), &format!("u{w}x{i}")).await;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let secs = t.elapsed().as_secs_f64();
        let flows = (workers * per_worker) as f64;
        println!(
            "signup->verify->login (test argon2, {workers} concurrent clients, {flows} flows): {:.0} flows/s, {:.0} requests/s",
            flows / secs,
            3.0 * flows / secs
        );
    });
}
