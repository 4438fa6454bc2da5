//! The HTTP side: routing, auth, body limits, and the three endpoints.
//!
//! Every failure is a `Failure` that carries its status code, so handlers
//! use `?` and the mapping to `{"error": ...}` lives in one place.

use std::borrow::Cow;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{HeaderMap, HeaderValue, ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use redis::Value;
use serde::Serialize;
use subtle::{Choice, ConstantTimeEq};

use crate::command::{self, Command};
use crate::link::{Link, Unavailable};
use crate::reply::{error_text, Encoding, Outcome};

pub(crate) type HttpResponse = Response<Full<Bytes>>;

/// What every request handler can see.
pub(crate) struct State {
    pub token: Vec<u8>,
    pub max_body_bytes: usize,
    pub redis_timeout: Duration,
    pub command_timeout: Duration,
    pub link: Link,
}

impl State {
    /// How long Redis may take to answer `cmds`: scripts get the long
    /// command timeout, everything else the short Redis timeout.
    fn timeout_for(&self, cmds: &[Command<'_>]) -> Duration {
        if cmds.iter().any(|cmd| command::is_script(cmd)) {
            self.command_timeout.max(self.redis_timeout)
        } else {
            self.redis_timeout
        }
    }
}

/// A request that ends in an error answer.
struct Failure {
    status: StatusCode,
    message: Cow<'static, str>,
    /// Set on 405, for the `Allow` header.
    allow: Option<&'static str>,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Failure {
            status,
            message: message.into(),
            allow: None,
        }
    }
    fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("ERR request body exceeds the limit of {limit} bytes"),
        )
    }
    fn into_response(self) -> HttpResponse {
        let mut response = json(self.status, &Outcome::Refused(self.message));
        if let Some(allow) = self.allow {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

impl From<Unavailable> for Failure {
    fn from(err: Unavailable) -> Self {
        Failure::new(StatusCode::SERVICE_UNAVAILABLE, err.0)
    }
}

fn json(status: StatusCode, body: &impl Serialize) -> HttpResponse {
    // Our types only have string keys, so this cannot fail; answer rather
    // than panic if that ever changes.
    let (status, bytes) = match serde_json::to_vec(body) {
        Ok(bytes) => (status, Bytes::from(bytes)),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Bytes::from_static(br#"{"error":"ERR could not encode the reply"}"#),
        ),
    };
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The entry point hyper calls for every request.
pub(crate) async fn handle(
    state: std::sync::Arc<State>,
    req: Request<Incoming>,
) -> Result<HttpResponse, Infallible> {
    Ok(match route(&state, req).await {
        Ok(response) => response,
        Err(failure) => failure.into_response(),
    })
}

/// Where a path leads.
enum Endpoint {
    /// `POST /` with `["CMD", args...]`.
    Single,
    Pipeline,
    MultiExec,
    /// `/cmd/arg/...`
    Path,
}

impl Endpoint {
    fn of(path: &str) -> Option<Self> {
        match path {
            "/" => return Some(Endpoint::Single),
            "/pipeline" | "/pipeline/" => return Some(Endpoint::Pipeline),
            "/multi-exec" | "/multi-exec/" => return Some(Endpoint::MultiExec),
            _ => {}
        }
        let first = path.strip_prefix('/')?.split('/').next().unwrap_or("");
        // Command names are words like `get` or `json.get`; anything else
        // (an empty segment, `pipeline/x`) is not a resource we have.
        let plausible = !first.is_empty()
            && first != "pipeline"
            && first != "multi-exec"
            && first
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        plausible.then_some(Endpoint::Path)
    }

    fn allows(&self, method: &Method) -> Result<(), Failure> {
        let (ok, allow) = match self {
            Endpoint::Path => (
                *method == Method::GET || *method == Method::POST || *method == Method::PUT,
                "GET, POST, PUT",
            ),
            _ => (
                *method == Method::POST || *method == Method::PUT,
                "POST, PUT",
            ),
        };
        if ok {
            return Ok(());
        }
        Err(Failure {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: format!("ERR method {method} is not allowed here").into(),
            allow: Some(allow),
        })
    }
}

async fn route(state: &State, req: Request<Incoming>) -> Result<HttpResponse, Failure> {
    let (parts, body) = req.into_parts();
    let query: Vec<(Cow<str>, Cow<str>)> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).collect())
        .unwrap_or_default();
    authorize(state, &parts.headers, &query)?;
    let encoding = encoding(&parts.headers)?;

    let path = parts.uri.path();
    let endpoint = Endpoint::of(path).ok_or_else(|| {
        Failure::new(
            StatusCode::NOT_FOUND,
            format!("ERR no such endpoint: {path}"),
        )
    })?;
    endpoint.allows(&parts.method)?;
    let body = if parts.method == Method::GET {
        Bytes::new()
    } else {
        read_body(body, &parts.headers, state.max_body_bytes).await?
    };

    match endpoint {
        Endpoint::Single => {
            let cmd = command::parse_command(&body).map_err(Failure::bad_request)?;
            single(state, &cmd, encoding).await
        }
        Endpoint::Path => {
            let cmd = command::parse_path(path, &query, Some(&body));
            single(state, &cmd, encoding).await
        }
        Endpoint::Pipeline => {
            let batch = command::parse_batch(&body).map_err(Failure::bad_request)?;
            pipeline(state, &batch, encoding).await
        }
        Endpoint::MultiExec => {
            let batch = command::parse_batch(&body).map_err(Failure::bad_request)?;
            multi_exec(state, &batch, encoding).await
        }
    }
}

/// Accepts `Authorization: Bearer <token>` or, as Upstash does, `?_token=`.
fn authorize(
    state: &State,
    headers: &HeaderMap,
    query: &[(Cow<str>, Cow<str>)],
) -> Result<(), Failure> {
    let from_header = headers.get(AUTHORIZATION).and_then(|v| {
        let v = v.as_bytes();
        let scheme = v.get(..7)?;
        scheme
            .eq_ignore_ascii_case(b"bearer ")
            .then(|| v[7..].trim_ascii())
    });
    let from_query = || {
        query
            .iter()
            .find(|(k, _)| k.as_ref() == "_token")
            .map(|(_, v)| v.as_bytes())
    };
    match from_header.or_else(from_query) {
        Some(given) if tokens_match(&state.token, given) => Ok(()),
        _ => Err(Failure::new(StatusCode::UNAUTHORIZED, "Unauthorized")),
    }
}

/// Compares in time that depends only on the expected token's length, so
/// neither the position of the first wrong byte nor the token's length leaks.
fn tokens_match(expected: &[u8], given: &[u8]) -> bool {
    let mut equal: Choice = (expected.len() as u64).ct_eq(&(given.len() as u64));
    for (i, e) in expected.iter().enumerate() {
        // Past the end of `given`, compare against a byte that cannot match.
        let g = given.get(i).copied().unwrap_or(!*e);
        equal &= e.ct_eq(&g);
    }
    equal.into()
}

/// Reads `Upstash-Encoding`; rejects a response format other than JSON
/// rather than silently answering in the wrong one.
fn encoding(headers: &HeaderMap) -> Result<Encoding, Failure> {
    if let Some(format) = headers.get("upstash-response-format") {
        if !format.as_bytes().eq_ignore_ascii_case(b"json") {
            return Err(Failure::bad_request(
                "ERR only the json response format is supported",
            ));
        }
    }
    Ok(match headers.get("upstash-encoding") {
        Some(v) if v.as_bytes().eq_ignore_ascii_case(b"base64") => Encoding::Base64,
        _ => Encoding::Text,
    })
}

/// Reads the whole body, refusing it (413) as soon as it is known to exceed
/// `limit`: up front from Content-Length, else while it streams in.
async fn read_body(
    mut body: Incoming,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, Failure> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        drain(body).await;
        return Err(Failure::too_large(limit));
    }
    // Most bodies arrive in one chunk; keep it as is rather than copy it.
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| {
            Failure::bad_request(format!("ERR could not read the request body: {err}"))
        })?;
        if let Ok(data) = frame.into_data() {
            total = total.saturating_add(data.len());
            if total > limit {
                drain(body).await;
                return Err(Failure::too_large(limit));
            }
            chunks.push(data);
        }
    }
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => Bytes::from(chunks.concat()),
    })
}

