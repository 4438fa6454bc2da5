//! Webhooks through the real apps (notify in spin.toml, notify-worker on the
//! Redis trigger in spin-worker.toml, supervised), on both transports: a local receiver checks Standard Webhooks
//! signatures; failures are retried with backoff and dead-lettered; a slow
//! receiver holds nobody up; two hosts deliver each event once.

use serde_json::{json, Value};
use spindle_e2e::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const SECRET: &str = "e2e-webhook-secret-0123456789";
const KEY: &str = "webhook-e2e-api-key";

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// One host: the HTTP app and its webhook worker.
struct App {
    http: Runner,
    worker: Worker,
}

impl std::ops::Deref for App {
    type Target = Runner;
    fn deref(&self) -> &Runner {
        &self.http
    }
}

/// The worker app's own variables (spin-worker.toml declares these).
const WORKER_VARS: &[&str] = &[
    "webhook_origin",
    "notify_webhook_allow",
    "notify_webhook_timeout",
    "notify_webhook_max_attempts",
    "notify_webhook_backoff",
    "notify_webhook_max_pending",
    "notify_webhook_claim_budget",
];
/// Of those, the ones only the worker declares (the HTTP app would refuse them on the runner).
const WORKER_ONLY: &[&str] = &["notify_webhook_max_pending", "notify_webhook_claim_budget"];
const LOCAL: &str = "http://127.0.0.1:*";

/// Both apps' variables: webhooks allowed to any local port; `extra` wins.
fn vars(extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut vars: Vec<(&'static str, String)> = vec![
        ("session_secrets", SECRET.into()),
        ("api_keys", sha256_hex(KEY)),
        ("webhook_origin", LOCAL.into()),
        ("notify_webhook_allow", LOCAL.into()),
    ];
    vars.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    vars.extend(extra.iter().cloned());
    vars
}

