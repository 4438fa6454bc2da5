//! End-to-end tests: a real `redis-server` (started here on a free port, no
//! persistence) behind the real gateway (in-process, on a free port), driven
//! over HTTP. Every test has its own Redis, so tests run in parallel; the
//! Redis process is killed on drop, so it goes away even when a test fails.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use spindle_rest_gateway::Config;
use support::{send, signal, Binary, Gw, Redis, TOKEN};

/// A Redis, a gateway in front of it, and an HTTP client.
struct Env {
    redis: Redis,
    gw: Gw,
}

impl std::ops::Deref for Env {
    type Target = Gw;
    fn deref(&self) -> &Gw {
        &self.gw
    }
}

impl Env {
    async fn start() -> Env {
        Self::start_with(|_| {}).await
    }

    async fn start_with(tweak: impl FnOnce(&mut Config)) -> Env {
        let redis = Redis::start();
        let mut config = Config::new(redis.url(), TOKEN);
        tweak(&mut config);
        let gw = Gw::start(config).await;
        Env { redis, gw }
    }

    async fn cmd_b64(&self, command: Value) -> (StatusCode, Value) {
        send(
            self.post("/")
                .header("Upstash-Encoding", "base64")
                .json(&command),
        )
        .await
    }

    async fn shutdown(&mut self) {
        self.gw.shutdown().await;
    }
}

#[tokio::test]
async fn single_command_maps_replies() {
    let env = Env::start().await;
    assert_eq!(
        env.cmd(json!(["SET", "k", "v"])).await,
        (StatusCode::OK, json!({"result": "OK"}))
    );
    assert_eq!(
        env.cmd(json!(["GET", "k"])).await,
        (StatusCode::OK, json!({"result": "v"}))
    );
    assert_eq!(
        env.cmd(json!(["get", "missing"])).await,
        (StatusCode::OK, json!({"result": null}))
    );
    // Numbers travel as their decimal text.
    assert_eq!(
        env.cmd(json!(["SETEX", "n", 100, 42])).await.1,
        json!({"result": "OK"})
    );
    assert_eq!(
        env.cmd(json!(["INCRBY", "n", -2])).await.1,
        json!({"result": 40})
    );
    assert_eq!(
        env.cmd(json!(["INCRBYFLOAT", "n", 0.5])).await.1,
        json!({"result": "40.5"})
    );
    // Nested arrays are preserved.
    env.cmd(json!(["XADD", "s", "1-1", "f", "v"])).await;
    assert_eq!(
        env.cmd(json!(["XRANGE", "s", "-", "+"])).await.1,
        json!({"result": [["1-1", ["f", "v"]]]})
    );
    assert_eq!(
        env.cmd(json!(["EVAL", "return {1, 'a', {false, 2}}", 0]))
            .await
            .1,
        json!({"result": [1, "a", [null, 2]]})
    );
    // A Redis error reply is a 400 with Redis's own text.
    assert_eq!(
        env.cmd(json!(["INCR", "k"])).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "ERR value is not an integer or out of range"})
        )
    );
    let (status, body) = env.cmd(json!(["NOSUCHCOMMAND"])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("ERR unknown command"),
        "{body}"
    );
}

#[tokio::test]
async fn path_form() {
    let env = Env::start().await;
    let (status, body) = send(env.get("/set/greeting/hello%20world")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"result": "OK"})));
    assert_eq!(
        send(env.get("/get/greeting")).await.1,
        json!({"result": "hello world"})
    );
    assert_eq!(
        send(env.get("/GET/greeting/")).await.1,
        json!({"result": "hello world"})
    );
    // POST appends the body as the last argument, then query pairs.
    let json_value = r#"{"a":[1,2],"b":"x/y"}"#;
    let (status, body) = send(env.post("/set/doc?EX=100").body(json_value)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"result": "OK"})));
    assert_eq!(
        send(env.get("/get/doc")).await.1,
        json!({"result": json_value})
    );
    let ttl = send(env.get("/ttl/doc")).await.1["result"]
        .as_i64()
        .unwrap();
    assert!((1..=100).contains(&ttl), "ttl {ttl}");
    assert_eq!(
        send(env.get("/mget/greeting/nope")).await.1,
        json!({"result": ["hello world", null]})
    );
}

