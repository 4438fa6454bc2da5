//! `/notify/...` through the real spin.toml, on both transports: publish,
//! long polls and SSE across hosts, idempotency, presence, the Socket.IO
//! packet, bad input, and round trips. Webhooks are in notify_webhooks.rs.

use futures::StreamExt;
use serde_json::{json, Value};
use spindle_e2e::*;
use std::time::{Duration, Instant};

const SECRET: &str = "e2e-notify-secret-0123456789";
const KEY: &str = "notify-e2e-api-key";

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The app on `b` with a session secret and one API key; `extra` wins.
fn app(b: &Backend, extra: &[(&'static str, String)]) -> Runner {
    let mut vars: Vec<(&'static str, String)> = vec![("session_secrets", SECRET.into()), ("api_keys", sha256_hex(KEY))];
    vars.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    vars.extend(extra.iter().cloned());
    b.app(&vars)
}

/// A logged-in session, stored as connect-redis stores it (as an Express
/// app sharing the secret would): the `Cookie` header value.
async fn login(b: &Backend, id: i64, username: &str) -> String {
    express_session(&b.redis, SECRET, "notifyE2E", id, username).await
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    Key,
    Cookie(&'a str),
    Anonymous,
}

fn with(rb: reqwest::RequestBuilder, auth: Auth<'_>) -> reqwest::RequestBuilder {
    match auth {
        Auth::Key => rb.header("x-api-key", KEY),
        Auth::Cookie(c) => rb.header("cookie", c),
        Auth::Anonymous => rb,
    }
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
        assert_eq!(self.body["status"], status);
        self
    }
}

async fn send(rb: reqwest::RequestBuilder) -> Resp {
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    Resp { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
}

async fn publish(rt: &Runner, auth: Auth<'_>, body: &Value) -> Resp {
    send(with(http().post(rt.url("/notify/publish")).json(body), auth)).await
}

async fn get(rt: &Runner, auth: Auth<'_>, path: &str) -> Resp {
    send(with(http().get(rt.url(path)), auth)).await
}

fn ids(events: &Value) -> Vec<String> {
    events.as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

/// "1767225600000-3" → (1767225600000, 3), for ordering.
fn id_key(id: &str) -> (u64, u64) {
    let (a, b) = id.split_once('-').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

// ── SSE client ───────────────────────────────────────────────────────────

#[derive(Debug, Default, Clone)]
struct Message {
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
    retry: Option<u64>,
    comments: usize,
}

struct Sse {
    stream: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
    /// The last `id:` seen, as an EventSource keeps it.
    last_id: Option<String>,
    ended: bool,
}

impl Sse {
    async fn open(rt: &Runner, auth: Auth<'_>, query: &str, last_event_id: Option<&str>) -> Sse {
        let client = reqwest::Client::builder().build().unwrap();
        let mut rb = with(client.get(rt.url(&format!("/notify/stream?{query}"))), auth);
        if let Some(id) = last_event_id {
            rb = rb.header("last-event-id", id);
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        assert_eq!(r.headers()["cache-control"], "no-store");
        Sse { stream: Box::pin(r.bytes_stream()), buf: String::new(), last_id: None, ended: false }
    }

    /// The next message (a block ending in a blank line), or None at the end
    /// of the stream or after `timeout`.
    async fn message(&mut self, timeout: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                let mut m = Message::default();
                for line in block.lines() {
                    if line.starts_with(':') {
                        m.comments += 1;
                        continue;
                    }
                    let (field, value) = line.split_once(": ").unwrap_or((line, ""));
                    match field {
                        "id" => m.id = Some(value.to_owned()),
                        "event" => m.event = Some(value.to_owned()),
                        "data" => m.data = Some(value.to_owned()),
                        "retry" => m.retry = value.parse().ok(),
                        "" => {}
                        other => panic!("unexpected SSE field {other:?} in {block:?}"),
                    }
                }
                if m.id.is_some() {
                    self.last_id = m.id.clone();
                }
                return Some(m);
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return None,
                Ok(None) | Ok(Some(Err(_))) => self.ended = true,
                Ok(Some(Ok(chunk))) => self.buf.push_str(std::str::from_utf8(&chunk).unwrap()),
            }
        }
    }

    /// The next event (a message with data), skipping comments and id-only messages.
    async fn event(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self.message(left).await?;
            if let Some(d) = m.data {
                let v: Value = serde_json::from_str(&d).unwrap();
                assert_eq!(m.id.as_deref(), v["id"].as_str(), "id: matches the event");
                assert_eq!(m.event.as_deref(), v["event"].as_str(), "event: matches the event");
                return Some(v);
            }
        }
    }
}

// ── Tests ────────────────────────────────────────────────────────────────

both_transports!(publish_then_poll, |b: Backend| async move {
    let rt = app(&b, &[]);
    let alice = login(&b, 1, "alice").await;

    // Live listeners get the event JSON on the topic's channel.
    let mut pubsub = b.redis.client().get_async_pubsub().await.unwrap();
    pubsub.subscribe("spindle:notify:topic:news").await.unwrap();

    // Sent as text: serde_json here would sort the members.
    let text = r#"{"topic":"news","event":"story","data":{"z":1,"a":[true,null,1.5]}}"#;
    let r = send(with(http().post(rt.url("/notify/publish")).header("content-type", "application/json").body(text), Auth::Key)).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["duplicate"], false);
    assert_eq!(r.body["topic"], "news");
    let first = r.body["id"].as_str().unwrap().to_owned();
    assert!(r.header("ratelimit").unwrap().starts_with("\"notify\";r=119;"), "{r:?}");
    assert_eq!(r.header("cache-control"), Some("no-store"));

    let msg = tokio::time::timeout(Duration::from_secs(5), pubsub.on_message().next()).await.unwrap().unwrap();
    let live: String = msg.get_payload().unwrap();
    assert!(live.starts_with(&format!("{{\"id\":\"{first}\",\"topic\":\"news\",\"event\":\"story\",\"data\":{{\"z\":1,")), "{live}");
    let live: Value = serde_json::from_str(&live).unwrap();
    assert!(live["published_at"].as_str().unwrap().ends_with('Z'));

    // From the oldest: the event, its data in the publisher's member order.
    let r = get(&rt, Auth::Cookie(&alice), "/notify/poll?topic=news&after=0&wait_ms=0").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(ids(&r.body["events"]), vec![first.clone()]);
    assert_eq!(r.body["next"], first);
    let e = &r.body["events"][0];
    assert_eq!(e["event"], "story");
    assert_eq!(e["data"], json!({ "z": 1, "a": [true, null, 1.5] }));
    assert_eq!(serde_json::to_string(&e["data"]).unwrap(), r#"{"a":[true,null,1.5],"z":1}"#, "(sorted by serde here)");
    let raw = http().get(rt.url("/notify/poll?topic=news&after=0&wait_ms=0")).header("cookie", &alice).send().await.unwrap();
    assert!(raw.text().await.unwrap().contains(r#""data":{"z":1,"a":[true,null,1.5]}"#), "member order kept on the wire");

    // No cursor: from now. Nothing arrives, yet `next` is usable.
    let started = Instant::now();
    let r = get(&rt, Auth::Key, "/notify/poll?topic=news&wait_ms=300").await;
    assert_eq!(r.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(250), "waited {:?}", started.elapsed());
    assert_eq!(r.body["events"], json!([]));
    assert_eq!(r.body["next"], first);
    // A topic nobody published to: next is 0-0 (so nothing published later is missed).
    let r = get(&rt, Auth::Key, "/notify/poll?topic=empty&wait_ms=0").await;
    assert_eq!((r.body["events"].clone(), r.body["next"].clone()), (json!([]), json!("0-0")));

    // A long poll wakes up for a publish.
    let waiter = {
        let url = rt.url(&format!("/notify/poll?topic=news&after={first}&wait_ms=10000"));
        tokio::spawn(async move {
            let started = Instant::now();
            let v: Value = http().get(url).header("x-api-key", KEY).send().await.unwrap().json().await.unwrap();
            (v, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = publish(&rt, Auth::Cookie(&alice), &json!({ "topic": "news", "event": "story", "data": 2 })).await;
    assert_eq!(second.status, 201);
    let (v, took) = waiter.await.unwrap();
    assert_eq!(ids(&v["events"]), vec![second.body["id"].as_str().unwrap().to_owned()]);
    assert!(took < Duration::from_secs(5), "woke after {took:?}");
    assert!(id_key(second.body["id"].as_str().unwrap()) > id_key(&first));

    // Keys: the stream carries the topic's hash tag and a TTL.
    let pttl: i64 = redis::cmd("PTTL").arg("spindle:notify:{news}:events").query_async(&mut b.redis.conn().await).await.unwrap();
    assert!(pttl > 6 * 86_400_000, "retention TTL {pttl}");
});

both_transports!(user_topics_are_private, |b: Backend| async move {
    let rt = app(&b, &[]);
    let (alice, bob) = (login(&b, 1, "alice").await, login(&b, 2, "bob").await);
    let body = json!({ "topic": "user:1", "event": "dm", "data": "hi" });
    assert_eq!(publish(&rt, Auth::Cookie(&alice), &body).await.status, 201);
    // The app's backend (an API key) may notify a user…
    assert_eq!(publish(&rt, Auth::Key, &body).await.status, 201);
    // …but nobody else may publish there or read it.
    publish(&rt, Auth::Cookie(&bob), &body).await.problem(403, "forbidden");
    for path in ["/notify/poll?topic=user:1&after=0&wait_ms=0", "/notify/stream?topic=user:1", "/notify/presence?topic=user:1"] {
        get(&rt, Auth::Cookie(&bob), path).await.problem(403, "forbidden");
        get(&rt, Auth::Key, path).await.problem(403, "forbidden");
    }
    let r = get(&rt, Auth::Cookie(&alice), "/notify/poll?topic=user:1&after=0&wait_ms=0").await;
    assert_eq!(r.body["events"].as_array().unwrap().len(), 2);
    // A Socket.IO room is authorised like a topic of that name.
    let sio = json!({ "topic": "news", "event": "dm", "socketio_room": "user:1" });
    publish(&rt, Auth::Cookie(&bob), &sio).await.problem(403, "forbidden");
    // No credentials, or an unknown key: 401.
    publish(&rt, Auth::Anonymous, &json!({ "topic": "news", "event": "e" })).await.problem(401, "unauthorized");
    get(&rt, Auth::Anonymous, "/notify/poll?topic=news").await.problem(401, "unauthorized");
    let r = send(http().get(rt.url("/notify/poll?topic=news")).header("x-api-key", "wrong")).await;
    r.problem(401, "unauthorized");
});

both_transports!(across_hosts_each_event_once_in_order, |b: Backend| async move {
    let (a, c) = (app(&b, &[]), app(&b, &[]));
    const N: usize = 30;
    // A reader on host C, chaining cursors, while events are published
    // alternately through A and C.
    let reader = {
        let url = c.url("/notify/poll");
        tokio::spawn(async move {
            let mut cursor: Option<String> = Some("0".into());
            let mut got: Vec<Value> = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            while got.len() < N && Instant::now() < deadline {
                let mut q = vec![("topic", "feed".to_string()), ("wait_ms", "2000".to_string())];
                if let Some(c) = &cursor {
                    q.push(("after", c.clone()));
                }
                let v: Value = http().get(&url).query(&q).header("x-api-key", KEY).send().await.unwrap().json().await.unwrap();
                got.extend(v["events"].as_array().unwrap().iter().cloned());
                cursor = Some(v["next"].as_str().unwrap().to_owned());
            }
            got
        })
    };
    for i in 0..N {
        let host = if i % 2 == 0 { &a } else { &c };
        let r = publish(host, Auth::Key, &json!({ "topic": "feed", "event": "n", "data": { "i": i } })).await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    let got = reader.await.unwrap();
    let seq: Vec<u64> = got.iter().map(|e| e["data"]["i"].as_u64().unwrap()).collect();
    assert_eq!(seq, (0..N as u64).collect::<Vec<_>>(), "each event exactly once, in publish order");
    let keys: Vec<(u64, u64)> = got.iter().map(|e| id_key(e["id"].as_str().unwrap())).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "ids increase: {keys:?}");
});

both_transports!(sse_resumes_with_last_event_id, |b: Backend| async move {
    let extra = [("notify_sse_heartbeat", "300ms".to_string()), ("notify_sse_retry", "250ms".to_string())];
    let (a, c) = (app(&b, &extra), app(&b, &extra));
    let alice = login(&b, 1, "alice").await;
    let pubs = |n: std::ops::Range<u64>, host: &'static str| {
        let rt = if host == "a" { a.url("/notify/publish") } else { c.url("/notify/publish") };
        async move {
            for i in n {
                let r = http().post(&rt).header("x-api-key", KEY).json(&json!({ "topic": "live", "event": "tick", "data": i })).send().await.unwrap();
                assert_eq!(r.status(), 201);
            }
        }
    };

    // A stream opened with no cursor starts at the end, and says where: its
    // first message is `retry:` and `id: <the current end>`.
    pubs(0..2, "a").await;
    let mut s = Sse::open(&a, Auth::Cookie(&alice), "topic=live", None).await;
    let hello = s.message(Duration::from_secs(5)).await.unwrap();
    assert_eq!(hello.retry, Some(250));
    let start = hello.id.clone().unwrap();
    assert_ne!(start, "0-0");

    pubs(2..7, "c").await;
    let mut seen: Vec<u64> = Vec::new();
    while seen.len() < 5 {
        let e = s.event(Duration::from_secs(10)).await.expect("an event");
        seen.push(e["data"].as_u64().unwrap());
    }
    assert_eq!(seen, vec![2, 3, 4, 5, 6]);
    // Silence brings heartbeats (comments), not events.
    let m = s.message(Duration::from_secs(5)).await.unwrap();
    assert!(m.comments > 0 && m.data.is_none(), "{m:?}");
    let resume_at = s.last_id.clone().unwrap();
    drop(s);

    // While the client is away, more is published; it comes back through
    // the other host with Last-Event-ID and gets exactly what it missed.
    pubs(7..12, "a").await;
    let mut s = Sse::open(&c, Auth::Cookie(&alice), "topic=live&after=0", Some(&resume_at)).await;
    for want in 7..12 {
        assert_eq!(s.event(Duration::from_secs(10)).await.unwrap()["data"], want);
    }
    pubs(12..13, "c").await;
    assert_eq!(s.event(Duration::from_secs(10)).await.unwrap()["data"], 12);
    assert!(s.event(Duration::from_millis(800)).await.is_none(), "nothing more, nothing twice");

    // A client that connected without a cursor and saw no event resumes from
    // the id the stream opened with: what was published in between is not lost.
    let mut quiet = Sse::open(&a, Auth::Key, "topic=quiet", None).await;
    let opened_at = quiet.message(Duration::from_secs(5)).await.unwrap().id.unwrap();
    assert_eq!(opened_at, "0-0");
    drop(quiet);
    let r = publish(&c, Auth::Key, &json!({ "topic": "quiet", "event": "x", "data": 1 })).await;
    let mut quiet = Sse::open(&a, Auth::Key, "topic=quiet", Some(&opened_at)).await;
    assert_eq!(quiet.event(Duration::from_secs(10)).await.unwrap()["id"], r.body["id"]);
});

both_transports!(an_sse_response_ends_cleanly_after_its_lifetime, |b: Backend| async move {
    let rt = app(&b, &[("notify_sse_lifetime", "2s".into()), ("notify_sse_heartbeat", "500ms".into())]);
    let started = Instant::now();
    let mut s = Sse::open(&rt, Auth::Key, "topic=t&after=0", None).await;
    let mut comments = 0;
    while let Some(m) = s.message(Duration::from_secs(10)).await {
        comments += m.comments;
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(5), "ended after {took:?}");
    assert!(comments >= 2, "heartbeats every 500ms: {comments}");
    assert!(s.ended);
});

both_transports!(durability_the_reader_is_killed_mid_stream, |b: Backend| async move {
    let publisher = app(&b, &[]);
    let mut reader_host = Some(app(&b, &[]));
    const N: u64 = 40;
    let url = publisher.url("/notify/publish");
    let feeder = tokio::spawn(async move {
        for i in 0..N {
            let r = http().post(&url).header("x-api-key", KEY).json(&json!({ "topic": "durable", "event": "n", "data": i })).send().await.unwrap();
            assert_eq!(r.status(), 201);
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    });
    let mut got: Vec<u64> = Vec::new();
    let mut last: Option<String> = Some("0-0".into());
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < N as usize && Instant::now() < deadline {
        let host = reader_host.get_or_insert_with(|| app(&b, &[]));
        let mut s = Sse::open(host, Auth::Key, "topic=durable", last.as_deref()).await;
        loop {
            match s.event(Duration::from_secs(5)).await {
                Some(e) => {
                    got.push(e["data"].as_u64().unwrap());
                    last = Some(e["id"].as_str().unwrap().to_owned());
                    // Kill the host serving the stream, twice, mid-stream.
                    if (got.len() == 10 && kills == 0) || (got.len() == 25 && kills == 1) {
                        kills += 1;
                        reader_host = None; // drops the runner: SIGKILL
                    }
                }
                None => break,
            }
            if reader_host.is_none() || got.len() == N as usize {
                break;
            }
        }
        // The client itself "crashes" too: a new connection every time, from `last`.
    }
    feeder.await.unwrap();
    assert_eq!(kills, 2);
    assert_eq!(got, (0..N).collect::<Vec<_>>(), "nothing lost, nothing twice");
});

both_transports!(idempotency_keys_make_a_retry_a_no_op, |b: Backend| async move {
    let rt = app(&b, &[("notify_rate_limit", "fixed_window 5/1h".into())]);
    let alice = login(&b, 1, "alice").await;
    let body = json!({ "topic": "orders", "event": "paid", "data": { "order": 7 }, "idempotency_key": "order-7-paid" });
    let first = publish(&rt, Auth::Cookie(&alice), &body).await;
    assert_eq!(first.status, 201);
    assert!(first.header("ratelimit").unwrap().contains(";r=4;"));
    for _ in 0..3 {
        let again = publish(&rt, Auth::Cookie(&alice), &body).await;
        assert_eq!(again.status, 200, "{again:?}");
        assert_eq!(again.body["id"], first.body["id"]);
        assert_eq!(again.body["duplicate"], true);
        assert!(again.header("ratelimit").is_none(), "a replay takes no budget");
    }
    let len: u64 = redis::cmd("XLEN").arg("spindle:notify:{orders}:events").query_async(&mut b.redis.conn().await).await.unwrap();
    assert_eq!(len, 1);
    // The same key for a different publish is a conflict, not a silent no-op.
    let mut other = body.clone();
    other["data"] = json!({ "order": 8 });
    publish(&rt, Auth::Cookie(&alice), &other).await.problem(409, "conflict");
    // Keys are per publisher: the same key from someone else is their own publish.
    let bob = login(&b, 2, "bob").await;
    let theirs = publish(&rt, Auth::Cookie(&bob), &body).await;
    assert_eq!(theirs.status, 201);
    assert_ne!(theirs.body["id"], first.body["id"]);
    // The budget: alice spent 1 (replays are free).
    let next = publish(&rt, Auth::Cookie(&alice), &json!({ "topic": "orders", "event": "x" })).await;
    assert!(next.header("ratelimit").unwrap().contains(";r=3;"), "{next:?}");
});

both_transports!(a_denied_publish_is_a_429_and_writes_nothing, |b: Backend| async move {
    let rt = app(&b, &[("notify_rate_limit", "fixed_window 2/1h".into())]);
    for _ in 0..2 {
        assert_eq!(publish(&rt, Auth::Key, &json!({ "topic": "t", "event": "e" })).await.status, 201);
    }
    let r = publish(&rt, Auth::Key, &json!({ "topic": "t", "event": "e" })).await;
    r.problem(429, "quota-exceeded");
    assert!(r.header("retry-after").is_some());
    assert!(r.header("ratelimit-policy").unwrap().starts_with("\"notify\";q=2;"));
    let len: u64 = redis::cmd("XLEN").arg("spindle:notify:{t}:events").query_async(&mut b.redis.conn().await).await.unwrap();
    assert_eq!(len, 2);
    let keys: Vec<String> = redis::cmd("KEYS").arg("@upstash/ratelimit:notify:*").query_async(&mut b.redis.conn().await).await.unwrap();
    assert_eq!(keys.len(), 1, "the notify policy's own counter: {keys:?}");
    // On a cluster the identifier is a {hash tag} (rate_limit_keys=cluster).
    let prefix = if b.on_cluster() { "@upstash/ratelimit:notify:{key:" } else { "@upstash/ratelimit:notify:key:" };
    assert!(keys[0].starts_with(prefix), "{keys:?}");
});

both_transports!(presence_entries_expire, |b: Backend| async move {
    let rt = app(&b, &[("notify_presence_ttl", "1s".into())]);
    let (alice, bob) = (login(&b, 1, "alice").await, login(&b, 2, "bob").await);
    let beat = |cookie: String| {
        let url = rt.url("/notify/presence");
        async move { send(http().post(url).header("cookie", cookie).json(&json!({ "topic": "room" }))).await }
    };
    let r = beat(alice.clone()).await;
    assert_eq!((r.status, r.body["present"].clone()), (200, json!(1)), "{r:?}");
    assert_eq!(beat(bob.clone()).await.body["present"], 2);
    let list = get(&rt, Auth::Cookie(&alice), "/notify/presence?topic=room").await;
    let names: Vec<&str> = list.body["present"].as_array().unwrap().iter().map(|p| p["username"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["bob", "alice"], "most recent first");
    assert_eq!(list.body["present"][0]["id"], 2);
    assert!(list.body["present"][0]["last_seen"].as_str().unwrap().ends_with('Z'));
    // A repeated heartbeat does not add a member.
    assert_eq!(beat(alice.clone()).await.body["present"], 2);

    tokio::time::sleep(Duration::from_millis(700)).await;
    beat(alice.clone()).await; // alice stays, bob's heartbeat ages out
    tokio::time::sleep(Duration::from_millis(500)).await;
    let list = get(&rt, Auth::Key, "/notify/presence?topic=room").await;
    assert_eq!(list.body["present"].as_array().unwrap().len(), 1, "{list:?}");
    assert_eq!(list.body["present"][0]["username"], "alice");
    // The read trimmed bob from Redis, too.
    let n: u64 = redis::cmd("ZCARD").arg("spindle:notify:{room}:presence").query_async(&mut b.redis.conn().await).await.unwrap();
    assert_eq!(n, 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(get(&rt, Auth::Key, "/notify/presence?topic=room").await.body["present"], json!([]));
    // Presence is for users; an API key may list but not be present.
    send(http().post(rt.url("/notify/presence")).header("x-api-key", KEY).json(&json!({ "topic": "room" })))
        .await
        .problem(403, "forbidden");
});

both_transports!(a_socketio_publish_carries_the_emitter_packet, |b: Backend| async move {
    let rt = app(&b, &[]);
    let mut pubsub = b.redis.client().get_async_pubsub().await.unwrap();
    pubsub.subscribe("socket.io#/#room1#").await.unwrap();
    let data = r#"{"b":1,"10":"x","2":[1.0,-5,1e3],"s":"héllo"}"#;
    let body = format!(r#"{{"topic":"chat","event":"message","data":{data},"socketio_room":"room1"}}"#);
    let r = send(http().post(rt.url("/notify/publish")).header("x-api-key", KEY).header("content-type", "application/json").body(body)).await;
    assert_eq!(r.status, 201, "{r:?}");
    let msg = tokio::time::timeout(Duration::from_secs(5), pubsub.on_message().next()).await.unwrap().unwrap();
    let want = spindle::notify::socketio::event_packet("/", "room1", "message", &spindle::notify::json::Json::parse(data).unwrap());
    assert_eq!(msg.get_payload_bytes(), &want[..], "the packet, byte for byte, over {:?}", b.transport);
    // Object.keys order: "2", "10", then "b", "s"; 1.0 and 1e3 are integers in JS.
    assert_eq!(&want[..4], &[0x93, 0xa7, b'e', b'm']);
});

both_transports!(bad_input_is_refused_with_problems, |b: Backend| async move {
    let rt = app(&b, &[("notify_max_payload_bytes", "1024".into())]);
    let alice = login(&b, 1, "alice").await;
    let before = command_count(&b.redis).await;

    // Too large: 413 before anything else.
    let big = json!({ "topic": "t", "event": "e", "data": "x".repeat(2000) });
    publish(&rt, Auth::Key, &big).await.problem(413, "payload-too-large");
    // Malformed bodies, topics, events: 400; no JSON content type: 415.
    for body in [
        json!({ "topic": "a b", "event": "e" }),
        json!({ "topic": "", "event": "e" }),
        json!({ "topic": "t{x}", "event": "e" }),
        json!({ "topic": "user:007", "event": "e" }),
        json!({ "topic": "User:1", "event": "e" }),
        json!({ "topic": "x".repeat(129), "event": "e" }),
        json!({ "topic": "t", "event": "" }),
        json!({ "topic": "t", "event": "a\nb" }),
        json!({ "topic": "t" }),
        json!({ "topic": "t", "event": "e", "surprise": 1 }),
        json!({ "topic": "t", "event": "e", "idempotency_key": "" }),
        json!({ "topic": "t", "event": "e", "socketio_room": "r r" }),
        json!(["t", "e"]),
    ] {
        publish(&rt, Auth::Key, &body).await.problem(400, "bad-request");
    }
    let deep = format!(r#"{{"topic":"t","event":"e","data":{}{}}}"#, "[".repeat(40), "]".repeat(40));
    send(http().post(rt.url("/notify/publish")).header("x-api-key", KEY).header("content-type", "application/json").body(deep))
        .await
        .problem(400, "bad-request");
    send(http().post(rt.url("/notify/publish")).header("x-api-key", KEY).body(r#"{"topic":"t","event":"e"}"#))
        .await
        .problem(415, "unsupported-media-type");
    send(http().post(rt.url("/notify/publish")).header("x-api-key", KEY).header("content-type", "application/json").body("{"))
        .await
        .problem(400, "bad-request");
    // Bad topics and cursors on the read side.
    for path in [
        "/notify/poll",
        "/notify/poll?topic=",
        "/notify/poll?topic=a%20b",
        "/notify/poll?topic=t&after=yesterday",
        "/notify/poll?topic=t&after=1-2-3",
        "/notify/poll?topic=t&after=%24",
        "/notify/poll?topic=t&wait_ms=soon",
        "/notify/stream?topic=t&after=x",
        "/notify/stream",
        "/notify/presence?topic=a*",
        "/notify/webhooks/dead-letters?limit=0",
    ] {
        get(&rt, Auth::Key, path).await.problem(400, "bad-request");
    }
    send(http().get(rt.url("/notify/stream?topic=t")).header("x-api-key", KEY).header("last-event-id", "garbage"))
        .await
        .problem(400, "bad-request");
    for body in [json!({ "topic": "a b" }), json!(["room"]), json!({ "topic": "room", "x": 1 })] {
        send(http().post(rt.url("/notify/presence")).header("cookie", &alice).json(&body)).await.problem(400, "bad-request");
    }
    // Unknown routes: 404; wrong methods: 405 with Allow.
    for path in ["/notify", "/notify/", "/notify/nope", "/notify/publish/x", "/notify/webhooks/a/b"] {
        get(&rt, Auth::Key, path).await.problem(404, "not-found");
    }
    let r = get(&rt, Auth::Key, "/notify/publish").await;
    r.problem(405, "method-not-allowed");
    assert_eq!(r.header("allow"), Some("POST"));
    let r = send(http().delete(rt.url("/notify/poll")).header("x-api-key", KEY)).await;
    assert_eq!(r.problem(405, "method-not-allowed").header("allow"), Some("GET"));
    let r = send(http().put(rt.url("/notify/presence")).header("x-api-key", KEY)).await;
    assert_eq!(r.problem(405, "method-not-allowed").header("allow"), Some("GET, POST"));
    assert_eq!(command_count(&b.redis).await, before, "none of that reached Redis");

    // Cross-site state changes with a session are refused (CSRF).
    let r = send(http().post(rt.url("/notify/publish")).header("cookie", &alice).header("origin", "https://evil.example").json(&json!({ "topic": "t", "event": "e" }))).await;
    r.problem(403, "forbidden");
});

/// The commands clients sent while `work` ran, and how many ran inside scripts.
async fn monitor<F: std::future::Future<Output = ()>>(redis: &Redis, work: F) -> (Vec<String>, usize) {
    let m = Monitor::start(redis).await;
    work.await;
    let (sent, lua) = m.take().await;
    (sent, lua.len())
}


both_transports!(a_publish_is_one_round_trip, |b: Backend| async move {
    let rt = app(&b, &[]);
    let alice = login(&b, 1, "alice").await;
    // Warm up: load the script (EVALSHA, NOSCRIPT, EVAL) and the pooled connections.
    for _ in 0..2 {
        publish(&rt, Auth::Key, &json!({ "topic": "rt", "event": "e" })).await;
    }
    let (evalsha, eval) = (cmdstat(&b.redis, "evalsha").await, cmdstat(&b.redis, "eval").await);
    let (sent, in_scripts) = monitor(&b.redis, async {
        for i in 0..10 {
            let r = publish(&rt, Auth::Key, &json!({ "topic": "rt", "event": "e", "data": i, "idempotency_key": format!("k{i}") })).await;
            assert_eq!(r.status, 201);
        }
    })
    .await;
    // With an API key: idempotency check, rate limit, XADD and PUBLISH are
    // one EVALSHA on the wire. On a cluster they are single-slot steps: a GET
    // of the idempotency key, the limiter, the publish (docs/notify.md).
    let one: &[&str] = if b.on_cluster() { &["GET", "EVALSHA", "EVALSHA"] } else { &["EVALSHA"] };
    assert_eq!(sent, one.repeat(10), "{sent:?}");
    assert!(in_scripts >= 10 * 4, "the script's own commands run inside Redis: {in_scripts}");
    let scripts = 10 * one.iter().filter(|c| **c == "EVALSHA").count() as u64;
    assert_eq!(cmdstat(&b.redis, "evalsha").await - evalsha, scripts);
    assert_eq!(cmdstat(&b.redis, "eval").await, eval);

    // With a session: the session GET, then the same one EVALSHA.
    let (sent, _) = monitor(&b.redis, async {
        for _ in 0..5 {
            assert_eq!(publish(&rt, Auth::Cookie(&alice), &json!({ "topic": "rt", "event": "e" })).await.status, 201);
        }
    })
    .await;
    let one: &[&str] = if b.on_cluster() { &["GET", "EVALSHA", "EVALSHA"] } else { &["GET", "EVALSHA"] };
    assert_eq!(sent, one.repeat(5), "{sent:?}");

    // A long poll with a cursor over TCP is one XREAD (BLOCK); over REST, the
    // same bound in non-blocking XREADs. Around it, the reader lease
    // (notify::readers): the open-rate EVALSHA and the lease EVALSHA before,
    // its ZREM after.
    let last = get(&rt, Auth::Key, "/notify/poll?topic=rt&wait_ms=0").await.body["next"].as_str().unwrap().to_owned();
    let (sent, _) = monitor(&b.redis, async {
        get(&rt, Auth::Key, &format!("/notify/poll?topic=rt&after={last}&wait_ms=600")).await;
    })
    .await;
    match b.transport {
        Transport::Tcp | Transport::TcpByName => assert_eq!(sent, vec!["EVALSHA", "EVALSHA", "XREAD", "ZREM"], "{sent:?}"),
        Transport::Rest => {
            let n = sent.len();
            assert!(n >= 5 && sent[..2] == ["EVALSHA", "EVALSHA"] && sent[n - 1] == "ZREM", "{sent:?}");
            assert!(sent[2..n - 1].iter().all(|c| c == "XREAD") && (2..=5).contains(&(n - 3)), "{sent:?}")
        }
    }
});
