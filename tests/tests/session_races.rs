//! `spindle::session` against a real Redis, natively: the races that HTTP
//! cannot schedule deterministically (read, someone else writes or logs out,
//! then our write), the index upkeep, and the stored format.

use serde_json::{json, Value};
use spindle::env::{FixedClock, OsRng, SeqRng};
use spindle::http::Request;
use spindle::redis::native::NativeLink;
use spindle::session::{self, cookie, Commit, SessionConfig, SessionError, UserRef};
use spindle_e2e::*;

const SECRET: &str = "native-test-secret-0123456789";
const NOW: u64 = 1_900_000_000_000;

fn cfg() -> SessionConfig {
    SessionConfig::new(vec![SECRET.into()]).unwrap()
}

fn req(cookie_pair: Option<&str>) -> Request {
    let mut headers = vec![
        ("spin-client-addr".to_string(), b"10.1.2.3:4444".to_vec()),
        ("spin-full-url".to_string(), b"http://app.test/auth/me".to_vec()),
        ("user-agent".to_string(), b"native".to_vec()),
    ];
    if let Some(c) = cookie_pair {
        headers.push(("cookie".into(), c.as_bytes().to_vec()));
    }
    Request { method: "GET".into(), path: "/auth/me".into(), headers, ..Default::default() }
}

fn cookie_for(sid: &str) -> String {
    format!("connect.sid={}", cookie::wire_value(sid, SECRET))
}

fn alice() -> UserRef {
    UserRef { id: 7, username: "alice".into() }
}

async fn setup() -> (Redis, NativeLink, FixedClock) {
    let redis = Redis::start();
    let link = NativeLink::connect(&redis.url()).await.unwrap();
    (redis, link, FixedClock(NOW.into()))
}

async fn raw(redis: &Redis, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query_async(&mut redis.conn().await).await.unwrap()
}

async fn index(redis: &Redis, user: i64) -> Vec<String> {
    redis::cmd("ZRANGE").arg(spindle::keys::session::index(user)).arg(0).arg(-1).query_async(&mut redis.conn().await).await.unwrap()
}

#[tokio::test]
async fn a_logout_between_read_and_write_is_never_undone() {
    let (redis, link, clock) = setup().await;
    let s = session::create(&link, &clock, &OsRng, &cfg(), &req(None), alice()).await.unwrap();
    // A slow request read the session…
    let read = session::load(&link, s.sid()).await.unwrap().unwrap();
    // …a logout lands…
    assert!(session::destroy(&link, &s).await.unwrap());
    // …and the slow write comes in last.
    let mut changed = read.session.clone();
    changed.set_field("cart", &json!([1, 2]));
    assert_eq!(session::commit(&link, &read, &changed, false, &cfg(), NOW).await.unwrap(), Commit::Gone);
    assert_eq!(raw(&redis, &spindle::keys::session::session(s.sid())).await, None);
    assert!(index(&redis, 7).await.is_empty());
    // The same through the retrying update and the session check.
    let err = session::update(&link, &clock, &cfg(), s.sid(), false, |x| x.set_field("a", &json!(1))).await.unwrap_err();
    assert_eq!(err, SessionError::NotFound);
    let err = session::authenticate(&link, &clock, &cfg(), &req(Some(&cookie_for(s.sid())))).await.unwrap_err();
    assert_eq!(err, SessionError::NotFound);
}

#[tokio::test]
async fn a_refresh_racing_a_logout_does_not_resurrect_the_session() {
    let (redis, link, clock) = setup().await;
    let mut c = cfg();
    c.refresh_interval_ms = 0;
    let s = session::create(&link, &clock, &OsRng, &c, &req(None), alice()).await.unwrap();
    let read = session::load(&link, s.sid()).await.unwrap().unwrap();
    session::destroy(&link, &s).await.unwrap();
    let mut rolled = read.session.clone();
    rolled.roll(NOW + 5000, &c);
    assert_eq!(session::commit(&link, &read, &rolled, false, &c, NOW + 5000).await.unwrap(), Commit::Gone);
    assert_eq!(raw(&redis, &spindle::keys::session::session(s.sid())).await, None);
}

