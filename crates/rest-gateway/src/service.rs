//! The HTTP side: routing, auth and scopes, body limits, admission, the
//! three Upstash endpoints, and `/healthz` and `/metrics`.
//!
//! Every failure is a `Failure` that carries its status code and error
//! class, so handlers use `?` and the mapping to `{"error": ...}`, to
//! `Retry-After` and to the metrics lives in one place.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{
    HeaderMap, HeaderValue, ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER,
};
use hyper::{Method, Request, Response, StatusCode};
use redis::Value;
use serde::Serialize;
use serde_json::json;

use crate::admission::{Admission, Rejected};
use crate::command::{self, Command};
use crate::link::Unavailable;
use crate::log::{self, Level, Throttle};
use crate::metrics::{self, ErrorClass, Gauges, Metrics};
use crate::reply::{error_text, Encoding, Outcome};
use crate::tokens::{Identity, Scope, Tokens};
use crate::upstream::{Answer, TxError, Upstream};

pub(crate) type HttpResponse = Response<Full<Bytes>>;

/// How long a client may take to send its request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// What `Retry-After` says on a 503, in seconds.
const RETRY_AFTER_SECS: &str = "1";

static UNAVAILABLE_LOG: Throttle = Throttle::new(Duration::from_secs(1));
static SATURATED_LOG: Throttle = Throttle::new(Duration::from_secs(1));

/// What every request handler can see.
pub(crate) struct State {
    pub tokens: Tokens,
    pub max_body_bytes: usize,
    pub redis_timeout: Duration,
    pub command_timeout: Duration,
    pub upstream: Upstream,
    pub admission: Admission,
    pub metrics: Arc<Metrics>,
    pub access_log: bool,
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
    class: ErrorClass,
    message: Cow<'static, str>,
    /// Set on 405, for the `Allow` header.
    allow: Option<&'static str>,
}

impl Failure {
    fn new(status: StatusCode, class: ErrorClass, message: impl Into<Cow<'static, str>>) -> Self {
        Failure {
            status,
            class,
            message: message.into(),
            allow: None,
        }
    }
    fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorClass::BadRequest, message)
    }
    fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorClass::Forbidden, message)
    }
    fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorClass::Unauthorized,
            "Unauthorized",
        )
    }
    fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorClass::BadRequest,
            format!("ERR request body exceeds the limit of {limit} bytes"),
        )
    }
    fn into_response(self) -> HttpResponse {
        let mut response = json(self.status, &Outcome::Refused(self.message));
        let headers = response.headers_mut();
        if let Some(allow) = self.allow {
            headers.insert(ALLOW, HeaderValue::from_static(allow));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
        }
        response
    }
}

impl From<Unavailable> for Failure {
    fn from(err: Unavailable) -> Self {
        let class = if err.timed_out {
            ErrorClass::Timeout
        } else {
            ErrorClass::Unavailable
        };
        if let Some(held_back) = UNAVAILABLE_LOG.admit() {
            log::event(
                Level::Warn,
                "Redis unavailable",
                json!({"error": err.message, "similar_since_last": held_back}),
            );
        }
        Failure::new(StatusCode::SERVICE_UNAVAILABLE, class, err.message)
    }
}

impl From<TxError> for Failure {
    fn from(err: TxError) -> Self {
        match err {
            TxError::Unavailable(err) => err.into(),
            TxError::Refused(message) => Failure::bad_request(message),
            TxError::Busy(message) => Failure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorClass::ClusterBusy,
                message,
            ),
        }
    }
}

