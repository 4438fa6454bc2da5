//! Transport-neutral HTTP pieces: problem details (RFC 9457) and JSON responses.
//!
//! Components map these onto spin-sdk types in one place (`spin::into_response`).

use serde_json::{json, Value};

/// A response the library wants to send, before it becomes a Spin response.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, body: &Value) -> Self {
        Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// An RFC 9457 problem. `kind` becomes the `type` URI `urn:spindle:problem:<kind>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub status: u16,
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
}

/// The base of problem `type` URIs. They are stable identifiers, documented
/// in the README; they need not resolve.
pub const PROBLEM_BASE: &str = "urn:spindle:problem:";

impl Problem {
    pub fn new(status: u16, kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Problem { status, kind, title, detail: detail.into() }
    }

    pub fn not_found(path: &str) -> Self {
        Problem::new(404, "not-found", "Not Found", format!("no route for {path}"))
    }

    pub fn method_not_allowed(method: &str) -> Self {
        Problem::new(405, "method-not-allowed", "Method Not Allowed", format!("{method} is not allowed here"))
    }

    pub fn redis_unavailable() -> Self {
        // The detail stays generic: connection strings may carry credentials.
        Problem::new(503, "redis-unavailable", "Service Unavailable", "the Redis backend is unreachable")
    }

    pub fn misconfigured(what: &str) -> Self {
        Problem::new(500, "misconfigured", "Misconfigured", format!("the server is misconfigured: {what}"))
    }

    pub fn to_response(&self) -> Response {
        let body = json!({
            "type": format!("{PROBLEM_BASE}{}", self.kind),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        });
        Response {
            status: self.status,
            headers: vec![("content-type".into(), "application/problem+json".into())],
            body: body.to_string().into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_body_follows_rfc9457() {
        let r = Problem::not_found("/x").to_response();
        assert_eq!(r.status, 404);
        assert_eq!(r.header("Content-Type"), Some("application/problem+json"));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["type"], "urn:spindle:problem:not-found");
        assert_eq!(v["status"], 404);
        assert_eq!(v["title"], "Not Found");
    }
}
