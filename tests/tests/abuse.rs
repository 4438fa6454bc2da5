//! Abuse limits (issue 15): what one caller, or one client address, may
//! hold or start, each at its edge, through the real spin.toml on both
//! transports. The README's "Abuse limits" table lists them.

use futures::StreamExt;
use serde_json::{json, Value};
use spindle_e2e::*;
use std::time::{Duration, Instant};

const SECRET: &str = "e2e-abuse-secret-0123456789abcd";
const KEY: &str = "abuse-e2e-api-key";

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The app on `b` with a session secret and one API key; `extra` wins.
fn app(b: &Backend, extra: &[(&'static str, String)]) -> Runner {
    let mut vars: Vec<(&'static str, String)> = vec![("session_secrets", SECRET.into()), ("api_keys", sha256_hex(KEY))];
    vars.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    vars.extend(extra.iter().cloned());
    b.app(&vars)
}

/// A logged-in session as connect-redis stores it: the `Cookie` header value.
async fn login(b: &Backend, id: i64, username: &str) -> String {
    express_session(&b.redis, SECRET, "abuseE2E", id, username).await
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    #[track_caller]
    fn problem(&self, status: u16, kind: &str) -> &Self {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("content-type"), Some("application/problem+json"), "{self:?}");
        assert_eq!(self.body["type"], format!("urn:spindle:problem:{kind}"), "{self:?}");
        self
    }

    /// A 429 with a whole-seconds `Retry-After` of at least 1.
    #[track_caller]
    fn too_many(&self, kind: &str) -> u64 {
        self.problem(429, kind);
        let s: u64 = self.header("retry-after").expect("Retry-After").parse().unwrap();
        assert!(s >= 1, "{self:?}");
        s
    }
}

async fn send(rb: reqwest::RequestBuilder) -> Resp {
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    Resp { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
}

/// `GET /notify/poll` answered at once (`wait_ms=0`).
async fn poll(rt: &Runner, cookie: &str) -> Resp {
    send(http().get(rt.url("/notify/poll?topic=lobby&wait_ms=0")).header("cookie", cookie)).await
}

/// An open SSE response (its body unread), or the refusal.
async fn open_stream(rt: &Runner, cookie: &str) -> Result<reqwest::Response, Resp> {
    // A client of its own: one connection per stream, as browsers' tabs have.
    let r = reqwest::Client::new().get(rt.url("/notify/stream?topic=lobby")).header("cookie", cookie).send().await.unwrap();
    if r.status() == 200 {
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        Ok(r)
    } else {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null);
        Err(Resp { status, headers, body })
    }
}

async fn leases(b: &Backend, owner: &str) -> u64 {
    redis::cmd("ZCARD").arg(format!("spindle:notify:readers:{owner}")).query_async(&mut b.redis.conn().await).await.unwrap()
}

async fn wait_for_leases(b: &Backend, owner: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while leases(b, owner).await != n {
        assert!(Instant::now() < deadline, "{owner} did not come to {n} leases (has {})", leases(b, owner).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ── Item 4: concurrent long polls and streams per caller ──────────────────

both_transports!(the_stream_past_the_cap_is_a_429_and_others_are_unaffected, |b: Backend| async move {
    let rt = app(&b, &[("notify_max_streams", "3".into()), ("notify_sse_heartbeat", "200ms".into())]);
    let alice = login(&b, 1, "alice").await;
    let bob = login(&b, 2, "bob").await;

    // Alice holds two streams and one long poll: her cap.
    let s1 = open_stream(&rt, &alice).await.unwrap();
    let s2 = open_stream(&rt, &alice).await.unwrap();
    let long_poll = {
        // From the oldest event (there is none yet), so the publish below wakes it whenever it starts.
        let (url, cookie) = (rt.url("/notify/poll?topic=lobby&after=0&wait_ms=20000"), alice.clone());
        tokio::spawn(async move { send(http().get(url).header("cookie", cookie)).await })
    };
    wait_for_leases(&b, "user:1", 3).await;
    let pttl: i64 = redis::cmd("PTTL").arg("spindle:notify:readers:user:1").query_async(&mut b.redis.conn().await).await.unwrap();
    assert!(pttl > 0, "the lease key has a TTL, so a dead host cannot keep it: {pttl}");

    // The fourth, either kind, is refused before anything is read.
    open_stream(&rt, &alice).await.unwrap_err().too_many("too-many-streams");
    poll(&rt, &alice).await.too_many("too-many-streams");
    assert_eq!(leases(&b, "user:1").await, 3, "a refusal takes no lease");

    // Bob and the API key are other callers.
    let bobs = open_stream(&rt, &bob).await.expect("bob's stream");
    assert_eq!(poll(&rt, &bob).await.status, 200);
    let r = send(http().get(rt.url("/notify/poll?topic=lobby&wait_ms=0")).header("x-api-key", KEY)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("ratelimit-policy"), Some("\"notify_stream\";q=60;w=30"), "{r:?}");

    // A publish ends the long poll, which gives its lease back; so does a
    // closed stream (noticed at its next heartbeat).
    let r = send(http().post(rt.url("/notify/publish")).header("x-api-key", KEY).json(&json!({"topic": "lobby", "event": "e"}))).await;
    assert_eq!(r.status, 201, "{r:?}");
    let answered = long_poll.await.unwrap();
    assert_eq!((answered.status, answered.body["events"].as_array().map(Vec::len)), (200, Some(1)), "{answered:?}");
    drop(s1);
    wait_for_leases(&b, "user:1", 1).await;
    let s3 = open_stream(&rt, &alice).await.expect("a freed slot is usable again");
    assert_eq!(poll(&rt, &alice).await.status, 200);
    drop((s2, s3, bobs));
    wait_for_leases(&b, "user:1", 0).await;
    wait_for_leases(&b, "user:2", 0).await;
    let exists: u64 = redis::cmd("EXISTS").arg("spindle:notify:readers:user:1").query_async(&mut b.redis.conn().await).await.unwrap();
    assert_eq!(exists, 0, "an idle caller leaves no key");

    // Leases of a host that died mid-stream count only until they end.
    let until = now_ms() + 1500;
    let mut c = b.redis.conn().await;
    for dead in ["dead-1", "dead-2", "dead-3"] {
        let _: () = redis::cmd("ZADD").arg("spindle:notify:readers:user:1").arg(until).arg(dead).query_async(&mut c).await.unwrap();
    }
    let retry = poll(&rt, &alice).await.too_many("too-many-streams");
    assert!(retry <= 2, "Retry-After says when the soonest lease ends: {retry}");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(poll(&rt, &alice).await.status, 200, "the dead host's leases have ended");
    rt.assert_every_variable_declared();
});

both_transports!(opening_streams_is_rate_limited_per_caller, |b: Backend| async move {
    let rt = app(&b, &[("notify_stream_rate_limit", "fixed_window 3/60s".into())]);
    let alice = login(&b, 1, "alice").await;
    let bob = login(&b, 2, "bob").await;
    inside_one_minute(Duration::from_secs(20)).await;
    for _ in 0..3 {
        let r = poll(&rt, &alice).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.header("ratelimit").unwrap().starts_with("\"notify_stream\";r="), "{r:?}");
    }
    let retry = poll(&rt, &alice).await.too_many("quota-exceeded");
    assert!(retry <= 60);
    open_stream(&rt, &alice).await.unwrap_err().too_many("quota-exceeded");
    assert_eq!(leases(&b, "user:1").await, 0, "a refused open takes no lease");
    assert_eq!(poll(&rt, &bob).await.status, 200, "bob has his own budget");
    let mut bobs = open_stream(&rt, &bob).await.expect("bob's stream").bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(5), bobs.next()).await.unwrap().unwrap().unwrap();
    assert!(std::str::from_utf8(&first).unwrap().starts_with("retry: "), "{first:?}");
});

// ── Item 5: bodies are read as streams, and stop at their limit ───────────

/// Sends `method path` with a `Content-Length: total` body of spaces,
/// written in 1 MiB chunks (never held whole), and reads the answer while
/// it writes. Returns the status, the body, and how many body bytes went out
/// before the answer came (the host stops reading at limit + 1).
async fn huge_request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], total: usize) -> (u16, String, usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\ncontent-length: {total}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    let writer = tokio::spawn(async move {
        let chunk = vec![b' '; 1 << 20];
        if wr.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let mut left = total;
        while left > 0 {
            let n = left.min(chunk.len());
            if wr.write_all(&chunk[..n]).await.is_err() {
                return; // the host closed: it has answered, and read no more
            }
            left -= n;
            counter.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 16 * 1024];
    let (status, body) = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let n = rd.read(&mut tmp).await.unwrap_or(0);
            if n > 0 {
                buf.extend_from_slice(&tmp[..n]);
            }
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
                let lower = head.to_ascii_lowercase();
                let len: Option<usize> = lower.lines().find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()));
                let rest = &buf[end + 4..];
                // Chunked (the runner) or sized (Spin): the problem JSON is between its braces.
                let done = match len {
                    Some(len) => rest.len() >= len,
                    None => rest.ends_with(b"0\r\n\r\n"),
                };
                if done || n == 0 {
                    let text = String::from_utf8_lossy(rest).to_string();
                    let json = match (text.find('{'), text.rfind('}')) {
                        (Some(a), Some(b)) => text[a..=b].to_string(),
                        _ => text,
                    };
                    return (status, json);
                }
            } else if n == 0 {
                // Reset before the answer was read (the host closed with our bytes unread).
                return (0, String::from_utf8_lossy(&buf).to_string());
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{method} {path}: no answer within 120 s"));
    writer.abort();
    (status, body, sent.load(std::sync::atomic::Ordering::SeqCst))
}

both_transports!(an_oversized_body_is_a_413_on_every_route_and_the_host_stays_small, |b: Backend| async move {
    let db = TempDir::new();
    let mut variables = b.variables();
    variables.extend([("session_secrets", SECRET.to_string()), ("api_keys", sha256_hex(KEY))]);
    let rt = Runner::start(&app_manifest(), RunnerOpts { variables, runtime_config: Some(db.runtime_config()), ..Default::default() });
    let alice = login(&b, 1, "alice").await;
    // Every route that reads a body, with its limit, and two that take none.
    let routes: &[(&str, &str, usize, Option<(&str, &str)>)] = &[
        ("POST", "/auth/register", 4096, None),
        ("POST", "/auth/login", 4096, None),
        ("PATCH", "/users/1", 4096, Some(("cookie", alice.as_str()))),
        ("POST", "/api/echo", 65_536, Some(("x-api-key", KEY))),
        ("POST", "/notify/publish", 65_536, Some(("x-api-key", KEY))),
        ("POST", "/notify/presence", 4096, Some(("cookie", alice.as_str()))),
        ("POST", "/notify/webhooks", 4096, Some(("x-api-key", KEY))),
        ("POST", "/auth/logout", 1024, None),
        ("POST", "/notify/webhooks/redrive", 1024, Some(("x-api-key", KEY))),
    ];
    assert_eq!(http().get(rt.url("/healthz")).send().await.unwrap().status(), 200);
    let before = rt.peak_rss_kib();
    const HUGE: usize = 300 << 20;
    for &(method, path, limit, header) in routes {
        let headers: Vec<(&str, &str)> = header.into_iter().collect();
        for total in [limit + 1, HUGE] {
            // A reset can beat the answer to the client (the host stops reading
            // and closes); like a browser, try again, at most twice more.
            let mut tries = 0;
            let (status, body, sent) = if total == HUGE {
                loop {
                    let r = huge_request(rt.port, method, path, &headers, total).await;
                    tries += 1;
                    if r.0 != 0 || tries == 3 {
                        break r;
                    }
                }
            } else {
                // Just over the limit: a small body, sent whole.
                let mut rb = http().request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), rt.url(path));
                for (k, v) in &headers {
                    rb = rb.header(*k, *v);
                }
                let r = rb.header("content-type", "application/json").body(vec![b' '; total]).send().await.unwrap();
                tries = 1;
                (r.status().as_u16(), r.text().await.unwrap(), total)
            };
            assert_eq!(status, 413, "{method} {path} with {total} bytes: {body}");
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            assert_eq!(v["type"], "urn:spindle:problem:payload-too-large", "{method} {path}: {body}");
            eprintln!("{method} {path}: {total} bytes → {status} (try {tries}), {} KiB written before the answer", sent >> 10);
        }
    }
    let after = rt.peak_rss_kib();
    eprintln!("{:?} host peak RSS: {} MiB before, {} MiB after {} × 300 MiB bodies", rt.kind, before >> 10, after >> 10, routes.len());
    assert!(after < before + 100 * 1024, "the host buffered a body: peak RSS {before} KiB → {after} KiB");
    let r = http().get(rt.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the host is healthy afterwards");
    let r = http().post(rt.url("/api/echo")).header("x-api-key", KEY).body("still here").send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (200, "still here".to_string()));
});

