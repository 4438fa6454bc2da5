//! The runner end to end: Spin's routing, headers, variables, outbound
//! checks (Redis, HTTP, wasi:sockets), traps, SQLite, the Redis trigger,
//! connection reuse and concurrency. Each assertion holds on Spin 4.0.2 too
//! (the runner is a stand-in for `spin up`); what Spin does is noted where
//! it is not obvious.

use serde_json::Value;
use spindle_e2e::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn testbed(redis: &Redis, extra: RunnerOpts<'static>) -> Runner {
    let mut opts = extra;
    opts.variables.push(("redis_host", redis.authority()));
    opts.variables.push(("redis_trigger_url", redis.url()));
    if !opts.variables.iter().any(|(k, _)| *k == "secret_thing") && !opts.env.iter().any(|(k, _)| *k == "SPIN_VARIABLE_SECRET_THING") {
        opts.variables.push(("secret_thing", "s3cret".into()));
    }
    Runner::start(&fixture("testbed.toml"), opts)
}

async fn get_json(url: &str) -> (u16, Value) {
    let r = http().get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn routes_exact_wildcard_and_params_with_spin_headers() {
    let redis = Redis::start();
    let rt = testbed(&redis, RunnerOpts::default());

    let (s, v) = get_json(&rt.url("/tb/exact")).await;
    assert_eq!((s, v["component"].as_str()), (200, Some("exact")), "exact beats wildcard");

    let (_, v) = get_json(&rt.url("/tb/a/b?x=1")).await;
    assert_eq!(v["component"], "tb");
    let h = &v["headers"];
    assert_eq!(h["spin-path-info"], "/a/b");
    assert_eq!(h["spin-matched-route"], "/tb/...");
    assert_eq!(h["spin-raw-component-route"], "/tb/...");
    assert_eq!(h["spin-component-route"], "/tb");
    assert_eq!(h["spin-full-url"], format!("http://127.0.0.1:{}/tb/a/b?x=1", rt.port));
    assert!(h["spin-client-addr"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(v["query"], "x=1");

    let (_, v) = get_json(&rt.url("/tb")).await;
    assert_eq!((v["component"].as_str(), v["headers"]["spin-path-info"].as_str()), (Some("tb"), Some("")));
    // Spin keeps a trailing slash in the trailing wildcard's capture.
    let (_, v) = get_json(&rt.url("/tb/")).await;
    assert_eq!(v["headers"]["spin-path-info"], "/");
    let (_, v) = get_json(&rt.url("/tb/a/b/")).await;
    assert_eq!(v["headers"]["spin-path-info"], "/a/b/");

    let (_, v) = get_json(&rt.url("/users/42")).await;
    assert_eq!(v["component"], "user");
    assert_eq!(v["headers"]["spin-path-match-id"], "42");

    let (_, v) = get_json(&rt.url("/users/7/files/x/y.txt")).await;
    assert_eq!(v["component"], "files");
    assert_eq!(v["headers"]["spin-path-match-id"], "7");
    assert_eq!(v["headers"]["spin-path-info"], "/x/y.txt");

    // The host's value comes after a client's, and spin-sdk reads the last
    // one: a client cannot forge what the host asserts. A spin-* header the
    // host does not set passes through, as on Spin.
    let r = http().get(rt.url("/tb/x")).header("spin-client-addr", "6.6.6.6:1").header("spin-path-match-zz", "sent").send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert!(v["headers"]["spin-client-addr"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(v["headers"]["spin-path-match-zz"], "sent");
}

/// Spin's own answers: an empty 404 (the app's conventions are the app's
/// business: a catch-all route), and its well-known routes.
#[tokio::test]
async fn unknown_route_is_an_empty_404_and_well_known_routes_answer() {
    let redis = Redis::start();
    let rt = testbed(&redis, RunnerOpts::default());
    for path in ["/nope", "/users", "/users/1/edit", "/tbx", "/.well-known/spin/nope"] {
        let r = http().get(rt.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert!(r.headers().get("content-type").is_none(), "{path}");
        assert_eq!(r.text().await.unwrap(), "", "{path}");
    }
    let r = http().get(rt.url("/.well-known/spin/health")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (200, "OK".to_string()));
    let (s, v) = get_json(&rt.url("/.well-known/spin/info")).await;
    assert_eq!((s, v["name"].as_str()), (200, Some("testbed")));
}

#[tokio::test]
async fn variables_from_cli_env_and_defaults() {
    let redis = Redis::start();
    let rt = testbed(
        &redis,
        RunnerOpts {
            variables: vec![("greeting", "hi".into())],
            env: vec![("SPIN_VARIABLE_SECRET_THING", "from-env".into())],
            ..Default::default()
        },
    );
    let (s, v) = get_json(&rt.url("/tb/var?name=greeting")).await;
    assert_eq!((s, v["value"].as_str()), (200, Some("hi from tb")));
    let (_, v) = get_json(&rt.url("/tb/var?name=secret_thing")).await;
    assert_eq!(v["value"], "from-env");
    let (s, _) = get_json(&rt.url("/tb/var?name=not_declared")).await;
    assert_eq!(s, 404, "undeclared component variables are undefined");

    // --variable beats the environment.
    let rt2 = testbed(
        &redis,
        RunnerOpts {
            variables: vec![("secret_thing", "from-cli".into())],
            env: vec![("SPIN_VARIABLE_SECRET_THING", "from-env".into()), ("SPIN_VARIABLE_GREETING", "hey".into())],
            ..Default::default()
        },
    );
    let (_, v) = get_json(&rt2.url("/tb/var?name=secret_thing")).await;
    assert_eq!(v["value"], "from-cli");
    let (_, v) = get_json(&rt2.url("/tb/var?name=greeting")).await;
    assert_eq!(v["value"], "hey from tb");
}

#[tokio::test]
async fn missing_required_variable_and_unknown_fields_stop_start_up() {
    let err = Runner::try_start(&fixture("testbed.toml"), RunnerOpts::default()).err().expect("must not start");
    assert!(err.contains("secret_thing"), "{err}");
    if HostKind::current() == HostKind::Spin {
        // Spin supports key-value stores; refusing what it cannot serve is
        // the runner's own rule, so the rest is the runner's alone.
        return;
    }

    let dir = std::env::temp_dir().join(format!("spindle-manifest-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("spin.toml");
    std::fs::write(
        &bad,
        "spin_manifest_version = 2\n[application]\nname = \"x\"\n[component.a]\nsource = \"a.wasm\"\nkey_value_stores = [\"default\"]\n",
    )
    .unwrap();
    let err = Runner::try_start(&bad, RunnerOpts::default()).err().expect("must not start");
    assert!(err.contains("key_value_stores"), "the error names the field: {err}");
}

#[tokio::test]
async fn outbound_hosts_are_enforced() {
    let redis = Redis::start();
    let other = Redis::start();
    let rt = testbed(&redis, RunnerOpts::default());

    let (s, v) = get_json(&rt.url(&format!("/tb/dial?addr={}", redis.url()))).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = get_json(&rt.url(&format!("/tb/dial?addr={}", other.url()))).await;
    assert_eq!(s, 502, "a Redis not on the list is refused: {v}");
    let clients: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut other.conn().await).await.unwrap();
    assert_eq!(clients.lines().count(), 1, "only our own probe connected to the other Redis: {clients}");

    // Outbound HTTP: allowed to 127.0.0.1:*, not to localhost.
    let (s, v) = get_json(&rt.url(&format!("/tb/fetch?url=http://127.0.0.1:{}/healthz", rt.port))).await;
    assert_eq!((s, v["status"].as_u64()), (200, Some(200)), "{v}");
    let (s, v) = get_json(&rt.url(&format!("/tb/fetch?url=http://localhost:{}/healthz", rt.port))).await;
    assert_eq!(s, 502, "{v}");
    // Denials are logged in Spin's words.
    let log = rt.log();
    assert!(log.contains(&format!("disallowed destination 'redis://127.0.0.1:{}'", other.port)), "{log}");
    assert!(log.contains(&format!("disallowed destination 'http://localhost:{}'", rt.port)), "{log}");
}

/// `fermyon:spin/redis` dials a new connection on every `open`, as Spin
/// does (no pool), so Redis counts one connection per request.
#[tokio::test]
async fn each_outbound_redis_open_is_a_new_connection() {
    let redis = Redis::start();
    let rt = testbed(&redis, RunnerOpts::default());
    let (s, v) = get_json(&rt.url(&format!("/tb/dial?addr={}", redis.url()))).await;
    assert_eq!(s, 200, "{v}");
    let before = connections_received(&redis).await;
    for _ in 0..20 {
        let (s, v) = get_json(&rt.url(&format!("/tb/dial?addr={}", redis.url()))).await;
        assert_eq!(s, 200, "{v}");
    }
    let after = connections_received(&redis).await;
    assert_eq!(after - before, 21, "one connection per request, and the second INFO's own");
}

/// Redis's count of connections accepted so far (this probe's included).
async fn connections_received(redis: &Redis) -> i64 {
    let info: String = redis::cmd("INFO").arg("stats").query_async(&mut redis.conn().await).await.unwrap();
    info.lines().find_map(|l| l.strip_prefix("total_connections_received:")).unwrap().trim().parse().unwrap()
}

/// wasi:sockets TCP, as on Spin 4: `connect` is allowed by
/// `tcp://<ip>:<port>` in allowed_outbound_hosts and refused elsewhere;
/// name lookup is refused outright.
#[tokio::test]
async fn wasi_sockets_connect_follows_allowed_outbound_hosts_and_names_do_not_resolve() {
    let (redis, other) = (Redis::start(), Redis::start());
    let rt = testbed(&redis, RunnerOpts { variables: vec![("tcp_target", format!("127.0.0.1:{}", redis.port))], ..Default::default() });

    let (s, v) = get_json(&rt.url(&format!("/tb/tcp?addr=127.0.0.1:{}", redis.port))).await;
    assert_eq!((s, v["reply"].as_str()), (200, Some("+PONG")), "{v}");

    let (s, v) = get_json(&rt.url(&format!("/tb/tcp?addr=127.0.0.1:{}", other.port))).await;
    assert_eq!((s, v["error"].as_str()), (502, Some("access-denied")), "{v}");
    let clients: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut other.conn().await).await.unwrap();
    assert_eq!(clients.lines().count(), 1, "only our own probe connected to the other Redis: {clients}");
    assert!(rt.log().contains(&format!("disallowed destination 'tcp://127.0.0.1:{}'", other.port)), "{}", rt.log());

    let (s, v) = get_json(&rt.url("/tb/resolve?name=localhost")).await;
    assert_eq!((s, v["error"].as_str()), (502, Some("permanent-resolver-failure")), "{v}");
}

/// Outbound HTTP reuses its connections across requests, as Spin's pooled
/// client does: ten requests from ten instances reach a server over one
/// connection.
#[tokio::test]
async fn outbound_http_connections_are_pooled_across_requests() {
    let redis = Redis::start();
    let rt = testbed(&redis, RunnerOpts::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let server = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let ok = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(b"ok"))))
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), ok).await;
            });
        }
    });
    for i in 0..10 {
        let (s, v) = get_json(&rt.url(&format!("/tb/fetch?url=http://127.0.0.1:{port}/{i}"))).await;
        assert_eq!((s, v["status"].as_u64()), (200, Some(200)), "{v}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one pooled connection for ten requests");
    server.abort();
}

