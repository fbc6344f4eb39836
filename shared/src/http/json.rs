//! Turning a request body into domain types at the edge. Every problem is collected per
//! field so that one answer names them all.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

use super::ApiError;
use http::StatusCode;

/// The largest body any endpoint accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Parses the body as a JSON object; an empty body is `{}`. (The size limit is enforced
/// once for every request, in `http::handle`.)
pub fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ApiError::client(StatusCode::BAD_REQUEST, "malformed_json")),
    }
}

/// Collects field problems while fields are read.
pub struct Fields<'a> {
    body: &'a Map<String, Value>,
    problems: BTreeMap<String, &'static str>,
}

impl<'a> Fields<'a> {
    pub fn new(body: &'a Map<String, Value>) -> Self {
        Fields { body, problems: BTreeMap::new() }
    }

    /// A required string field, parsed with `parse`; `problem` names what is wrong.
    pub fn required<T, E>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
        problem: impl FnOnce(E) -> &'static str,
    ) -> Option<T> {
        match self.body.get(name) {
            None | Some(Value::Null) => {
                self.problems.insert(name.to_string(), "field.required");
                None
            }
            Some(Value::String(s)) => match parse(s) {
                Ok(v) => Some(v),
                Err(e) => {
                    self.problems.insert(name.to_string(), problem(e));
                    None
                }
            },
            Some(_) => {
                self.problems.insert(name.to_string(), "field.string");
                None
            }
        }
    }

    /// Ends parsing: every field was fine, or a `validation_error` naming each bad one.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.problems))
        }
    }
}

/// Unwraps the values that `Fields` produced once `finish` has passed.
pub fn take<T>(v: Option<T>) -> Result<T, ApiError> {
    v.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("field missing after validation passed")))
}
