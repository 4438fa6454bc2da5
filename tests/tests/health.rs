//! `/healthz` and the app's own 404, through the real spin.toml.

use serde_json::Value;
use spindle_e2e::*;
use std::time::{Duration, Instant};

fn app(redis: &Redis) -> Runner {
    Runner::start(
        &app_manifest(),
        RunnerOpts { variables: vec![("redis_url", redis.url()), ("redis_origin", redis.url())], ..Default::default() },
    )
}

#[tokio::test]
async fn healthz_is_200_then_503_when_redis_stops_then_200_again() {
    let mut redis = Redis::start();
    let rt = app(&redis);
    let r = http().get(rt.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["redis"]["transport"], "tcp");
    assert!(v["redis"]["latency_ms"].as_f64().unwrap() >= 0.0);

    redis.stop();
    let started = Instant::now();
    let r = http().get(rt.url("/healthz")).send().await.unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], 503);
    assert!(took <= Duration::from_secs(2), "answered in {took:?}");

    redis.restart();
    let r = http().get(rt.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "recovers once Redis is back");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_problem_json() {
    let redis = Redis::start();
    let rt = app(&redis);
    let r = http().get(rt.url("/definitely/not/here")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "urn:spindle:problem:not-found");
    let r = http().post(rt.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 405);
}
