//! One error type for the HTTP layer, mapped to status and envelope in one place. Internal
//! causes are logged with their chain and never returned to the client.

use http::{HeaderValue, Method, StatusCode};
use std::collections::BTreeMap;

use super::{messages, ApiResponse};
use crate::app::retry::{LockTimeout, LOCK_TIMEOUT_RETRY_AFTER};
use crate::ports::is_unavailable;

/// What `Retry-After` says with a 503 `service_unavailable`, in seconds: long enough for a
/// throttled table or a restarting store to come back, short enough that a client retrying
/// by it notices the recovery soon.
pub const UNAVAILABLE_RETRY_AFTER: u64 = 5;

#[derive(Debug)]
pub enum ApiError {
    /// 400 `validation_error`, with a message key per field.
    Validation(BTreeMap<String, &'static str>),
    /// A 4xx with its code; `retry_after` adds the header (429).
    Client {
        status: StatusCode,
        code: &'static str,
        retry_after: Option<u64>,
        /// A field to name in `fields`, for a code that is about one field.
        field: Option<(&'static str, &'static str)>,
    },
    MethodNotAllowed(Vec<Method>),
    /// Not the client's doing, logged with its cause chain, nothing shown: a dependency that
    /// failed (`ports::Unavailable`: 503 `service_unavailable`), a write that kept losing
    /// races (`app::retry::LockTimeout`: 409 `lock_timeout`), or a bug (500).
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn client(status: StatusCode, code: &'static str) -> Self {
        ApiError::Client { status, code, retry_after: None, field: None }
    }

    /// A 4xx about one field: the envelope names it in `fields` too.
    pub fn client_field(status: StatusCode, code: &'static str, field: &'static str, problem: &'static str) -> Self {
        ApiError::Client { status, code, retry_after: None, field: Some((field, problem)) }
    }

    pub fn too_many(code: &'static str, retry_after: u64) -> Self {
        ApiError::Client { status: StatusCode::TOO_MANY_REQUESTS, code, retry_after: Some(retry_after), field: None }
    }

    pub fn unauthorized() -> Self {
        Self::client(StatusCode::UNAUTHORIZED, "unauthorized")
    }

    pub fn field(name: &str, problem: &'static str) -> Self {
        ApiError::Validation(BTreeMap::from([(name.to_string(), problem)]))
    }

    pub fn into_response(self) -> ApiResponse {
        let (status, code, fields, retry_after, allow) = match self {
            ApiError::Validation(f) => (StatusCode::BAD_REQUEST, "validation_error", Some(f), None, None),
            ApiError::Client { status, code, retry_after, field } => {
                (status, code, field.map(|(f, p)| BTreeMap::from([(f.to_string(), p)])), retry_after, None)
            }
            ApiError::MethodNotAllowed(m) => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None, None, Some(m))
            }
            ApiError::Internal(e) => {
                if let Some(lost) = e.downcast_ref::<LockTimeout>() {
                    tracing::warn!(error = %lost, "answered lock_timeout");
                    (StatusCode::CONFLICT, "lock_timeout", None, Some(LOCK_TIMEOUT_RETRY_AFTER), None)
                } else if is_unavailable(&e) {
                    tracing::error!(error = %crate::logs::chain(&e), "a dependency failed");
                    (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", None, Some(UNAVAILABLE_RETRY_AFTER), None)
                } else {
                    tracing::error!(error = %crate::logs::chain(&e), "internal error");
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal_error", None, None, None)
                }
            }
        };
        let mut error = serde_json::json!({ "code": code, "message": messages::text(code) });
        if let Some(fields) = fields {
            error["fields"] =
                fields.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(messages::text(v)))).collect();
        }
        let mut resp = ApiResponse::json(status, &serde_json::json!({ "error": error }));
        if let Some(secs) = retry_after {
            resp.headers.insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(methods) = allow {
            let list = methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
            if let Ok(v) = HeaderValue::from_str(&list) {
                resp.headers.insert(http::header::ALLOW, v);
            }
        }
        resp
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Internal(e)
    }
}