/// Reads and discards a refused body, within bounds, before answering.
/// Closing a socket with unread data makes the kernel send a reset, which
/// can destroy our 413 before the client reads it.
async fn drain(mut body: Incoming) {
    const MAX_DRAIN_BYTES: u64 = 16 * 1024 * 1024;
    const MAX_DRAIN_TIME: Duration = Duration::from_secs(2);
    if body.size_hint().lower() > MAX_DRAIN_BYTES {
        return;
    }
    let _ = tokio::time::timeout(MAX_DRAIN_TIME, async {
        let mut seen = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            if seen > MAX_DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}

fn to_redis(cmd: &Command<'_>) -> redis::Cmd {
    let mut out = redis::Cmd::new();
    for arg in cmd {
        out.arg(arg.as_ref());
    }
    out
}

async fn single(
    state: &State,
    cmd: &Command<'_>,
    encoding: Encoding,
) -> Result<HttpResponse, Failure> {
    command::check_supported(cmd).map_err(Failure::bad_request)?;
    let timeout = state.timeout_for(std::slice::from_ref(cmd));
    let value = state.link.command(&to_redis(cmd), timeout).await?;
    let status = match value {
        Value::ServerError(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    Ok(json(status, &Outcome::Reply(&value, encoding)))
}

/// Runs the batch as one Redis pipeline. A command the gateway refuses gets
/// an error in its slot and is not sent; the others still run.
async fn pipeline(
    state: &State,
    batch: &[Command<'_>],
    encoding: Encoding,
) -> Result<HttpResponse, Failure> {
    let checks: Vec<Result<(), String>> =
        batch.iter().map(|c| command::check_supported(c)).collect();
    let mut pipe = redis::pipe();
    for (cmd, check) in batch.iter().zip(&checks) {
        if check.is_ok() {
            pipe.add_command(to_redis(cmd));
        }
    }
    let replies = if pipe.is_empty() {
        Vec::new()
    } else {
        state.link.pipeline(&pipe, state.timeout_for(batch)).await?
    };
    let mut replies = replies.iter();
    let outcomes: Vec<Outcome> = checks
        .iter()
        .map(|check| match check {
            Ok(()) => replies.next().map_or_else(
                || Outcome::Refused("ERR Redis sent no reply for this command".into()),
                |value| Outcome::Reply(value, encoding),
            ),
            Err(err) => Outcome::Refused(Cow::Borrowed(err.as_str())),
        })
        .collect();
    Ok(json(StatusCode::OK, &outcomes))
}

/// Runs the batch as MULTI … EXEC on a dedicated connection. A command the
/// gateway refuses, or one Redis refuses to queue, discards the whole
/// transaction (400 with a single error, as Upstash documents); errors
/// raised while executing land in their slots, and the rest still ran.
async fn multi_exec(
    state: &State,
    batch: &[Command<'_>],
    encoding: Encoding,
) -> Result<HttpResponse, Failure> {
    for cmd in batch {
        command::check_supported(cmd).map_err(Failure::bad_request)?;
    }
    let mut pipe = redis::pipe();
    pipe.add_command(redis::cmd("MULTI"));
    for cmd in batch {
        pipe.add_command(to_redis(cmd));
    }
    pipe.add_command(redis::cmd("EXEC"));
    let timeout = state.timeout_for(batch);
    let replies = state.link.transaction(&pipe, timeout).await?;

    // The first top-level error is MULTI's or a queueing error (EXEC's own
    // EXECABORT comes after it and says less).
    if let Some(err) = replies.iter().find_map(error_text) {
        return Err(Failure::bad_request(err));
    }
    match replies.last() {
        Some(Value::Array(results)) if results.len() == batch.len() => {
            let outcomes: Vec<Outcome> = results
                .iter()
                .map(|value| Outcome::Reply(value, encoding))
                .collect();
            Ok(json(StatusCode::OK, &outcomes))
        }
        Some(Value::Nil) => Err(Failure::bad_request("ERR transaction was aborted")),
        _ => Err(Failure::new(
            StatusCode::BAD_GATEWAY,
            "ERR unexpected reply to EXEC from Redis",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(tokens_match(b"secret", b"secret"));
        assert!(!tokens_match(b"secret", b"secreT"));
        assert!(!tokens_match(b"secret", b"secret!"));
        assert!(!tokens_match(b"secret", b"secre"));
        assert!(!tokens_match(b"secret", b""));
    }

    #[test]
    fn endpoints() {
        assert!(matches!(Endpoint::of("/"), Some(Endpoint::Single)));
        assert!(matches!(
            Endpoint::of("/pipeline"),
            Some(Endpoint::Pipeline)
        ));
        assert!(matches!(
            Endpoint::of("/multi-exec/"),
            Some(Endpoint::MultiExec)
        ));
        assert!(matches!(Endpoint::of("/get/k"), Some(Endpoint::Path)));
        assert!(matches!(
            Endpoint::of("/json.get/k/$"),
            Some(Endpoint::Path)
        ));
        assert!(Endpoint::of("/pipeline/x").is_none());
        assert!(Endpoint::of("//get").is_none());
        assert!(Endpoint::of("/ge%74/k").is_none());
    }
}
