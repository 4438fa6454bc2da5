//! `/api/*`: rate-limited routes, keyspace-compatible with @upstash/ratelimit.
//!
//! - `GET /api/ping`: costs 1.
//! - `GET /api/quota`: what is left, without spending any (a peek).
//! - `POST /api/echo`: answers the body back; costs 1 per started KiB (at
//!   least 1), and a body over `api_echo_max_bytes` is a 413 before any
//!   Redis call.
//!
//! Every route is one Redis round trip (one EVALSHA). The limit is counted
//! against [`identify`]: the session user, else a known API key, else the
//! client IP. Policies, headers and failure modes live in
//! `spindle::ratelimit`; this file only routes and maps.

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_component;
use spindle::config::{RedisConfig, Vars};
use spindle::env::SystemClock;
use spindle::http::{Problem, Response, NO_BODY_LIMIT};
use spindle::ratelimit::{ApiKeys, Identity, Limited, Throttle};
use spindle::session::{self, SessionConfig, SessionUser};
use spindle::spin::{serve, SpinLink, SpinVars};

/// The unit of `POST /api/echo`'s cost: one per started KiB.
const ECHO_UNIT_BYTES: usize = 1024;
const DEFAULT_ECHO_MAX_BYTES: usize = 64 * 1024;
const MAX_ECHO_MAX_BYTES: usize = 16 * 1024 * 1024;

#[http_component]
async fn handle(req: Request) -> impl IntoResponse {
    serve(req, api).await
}

#[derive(Clone, Copy)]
enum Route {
    Ping,
    Quota,
    Echo,
}

fn route(req: &spindle::http::Request) -> Result<Route, Problem> {
    let (route, allowed): (Route, &[&str]) = match req.path.as_str() {
        "/api/ping" => (Route::Ping, &["GET", "HEAD"]),
        "/api/quota" => (Route::Quota, &["GET", "HEAD"]),
        "/api/echo" => (Route::Echo, &["POST"]),
        _ => return Err(Problem::not_found(&req.path)),
    };
    if !allowed.contains(&req.method.as_str()) {
        return Err(Problem::method_not_allowed(&req.method).with_header("allow", allowed.join(", ")));
    }
    Ok(route)
}

async fn api(req: spindle::http::Request) -> Result<Response, Problem> {
    let route = route(&req)?;
    let vars = SpinVars;
    let cost = match route {
        Route::Echo => echo_cost(&req, &vars)?,
        _ => {
            req.check_body_limit(NO_BODY_LIMIT)?;
            1
        }
    };
    let throttle = Throttle::api(&vars)?;
    let cfg = RedisConfig::from_vars(&vars).map_err(|e| Problem::misconfigured(&e.to_string()))?;
    let link = SpinLink::new(&cfg);
    let (who, session) = identify(&req, &link, &throttle, &vars).await?;
    let clock = SystemClock;
    // A rolling refresh of the session cookie rides on whatever we answer.
    let finish = |r: Response| match &session {
        Some(s) => s.apply(r),
        None => r,
    };

    match route {
        Route::Ping => {
            let limited = throttle.check(&link, &clock, &who, 1).await?;
            Ok(finish(limited.apply(no_store(Response::json(200, &serde_json::json!({ "pong": true }))))))
        }
        Route::Quota => {
            let limited = throttle.peek(&link, &clock, &who).await?;
            Ok(finish(limited.apply(no_store(Response::json(200, &quota_body(&throttle, &who, &limited))))))
        }
        Route::Echo => {
            let limited = throttle.check(&link, &clock, &who, cost).await?;
            let resp = Response {
                status: 200,
                headers: vec![
                    ("content-type".into(), "application/octet-stream".into()),
                    ("x-content-type-options".into(), "nosniff".into()),
                ],
                body: req.body,
            };
            Ok(finish(limited.apply(no_store(resp))))
        }
    }
}

fn no_store(r: Response) -> Response {
    r.with_header("cache-control", "no-store")
}

/// 1 per started KiB, at least 1; 413 above `api_echo_max_bytes`.
fn echo_cost(req: &spindle::http::Request, vars: &impl Vars) -> Result<i64, Problem> {
    let max = match vars.get("api_echo_max_bytes").filter(|s| !s.trim().is_empty()) {
        None => DEFAULT_ECHO_MAX_BYTES,
        Some(s) => {
            s.trim().parse::<usize>().ok().filter(|n| (1..=MAX_ECHO_MAX_BYTES).contains(n)).ok_or_else(|| {
                Problem::misconfigured(&format!(
                    "api_echo_max_bytes: expected an integer in 1..={MAX_ECHO_MAX_BYTES}, got {s:?}"
                ))
            })?
        }
    };
    if req.body.len() > max {
        return Err(Problem::payload_too_large(max));
    }
    Ok(req.body.len().div_ceil(ECHO_UNIT_BYTES).max(1) as i64)
}

/// Who the request counts against. This is the one place that decides:
/// a logged-in user (by the shared session cookie), else a known API key,
/// else the client address.
async fn identify(
    req: &spindle::http::Request,
    link: &SpinLink,
    throttle: &Throttle,
    vars: &impl Vars,
) -> Result<(Identity, Option<SessionUser>), Problem> {
    // The session lookup is one GET, paid only by requests that carry the
    // session cookie. A bad or expired cookie is simply anonymous here; so is
    // a failed lookup, since the limiter applies its own failure policy next.
    // Without session secrets no cookie can be valid: everyone is anonymous.
    if let Ok(cfg) = SessionConfig::from_vars(vars) {
        if session::has_cookie(&cfg, req) {
            if let Ok(s) = session::authenticate(link, &SystemClock, &cfg, req).await {
                return Ok((Identity::User(s.user.id.to_string()), Some(s)));
            }
        }
    }
    let keys = ApiKeys::parse(&vars.get("api_keys").unwrap_or_default())
        .map_err(|e| Problem::misconfigured(&format!("api_keys: {e}")))?;
    if let Some(key) = keys.identify(req)? {
        return Ok((key, None));
    }
    Ok((throttle.client(req), None))
}

fn quota_body(throttle: &Throttle, who: &Identity, limited: &Limited) -> serde_json::Value {
    let d = limited.decision.as_ref();
    serde_json::json!({
        "policy": throttle.policy.name,
        "algorithm": throttle.policy.algorithm.to_string(),
        "identity": who.kind(),
        "limit": d.map(|d| d.limit),
        "remaining": d.map(|d| d.remaining),
        "reset_ms": d.map(|d| d.reset_ms),
    })
}
