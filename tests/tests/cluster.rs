//! The app on a real Redis Cluster (3 masters, 3 replicas), over REST
//! through the gateway (`--cluster`), on the host `SPINDLE_HOST` picks, with
//! `rate_limit_keys=cluster`:
//!
//! - every family that is cluster-safe, driven over HTTP. A script whose
//!   keys span two slots answers CROSSSLOT, which the app turns into a 503
//!   (or, for the cache, a BYPASS): each step asserts the status and, for
//!   reads, that the cache was used;
//! - a master crash under load: errors, time to recover, acknowledged
//!   writes lost (printed; the bounds asserted);
//! - the gateway saturated: bounded 503s, nothing hangs;
//! - webhooks in their cluster layout, the worker's commands through the
//!   gateway and its trigger on a node.

use serde_json::{json, Value};
use spindle_e2e::*;

#[path = "support/receiver.rs"]
mod receiver;
use receiver::{verify, Receiver};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery";

struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Resp {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
    }

    fn cookie(&self) -> String {
        self.header("set-cookie").split(';').next().unwrap().to_string()
    }
}

async fn send(rb: reqwest::RequestBuilder) -> Resp {
    let r = rb.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let body = serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null);
    Resp { status, headers, body }
}

fn cookie(rb: reqwest::RequestBuilder, c: &str) -> reqwest::RequestBuilder {
    rb.header("cookie", c)
}