// ── Item 2: registration is throttled per client address ──────────────────

both_transports!(the_registration_past_the_limit_is_a_429_per_address, |b: Backend| async move {
    let db = TempDir::new();
    let mut variables = b.variables();
    variables.extend([
        ("session_secrets", SECRET.to_string()),
        ("register_rate_limit", "fixed_window 3/60s".into()),
        ("trusted_proxies", "127.0.0.1".into()),
    ]);
    let rt = Runner::start(&app_manifest(), RunnerOpts { variables, runtime_config: Some(db.runtime_config()), ..Default::default() });
    let register = |from: &'static str, name: &'static str| {
        let rb = http().post(rt.url("/auth/register")).header("x-forwarded-for", from);
        send(rb.json(&json!({"username": name, "password": "correct horse battery"})))
    };
    inside_one_minute(Duration::from_secs(20)).await;
    let r = register("203.0.113.7", "first").await;
    assert_eq!(r.status, 201, "{r:?}");
    assert!(r.header("ratelimit").unwrap().starts_with("\"register\";r=2;"), "{r:?}");
    // A taken name spends the budget too: enumerating names costs as much as creating them.
    register("203.0.113.7", "FIRST").await.problem(409, "conflict");
    assert_eq!(register("203.0.113.7", "second").await.status, 201);
    register("203.0.113.7", "third").await.too_many("quota-exceeded");
    // Nothing was created for the refused one: from another address the name is free.
    assert_eq!(register("203.0.113.8", "third").await.status, 201, "another address has its own budget");
    let bad = send(http().post(rt.url("/auth/register")).header("x-forwarded-for", "203.0.113.9").json(&json!({"username": "x", "password": "p"}))).await;
    bad.problem(400, "bad-request");
    rt.assert_every_variable_declared();
});

