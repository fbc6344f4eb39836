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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextShape {
    OneLine,
    Lines,
}

/// Collects field problems while fields are read.
pub struct Fields<'a> {
    body: &'a Map<String, Value>,
    /// Prepended to field names: `plans[0].` for a nested object.
    prefix: String,
    problems: BTreeMap<String, &'static str>,
}

impl<'a> Fields<'a> {
    pub fn new(body: &'a Map<String, Value>) -> Self {
        Fields { body, prefix: String::new(), problems: BTreeMap::new() }
    }

    /// Fields of an object nested at `path` (problems are named `path.field`).
    pub fn nested(body: &'a Map<String, Value>, path: &str) -> Self {
        let prefix = if path.is_empty() { String::new() } else { format!("{path}.") };
        Fields { body, prefix, problems: BTreeMap::new() }
    }

    /// The full name of a field, for problems.
    pub fn path(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Records a problem with a field.
    pub fn problem(&mut self, name: &str, key: &'static str) {
        self.problems.insert(self.path(name), key);
    }

    /// Takes over the problems of a nested object's fields.
    pub fn absorb(&mut self, nested: Fields<'_>) {
        self.problems.extend(nested.problems);
    }

    /// The raw value, when present and not null.
    pub fn raw(&self, name: &str) -> Option<&'a Value> {
        self.body.get(name).filter(|v| !v.is_null())
    }

    pub fn has_problems(&self) -> bool {
        !self.problems.is_empty()
    }

    /// An optional string field, parsed with `parse` when present.
    pub fn optional<T, E>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
        problem: impl FnOnce(E) -> &'static str,
    ) -> Option<T> {
        self.raw(name)?;
        self.required(name, parse, problem)
    }

    /// A text of `min..=max` characters (trimmed) that may run over several lines: a CRLF is
    /// kept as a plain line feed, and any other control character is refused
    /// (`field.no_control`); `problem` when the length is wrong.
    pub fn text(
        &mut self,
        name: &str,
        required: bool,
        min: usize,
        max: usize,
        problem: &'static str,
    ) -> Option<String> {
        self.checked_text(name, required, min, max, problem, TextShape::Lines)
    }

    /// A one-line text of `min..=max` characters (trimmed), such as a name: a line break or
    /// any other control character is refused (`field.one_line`), so it can go into an email
    /// subject or a log line as it is; `problem` when the length is wrong.
    pub fn line(
        &mut self,
        name: &str,
        required: bool,
        min: usize,
        max: usize,
        problem: &'static str,
    ) -> Option<String> {
        self.checked_text(name, required, min, max, problem, TextShape::OneLine)
    }

    fn checked_text(
        &mut self,
        name: &str,
        required: bool,
        min: usize,
        max: usize,
        problem: &'static str,
        shape: TextShape,
    ) -> Option<String> {
        let check = |s: &str| {
            let t = match shape {
                TextShape::OneLine => s.trim().to_string(),
                TextShape::Lines => s.trim().replace("\r\n", "\n"),
            };
            let allowed = |c: char| !c.is_control() || (shape == TextShape::Lines && c == '\n');
            if !t.chars().all(allowed) {
                Err(match shape {
                    TextShape::OneLine => "field.one_line",
                    TextShape::Lines => "field.no_control",
                })
            } else if (min..=max).contains(&t.chars().count()) {
                Ok(t)
            } else {
                Err(problem)
            }
        };
        if required {
            self.required(name, check, |p| p)
        } else {
            self.optional(name, check, |p| p)
        }
    }

    /// A whole number in `range`; floats, strings and numbers out of range are `problem`.
    pub fn integer(
        &mut self,
        name: &str,
        required: bool,
        range: std::ops::RangeInclusive<i64>,
        problem: &'static str,
    ) -> Option<i64> {
        match self.raw(name) {
            None => {
                if required {
                    self.problem(name, "field.required");
                }
                None
            }
            Some(v) => match v.as_i64().filter(|n| range.contains(n)) {
                Some(n) => Some(n),
                None => {
                    self.problem(name, problem);
                    None
                }
            },
        }
    }

    pub fn boolean(&mut self, name: &str) -> Option<bool> {
        match self.raw(name) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.problem(name, "field.boolean");
                None
            }
        }
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
                self.problem(name, "field.required");
                None
            }
            Some(Value::String(s)) => match parse(s) {
                Ok(v) => Some(v),
                Err(e) => {
                    self.problem(name, problem(e));
                    None
                }
            },
            Some(_) => {
                self.problem(name, "field.string");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn read(value: &str, one_line: bool) -> Result<String, BTreeMap<String, &'static str>> {
        let body = serde_json::json!({ "f": value });
        let body = body.as_object().unwrap();
        let mut f = Fields::new(body);
        let v = if one_line {
            f.line("f", true, 1, 50, "field.name")
        } else {
            f.text("f", true, 0, 50, "field.description")
        };
        match f.finish() {
            Ok(()) => Ok(v.unwrap()),
            Err(ApiError::Validation(p)) => Err(p),
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn one_line_texts_refuse_control_characters_and_texts_keep_only_line_breaks() {
        for bad in ["Evil\r\nBcc: x@y.z", "a\nb", "a\rb", "tab\there", "nul\u{0}", "ne\u{85}l", "del\u{7f}"] {
            assert_eq!(read(bad, true).unwrap_err()["f"], "field.one_line", "{bad:?}");
        }
        assert_eq!(read("  Mark LXXXV — Réacteur  ", true).unwrap(), "Mark LXXXV — Réacteur");
        assert_eq!(read("line one\r\nline two\nthree", false).unwrap(), "line one\nline two\nthree");
        for bad in ["bell\u{7}", "a\rb", "tab\there", "esc\u{1b}[31m"] {
            assert_eq!(read(bad, false).unwrap_err()["f"], "field.no_control", "{bad:?}");
        }
        assert_eq!(read(&"x".repeat(51), true).unwrap_err()["f"], "field.name");
    }
}
