//! Faults, where real Spin and a stand-in could differ: a Redis that never
//! answers, Redis down at start-up, the worker's trigger losing Redis, a
//! Redis restart under load, and how many Redis connections a request
//! opens. Each runs on the host `SPINDLE_HOST` picks, and asserts what the
//! README's failure table promises for it.

use serde_json::{json, Value};
use spindle_e2e::*;
use std::time::{Duration, Instant};

const SECRET: &str = "e2e-faults-secret-0123456789ab";

/// A logged-in session written straight into Redis (as connect-redis
/// would), and its cookie.
async fn session(redis: &Redis, id: i64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let sid = format!("faults{id}x{now}");
    let value = json!({
        "cookie": { "originalMaxAge": 86_400_000u64, "expires": spindle::session::to_iso(now + 86_400_000), "httpOnly": true, "path": "/" },
        "user": { "id": id, "username": format!("user{id}") },
        "spindle": { "created_at": now, "last_seen": now },
    });
    let _: () = redis::cmd("SET").arg(format!("sess:{sid}")).arg(value.to_string()).arg("EX").arg(86_400).query_async(&mut redis.conn().await).await.unwrap();
    format!("connect.sid={}", spindle::session::cookie::wire_value(&sid, SECRET))
}

/// The status of one request, and how long it took; `None` when no answer
/// came within `within`.
async fn timed(rb: reqwest::RequestBuilder, within: Duration) -> (Option<u16>, Duration) {
    let started = Instant::now();
    let status = rb.timeout(within).send().await.ok().map(|r| r.status().as_u16());
    (status, started.elapsed())
}

