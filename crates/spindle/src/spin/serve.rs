//! A component's route table over Spin's `wasi:http` incoming handler.
//!
//! [`serve`] reads the method, path and headers, checks the header limits
//! (431), finds the route (404, or 405 with `Allow`) before reading any body,
//! then reads the body as a stream up to the route's limit: one byte more is
//! a 413, and the rest is never read, so a large body costs no memory. The
//! handler's answer is sent with `Spindle-Host` when `host_id` is set; a
//! streaming handler (SSE) gets the [`Responder`] instead.

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
#[derive(Clone, Copy, Debug, Default)]
pub struct SpinEnv;

impl Env for SpinEnv {
    type Vars = SpinVars;
    type Link = SpinLink;
    type Clock = SystemClock;
    type Rng = OsRng;
    type Responder = Responder;

    fn vars(&self) -> &SpinVars {
        &SpinVars
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
        Err(p) => return Responder(out).send(p.to_response()).await,
    };
    let limit = match route.body_limit.resolve(&SpinVars) {
        Ok(l) => l,
        Err(e) => return Responder(out).send(Problem::from(e).to_response()).await,
    };
    let body = match read_body(req, limit).await {
        Ok(b) => b,
        Err(p) => return Responder(out).send(p.to_response()).await,
    };
    let cx = Ctx::new(Request { body, ..head }, params, limit, SpinEnv);
    match route.handler {
        Handler::Full(h) => {
            let resp = h(cx).await.unwrap_or_else(|p| p.to_response());
            Responder(out).send(resp).await
        }
        Handler::Stream(h) => h(cx, Responder(out)).await,
    }
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

/// The host's response channel.
pub struct Responder(ResponseOutparam);

impl Responder {
    /// Sends a whole response.
    pub async fn send(self, r: Response) {
        let (resp, body) = outgoing(r);
        let _ = self.0.set_with_body(resp, body).await;
    }

    /// Sends the status and headers of `head` (its body is ignored) and
    /// returns the sink the body is written to as it is produced.
    pub fn stream(self, head: Response) -> BodySink {
        let (resp, _) = outgoing(head);
        let sink = BodySink(Box::pin(resp.take_body()));
        self.0.set(resp);
        sink
    }
}

fn outgoing(r: Response) -> (OutgoingResponse, Vec<u8>) {
    let r = with_host(r);
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
fn host_id() -> Option<String> {
    spin_sdk::variables::get("host_id").ok().filter(|h| !h.is_empty() && h.len() <= 64 && h.bytes().all(|b| b.is_ascii_graphic()))
}

/// Adds `Spindle-Host: <host_id>` (which host answered) when `host_id` is set.
fn with_host(r: Response) -> Response {
    match host_id() {
        Some(h) if r.header("spindle-host").is_none() => r.with_header("spindle-host", h),
        _ => r,
    }
}