#[tokio::test]
async fn concurrent_updates_of_different_fields_all_land() {
    let (redis, link, clock) = setup().await;
    let c = cfg();
    let s = session::create(&link, &clock, &OsRng, &c, &req(None), alice()).await.unwrap();
    // Interleaved by hand: both read the same value, A writes first.
    let a = session::load(&link, s.sid()).await.unwrap().unwrap();
    let b = session::load(&link, s.sid()).await.unwrap().unwrap();
    let mut a_new = a.session.clone();
    a_new.set_field("a", &json!("from A"));
    let mut b_new = b.session.clone();
    b_new.set_field("b", &json!("from B"));
    assert_eq!(session::commit(&link, &a, &a_new, false, &c, NOW).await.unwrap(), Commit::Written);
    assert_eq!(session::commit(&link, &b, &b_new, false, &c, NOW).await.unwrap(), Commit::Conflict, "B's stale write is refused");
    session::update(&link, &clock, &c, s.sid(), false, |x| x.set_field("b", &json!("from B"))).await.unwrap();

    // And truly concurrently: as many writers as update() has attempts, one field each.
    let n = session::UPDATE_ATTEMPTS;
    let tasks = (0..n).map(|i| {
        let (link, sid, c) = (link.clone(), s.sid().to_string(), c.clone());
        async move {
            let clock = FixedClock(NOW.into());
            session::update(&link, &clock, &c, &sid, false, |x| x.set_field(&format!("f{i}"), &json!(i))).await
        }
    });
    for r in futures_join(tasks).await {
        r.unwrap();
    }
    let v: Value = serde_json::from_str(&raw(&redis, &spindle::keys::session::session(s.sid())).await.unwrap()).unwrap();
    assert_eq!(v["a"], "from A");
    assert_eq!(v["b"], "from B");
    for i in 0..n {
        assert_eq!(v[format!("f{i}")], i, "f{i} in {v}");
    }
    assert_eq!(v["user"], json!({ "id": 7, "username": "alice" }));
}