#[tokio::test]
async fn pipeline_keeps_going_past_errors() {
    let env = Env::start().await;
    let batch = json!([
        ["SET", "a", "1"],
        ["INCR", "a"],
        ["HSET", "a", "f", "v"],
        ["SUBSCRIBE", "ch"],
        ["GET", "a"],
        ["LPUSH", "l", "x", "y"],
    ]);
    let (status, body) = send(env.post("/pipeline").json(&batch)).await;
    assert_eq!(status, StatusCode::OK);
    let slots = body.as_array().unwrap();
    assert_eq!(slots.len(), 6);
    assert_eq!(slots[0], json!({"result": "OK"}));
    assert_eq!(slots[1], json!({"result": 2}));
    assert!(
        slots[2]["error"].as_str().unwrap().starts_with("WRONGTYPE"),
        "{body}"
    );
    assert!(
        slots[3]["error"].as_str().unwrap().contains("'SUBSCRIBE'"),
        "{body}"
    );
    assert_eq!(slots[4], json!({"result": "2"}));
    assert_eq!(slots[5], json!({"result": 2}));

    let (status, body) = send(env.post("/pipeline").json(&json!([["SET", "x", true]]))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = send(env.post("/pipeline").json(&json!([]))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn commandstat(env: &Env, name: &str) -> u64 {
    let info = env.cmd(json!(["INFO", "commandstats"])).await.1;
    let info = info["result"].as_str().unwrap().to_owned();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_exec_is_atomic() {
    let env = Env::start().await;
    let (status, body) = send(env.post("/multi-exec").json(&json!([
        ["SET", "k", "v"],
        ["INCR", "k"],
        ["GET", "k"],
    ])))
    .await;
    assert_eq!(status, StatusCode::OK);
    // Execution errors land in their slot; the rest still ran (Redis semantics).
    assert_eq!(body[0], json!({"result": "OK"}));
    assert!(body[1]["error"]
        .as_str()
        .unwrap()
        .starts_with("ERR value is not an integer"));
    assert_eq!(body[2], json!({"result": "v"}));
    assert_eq!(commandstat(&env, "multi").await, 1);
    assert_eq!(commandstat(&env, "exec").await, 1);

    // A queueing error discards the whole transaction: nothing ran.
    let (status, body) = send(
        env.post("/multi-exec")
            .json(&json!([["SET", "k", "new"], ["GET"]])),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("wrong number of arguments"),
        "{body}"
    );
    assert_eq!(env.cmd(json!(["GET", "k"])).await.1, json!({"result": "v"}));

    // So does a command the gateway refuses.
    let (status, body) = send(
        env.post("/multi-exec")
            .json(&json!([["SET", "k", "new"], ["BLPOP", "l", 0]])),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("'BLPOP'"),
        "{body}"
    );
    assert_eq!(env.cmd(json!(["GET", "k"])).await.1, json!({"result": "v"}));

    // Concurrent transactions never interleave: each sees consecutive values.
    let batch = json!([["INCR", "c"], ["INCR", "c"], ["INCR", "c"]]);
    let runs = (0..24).map(|_| send(env.post("/multi-exec").json(&batch)));
    for (status, body) in futures_join_all(runs).await {
        assert_eq!(status, StatusCode::OK);
        let n: Vec<i64> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["result"].as_i64().unwrap())
            .collect();
        assert_eq!(n, [n[0], n[0] + 1, n[0] + 2], "interleaved: {body}");
    }
    assert_eq!(
        env.cmd(json!(["GET", "c"])).await.1,
        json!({"result": "72"})
    );
}

/// Runs futures concurrently on the runtime and collects their outputs in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task panicked"));
    }
    out
}

#[tokio::test]
async fn base64_encoding_round_trips_binary() {
    let env = Env::start().await;
    let bytes: [u8; 6] = [0x00, 0xff, 0x80, b'\n', 0xc8, b'"'];
    // Write a non-UTF-8 value from Lua, so no text encoding is involved.
    let script = "redis.call('SET', KEYS[1], string.char(0, 255, 128, 10, 200, 34)) return 1";
    assert_eq!(
        env.cmd(json!(["EVAL", script, 1, "bin"])).await.1,
        json!({"result": 1})
    );
    let expected = "AP+ACsgi";
    assert_eq!(base64_std(&bytes), expected, "test's own base64 is wrong");
    assert_eq!(
        env.cmd_b64(json!(["GET", "bin"])).await,
        (StatusCode::OK, json!({"result": expected}))
    );
    // Without the header the same value comes back as lossy UTF-8.
    assert_eq!(
        env.cmd(json!(["GET", "bin"])).await.1,
        json!({"result": "\u{0}\u{fffd}\u{fffd}\n\u{fffd}\""})
    );
    // The path form carries binary too (percent-encoded).
    send(env.get("/set/bin2/%00%FF%80%0A%C8%22")).await;
    assert_eq!(
        env.cmd_b64(json!(["GET", "bin2"])).await.1,
        json!({"result": expected})
    );

    // Status strings are encoded too, except a top-level OK, which Upstash
    // leaves as is; integers, nil and nesting are kept.
    assert_eq!(
        env.cmd_b64(json!(["SET", "t", "bar"])).await.1,
        json!({"result": "OK"})
    );
    assert_eq!(
        env.cmd_b64(json!(["PING"])).await.1,
        json!({"result": "UE9ORw=="})
    );
    assert_eq!(
        env.cmd_b64(json!(["STRLEN", "bin"])).await.1,
        json!({"result": 6})
    );
    assert_eq!(
        env.cmd_b64(json!(["MGET", "t", "none", "bin"])).await.1,
        json!({"result": ["YmFy", null, expected]})
    );
    env.cmd(json!(["XADD", "s", "1-1", "f", "v"])).await;
    assert_eq!(
        env.cmd_b64(json!(["XRANGE", "s", "-", "+"])).await.1,
        json!({"result": [["MS0x", ["Zg==", "dg=="]]]})
    );
    // Errors are never encoded, in single commands or pipelines.
    assert_eq!(
        env.cmd_b64(json!(["INCR", "t"])).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "ERR value is not an integer or out of range"})
        )
    );
    let (_, body) = send(
        env.post("/pipeline")
            .header("upstash-encoding", "BASE64")
            .json(&json!([["GET", "t"], ["INCR", "t"]])),
    )
    .await;
    assert_eq!(
        body,
        json!([{"result": "YmFy"}, {"error": "ERR value is not an integer or out of range"}])
    );
}

