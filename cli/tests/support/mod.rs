// Running the real `stark` binary: a command without the caller's STARK_* settings, and
// `stark serve` on a free port that is stopped when the handle drops, even when a test fails.
// Shared by the CLI tests and the auth benchmark (through `#[path]`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

pub fn stark() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stark"));
    c.env("RUST_LOG", "warn"); // a test that reads the log asks for more
    for var in ["STARK_DATA_DIR", "STARK_STORE", "STARK_TABLE", "STARK_QUEUE", "STARK_EMAIL_QUEUE_URL", "STARK_ARGON2"]
    {
        c.env_remove(var);
    }
    c
}

/// `stark serve`, running.
pub struct Served {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    drain: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    pub fn outbox(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }

    /// SIGKILL: the process dies wherever it is, as in a crash.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM, waits for the exit, and returns it with everything written to stderr.
    #[cfg(unix)]
    pub fn terminate(&mut self) -> (ExitStatus, String) {
        let kill = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(kill.success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "stark serve did not stop within 30 s of SIGTERM");
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        if let Some(d) = self.drain.take() {
            d.join().unwrap();
        }
        let log = self.log.lock().unwrap().join("\n");
        (status, log)
    }
}

/// POSTs JSON; returns the status and the parsed body (null when empty).
pub async fn post(base: &str, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new().post(format!("{base}{path}")).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

pub async fn signup(base: &str, email: &str, username: &str) -> (u16, serde_json::Value) {
    post(
        base,
        "/api/auth/signup/",
        serde_json::json!({ "email": email, "password": "I-am-Iron-Man", "username": username }),
    )
    .await
}

/// Runs `cmd` (a `stark` command with any global options) as `serve` on a port the OS picks
/// over `data_dir`, and returns once it listens.
pub fn serve(mut cmd: Command, data_dir: &Path) -> Served {
    let mut child = cmd
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = Arc::new(Mutex::new(Vec::new()));
    let base = loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("listening on ") => {
                // "stark serve: listening on http://127.0.0.1:PORT (data in ...)"
                let url =
                    line.split("listening on ").nth(1).and_then(|r| r.split_whitespace().next()).unwrap().to_string();
                log.lock().unwrap().push(line);
                break url;
            }
            Some(Ok(line)) => log.lock().unwrap().push(line),
            _ => {
                let _ = child.kill();
                panic!("stark serve exited before listening: {}", log.lock().unwrap().join("\n"));
            }
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    let sink = log.clone();
    let drain = std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    Served { child, base, data_dir: data_dir.to_path_buf(), log, drain: Some(drain) }
}

/// The code in the newest `.eml` to `to` in `outbox`, once one is there.
pub async fn code_for(outbox: &Path, to: &str) -> String {
    for _ in 0..250 {
        let mut emails: Vec<PathBuf> = std::fs::read_dir(outbox)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        emails.sort();
        for path in emails.iter().rev() {
            let eml = std::fs::read_to_string(path).unwrap();
            if eml.contains(&format!("\r\nTo: {to}\r\n")) {
                let at = eml.find("code is ").expect("no code in the email") + 8;
                return eml[at..at + 6].to_string();
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no email to {to} in {}", outbox.display());
}
