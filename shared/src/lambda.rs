//! The Lambda side of the HTTP layer: API Gateway events in, the shared `http::handle`, API
//! Gateway responses out. The context is built once, before the first event.

use lambda_http::{service_fn, Body, Request, Response};
use std::convert::Infallible;
use std::sync::Arc;

use crate::http::{self, ApiRequest, Endpoint};

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_current_span(false)
        .without_time() // CloudWatch stamps each line.
        .try_init();
}

/// Converts an API Gateway request into the transport-neutral one.
pub fn to_api(event: Request) -> ApiRequest {
    let (parts, body) = event.into_parts();
    let body = match body {
        Body::Empty => bytes::Bytes::new(),
        Body::Text(s) => bytes::Bytes::from(s),
        Body::Binary(b) => bytes::Bytes::from(b),
        _ => bytes::Bytes::new(),
    };
    ApiRequest { method: parts.method, path: parts.uri.path().to_string(), headers: parts.headers, body }
}

/// Runs an HTTP Lambda that serves `served`.
pub async fn serve_http(served: &'static [Endpoint]) -> Result<(), lambda_http::Error> {
    init_tracing();
    let ctx = Arc::new(crate::config::lambda_context(served).await.map_err(|e| {
        tracing::error!(error = %e, "start-up failed");
        e
    })?);
    lambda_http::run(service_fn(move |event: Request| {
        let ctx = ctx.clone();
        async move {
            let resp = http::handle(&ctx, served, to_api(event)).await;
            let mut out = Response::new(if resp.body.is_empty() {
                Body::Empty
            } else {
                Body::Text(String::from_utf8_lossy(&resp.body).into_owned())
            });
            *out.status_mut() = resp.status;
            *out.headers_mut() = resp.headers;
            Ok::<_, Infallible>(out)
        }
    }))
    .await
}
