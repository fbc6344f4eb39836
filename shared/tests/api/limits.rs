//! The local server against slow and greedy clients, with raw sockets: a declared body over
//! the limit, half-sent headers and bodies, idle connections, and the connection cap.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::spawn_app_limited;
use stark::local::ServerLimits;

fn limits(header: u64, body: u64, connections: usize) -> ServerLimits {
    ServerLimits {
        header_read_timeout: Duration::from_millis(header),
        body_read_timeout: Duration::from_millis(body),
        max_connections: connections,
    }
}

async fn connect(base: &str) -> TcpStream {
    TcpStream::connect(base.trim_start_matches("http://")).await.unwrap()
}

/// What the server sends until it closes the connection or a whole response is in, or None
/// when nothing complete came `within`.
async fn reply(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if got.len() >= end + 4 + length {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(within, read).await.ok()?;
    Some(String::from_utf8_lossy(&got).into_owned())
}

/// Whether the server closed the connection `within`.
async fn closed(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let started = tokio::time::Instant::now();
    while started.elapsed() < within {
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // an error response before closing is fine
            Err(_) => return false,
        }
    }
    false
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_at_once() {
    let app = spawn_app_limited(limits(10_000, 10_000, 64)).await;
    let mut s = connect(&app.base).await;
    s.write_all(b"POST /api/auth/signup/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n{\"a\":1}")
        .await
        .unwrap();
    let r = reply(&mut s, Duration::from_secs(2)).await.expect("answered without waiting for the body");
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert!(r.contains("\"payload_too_large\""), "{r}");
}

#[tokio::test]
async fn half_sent_headers_and_idle_connections_are_closed_after_the_header_timeout() {
    let app = spawn_app_limited(limits(300, 10_000, 64)).await;
    let mut idle = connect(&app.base).await;
    let mut half = connect(&app.base).await;
    half.write_all(b"POST /api/auth/signup/ HTTP/1.1\r\nHost: x\r\nContent-Le").await.unwrap();
    assert!(closed(&mut idle, Duration::from_secs(3)).await, "an idle connection is let go");
    assert!(closed(&mut half, Duration::from_secs(3)).await, "half-sent headers are let go");
    // The server is still serving.
    let mut fine = connect(&app.base).await;
    fine.write_all(b"GET /api/health/ HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(reply(&mut fine, Duration::from_secs(2)).await.unwrap().starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn a_half_sent_body_is_answered_408_after_the_body_timeout() {
    let app = spawn_app_limited(limits(10_000, 300, 64)).await;
    let mut s = connect(&app.base).await;
    s.write_all(b"POST /api/auth/signup/ HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n{\"email\":").await.unwrap();
    let r = reply(&mut s, Duration::from_secs(3)).await.expect("answered after the body timeout");
    assert!(r.starts_with("HTTP/1.1 408"), "{r}");
    assert!(r.contains("\"request_timeout\"") && r.to_ascii_lowercase().contains("connection: close"), "{r}");
    assert!(closed(&mut s, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn past_the_connection_cap_a_client_waits_for_a_free_slot() {
    let app = spawn_app_limited(limits(30_000, 10_000, 2)).await;
    let mut first = connect(&app.base).await;
    let second = connect(&app.base).await;
    // Both slots are held, so the first has to have been accepted: prove it answers.
    first.write_all(b"GET /api/health/ HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(reply(&mut first, Duration::from_secs(2)).await.unwrap().starts_with("HTTP/1.1 200"));
    let mut third = connect(&app.base).await; // the kernel's backlog takes it
    third.write_all(b"GET /api/health/ HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(reply(&mut third, Duration::from_millis(700)).await.is_none(), "no third connection is served");
    drop(second);
    let r = reply(&mut third, Duration::from_secs(3)).await.expect("served once a slot is free");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}
