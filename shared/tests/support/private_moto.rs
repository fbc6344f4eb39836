// Shared by the test binaries (included with `#[path]`): a moto_server of one test's own, to
// stop and start without disturbing the others. It runs from the `.venv` that ./scripts/test
// sets up; a missing one is a loud failure, never a skip.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};

pub struct PrivateMoto {
    child: Option<Child>,
    pub port: u16,
    pub url: String,
}

fn python() -> std::path::PathBuf {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(p.exists(), "{} is missing: run the tests through ./scripts/test, which installs moto", p.display());
    p
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl PrivateMoto {
    pub fn start() -> PrivateMoto {
        let mut m = PrivateMoto { child: None, port: free_port(), url: String::new() };
        m.url = format!("http://127.0.0.1:{}", m.port);
        m.restart();
        m
    }

    /// Starts moto again on the same port (after `kill`): an empty server, as moto keeps
    /// nothing on disk.
    pub fn restart(&mut self) {
        // The same entry point and GIL setting as scripts/services.sh.
        let child = Command::new(python())
            .args(["-c", "import sys; sys.setswitchinterval(5.0); from moto.server import main; sys.exit(main())"])
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a private moto_server");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "the private moto_server did not start on {}", self.port);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("moto is running").id().to_string();
        assert!(Command::new("kill").args([sig, &pid]).status().unwrap().success());
    }

    /// SIGSTOP: connections are still accepted by the kernel, and nothing answers.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// SIGKILL: connections are refused.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-CONT", &c.id().to_string()]).status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateMoto {
    fn drop(&mut self) {
        self.kill();
    }
}
