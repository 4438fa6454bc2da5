//! `/api/*`: rate-limited routes, keyspace-compatible with @upstash/ratelimit.
//!
//! - `GET /api/ping`: costs 1.
//! - `GET /api/quota`: what is left, without spending any (a peek).
//! - `POST /api/echo`: answers the body back; costs 1 per started KiB (at
//!   least 1), and a body over `api_echo_max_bytes` is a 413 before any
//!   Redis call.
//!
//! Every route is one Redis round trip (one EVALSHA), two for a logged-in
//! caller (the session GET first). The limit is counted against the
//! caller: the session user, else a known API key, else the client address
//! (`Cx::caller`). Policies, headers and failure modes live in
//! `spindle::ratelimit`; this file only routes and maps.

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use spindle::caller::Caller;
use spindle::http::router::BodyLimit;
use spindle::http::{Problem, Response};
use spindle::ratelimit::{cost_per_kib, Limited, Throttle};
use spindle::spin::{serve, Cx, Routes};

/// `POST /api/echo`'s body: `api_echo_max_bytes`, 64 KiB unless set, at most 16 MiB.
const ECHO_BODY: BodyLimit = BodyLimit::Var { name: "api_echo_max_bytes", default: 64 * 1024, max: 16 * 1024 * 1024 };

const ROUTES: Routes = spindle::routes![
    GET|HEAD "/api/ping" => ping,
    GET|HEAD "/api/quota" => quota,
    POST "/api/echo" (ECHO_BODY) => echo,
];

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(ROUTES, req, out).await
}

/// Spends `cost` of the caller's budget and answers `resp` with the
/// rate-limit headers (and a rolling session refresh, if any).
async fn limited(cx: &Cx, cost: i64, resp: Response) -> Result<Response, Problem> {
    let throttle = Throttle::api(cx.vars())?;
    let caller = cx.caller().await?;
    let limited = throttle.check(cx.link()?, cx.clock(), &caller.identity(), cost).await?;
    Ok(caller.apply(limited.apply(resp.with_header("cache-control", "no-store"))))
}

async fn ping(cx: Cx) -> Result<Response, Problem> {
    limited(&cx, 1, Response::json(200, &serde_json::json!({ "pong": true }))).await
}

async fn echo(cx: Cx) -> Result<Response, Problem> {
    let cost = cost_per_kib(cx.req.body.len());
    let resp = Response {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/octet-stream".into()),
            ("x-content-type-options".into(), "nosniff".into()),
        ],
        body: cx.req.body.clone(),
    };
    limited(&cx, cost, resp).await
}

async fn quota(cx: Cx) -> Result<Response, Problem> {
    let throttle = Throttle::api(cx.vars())?;
    let caller = cx.caller().await?;
    let limited = throttle.peek(cx.link()?, cx.clock(), &caller.identity()).await?;
    let body = quota_body(&throttle, &caller, &limited);
    Ok(caller.apply(limited.apply(Response::json(200, &body).with_header("cache-control", "no-store"))))
}

fn quota_body(throttle: &Throttle, caller: &Caller, limited: &Limited) -> serde_json::Value {
    let d = limited.decision.as_ref();
    serde_json::json!({
        "policy": throttle.policy.name,
        "algorithm": throttle.policy.algorithm.to_string(),
        "identity": caller.identity().kind(),
        "limit": d.map(|d| d.limit),
        "remaining": d.map(|d| d.remaining),
        "reset_ms": d.map(|d| d.reset_ms),
    })
}
