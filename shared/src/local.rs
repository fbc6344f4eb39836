//! The local HTTP server behind `stark serve` and the API tests: hyper, HTTP/1.1, the same
//! `http::handle` that the Lambdas run.
//!
//! Three things protect it from slow or broken clients, each a setting ([`ServerLimits`]): a
//! header read timeout and a body read timeout (a half-sent request is dropped instead of held
//! forever), a cap on open connections (past it, new connections wait in the listen backlog
//! until one closes), and a 413 at once for a declared `Content-Length` over the body limit.
//!
//! Each request's handler runs in a task of its own, so a client that goes away (a reset, a
//! timeout on its side) does not cancel it halfway: a request that claimed an
//! Idempotency-Key always completes or releases it, and whatever it committed has its email
//! relayed. Shutdown waits for those tasks too.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::app::AppContext;
use crate::http::{self, json::MAX_BODY_BYTES, ApiError, ApiRequest, ApiResponse};

/// What the local server tolerates from clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// From a connection's first byte (or the end of its previous request) to the end of the
    /// request's headers. An idle keep-alive connection is closed after it too.
    pub header_read_timeout: Duration,
    /// From the end of the headers to the end of the body; past it the answer is 408
    /// `request_timeout` and the connection is closed.
    pub body_read_timeout: Duration,
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    /// Generous for any real client (a 64 KiB body takes milliseconds even on a slow link),
    /// short enough that a slow client cannot hold a connection for long, and far more
    /// connections than a laptop's API client or a load test on this machine opens.
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

fn refuse(status: ::http::StatusCode, code: &'static str) -> ApiResponse {
    ApiError::client(status, code).into_response()
}

async fn to_api(req: hyper::Request<Incoming>, limits: &ServerLimits) -> Result<ApiRequest, ApiResponse> {
    let (parts, body) = req.into_parts();
    // A declared length over the limit is refused before a byte of the body is read.
    let declared = parts.headers.get(::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(refuse(::http::StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    }
    // Stop reading past the limit instead of buffering whatever a client sends.
    let read = tokio::time::timeout(limits.body_read_timeout, Limited::new(body, MAX_BODY_BYTES).collect());
    let body = match read.await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(refuse(::http::StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
        }
        // The client broke off or sent a malformed body: nothing to parse.
        Ok(Err(_)) => return Err(refuse(::http::StatusCode::BAD_REQUEST, "malformed_json")),
        Err(_) => {
            let mut resp = refuse(::http::StatusCode::REQUEST_TIMEOUT, "request_timeout");
            resp.headers.insert(::http::header::CONNECTION, ::http::HeaderValue::from_static("close"));
            return Err(resp);
        }
    };
    Ok(ApiRequest { method: parts.method, path: parts.uri.path().to_string(), headers: parts.headers, body })
}

fn from_api(resp: ApiResponse) -> hyper::Response<Full<Bytes>> {
    let mut out = hyper::Response::new(Full::new(resp.body));
    *out.status_mut() = resp.status;
    *out.headers_mut() = resp.headers;
    out
}

/// How long a shutdown waits for requests in flight.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves every endpoint on `listener` until `shutdown` completes; then stops accepting and
/// lets the requests in flight finish (up to [`DRAIN_TIMEOUT`]), so that everything they
/// committed has also queued its email before this returns.
pub async fn serve(
    ctx: Arc<AppContext>,
    listener: TcpListener,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // The handlers, which outlive their connection when the client goes away.
    let handlers = TaskTracker::new();
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let (permit, (stream, _)) = tokio::select! {
            accepted = async {
                // Wait for room before accepting: past the cap, connections queue in the backlog.
                let permit = open.clone().acquire_owned().await;
                (permit, listener.accept().await)
            } => match accepted {
                (Ok(permit), Ok(a)) => (permit, a),
                (_, Err(e)) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
                (Err(_), _) => break,
            },
            () = &mut shutdown => break,
        };
        let (ctx, handlers_for_conn) = (ctx.clone(), handlers.clone());
        let service = service_fn(move |req: hyper::Request<Incoming>| {
            let (ctx, handlers) = (ctx.clone(), handlers_for_conn.clone());
            async move {
                // Negotiated before the body is read, so that a body refused here (413, 400,
                // 408) is answered in the client's language too.
                let lang = crate::i18n::negotiate_headers(req.headers());
                let resp = crate::i18n::scope(lang, async {
                    match to_api(req, &limits).await {
                        Ok(api) => {
                            // Its own task: dropping this future (the client went away) does
                            // not stop the handler.
                            let handler = handlers.spawn(async move {
                                crate::i18n::scope(lang, http::handle(&ctx, http::router::ALL, api)).await
                            });
                            handler.await.unwrap_or_else(|e| {
                                ApiError::Internal(anyhow::anyhow!("request handler failed: {e}")).into_response()
                            })
                        }
                        Err(mut resp) => {
                            http::with_language(&mut resp);
                            resp
                        }
                    }
                })
                .await;
                Ok::<_, Infallible>(from_api(resp))
            }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections; waiting for requests in flight");
    handlers.close();
    let drained = async {
        graceful.shutdown().await;
        handlers.wait().await;
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, drained).await.is_err() {
        tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}; stopping anyway");
    }
    Ok(())
}
