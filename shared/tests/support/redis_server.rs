// Shared by the test binaries and the i18n bench (included with `#[path]`): the Redis that
// ./scripts/test made sure answers, and dedicated redis-server processes that a test may
// stop, freeze and restart. A missing Redis or binary is a loud failure, never a skip.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shared Redis (`STARK_TEST_REDIS_URL`), checked to answer PING.
pub fn shared_url() -> String {
    let url = std::env::var("STARK_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!("STARK_TEST_REDIS_URL is not set: run the tests through ./scripts/test, which makes sure a redis-server answers")
    });
    let addr = url.trim_start_matches("redis://").split('/').next().unwrap_or_default().to_string();
    assert!(pings(&addr), "STARK_TEST_REDIS_URL={url} does not answer PING: is redis-server running?");
    url
}

/// A key prefix no other test uses.
pub fn unique_prefix(test: &str) -> String {
    format!("stark-test:{test}:{}", uuid::Uuid::new_v4().simple())
}

fn pings(addr: &str) -> bool {
    let Ok(sock) = addr.parse() else { return false };
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&sock, Duration::from_millis(300)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").is_ok() && s.read(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A redis-server of the test's own, without persistence, on a port that stays the same
/// across `kill` and `restart`.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> Self {
        let mut s = RedisServer { port: free_port(), child: None };
        s.restart();
        s
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on its port and waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): install it (Debian: apt-get install redis-server)")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pings(&self.addr()) {
            assert!(Instant::now() < deadline, "redis-server did not answer on port {port} within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it (SIGKILL: no goodbye to the clients) and waits until the port is closed.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        assert!(!pings(&self.addr()), "redis-server still answers after kill");
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) it: a Redis that accepts and never answers.
    pub fn freeze(&self, frozen: bool) {
        let pid = self.child.as_ref().expect("redis-server is running").id().to_string();
        let status = Command::new("kill").args([if frozen { "-STOP" } else { "-CONT" }, &pid]).status().unwrap();
        assert!(status.success(), "kill -STOP/-CONT failed");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = c.id().to_string();
            let _ = Command::new("kill").args(["-CONT", &pid]).status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
