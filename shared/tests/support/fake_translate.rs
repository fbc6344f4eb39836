// Shared by the test binaries and the i18n bench (included with `#[path]`): a small local
// HTTP/1.1 server that speaks Amazon Translate's TranslateText JSON protocol, since no public
// emulator exists. It "translates" by prefixing the target language, counts the calls, and
// can be told to fail or to answer slowly.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TARGET: &str = "AWSShineFrontendService_20170701.TranslateText";
/// The real service refuses a `Text` above this many UTF-8 bytes; so does the fake.
pub const MAX_TEXT_BYTES: usize = 10_000;

#[derive(Default)]
struct State {
    calls: AtomicUsize,
    fail: AtomicBool,
    delay_ms: AtomicU64,
    /// The byte length of every `Text` received.
    sizes: Mutex<Vec<usize>>,
}

pub struct FakeTranslate {
    pub endpoint: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeTranslate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeTranslate {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fake Translate server");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State::default());
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                tokio::spawn(serve_connection(stream, st.clone()));
            }
        });
        FakeTranslate { endpoint, state, task }
    }

    /// TranslateText requests answered so far (failed ones included).
    pub fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    pub fn fail(&self, on: bool) {
        self.state.fail.store(on, Ordering::SeqCst);
    }

    pub fn delay(&self, d: Duration) {
        self.state.delay_ms.store(d.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn text_sizes(&self) -> Vec<usize> {
        self.state.sizes.lock().unwrap().clone()
    }

    /// An Amazon Translate client configuration on this server, with retries off so that
    /// calls count exactly (`AmazonTranslate::from_conf` takes it).
    pub fn config(&self) -> aws_sdk_translate::config::Builder {
        use aws_sdk_translate::config::{BehaviorVersion, Credentials, Region};
        aws_sdk_translate::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "fake-translate"))
            .endpoint_url(&self.endpoint)
            .retry_config(aws_sdk_translate::config::retry::RetryConfig::standard().with_max_attempts(1))
    }
}

/// What the fake answers for `text` into `target`.
pub fn fake_translation(text: &str, target: &str) -> String {
    format!("[{target}] {text}")
}

async fn serve_connection(mut stream: TcpStream, state: Arc<State>) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // Headers.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let header = |name: &str| {
            head.lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
        };
        let len: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        assert!(header("transfer-encoding").is_none(), "the fake Translate server expects Content-Length bodies");
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 65536];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf[head_end..head_end + len].to_vec();
        buf.drain(..head_end + len);
        let (status, reply) = answer(&state, header("x-amz-target").as_deref(), &body).await;
        let resp = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-requestid: fake\r\ncontent-length: {}\r\n\r\n{reply}",
            reply.len()
        );
        if stream.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn answer(state: &State, target: Option<&str>, body: &[u8]) -> (&'static str, String) {
    let error =
        |status, kind: &str, msg: &str| (status, serde_json::json!({ "__type": kind, "message": msg }).to_string());
    if target != Some(TARGET) {
        return error("400 Bad Request", "UnknownOperationException", "unknown X-Amz-Target");
    }
    state.calls.fetch_add(1, Ordering::SeqCst);
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(body) else {
        return error("400 Bad Request", "SerializationException", "body is not JSON");
    };
    let (Some(text), Some(source), Some(to)) =
        (req["Text"].as_str(), req["SourceLanguageCode"].as_str(), req["TargetLanguageCode"].as_str())
    else {
        return error(
            "400 Bad Request",
            "ValidationException",
            "Text, SourceLanguageCode and TargetLanguageCode are required",
        );
    };
    state.sizes.lock().unwrap().push(text.len());
    if state.fail.load(Ordering::SeqCst) {
        return error("500 Internal Server Error", "InternalServerException", "the fake is told to fail");
    }
    if text.is_empty() || text.len() > MAX_TEXT_BYTES {
        return error("400 Bad Request", "TextSizeLimitExceededException", "Text must be 1 to 10000 bytes");
    }
    let out = serde_json::json!({
        "TranslatedText": fake_translation(text, to),
        "SourceLanguageCode": source,
        "TargetLanguageCode": to,
    });
    ("200 OK", out.to_string())
}
