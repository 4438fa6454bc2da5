//! Running the gateway: token scopes and rotation, saturation, a hung
//! Redis, draining on SIGTERM, /metrics and /healthz, the JSON log, TLS
//! with an ACL user. Real redis-servers, the gateway in-process or as the
//! real binary.

mod support;

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use spindle_rest_gateway::Config;
use support::{send, signal, wait_until, Binary, Gw, Redis, TempDir, TOKEN};

/// A Lua script that keeps Redis busy for ARGV[1] microseconds.
const BUSY: &str =
    "local function now() local t = redis.call('TIME') return t[1] * 1000000 + t[2] end \
                    local s = now() while now() - s < tonumber(ARGV[1]) do end return 'done'";

fn sha256_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes a token file atomically (a new file renamed over the old, as a
/// rotation should), so a reader never sees half of it.
fn write_tokens(path: &Path, lines: &[(&str, &str, &str)]) {
    let text: String = lines
        .iter()
        .map(|(scope, token, name)| format!("{scope} {} {name}\n", sha256_hex(token)))
        .collect();
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, format!("# scope sha256 name\n{text}")).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn as_token(gw: &Gw, token: &str, cmd: Value) -> (StatusCode, Value) {
    send(gw.http.post(gw.url("/")).bearer_auth(token).json(&cmd)).await
}

async fn metrics_as(gw: &Gw, token: Option<&str>) -> (StatusCode, String) {
    let mut req = gw.http.get(gw.url("/metrics"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.unwrap();
    (resp.status(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_scopes() {
    let redis = Redis::start();
    let dir = TempDir::new("scopes");
    let file = dir.path().join("tokens");
    write_tokens(
        &file,
        &[
            ("read-write", "rw-token", "app"),
            ("read-only", "ro-token", "dashboard"),
            ("metrics", "m-token", "prometheus"),
        ],
    );
    let mut config = Config::new(redis.url(), TOKEN);
    config.token_file = Some(file);
    let gw = Gw::start(config).await;

    // --token and the file's read-write token may do anything.
    for token in [TOKEN, "rw-token"] {
        assert_eq!(
            as_token(&gw, token, json!(["SET", "k", "v"])).await.0,
            StatusCode::OK
        );
    }
    // Read-only: reads yes, writes and scripts that may write no (403,
    // naming the command), the _RO script forms yes.
    let ro = |cmd| as_token(&gw, "ro-token", cmd);
    assert_eq!(
        ro(json!(["GET", "k"])).await,
        (StatusCode::OK, json!({"result": "v"}))
    );
    assert_eq!(ro(json!(["PING"])).await.0, StatusCode::OK);
    assert_eq!(
        ro(json!([
            "EVAL_RO",
            "return redis.call('GET', KEYS[1])",
            1,
            "k"
        ]))
        .await
        .1,
        json!({"result": "v"})
    );
    for (cmd, name) in [
        (json!(["SET", "k", "x"]), "SET"),
        (json!(["del", "k"]), "DEL"),
        (json!(["EVAL", "return 1", 0]), "EVAL"),
        (json!(["EVALSHA", "0".repeat(40), 0]), "EVALSHA"),
        (json!(["CONFIG", "SET", "maxmemory", "1"]), "CONFIG SET"),
    ] {
        let (status, body) = ro(cmd.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{cmd}");
        let err = body["error"].as_str().unwrap();
        assert!(
            err.starts_with("NOPERM") && err.contains(&format!("'{name}'")),
            "{cmd}: {err}"
        );
    }
    let path = gw.http.get(gw.url("/set/k/x")).bearer_auth("ro-token");
    assert_eq!(send(path).await.0, StatusCode::FORBIDDEN);
    // In a pipeline the write's slot carries the refusal; the reads run.
    let (status, body) = send(
        gw.http
            .post(gw.url("/pipeline"))
            .bearer_auth("ro-token")
            .json(&json!([["GET", "k"], ["SET", "k", "x"], ["STRLEN", "k"]])),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0], json!({"result": "v"}));
    assert!(
        body[1]["error"].as_str().unwrap().starts_with("NOPERM"),
        "{body}"
    );
    assert_eq!(body[2], json!({"result": 1}));
    let (status, _) = send(
        gw.http
            .post(gw.url("/multi-exec"))
            .bearer_auth("ro-token")
            .json(&json!([["GET", "k"], ["SET", "k", "x"]])),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        as_token(&gw, TOKEN, json!(["GET", "k"])).await.1,
        json!({"result": "v"}),
        "no write got through"
    );

    // The metrics token reads /metrics and nothing else; every scope may
    // read /metrics; no token may not.
    let (status, body) = as_token(&gw, "m-token", json!(["GET", "k"])).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    for token in ["m-token", "ro-token", TOKEN] {
        assert_eq!(
            metrics_as(&gw, Some(token)).await.0,
            StatusCode::OK,
            "{token}"
        );
    }
    assert_eq!(metrics_as(&gw, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        metrics_as(&gw, Some("nope")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (_, text) = metrics_as(&gw, Some("m-token")).await;
    for line in [
        "spindle_gateway_tokens{scope=\"read-write\"} 2",
        "spindle_gateway_tokens{scope=\"read-only\"} 1",
        "spindle_gateway_tokens{scope=\"metrics\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}");
    }
    assert_eq!(
        as_token(&gw, "unknown", json!(["PING"])).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_rotate_when_the_file_changes() {
    let redis = Redis::start();
    let dir = TempDir::new("rotate");
    let file = dir.path().join("tokens");
    write_tokens(&file, &[("read-write", "old-token", "app")]);
    let mut config = Config::new(redis.url(), TOKEN);
    config.token = None;
    config.token_file = Some(file.clone());
    config.token_file_poll = Duration::from_millis(50);
    let gw = Gw::start(config).await;
    assert_eq!(
        as_token(&gw, "old-token", json!(["PING"])).await.0,
        StatusCode::OK
    );
    assert_eq!(
        as_token(&gw, "new-token", json!(["PING"])).await.0,
        StatusCode::UNAUTHORIZED
    );

    write_tokens(&file, &[("read-write", "new-token", "app")]);
    let started = Instant::now();
    loop {
        let old = as_token(&gw, "old-token", json!(["PING"])).await.0;
        let new = as_token(&gw, "new-token", json!(["PING"])).await.0;
        if (old, new) == (StatusCode::UNAUTHORIZED, StatusCode::OK) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no rotation: old {old}, new {new}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A broken file is ignored: the current tokens stay.
    std::fs::write(&file, "read-write not-a-hash\n").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        as_token(&gw, "new-token", json!(["PING"])).await.0,
        StatusCode::OK
    );
    let (_, text) = metrics_as(&gw, Some("new-token")).await;
    assert!(
        text.contains("spindle_gateway_token_reloads_total{result=\"failed\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn tokens_rotate_on_sighup() {
    let redis = Redis::start();
    let dir = TempDir::new("sighup");
    let file = dir.path().join("tokens");
    write_tokens(&file, &[("read-write", "old-token", "app")]);
    let file_arg = file.to_str().unwrap();
    // Polling off: only SIGHUP reloads.
    let mut gateway = Binary::start(
        &[
            "--redis",
            &redis.url(),
            "--token-file",
            file_arg,
            "--token-file-poll-ms",
            "0",
        ],
        &[],
    );
    let http = reqwest::Client::new();
    let ping = |token: &str| {
        send(
            http.post(format!("{}/", gateway.base))
                .bearer_auth(token)
                .json(&json!(["PING"])),
        )
    };
    assert_eq!(ping("old-token").await.0, StatusCode::OK);

    write_tokens(&file, &[("read-write", "new-token", "app")]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        ping("old-token").await.0,
        StatusCode::OK,
        "reloaded without SIGHUP"
    );
    signal(gateway.pid(), "-HUP");
    let started = Instant::now();
    while ping("new-token").await.0 != StatusCode::OK {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "SIGHUP did not reload"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ping("old-token").await.0, StatusCode::UNAUTHORIZED);

    signal(gateway.pid(), "-TERM");
    assert!(gateway.wait_exit(Duration::from_secs(5)).success());
    let log = gateway.log_text();
    assert!(log.contains("\"msg\":\"tokens reloaded\""), "{log}");
    assert!(
        !log.contains("new-token") && !log.contains(&sha256_hex("new-token")),
        "{log}"
    );
}

/// Sends `n` GETs at once; each one's status, Retry-After and duration.
async fn burst(gw: &Gw, n: usize) -> Vec<(StatusCode, Option<String>, Duration, Value)> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let req = gw.post("/").json(&json!(["GET", "k"]));
            tokio::spawn(async move {
                let started = Instant::now();
                let resp = req.send().await.unwrap();
                let status = resp.status();
                let retry = resp
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned());
                let body: Value = resp.json().await.unwrap();
                (status, retry, started.elapsed(), body)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn gauge(gw: &Gw, name: &str) -> u64 {
    let (_, text) = metrics_as(gw, Some(TOKEN)).await;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturation_is_a_fast_bounded_503() {
    let redis = Redis::start();
    let mut config = Config::new(redis.url(), TOKEN);
    config.max_in_flight = 1;
    config.max_queue = 1;
    config.queue_timeout = Duration::from_millis(300);
    let gw = Gw::start(config).await;

    // One slow script holds the only turn...
    let slow = {
        let req = gw.post("/").json(&json!(["EVAL", BUSY, 0, 1_500_000]));
        tokio::spawn(async move { send(req).await })
    };
    let started = Instant::now();
    while gauge(&gw, "spindle_gateway_in_flight").await != 1 {
        assert!(started.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // ...so of a burst, one waits its 300 ms in the queue, the rest are
    // refused at once; every refusal says when to retry.
    let answers = burst(&gw, 8).await;
    assert!(
        answers
            .iter()
            .all(|(s, ..)| *s == StatusCode::SERVICE_UNAVAILABLE),
        "{answers:?}"
    );
    assert!(
        answers.iter().all(|(_, r, ..)| r.as_deref() == Some("1")),
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .all(|(.., b)| b["error"].as_str().unwrap().contains("saturated")),
        "{answers:?}"
    );
    // Told apart by what they say, not by timing (the machine is noisy):
    // one waited (at least its queue timeout), the rest found the queue full.
    let waited: Vec<_> = answers
        .iter()
        .filter(|(.., b)| b["error"].as_str().unwrap().contains("waited too long"))
        .collect();
    assert_eq!(waited.len(), 1, "one queued: {answers:?}");
    assert!(waited[0].2 >= Duration::from_millis(300), "{answers:?}");
    let full = answers
        .iter()
        .filter(|(.., b)| {
            b["error"]
                .as_str()
                .unwrap()
                .contains("too many requests are waiting")
        })
        .count();
    assert_eq!(full, 7, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|(_, _, d, _)| *d < Duration::from_secs(2)),
        "{answers:?}"
    );
    assert_eq!(
        slow.await.unwrap(),
        (StatusCode::OK, json!({"result": "done"}))
    );
    assert_eq!(gw.cmd(json!(["PING"])).await.0, StatusCode::OK);
    assert_eq!(
        gauge(&gw, "spindle_gateway_errors_total{class=\"saturated\"}").await,
        8
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_costs_bounded_time() {
    let redis = Redis::start();
    let mut config = Config::new(redis.url(), TOKEN);
    config.max_in_flight = 2;
    config.max_queue = 2;
    config.queue_timeout = Duration::from_millis(300);
    config.redis_timeout = Duration::from_millis(500);
    let gw = Gw::start(config).await;
    assert_eq!(gw.cmd(json!(["SET", "k", "v"])).await.0, StatusCode::OK);

    // Redis accepts but never answers (as a black-holed network would).
    signal(redis.child.id(), "-STOP");
    let answers = burst(&gw, 12).await;
    signal(redis.child.id(), "-CONT");
    assert!(
        answers
            .iter()
            .all(|(s, r, ..)| *s == StatusCode::SERVICE_UNAVAILABLE && r.as_deref() == Some("1")),
        "{answers:?}"
    );
    let timed_out = answers
        .iter()
        .filter(|(.., b)| b["error"].as_str().unwrap().contains("timed out"))
        .count();
    assert_eq!(timed_out, 2, "the two in flight time out: {answers:?}");
    let slowest = answers.iter().map(|(_, _, d, _)| *d).max().unwrap();
    assert!(slowest < Duration::from_secs(3), "slowest {slowest:?}");
    assert_eq!(
        gw.cmd(json!(["GET", "k"])).await,
        (StatusCode::OK, json!({"result": "v"}))
    );
}

/// Whether anything accepts connections at `base` (`http://host:port`).
fn accepts(base: &str) -> bool {
    TcpStream::connect(base.trim_start_matches("http://")).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_requests_in_flight() {
    let redis = Redis::start();
    let mut gateway = Binary::start(&["--redis", &redis.url()], &[("SPINDLE_REST_TOKEN", TOKEN)]);
    let http = reqwest::Client::new();
    let slow = {
        let req = http
            .post(format!("{}/", gateway.base))
            .bearer_auth(TOKEN)
            .json(&json!(["EVAL", BUSY, 0, 1_000_000]));
        tokio::spawn(async move { send(req).await })
    };
    // Wait until the script runs (Redis is then busy: PING over redis-cli
    // would wait, so ask the gateway's metrics).
    let started = Instant::now();
    loop {
        let text = http
            .get(format!("{}/metrics", gateway.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.lines().any(|l| l == "spindle_gateway_in_flight 1") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the script did not start"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let term = Instant::now();
    signal(gateway.pid(), "-TERM");
    // New connections are refused at once...
    wait_until(Duration::from_millis(500), "the listener to close", || {
        !accepts(&gateway.base)
    });
    // ...while the request in flight finishes, and then the process exits 0.
    assert_eq!(
        slow.await.unwrap(),
        (StatusCode::OK, json!({"result": "done"}))
    );
    let status = gateway.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "{status}");
    assert!(
        term.elapsed() < Duration::from_secs(3),
        "{:?}",
        term.elapsed()
    );
    let log = gateway.log_text();
    assert!(
        log.contains("\"msg\":\"draining\",\"in_flight\":1"),
        "{log}"
    );
    assert!(log.contains("\"msg\":\"stopped\""), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_timeout_bounds_shutdown() {
    let redis = Redis::start();
    let mut gateway = Binary::start(
        &["--redis", &redis.url(), "--drain-timeout-ms", "300"],
        &[("SPINDLE_REST_TOKEN", TOKEN)],
    );
    let slow = {
        let req = reqwest::Client::new()
            .post(format!("{}/", gateway.base))
            .bearer_auth(TOKEN)
            .json(&json!(["EVAL", BUSY, 0, 3_000_000]));
        tokio::spawn(async move { req.send().await.map(|r| r.status()) })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let term = Instant::now();
    signal(gateway.pid(), "-TERM");
    let status = gateway.wait_exit(Duration::from_secs(3));
    let took = term.elapsed();
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    // The request still running was cut off, not answered.
    assert!(!matches!(slow.await.unwrap(), Ok(StatusCode::OK)));
    assert!(
        gateway.log_text().contains("drain timed out"),
        "{}",
        gateway.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_happened() {
    let redis = Redis::start();
    let gw = Gw::start(Config::new(redis.url(), TOKEN)).await;
    for _ in 0..3 {
        assert_eq!(gw.cmd(json!(["SET", "k", "v"])).await.0, StatusCode::OK);
    }
    assert_eq!(
        gw.cmd(json!(["INCR", "k"])).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        gw.pipeline(json!([["GET", "k"], ["BLPOP", "l", 0]]))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        send(gw.http.post(gw.url("/")).json(&json!(["PING"])))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(send(gw.get("/pipeline/x")).await.0, StatusCode::NOT_FOUND);
    let resp = gw.get("/metrics").send().await.unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = resp.text().await.unwrap();
    for line in [
        "spindle_gateway_requests_total{route=\"command\",status=\"200\"} 3",
        "spindle_gateway_requests_total{route=\"command\",status=\"400\"} 1",
        "spindle_gateway_requests_total{route=\"command\",status=\"401\"} 1",
        "spindle_gateway_requests_total{route=\"pipeline\",status=\"200\"} 1",
        "spindle_gateway_requests_total{route=\"unknown\",status=\"404\"} 1",
        "spindle_gateway_request_duration_seconds_count{route=\"command\"} 5",
        "spindle_gateway_request_duration_seconds_bucket{route=\"command\",le=\"+Inf\"} 5",
        "spindle_gateway_errors_total{class=\"unauthorized\"} 1",
        "spindle_gateway_errors_total{class=\"redis_error\"} 1",
        "spindle_gateway_errors_total{class=\"bad_request\"} 2",
        "spindle_gateway_in_flight 0",
        "spindle_gateway_in_flight_limit 256",
        "spindle_gateway_queued 0",
        "spindle_gateway_queue_limit 1024",
        "# TYPE spindle_gateway_request_duration_seconds histogram",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    // Every sample line is `name{labels} number`.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = l.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_redis_without_a_token() {
    let mut redis = Redis::start();
    let mut config = Config::new(redis.url(), TOKEN);
    config.redis_timeout = Duration::from_millis(500);
    let gw = Gw::start(config).await;
    let health = || send(gw.http.get(gw.url("/healthz")));
    assert_eq!(
        health().await,
        (
            StatusCode::OK,
            json!({"status": "ok", "mode": "single", "redis": "ok"})
        )
    );
    assert_eq!(
        send(gw.http.post(gw.url("/healthz"))).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );

    redis.stop();
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the 1 s cache
    let started = Instant::now();
    let (status, body) = health().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        !body.to_string().contains(&redis.port.to_string()),
        "{body}"
    );
    // Liveness does not depend on Redis.
    assert_eq!(
        send(gw.http.get(gw.url("/healthz?live"))).await,
        (StatusCode::OK, json!({"status": "live"}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_lines_without_secrets() {
    // A Redis with a password, in the URL.
    let port = support::free_port();
    let password = "redis-pass-5ecret";
    let dir = TempDir::new("logs");
    let _redis = Redis::start_with(
        port,
        &["--port", &port.to_string(), "--requirepass", password],
        dir.path(),
    );
    let url = format!("redis://:{password}@127.0.0.1:{port}");
    let mut gateway = Binary::start(
        &["--redis", &url, "--access-log"],
        &[("SPINDLE_REST_TOKEN", TOKEN)],
    );
    let http = reqwest::Client::new();
    let (secret_key, secret_value) = ("key-7a1b", "value-c0ffee");
    let set = http
        .get(format!("{}/set/{secret_key}/{secret_value}", gateway.base))
        .bearer_auth(TOKEN);
    assert_eq!(send(set).await.0, StatusCode::OK);
    let get = http
        .get(format!("{}/get/{secret_key}", gateway.base))
        .bearer_auth(TOKEN);
    assert_eq!(send(get).await.1, json!({"result": secret_value}));
    let bad = http.get(format!(
        "{}/get/{secret_key}?_token=wrong-guess",
        gateway.base
    ));
    assert_eq!(send(bad).await.0, StatusCode::UNAUTHORIZED);
    signal(gateway.pid(), "-TERM");
    assert!(gateway.wait_exit(Duration::from_secs(5)).success());

    let log = gateway.log_text();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for line in &lines {
        assert!(
            line["ts"].is_string() && line["level"].is_string() && line["msg"].is_string(),
            "{line}"
        );
    }
    let requests: Vec<&Value> = lines.iter().filter(|l| l["msg"] == "request").collect();
    assert_eq!(requests.len(), 3, "{log}");
    assert_eq!(requests[0]["route"], "path");
    assert_eq!(requests[0]["token"], "cli");
    assert_eq!(requests[2]["status"], 401);
    assert!(
        lines.iter().any(|l| l["msg"] == "listening"
            && l["redis"][0] == format!("redis://:***@127.0.0.1:{port}")),
        "{log}"
    );
    for secret in [TOKEN, password, secret_key, secret_value, "wrong-guess"] {
        assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
    }
}

/// A CA and a certificate for localhost/127.0.0.1 it signed, made with
/// openssl (EC P-256 keys: fast to make).
fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "1",
        "-subj",
        "/CN=gateway-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ];
    ca.extend(ec);
    run(&ca);
    let mut csr = vec![
        "req",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ];
    csr.extend(ec);
    run(&csr);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_an_acl_user() {
    let dir = TempDir::new("tls");
    make_certs(dir.path());
    let port = support::free_port();
    // Only an ACL user may connect: the default user is off.
    let _redis = Redis::start_with(
        port,
        &[
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            "server.crt",
            "--tls-key-file",
            "server.key",
            "--tls-ca-cert-file",
            "ca.crt",
            "--tls-auth-clients",
            "no",
            "--user",
            "default",
            "off",
            "--user",
            "alice",
            "on",
            ">alice-pw",
            "~*",
            "&*",
            "+@all",
        ],
        dir.path(),
    );
    let ca_file = dir.path().join("ca.crt");
    let start = |url: String, ca: bool| {
        let ca_file = ca_file.clone();
        async move {
            let mut config = Config::new(url, TOKEN);
            config.redis_timeout = Duration::from_millis(1000);
            if ca {
                config.tls.ca_file = Some(ca_file);
            }
            Gw::start(config).await
        }
    };

    let gw = start(format!("rediss://alice:alice-pw@localhost:{port}"), true).await;
    assert_eq!(
        gw.cmd(json!(["SET", "k", "over tls"])).await,
        (StatusCode::OK, json!({"result": "OK"}))
    );
    assert_eq!(
        gw.cmd(json!(["GET", "k"])).await,
        (StatusCode::OK, json!({"result": "over tls"}))
    );
    assert_eq!(
        gw.cmd(json!(["ACL", "WHOAMI"])).await.1,
        json!({"result": "alice"})
    );
    assert_eq!(
        send(gw.http.get(gw.url("/healthz"))).await.0,
        StatusCode::OK
    );

    // A wrong password, and a server whose CA is not trusted: 503s that say why.
    let gw = start(format!("rediss://alice:bad-pw-9f@localhost:{port}"), true).await;
    let (status, body) = gw.cmd(json!(["GET", "k"])).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("authentication failed"),
        "{body}"
    );
    assert!(
        !body.to_string().contains("bad-pw-9f"),
        "the password is not echoed: {body}"
    );
    let gw = start(format!("rediss://alice:alice-pw@localhost:{port}"), false).await;
    let (status, body) = gw.cmd(json!(["GET", "k"])).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("certificate"),
        "{body}"
    );
}
