//! `/healthz` and the app's own 404, through the real spin.toml, on both transports.

use serde_json::Value;
use spindle_e2e::*;
use std::time::{Duration, Instant};

both_transports!(healthz_is_200_then_503_when_redis_stops_then_200_again, |mut b: Backend| async move {
    let rt = b.app(&[]);
    let r = http().get(rt.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["redis"]["transport"], b.transport.name());
    assert!(v["redis"]["latency_ms"].as_f64().unwrap() >= 0.0);

    b.stop_redis();
    let started = Instant::now();
    let r = http().get(rt.url("/healthz")).send().await.unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], 503);
    assert!(took <= Duration::from_secs(2), "answered in {took:?}");

    b.restart_redis();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = http().get(rt.url("/healthz")).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover once Redis was back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
});

both_transports!(healthz_costs_one_redis_command, |b: Backend| async move {
    let rt = b.app(&[]);
    http().get(rt.url("/healthz")).send().await.unwrap();
    let before = command_count(&b.redis).await;
    for _ in 0..10 {
        assert_eq!(http().get(rt.url("/healthz")).send().await.unwrap().status(), 200);
    }
    assert_eq!(command_count(&b.redis).await - before, 10, "one PING per request");
});

both_transports!(unknown_routes_and_methods_get_problem_json, |b: Backend| async move {
    let rt = b.app(&[]);
    let r = http().get(rt.url("/definitely/not/here")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "urn:spindle:problem:not-found");
    let r = http().post(rt.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 405);
});

#[tokio::test]
async fn a_wrong_rest_token_is_a_503_not_a_hang_or_500() {
    let b = Backend::start(Transport::Rest);
    let rt = b.app(&[("redis_token", "wrong".into())]);
    let r = http().get(rt.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
}