/// The guest's request-options bound outbound HTTP as on Spin: a server
/// that never answers is `connection-read-timeout` once the first-byte
/// timeout passes, and one that stalls mid-body fails the body read then.
/// (Spin reports that body error as `connection-read-timeout` too; through
/// wasmtime 48 a body error carries no `http-error-code`.)
#[tokio::test]
async fn outbound_http_honours_the_guests_timeouts() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let redis = Redis::start();
    let rt = testbed(&redis, RunnerOpts::default());
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let stalling = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stalling_port = stalling.local_addr().unwrap().port();
    let servers = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            tokio::select! {
                Ok((s, _)) = silent.accept() => held.push(s),
                Ok((mut s, _)) = stalling.accept() => {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nab").await;
                    held.push(s);
                }
            }
        }
    });
    for (port, failing) in [(silent_port, "response"), (stalling_port, "body")] {
        let started = Instant::now();
        let (s, v) = get_json(&rt.url(&format!("/tb/timed-get?url=http://127.0.0.1:{port}/&timeout_ms=300"))).await;
        let took = started.elapsed();
        assert_eq!(s, 502, "{v}");
        let error = v["error"].as_str().unwrap_or_default();
        assert!(error.starts_with(failing), "{failing}: {v}");
        if failing == "response" {
            assert!(error.contains("ConnectionReadTimeout"), "{v}");
        }
        assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(5), "{failing}: {took:?}");
    }
    servers.abort();
}

