//! Transport-neutral HTTP pieces: the request a handler sees, problem
//! details (RFC 9457), JSON bodies with limits, responses, route tables
//! ([`router`]) and where a request came from ([`client`]).
//!
//! Components convert spin-sdk types to and from these in one place
//! (`spin::serve`), so handler logic is plain Rust and testable natively.

pub mod client;
pub mod router;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// The parts of an incoming request that handlers use.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// Header names are lower-case; values are raw bytes.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// Most headers any route accepts in one request, and most bytes in all of them.
pub const MAX_HEADERS: usize = 100;
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

impl Request {
    /// The first value of a header, if it is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The first value of a header that must be text: `Ok(None)` when
    /// absent, 400 when present but not UTF-8 (rather than taking it for
    /// absent, which would silently drop a precondition or a cursor).
    pub fn text_header(&self, name: &str) -> Result<Option<&str>, Problem> {
        match self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            None => Ok(None),
            Some((_, v)) => std::str::from_utf8(v).map(Some).map_err(|_| Problem::bad_request(format!("the {name} header is not valid UTF-8"))),
        }
    }

    /// Every value of a header (for headers that may repeat, like Cookie).
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// A query parameter, percent-decoded. `None` when absent or not UTF-8.
    pub fn query_param(&self, key: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k)? == key).then(|| percent_decode(v)).flatten()
        })
    }

    /// Rejects requests whose headers are too many or too large (431).
    pub fn check_header_limits(&self) -> Result<(), Problem> {
        let bytes: usize = self.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
        if self.headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
            return Err(Problem::new(431, "headers-too-large", "Request Header Fields Too Large", "too many or too large headers"));
        }
        Ok(())
    }

    /// Parses a JSON body of at most `limit` bytes into `T`.
    ///
    /// 413 when too large, 415 when not JSON, 400 when malformed, too deep
    /// or of the wrong shape; never a panic.
    pub fn json<T: DeserializeOwned>(&self, limit: usize) -> Result<T, Problem> {
        if self.body.len() > limit {
            return Err(Problem::payload_too_large(limit));
        }
        let ct = self.header("content-type").unwrap_or("");
        let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if media != "application/json" && !(media.starts_with("application/") && media.ends_with("+json")) {
            return Err(Problem::new(415, "unsupported-media-type", "Unsupported Media Type", "send Content-Type: application/json"));
        }
        check_json_depth(&self.body, MAX_JSON_DEPTH)?;
        serde_json::from_slice(&self.body).map_err(|e| Problem::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// Largest body a route that takes none accepts (and ignores), so a client
/// that sends `{}` by habit is served; anything longer is a 413.
pub const NO_BODY_LIMIT: usize = 1024;

/// Deepest nesting of arrays and objects a JSON body may have.
pub const MAX_JSON_DEPTH: usize = 32;

/// Refuses deeply nested JSON before parsing it (serde_json's own limit is 128
/// and recursion costs stack in the guest).
fn check_json_depth(body: &[u8], max: usize) -> Result<(), Problem> {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(Problem::bad_request(format!("JSON nested deeper than {max} levels")));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Percent-decodes a URL component (`+` is a space, as in forms). `None` if
/// the result is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                // Two hex digits, checked as such: `from_str_radix` would also take a sign ("%+A").
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

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

    pub fn empty(status: u16) -> Self {
        Response { status, headers: Vec::new(), body: Vec::new() }
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
    /// Extra headers (Retry-After, WWW-Authenticate, rate-limit headers…).
    pub headers: Vec<(String, String)>,
}

/// The prefix of problem `type` URIs: stable identifiers, listed in
/// docs/routes.md ("Problem types"), that need no web server to resolve them.
pub const PROBLEM_BASE: &str = "urn:spindle:problem:";

impl Problem {
    pub fn new(status: u16, kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Problem { status, kind, title, detail: detail.into(), headers: Vec::new() }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem::new(400, "bad-request", "Bad Request", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem::new(401, "unauthorized", "Unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(403, "forbidden", "Forbidden", detail)
    }

    pub fn not_found(path: &str) -> Self {
        Problem::new(404, "not-found", "Not Found", format!("no route for {path}"))
    }

    pub fn method_not_allowed(method: &str) -> Self {
        Problem::new(405, "method-not-allowed", "Method Not Allowed", format!("{method} is not allowed here"))
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Problem::new(409, "conflict", "Conflict", detail)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Problem::new(413, "payload-too-large", "Payload Too Large", format!("the body must be at most {limit} bytes"))
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
        let mut headers = vec![("content-type".to_string(), "application/problem+json".to_string())];
        headers.extend(self.headers.iter().cloned());
        // An error is about this request: no cache keeps it (a 404 or 405
        // would otherwise be heuristically cacheable).
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("cache-control")) {
            headers.push(("cache-control".into(), "no-store".into()));
        }
        Response { status: self.status, headers, body: body.to_string().into_bytes() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)], body: &str) -> Request {
        Request {
            method: "POST".into(),
            path: "/x".into(),
            query: "a=1&b=h%C3%A9llo+w&c&bad=%ff".into(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn problem_body_follows_rfc9457() {
        let r = Problem::not_found("/x").with_header("x-a", "b").to_response();
        assert_eq!(r.status, 404);
        assert_eq!(r.header("Content-Type"), Some("application/problem+json"));
        assert_eq!(r.header("x-a"), Some("b"));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["type"], "urn:spindle:problem:not-found");
        assert_eq!(v["status"], 404);
        assert_eq!(v["title"], "Not Found");
    }

    #[test]
    fn query_params_are_decoded() {
        let r = req(&[], "");
        assert_eq!(r.query_param("a").as_deref(), Some("1"));
        assert_eq!(r.query_param("b").as_deref(), Some("héllo w"));
        assert_eq!(r.query_param("c").as_deref(), Some(""));
        assert_eq!(r.query_param("bad"), None);
        assert_eq!(r.query_param("zz"), None);
        assert_eq!(percent_decode("%"), Some("%".into()));
        assert_eq!(percent_decode("%4"), Some("%4".into()));
        assert_eq!(percent_decode("%zz"), Some("%zz".into()));
    }

    /// Found by fuzzing (tests/fuzz_topic_cursor.rs): a sign is not a hex digit.
    #[test]
    fn fuzz_regression_percent_sign_is_not_an_escape() {
        assert_eq!(percent_decode("%+A"), Some("% A".into()));
        assert_eq!(percent_decode("%-1x"), Some("%-1x".into()));
    }

    #[test]
    fn json_bodies_are_bounded_and_typed() {
        #[derive(serde::Deserialize, Debug)]
        struct B {
            #[allow(dead_code)]
            a: u32,
        }
        let ok = req(&[("Content-Type", "application/json; charset=utf-8")], r#"{"a":1}"#);
        assert!(ok.json::<B>(100).is_ok());
        assert_eq!(ok.json::<B>(3).unwrap_err().status, 413);
        assert_eq!(req(&[], r#"{"a":1}"#).json::<B>(100).unwrap_err().status, 415);
        assert_eq!(req(&[("content-type", "application/json")], "{").json::<B>(100).unwrap_err().status, 400);
        assert_eq!(req(&[("content-type", "application/json")], r#"{"a":"x"}"#).json::<B>(100).unwrap_err().status, 400);
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        assert_eq!(req(&[("content-type", "application/json")], &deep).json::<Value>(1000).unwrap_err().status, 400);
        let in_string = format!(r#"{{"a":1,"s":"{}"}}"#, "[".repeat(40));
        assert!(req(&[("content-type", "application/json")], &in_string).json::<B>(1000).is_ok());
    }

    #[test]
    fn text_headers_must_be_utf8() {
        let mut r = req(&[("if-match", "\"a\"")], "");
        assert_eq!(r.text_header("If-Match").unwrap(), Some("\"a\""));
        assert_eq!(r.text_header("last-event-id").unwrap(), None);
        r.headers.push(("last-event-id".into(), vec![0x84]));
        assert_eq!(r.text_header("last-event-id").unwrap_err().status, 400);
    }

    #[test]
    fn header_limits() {
        let many: Vec<(String, Vec<u8>)> = (0..101).map(|i| (format!("h{i}"), b"v".to_vec())).collect();
        let r = Request { headers: many, ..Default::default() };
        assert_eq!(r.check_header_limits().unwrap_err().status, 431);
        assert!(req(&[("a", "b")], "").check_header_limits().is_ok());
    }
}
