//! The runner end to end: Spin's routing, headers, variables, outbound
//! checks, traps, SQLite, the Redis trigger and concurrency.

use serde_json::Value;
use spindle_e2e::*;
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

    let (_, v) = get_json(&rt.url("/users/42")).await;
    assert_eq!(v["component"], "user");
    assert_eq!(v["headers"]["spin-path-match-id"], "42");

    let (_, v) = get_json(&rt.url("/users/7/files/x/y.txt")).await;
    assert_eq!(v["component"], "files");
    assert_eq!(v["headers"]["spin-path-match-id"], "7");
    assert_eq!(v["headers"]["spin-path-info"], "/x/y.txt");

    // A client cannot forge what the host asserts.
    let r = http().get(rt.url("/tb/x")).header("spin-client-addr", "6.6.6.6:1").send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert!(v["headers"]["spin-client-addr"].as_str().unwrap().starts_with("127.0.0.1:"));
}

#[tokio::test]
async fn unknown_route_is_404_problem_json() {
    let redis = Redis::start();
    let rt = testbed(&redis, RunnerOpts::default());
    for path in ["/nope", "/users", "/users/1/edit", "/tbx"] {
        let r = http().get(rt.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["status"], 404);
    }
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
    assert!(rt.log().contains("denied"), "denials are logged");
}

#[tokio::test]
async fn a_trap_is_a_500_and_the_runner_keeps_serving() {
    let redis = Redis::start();
    let rt = testbed(&redis, RunnerOpts::default());
    let r = http().get(rt.url("/tb/trap")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    let body = r.text().await.unwrap();
    assert!(!body.contains("trap requested"), "the body is generic: {body}");
    let (s, _) = get_json(&rt.url("/tb/ok")).await;
    assert_eq!(s, 200);
    assert!(rt.log().contains("[tb]"), "component stderr is tagged in the log");
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

#[tokio::test]
async fn redis_trigger_delivers_and_survives_a_redis_restart() {
    let mut redis = Redis::start();
    let rt = testbed(&redis, RunnerOpts::default());
    let received = |conn: redis::aio::MultiplexedConnection| async move {
        let mut conn = conn;
        let v: Vec<String> = redis::cmd("LRANGE").arg("testbed:received").arg(0).arg(-1).query_async(&mut conn).await.unwrap();
        v
    };
    let publish_until_seen = |port: u16, msg: &'static str| async move {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let subscribers: i64 = redis::cmd("PUBLISH").arg("testbed-events").arg(msg).query_async(&mut conn).await.unwrap();
            if subscribers > 0 {
                return;
            }
            assert!(Instant::now() < deadline, "the trigger never subscribed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    publish_until_seen(redis.port, "one").await;
    wait_until(|| async { received(redis.conn().await).await == vec!["one".to_string()] }).await;

    redis.restart();
    publish_until_seen(redis.port, "two").await;
    wait_until(|| async { received(redis.conn().await).await == vec!["two".to_string()] }).await;
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