/// The app on `gateway`'s cluster, over REST, with `extra` variables after
/// the defaults here; its SQLite database lives as long as the returned dir.
fn app(gateway: &Gateway, extra: &[(&'static str, String)]) -> (Runner, TempDir) {
    let db = TempDir::new();
    let mut variables = gateway.app_variables();
    variables.extend([("session_secrets", "cluster-e2e-secret-0123456789abcdef".into()), ("rate_limit_keys", "cluster".into())]);
    variables.extend(extra.iter().cloned());
    let rt = Runner::start(&app_manifest(), RunnerOpts { variables, runtime_config: Some(db.runtime_config()), ..Default::default() });
    (rt, db)
}

#[tokio::test]
async fn every_cluster_safe_family_works_on_a_cluster() {
    let cluster = Cluster::start();
    let gateway = Gateway::start_cluster(&cluster);
    let (rt, _db) = app(&gateway, &[("api_rate_limit", "fixed_window 5/60s".into()), ("users_cache_buckets", "16".into())]);
    let h = http();
    let url = |p: &str| rt.url(p);

    let r = send(h.get(url("/healthz"))).await;
    assert_eq!((r.status, r.body["redis"]["transport"].as_str()), (200, Some("rest")), "{:?}", r.body);

    // Accounts and sessions: register, log in twice, list, end one, end all.
    let r = send(h.post(url("/auth/register")).json(&json!({ "username": "alice", "password": PASSWORD }))).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["user"]["id"].as_i64().unwrap();
    let login = || send(h.post(url("/auth/login")).json(&json!({ "username": "alice", "password": PASSWORD })));
    let (a, b) = (login().await, login().await);
    assert_eq!((a.status, b.status), (200, 200), "{:?} {:?}", a.body, b.body);
    let (ca, cb) = (a.cookie(), b.cookie());
    let me = send(cookie(h.get(url("/auth/me")), &ca)).await;
    assert_eq!((me.status, me.body["user"]["id"].as_i64()), (200, Some(id)), "{:?}", me.body);
    let list = send(cookie(h.get(url("/auth/sessions")), &ca)).await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    let sessions = list.body["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let other = sessions.iter().find(|s| s["current"] == false).unwrap()["handle"].as_str().unwrap().to_string();
    let r = send(cookie(h.delete(url(&format!("/auth/sessions/{other}"))), &ca)).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(send(cookie(h.get(url("/auth/me")), &cb)).await.status, 401, "that session ended");

    // The cached read: MISS, HIT; a write invalidates.
    let path = format!("/users/{id}");
    assert_eq!(send(h.get(url(&path))).await.header("x-cache"), "MISS");
    assert_eq!(send(h.get(url(&path))).await.header("x-cache"), "HIT");
    let r = send(cookie(h.patch(url(&path)), &ca).json(&json!({ "display_name": "Alice" }))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = send(h.get(url(&path))).await;
    assert_eq!(r.header("x-cache"), "MISS");
    assert!(r.body.to_string().contains("\"Alice\""), "the new version: {:?}", r.body);
    let r = send(h.get(url(&format!("/users?ids={id},999")))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_ne!(r.header("x-cache"), "BYPASS", "the batch used the cache");

    // The rate limit: 5 pass, the 6th is 429.
    inside_one_minute(Duration::from_secs(20)).await;
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..6 {
            v.push(send(cookie(h.get(url("/api/ping")), &ca)).await.status);
        }
        v
    };
    assert_eq!(statuses, vec![200, 200, 200, 200, 200, 429]);

    // Notify: a publish (with an idempotency key, replayed), a poll that
    // reads it, presence.
    let publish = || {
        send(cookie(h.post(url("/notify/publish")), &ca).json(&json!({ "topic": "chat:lobby", "event": "msg", "data": {"n": 1}, "idempotency_key": "k1" })))
    };
    let p1 = publish().await;
    assert_eq!(p1.status, 201, "{:?}", p1.body);
    let p2 = publish().await;
    assert_eq!((p2.status, p2.body["duplicate"].as_bool(), &p2.body["id"]), (200, Some(true), &p1.body["id"]), "{:?}", p2.body);
    let poll = send(cookie(h.get(url("/notify/poll?topic=chat:lobby&after=0&wait_ms=0")), &ca)).await;
    assert_eq!(poll.status, 200, "{:?}", poll.body);
    let events = poll.body["events"].as_array().unwrap();
    assert_eq!((events.len(), &events[0]["id"]), (1, &p1.body["id"]), "{:?}", poll.body);
    let r = send(cookie(h.post(url("/notify/presence")), &ca).json(&json!({ "topic": "chat:lobby" }))).await;
    assert_eq!((r.status, r.body["present"].as_i64()), (200, Some(1)), "{:?}", r.body);

    // Logout everywhere ends the last session.
    let r = send(cookie(h.delete(url("/auth/sessions")), &ca)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(send(cookie(h.get(url("/auth/me")), &ca)).await.status, 401);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!rt.log().contains("CROSSSLOT"), "a script crossed slots:\n{}", rt.log());
}

/// What one request of the load saw.
struct Answer {
    op: &'static str,
    /// Whose session or which topic: on the crashed master's slots or not.
    on_victim: bool,
    sent: Instant,
    took: Duration,
    status: u16,
    problem: String,
    /// What a 200/201 acknowledged: a login's cookie, a publish's event id.
    ack: Option<String>,
}

/// Sends `rb`, recording the answer, until `stop`; `every` apart.
fn load(
    answers: &Arc<Mutex<Vec<Answer>>>,
    stop: &Arc<AtomicBool>,
    op: &'static str,
    on_victim: bool,
    rb: impl Fn(u64) -> reqwest::RequestBuilder + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let (answers, stop) = (answers.clone(), stop.clone());
    tokio::spawn(async move {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let sent = Instant::now();
            let r = send(rb(n)).await;
            let ack = match (op, r.status) {
                ("login", 200) => Some(r.cookie()),
                ("publish", 201) => r.body["id"].as_str().map(str::to_owned),
                _ => None,
            };
            let problem = if r.status >= 400 {
                format!("{} {}", r.header("content-type"), r.body["type"].as_str().unwrap_or(""))
            } else {
                String::new()
            };
            answers.lock().unwrap().push(Answer { op, on_victim, sent, took: sent.elapsed(), status: r.status, problem, ack });
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

/// A master is SIGKILLed while the app serves session reads, logins and
/// publishes on every master's slots. Reported: the errors seen, how long
/// the crashed master's slots were down, and the acknowledged writes lost.
/// Asserted: every answer is a success or a 503 problem, within a bound;
/// the slots come back; what was replicated before the crash survives it;
/// and only writes sent before the crash can be lost (Redis Cluster
/// replicates asynchronously: a master may acknowledge a write and die
/// before its replica has it; after the failover, writes go to the
/// promoted replica).
///
/// With Redis's default `cluster-require-full-coverage yes`, every master
/// refuses commands (CLUSTERDOWN) from when the crashed one is marked
/// failed until its replica is promoted, so other users fail too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_crash_under_load() {
    crash_under_load(true).await;
}

/// With `cluster-require-full-coverage no` (what docs/redis.md advises),
/// the other masters' users are served all through the failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_crash_under_load_without_full_coverage() {
    let (others, others_ok) = crash_under_load(false).await;
    assert_eq!(others_ok, others, "users on the live masters were refused during the failover");
}

/// Runs the crash; returns how many session reads of the live masters'
/// users were sent during the outage, and how many were served.
async fn crash_under_load(full_coverage: bool) -> (usize, usize) {
    let mut cluster = Cluster::start();
    if !full_coverage {
        for n in cluster.seeds() {
            let port: u16 = n.rsplit(':').next().unwrap().parse().unwrap();
            assert_eq!(redis_cli(port, &["CONFIG", "SET", "cluster-require-full-coverage", "no"]).trim(), "OK");
        }
    }
    let gateway = Gateway::start_cluster(&cluster);
    let (rt, _db) = app(
        &gateway,
        &[
            ("login_rate_limit", "fixed_window 100000/60s".into()),
            ("register_rate_limit", "fixed_window 1000/60s".into()),
            ("notify_rate_limit", "fixed_window 100000/60s".into()),
        ],
    );
    let (h, base) = (http(), rt.url(""));

    // Users whose sessions live on every master (a session's slot is its
    // user's hash tag, `{<id>}`), each logged in once.
    let mut users = Vec::new(); // (username, master, cookie)
    for i in 0..12 {
        let name = format!("user{i}");
        let creds = json!({ "username": name, "password": PASSWORD });
        let r = send(h.post(format!("{base}/auth/register")).json(&creds)).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        let master = cluster.master_of(&format!("{{{}}}", r.body["user"]["id"].as_i64().unwrap()));
        let r = send(h.post(format!("{base}/auth/login")).json(&creds)).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        users.push((name, master, r.cookie()));
    }
    let victim = users[0].1;
    assert!(users.iter().any(|u| u.1 != victim), "every user on one master");
    // A topic on the victim's slots and one elsewhere, published to by a
    // user whose session and limiter are elsewhere.
    let topic = |on_victim: bool| {
        (0..).map(|i| format!("room-{i}")).find(|t| (cluster.master_of(&format!("{{{t}}}")) == victim) == on_victim).unwrap()
    };
    let topics = [(topic(true), true), (topic(false), false)];
    let publisher = users.iter().find(|u| u.1 != victim).unwrap().2.clone();
    // What the victim holds so far is on its replica too.
    cluster.wait_replicated(victim);

    let answers: Arc<Mutex<Vec<Answer>>> = Default::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (_, master, c) in &users {
        let (h, url, c) = (h.clone(), format!("{base}/auth/me"), c.clone());
        tasks.push(load(&answers, &stop, "me", *master == victim, move |_| cookie(h.get(&url), &c)));
    }
    for (name, master, _) in users.iter().step_by(3) {
        let (h, url) = (h.clone(), format!("{base}/auth/login"));
        let creds = json!({ "username": name, "password": PASSWORD });
        tasks.push(load(&answers, &stop, "login", *master == victim, move |_| h.post(&url).json(&creds)));
    }
    for (t, on_victim) in &topics {
        let (h, url, c, t) = (h.clone(), format!("{base}/notify/publish"), publisher.clone(), t.clone());
        tasks.push(load(&answers, &stop, "publish", *on_victim, move |n| {
            cookie(h.post(&url), &c).json(&json!({ "topic": t, "event": "n", "data": n }))
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;

    let crashed = Instant::now();
    cluster.kill(victim);
    // Until the victim's users read their sessions again, then 1 s more.
    let recovered = loop {
        let back = answers.lock().unwrap().iter().filter(|a| a.op == "me" && a.on_victim && a.sent > crashed && a.status == 200).map(|a| a.sent + a.took).min();
        if let Some(t) = back {
            break t - crashed;
        }
        assert!(crashed.elapsed() < Duration::from_secs(30), "the crashed master's slots never answered again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let answers = std::mem::take(&mut *answers.lock().unwrap());

    // Every answer: a success, or a 503 problem; none slow.
    for a in &answers {
        assert!(
            matches!(a.status, 200 | 201) || (a.status == 503 && a.problem.starts_with("application/problem+json") && a.problem.ends_with("redis-unavailable")),
            "{} answered {} {}",
            a.op,
            a.status,
            a.problem
        );
    }
    let slowest = answers.iter().map(|a| a.took).max().unwrap();
    assert!(slowest < Duration::from_secs(10), "a request took {slowest:?}");
    let before = answers.iter().filter(|a| a.sent + a.took < crashed);
    assert!(before.clone().all(|a| a.status < 300), "errors before the crash");
    let errors: Vec<&Answer> = answers.iter().filter(|a| a.status == 503).collect();
    let last_error = errors.iter().map(|a| a.sent + a.took - crashed).max().unwrap_or_default();
    // The other masters' users kept being served.
    let outage = |a: &&Answer| a.op == "me" && !a.on_victim && a.sent > crashed && a.sent < crashed + recovered;
    let others = answers.iter().filter(outage).count();
    let others_ok = answers.iter().filter(outage).filter(|a| a.status == 200).count();

    // Replicated before the crash: every user's first session.
    for (name, _, c) in &users {
        assert_eq!(send(cookie(h.get(format!("{base}/auth/me")), c)).await.status, 200, "{name}'s first session");
    }
    // Acknowledged logins: the session is there, or it was lost; a lost
    // one was sent before the crash, to the victim.
    let (mut logins, mut logins_lost) = (0, 0);
    for a in answers.iter().filter(|a| a.op == "login" && a.ack.is_some()) {
        logins += 1;
        let status = send(cookie(h.get(format!("{base}/auth/me")), a.ack.as_ref().unwrap())).await.status;
        if status != 200 {
            assert_eq!(status, 401);
            assert!(a.on_victim && a.sent < crashed, "a session acknowledged after the crash, or on a live master, was lost");
            logins_lost += 1;
        }
    }
    // Acknowledged publishes: in the stream, or lost (as above).
    let (mut events, mut events_lost) = (0, 0);
    for (t, _) in &topics {
        let mut read = std::collections::HashSet::new();
        let mut after = "0".to_string();
        loop {
            let r = send(cookie(h.get(format!("{base}/notify/poll?topic={t}&after={after}&wait_ms=0")), &publisher)).await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            let page = r.body["events"].as_array().unwrap();
            read.extend(page.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
            after = r.body["next"].as_str().unwrap().to_owned();
            if page.is_empty() {
                break;
            }
        }
        for a in answers.iter().filter(|a| a.op == "publish" && a.ack.is_some() && a.on_victim == (t == &topics[0].0)) {
            events += 1;
            if !read.contains(a.ack.as_ref().unwrap()) {
                assert!(a.on_victim && a.sent < crashed, "an event acknowledged after the crash, or on a live master, was lost");
                events_lost += 1;
            }
        }
    }
    let by_op = |op: &str| errors.iter().filter(|a| a.op == op).count();
    println!(
        "failover under load ({}, cluster-require-full-coverage {}): {} requests, {} answered 503 redis-unavailable (me {}, login {}, publish {}), \
         the last {} ms after the crash; the crashed master's users read their sessions again after {} ms; \
         other masters' users during the outage: {others_ok} of {others} served; slowest answer {} ms; \
         acknowledged writes lost: {logins_lost} of {logins} logins, {events_lost} of {events} publishes",
        HostKind::current().name(),
        if full_coverage { "yes" } else { "no" },
        answers.len(),
        errors.len(),
        by_op("me"),
        by_op("login"),
        by_op("publish"),
        last_error.as_millis(),
        recovered.as_millis(),
        slowest.as_millis(),
    );
    (others, others_ok)
}

/// The gateway saturated: every master stalls (`CLIENT PAUSE`) while a
/// burst of session reads arrives, more than the gateway's turns
/// (`--max-in-flight`) and queue (`--max-queue`) hold. The app answers every
/// one within a bound with a 503 problem (the session check fails closed),
/// none hangs, and once Redis moves again the same reads are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_saturated_gateway_is_a_bounded_503() {
    let cluster = Cluster::start();
    let flags = ["--max-in-flight", "2", "--max-queue", "2", "--queue-timeout-ms", "200", "--redis-timeout-ms", "1000"];
    let gateway = Gateway::start_cluster_with(&cluster, &flags);
    let (rt, _db) = app(&gateway, &[]);
    let (h, me) = (http(), rt.url("/auth/me"));
    let creds = json!({ "username": "alice", "password": PASSWORD });
    assert_eq!(send(h.post(rt.url("/auth/register")).json(&creds)).await.status, 201);
    let c = send(h.post(rt.url("/auth/login")).json(&creds)).await.cookie();
    assert_eq!(send(cookie(h.get(&me), &c)).await.status, 200);

    for m in cluster.masters() {
        assert_eq!(redis_cli(m, &["CLIENT", "PAUSE", "10000", "ALL"]).trim(), "OK");
    }
    let paused = Instant::now();
    let burst: Vec<_> = (0..24)
        .map(|_| {
            let rb = cookie(h.get(&me), &c);
            tokio::spawn(async move {
                let sent = Instant::now();
                let r = send(rb).await;
                (r.status, r.header("content-type").to_owned(), r.body["type"].as_str().unwrap_or("").to_owned(), sent.elapsed())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in burst {
        answers.push(t.await.unwrap());
    }
    for (status, ctype, kind, took) in &answers {
        assert_eq!((*status, ctype.as_str()), (503, "application/problem+json"), "{answers:?}");
        assert!(kind.ends_with("redis-unavailable"), "{answers:?}");
        assert!(*took < Duration::from_millis(2500), "{answers:?}");
    }
    let metrics = h.get(format!("{}/metrics", gateway.url())).bearer_auth(&gateway.token).send().await.unwrap().text().await.unwrap();
    let count = |name: &str| -> u64 { metrics.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0) };
    let (saturated, timeouts) = (count("spindle_gateway_errors_total{class=\"saturated\"}"), count("spindle_gateway_errors_total{class=\"timeout\"}"));
    // Refused at once or timed out at the gateway, each one; how many of
    // each depends on how fast the host hands the burst on.
    assert!(saturated + timeouts >= 24 && saturated >= 12, "{saturated} saturated, {timeouts} timed out:\n{metrics}");
    let slowest = answers.iter().map(|a| a.3).max().unwrap();

    // Redis moves again: served.
    assert!(paused.elapsed() < Duration::from_secs(9), "the burst outlasted the pause: {answers:?}");
    for m in cluster.masters() {
        assert_eq!(redis_cli(m, &["CLIENT", "UNPAUSE"]).trim(), "OK");
    }
    assert_eq!(send(cookie(h.get(&me), &c)).await.status, 200);
    println!(
        "saturated gateway ({}): 24 of 24 session reads answered 503 within {} ms ({saturated} refused as saturated, {timeouts} timed out)",
        HostKind::current().name(),
        slowest.as_millis()
    );
}

/// Webhooks in the cluster layout (`rate_limit_keys=cluster` in both apps):
/// the worker's trigger subscribed on one node (pub/sub spans the cluster),
/// its commands over REST through the gateway. Two topics on two masters:
/// deliveries are signed and made, a failing receiver is retried (after a
/// redrive) and dead-lettered to its owner, a deleted webhook gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_work_on_a_cluster() {
    let cluster = Cluster::start();
    let gateway = Gateway::start_cluster(&cluster);
    let rx = Receiver::start().await;
    let local = "http://127.0.0.1:*".to_string();
    let (rt, _db) = app(&gateway, &[("notify_webhook_allow", local.clone())]);
    let masters = cluster.masters();
    let mut variables = vec![("redis_host", format!("127.0.0.1:{}", masters[2]))];
    variables.extend(gateway.cluster_worker_variables());
    variables.extend([
        ("webhook_origin", local.clone()),
        ("notify_webhook_allow", local),
        ("notify_webhook_max_attempts", "2".into()),
        ("notify_webhook_backoff", "10ms".into()),
    ]);
    let worker = Worker::start(masters[2], variables);
    let h = http();
    let creds = json!({ "username": "hooks", "password": PASSWORD });
    assert_eq!(send(h.post(rt.url("/auth/register")).json(&creds)).await.status, 201);
    let c = send(h.post(rt.url("/auth/login")).json(&creds)).await.cookie();

    let topic_on = |m: u16| (0..).map(|i| format!("orders-{i}")).find(|t| cluster.master_of(&format!("{{{t}}}")) == m).unwrap();
    let (good, bad) = (topic_on(masters[0]), topic_on(masters[1]));
    let create = |topic: &str, url: String| send(cookie(h.post(rt.url("/notify/webhooks")), &c).json(&json!({ "topic": topic, "url": url })));
    let ok_hook = create(&good, rx.url("/ok")).await;
    assert_eq!(ok_hook.status, 201, "{:?}", ok_hook.body);
    let failing = create(&bad, rx.url("/fail")).await;
    assert_eq!(failing.status, 201, "{:?}", failing.body);
    let list = send(cookie(h.get(rt.url("/notify/webhooks")), &c)).await;
    assert_eq!(list.body["webhooks"].as_array().map(Vec::len), Some(2), "{:?}", list.body);

    let publish = |topic: String, n: u64| send(cookie(h.post(rt.url("/notify/publish")), &c).json(&json!({ "topic": topic, "event": "paid", "data": n })));
    let mut ids = Vec::new();
    for n in 0..3 {
        let r = publish(good.clone(), n).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(publish(bad.clone(), 9).await.status, 201);

    // Delivered, signed, each event once.
    let hits = rx.wait_for("/ok", 3, Duration::from_secs(20)).await;
    let secret = ok_hook.body["secret"].as_str().unwrap();
    let mut got: Vec<String> = hits.iter().map(|hit| hit.json()["id"].as_str().unwrap().to_owned()).collect();
    got.sort();
    assert_eq!(got, ids, "{}", worker.log());
    assert!(hits.iter().all(|hit| verify(secret, hit)), "bad signature");

    // The failing receiver: its first attempt, then (a redrive ticks the
    // worker, which re-drives every topic's due retries) the last, then a
    // dead letter for its owner.
    assert_eq!(rx.wait_for("/fail", 1, Duration::from_secs(20)).await.len(), 1, "{}", worker.log());
    let mut letters = Vec::new();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = send(cookie(h.post(rt.url("/notify/webhooks/redrive")), &c)).await;
        assert!(r.status == 202 || r.status == 429, "{:?}", r.body);
        let dl = send(cookie(h.get(rt.url("/notify/webhooks/dead-letters")), &c)).await;
        letters = dl.body["dead_letters"].as_array().cloned().unwrap_or_default();
        if !letters.is_empty() {
            break;
        }
    }
    assert_eq!(letters.len(), 1, "{}", worker.log());
    assert_eq!((letters[0]["topic"].as_str(), letters[0]["attempts"].as_i64(), letters[0]["last_status"].as_i64()), (Some(bad.as_str()), Some(2), Some(500)));
    assert_eq!(rx.hits("/fail").len(), 2);

    // Deleted: listed no more, and its topic's next event goes nowhere.
    let id = ok_hook.body["id"].as_str().unwrap();
    assert_eq!(send(cookie(h.delete(rt.url(&format!("/notify/webhooks/{id}"))), &c)).await.status, 204);
    assert_eq!(send(cookie(h.delete(rt.url(&format!("/notify/webhooks/{id}"))), &c)).await.status, 404);
    let list = send(cookie(h.get(rt.url("/notify/webhooks")), &c)).await;
    assert_eq!(list.body["webhooks"].as_array().map(Vec::len), Some(1), "{:?}", list.body);
    assert_eq!(publish(good.clone(), 4).await.status, 201);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.hits("/ok").len(), 3, "a deleted webhook was delivered to");
    let logs = format!("{}{}", rt.log(), worker.log());
    assert!(!logs.contains("CROSSSLOT") && !logs.contains("MOVED"), "a script crossed slots:\n{logs}");
}

/// The webhook limits hold in the cluster layout, where the owner's cap and
/// the topic's are checked in two slots: 25 per owner, 100 per topic, and a
/// registration the topic refuses leaves nothing in the owner's list.
#[tokio::test]
async fn webhook_limits_hold_on_a_cluster() {
    let cluster = Cluster::start();
    let gateway = Gateway::start_cluster(&cluster);
    let (rt, _db) = app(&gateway, &[("notify_webhook_allow", "http://127.0.0.1:*".into()), ("register_rate_limit", "fixed_window 100/60s".into())]);
    let h = http();
    let mut cookies = Vec::new();
    for i in 0..5 {
        let creds = json!({ "username": format!("owner{i}"), "password": PASSWORD });
        assert_eq!(send(h.post(rt.url("/auth/register")).json(&creds)).await.status, 201);
        cookies.push(send(h.post(rt.url("/auth/login")).json(&creds)).await.cookie());
    }
    let create = |c: &str, topic: String| send(cookie(h.post(rt.url("/notify/webhooks")), c).json(&json!({ "topic": topic, "url": "http://127.0.0.1:9/hook" })));
    let count = |c: String| {
        let rb = cookie(h.get(rt.url("/notify/webhooks")), &c);
        async move { send(rb).await.body["webhooks"].as_array().map(Vec::len) }
    };
    // Four owners fill one topic, 25 each.
    for c in &cookies[..4] {
        for _ in 0..25 {
            let r = create(c, "full".into()).await;
            assert_eq!(r.status, 201, "{:?}", r.body);
        }
    }
    let r = create(&cookies[0], "elsewhere".into()).await;
    assert_eq!((r.status, r.body["detail"].as_str()), (409, Some("at most 25 webhooks per owner")), "{:?}", r.body);
    let r = create(&cookies[4], "full".into()).await;
    assert_eq!((r.status, r.body["detail"].as_str()), (409, Some("at most 100 webhooks per topic")), "{:?}", r.body);
    assert_eq!(count(cookies[4].clone()).await, Some(0), "the refused registration left an entry");
    assert_eq!(count(cookies[0].clone()).await, Some(25));
    // The fifth owner can still register elsewhere, and a deletion makes room.
    assert_eq!(create(&cookies[4], "elsewhere".into()).await.status, 201);
    let first = send(cookie(h.get(rt.url("/notify/webhooks")), &cookies[1])).await.body["webhooks"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(send(cookie(h.delete(rt.url(&format!("/notify/webhooks/{first}"))), &cookies[1])).await.status, 204);
    assert_eq!(create(&cookies[4], "full".into()).await.status, 201);
    assert!(!rt.log().contains("CROSSSLOT"), "{}", rt.log());
}
