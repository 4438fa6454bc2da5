//! Every documented limit (docs/routes.md, "Limits"), at its edge:
//! the largest accepted input passes, the smallest refused one is a 413 or
//! 400 (431 for headers) problem+json. Through the real spin.toml, both transports.

use serde_json::{json, Value};
use spindle_e2e::*;

const KEY: &str = "limits-test-key";

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// `json` padded with trailing spaces to exactly `len` bytes.
fn padded(json: &Value, len: usize) -> Vec<u8> {
    let mut s = json.to_string();
    assert!(s.len() <= len, "{s} is longer than {len}");
    s.push_str(&" ".repeat(len - s.len()));
    s.into_bytes()
}

async fn problem(r: reqwest::Response, status: u16, kind: &str) {
    assert_eq!(r.status().as_u16(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], format!("urn:spindle:problem:{kind}"));
}

both_transports!(every_limit_at_its_edge, |b: Backend| async move {
    let db = TempDir::new();
    let mut variables = b.variables();
    variables.extend([
        ("session_secrets", "limits-test-secret-0123456789abcdef".to_string()),
        ("api_keys", sha256_hex(KEY)),
        ("webhook_origin", "http://127.0.0.1:9".into()),
        ("notify_webhook_allow", "http://127.0.0.1:9".into()),
    ]);
    let rt = Runner::start(&app_manifest(), RunnerOpts { variables, runtime_config: Some(db.runtime_config()), ..Default::default() });
    let c = http();
    let post = |path: &str, body: Vec<u8>| c.post(rt.url(path)).header("content-type", "application/json").body(body);

    // Request headers: 16 KiB in all, 100 fields.
    let r = c.get(rt.url("/healthz")).header("x-big", "v".repeat(15_000)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(rt.url("/healthz")).header("x-big", "v".repeat(17_000)).send().await.unwrap();
    problem(r, 431, "headers-too-large").await;
    let mut rb = c.get(rt.url("/healthz"));
    for i in 0..80 {
        rb = rb.header(format!("x-h{i}"), "v");
    }
    assert_eq!(rb.send().await.unwrap().status(), 200);
    let mut rb = c.get(rt.url("/api/ping"));
    for i in 0..95 {
        rb = rb.header(format!("x-h{i}"), "v");
    }
    problem(rb.send().await.unwrap(), 431, "headers-too-large").await;
    let mut rb = c.get(rt.url("/healthz"));
    for i in 0..150 {
        rb = rb.header(format!("x-h{i}"), "v");
    }
    assert_eq!(rb.send().await.unwrap().status(), 431, "past 100 fields the HTTP server refuses");

    // Bodies: 4 KiB for register, login, PATCH /users/:id, presence, webhooks.
    let creds = json!({"username": "edge", "password": "correct horse"});
    assert_eq!(post("/auth/register", padded(&creds, 4096)).send().await.unwrap().status(), 201);
    problem(post("/auth/register", padded(&json!({"username": "edge2", "password": "correct horse"}), 4097)).send().await.unwrap(), 413, "payload-too-large").await;
    let r = post("/auth/login", padded(&creds, 4096)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let id = r.json::<Value>().await.unwrap()["user"]["id"].as_i64().unwrap();
    problem(post("/auth/login", padded(&creds, 4097)).send().await.unwrap(), 413, "payload-too-large").await;
    let with_cookie = |rb: reqwest::RequestBuilder| rb.header("cookie", &cookie);
    let patch = |body: Vec<u8>| with_cookie(c.patch(rt.url(&format!("/users/{id}"))).header("content-type", "application/json").body(body));
    assert_eq!(patch(padded(&json!({"display_name": "Edge"}), 4096)).send().await.unwrap().status(), 200);
    problem(patch(padded(&json!({"display_name": "Edge"}), 4097)).send().await.unwrap(), 413, "payload-too-large").await;
    let r = with_cookie(post("/notify/presence", padded(&json!({"topic": "lobby"}), 4096))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = with_cookie(post("/notify/presence", padded(&json!({"topic": "lobby"}), 4097))).send().await.unwrap();
    problem(r, 413, "payload-too-large").await;
    let hook = json!({"topic": "orders", "url": "http://127.0.0.1:9/hook"});
    assert_eq!(with_cookie(post("/notify/webhooks", padded(&hook, 4096))).send().await.unwrap().status(), 201);
    problem(with_cookie(post("/notify/webhooks", padded(&hook, 4097))).send().await.unwrap(), 413, "payload-too-large").await;

    // 64 KiB for /api/echo and /notify/publish (their variables' defaults).
    let echo = |n: usize| c.post(rt.url("/api/echo")).header("x-api-key", KEY).body(vec![b'e'; n]);
    assert_eq!(echo(65_536).send().await.unwrap().status(), 200);
    problem(echo(65_537).send().await.unwrap(), 413, "payload-too-large").await;
    let publish = |body: Vec<u8>| post("/notify/publish", body).header("x-api-key", KEY);
    let event = json!({"topic": "orders", "event": "e", "data": "x"});
    assert_eq!(publish(padded(&event, 65_536)).send().await.unwrap().status(), 201);
    problem(publish(padded(&event, 65_537)).send().await.unwrap(), 413, "payload-too-large").await;

    // 1 KiB (ignored) for every route that takes no body.
    for (method, path) in [
        ("GET", "/healthz".to_string()),
        ("GET", "/openapi.json".into()),
        ("GET", "/auth/me".into()),
        ("POST", "/auth/logout".into()),
        ("GET", "/api/ping".into()),
        ("GET", format!("/users/{id}")),
        ("GET", format!("/users?ids={id}")),
        ("GET", "/notify/poll?topic=orders&wait_ms=0".into()),
        ("GET", "/notify/webhooks".into()),
        ("POST", "/notify/webhooks/redrive".into()),
    ] {
        let send = |n: usize| {
            c.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), rt.url(&path))
                .header("x-api-key", KEY)
                .body(vec![b' '; n])
                .send()
        };
        let ok = send(1024).await.unwrap().status().as_u16();
        assert!(ok < 400 || ok == 401, "{method} {path} with 1024 bytes: {ok}");
        problem(send(1025).await.unwrap(), 413, "payload-too-large").await;
    }

    // JSON: 32 levels of nesting in all (the publish object is the first).
    let nested = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
    let body = |levels: usize| format!(r#"{{"topic":"orders","event":"deep","data":{}}}"#, nested(levels)).into_bytes();
    assert_eq!(publish(body(31)).send().await.unwrap().status(), 201);
    problem(publish(body(32)).send().await.unwrap(), 400, "bad-request").await;

    // Batches: users_batch_max (100) ids.
    let ids = |n: usize| vec![id.to_string(); n].join(",");
    assert_eq!(c.get(rt.url(&format!("/users?ids={}", ids(100)))).send().await.unwrap().status(), 200);
    problem(c.get(rt.url(&format!("/users?ids={}", ids(101)))).send().await.unwrap(), 400, "bad-request").await;
    drop(rt);
});
