//! The HTTP layer shared by every Lambda and by `stark serve`: transport-neutral request and
//! response types, the route table, body parsing, the error envelope and the auth extractor.

pub mod auth;
mod error;
pub mod handlers;
pub mod json;
pub mod messages;
pub mod router;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};

pub use error::ApiError;

tokio::task_local! {
    /// The endpoint the current task is serving. Lets instrumentation (the tests' IAM check,
    /// log fields) tie a store call to the Lambda whose permissions it runs under.
    pub static SERVING: Endpoint;
}
pub use router::Endpoint;

use crate::app::AppContext;

#[derive(Clone)]
pub struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

// Bodies and headers carry passwords, codes and tokens: `Debug` shows only their size.
impl std::fmt::Debug for ApiRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ApiResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiResponse")
            .field("status", &self.status)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl ApiResponse {
    pub fn json(status: StatusCode, value: &serde_json::Value) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        ApiResponse { status, headers, body: Bytes::from(value.to_string()) }
    }

    pub fn empty(status: StatusCode) -> Self {
        ApiResponse { status, headers: HeaderMap::new(), body: Bytes::new() }
    }
}

/// Routes and runs one request. Never fails: every error becomes its envelope here. The
/// whole request runs in the language negotiated from its `Accept-Language`, so every text
/// it produces (messages, errors, field problems) is in that language.
pub async fn handle(ctx: &AppContext, served: &[Endpoint], req: ApiRequest) -> ApiResponse {
    let lang = crate::i18n::negotiate_headers(&req.headers);
    crate::i18n::scope(lang, handle_in_language(ctx, served, req)).await
}

async fn handle_in_language(ctx: &AppContext, served: &[Endpoint], req: ApiRequest) -> ApiResponse {
    let started = std::time::Instant::now();
    // The body limit holds for every request, whatever the transport let through.
    let routed = if req.body.len() > json::MAX_BODY_BYTES {
        Err(ApiError::client(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"))
    } else {
        router::route(&req.method, &req.path, served)
    };
    let mut resp = match routed {
        Ok((endpoint, params)) => SERVING.scope(endpoint, handlers::dispatch(ctx, endpoint, &params, &req)).await,
        Err(e) => Err(e),
    }
    .unwrap_or_else(ApiError::into_response);
    with_language(&mut resp);
    // Method, path and status only: bodies may carry passwords and codes.
    tracing::info!(
        method = %req.method,
        path = %req.path,
        status = resp.status.as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

/// Headers every response carries, errors included: the language the current request was
/// answered in (see `i18n::scope`), and that the answer depends on `Accept-Language`.
pub fn with_language(resp: &mut ApiResponse) {
    resp.headers.insert(http::header::CONTENT_LANGUAGE, HeaderValue::from_static(crate::i18n::current().as_str()));
    resp.headers.insert(http::header::VARY, HeaderValue::from_static("Accept-Language"));
}
