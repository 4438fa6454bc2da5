//! Guest adapters: the only place that touches spin-sdk and WASI.
//!
//! - [`SpinLink`]: the Redis link a component uses, chosen by
//!   `redis_scheme` and `redis_host` ([`RedisConfig`](crate::config::RedisConfig)): RESP over
//!   `wasi:sockets` ([`SocketLink`]) for `redis://<ip>:<port>`, Spin's
//!   outbound Redis ([`OutboundLink`]) for host names and `rediss://`, and
//!   the Upstash REST API over outbound HTTP ([`RestLink`]);
//! - [`SpinVars`]: Spin variables;
//! - [`serve`] and [`into_response`]: library requests and responses to and
//!   from Spin's;
//! - [`sleep_ms`] and [`WasiPause`]: timers on WASI's monotonic clock that
//!   let the other futures of the request run.

mod link;
mod outbound;
mod rest;
mod socket;
mod time;

pub use link::SpinLink;
pub use outbound::OutboundLink;
pub use rest::RestLink;
pub use socket::SocketLink;
pub use time::{sleep_ms, WasiPause};

use crate::config::Vars;
use crate::http::Response;

/// Spin application variables, as declared for the component in `spin.toml`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpinVars;

impl Vars for SpinVars {
    fn get(&self, name: &str) -> Option<String> {
        spin_sdk::variables::get(name).ok()
    }
}

/// Converts a Spin request into the library's request.
pub fn from_spin(req: &spin_sdk::http::Request) -> crate::http::Request {
    let path_and_query = req.path_and_query().unwrap_or("/");
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    crate::http::Request {
        method: req.method().to_string(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers: req.headers().map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec())).collect(),
        body: req.body().to_vec(),
    }
}

/// Runs a handler on a Spin request: converts it, enforces the header
/// limits, and turns a `Problem` into its problem+json response.
pub async fn serve<F, Fut>(req: spin_sdk::http::Request, handler: F) -> spin_sdk::http::Response
where
    F: FnOnce(crate::http::Request) -> Fut,
    Fut: std::future::Future<Output = Result<Response, crate::http::Problem>>,
{
    let req = from_spin(&req);
    let resp = match req.check_header_limits() {
        Err(p) => p.to_response(),
        Ok(()) => handler(req).await.unwrap_or_else(|p| p.to_response()),
    };
    into_response(resp)
}

/// Converts a library response into a Spin response, adding `Spindle-Host`.
pub fn into_response(r: Response) -> spin_sdk::http::Response {
    let r = with_host(r);
    let mut b = spin_sdk::http::Response::builder();
    b.status(r.status);
    for (k, v) in r.headers {
        b.header(k, v);
    }
    b.body(r.body).build()
}

/// The `host_id` variable, when the component declares it and it is set to
/// 1–64 visible ASCII characters (anything else is ignored: no header).
pub fn host_id() -> Option<String> {
    spin_sdk::variables::get("host_id")
        .ok()
        .filter(|h| !h.is_empty() && h.len() <= 64 && h.bytes().all(|b| b.is_ascii_graphic()))
}

/// Adds `Spindle-Host: <host_id>` (which host answered) when `host_id` is set.
/// [`into_response`] does it for every component served through [`serve`];
/// a component that builds its own response calls this first.
pub fn with_host(r: Response) -> Response {
    match host_id() {
        Some(h) if r.header("spindle-host").is_none() => r.with_header("spindle-host", h),
        _ => r,
    }
}