impl From<Rejected> for Failure {
    fn from(rejected: Rejected) -> Self {
        let why = match rejected {
            Rejected::QueueFull => {
                "ERR the gateway is saturated: too many requests are waiting for Redis; retry"
            }
            Rejected::WaitedTooLong => {
                "ERR the gateway is saturated: the request waited too long for Redis; retry"
            }
        };
        if let Some(held_back) = SATURATED_LOG.admit() {
            log::event(
                Level::Warn,
                "saturated",
                json!({"reason": why, "similar_since_last": held_back}),
            );
        }
        Failure::new(StatusCode::SERVICE_UNAVAILABLE, ErrorClass::Saturated, why)
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
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<HttpResponse, Infallible> {
    let started = Instant::now();
    let endpoint = Endpoint::of(req.uri().path());
    let method = req.method().clone();
    let mut who: Option<Identity> = None;
    let response = match route(&state, req, endpoint.as_ref(), &mut who).await {
        Ok(response) => response,
        Err(failure) => {
            state.metrics.error(failure.class);
            failure.into_response()
        }
    };
    let route = endpoint.map_or(metrics::Route::Unknown, |e| e.label());
    let elapsed = started.elapsed();
    state
        .metrics
        .request(route, response.status().as_u16(), elapsed);
    if state.access_log {
        // The route, never the path: the path form carries keys and values.
        log::event(
            Level::Info,
            "request",
            json!({
                "method": method.as_str(),
                "route": route.label(),
                "status": response.status().as_u16(),
                "ms": elapsed.as_secs_f64() * 1000.0,
                "token": who.as_ref().map(|w| &*w.name),
            }),
        );
    }
    Ok(response)
}

/// Where a path leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    /// `POST /` with `["CMD", args...]`.
    Single,
    Pipeline,
    MultiExec,
    /// `/cmd/arg/...`
    Path,
    Healthz,
    Metrics,
}

impl Endpoint {
    fn of(path: &str) -> Option<Self> {
        match path {
            "/" => return Some(Endpoint::Single),
            "/pipeline" | "/pipeline/" => return Some(Endpoint::Pipeline),
            "/multi-exec" | "/multi-exec/" => return Some(Endpoint::MultiExec),
            "/healthz" => return Some(Endpoint::Healthz),
            "/metrics" => return Some(Endpoint::Metrics),
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

    fn label(self) -> metrics::Route {
        match self {
            Endpoint::Single => metrics::Route::Command,
            Endpoint::Pipeline => metrics::Route::Pipeline,
            Endpoint::MultiExec => metrics::Route::MultiExec,
            Endpoint::Path => metrics::Route::Path,
            Endpoint::Healthz => metrics::Route::Healthz,
            Endpoint::Metrics => metrics::Route::Metrics,
        }
    }

    fn allows(&self, method: &Method) -> Result<(), Failure> {
        let (ok, allow) = match self {
            Endpoint::Path => (
                *method == Method::GET || *method == Method::POST || *method == Method::PUT,
                "GET, POST, PUT",
            ),
            Endpoint::Healthz | Endpoint::Metrics => (*method == Method::GET, "GET"),
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
            class: ErrorClass::BadRequest,
            message: format!("ERR method {method} is not allowed here").into(),
            allow: Some(allow),
        })
    }
}

async fn route(
    state: &State,
    req: Request<Incoming>,
    endpoint: Option<&Endpoint>,
    who: &mut Option<Identity>,
) -> Result<HttpResponse, Failure> {
    let (parts, body) = req.into_parts();
    let query: Vec<(Cow<str>, Cow<str>)> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).collect())
        .unwrap_or_default();
    // Probes carry no token.
    if endpoint == Some(&Endpoint::Healthz) {
        Endpoint::Healthz.allows(&parts.method)?;
        return Ok(healthz(state, &query).await);
    }
    let identity = authorize(state, &parts.headers, &query)?;
    let scope = identity.scope;
    *who = Some(identity);
    let encoding = encoding(&parts.headers)?;

    let path = parts.uri.path();
    let endpoint = *endpoint.ok_or_else(|| {
        Failure::new(
            StatusCode::NOT_FOUND,
            ErrorClass::BadRequest,
            format!("ERR no such endpoint: {path}"),
        )
    })?;
    endpoint.allows(&parts.method)?;
    if endpoint == Endpoint::Metrics {
        return Ok(metrics_text(state));
    }
    if scope == Scope::Metrics {
        return Err(Failure::forbidden("ERR this token may only read /metrics"));
    }
    let body = if parts.method == Method::GET {
        Bytes::new()
    } else {
        read_body(body, &parts.headers, state.max_body_bytes).await?
    };