fn base64_std(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn auth() {
    let env = Env::start().await;
    let unauthorized = (StatusCode::UNAUTHORIZED, json!({"error": "Unauthorized"}));
    let cmd = json!(["PING"]);
    assert_eq!(
        send(env.http.post(env.url("/")).json(&cmd)).await,
        unauthorized
    );
    assert_eq!(
        send(env.http.post(env.url("/")).bearer_auth("wrong").json(&cmd)).await,
        unauthorized
    );
    let longer = format!("{TOKEN}x");
    assert_eq!(
        send(env.http.post(env.url("/")).bearer_auth(longer).json(&cmd)).await,
        unauthorized
    );
    assert_eq!(
        send(
            env.http
                .post(env.url("/"))
                .header("Authorization", format!("Basic {TOKEN}"))
                .json(&cmd)
        )
        .await,
        unauthorized
    );
    assert_eq!(
        send(env.http.get(env.url("/get/k?_token=nope"))).await,
        unauthorized
    );
    // Unauthorized requests never reach Redis, even on unknown paths.
    assert_eq!(
        send(env.http.get(env.url("/pipeline/x"))).await,
        unauthorized
    );

    let ok = (StatusCode::OK, json!({"result": "PONG"}));
    assert_eq!(send(env.post("/").json(&cmd)).await, ok);
    assert_eq!(
        send(
            env.http
                .post(env.url("/"))
                .header("authorization", format!("bearer {TOKEN}"))
                .json(&cmd)
        )
        .await,
        ok
    );
    assert_eq!(
        send(env.http.get(env.url(&format!("/ping?_token={TOKEN}")))).await,
        ok
    );
    // `_token` is not passed on as an argument.
    assert_eq!(
        send(env.http.get(env.url(&format!("/echo/hi?_token={TOKEN}"))))
            .await
            .1,
        json!({"result": "hi"})
    );
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let env = Env::start_with(|c| c.max_body_bytes = 1024).await;
    let big = "x".repeat(2000);
    let (status, body) = send(env.post("/").json(&json!(["SET", "k", big]))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let (status, _) = send(env.post("/set/k").body(vec![b'y'; 1025])).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Exactly at the limit is fine.
    let at_limit = format!(r#"["SET","k","{}"]"#, "z".repeat(1024 - 14));
    assert_eq!(at_limit.len(), 1024);
    assert_eq!(send(env.post("/").body(at_limit)).await.0, StatusCode::OK);

    // Without Content-Length (chunked), the limit is enforced while reading.
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(env.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let mut request = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    for _ in 0..3 {
        request += &format!("200\r\n{}\r\n", "a".repeat(0x200));
    }
    request += "0\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut head))
        .await
        .expect("no answer")
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
}

#[tokio::test]
async fn client_errors_are_400() {
    let env = Env::start().await;
    for body in [
        "not json",
        "{}",
        "[]",
        r#"["SET","k",true]"#,
        r#"["SET","k",null]"#,
        r#"["SET",{"a":1}]"#,
        "[\"GET\"",
    ] {
        let (status, reply) = send(env.post("/").body(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {reply}");
        assert!(reply["error"].is_string(), "{reply}");
    }
    for (cmd, name) in [
        (json!(["SUBSCRIBE", "ch"]), "SUBSCRIBE"),
        (json!(["psubscribe", "c*"]), "PSUBSCRIBE"),
        (json!(["BLPOP", "l", 0]), "BLPOP"),
        (json!(["MULTI"]), "MULTI"),
        (json!(["select", 1]), "SELECT"),
        (json!(["CLIENT", "SETNAME", "x"]), "CLIENT"),
        (json!(["XREAD", "BLOCK", 0, "STREAMS", "s", "$"]), "XREAD"),
        (
            json!([
                "xreadgroup",
                "GROUP",
                "g",
                "c",
                "block",
                10,
                "STREAMS",
                "s",
                ">"
            ]),
            "XREADGROUP",
        ),
    ] {
        let (status, reply) = env.cmd(cmd.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{cmd}");
        assert!(
            reply["error"]
                .as_str()
                .unwrap()
                .contains(&format!("'{name}'")),
            "{cmd} -> {reply}"
        );
    }
    // Non-blocking XREAD is fine.
    assert_eq!(
        env.cmd(json!(["XREAD", "STREAMS", "s", "0"])).await,
        (StatusCode::OK, json!({"result": null}))
    );
    let (status, _) = send(env.get("/subscribe/ch")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let env = Env::start().await;
    for path in ["/pipeline/x", "/multi-exec/y", "//get/k", "/ge%74/k"] {
        let (status, body) = send(env.get(path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path} -> {body}");
    }
    let resp = env.get("/pipeline").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "POST, PUT");
    let resp = env
        .http
        .delete(env.url("/get/k"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "GET, POST, PUT");
    assert_eq!(send(env.get("/")).await.0, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_a_fast_503_and_recovers() {
    let mut env = Env::start().await;
    assert_eq!(env.cmd(json!(["SET", "k", "v"])).await.0, StatusCode::OK);
    env.redis.stop();

    // The first request finds the old connection dead, the next ones find
    // Redis refusing connections; all answer quickly.
    for path in ["/", "/pipeline", "/multi-exec", "/"] {
        let body = if path == "/" {
            json!(["GET", "k"])
        } else {
            json!([["GET", "k"]])
        };
        let started = Instant::now();
        let (status, reply) = send(env.post(path).json(&body)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path} -> {reply}");
        assert!(
            reply["error"].as_str().unwrap().contains("unavailable"),
            "{reply}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
    }

    // Once Redis is back, the gateway reconnects by itself.
    env.redis = Redis::start_on(env.redis.port);
    assert_eq!(
        env.cmd(json!(["PING"])).await,
        (StatusCode::OK, json!({"result": "PONG"}))
    );
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_may_run_long_but_a_hung_redis_is_a_bounded_503() {
    let env = Env::start_with(|c| {
        c.redis_timeout = Duration::from_millis(300);
        c.command_timeout = Duration::from_secs(5);
    })
    .await;
    // A script busy for 0.8 s outlives the ordinary timeout, and is fine.
    let busy =
        "local function now() local t = redis.call('TIME') return t[1] * 1000000 + t[2] end \
                local s = now() while now() - s < tonumber(ARGV[1]) do end return 'done'";
    let started = Instant::now();
    assert_eq!(
        env.cmd(json!(["EVAL", busy, 0, 800_000])).await,
        (StatusCode::OK, json!({"result": "done"}))
    );
    assert!(started.elapsed() >= Duration::from_millis(800));
    let (status, body) = send(
        env.post("/pipeline")
            .json(&json!([["EVAL", busy, 0, 500_000]])),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!([{"result": "done"}]))
    );

    // A Redis that accepts but never answers: plain commands give up after
    // the Redis timeout.
    let pid = env.redis.child.id();
    signal(pid, "-STOP");
    let started = Instant::now();
    let (status, body) = env.cmd(json!(["GET", "k"])).await;
    let took = started.elapsed();
    signal(pid, "-CONT");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    // The connection survives a timeout.
    assert_eq!(
        env.cmd(json!(["PING"])).await,
        (StatusCode::OK, json!({"result": "PONG"}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_concurrently_with_keep_alive() {
    let mut env = Env::start().await;
    let runs = (0..200).map(|i| {
        let req = env.post("/").json(&json!(["INCR", "hits"]));
        async move { (i, send(req).await) }
    });
    for (_, (status, _)) in futures_join_all(runs).await {
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(
        env.cmd(json!(["GET", "hits"])).await.1,
        json!({"result": "200"})
    );
    let started = Instant::now();
    env.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(6));
}

/// The binary: prints the one line scripts wait for, serves, and exits
/// cleanly on SIGTERM.
#[tokio::test]
async fn binary_prints_address_and_stops_on_sigterm() {
    let redis = Redis::start();
    let mut gateway = Binary::start(&["--redis", &redis.url()], &[("SPINDLE_REST_TOKEN", TOKEN)]);
    assert!(
        gateway.base.starts_with("http://127.0.0.1:"),
        "{}",
        gateway.base
    );

    let (status, body) = send(
        reqwest::Client::new()
            .get(format!("{}/echo/hi", gateway.base))
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"result": "hi"})));

    signal(gateway.pid(), "-TERM");
    let status = gateway.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "{status}");
}