// ── Item 3: Socket.IO rooms need an allow-list ────────────────────────────

both_transports!(a_user_may_not_emit_to_a_room_that_is_not_allowed, |b: Backend| async move {
    let rt = app(&b, &[("notify_socketio_rooms", "team:*".into())]);
    let alice = login(&b, 1, "alice").await;
    let mut pubsub = b.redis.client().get_async_pubsub().await.unwrap();
    pubsub.psubscribe("socket.io#*").await.unwrap();
    let publish = |auth: (&'static str, String), room: &str| {
        let body = json!({"topic": "chat", "event": "alert", "data": {"x": 1}, "socketio_room": room});
        send(http().post(rt.url("/notify/publish")).header(auth.0, auth.1).json(&body))
    };
    let user = ("cookie", alice.clone());
    publish(user.clone(), "admins").await.problem(403, "forbidden");
    let xlen: u64 = redis::cmd("XLEN").arg("spindle:notify:{chat}:events").query_async(&mut b.redis.conn().await).await.unwrap();
    assert_eq!(xlen, 0, "a refused publish writes nothing");
    {
        let mut msgs = pubsub.on_message();
        let none = tokio::time::timeout(Duration::from_millis(500), msgs.next()).await;
        assert!(none.is_err(), "no packet reached a Socket.IO channel: {none:?}");
    }
    // What the list names, and API keys (every room by default), go through.
    assert_eq!(publish(user, "team:7").await.status, 201);
    assert_eq!(publish(("x-api-key", KEY.into()), "admins").await.status, 201);
    let mut msgs = pubsub.on_message();
    let mut channels = Vec::new();
    for _ in 0..2 {
        let m = tokio::time::timeout(Duration::from_secs(5), msgs.next()).await.unwrap().unwrap();
        channels.push(m.get_channel_name().to_owned());
    }
    assert_eq!(channels, ["socket.io#/#team:7#", "socket.io#/#admins#"]);
});