    match endpoint {
        Endpoint::Single => {
            let cmd = command::parse_command(&body).map_err(Failure::bad_request)?;
            single(state, &cmd, scope, encoding).await
        }
        Endpoint::Path => {
            let cmd = command::parse_path(path, &query, Some(&body));
            single(state, &cmd, scope, encoding).await
        }
        Endpoint::Pipeline => {
            let batch = command::parse_batch(&body).map_err(Failure::bad_request)?;
            pipeline(state, &batch, scope, encoding).await
        }
        Endpoint::MultiExec => {
            let batch = command::parse_batch(&body).map_err(Failure::bad_request)?;
            multi_exec(state, &batch, scope, encoding).await
        }
        Endpoint::Healthz | Endpoint::Metrics => unreachable!("answered above"),
    }
}

/// `GET /healthz`: 200 when Redis answers (on a cluster: some master
/// does), else 503; `GET /healthz?live` only says the process serves.
async fn healthz(state: &State, query: &[(Cow<'_, str>, Cow<'_, str>)]) -> HttpResponse {
    if query.iter().any(|(k, _)| k == "live") {
        return json(StatusCode::OK, &json!({"status": "live"}));
    }
    let health = state.upstream.health().await;
    let mut body = health.detail;
    body["status"] = if health.ok { "ok" } else { "unavailable" }.into();
    let status = if health.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, &body)
}