/// The HTTP app alone, with the variables of [`vars`] it declares.
fn http_app(b: &Backend, vars: &[(&'static str, String)]) -> Runner {
    b.app(&vars.iter().filter(|(k, _)| !WORKER_ONLY.contains(k)).cloned().collect::<Vec<_>>())
}

/// The worker alone, with the variables of [`vars`] it declares.
fn worker(b: &Backend, vars: &[(&'static str, String)]) -> Worker {
    b.worker(&vars.iter().filter(|(k, _)| WORKER_VARS.contains(k)).cloned().collect::<Vec<_>>())
}

/// A host: the HTTP app and its worker, on [`vars`]`(extra)`.
fn app(b: &Backend, extra: &[(&'static str, String)]) -> App {
    let vars = vars(extra);
    App { http: http_app(b, &vars), worker: worker(b, &vars) }
}

async fn login(b: &Backend, id: i64, username: &str) -> String {
    express_session(&b.redis, SECRET, "hookE2E", id, username).await
}

#[path = "support/receiver.rs"]
mod receiver;
use receiver::{verify, Hit, Receiver};

#[derive(Debug)]
struct Resp {
    status: u16,
    content_type: String,
    body: Value,
}

async fn send(rb: reqwest::RequestBuilder) -> Resp {
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let content_type = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let body = serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null);
    Resp { status, content_type, body }
}

fn key(rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    rb.header("x-api-key", KEY)
}

async fn create(rt: &Runner, auth: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder, topic: &str, url: &str) -> Resp {
    send(auth(http().post(rt.url("/notify/webhooks")).json(&json!({ "topic": topic, "url": url })))).await
}

async fn publish(rt: &Runner, topic: &str, data: Value) -> String {
    let r = send(key(http().post(rt.url("/notify/publish")).json(&json!({ "topic": topic, "event": "happened", "data": data })))).await;
    assert_eq!(r.status, 201, "{r:?}");
    r.body["id"].as_str().unwrap().to_owned()
}

/// (due, pending) deliveries, in all.
async fn delivery_keys(b: &Backend) -> (u64, u64) {
    let mut c = b.redis.conn().await;
    let (mut due, mut pending) = (0, 0);
    for k in all_keys(b, DUE).await {
        due += redis::cmd("ZCARD").arg(k).query_async::<u64>(&mut c).await.unwrap();
    }
    for k in all_keys(b, PENDING).await {
        pending += redis::cmd("HLEN").arg(k).query_async::<u64>(&mut c).await.unwrap();
    }
    (due, pending)
}

/// `deliveries:owners`: each owner's pending count, as (owner, n) pairs
/// (on a cluster, summed over the topics).
async fn owner_counts(b: &Backend) -> Vec<(String, u64)> {
    let mut sum: std::collections::BTreeMap<String, u64> = Default::default();
    for k in all_keys(b, OWNERS).await {
        let v: Vec<(String, u64)> = redis::cmd("HGETALL").arg(k).query_async(&mut b.redis.conn().await).await.unwrap();
        v.into_iter().for_each(|(o, n)| *sum.entry(o).or_default() += n);
    }
    sum.into_iter().collect()
}

// The single-node layout's keys. On a cluster (`rate_limit_keys=cluster`)
// each topic has its own, under its tag: see `in_layout`.
const PENDING: &str = "spindle:notify:deliveries:pending";
const DUE: &str = "spindle:notify:deliveries:due";
const OWNERS: &str = "spindle:notify:deliveries:owners";
const REGISTRY: &str = "spindle:notify:webhooks";

/// `node_key` for `topic` in the backend's layout (a `*` topic: a pattern
/// for every topic's).
fn in_layout(b: &Backend, node_key: &str, topic: &str) -> String {
    match (b.on_cluster(), node_key) {
        (false, _) => node_key.to_string(),
        (true, REGISTRY) => format!("spindle:notify:{{{topic}}}:webhook-defs"),
        (true, _) => node_key.replacen("spindle:notify:", &format!("spindle:notify:{{{topic}}}:"), 1),
    }
}

/// Every key `node_key` stands for: itself on one node, each topic's on a cluster.
async fn all_keys(b: &Backend, node_key: &str) -> Vec<String> {
    if !b.on_cluster() {
        return vec![node_key.to_string()];
    }
    redis::cmd("KEYS").arg(in_layout(b, node_key, "*")).query_async(&mut b.redis.conn().await).await.unwrap()
}

/// The topics that have webhooks.
async fn topics_with_webhooks(b: &Backend) -> Vec<String> {
    if !b.on_cluster() {
        return redis::cmd("SMEMBERS").arg("spindle:notify:webhook-topics").query_async(&mut b.redis.conn().await).await.unwrap();
    }
    let mut t: Vec<String> = all_keys(b, REGISTRY).await.iter().map(|k| k.split(['{', '}']).nth(1).unwrap().to_string()).collect();
    t.sort();
    t
}

/// Webhooks registered, in all.
async fn registered(b: &Backend) -> u64 {
    let mut n = 0;
    for k in all_keys(b, REGISTRY).await {
        n += redis::cmd("HLEN").arg(k).query_async::<u64>(&mut b.redis.conn().await).await.unwrap();
    }
    n
}

both_transports!(deliveries_are_signed_and_made_once_across_hosts, |b: Backend| async move {
    let rx = Receiver::start().await;
    // Two hosts: both workers hear every trigger message.
    let (a, c) = (app(&b, &[]), app(&b, &[]));
    let hook = create(&a, key, "orders", &rx.url("/ok")).await;
    assert_eq!(hook.status, 201, "{hook:?}");
    let secret = hook.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert!(hook.body["id"].as_str().unwrap().starts_with("wh_"));
    let listed = send(key(http().get(c.url("/notify/webhooks")))).await;
    assert_eq!(listed.body["webhooks"][0]["id"], hook.body["id"]);
    assert_eq!(listed.body["webhooks"][0]["url"], rx.url("/ok"));
    assert!(listed.body["webhooks"][0].get("secret").is_none(), "the secret is shown once");

    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(publish(if i % 2 == 0 { &a } else { &c }, "orders", json!({ "n": i, "note": "ünïcode" })).await);
    }
    let hits = rx.wait_for("/ok", 6, Duration::from_secs(20)).await;
    assert_eq!(hits.len(), 6);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let hits = rx.hits("/ok");
    assert_eq!(hits.len(), 6, "each event delivered once, though two workers ran for each");
    let mut msg_ids: Vec<String> = Vec::new();
    let mut got: Vec<String> = Vec::new();
    for h in &hits {
        assert!(verify(&secret, h), "signature of {h:?}");
        assert_eq!(h.headers["content-type"], "application/json");
        assert!(h.headers["webhook-id"].starts_with("msg_"));
        let v = h.json();
        assert_eq!(v["type"], "happened");
        assert_eq!(v["topic"], "orders");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(v["data"]["note"], "ünïcode");
        got.push(v["id"].as_str().unwrap().to_owned());
        msg_ids.push(h.headers["webhook-id"].clone());
    }
    got.sort();
    ids.sort();
    assert_eq!(got, ids);
    msg_ids.sort();
    msg_ids.dedup();
    assert_eq!(msg_ids.len(), 6, "one webhook-id per event");
    // A tamperer without the secret cannot produce a valid signature.
    let mut forged = hits[0].clone();
    forged.body = br#"{"type":"happened","data":"evil"}"#.to_vec();
    assert!(!verify(&secret, &forged));
    assert_eq!(delivery_keys(&b).await, (0, 0), "nothing left pending");
    assert_eq!(owner_counts(&b).await, vec![], "and no owner holds a pending count");
    for host in [&a, &c] {
        host.assert_every_variable_declared();
        assert_declared(&host.worker.log());
    }
});

both_transports!(a_failing_receiver_is_retried_then_dead_lettered, |b: Backend| async move {
    let rx = Receiver::start().await;
    let rt = app(&b, &[("notify_webhook_max_attempts", "3".into()), ("notify_webhook_backoff", "200ms".into())]);
    let alice = login(&b, 1, "alice").await;
    let cookie = |rb: reqwest::RequestBuilder| rb.header("cookie", alice.clone());
    let failing = create(&rt, cookie, "jobs", &rx.url("/fail")).await;
    let flaky = create(&rt, cookie, "jobs", &rx.url("/flaky")).await;
    assert_eq!((failing.status, flaky.status), (201, 201));
    let secret = failing.body["secret"].as_str().unwrap().to_owned();
    let event = publish(&rt, "jobs", json!({ "job": 42 })).await;

    // Retries are persisted in Redis and re-driven by later trigger
    // messages: here ticks, from the HTTP route and from a plain PUBLISH (cron).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut letters = Value::Null;
    let mut tick = 0;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        tick += 1;
        if tick % 2 == 0 {
            let r = send(cookie(http().post(rt.url("/notify/webhooks/redrive")))).await;
            assert_eq!(r.status, 202, "{r:?}");
            // On a cluster it counts the subscribers of the node that took
            // the PUBLISH only (docs/notify.md), which may not be the worker's.
            assert!(r.body["receivers"].as_i64().unwrap() >= 1 || b.on_cluster());
        } else {
            let _: i64 = redis::cmd("PUBLISH").arg("spindle:notify:deliver").arg("*").query_async(&mut b.redis.conn().await).await.unwrap();
        }
        letters = send(cookie(http().get(rt.url("/notify/webhooks/dead-letters")))).await.body;
        if !letters["dead_letters"].as_array().unwrap().is_empty() {
            break;
        }
    }
    let letters = letters["dead_letters"].as_array().unwrap().clone();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let d = &letters[0];
    assert_eq!(d["webhook_id"], failing.body["id"]);
    assert_eq!(d["attempts"], 3);
    assert_eq!(d["last_status"], 500);
    assert_eq!(d["event_id"], event.as_str());
    assert_eq!(d["topic"], "jobs");
    assert_eq!(d["payload"]["data"], json!({ "job": 42 }));
    assert!(d["id"].as_str().is_some() && d["failed_at"].as_str().unwrap().ends_with('Z'));
    assert!(!d.to_string().contains("whsec_"), "no secrets in dead letters");

    // More ticks change nothing: exactly three attempts, one message id, with
    // backoff between them, each signed.
    for _ in 0..4 {
        let _: i64 = redis::cmd("PUBLISH").arg("spindle:notify:deliver").arg("*").query_async(&mut b.redis.conn().await).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let fails = rx.hits("/fail");
    assert_eq!(fails.len(), 3, "{fails:?}");
    assert!(fails.iter().all(|h| h.headers["webhook-id"] == fails[0].headers["webhook-id"]));
    assert!(fails.iter().all(|h| verify(&secret, h)));
    assert!(fails[1].at - fails[0].at >= Duration::from_millis(150), "backoff between attempts");
    assert!(fails[2].at - fails[1].at >= Duration::from_millis(600), "growing backoff");
    // The flaky receiver failed once and then took it: delivered, not dead.
    let flakes = rx.hits("/flaky");
    assert_eq!(flakes.len(), 2, "{flakes:?}");
    assert_eq!(flakes[0].headers["webhook-id"], flakes[1].headers["webhook-id"]);
    assert_eq!(delivery_keys(&b).await, (0, 0));
    assert_eq!(owner_counts(&b).await, vec![], "settled deliveries leave their owner's count");
    // Dead letters are the owner's: another user sees none.
    let bob = login(&b, 2, "bob").await;
    let theirs = send(http().get(rt.url("/notify/webhooks/dead-letters")).header("cookie", bob)).await;
    assert_eq!(theirs.body["dead_letters"], json!([]));
});

both_transports!(a_slow_receiver_does_not_hold_up_the_others, |b: Backend| async move {
    let rx = Receiver::start().await;
    let rt = app(&b, &[("notify_webhook_timeout", "1s".into())]);
    assert_eq!(create(&rt, key, "mixed", &rx.url("/slow")).await.status, 201);
    assert_eq!(create(&rt, key, "mixed", &rx.url("/ok")).await.status, 201);
    let published = Instant::now();
    publish(&rt, "mixed", json!("x")).await;
    let ok = rx.wait_for("/ok", 1, Duration::from_secs(10)).await;
    let slow = rx.wait_for("/slow", 1, Duration::from_secs(10)).await;
    assert_eq!((ok.len(), slow.len()), (1, 1));
    // Both requests were in flight together: the fast one did not wait for
    // the slow one's 3 s (nor for its 1 s timeout).
    assert!(ok[0].at - published < Duration::from_millis(900), "fast receiver after {:?}", ok[0].at - published);
    assert!(ok[0].at.max(slow[0].at) - ok[0].at.min(slow[0].at) < Duration::from_millis(500));
    // The slow one timed out and waits for its retry.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(delivery_keys(&b).await, (1, 1), "one delivery pending a retry");
});

both_transports!(webhooks_are_validated_and_scoped_to_their_owner, |b: Backend| async move {
    let rx = Receiver::start().await;
    let rt = app(&b, &[]);
    let (alice, bob) = (login(&b, 1, "alice").await, login(&b, 2, "bob").await);
    let as_alice = |rb: reqwest::RequestBuilder| rb.header("cookie", alice.clone());
    let as_bob = |rb: reqwest::RequestBuilder| rb.header("cookie", bob.clone());

    let problem = |r: &Resp, status: u16| {
        assert_eq!(r.status, status, "{r:?}");
        assert_eq!(r.content_type, "application/problem+json", "{r:?}");
    };
    problem(&create(&rt, |rb| rb, "t", &rx.url("/ok")).await, 401);
    for (topic, url) in [
        ("t", "ftp://127.0.0.1/x".to_string()),
        ("t", "http://user:pw@127.0.0.1:1/x".to_string()),
        ("t", "https://example.com/hook".to_string()), // not in the allowed origins
        ("t", "http://127.0.0.1:1/#frag".to_string()),
        ("a b", rx.url("/ok")),
    ] {
        problem(&create(&rt, as_alice, topic, &url).await, 400);
    }
    problem(&create(&rt, as_alice, "user:2", &rx.url("/ok")).await, 403);
    let mine = create(&rt, as_alice, "user:1", &rx.url("/ok")).await;
    assert_eq!(mine.status, 201, "{mine:?}");
    let public = create(&rt, as_alice, "news", &rx.url("/ok")).await;
    assert_eq!(public.status, 201);

    let list = |who: fn(reqwest::RequestBuilder, &str) -> reqwest::RequestBuilder, c: String| {
        let url = rt.url("/notify/webhooks");
        async move { send(who(http().get(url), &c)).await.body["webhooks"].as_array().unwrap().len() }
    };
    let cookie = |rb: reqwest::RequestBuilder, c: &str| rb.header("cookie", c.to_owned());
    assert_eq!(list(cookie, alice.clone()).await, 2);
    assert_eq!(list(cookie, bob.clone()).await, 0);
    let id = public.body["id"].as_str().unwrap().to_owned();
    let del = |auth: &dyn Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder| {
        let rb = auth(http().delete(rt.url(&format!("/notify/webhooks/{id}"))));
        async move { rb.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(del(&as_bob).await, 404, "not bob's");
    assert_eq!(del(&key).await, 404, "not the service's either");
    assert_eq!(del(&as_alice).await, 204);
    assert_eq!(del(&as_alice).await, 404);
    assert_eq!(list(cookie, alice.clone()).await, 1);
    assert_eq!(topics_with_webhooks(&b).await, vec!["user:1".to_string()], "news has no webhooks left");

    // Deleted: publishing to news delivers nothing; user:1 still delivers.
    publish(&rt, "news", json!(1)).await;
    publish(&rt, "user:1", json!(2)).await;
    rx.wait_for("/ok", 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let hits: Vec<Value> = rx.hits("/ok").iter().map(Hit::json).collect();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["topic"], "user:1");
});

// ── Abuse limits (issue 15, item 1): what one owner's webhooks may hold ───

/// A tick on the worker channel, as cron sends it.
async fn tick(b: &Backend) {
    let _: i64 = redis::cmd("PUBLISH").arg(WORKER_CHANNEL).arg("*").query_async(&mut b.redis.conn().await).await.unwrap();
}

async fn dead_letters(rt: &Runner, auth: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder) -> Vec<Value> {
    let r = send(auth(http().get(rt.url("/notify/webhooks/dead-letters?limit=1000")))).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body["dead_letters"].as_array().unwrap().clone()
}

/// Ticks every 250 ms until the caller has a dead letter, for at most 20 s;
/// what the caller has then (empty if none came).
async fn first_dead_letters(b: &Backend, rt: &Runner, auth: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut letters = Vec::new();
    while letters.is_empty() && Instant::now() < deadline {
        tick(b).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        letters = dead_letters(rt, &auth).await;
    }
    letters
}

/// Ticks every 250 ms until `done` holds, for at most `within`.
async fn ticking_until<F: std::future::Future<Output = bool>>(b: &Backend, within: Duration, what: &str, mut done: impl FnMut() -> F) {
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tick(b).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn hget(b: &Backend, key: &str, field: &str) -> Option<String> {
    redis::cmd("HGET").arg(key).arg(field).query_async(&mut b.redis.conn().await).await.unwrap()
}

/// `MEMORY USAGE key SAMPLES 0`: every element counted, bytes (0 when
/// absent); summed over every key `key` stands for ([`all_keys`]).
async fn memory_usage(b: &Backend, key: &str) -> u64 {
    let mut sum = 0;
    for k in all_keys(b, key).await {
        let n: Option<u64> = redis::cmd("MEMORY").arg("USAGE").arg(k).arg("SAMPLES").arg(0).query_async(&mut b.redis.conn().await).await.unwrap();
        sum += n.unwrap_or(0);
    }
    sum
}

/// The topic's fan-out cursor: the last event given to its webhooks.
async fn cursor(b: &Backend, topic: &str) -> Option<String> {
    redis::cmd("GET").arg(format!("spindle:notify:{{{topic}}}:webhooks-cursor")).query_async(&mut b.redis.conn().await).await.unwrap()
}

const TRIMMED: &str = "event trimmed from the stream before delivery";
const CAPPED: &str = "pending cap reached: the owner already had notify_webhook_max_pending deliveries pending";

both_transports!(registration_is_off_until_the_operator_sets_an_allow_list, |b: Backend| async move {
    let rx = Receiver::start().await;
    // The default: no notify_webhook_allow. webhook_origin is only the worker's outbound grant.
    let off = vars(&[("notify_webhook_allow", String::new())]);
    let rt = http_app(&b, &off);
    let r = create(&rt, key, "orders", &rx.url("/ok")).await;
    assert_eq!((r.status, r.content_type.as_str()), (403, "application/problem+json"), "{r:?}");
    assert_eq!(r.body["type"], "urn:spindle:problem:webhooks-disabled", "{r:?}");
    assert!(r.body["detail"].as_str().unwrap().contains("notify_webhook_allow"), "{r:?}");
    assert_eq!(create(&rt, |rb| rb, "orders", &rx.url("/ok")).await.status, 401, "who asks is checked first");
    assert_eq!(registered(&b).await, 0, "nothing registered");
    rt.assert_every_variable_declared();
    drop(rt);

    // Registered while allowed; then a worker without the list refuses to
    // send it, whatever webhook_origin grants.
    let rt = http_app(&b, &vars(&[]));
    let hook = create(&rt, key, "orders", &rx.url("/ok")).await;
    assert_eq!(hook.status, 201, "{hook:?}");
    let _worker = worker(&b, &vars(&[("notify_webhook_allow", String::new()), ("notify_webhook_max_attempts", "1".into())]));
    publish(&rt, "orders", json!(1)).await;
    let letters = first_dead_letters(&b, &rt, key).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(letters[0]["last_error"].as_str().unwrap().contains("not in the allowed webhook origins"), "{letters:?}");
    assert!(rx.hits("/ok").is_empty(), "nothing was sent");
});

both_transports!(a_pending_delivery_is_a_reference_and_a_trimmed_event_is_dead_lettered, |b: Backend| async move {
    let rx = Receiver::start().await;
    let rt = app(&b, &[("notify_webhook_backoff", "200ms".into())]);
    let alice = login(&b, 1, "alice").await;
    let cookie = |rb: reqwest::RequestBuilder| rb.header("cookie", alice.clone());
    let hook = create(&rt, cookie, "jobs", &rx.url("/fail")).await;
    assert_eq!(hook.status, 201, "{hook:?}");
    let hook_id = hook.body["id"].as_str().unwrap().to_owned();
    let big = "b".repeat(20_000);
    let event = publish(&rt, "jobs", json!({ "big": big })).await;
    let first = rx.wait_for("/fail", 1, Duration::from_secs(10)).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].json()["data"]["big"], big.as_str(), "the payload, read from the stream");

    // What waits for the retry is a reference: no payload in it.
    let delivery = format!("{hook_id}/{event}");
    let record = hget(&b, &in_layout(&b, PENDING, "jobs"), &delivery).await.expect("the pending record");
    let expected = format!("1\n{hook_id}\nuser:1\njobs\n{event}");
    assert!(record == expected, "a record of {} bytes: {:.200}…", record.len(), record.escape_debug());
    assert_eq!(owner_counts(&b).await, vec![("user:1".to_string(), 1)]);

    // The stream loses the event (MAXLEN or retention) before the retry.
    let _: u64 = redis::cmd("XDEL").arg("spindle:notify:{jobs}:events").arg(&event).query_async(&mut b.redis.conn().await).await.unwrap();
    let letters = first_dead_letters(&b, &rt, cookie).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let d = &letters[0];
    assert_eq!(d["last_error"], TRIMMED, "{d}");
    assert_eq!((d["event_id"].as_str(), d["webhook_id"].as_str(), d["delivery"].as_str()), (Some(event.as_str()), Some(hook_id.as_str()), Some(delivery.as_str())));
    assert_eq!((d["attempts"].clone(), d["last_status"].clone(), d["payload"].clone()), (json!(1), Value::Null, Value::Null), "{d}");
    assert_eq!(rx.hits("/fail").len(), 1, "no attempt without the event");
    assert_eq!(delivery_keys(&b).await, (0, 0));
    assert_eq!(owner_counts(&b).await, vec![]);
});

both_transports!(past_the_owner_cap_deliveries_are_dead_lettered_not_queued, |b: Backend| async move {
    let rx = Receiver::start().await;
    // Failures wait an hour for their retry: what is pending stays pending.
    let rt = app(&b, &[("notify_webhook_max_pending", "3".into()), ("notify_webhook_backoff", "1h".into())]);
    let (alice, bob) = (login(&b, 1, "alice").await, login(&b, 2, "bob").await);
    let as_alice = |rb: reqwest::RequestBuilder| rb.header("cookie", alice.clone());
    let as_bob = |rb: reqwest::RequestBuilder| rb.header("cookie", bob.clone());
    let mut hers = Vec::new();
    for _ in 0..2 {
        let h = create(&rt, as_alice, "jobs", &rx.url("/fail")).await;
        assert_eq!(h.status, 201, "{h:?}");
        hers.push(h.body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(create(&rt, as_bob, "jobs", &rx.url("/fail")).await.status, 201);
    let mut events = Vec::new();
    for i in 0..3 {
        events.push(publish(&rt, "jobs", json!({ "n": i })).await);
    }
    // Alice's 2 webhooks × 3 events are 6 deliveries: 3 are queued, 3 are
    // dead-lettered at once. Bob's 3 are all queued: the cap is per owner.
    let mut letters = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while letters.len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        letters = dead_letters(&rt, as_alice).await;
    }
    assert_eq!(letters.len(), 3, "{letters:?}");
    for d in &letters {
        assert_eq!(d["last_error"], CAPPED, "{d}");
        assert_eq!((d["attempts"].clone(), d["payload"].clone(), d["event"].clone()), (json!(0), Value::Null, json!("happened")), "{d}");
        assert!(hers.iter().any(|h| d["webhook_id"] == h.as_str()), "{d}");
        assert!(events[1..].iter().any(|e| d["event_id"] == e.as_str()), "the first event fits: {d}");
    }
    assert_eq!(owner_counts(&b).await, vec![("user:1".to_string(), 3), ("user:2".to_string(), 3)]);
    assert_eq!(delivery_keys(&b).await, (6, 6));
    assert_eq!(rx.wait_for("/fail", 6, Duration::from_secs(10)).await.len(), 6, "each queued delivery was attempted");
    assert!(dead_letters(&rt, as_bob).await.is_empty());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.hits("/fail").len(), 6, "none of the capped ones was sent");
});

both_transports!(one_claim_fans_out_at_most_its_budget_and_loses_nothing, |b: Backend| async move {
    let rx = Receiver::start().await;
    let v = vars(&[("notify_webhook_claim_budget", "100".into())]);
    let rt = http_app(&b, &v);
    for _ in 0..5 {
        assert_eq!(create(&rt, key, "burst", &rx.url("/ok")).await.status, 201);
    }
    // 30 events × 5 webhooks = 150 deliveries, published while no worker listens.
    let mut events = Vec::new();
    for i in 0..30 {
        events.push(publish(&rt, "burst", json!(i)).await);
    }
    let monitor = Monitor::start(&b.redis).await;
    let _worker = worker(&b, &v);
    let rxr = &rx;
    ticking_until(&b, Duration::from_secs(60), "150 deliveries", move || async move { rxr.hits("/ok").len() >= 150 }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hits = rx.hits("/ok");
    assert_eq!(hits.len(), 150, "each delivery once");
    let mut per_event: HashMap<String, usize> = HashMap::new();
    for h in &hits {
        *per_event.entry(h.json()["id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert!(events.iter().all(|e| per_event.get(e) == Some(&5)), "{per_event:?}");
    // Each script call's HSETNXs (one per delivery queued), from MONITOR:
    // a script's commands follow the call that ran it.
    let mut fanned: Vec<usize> = Vec::new();
    for l in monitor.lines().await {
        if !l.contains(" lua] ") {
            fanned.push(0);
        } else if l.to_ascii_lowercase().contains("\"hsetnx\"") {
            *fanned.last_mut().unwrap() += 1;
        }
    }
    fanned.retain(|n| *n > 0);
    eprintln!("deliveries queued per claim: {fanned:?}");
    assert_eq!(fanned.iter().sum::<usize>(), 150);
    assert!(fanned.iter().all(|n| *n <= 100), "a claim fanned out more than its budget: {fanned:?}");
    assert_eq!(delivery_keys(&b).await, (0, 0));
});

both_transports!(a_record_written_before_references_is_still_delivered, |b: Backend| async move {
    let rx = Receiver::start().await;
    let rt = app(&b, &[]);
    let hook = create(&rt, key, "legacy", &rx.url("/ok")).await;
    let hook_id = hook.body["id"].as_str().unwrap().to_owned();
    let event = publish(&rt, "legacy", json!({ "from": "the stream" })).await;
    assert_eq!(rx.wait_for("/ok", 1, Duration::from_secs(10)).await.len(), 1);
    // The receiver has the delivery before the worker settles it, and the
    // settle removes this id's record: wait for it, or it would remove the
    // record written next (a race of this test, seen on a loaded machine).
    let bb = &b;
    ticking_until(&b, Duration::from_secs(10), "the first delivery's settle", move || async move { delivery_keys(bb).await == (0, 0) }).await;
    // A record as the previous version wrote it (with the event in it), due now.
    let mut c = b.redis.conn().await;
    let old = format!("2\n{hook_id}\nlegacy\n{event}\nhappened\n1767225600000\n{{\"from\":\"the record\"}}");
    let _: () = redis::cmd("HSET").arg(in_layout(&b, PENDING, "legacy")).arg(format!("{hook_id}/{event}")).arg(old).query_async(&mut c).await.unwrap();
    let _: () = redis::cmd("ZADD").arg(in_layout(&b, DUE, "legacy")).arg(0).arg(format!("{hook_id}/{event}")).query_async(&mut c).await.unwrap();
    let rxr = &rx;
    ticking_until(&b, Duration::from_secs(10), "the old record's delivery", move || async move { rxr.hits("/ok").len() >= 2 }).await;
    let second = &rx.hits("/ok")[1];
    assert_eq!(second.json()["data"], json!({ "from": "the stream" }));
    assert_eq!(second.headers["webhook-id"], rx.hits("/ok")[0].headers["webhook-id"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(delivery_keys(&b).await, (0, 0));
    assert_eq!(owner_counts(&b).await, vec![], "counted while it was pending, and no longer");
});

// 25 webhooks of one owner (its most) × 500 publishes of 60 KB, every
// delivery failing and waiting an hour for its retry: the pending set stays
// within `notify_webhook_max_pending` (1000) small records.
both_transports!(pending_memory_stays_bounded_after_25_webhooks_x_500_large_publishes, |b: Backend| async move {
    const WEBHOOKS: usize = 25;
    const PUBLISHES: usize = 500;
    const DEFAULT_MAX_PENDING: u64 = 1000;
    /// The stated bound: bytes of Redis memory per pending delivery (pending
    /// hash, due zset and owner counts together).
    const BYTES_PER_PENDING: u64 = 640;
    let rt = app(&b, &[("notify_rate_limit", "fixed_window 100000/60s".into()), ("notify_webhook_backoff", "1h".into())]);
    for _ in 0..WEBHOOKS {
        // Nothing listens on port 9: every attempt fails at once.
        let r = create(&rt, key, "bulk", "http://127.0.0.1:9/hook").await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    let data = json!({ "blob": "x".repeat(60_000) });
    let started = Instant::now();
    for _ in 0..PUBLISHES / 10 {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let (url, data) = (rt.url("/notify/publish"), data.clone());
            let body = json!({ "topic": "bulk", "event": "happened", "data": data });
            tasks.spawn(async move { send(key(http().post(url).json(&body))).await });
        }
        while let Some(r) = tasks.join_next().await {
            let r = r.unwrap();
            assert_eq!(r.status, 201, "{:?}", r.status);
        }
    }
    let mut c = b.redis.conn().await;
    let last: Vec<(String, HashMap<String, String>)> =
        redis::cmd("XREVRANGE").arg("spindle:notify:{bulk}:events").arg("+").arg("-").arg("COUNT").arg(1).query_async(&mut c).await.unwrap();
    let last = last[0].0.clone();
    eprintln!("{PUBLISHES} publishes of {} bytes in {:?}", data.to_string().len(), started.elapsed());
    let (bb, lastr) = (&b, &last);
    ticking_until(&b, Duration::from_secs(180), "every event fanned out", move || async move {
        cursor(bb, "bulk").await.as_deref() == Some(lastr.as_str())
    })
    .await;
    let (pending, due, owners) = (memory_usage(&b, PENDING).await, memory_usage(&b, DUE).await, memory_usage(&b, OWNERS).await);
    let stream = memory_usage(&b, "spindle:notify:{bulk}:events").await;
    let (n_due, n_pending) = delivery_keys(&b).await;
    eprintln!(
        "{WEBHOOKS} webhooks × {PUBLISHES} publishes: {n_pending} pending; pending hash {pending} B, due zset {due} B, owner counts {owners} B \
         ({} B per pending delivery); the stream {stream} B",
        (pending + due + owners) / n_pending.max(1)
    );
    assert_eq!((n_pending, n_due), (DEFAULT_MAX_PENDING, DEFAULT_MAX_PENDING), "exactly the cap is pending");
    // The other 11 500 went to the owner's dead-letter stream, which keeps about 1000.
    let letters: Vec<String> = redis::cmd("KEYS").arg("spindle:notify:owner:*:dead-letters").query_async(&mut c).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let capped = (WEBHOOKS * PUBLISHES) as u64 - DEFAULT_MAX_PENDING;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (added, kept) = loop {
        let info: HashMap<String, redis::Value> = redis::cmd("XINFO").arg("STREAM").arg(&letters[0]).query_async(&mut c).await.unwrap();
        let n = |k: &str| -> u64 { redis::from_redis_value(&info[k]).unwrap() };
        if n("entries-added") >= capped || Instant::now() > deadline {
            break (n("entries-added"), n("length"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("dead letters: {added} added, {kept} kept, {} B", memory_usage(&b, &letters[0]).await);
    assert_eq!(added, capped, "each delivery past the cap is dead-lettered");
    assert!(kept <= 1100, "{kept}");
    assert!(
        pending + due + owners <= DEFAULT_MAX_PENDING * BYTES_PER_PENDING,
        "pending deliveries take {} B, over {DEFAULT_MAX_PENDING} × {BYTES_PER_PENDING} B",
        pending + due + owners
    );
});
