//! A component's route table over Spin's `wasi:http` incoming handler.
//!
//! [`serve`] reads the method, path and headers, checks the header limits
//! (431), finds the route (404, or 405 with `Allow`) before reading any body,
//! then reads the body as a stream up to the route's limit: one byte more is
//! a 413, and the rest is never read, so a large body costs no memory. The
//! handler's answer is sent with `Spindle-Host` when `host_id` is set; a
//! streaming handler (SSE) gets the [`Responder`] instead.
//!
//! On Spin, reading a variable that falls back to its default (Spin's
//! environment provider, a tokio `block_in_place`) costs about as much again
//! as a whole minimal request, and ~15 ms of latency, unless the request
//! then waits on the host before it answers (docs/benchmarks.md, "Where a
//! request's time goes"). So `host_id` is read first, and every answer
//! follows a wait: Redis, or reading the request's body to its end, which
//! for a GET without a body happens after the handler.

use super::{SpinLink, SpinVars};
use crate::app::{Ctx, Env, Handler};
use crate::config::RedisConfig;
use crate::env::{OsRng, SystemClock};
use crate::http::router::{dispatch, Route};
use crate::http::{Problem, Request, Response};
use futures::{SinkExt, StreamExt};
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};

/// The guest's environment: Spin variables, WASI's clock and CSPRNG, and
/// the Redis link `redis_scheme`/`redis_host` select.
#[derive(Debug, Default)]
pub struct SpinEnv {
    vars: SpinVars,
}

impl Env for SpinEnv {
    type Vars = SpinVars;
    type Link = SpinLink;
    type Clock = SystemClock;
    type Rng = OsRng;
    type Responder = Responder;

    fn vars(&self) -> &SpinVars {
        &self.vars
    }

    fn clock(&self) -> &SystemClock {
        &SystemClock
    }

    fn rng(&self) -> &OsRng {
        &OsRng
    }

    fn connect(&self, cfg: &RedisConfig) -> SpinLink {
        SpinLink::new(cfg)
    }
}

/// What a handler is given in the guest.
pub type Cx = Ctx<SpinEnv>;
/// A component's route table.
pub type Routes = &'static [Route<Handler<SpinEnv>>];

pub async fn serve(routes: Routes, req: IncomingRequest, out: ResponseOutparam) {
    let env = SpinEnv::default();
    let out = Responder { out, host: host_id(&env.vars) };
    let pq = req.path_with_query().unwrap_or_else(|| "/".into());
    let (path, query) = pq.split_once('?').map(|(p, q)| (p.to_owned(), q.to_owned())).unwrap_or((pq, String::new()));
    let head = Request {
        method: req.method().to_string(),
        path,
        query,
        headers: req.headers().entries().into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect(),
        body: Vec::new(),
    };
    let found = head.check_header_limits().and_then(|()| dispatch(routes, &head.method, &head.path));
    let (route, params) = match found {
        Ok(f) => f,
        Err(p) => {
            discard_body(req).await;
            return out.send(p.to_response()).await;
        }
    };
    let limit = match route.body_limit.resolve(&env.vars) {
        Ok(l) => l,
        Err(e) => {
            discard_body(req).await;
            return out.send(Problem::from(e).to_response()).await;
        }
    };
    // A GET or HEAD that declares no body has none: its (empty) body is read
    // after the handler, as the last wait before the answer (see the module
    // doc). Anything else is read first, so a 413 comes before any effect.
    let later = matches!(route.handler, Handler::Full(_)) && declares_no_body(&head);
    let (body, unread) = if later {
        (Vec::new(), Some(req))
    } else {
        match read_body(req, limit).await {
            Ok(b) => (b, None),
            Err(p) => return out.send(p.to_response()).await,
        }
    };
    let cx = Ctx::new(Request { body, ..head }, params, limit, env);
    match route.handler {
        Handler::Full(h) => {
            let mut resp = h(cx).await.unwrap_or_else(|p| p.to_response());
            if let Some(req) = unread {
                // An HTTP/2 GET may carry a body without saying so.
                if let Err(p) = read_body(req, limit).await {
                    resp = p.to_response();
                }
            }
            out.send(resp).await
        }
        Handler::Stream(h) => h(cx, out).await,
    }
}

/// A GET or HEAD without `Content-Length` (or with 0) and without
/// `Transfer-Encoding`: HTTP/1.1 framing says its body is empty.
fn declares_no_body(head: &Request) -> bool {
    matches!(head.method.as_str(), "GET" | "HEAD")
        && head.header("transfer-encoding").is_none()
        && head.header("content-length").is_none_or(|n| n.trim() == "0")
}

/// The body, read up to `limit` + 1 bytes: one more than the limit is a 413.
async fn read_body(req: IncomingRequest, limit: usize) -> Result<Vec<u8>, Problem> {
    let mut body = Vec::new();
    let mut stream = req.into_body_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        body.extend_from_slice(&chunk);
        if body.len() > limit {
            return Err(Problem::payload_too_large(limit));
        }
    }
    Ok(body)
}

/// Reads a body the answer does not need to its end, up to 64 KiB: Spin
/// spends about as much again as the whole request (a floor component's
/// `/ok`) on a request whose body the guest left unread, even an empty one
/// (docs/benchmarks.md, "Where a request's time goes"). A larger body is
/// left where it is.
async fn discard_body(req: IncomingRequest) {
    let _ = read_body(req, 64 * 1024).await;
}

/// The host's response channel, and the `Spindle-Host` its answers carry.
pub struct Responder {
    out: ResponseOutparam,
    host: Option<String>,
}

impl Responder {
    /// Sends a whole response.
    pub async fn send(self, r: Response) {
        let (resp, body) = outgoing(with_host(r, self.host));
        let _ = self.out.set_with_body(resp, body).await;
    }

    /// Sends the status and headers of `head` (its body is ignored) and
    /// returns the sink the body is written to as it is produced.
    pub fn stream(self, head: Response) -> BodySink {
        let (resp, _) = outgoing(with_host(head, self.host));
        let sink = BodySink(Box::pin(resp.take_body()));
        self.out.set(resp);
        sink
    }
}

fn outgoing(r: Response) -> (OutgoingResponse, Vec<u8>) {
    let headers: Vec<(String, Vec<u8>)> = r.headers.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
    let resp = OutgoingResponse::new(Fields::from_list(&headers).unwrap_or_else(|_| Fields::new()));
    let _ = resp.set_status_code(r.status);
    (resp, r.body)
}

/// A streaming response body.
pub struct BodySink(std::pin::Pin<Box<dyn futures::Sink<Vec<u8>, Error = wasi::io::streams::StreamError>>>);

impl crate::notify::Sink for BodySink {
    async fn send(&mut self, chunk: Vec<u8>) -> bool {
        self.0.send(chunk).await.is_ok()
    }
}

/// The `host_id` variable, when set to 1–64 visible ASCII characters
/// (anything else is ignored: no header).
fn host_id(vars: &SpinVars) -> Option<String> {
    vars.optional("host_id").filter(|h| !h.is_empty() && h.len() <= 64 && h.bytes().all(|b| b.is_ascii_graphic()))
}

/// Adds `Spindle-Host: <host_id>` (which host answered) when `host_id` is set.
fn with_host(r: Response, host: Option<String>) -> Response {
    match host {
        Some(h) if r.header("spindle-host").is_none() => r.with_header("spindle-host", h),
        _ => r,
    }
}