/// Polls every future to completion on this task (no extra crates).
async fn futures_join<F: std::future::Future>(fs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = fs.map(|f| Box::pin(f)).collect();
    let mut slots: Vec<Option<F::Output>> = handles.iter().map(|_| None).collect();
    let mut handles: Vec<Option<std::pin::Pin<Box<F>>>> = handles.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (h, slot) in handles.iter_mut().zip(slots.iter_mut()) {
            if let Some(f) = h {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *slot = Some(v);
                        *h = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    slots.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn create_never_overwrites_and_replaces_the_old_session() {
    let (redis, link, clock) = setup().await;
    let c = cfg();
    // The sid SeqRng draws first is already taken: SET NX refuses, and the next one is used.
    let first = session::new_sid(&SeqRng::default());
    let _: () = redis::cmd("SET").arg(spindle::keys::session::session(&first)).arg("{}").query_async(&mut redis.conn().await).await.unwrap();
    let s = session::create(&link, &clock, &SeqRng::default(), &c, &req(None), alice()).await.unwrap();
    assert_ne!(s.sid(), first);
    assert_eq!(raw(&redis, &spindle::keys::session::session(&first)).await.as_deref(), Some("{}"), "untouched");

    // Logging in with a session cookie destroys that session.
    let again = session::create(&link, &clock, &OsRng, &c, &req(Some(&cookie_for(s.sid()))), alice()).await.unwrap();
    assert_eq!(raw(&redis, &spindle::keys::session::session(s.sid())).await, None);
    assert_eq!(index(&redis, 7).await, vec![again.sid().to_string()]);
}

#[tokio::test]
async fn the_stored_value_and_ttl_are_what_connect_redis_writes() {
    let (redis, link, clock) = setup().await;
    let c = cfg();
    let s = session::create(&link, &clock, &OsRng, &c, &req(None), alice()).await.unwrap();
    let key = spindle::keys::session::session(s.sid());
    assert_eq!(
        raw(&redis, &key).await.unwrap(),
        concat!(
            r#"{"cookie":{"originalMaxAge":86400000,"expires":"2030-03-18T17:46:40.000Z","secure":false,"httpOnly":true,"path":"/","sameSite":"lax"},"#,
            r#""user":{"id":7,"username":"alice"},"spindle":{"created_at":1900000000000,"last_seen":1900000000000,"user_agent":"native","ip":"10.1.2.3"}}"#
        )
    );
    let ttl: i64 = redis::cmd("TTL").arg(&key).query_async(&mut redis.conn().await).await.unwrap();
    assert_eq!(ttl, 86_400);
    // A write whose expiry has passed deletes instead (TTL ≤ 0).
    let read = session::load(&link, s.sid()).await.unwrap().unwrap();
    assert_eq!(session::commit(&link, &read, &read.session, false, &c, NOW + 86_400_000).await.unwrap(), Commit::Deleted);
    assert_eq!(raw(&redis, &key).await, None);
    assert!(index(&redis, 7).await.is_empty());
}

#[tokio::test]
async fn express_sessions_are_read_and_indexed_on_their_first_refresh() {
    let (redis, link, clock) = setup().await;
    let c = cfg();
    // What connect-redis stores for `req.session.user = {id, username}`, plus the app's own data.
    let express = r#"{"cookie":{"originalMaxAge":86400000,"expires":"2030-03-18T17:46:40.000Z","httpOnly":true,"path":"/"},"user":{"id":7,"username":"alice"},"views":3}"#;
    let sid = "expressexpressexpressexpressexpr";
    let _: () = redis::cmd("SET").arg(spindle::keys::session::session(sid)).arg(express).arg("EX").arg(86_400).query_async(&mut redis.conn().await).await.unwrap();
    let me = session::authenticate(&link, &clock, &c, &req(Some(&cookie_for(sid)))).await.unwrap();
    assert_eq!(me.user, alice());
    assert!(me.set_cookie.is_some(), "no last_seen: the refresh is due");
    assert_eq!(index(&redis, 7).await, vec![sid.to_string()]);
    let stored = raw(&redis, &spindle::keys::session::session(sid)).await.unwrap();
    assert!(stored.contains(r#""user":{"id":7,"username":"alice"},"views":3,"spindle":{"last_seen":1900000000000"#), "{stored}");
    // Now known, the next check is a single read.
    let me = session::authenticate(&link, &clock, &c, &req(Some(&cookie_for(sid)))).await.unwrap();
    assert!(me.set_cookie.is_none());
}

#[tokio::test]
async fn the_index_is_trimmed_and_capped() {
    let (redis, link, clock) = setup().await;
    let c = cfg();
    let mut sids = Vec::new();
    for i in 0..(session::MAX_SESSIONS_PER_USER as u64 + 2) {
        clock.0.set(NOW + i);
        sids.push(session::create(&link, &clock, &OsRng, &c, &req(None), alice()).await.unwrap().sid().to_string());
    }
    let idx = index(&redis, 7).await;
    assert_eq!(idx.len(), session::MAX_SESSIONS_PER_USER as usize);
    assert_eq!(idx.first(), Some(&sids[2]), "the two oldest were logged out");
    assert_eq!(raw(&redis, &spindle::keys::session::session(&sids[0])).await, None);
    assert_eq!(raw(&redis, &spindle::keys::session::session(&sids[1])).await, None);
    let ttl: i64 = redis::cmd("TTL").arg(spindle::keys::session::index(7)).query_async(&mut redis.conn().await).await.unwrap();
    assert!(ttl > 86_000, "the index expires with its sessions ({ttl})");

    // Sessions destroyed behind the index's back are trimmed when it is read.
    let _: () = redis::cmd("DEL").arg(spindle::keys::session::session(&sids[5])).query_async(&mut redis.conn().await).await.unwrap();
    let me = session::authenticate(&link, &clock, &c, &req(Some(&cookie_for(sids.last().unwrap())))).await.unwrap();
    let list = session::list(&link, &clock, &me).await.unwrap();
    assert_eq!(list.len(), session::MAX_SESSIONS_PER_USER as usize - 1);
    assert!(list[0].current, "newest first");
    assert!(!index(&redis, 7).await.contains(&sids[5]));
    assert_eq!(session::destroy_all(&link, 7).await.unwrap(), session::MAX_SESSIONS_PER_USER as u64 - 1);
    assert!(index(&redis, 7).await.is_empty());
}