fn metrics_text(state: &State) -> HttpResponse {
    let text = state.metrics.render(&Gauges {
        in_flight: state.admission.in_flight(),
        max_in_flight: state.admission.max_in_flight(),
        queued: state.admission.waiting(),
        max_queue: state.admission.max_queue(),
        tokens: state.tokens.counts(),
        cluster: state.upstream.cluster().map(|c| c.gauges()),
    });
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Accepts `Authorization: Bearer <token>` or, as Upstash does, `?_token=`.
fn authorize(
    state: &State,
    headers: &HeaderMap,
    query: &[(Cow<str>, Cow<str>)],
) -> Result<Identity, Failure> {
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
    from_header
        .or_else(from_query)
        .and_then(|given| state.tokens.check(given))
        .ok_or_else(Failure::unauthorized)
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
/// `limit`: up front from Content-Length, else while it streams in; and
/// giving up (408) on a client that does not finish sending it in time.
async fn read_body(body: Incoming, headers: &HeaderMap, limit: usize) -> Result<Bytes, Failure> {
    tokio::time::timeout(BODY_TIMEOUT, read_body_within(body, headers, limit))
        .await
        .unwrap_or_else(|_| {
            Err(Failure::new(
                StatusCode::REQUEST_TIMEOUT,
                ErrorClass::BadRequest,
                "ERR the request body did not arrive in time",
            ))
        })
}

async fn read_body_within(
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

/// Why this command may not run for this token, or through this gateway.
fn refusal(state: &State, cmd: &Command<'_>, scope: Scope) -> Option<(ErrorClass, String)> {
    if let Err(err) = command::check_supported(cmd) {
        return Some((ErrorClass::BadRequest, err));
    }
    if let Some(err) = state.upstream.refusal(cmd) {
        return Some((ErrorClass::BadRequest, err));
    }
    if scope == Scope::ReadOnly && !command::is_read_only(cmd) {
        let err = format!(
            "NOPERM this token is read-only, and '{}' is not a read command",
            command::shown_name(cmd)
        );
        return Some((ErrorClass::Forbidden, err));
    }
    None
}

fn refused(class: ErrorClass, message: String) -> Failure {
    match class {
        ErrorClass::Forbidden => Failure::forbidden(message),
        _ => Failure::bad_request(message),
    }
}

/// Error replies that mean "not now" rather than "not so": the cluster
/// is failing over or moving a slot, Redis is loading or busy. A single
/// command that gets one answers 503 with `Retry-After`.
fn is_transient(value: &Value) -> bool {
    match value {
        Value::ServerError(err) => matches!(
            err.code(),
            "CLUSTERDOWN" | "TRYAGAIN" | "MASTERDOWN" | "LOADING" | "BUSY"
        ),
        _ => false,
    }
}

async fn single(
    state: &State,
    cmd: &Command<'_>,
    scope: Scope,
    encoding: Encoding,
) -> Result<HttpResponse, Failure> {
    if let Some((class, err)) = refusal(state, cmd, scope) {
        return Err(refused(class, err));
    }
    let timeout = state.timeout_for(std::slice::from_ref(cmd));
    let _turn = state.admission.admit().await?;
    let mut answers = state.upstream.batch(&[cmd], timeout).await?;
    let value = answers
        .pop()
        .unwrap_or_else(|| Err(Unavailable::new("Redis sent no reply")))?;
    let status = if is_transient(&value) {
        state.metrics.error(ErrorClass::ClusterBusy);
        let mut response = json(
            StatusCode::SERVICE_UNAVAILABLE,
            &Outcome::Reply(&value, encoding),
        );
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
        return Ok(response);
    } else if matches!(value, Value::ServerError(_)) {
        state.metrics.error(ErrorClass::RedisError);
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(json(status, &Outcome::Reply(&value, encoding)))
}

/// Runs the batch as one pipeline (on a cluster, one per master). A
/// command the gateway refuses gets an error in its slot and is not sent;
/// the others still run. If Redis was unavailable for every command sent,
/// the answer is a 503; if only for some (one master of a cluster down),
/// their slots carry the error.
async fn pipeline(
    state: &State,
    batch: &[Command<'_>],
    scope: Scope,
    encoding: Encoding,
) -> Result<HttpResponse, Failure> {
    let refusals: Vec<Option<String>> = batch
        .iter()
        .map(|cmd| {
            refusal(state, cmd, scope).map(|(class, err)| {
                state.metrics.error(class);
                err
            })
        })
        .collect();
    let to_send: Vec<&Command<'_>> = batch
        .iter()
        .zip(&refusals)
        .filter(|(_, r)| r.is_none())
        .map(|(cmd, _)| cmd)
        .collect();
    let answers: Vec<Answer> = if to_send.is_empty() {
        Vec::new()
    } else {
        let _turn = state.admission.admit().await?;
        let cmds: Vec<&[Cow<'_, [u8]>]> = to_send.iter().map(|c| c.as_slice()).collect();
        state
            .upstream
            .batch(&cmds, state.timeout_for(batch))
            .await?
    };
    if let Some(Err(first)) = answers.first() {
        if answers.iter().all(|a| a.is_err()) {
            return Err(first.clone().into());
        }
    }
    let mut answers = answers.iter();
    let outcomes: Vec<Outcome> = refusals
        .iter()
        .map(|refusal| match refusal {
            Some(err) => Outcome::Refused(Cow::Borrowed(err.as_str())),
            None => match answers.next() {
                Some(Ok(value)) => {
                    if matches!(value, Value::ServerError(_)) {
                        state.metrics.error(ErrorClass::RedisError);
                    }
                    Outcome::Reply(value, encoding)
                }
                Some(Err(err)) => {
                    state.metrics.error(if err.timed_out {
                        ErrorClass::Timeout
                    } else {
                        ErrorClass::Unavailable
                    });
                    Outcome::Refused(Cow::Borrowed(err.message.as_str()))
                }
                None => Outcome::Refused("ERR Redis sent no reply for this command".into()),
            },
        })
        .collect();
    Ok(json(StatusCode::OK, &outcomes))
}

/// Runs the batch as one MULTI … EXEC. A command the gateway refuses, or
/// one Redis refuses to queue, discards the whole transaction (400 with a
/// single error, as Upstash documents); errors raised while executing land
/// in their slots, and the rest still ran.
async fn multi_exec(
    state: &State,
    batch: &[Command<'_>],
    scope: Scope,
    encoding: Encoding,
) -> Result<HttpResponse, Failure> {
    for cmd in batch {
        if let Some((class, err)) = refusal(state, cmd, scope) {
            return Err(refused(class, err));
        }
    }
    let timeout = state.timeout_for(batch);
    let cmds: Vec<&[Cow<'_, [u8]>]> = batch.iter().map(|c| c.as_slice()).collect();
    let replies = {
        let _turn = state.admission.admit().await?;
        state.upstream.transaction(&cmds, timeout).await?
    };

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
            ErrorClass::Unavailable,
            "ERR unexpected reply to EXEC from Redis",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(matches!(Endpoint::of("/healthz"), Some(Endpoint::Healthz)));
        assert!(matches!(Endpoint::of("/metrics"), Some(Endpoint::Metrics)));
        assert!(Endpoint::of("/pipeline/x").is_none());
        assert!(Endpoint::of("//get").is_none());
        assert!(Endpoint::of("/ge%74/k").is_none());
    }
}