/// A trap is Spin's bare 500: no body, nothing of the error for the client.
#[tokio::test]
async fn a_trap_is_an_empty_500_and_the_runner_keeps_serving() {
    let redis = Redis::start();
    let rt = testbed(&redis, RunnerOpts::default());
    let r = http().get(rt.url("/tb/trap")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert!(r.headers().get("content-type").is_none());
    assert_eq!(r.text().await.unwrap(), "");
    let (s, _) = get_json(&rt.url("/tb/ok")).await;
    assert_eq!(s, 200);
    assert!(rt.log().contains("trap requested"), "the component's panic message is in the log");
}

#[tokio::test]
async fn sqlite_default_database_persists_across_requests() {
    let redis = Redis::start();
    let dir = std::env::temp_dir().join(format!("spindle-sqlite-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let rc = dir.join("runtime-config.toml");
    std::fs::write(&rc, format!("[sqlite_database.default]\ntype = \"spin\"\npath = \"{}\"\n", dir.join("db.sqlite").display())).unwrap();
    let rt = testbed(&redis, RunnerOpts { runtime_config: Some(rc), ..Default::default() });
    let (_, a) = get_json(&rt.url("/tb/sqlite")).await;
    let (_, b) = get_json(&rt.url("/tb/sqlite")).await;
    assert_eq!((a["count"].as_i64(), b["count"].as_i64()), (Some(1), Some(2)));
    assert!(dir.join("db.sqlite").exists());
}

async fn received(redis: &Redis) -> Vec<String> {
    redis::cmd("LRANGE").arg("testbed:received").arg(0).arg(-1).query_async(&mut redis.conn().await).await.unwrap()
}

/// Publishes until a subscriber hears it (the trigger subscribes while the app starts).
async fn publish_until_seen(redis: &Redis, msg: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let subscribers: i64 = redis::cmd("PUBLISH").arg("testbed-events").arg(msg).query_async(&mut redis.conn().await).await.unwrap();
        if subscribers > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the trigger never subscribed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Redis trigger delivers; when its Redis goes away the whole app
/// stops, as `spin up` does (the exit status is checked in runner_exits.rs).
#[tokio::test]
async fn redis_trigger_delivers_and_the_app_stops_when_its_redis_goes() {
    let mut redis = Redis::start();
    let rt = testbed(&redis, RunnerOpts::default());
    publish_until_seen(&redis, "one").await;
    wait_until(|| async { received(&redis).await == vec!["one".to_string()] }).await;
    let (s, _) = get_json(&rt.url("/tb/ok")).await;
    assert_eq!(s, 200);

    redis.stop();
    wait_until(|| async { std::net::TcpStream::connect(("127.0.0.1", rt.port)).is_err() }).await;
}

/// Spin hands a subscriber's messages to the component one at a time: a
/// burst of slow messages never overlaps.
#[tokio::test]
async fn redis_trigger_handles_one_message_at_a_time() {
    let redis = Redis::start();
    let rt = testbed(&redis, RunnerOpts::default());
    publish_until_seen(&redis, "first").await;
    let mut conn = redis.conn().await;
    for _ in 0..6 {
        let _: i64 = redis::cmd("PUBLISH").arg("testbed-events").arg("slow:150").query_async(&mut conn).await.unwrap();
    }
    wait_until(|| async { received(&redis).await.len() == 7 }).await;
    let seen: Vec<i64> = redis::cmd("LRANGE").arg("testbed:concurrency").arg(0).arg(-1).query_async(&mut conn).await.unwrap();
    assert_eq!(seen, vec![1; 7], "handlers running at once, as each one saw it");
    let _ = rt;
}

async fn wait_until<F, Fut>(mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(Instant::now() < deadline, "condition not met in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn two_hundred_concurrent_requests_all_succeed() {
    let redis = Redis::start();
    let rt = testbed(&redis, RunnerOpts::default());
    let client = http();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let client = client.clone();
            let url = if i % 2 == 0 { rt.url("/healthz") } else { rt.url(&format!("/tb/n/{i}")) };
            tokio::spawn(async move { client.get(url).send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 200);
}
