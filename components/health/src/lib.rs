//! `GET /healthz`: is this host up, and can it reach Redis?
//!
//! Opens the Redis link, times one PING, and reports the transport and the
//! round-trip latency. Load balancers take a 503 as "take me out".
//! This component also owns the catch-all route, so unknown paths get a
//! problem+json 404 from the app itself, identically on Spin and the runner.

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_component;
use spindle::config::RedisConfig;
use spindle::http::{Problem, Response};
use spindle::redis::{Cmd, Link};
use spindle::spin::{serve, SpinLink, SpinVars};

#[http_component]
async fn handle(req: Request) -> impl IntoResponse {
    serve(req, health).await
}

async fn health(req: spindle::http::Request) -> Result<Response, Problem> {
    if req.path != "/healthz" {
        return Err(Problem::not_found(&req.path));
    }
    if !matches!(req.method.as_str(), "GET" | "HEAD") {
        return Err(Problem::method_not_allowed(&req.method).with_header("allow", "GET, HEAD"));
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
