//! `/auth/...` through the real spin.toml and runner, on both transports:
//! accounts, sessions, cookies, CSRF, failure modes and round trips.

use serde_json::{json, Value};
use spindle::session::cookie;
use spindle_e2e::*;
use std::time::{Duration, Instant};

const SECRET: &str = "e2e-current-secret-0123456789";
const OLD_SECRET: &str = "e2e-previous-secret-abcdefgh";
const PASSWORD: &str = "correct horse battery";


/// The app on `b`, its database in `db`, with `session_secrets` = SECRET
/// unless `extra` says otherwise.
fn start(b: &Backend, db: &TempDir, extra: &[(&'static str, &str)]) -> Runner {
    let mut variables = b.variables();
    if !extra.iter().any(|(k, _)| *k == "session_secrets") {
        variables.push(("session_secrets", SECRET.to_string()));
    }
    variables.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    Runner::start(&app_manifest(), RunnerOpts { variables, runtime_config: Some(db.runtime_config()), ..Default::default() })
}

#[derive(Debug)]
struct Resp {
    status: u16,
    content_type: String,
    set_cookie: Option<String>,
    raw: String,
    body: Value,
}

impl Resp {
    /// `connect.sid=<value>` from Set-Cookie, ready for a Cookie header.
    fn cookie(&self) -> String {
        let sc = self.set_cookie.as_deref().unwrap_or_else(|| panic!("no set-cookie in {self:?}"));
        sc.split(';').next().unwrap().to_string()
    }

    fn assert_problem(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        assert_eq!(self.body["status"], status);
        assert!(self.body["type"].as_str().unwrap().starts_with("urn:spindle:problem:"));
        self
    }
}

async fn send(rb: reqwest::RequestBuilder) -> Resp {
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let header = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string());
    let content_type = header("content-type").unwrap_or_default();
    let set_cookie = header("set-cookie");
    let raw = r.text().await.unwrap();
    let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
    Resp { status, content_type, set_cookie, raw, body }
}

fn with_cookie(rb: reqwest::RequestBuilder, cookie: Option<&str>) -> reqwest::RequestBuilder {
    match cookie {
        Some(c) => rb.header("cookie", c),
        None => rb,
    }
}

async fn post(rt: &Runner, path: &str, body: &Value, cookie: Option<&str>) -> Resp {
    send(with_cookie(http().post(rt.url(path)).json(body), cookie)).await
}

async fn get(rt: &Runner, path: &str, cookie: Option<&str>) -> Resp {
    send(with_cookie(http().get(rt.url(path)), cookie)).await
}

async fn delete(rt: &Runner, path: &str, cookie: Option<&str>) -> Resp {
    send(with_cookie(http().delete(rt.url(path)), cookie)).await
}

async fn register(rt: &Runner, username: &str) -> Resp {
    post(rt, "/auth/register", &json!({ "username": username, "password": PASSWORD }), None).await
}

/// Logs in and returns the cookie.
async fn login(rt: &Runner, username: &str) -> String {
    let r = post(rt, "/auth/login", &json!({ "username": username, "password": PASSWORD }), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.cookie()
}

/// The sid inside a `connect.sid=s%3A<sid>.<sig>` cookie.
fn sid_of(cookie_pair: &str) -> String {
    let value = cookie_pair.split_once('=').unwrap().1;
    let decoded = cookie::decode_uri_component(value).unwrap();
    decoded.strip_prefix("s:").unwrap().rsplit_once('.').unwrap().0.to_string()
}

async fn redis_get(b: &Backend, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query_async(&mut b.redis.conn().await).await.unwrap()
}

both_transports!(register_login_me_logout, |b: Backend| async move {
    let db = TempDir::new();
    let rt = start(&b, &db, &[]);
    let r = register(&rt, "alice").await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["user"]["username"], "alice");
    assert!(r.body["user"]["id"].as_i64().unwrap() > 0);
    assert!(!r.raw.contains("argon2") && !r.raw.contains("password"), "no hash in {}", r.raw);
    register(&rt, "ALICE").await.assert_problem(409);

    let r = post(&rt, "/auth/login", &json!({ "username": "alice", "password": PASSWORD }), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["user"]["username"], "alice");
    let sc = r.set_cookie.clone().unwrap();
    assert!(sc.starts_with("connect.sid=s%3A"), "{sc}");
    for attr in ["; Max-Age=86400", "; Path=/", "; HttpOnly", "; SameSite=Lax", "; Expires="] {
        assert!(sc.contains(attr), "{attr} missing in {sc}");
    }
    assert!(!sc.contains("Secure"), "plain http: no Secure under cookie_secure=auto ({sc})");
    let c = r.cookie();
    let uid = r.body["user"]["id"].as_i64().unwrap();
    let sid = sid_of(&c);
    let random = sid.strip_prefix(&format!("{{{uid}}}")).unwrap_or_else(|| panic!("{sid}: the user's hash tag first"));
    assert_eq!(random.len(), 32, "24 random bytes, base64url: {sid}");

    let me = get(&rt, "/auth/me", Some(&c)).await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.body["user"]["username"], "alice");
    assert_eq!(me.body["user"]["id"], r.body["user"]["id"]);
    assert!(me.body["session"]["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(me.body["session"]["expires_at"].as_str().unwrap() > me.body["session"]["created_at"].as_str().unwrap());
    assert!(me.set_cookie.is_none(), "no refresh due right after login");

    let out = post(&rt, "/auth/logout", &json!({}), Some(&c)).await;
    assert_eq!(out.status, 204);
    assert!(out.set_cookie.unwrap().starts_with("connect.sid=; Max-Age=0"));
    get(&rt, "/auth/me", Some(&c)).await.assert_problem(401);
    assert_eq!(redis_get(&b, &format!("sess:{}", sid_of(&c))).await, None);
    assert_eq!(post(&rt, "/auth/logout", &json!({}), Some(&c)).await.status, 204, "idempotent");
    get(&rt, "/auth/me", None).await.assert_problem(401);

    // Wrong password and unknown user: the same answer.
    let wrong = post(&rt, "/auth/login", &json!({ "username": "alice", "password": "not the password" }), None).await;
    let nobody = post(&rt, "/auth/login", &json!({ "username": "nobody", "password": "not the password" }), None).await;
    let invalid = post(&rt, "/auth/login", &json!({ "username": "x", "password": "not the password" }), None).await;
    wrong.assert_problem(401);
    assert_eq!(wrong.raw, nobody.raw);
    assert_eq!(wrong.raw, invalid.raw);
    assert!(wrong.set_cookie.is_none());
});

both_transports!(login_never_reuses_the_session_it_was_given, |b: Backend| async move {
    let db = TempDir::new();
    let rt = start(&b, &db, &[]);
    register(&rt, "alice").await;
    let before = login(&rt, "alice").await;
    // Log in again while holding the first cookie: a new sid, the old one dies.
    let r = post(&rt, "/auth/login", &json!({ "username": "alice", "password": PASSWORD }), Some(&before)).await;
    assert_eq!(r.status, 200);
    let after = r.cookie();
    assert_ne!(sid_of(&before), sid_of(&after));
    get(&rt, "/auth/me", Some(&before)).await.assert_problem(401);
    assert_eq!(get(&rt, "/auth/me", Some(&after)).await.status, 200);

    // A planted, validly signed, anonymous session (as an Express app with
    // saveUninitialized would make) is no login, and login replaces it.
    let planted = "plantedplantedplantedplantedplan";
    let anon = r#"{"cookie":{"originalMaxAge":86400000,"expires":"2099-01-01T00:00:00.000Z","httpOnly":true,"path":"/"}}"#;
    let _: () = redis::cmd("SET").arg(format!("sess:{planted}")).arg(anon).query_async(&mut b.redis.conn().await).await.unwrap();
    let planted_cookie = format!("connect.sid={}", cookie::wire_value(planted, SECRET));
    get(&rt, "/auth/me", Some(&planted_cookie)).await.assert_problem(401);
    let r = post(&rt, "/auth/login", &json!({ "username": "alice", "password": PASSWORD }), Some(&planted_cookie)).await;
    assert_ne!(sid_of(&r.cookie()), planted);
    assert_eq!(redis_get(&b, &format!("sess:{planted}")).await, None, "the planted session is destroyed");
});

both_transports!(bad_cookies_are_401_never_500, |b: Backend| async move {
    let db = TempDir::new();
    let rt = start(&b, &db, &[]);
    register(&rt, "alice").await;
    let good = login(&rt, "alice").await;
    let sid = sid_of(&good);
    let value = good.split_once('=').unwrap().1.to_string();
    let other_valid = format!("connect.sid={}", cookie::wire_value("someothersidsomeothersidsomeothe", SECRET));
    let garbage_sid = "garbagegarbagegarbagegarbagegarb";
    let _: () = redis::cmd("SET").arg(format!("sess:{garbage_sid}")).arg("{not json").query_async(&mut b.redis.conn().await).await.unwrap();
    let cases: Vec<(&str, String)> = vec![
        ("tampered signature", format!("connect.sid={}", value.replace(&value[value.len() - 4..], "AAAA"))),
        // The random part after the user's tag (the tag is URL-encoded in `value`).
        ("tampered sid", format!("connect.sid={}", value.replacen(&sid[sid.find('}').unwrap() + 1..][..4], "AAAA", 1))),
        ("unsigned", format!("connect.sid={sid}")),
        ("s: without signature", format!("connect.sid=s%3A{sid}")),
        ("truncated", format!("connect.sid={}", &value[..value.len() - 10])),
        ("oversized", format!("connect.sid=s%3A{}", "A".repeat(6000))),
        ("duplicate", format!("{good}; {other_valid}")),
        ("unknown secret", format!("connect.sid={}", cookie::wire_value(&sid, "some-unknown-secret-123456"))),
        ("bad escapes", "connect.sid=%%%E0%A4".to_string()),
        ("signed but not a sid", format!("connect.sid={}", cookie::wire_value("../../etc", SECRET))),
        ("unreadable session", format!("connect.sid={}", cookie::wire_value(garbage_sid, SECRET))),
        ("empty", "connect.sid=".to_string()),
    ];
    for (what, c) in cases {
        for path in ["/auth/me", "/auth/sessions"] {
            let r = get(&rt, path, Some(&c)).await;
            assert!(r.status == 401 || r.status == 400, "{what} on {path}: {r:?}");
            assert_eq!(r.content_type, "application/problem+json", "{what}");
        }
    }
    // Two Cookie headers, same name, different values.
    let r = send(http().get(rt.url("/auth/me")).header("cookie", good.as_str()).header("cookie", other_valid.as_str())).await;
    r.assert_problem(401);
    // The same cookie twice is one cookie.
    assert_eq!(get(&rt, "/auth/me", Some(&format!("{good}; {good}"))).await.status, 200);
    assert!(rt.log().lines().all(|l| !l.contains(" 500 ")), "no 500 in {}", rt.log());
    assert!(!rt.log().contains(&sid), "sids are never logged");
});

both_transports!(an_old_secret_still_verifies_and_the_cookie_is_re_signed, |b: Backend| async move {
    let db = TempDir::new();
    let old = start(&b, &db, &[("session_secrets", OLD_SECRET)]);
    register(&old, "alice").await;
    let c = login(&old, "alice").await;
    assert_eq!(c.split_once('=').unwrap().1, cookie::wire_value(&sid_of(&c), OLD_SECRET));
    drop(old);

    let rotated = start(&b, &db, &[("session_secrets", &format!("{SECRET},{OLD_SECRET}"))]);
    let r = get(&rotated, "/auth/me", Some(&c)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let resigned = r.cookie();
    assert_eq!(sid_of(&resigned), sid_of(&c), "same session");
    assert_eq!(resigned.split_once('=').unwrap().1, cookie::wire_value(&sid_of(&c), SECRET), "signed with the first secret");
    assert!(r.set_cookie.unwrap().contains("; Max-Age="), "keeps its expiry");
    let r = get(&rotated, "/auth/me", Some(&resigned)).await;
    assert_eq!(r.status, 200);
    assert!(r.set_cookie.is_none(), "a current cookie is not re-sent");
    drop(rotated);

    let retired = start(&b, &db, &[("session_secrets", SECRET)]);
    get(&retired, "/auth/me", Some(&c)).await.assert_problem(401);
    assert_eq!(get(&retired, "/auth/me", Some(&resigned)).await.status, 200);
});

both_transports!(a_logout_racing_refreshing_requests_stays_logged_out, |b: Backend| async move {
    let db = TempDir::new();
    // Refresh on every request, so every /auth/me is a read and a write.
    let rt = start(&b, &db, &[("session_refresh_s", "0")]);
    register(&rt, "alice").await;
    for _ in 0..5 {
        let c = login(&rt, "alice").await;
        let sid = sid_of(&c);
        let mut tasks = Vec::new();
        for i in 0..32 {
            let (url, c) = (rt.url(if i == 16 { "/auth/logout" } else { "/auth/me" }), c.clone());
            tasks.push(tokio::spawn(async move {
                let rb = if i == 16 { http().post(url).json(&json!({})) } else { http().get(url) };
                rb.header("cookie", c).send().await.unwrap().status().as_u16()
            }));
        }
        for t in tasks {
            let s = t.await.unwrap();
            assert!(s == 200 || s == 204 || s == 401, "{s}");
        }
        assert_eq!(redis_get(&b, &format!("sess:{sid}")).await, None, "no refresh resurrected the session");
        get(&rt, "/auth/me", Some(&c)).await.assert_problem(401);
        let idx: Vec<String> = redis::cmd("ZRANGE").arg(spindle::keys::session::index(1)).arg(0).arg(-1).query_async(&mut b.redis.conn().await).await.unwrap();
        assert!(!idx.contains(&sid), "nor its index entry");
    }
});

both_transports!(with_redis_down_sessions_fail_closed_with_503_fast, |mut b: Backend| async move {
    let db = TempDir::new();
    let rt = start(&b, &db, &[("redis_timeout_ms", "1000")]);
    register(&rt, "alice").await;
    let c = login(&rt, "alice").await;
    b.stop_redis();
    for (what, fut) in [
        ("me", Box::pin(get(&rt, "/auth/me", Some(&c))) as std::pin::Pin<Box<dyn std::future::Future<Output = Resp>>>),
        ("sessions", Box::pin(get(&rt, "/auth/sessions", Some(&c)))),
        ("logout", Box::pin(post(&rt, "/auth/logout", &json!({}), Some(&c)))),
        ("login", Box::pin(post(&rt, "/auth/login", &json!({ "username": "alice", "password": PASSWORD }), None))),
    ] {
        let started = Instant::now();
        let r = fut.await;
        let took = started.elapsed();
        r.assert_problem(503);
        assert_eq!(r.body["type"], "urn:spindle:problem:redis-unavailable", "{what}");
        assert!(r.set_cookie.is_none(), "{what}: a failed logout keeps the cookie");
        assert!(took <= Duration::from_secs(2), "{what} answered in {took:?}");
    }
    b.restart_redis();
});

both_transports!(bad_input_is_a_4xx_problem, |b: Backend| async move {
    let db = TempDir::new();
    let rt = start(&b, &db, &[]);
    let raw = |path: &'static str, ct: &'static str, body: Vec<u8>| {
        let rt = &rt;
        async move { send(http().post(rt.url(path)).header("content-type", ct).body(body)).await }
    };
    for path in ["/auth/register", "/auth/login"] {
        raw(path, "application/json", b"{\"username\":".to_vec()).await.assert_problem(400);
        raw(path, "application/json", b"[1,2]".to_vec()).await.assert_problem(400);
        raw(path, "application/json", b"{\"username\":\"alice\"}".to_vec()).await.assert_problem(400);
        raw(path, "application/json", b"{\"username\":5,\"password\":\"x\"}".to_vec()).await.assert_problem(400);
        raw(path, "text/plain", b"{}".to_vec()).await.assert_problem(415);
        let big = format!("{{\"username\":\"alice\",\"password\":\"{}\"}}", "x".repeat(10_000));
        raw(path, "application/json", big.into_bytes()).await.assert_problem(413);
        raw(path, "application/json", format!("{}{}", "[".repeat(100), "]".repeat(100)).into_bytes()).await.assert_problem(400);
    }
    for name in ["ab", "a b", "_alice", "alice!", "ünïcode", &"x".repeat(33), ""] {
        register(&rt, name).await.assert_problem(400);
    }
    for pw in ["short", &"x".repeat(129)] {
        post(&rt, "/auth/register", &json!({ "username": "alice", "password": pw }), None).await.assert_problem(400);
    }
    get(&rt, "/auth/register", None).await.assert_problem(405);
    post(&rt, "/auth/me", &json!({}), None).await.assert_problem(405);
    get(&rt, "/auth/nope", None).await.assert_problem(404);
    get(&rt, "/auth/sessions/x/y", None).await.assert_problem(404);
});

both_transports!(cross_origin_state_changes_are_refused, |b: Backend| async move {
    let db = TempDir::new();
    let rt = start(&b, &db, &[]);
    register(&rt, "alice").await;
    let c = login(&rt, "alice").await;
    let own = format!("http://127.0.0.1:{}", rt.port);
    let creds = json!({ "username": "alice", "password": PASSWORD });
    let from = |origin: &str, referer: &str, path: &str, cookie: Option<&str>| {
        let mut rb = http().post(rt.url(path)).json(&creds);
        if !origin.is_empty() {
            rb = rb.header("origin", origin);
        }
        if !referer.is_empty() {
            rb = rb.header("referer", referer);
        }
        send(with_cookie(rb, cookie))
    };
    from("https://evil.example", "", "/auth/login", None).await.assert_problem(403);
    from("null", "", "/auth/login", None).await.assert_problem(403);
    from("", "https://evil.example/page", "/auth/login", None).await.assert_problem(403);
    from("", "", "/auth/register", None).await; // no header: not a browser
    assert_eq!(from(&own, "", "/auth/login", None).await.status, 200);
    assert_eq!(from("", &format!("{own}/app"), "/auth/login", None).await.status, 200);

    from("https://evil.example", "", "/auth/logout", Some(&c)).await.assert_problem(403);
    let r = send(http().delete(rt.url("/auth/sessions")).header("origin", "https://evil.example").header("cookie", &c)).await;
    r.assert_problem(403);
    assert_eq!(get(&rt, "/auth/me", Some(&c)).await.status, 200, "still logged in");
    drop(rt);

    let listed = start(&b, &db, &[("allowed_origins", "https://app.example")]);
    assert_eq!(send(http().post(listed.url("/auth/login")).json(&creds).header("origin", "https://app.example")).await.status, 200);
    let own = format!("http://127.0.0.1:{}", listed.port);
    send(http().post(listed.url("/auth/login")).json(&creds).header("origin", own)).await.assert_problem(403);
});

both_transports!(me_costs_one_redis_command, |b: Backend| async move {
    let db = TempDir::new();
    let rt = start(&b, &db, &[]);
    register(&rt, "alice").await;
    let c = login(&rt, "alice").await;
    let before = command_count(&b.redis).await;
    for _ in 0..10 {
        let r = get(&rt, "/auth/me", Some(&c)).await;
        assert_eq!(r.status, 200);
        assert!(r.set_cookie.is_none());
    }
    assert_eq!(command_count(&b.redis).await - before, 10, "one GET per /auth/me");
});

both_transports!(rolling_refresh_writes_only_when_due, |b: Backend| async move {
    let db = TempDir::new();
    let rt = start(&b, &db, &[("session_refresh_s", "1")]);
    register(&rt, "alice").await;
    let c = login(&rt, "alice").await;
    let key = format!("sess:{}", sid_of(&c));
    let expires = |raw: &str| serde_json::from_str::<Value>(raw).unwrap()["cookie"]["expires"].as_str().unwrap().to_string();
    let first = expires(&redis_get(&b, &key).await.unwrap());
    let before = command_count(&b.redis).await;
    assert!(get(&rt, "/auth/me", Some(&c)).await.set_cookie.is_none());
    assert_eq!(command_count(&b.redis).await - before, 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = get(&rt, "/auth/me", Some(&c)).await;
    assert_eq!(r.status, 200);
    let sc = r.set_cookie.clone().expect("a refresh re-sends the cookie");
    assert!(sc.contains("Max-Age=86400"), "{sc}");
    assert_eq!(r.cookie(), c, "same session, same signature");
    let second = expires(&redis_get(&b, &key).await.unwrap());
    assert!(second > first, "{second} > {first}");
    let ttl: i64 = redis::cmd("TTL").arg(&key).query_async(&mut b.redis.conn().await).await.unwrap();
    assert!((86_398..=86_400).contains(&ttl), "{ttl}");
    // Right after a refresh, reads are reads again.
    let before = command_count(&b.redis).await;
    assert!(get(&rt, "/auth/me", Some(&c)).await.set_cookie.is_none());
    assert_eq!(command_count(&b.redis).await - before, 1);
});

both_transports!(sessions_are_listed_by_handle_and_can_be_ended, |b: Backend| async move {
    let db = TempDir::new();
    let rt = start(&b, &db, &[]);
    register(&rt, "alice").await;
    register(&rt, "bob").await;
    let mut cookies = Vec::new();
    for ua in ["phone", "laptop", "tablet"] {
        let r = send(http().post(rt.url("/auth/login")).header("user-agent", ua).json(&json!({ "username": "alice", "password": PASSWORD }))).await;
        cookies.push(r.cookie());
    }
    let bob = login(&rt, "bob").await;

    let r = get(&rt, "/auth/sessions", Some(&cookies[0])).await;
    assert_eq!(r.status, 200, "{r:?}");
    let list = r.body["sessions"].as_array().unwrap().clone();
    assert_eq!(list.len(), 3, "{list:?}");
    assert_eq!(list.iter().map(|s| s["user_agent"].as_str().unwrap()).collect::<Vec<_>>(), ["tablet", "laptop", "phone"], "newest first");
    assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);
    assert_eq!(list[2]["current"], true);
    for s in &list {
        assert_eq!(s["ip"], "127.0.0.1");
        assert_eq!(s["handle"].as_str().unwrap().len(), 16);
        for key in ["created_at", "last_seen", "expires_at"] {
            assert!(s[key].as_str().unwrap().ends_with('Z'), "{key}");
        }
    }
    for c in &cookies {
        assert!(!r.raw.contains(&sid_of(c)), "no raw sid in the list");
    }

    // One session, by handle.
    let laptop = list[1]["handle"].as_str().unwrap();
    let r = delete(&rt, &format!("/auth/sessions/{laptop}"), Some(&cookies[0])).await;
    assert_eq!(r.status, 204);
    assert!(r.set_cookie.is_none(), "another session: our cookie stays");
    get(&rt, "/auth/me", Some(&cookies[1])).await.assert_problem(401);
    delete(&rt, &format!("/auth/sessions/{laptop}"), Some(&cookies[0])).await.assert_problem(404);
    delete(&rt, "/auth/sessions/0123456789abcdef", Some(&cookies[0])).await.assert_problem(404);
    // Bob cannot end Alice's sessions, even knowing a handle.
    let phone = list[2]["handle"].as_str().unwrap();
    delete(&rt, &format!("/auth/sessions/{phone}"), Some(&bob)).await.assert_problem(404);
    delete(&rt, &format!("/auth/sessions/{phone}"), None).await.assert_problem(401);
    assert_eq!(get(&rt, "/auth/me", Some(&cookies[0])).await.status, 200);

    // A session an Express app destroyed (plain DEL) drops out of the list.
    let _: () = redis::cmd("DEL").arg(format!("sess:{}", sid_of(&cookies[2]))).query_async(&mut b.redis.conn().await).await.unwrap();
    let r = get(&rt, "/auth/sessions", Some(&cookies[0])).await;
    assert_eq!(r.body["sessions"].as_array().unwrap().len(), 1);

    // Everywhere.
    login(&rt, "alice").await;
    let r = delete(&rt, "/auth/sessions", Some(&cookies[0])).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["destroyed"], 2);
    assert!(r.set_cookie.unwrap().contains("Max-Age=0"));
    get(&rt, "/auth/me", Some(&cookies[0])).await.assert_problem(401);
    assert_eq!(get(&rt, "/auth/me", Some(&bob)).await.status, 200, "other users keep theirs");
});

both_transports!(secure_follows_the_policy_and_trusted_proxies, |b: Backend| async move {
    let db = TempDir::new();
    let creds = json!({ "username": "alice", "password": PASSWORD });
    let rt = start(&b, &db, &[]);
    register(&rt, "alice").await;
    let login_with = |rt: &Runner, proto: Option<&str>| {
        let mut rb = http().post(rt.url("/auth/login")).json(&creds);
        if let Some(p) = proto {
            rb = rb.header("x-forwarded-proto", p);
        }
        send(rb)
    };
    let sc = |r: Resp| r.set_cookie.unwrap();
    assert!(!sc(login_with(&rt, Some("https")).await).contains("; Secure"), "untrusted peer: header ignored");
    drop(rt);
    let proxied = start(&b, &db, &[("trusted_proxies", "127.0.0.1/32,::1")]);
    assert!(sc(login_with(&proxied, Some("https")).await).contains("; Secure"));
    assert!(!sc(login_with(&proxied, Some("http")).await).contains("; Secure"));
    drop(proxied);
    let always = start(&b, &db, &[("cookie_secure", "true"), ("cookie_name", "sid"), ("cookie_same_site", "strict"), ("cookie_domain", "127.0.0.1")]);
    let r = login_with(&always, None).await;
    let c = sc(r);
    assert!(c.starts_with("sid=s%3A"), "{c}");
    for attr in ["; Secure", "; SameSite=Strict", "; Domain=127.0.0.1"] {
        assert!(c.contains(attr), "{attr} in {c}");
    }
    let pair = c.split(';').next().unwrap();
    assert_eq!(get(&always, "/auth/me", Some(pair)).await.status, 200);
    let stored = redis_get(&b, &format!("sess:{}", sid_of(pair))).await.unwrap();
    assert!(stored.starts_with(r#"{"cookie":{"originalMaxAge":86400000,"expires":""#), "{stored}");
    assert!(stored.contains(r#""secure":true,"httpOnly":true,"domain":"127.0.0.1","path":"/","sameSite":"strict"},"user":{"#), "{stored}");
});

#[tokio::test]
async fn without_session_secrets_auth_is_a_clear_500() {
    let b = Backend::start(Transport::Tcp);
    let db = TempDir::new();
    let rt = start(&b, &db, &[("session_secrets", "")]);
    let r = get(&rt, "/auth/me", None).await;
    r.assert_problem(500);
    assert!(r.body["detail"].as_str().unwrap().contains("session_secrets"), "{r:?}");
    let rt = start(&b, &db, &[("session_secrets", "too-short")]);
    get(&rt, "/auth/me", None).await.assert_problem(500);
    // The rest of the app is unaffected.
    assert_eq!(get(&rt, "/healthz", None).await.status, 200);
}

both_transports!(login_attempts_are_throttled_per_address_and_per_username, |b: Backend| async move {
    let db = TempDir::new();
    let rt = start(&b, &db, &[("login_rate_limit", "fixed_window 3/60s")]);
    assert_eq!(register(&rt, "victim").await.status, 201);
    let wrong = json!({ "username": "victim", "password": "not the password" });
    inside_one_minute(Duration::from_secs(20)).await;

    // Three wrong passwords spend the budget; they are 401s with rate-limit headers.
    for _ in 0..3 {
        let r = send(http().post(rt.url("/auth/login")).json(&wrong)).await;
        r.assert_problem(401);
    }
    // The fourth is refused before any password check: 429 with Retry-After.
    let r = http().post(rt.url("/auth/login")).json(&wrong).send().await.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "urn:spindle:problem:quota-exceeded");
    // Even the right password is refused now: the budget is per username too.
    let right = json!({ "username": "victim", "password": PASSWORD });
    assert_eq!(send(http().post(rt.url("/auth/login")).json(&right)).await.status, 429);
});

both_transports!(a_successful_login_gives_its_attempts_back, |b: Backend| async move {
    let db = TempDir::new();
    let rt = start(&b, &db, &[("login_rate_limit", "fixed_window 3/60s")]);
    assert_eq!(register(&rt, "regular").await.status, 201);
    // Ten good logins in a row with a budget of three: none is refused.
    for _ in 0..10 {
        login(&rt, "regular").await;
    }
});

both_transports!(api_limits_a_logged_in_user_per_user, |b: Backend| async move {
    let db = TempDir::new();
    let rt = start(&b, &db, &[("api_rate_limit", "fixed_window 5/60s")]);
    assert_eq!(register(&rt, "carol").await.status, 201);
    let cookie = login(&rt, "carol").await;
    let q = get(&rt, "/api/quota", Some(&cookie)).await;
    assert_eq!((q.status, q.body["identity"].as_str()), (200, Some("user")), "{q:?}");
    let anon = get(&rt, "/api/quota", None).await;
    assert_eq!(anon.body["identity"], "ip");
    inside_one_minute(Duration::from_secs(20)).await;
    for _ in 0..5 {
        assert_eq!(get(&rt, "/api/ping", Some(&cookie)).await.status, 200);
    }
    assert_eq!(get(&rt, "/api/ping", Some(&cookie)).await.status, 429, "the user's budget is spent");
    assert_eq!(get(&rt, "/api/ping", None).await.status, 200, "the address's budget is separate");
    // A forged cookie is just anonymous here, never a 5xx.
    assert_eq!(get(&rt, "/api/ping", Some("connect.sid=s%3Aforged.sig")).await.status, 200);
});
