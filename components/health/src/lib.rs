//! `GET /healthz`: is this host up, and can it reach Redis?
//!
//! Opens the Redis link, times one PING, and reports the transport and the
//! round-trip latency. Load balancers take a 503 as "take me out".

use spin_sdk::http::{IntoResponse, Method, Request};
use spin_sdk::http_component;
use spindle::config::RedisConfig;
use spindle::http::{Problem, Response};
use spindle::redis::{Cmd, Link};
use spindle::spin::{into_response, SpinLink, SpinVars};

#[http_component]
async fn handle(req: Request) -> impl IntoResponse {
    into_response(health(&req).await.unwrap_or_else(|p| p.to_response()))
}

async fn health(req: &Request) -> Result<Response, Problem> {
    // This component also owns the catch-all route, so unknown paths get a
    // problem+json 404 from the app itself, identically on Spin and the runner.
    if req.path() != "/healthz" {
        return Err(Problem::not_found(req.path()));
    }
    if !matches!(req.method(), Method::Get | Method::Head) {
        return Err(Problem::method_not_allowed(&req.method().to_string()));
    }
    let cfg = RedisConfig::from_vars(&SpinVars).map_err(|e| Problem::misconfigured(&e.to_string()))?;
    let link = SpinLink::new(&cfg);
    let started = std::time::Instant::now();
    match link.exec(&Cmd::new("PING")).await {
        Ok(_) => {
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            let body = serde_json::json!({
                "status": "ok",
                "redis": { "transport": link.transport().as_str(), "latency_ms": (ms * 1000.0).round() / 1000.0 },
            });
            Ok(Response::json(200, &body).with_header("cache-control", "no-store"))
        }
        Err(e) => {
            eprintln!("healthz: {e}");
            Err(Problem::redis_unavailable())
        }
    }
}
