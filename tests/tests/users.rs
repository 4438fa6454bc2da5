//! `/users/...` through the real spin.toml and runner: every route on both
//! transports and both stores (Spin SQLite, and PostgreSQL through pg3 with
//! `db_url`), cache headers and invalidation, conditional requests, the
//! owner's view, hostile input, round trips, and Redis failing mid-write.

use serde_json::{json, Value};
use spindle_e2e::*;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SECRET: &str = "users-e2e-secret-0123456789";
const PASSWORD: &str = "correct horse battery";


/// The source of truth a test runs against.
enum Db {
    Sqlite(TempDir),
    Postgres(Postgres),
}

impl Db {
    fn sqlite() -> Db {
        Db::Sqlite(TempDir::new())
    }

    fn postgres() -> Db {
        Db::Postgres(Postgres::start())
    }
}

/// The app on `b` and `db`: sessions signed with SECRET, a login throttle
/// that tests cannot exhaust, plus `extra`.
fn start(b: &Backend, db: &Db, extra: &[(&'static str, &str)]) -> Runner {
    let mut variables = b.variables();
    variables.push(("session_secrets", SECRET.to_string()));
    variables.push(("login_rate_limit", "fixed_window 100000/1s".to_string()));
    let mut runtime_config = None;
    match db {
        Db::Sqlite(dir) => runtime_config = Some(dir.0.join("runtime-config.toml")),
        Db::Postgres(pg) => {
            variables.push(("db_url", pg.url()));
            variables.push(("db_origin", format!("postgres://127.0.0.1:{}", pg.port)));
        }
    }
    variables.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    Runner::start(&app_manifest(), RunnerOpts { variables, runtime_config, ..Default::default() })
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    raw: String,
    body: Value,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn x_cache(&self) -> &str {
        self.header("x-cache").unwrap_or_else(|| panic!("no X-Cache in {self:?}"))
    }

    fn etag(&self) -> String {
        self.header("etag").unwrap_or_else(|| panic!("no ETag in {self:?}")).to_string()
    }

    fn version(&self) -> i64 {
        self.body["user"]["version"].as_i64().unwrap_or_else(|| panic!("no version in {self:?}"))
    }

    fn problem(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("content-type"), Some("application/problem+json"), "{self:?}");
        assert_eq!(self.body["status"], status);
        assert!(self.body["type"].as_str().unwrap().starts_with("urn:spindle:problem:"));
        self
    }
}

async fn send(rb: reqwest::RequestBuilder) -> Resp {
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let raw = r.text().await.unwrap();
    let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
    assert!(!raw.contains("argon2") && !raw.contains("password_hash"), "password material in {raw}");
    Resp { status, headers, raw, body }
}

fn with_cookie(rb: reqwest::RequestBuilder, cookie: Option<&str>) -> reqwest::RequestBuilder {
    match cookie {
        Some(c) => rb.header("cookie", c),
        None => rb,
    }
}

async fn get(rt: &Runner, path: &str, cookie: Option<&str>) -> Resp {
    send(with_cookie(http().get(rt.url(path)), cookie)).await
}

async fn patch(rt: &Runner, id: i64, body: &Value, cookie: Option<&str>, if_match: Option<&str>) -> Resp {
    let mut rb = with_cookie(http().patch(rt.url(&format!("/users/{id}"))).json(body), cookie);
    if let Some(m) = if_match {
        rb = rb.header("if-match", m);
    }
    send(rb).await
}

/// Registers `name` and returns its id.
async fn register(rt: &Runner, name: &str) -> i64 {
    let r = send(http().post(rt.url("/auth/register")).json(&json!({ "username": name, "password": PASSWORD }))).await;
    assert_eq!(r.status, 201, "{r:?}");
    r.body["user"]["id"].as_i64().unwrap()
}

/// Logs in and returns the cookie pair.
async fn login(rt: &Runner, name: &str) -> String {
    let r = send(http().post(rt.url("/auth/login")).json(&json!({ "username": name, "password": PASSWORD }))).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.header("set-cookie").unwrap().split(';').next().unwrap().to_string()
}

async fn redis_cmd<T: redis::FromRedisValue>(redis: &Redis, cmd: &mut redis::Cmd) -> T {
    cmd.query_async(&mut redis.conn().await).await.unwrap()
}

/// Every answer of the routes, on one transport and one store.
async fn routes(b: Backend, db: Db) {
    let rt = start(&b, &db, &[]);
    let alice = register(&rt, "alice").await;
    let bob = register(&rt, "bob").await;
    let (ca, cb) = (login(&rt, "alice").await, login(&rt, "bob").await);
    let path = format!("/users/{alice}");

    // Miss, then hit; the public view has no email; an ETag per version and view.
    let r = get(&rt, &path, None).await;
    assert_eq!((r.status, r.x_cache()), (200, "MISS"), "{r:?}");
    assert_eq!(r.body["user"]["username"], "alice");
    assert!(r.body["user"].get("email").is_none(), "{r:?}");
    assert_eq!(r.etag(), format!("\"u{alice}-v1\""));
    assert_eq!(r.header("vary"), Some("Cookie"));
    let r = get(&rt, &path, None).await;
    assert_eq!((r.status, r.x_cache(), r.etag()), (200, "HIT", format!("\"u{alice}-v1\"")));

    // If-None-Match: 304 with no body (weak comparison), 200 otherwise.
    for inm in [format!("\"u{alice}-v1\""), format!("W/\"u{alice}-v1\""), format!("\"x\", W/\"u{alice}-v1\""), "*".to_string()] {
        let r = send(http().get(rt.url(&path)).header("if-none-match", &inm)).await;
        assert_eq!((r.status, r.raw.as_str(), r.x_cache()), (304, "", "HIT"), "{inm}");
        assert_eq!(r.etag(), format!("\"u{alice}-v1\""));
    }
    let r = send(http().get(rt.url(&path)).header("if-none-match", format!("\"u{alice}-v1-owner\""))).await;
    assert_eq!(r.status, 200, "the owner's tag is another representation");

    // The owner sees the email (empty so far), others do not.
    let r = get(&rt, &path, Some(&ca)).await;
    assert_eq!((r.x_cache(), r.etag()), ("HIT", format!("\"u{alice}-v1-owner\"")));
    assert_eq!(r.body["user"]["email"], Value::Null);
    assert!(r.body["user"].as_object().unwrap().contains_key("email"));
    assert!(get(&rt, &path, Some(&cb)).await.body["user"].get("email").is_none());

    // PATCH by the owner, honouring If-Match; the write invalidates the cache.
    let r = patch(&rt, alice, &json!({ "display_name": "Alice A.", "email": "alice@example.com" }), Some(&ca), Some(&format!("\"u{alice}-v1\""))).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!((r.version(), r.body["user"]["email"].as_str()), (2, Some("alice@example.com")));
    assert_eq!(r.etag(), format!("\"u{alice}-v2-owner\""));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = get(&rt, &path, None).await;
    assert_eq!((r.x_cache(), r.version()), ("MISS", 2), "invalidated: {r:?}");
    assert_eq!(r.body["user"]["display_name"], "Alice A.");
    assert!(r.body["user"].get("email").is_none(), "still hidden from the public: {r:?}");
    assert_eq!(get(&rt, &path, None).await.x_cache(), "HIT");
    let r = get(&rt, &path, Some(&ca)).await;
    assert_eq!((r.x_cache(), r.body["user"]["email"].as_str()), ("HIT", Some("alice@example.com")));
    let r = send(http().get(rt.url(&path)).header("if-none-match", format!("\"u{alice}-v1\""))).await;
    assert_eq!((r.status, r.version()), (200, 2), "an old tag no longer matches");

    // 412 on a version conflict, whatever the form of If-Match.
    for stale in [format!("\"u{alice}-v1\""), "1".to_string(), "\"1\"".to_string(), format!("W/\"u{alice}-v2\""), format!("\"u{bob}-v2\"")] {
        let r = patch(&rt, alice, &json!({ "display_name": "lost" }), Some(&ca), Some(&stale)).await;
        r.problem(412);
        assert_eq!(r.body["type"], "urn:spindle:problem:precondition-failed");
        assert_eq!(r.etag(), format!("\"u{alice}-v2-owner\""), "{stale}");
    }
    let r = patch(&rt, alice, &json!({ "display_name": "Alice B." }), Some(&ca), Some("2")).await;
    assert_eq!((r.status, r.version()), (200, 3));
    let r = patch(&rt, alice, &json!({ "email": null }), Some(&ca), Some("*")).await;
    assert_eq!((r.status, r.version(), &r.body["user"]["email"]), (200, 4, &Value::Null));
    let r = patch(&rt, alice, &json!({ "display_name": null }), Some(&ca), None).await;
    assert_eq!((r.status, r.version()), (200, 5), "no If-Match: unconditional");
    assert_eq!(get(&rt, &path, None).await.version(), 5);

    // Owner only: 401 without a session, 403 for someone else or cross-site.
    patch(&rt, alice, &json!({ "display_name": "x" }), None, None).await.problem(401);
    patch(&rt, alice, &json!({ "display_name": "x" }), Some("connect.sid=s%3Aforged.sig"), None).await.problem(401);
    let r = patch(&rt, alice, &json!({ "display_name": "x" }), Some(&cb), None).await;
    assert_eq!(r.problem(403).body["type"], "urn:spindle:problem:forbidden");
    let r = send(http().patch(rt.url(&path)).header("cookie", &ca).header("origin", "https://evil.example").json(&json!({ "display_name": "x" }))).await;
    r.problem(403);
    assert_eq!(get(&rt, &path, None).await.version(), 5, "nothing was written");

    // Unknown ids: 404 problem+json, negatively cached.
    let r = get(&rt, "/users/999999", None).await;
    assert_eq!((r.problem(404).x_cache()), "MISS");
    assert_eq!(get(&rt, "/users/999999", None).await.problem(404).x_cache(), "HIT");

    // Batches: one answer per distinct id, in order; hits in one lookup.
    let r = get(&rt, &format!("/users?ids={bob},{alice},999999,{bob}"), Some(&ca)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let users = r.body["users"].as_array().unwrap();
    assert_eq!(users.iter().map(|u| u["id"].as_i64().unwrap()).collect::<Vec<_>>(), vec![bob, alice]);
    assert!(users[0].get("email").is_none(), "bob's email is not alice's to see");
    assert!(users[1].as_object().unwrap().contains_key("email"), "alice sees her own");
    assert_eq!(r.body["not_found"], json!([999999]));
    assert_eq!(r.x_cache(), "MISS", "bob was not cached yet: {r:?}");
    assert_eq!(r.header("x-cache-lookups"), Some("hit=2, stale=0, miss=1, bypass=0"));
    let r = get(&rt, &format!("/users?ids={alice},{bob},999999"), None).await;
    assert_eq!((r.x_cache(), r.header("x-cache-lookups")), ("HIT", Some("hit=3, stale=0, miss=0, bypass=0")));

    // Bad input: 4xx problem+json, never a 500.
    for bad in ["/users/abc", "/users/0", "/users/01", "/users/-1", "/users/1.5", "/users/99999999999999999999", "/users/%31"] {
        get(&rt, bad, None).await.problem(400);
    }
    for bad in ["/users", "/users?ids=", "/users?ids=1,,2", "/users?ids=1,x", "/users?id=1"] {
        get(&rt, bad, None).await.problem(400);
    }
    let many = (1..=101).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    let r = get(&rt, &format!("/users?ids={many}"), None).await;
    assert!(r.problem(400).body["detail"].as_str().unwrap().contains("at most 100"), "{r:?}");
    let exactly = (1..=100).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    assert_eq!(get(&rt, &format!("/users?ids={exactly}"), None).await.status, 200);
    let raw_patch = |ct: &'static str, body: Vec<u8>| {
        send(http().patch(rt.url(&path)).header("cookie", &ca).header("content-type", ct).body(body))
    };
    raw_patch("application/json", b"{\"display_name\":".to_vec()).await.problem(400);
    raw_patch("application/json", b"[]".to_vec()).await.problem(400);
    raw_patch("application/json", b"{}".to_vec()).await.problem(400);
    raw_patch("application/json", b"{\"password\":\"x\"}".to_vec()).await.problem(400);
    raw_patch("application/json", b"{\"username\":\"mallory\"}".to_vec()).await.problem(400);
    raw_patch("application/json", b"{\"display_name\":5}".to_vec()).await.problem(400);
    raw_patch("application/json", format!("{}{}", "[".repeat(64), "]".repeat(64)).into_bytes()).await.problem(400);
    raw_patch("text/plain", b"{\"display_name\":\"x\"}".to_vec()).await.problem(415);
    raw_patch("application/json", format!("{{\"display_name\":\"{}\"}}", "x".repeat(5000)).into_bytes()).await.problem(413);
    for email in ["nope", "a@b", "a b@example.com", "a@@example.com", "a@example..com", "<a@example.com>"] {
        patch(&rt, alice, &json!({ "email": email }), Some(&ca), None).await.problem(400);
    }
    patch(&rt, alice, &json!({ "display_name": "" }), Some(&ca), None).await.problem(400);
    patch(&rt, alice, &json!({ "display_name": "x".repeat(65) }), Some(&ca), None).await.problem(400);
    patch(&rt, alice, &json!({ "display_name": "x" }), Some(&ca), Some("garbage tag")).await.problem(400);
    patch(&rt, 99999, &json!({ "display_name": "x" }), Some(&ca), None).await.problem(403);
    assert_eq!(get(&rt, &path, None).await.version(), 5, "no bad request wrote anything");

    // Methods and paths.
    let r = send(http().delete(rt.url(&path))).await;
    assert_eq!(r.problem(405).header("allow"), Some("GET, HEAD, PATCH"));
    let r = send(http().post(rt.url("/users")).json(&json!({}))).await;
    assert_eq!(r.problem(405).header("allow"), Some("GET, HEAD"));
    get(&rt, &format!("{path}/more"), None).await.problem(404);
    let r = send(http().head(rt.url(&path))).await;
    assert_eq!((r.status, r.raw.as_str()), (200, ""));

    assert!(!rt.log().contains(" 500 "), "{}", rt.log());
    assert!(!rt.log().contains("trap"), "{}", rt.log());
}

both_transports!(routes_on_sqlite, |b: Backend| async move { routes(b, Db::sqlite()).await });
both_transports!(routes_on_postgres, |b: Backend| async move { routes(b, Db::postgres()).await });

/// `auth` and `users` open the same store: with `db_url` set, accounts live
/// in PostgreSQL (and SQLite is left untouched), with the same schema.
#[tokio::test]
async fn db_url_moves_auth_and_users_to_postgres() {
    let b = Backend::start(Transport::Tcp);
    let pg = Postgres::start();
    let sqlite = TempDir::new();
    let mut variables = b.variables();
    variables.push(("session_secrets", SECRET.to_string()));
    variables.push(("db_url", pg.url()));
    variables.push(("db_origin", format!("postgres://127.0.0.1:{}", pg.port)));
    let rt = Runner::start(
        &app_manifest(),
        RunnerOpts { variables, runtime_config: Some(sqlite.0.join("runtime-config.toml")), ..Default::default() },
    );
    let id = register(&rt, "Carol").await;
    let r = send(http().post(rt.url("/auth/register")).json(&json!({ "username": "CAROL", "password": PASSWORD }))).await;
    assert_eq!(r.status, 409, "case-insensitive on PostgreSQL too: {r:?}");
    assert_eq!(pg.psql("SELECT username || ':' || version FROM users"), "Carol:1");
    assert!(!sqlite.0.join("db.sqlite").exists(), "SQLite was never opened");
    assert_eq!(pg.psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations"), "1,2");
    assert_eq!(
        pg.psql("SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 'users'"),
        "id bigint, username text, password_hash text, display_name text, email text, created_at text, updated_at text, version bigint"
    );
    let c = login(&rt, "carol").await;
    let r = patch(&rt, id, &json!({ "email": "carol@example.com" }), Some(&c), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(pg.psql(&format!("SELECT email || ':' || version FROM users WHERE id = {id}")), "carol@example.com:2");

    // A wrong db_url is a clear 500, naming the variable but never its value.
    let mut variables = b.variables();
    variables.push(("session_secrets", SECRET.to_string()));
    variables.push(("db_url", "mysql://root:hunter2@db/app".to_string()));
    let bad = Runner::start(&app_manifest(), RunnerOpts { variables, ..Default::default() });
    let r = send(http().post(bad.url("/auth/register")).json(&json!({ "username": "dave", "password": PASSWORD }))).await;
    assert_eq!(r.problem(500).body["type"], "urn:spindle:problem:misconfigured");
    assert!(r.raw.contains("db_url") && !r.raw.contains("hunter2"), "{r:?}");
    assert!(!bad.log().contains("hunter2"));
    // Migrations are idempotent: a second app on the same database starts clean.
    drop(rt);
    let db = Db::Postgres(pg);
    let again = start(&b, &db, &[]);
    assert_eq!(get(&again, &format!("/users/{id}"), None).await.status, 200);
}


both_transports!(round_trips_per_route, |b: Backend| async move {
    let db = Db::sqlite();
    // The epoch key is refreshed (one more round trip, by one request) when
    // half of users_cache_epoch_ms is gone: not during this test.
    let rt = start(&b, &db, &[("users_cache_epoch_ms", "60000")]);
    let alice = register(&rt, "alice").await;
    let bob = register(&rt, "bob").await;
    let ca = login(&rt, "alice").await;
    // Warm up: load the scripts (EVALSHA, NOSCRIPT, EVAL the first time).
    get(&rt, "/users/424242", None).await;
    get(&rt, &format!("/users/{alice}"), None).await;
    patch(&rt, alice, &json!({ "display_name": "warm" }), Some(&ca), None).await;

    let m = Monitor::start(&b.redis).await;
    let r = get(&rt, &format!("/users/{alice}"), None).await;
    assert_eq!(r.x_cache(), "MISS");
    assert_eq!(m.sent().await, vec!["EVALSHA", "EVALSHA"], "a miss: lookup + fill");
    let r = get(&rt, &format!("/users/{alice}"), None).await;
    assert_eq!(r.x_cache(), "HIT");
    assert_eq!(m.sent().await, vec!["EVALSHA"], "a hit: one round trip");
    let r = get(&rt, &format!("/users/{alice}"), Some(&ca)).await;
    assert_eq!(r.x_cache(), "HIT");
    assert_eq!(m.sent().await, vec!["GET", "EVALSHA"], "with a session: its GET, then the lookup");
    let r = get(&rt, &format!("/users?ids={alice},{bob},777"), None).await;
    assert_eq!(r.x_cache(), "MISS");
    assert_eq!(m.sent().await, vec!["EVALSHA", "EVALSHA"], "a batch with misses: one lookup, one fill");
    let r = get(&rt, &format!("/users?ids={alice},{bob},777"), None).await;
    assert_eq!(r.x_cache(), "HIT");
    assert_eq!(m.sent().await, vec!["EVALSHA"], "a batch of hits: one round trip");
    let r = patch(&rt, alice, &json!({ "display_name": "counted" }), Some(&ca), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(m.sent().await, vec!["GET", "EVALSHA"], "a write: the session's GET, the invalidation");
    get(&rt, "/users/abc", None).await.problem(400);
    assert!(m.sent().await.is_empty(), "bad input costs nothing");
});

both_transports!(stale_answers_and_negative_caching, |b: Backend| async move {
    let db = Db::sqlite();
    let rt = start(&b, &db, &[("users_cache_ttl_s", "1"), ("users_cache_negative_ttl_s", "1"), ("users_cache_wait_ms", "300")]);
    let alice = register(&rt, "alice").await;
    let ca = login(&rt, "alice").await;
    let path = format!("/users/{alice}");
    let lease = spindle::cache::CacheKeys::new("spindle", "users").lease(&alice.to_string());
    assert_eq!(get(&rt, &path, None).await.x_cache(), "MISS");

    // Past its freshness, with someone else refreshing (a lease planted by
    // hand): served as STALE at once, by default — no write has superseded it.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let _: () = redis_cmd(&b.redis, redis::cmd("SET").arg(&lease).arg("someone-else").arg("PX").arg(5000)).await;
    let r = get(&rt, &path, None).await;
    assert_eq!((r.status, r.x_cache(), r.version()), (200, "STALE", 1), "{r:?}");
    let _: () = redis_cmd(&b.redis, redis::cmd("DEL").arg(&lease)).await;
    assert_eq!(get(&rt, &path, None).await.x_cache(), "MISS", "the first one after refreshes");
    assert_eq!(get(&rt, &path, None).await.x_cache(), "HIT");

    // A write keeps what it invalidated as a stale copy, served only to a
    // request that accepts it (Cache-Control: max-stale) while someone else
    // reloads; any other request waits, then reads the database itself.
    let r = patch(&rt, alice, &json!({ "display_name": "new" }), Some(&ca), None).await;
    assert_eq!(r.version(), 2);
    let _: () = redis_cmd(&b.redis, redis::cmd("SET").arg(&lease).arg("someone-else").arg("PX").arg(5000)).await;
    let r = send(http().get(rt.url(&path)).header("cache-control", "max-stale")).await;
    assert_eq!((r.x_cache(), r.version()), ("STALE", 1), "{r:?}");
    let started = Instant::now();
    let r = get(&rt, &path, None).await;
    assert_eq!((r.x_cache(), r.version()), ("MISS", 2), "never older than an acknowledged write: {r:?}");
    assert!(started.elapsed() >= Duration::from_millis(300), "waited on the lease first");
    let _: () = redis_cmd(&b.redis, redis::cmd("DEL").arg(&lease)).await;

    // A 404 is cached for users_cache_negative_ttl_s: a user registered in
    // that window is missed until it passes (documented).
    let r = get(&rt, &format!("/users/{}", alice + 1), None).await;
    assert_eq!(r.problem(404).x_cache(), "MISS");
    let bob = register(&rt, "bob").await;
    assert_eq!(bob, alice + 1);
    assert_eq!(get(&rt, &format!("/users/{bob}"), None).await.problem(404).x_cache(), "HIT");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = get(&rt, &format!("/users/{bob}"), None).await;
    assert_eq!((r.status, r.x_cache()), (200, "MISS"), "the 404 is past its freshness: reloaded {r:?}");
});

/// DUMPs a key with its absolute expiry, as persistence (RDB/AOF) would keep it.
async fn dump(redis: &Redis, key: &str) -> Option<(Vec<u8>, u64)> {
    let bytes: Option<Vec<u8>> = redis_cmd(redis, redis::cmd("DUMP").arg(key)).await;
    let pttl: i64 = redis_cmd(redis, redis::cmd("PTTL").arg(key)).await;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    bytes.map(|b| (b, if pttl > 0 { now + pttl as u64 } else { 0 }))
}

both_transports!(with_redis_down_reads_bypass_and_writes_leave_nothing_stale, |mut b: Backend| async move {
    let db = Db::sqlite();
    // Trust the database's epoch for 1 s, so a write that loses Redis waits ~2 s;
    // every PATCH sleeps 1.5 s after its session check, so Redis can be
    // stopped right then.
    let rt = start(&b, &db, &[("users_cache_epoch_ms", "1000"), ("users_test_delay_ms", "1500"), ("redis_timeout_ms", "1000")]);
    let alice = register(&rt, "alice").await;
    let ca = login(&rt, "alice").await;
    let path = format!("/users/{alice}");
    assert_eq!(get(&rt, &path, None).await.x_cache(), "MISS");
    let r = get(&rt, &path, None).await;
    assert_eq!((r.x_cache(), r.version()), ("HIT", 1));

    // What a persistent Redis would come back with: the cached v1 and the epoch key.
    let users = spindle::cache::CacheKeys::new("spindle", "users");
    let value_key = users.value(&alice.to_string());
    let epoch_key = users.epoch(users.bucket(&alice.to_string()));
    let saved: Vec<(String, (Vec<u8>, u64))> = {
        let mut out = Vec::new();
        for k in [value_key.clone(), epoch_key.clone()] {
            if let Some(d) = dump(&b.redis, &k).await {
                out.push((k, d));
            }
        }
        out
    };
    assert_eq!(saved.len(), 2);

    // The PATCH passes its session check, then loses Redis before it writes.
    let (url, cookie) = (rt.url(&path), ca.clone());
    let write = tokio::spawn(async move {
        let started = Instant::now();
        let r = send(http().patch(url).header("cookie", cookie).json(&json!({ "display_name": "during the outage" }))).await;
        (r, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.stop_redis();
    let (r, took) = write.await.unwrap();
    assert_eq!((r.status, r.version()), (200, 2), "the write succeeds: {r:?}");
    assert!(took >= Duration::from_millis(1500 + 1900), "it waited out the epoch bound: {took:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");

    // Reads fall back to the database.
    let r = get(&rt, &path, None).await;
    assert_eq!((r.status, r.x_cache(), r.version()), (200, "BYPASS", 2), "{r:?}");
    let r = get(&rt, &format!("/users?ids={alice},999"), None).await;
    assert_eq!((r.status, r.x_cache()), (200, "BYPASS"));
    assert_eq!(get(&rt, "/users/999", None).await.problem(404).x_cache(), "BYPASS");
    // A PATCH cannot authenticate without Redis (sessions fail closed).
    let r = patch(&rt, alice, &json!({ "display_name": "x" }), Some(&ca), None).await;
    assert_eq!(r.problem(503).body["type"], "urn:spindle:problem:redis-unavailable");

    // Redis comes back with its data, as a persistent one would: the old v1
    // entry is there again, yet never served.
    b.restart_redis();
    for (k, (bytes, abs)) in &saved {
        let _: () = redis_cmd(&b.redis, redis::cmd("RESTORE").arg(k).arg(*abs).arg(bytes.as_slice()).arg("ABSTTL").arg("REPLACE")).await;
    }
    let raw: Option<String> = redis_cmd(&b.redis, redis::cmd("GET").arg(&value_key)).await;
    assert!(raw.unwrap().contains("\"version\":1"), "the pre-outage v1 entry is back in Redis");
    let r = get(&rt, &path, None).await;
    assert_eq!((r.status, r.version()), (200, 2), "no stale entry once Redis returns: {r:?}");
    assert_eq!(r.x_cache(), "MISS");
    let r = get(&rt, &path, None).await;
    assert_eq!((r.x_cache(), r.version()), ("HIT", 2));
    let epoch: String = redis_cmd(&b.redis, redis::cmd("GET").arg(&epoch_key)).await;
    assert_eq!(epoch, "1", "the write bumped the epoch");
});

/// Hosts starting together on a fresh PostgreSQL all migrate at once: the
/// advisory lock in each migration's DO block serialises them, where bare
/// `CREATE TABLE IF NOT EXISTS` can fail on PostgreSQL's catalog.
#[tokio::test]
async fn concurrent_first_requests_migrate_postgres_once() {
    let b = Backend::start(Transport::Tcp);
    let db = Db::postgres();
    let runners = [start(&b, &db, &[]), start(&b, &db, &[])];
    let mut tasks = Vec::new();
    for i in 0..24 {
        let url = runners[i % 2].url("/users/1");
        tasks.push(tokio::spawn(async move { http().get(url).send().await.unwrap().status().as_u16() }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 404, "every request migrated or waited, none failed");
    }
    let Db::Postgres(pg) = &db else { unreachable!() };
    assert_eq!(pg.psql("SELECT count(*) FROM schema_migrations"), "2");
    assert!(!runners[0].log().contains("store unavailable") && !runners[1].log().contains("store unavailable"));
}