both_transports!(api_keys_may_be_kept_from_rooms_too, |b: Backend| async move {
    let rt = app(&b, &[("notify_socketio_rooms_keys", "none".into())]);
    let body = json!({"topic": "chat", "event": "alert", "socketio_room": "admins"});
    send(http().post(rt.url("/notify/publish")).header("x-api-key", KEY).json(&body)).await.problem(403, "forbidden");
    drop(rt);
    let rt = app(&b, &[("notify_socketio_rooms_keys", "broadcast".into())]);
    send(http().post(rt.url("/notify/publish")).header("x-api-key", KEY).json(&body)).await.problem(403, "forbidden");
    let ok = json!({"topic": "chat", "event": "alert", "socketio_room": "broadcast"});
    assert_eq!(send(http().post(rt.url("/notify/publish")).header("x-api-key", KEY).json(&ok)).await.status, 201);
});

// ── Item 7: redrive is rate limited ───────────────────────────────────────

both_transports!(the_redrive_past_the_limit_is_a_429, |b: Backend| async move {
    let rt = app(&b, &[("notify_redrive_rate_limit", "fixed_window 2/60s".into())]);
    let alice = login(&b, 1, "alice").await;
    let redrive = |h: (&'static str, String)| send(http().post(rt.url("/notify/webhooks/redrive")).header(h.0, h.1));
    inside_one_minute(Duration::from_secs(20)).await;
    for _ in 0..2 {
        let r = redrive(("x-api-key", KEY.into())).await;
        assert_eq!(r.status, 202, "{r:?}");
        assert!(r.header("ratelimit").unwrap().starts_with("\"redrive\";"), "{r:?}");
    }
    redrive(("x-api-key", KEY.into())).await.too_many("quota-exceeded");
    assert_eq!(redrive(("cookie", alice)).await.status, 202, "another caller has its own budget");
    rt.assert_every_variable_declared();
});
