//! The app on a real Redis Cluster (3 masters, 3 replicas), over REST
//! through the gateway (`--cluster`), on the host `SPINDLE_HOST` picks, with
//! `rate_limit_keys=cluster`: every family that is cluster-safe, driven over
//! HTTP. A script whose keys span two slots answers CROSSSLOT, which the app
//! turns into a 503 (or, for the cache, a BYPASS): each step asserts the
//! status and, for reads, that the cache was used.
//!
//! Not here: webhooks. Their registry and the worker's claim still span the
//! topics' slots (docs/redis.md#redis-cluster).

use serde_json::{json, Value};
use spindle_e2e::*;
use std::time::Duration;

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

#[tokio::test]
async fn every_cluster_safe_family_works_on_a_cluster() {
    let cluster = Cluster::start();
    let gateway = Gateway::start_cluster(&cluster);
    let db = TempDir::new();
    let variables = vec![
        ("redis_scheme", "http".to_string()),
        ("redis_host", gateway.authority()),
        ("redis_token", gateway.token.clone()),
        ("session_secrets", "cluster-e2e-secret-0123456789abcdef".into()),
        ("rate_limit_keys", "cluster".into()),
        ("api_rate_limit", "fixed_window 5/60s".into()),
        ("users_cache_buckets", "16".into()),
    ];
    let rt = Runner::start(&app_manifest(), RunnerOpts { variables, runtime_config: Some(db.runtime_config()), ..Default::default() });
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
