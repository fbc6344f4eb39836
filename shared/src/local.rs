//! The local HTTP server behind `stark serve` and the API tests: hyper, HTTP/1.1, the same
//! `http::handle` that the Lambdas run.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

use crate::app::AppContext;
use crate::http::{self, json::MAX_BODY_BYTES, ApiError, ApiRequest, ApiResponse};

async fn to_api(req: hyper::Request<Incoming>) -> Result<ApiRequest, ApiResponse> {
    let (parts, body) = req.into_parts();
    // Stop reading past the limit instead of buffering whatever a client sends.
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::client(::http::StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").into_response());
        }
        // The client broke off or sent a malformed body: nothing to parse.
        Err(_) => return Err(ApiError::client(::http::StatusCode::BAD_REQUEST, "malformed_json").into_response()),
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
pub const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves every endpoint on `listener` until `shutdown` completes; then stops accepting and
/// lets the requests in flight finish (up to [`DRAIN_TIMEOUT`]), so that everything they
/// committed has also queued its email before this returns.
pub async fn serve(
    ctx: Arc<AppContext>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let ctx = ctx.clone();
        let service = service_fn(move |req: hyper::Request<Incoming>| {
            let ctx = ctx.clone();
            async move {
                // Negotiated before the body is read, so that a body refused here (413, 400)
                // is answered in the client's language too.
                let lang = crate::i18n::negotiate_headers(req.headers());
                let resp = crate::i18n::scope(lang, async {
                    match to_api(req).await {
                        Ok(api) => http::handle(&ctx, http::router::ALL, api).await,
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
        let conn = graceful.watch(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections; waiting for requests in flight");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}; stopping anyway");
    }
    Ok(())
}