/// The app pointed at a Redis that accepts connections and never answers:
/// directly over TCP, or through the gateway over REST.
fn app_on_black_hole(hole: &BlackHole, transport: Transport, extra: &[(&'static str, String)]) -> (Runner, Option<Gateway>, TempDir) {
    let db = TempDir::new();
    let gateway = (transport == Transport::Rest).then(|| Gateway::start(&format!("redis://{}", hole.authority())));
    let mut variables = match (&gateway, transport) {
        (Some(g), _) => g.app_variables(),
        (None, Transport::TcpByName) => vec![("redis_host", format!("localhost:{}", hole.port))],
        (None, _) => vec![("redis_host", hole.authority())],
    };
    variables.push(("session_secrets", SECRET.into()));
    variables.extend(extra.iter().cloned());
    let rt = Runner::start(&app_manifest(), RunnerOpts { variables, runtime_config: Some(db.runtime_config()), ..Default::default() });
    (rt, gateway, db)
}

fn black_hole_answers_within_the_bound(transport: Transport) -> impl std::future::Future<Output = ()> {
    async move {
        let hole = BlackHole::start();
        let bound = Duration::from_millis(1000);
        let extra = [("redis_timeout_ms", bound.as_millis().to_string())];
        let (rt, _gw, _db) = app_on_black_hole(&hole, transport, &extra);
        let mut closed_extra = extra.to_vec();
        closed_extra.push(("api_rate_limit_failure", "fail_closed".into()));
        let (closed, _gw2, _db2) = app_on_black_hole(&hole, transport, &closed_extra);
        // A validly signed cookie: checking it needs Redis.
        let cookie = format!("connect.sid={}", spindle::session::cookie::wire_value("faultsStuck", SECRET));
        let publish = json!({ "topic": "t", "event": "e" });
        // What each component's documented policy answers while Redis is stuck.
        let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
            ("healthz", http().get(rt.url("/healthz")), 503),
            ("api ping, fail_open (default)", http().get(rt.url("/api/ping")), 200),
            ("api ping, fail_closed", http().get(closed.url("/api/ping")), 503),
            ("session check (fails closed)", http().get(rt.url("/auth/me")).header("cookie", &cookie), 503),
            ("users read (falls back to the database)", http().get(rt.url("/users/1")), 404),
            ("notify publish (fails closed)", http().post(rt.url("/notify/publish")).header("cookie", &cookie).json(&publish), 503),
        ];
        for (what, rb, expected) in cases {
            let (status, took) = timed(rb, Duration::from_secs(10)).await;
            println!("{} {}: {what} -> {status:?} in {took:?}", transport.name(), HostKind::current().name());
            assert_eq!(status, Some(expected), "{what}");
            // The bound, plus the host's own work (the gateway's 2 s bound
            // is longer than the guest's, which wins).
            assert!(took < bound + Duration::from_millis(800), "{what} took {took:?}");
        }
    }
}

#[tokio::test]
async fn a_black_holed_redis_is_answered_within_the_bound_over_tcp() {
    black_hole_answers_within_the_bound(Transport::Tcp).await
}

#[tokio::test]
async fn a_black_holed_redis_is_answered_within_the_bound_over_rest() {
    black_hole_answers_within_the_bound(Transport::Rest).await
}

/// Spin's own outbound Redis (a Redis named by host name, or rediss) has no
/// timeout: the request is held for as long as the client waits. The
/// README says so; this checks it is still true, so the promise is exact.
#[tokio::test]
async fn spins_outbound_redis_has_no_bound() {
    let hole = BlackHole::start();
    let (rt, _gw, _db) = app_on_black_hole(&hole, Transport::TcpByName, &[("redis_timeout_ms", "500".into())]);
    let (status, took) = timed(http().get(rt.url("/healthz")), Duration::from_secs(3)).await;
    assert_eq!(status, None, "answered {status:?} in {took:?}: if Spin now bounds outbound Redis, update the README");
}

both_transports!(the_app_starts_with_redis_down_and_recovers_without_a_restart, |mut b: Backend| async move {
    b.stop_redis();
    let mut rt = b.app(&[("session_secrets", SECRET.into())]);
    let (status, took) = timed(http().get(rt.url("/healthz")), Duration::from_secs(10)).await;
    assert_eq!(status, Some(503), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    b.restart_redis();
    let deadline = Instant::now() + Duration::from_secs(10);
    while http().get(rt.url("/healthz")).send().await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "no 200 after Redis came up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rt.exited().is_none(), "the host kept running");
});

/// Spin stops an app whose Redis trigger loses Redis, and will not start one
/// whose trigger cannot connect. So the worker is its own app under a
/// supervisor: while Redis is down it exits (and is restarted, and exits
/// again), the HTTP host keeps answering, and once Redis is back the worker
/// subscribes again with nobody's help.
#[tokio::test]
async fn the_worker_stops_with_its_redis_and_comes_back_under_its_supervisor() {
    let mut b = Backend::start(Transport::Tcp);
    let mut rt = b.app(&[("session_secrets", SECRET.into())]);
    let worker = b.worker(&[]);
    assert_eq!(worker.starts(), 1);
    b.stop_redis();
    let deadline = Instant::now() + Duration::from_secs(15);
    while worker.starts() < 2 {
        assert!(Instant::now() < deadline, "the worker kept running without its Redis:\n{}", worker.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(http().get(rt.url("/healthz")).send().await.unwrap().status(), 503, "the HTTP host still answers");
    tokio::time::sleep(Duration::from_secs(1)).await;
    b.restart_redis();
    worker.wait_subscribed(&b.redis, Duration::from_secs(15));
    assert_eq!(http().get(rt.url("/healthz")).send().await.unwrap().status(), 200);
    assert!(rt.exited().is_none(), "the HTTP host never stopped");
    println!("worker starts: {}", worker.starts());
}

/// A Redis restart (with its append-only file, as in production) while two
/// hosts serve a steady load: every request is answered, 503s only while
/// Redis is down, every route serves again soon after, and no host process
/// stops or is restarted.
fn restart_under_load(transport: Transport) -> impl std::future::Future<Output = ()> {
    async move {
        let redis = Redis::start_durable();
        let gateway = (transport == Transport::Rest).then(|| Gateway::start(&redis.url()));
        let mut b = Backend { transport, redis, gateway };
        let db = TempDir::new();
        let start = |b: &Backend| {
            let mut variables = b.variables();
            variables.push(("session_secrets", SECRET.into()));
            variables.push(("redis_timeout_ms", "1000".into()));
            // The load is one client address: a limit it never reaches.
            variables.push(("api_rate_limit", "sliding_window 1000000/60s".into()));
            Runner::start(&app_manifest(), RunnerOpts { variables, runtime_config: Some(db.runtime_config()), ..Default::default() })
        };
        let mut hosts = [start(&b), start(&b)];
        let cookie = session(&b.redis, 7).await;
        let urls: Vec<(String, &str)> = hosts
            .iter()
            .flat_map(|h| [(h.url("/healthz"), "healthz"), (h.url("/auth/me"), "me"), (h.url("/api/ping"), "ping")])
            .collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(Instant, &str, Option<u16>)>::new()));
        let mut load = Vec::new();
        for (url, what) in urls {
            let (stop, log, cookie) = (stop.clone(), log.clone(), cookie.clone());
            load.push(tokio::spawn(async move {
                let c = reqwest::Client::new();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let r = c.get(&url).header("cookie", &cookie).timeout(Duration::from_secs(5)).send().await;
                    log.lock().unwrap().push((Instant::now(), what, r.ok().map(|r| r.status().as_u16())));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let down = Instant::now();
        b.stop_redis();
        tokio::time::sleep(Duration::from_secs(2)).await;
        b.restart_redis();
        let up = Instant::now();
        tokio::time::sleep(Duration::from_secs(4)).await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for t in load {
            t.await.unwrap();
        }
        let log = log.lock().unwrap();
        let unanswered = log.iter().filter(|(_, _, s)| s.is_none()).count();
        assert_eq!(unanswered, 0, "every request got an answer");
        for (at, what, status) in log.iter() {
            let s = status.unwrap();
            let allowed: &[u16] = if *at < down || *at > up + Duration::from_secs(3) {
                &[200]
            } else if *what == "ping" {
                &[200] // fail_open: served unenforced
            } else {
                &[200, 503]
            };
            assert!(allowed.contains(&s), "{what} answered {s} at {:?} after the stop", at.saturating_duration_since(down));
        }
        let outage = log.iter().filter(|(at, w, s)| *at > down && *at < up && *w != "ping" && *s == Some(503)).count();
        assert!(outage > 0, "the outage was seen");
        // Recovery: from Redis's start to the last 503 of a route that needs
        // Redis (every later answer was a 200, as asserted above).
        let last_503 = log.iter().filter(|(at, _, s)| *at > up && *s == Some(503)).map(|(at, _, _)| *at).max().unwrap_or(up);
        println!(
            "{} {}: {} requests, {outage} 503s while down, all 200 again {:?} after Redis started",
            transport.name(),
            HostKind::current().name(),
            log.len(),
            last_503 - up
        );
        for h in &mut hosts {
            assert!(h.exited().is_none(), "a host stopped");
        }
    }
}

#[tokio::test]
async fn a_redis_restart_under_load_leaves_every_host_serving_over_tcp() {
    restart_under_load(Transport::Tcp).await
}

#[tokio::test]
async fn a_redis_restart_under_load_leaves_every_host_serving_over_rest() {
    restart_under_load(Transport::Rest).await
}

/// How many Redis connections `n` requests to `path` open: Redis's own
/// New connections to Redis while `rb` is sent `n` times.
async fn connections_for(redis: &Redis, rb: impl Fn() -> reqwest::RequestBuilder, n: u64) -> u64 {
    let (before, _) = connections_received(redis).await;
    for _ in 0..n {
        let r = rb().send().await.unwrap();
        assert!(r.status().as_u16() < 500, "{}", r.status());
    }
    // Less the connections the second count opened.
    let (after, own) = connections_received(redis).await;
    after - before - own
}

both_transports!(redis_connections_per_request, |b: Backend| async move {
    let rt = b.app(&[("session_secrets", SECRET.into())]);
    let cookie = session(&b.redis, 9).await;
    const N: u64 = 20;
    // Warm up (the gateway dials once, on first use).
    http().get(rt.url("/healthz")).send().await.unwrap();
    let routes: Vec<(&str, Box<dyn Fn() -> reqwest::RequestBuilder>, u64)> = vec![
        ("GET /healthz", Box::new(|| http().get(rt.url("/healthz"))), 1),
        ("GET /auth/me", Box::new(|| http().get(rt.url("/auth/me")).header("cookie", &cookie)), 1),
        ("GET /api/ping", Box::new(|| http().get(rt.url("/api/ping"))), 1),
        ("GET /api/ping (logged in)", Box::new(|| http().get(rt.url("/api/ping")).header("cookie", &cookie)), 1),
        ("GET /users/1 (a miss, then hits)", Box::new(|| http().get(rt.url("/users/1"))), 1),
        ("GET /auth/me (no cookie)", Box::new(|| http().get(rt.url("/auth/me"))), 0),
        ("GET /openapi.json", Box::new(|| http().get(rt.url("/openapi.json"))), 0),
        ("GET /nowhere (404)", Box::new(|| http().get(rt.url("/nowhere"))), 0),
    ];
    // On a cluster the gateway dials each master on first use, and sends
    // keyless commands (the PING) to the masters in turn: reach them all.
    if b.on_cluster() {
        for (_, rb, _) in &routes {
            for _ in 0..3 {
                rb().send().await.unwrap();
            }
        }
    }
    for (what, rb, per_request_tcp) in routes {
        let n = connections_for(&b.redis, &rb, N).await;
        println!("{} {}: {what}: {n} connections for {N} requests", b.transport.name(), HostKind::current().name());
        let expected = match b.transport {
            // One connection per request that uses Redis, opened on first
            // use and reused for the rest of the request.
            Transport::Tcp | Transport::TcpByName => per_request_tcp * N,
            // Spin's pooled outbound HTTP to the gateway, which keeps its
            // own connection: no new Redis connection at all.
            Transport::Rest => 0,
        };
        assert_eq!(n, expected, "{what}");
    }
});

/// Spin refuses a request whose header value is not UTF-8 with its own 500
/// and an empty body, before any component runs (trigger-http's
/// `prepare_request_headers`); the runner does as Spin does. No component
/// sees it, so no Redis command runs.
#[tokio::test]
async fn a_header_that_is_not_utf8_is_refused_by_the_host() {
    let b = Backend::start(Transport::Tcp);
    let rt = b.app(&[("session_secrets", SECRET.into())]);
    let before = command_count(&b.redis).await;
    let r = http()
        .get(rt.url("/healthz"))
        .header("if-match", reqwest::header::HeaderValue::from_bytes(&[0x84]).unwrap())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert_eq!(status, 500, "{body}");
    assert!(serde_json::from_str::<Value>(&body).is_err(), "no problem body from a component: {body:?}");
    assert_eq!(command_count(&b.redis).await, before, "no component ran");
}
