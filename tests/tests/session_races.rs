//! `spindle::session` against a real Redis, natively: the races that HTTP
//! cannot schedule deterministically (read, someone else writes or logs out,
//! then our write), the index upkeep, and the stored format.

use serde_json::{json, Value};
use spindle::env::{FixedClock, OsRng, SeqRng};
use spindle::http::Request;
use spindle::redis::native::NativeLink;
use spindle::redis::{Cmd, Link, Reply};
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

/// Where a test runs: one Redis node over the `redis` crate, or a 3-master
/// Redis Cluster through the gateway (`--cluster`) over REST, as a guest on
/// REST reaches one. On the cluster a script whose keys span two slots
/// fails with CROSSSLOT, and so does the test.
#[derive(Clone)]
enum AnyLink {
    Node(NativeLink),
    Cluster(RestLink),
}

impl Link for AnyLink {
    fn transport(&self) -> spindle::redis::Transport {
        match self {
            AnyLink::Node(l) => l.transport(),
            AnyLink::Cluster(l) => l.transport(),
        }
    }

    async fn exec(&self, cmd: &Cmd) -> Result<Reply, spindle::redis::Error> {
        match self {
            AnyLink::Node(l) => l.exec(cmd).await,
            AnyLink::Cluster(l) => l.exec(cmd).await,
        }
    }
}

/// A test's store and the processes behind it (dropped with it).
struct Fx {
    link: AnyLink,
    _keep: Box<dyn std::any::Any>,
}

async fn node() -> Fx {
    let redis = Redis::start();
    let link = NativeLink::connect(&redis.url()).await.unwrap();
    Fx { link: AnyLink::Node(link), _keep: Box::new(redis) }
}

async fn cluster() -> Fx {
    let cluster = Cluster::start();
    let gateway = Gateway::start_cluster(&cluster);
    Fx { link: AnyLink::Cluster(RestLink::new(&gateway)), _keep: Box::new((gateway, cluster)) }
}

/// Each test twice: `on_a_node::…` and `on_a_cluster::…`.
macro_rules! on_a_node_and_a_cluster {
    ($($name:ident),* $(,)?) => {
        mod on_a_node {
            $( #[tokio::test] async fn $name() { super::$name(super::node().await).await } )*
        }
        mod on_a_cluster {
            $( #[tokio::test] async fn $name() { super::$name(super::cluster().await).await } )*
        }
    };
}

on_a_node_and_a_cluster!(
    a_logout_between_read_and_write_is_never_undone,
    a_refresh_racing_a_logout_does_not_resurrect_the_session,
    concurrent_updates_of_different_fields_all_land,
    create_never_overwrites_and_replaces_the_old_session,
    the_stored_value_and_ttl_are_what_connect_redis_writes,
    express_sessions_are_read_and_indexed_on_their_first_refresh,
    the_index_is_trimmed_and_capped,
    sessions_without_the_users_tag_are_listed_and_destroyed,
);

async fn cmd(link: &AnyLink, args: &[&str]) -> Reply {
    link.exec(&Cmd::new(args[0]).args_from(args[1..].iter().copied())).await.unwrap()
}

async fn raw(link: &AnyLink, key: &str) -> Option<String> {
    cmd(link, &["GET", key]).await.opt_bytes().unwrap().map(|b| String::from_utf8(b).unwrap())
}

async fn ttl(link: &AnyLink, key: &str) -> i64 {
    cmd(link, &["TTL", key]).await.int().unwrap()
}

async fn index(link: &AnyLink, user: i64) -> Vec<String> {
    let r = cmd(link, &["ZRANGE", &spindle::keys::session::index(user), "0", "-1"]).await;
    r.values().iter().map(|v| match v {
        spindle::redis::Value::Bytes(b) => String::from_utf8(b.clone()).unwrap(),
        other => panic!("{other:?}"),
    }).collect()
}

fn clock() -> FixedClock {
    FixedClock(NOW.into())
}

async fn a_logout_between_read_and_write_is_never_undone(fx: Fx) {
    let (link, clock) = (fx.link.clone(), clock());
    let s = session::create(&link, &clock, &OsRng, &cfg(), &req(None), alice()).await.unwrap();
    // A slow request read the session…
    let read = session::load(&link, s.sid()).await.unwrap().unwrap();
    // …a logout lands…
    assert!(session::destroy(&link, &s).await.unwrap());
    // …and the slow write comes in last.
    let mut changed = read.session.clone();
    changed.set_field("cart", &json!([1, 2]));
    assert_eq!(session::commit(&link, &read, &changed, false, &cfg(), NOW).await.unwrap(), Commit::Gone);
    assert_eq!(raw(&link, &spindle::keys::session::session(s.sid())).await, None);
    assert!(index(&link, 7).await.is_empty());
    // The same through the retrying update and the session check.
    let err = session::update(&link, &clock, &cfg(), s.sid(), false, |x| x.set_field("a", &json!(1))).await.unwrap_err();
    assert_eq!(err, SessionError::NotFound);
    let err = session::authenticate(&link, &clock, &cfg(), &req(Some(&cookie_for(s.sid())))).await.unwrap_err();
    assert_eq!(err, SessionError::NotFound);
}

async fn a_refresh_racing_a_logout_does_not_resurrect_the_session(fx: Fx) {
    let (link, clock) = (fx.link.clone(), clock());
    let mut c = cfg();
    c.refresh_interval_ms = 0;
    let s = session::create(&link, &clock, &OsRng, &c, &req(None), alice()).await.unwrap();
    let read = session::load(&link, s.sid()).await.unwrap().unwrap();
    session::destroy(&link, &s).await.unwrap();
    let mut rolled = read.session.clone();
    rolled.roll(NOW + 5000, &c);
    assert_eq!(session::commit(&link, &read, &rolled, false, &c, NOW + 5000).await.unwrap(), Commit::Gone);
    assert_eq!(raw(&link, &spindle::keys::session::session(s.sid())).await, None);
}

async fn concurrent_updates_of_different_fields_all_land(fx: Fx) {
    let (link, clock) = (fx.link.clone(), clock());
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
    let v: Value = serde_json::from_str(&raw(&link, &spindle::keys::session::session(s.sid())).await.unwrap()).unwrap();
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

async fn create_never_overwrites_and_replaces_the_old_session(fx: Fx) {
    let (link, clock) = (fx.link.clone(), clock());
    let c = cfg();
    // The sid SeqRng draws first is already taken: SET NX refuses, and the next one is used.
    let first = session::new_sid(&SeqRng::default(), 7);
    cmd(&link, &["SET", &spindle::keys::session::session(&first), "{}"]).await;
    let s = session::create(&link, &clock, &SeqRng::default(), &c, &req(None), alice()).await.unwrap();
    assert_ne!(s.sid(), first);
    assert_eq!(raw(&link, &spindle::keys::session::session(&first)).await.as_deref(), Some("{}"), "untouched");

    // Logging in with a session cookie destroys that session.
    let again = session::create(&link, &clock, &OsRng, &c, &req(Some(&cookie_for(s.sid()))), alice()).await.unwrap();
    assert_eq!(raw(&link, &spindle::keys::session::session(s.sid())).await, None);
    assert_eq!(index(&link, 7).await, vec![again.sid().to_string()]);
}

async fn the_stored_value_and_ttl_are_what_connect_redis_writes(fx: Fx) {
    let (link, clock) = (fx.link.clone(), clock());
    let c = cfg();
    let s = session::create(&link, &clock, &OsRng, &c, &req(None), alice()).await.unwrap();
    let key = spindle::keys::session::session(s.sid());
    assert_eq!(
        raw(&link, &key).await.unwrap(),
        concat!(
            r#"{"cookie":{"originalMaxAge":86400000,"expires":"2030-03-18T17:46:40.000Z","secure":false,"httpOnly":true,"path":"/","sameSite":"lax"},"#,
            r#""user":{"id":7,"username":"alice"},"spindle":{"created_at":1900000000000,"last_seen":1900000000000,"user_agent":"native","ip":"10.1.2.3"}}"#
        )
    );
    assert_eq!(ttl(&link, &key).await, 86_400);
    // A write whose expiry has passed deletes instead (TTL ≤ 0).
    let read = session::load(&link, s.sid()).await.unwrap().unwrap();
    assert_eq!(session::commit(&link, &read, &read.session, false, &c, NOW + 86_400_000).await.unwrap(), Commit::Deleted);
    assert_eq!(raw(&link, &key).await, None);
    assert!(index(&link, 7).await.is_empty());
}

async fn express_sessions_are_read_and_indexed_on_their_first_refresh(fx: Fx) {
    let (link, clock) = (fx.link.clone(), clock());
    let c = cfg();
    // What connect-redis stores for `req.session.user = {id, username}`, plus the app's own data.
    let express = r#"{"cookie":{"originalMaxAge":86400000,"expires":"2030-03-18T17:46:40.000Z","httpOnly":true,"path":"/"},"user":{"id":7,"username":"alice"},"views":3}"#;
    let sid = "expressexpressexpressexpressexpr";
    cmd(&link, &["SET", &spindle::keys::session::session(sid), express, "EX", "86400"]).await;
    let me = session::authenticate(&link, &clock, &c, &req(Some(&cookie_for(sid)))).await.unwrap();
    assert_eq!(me.user, alice());
    assert!(me.set_cookie.is_some(), "no last_seen: the refresh is due");
    assert_eq!(index(&link, 7).await, vec![sid.to_string()]);
    let stored = raw(&link, &spindle::keys::session::session(sid)).await.unwrap();
    assert!(stored.contains(r#""user":{"id":7,"username":"alice"},"views":3,"spindle":{"last_seen":1900000000000"#), "{stored}");
    // Now known, the next check is a single read.
    let me = session::authenticate(&link, &clock, &c, &req(Some(&cookie_for(sid)))).await.unwrap();
    assert!(me.set_cookie.is_none());
}

async fn the_index_is_trimmed_and_capped(fx: Fx) {
    let (link, clock) = (fx.link.clone(), clock());
    let c = cfg();
    let mut sids = Vec::new();
    for i in 0..(session::MAX_SESSIONS_PER_USER as u64 + 2) {
        clock.0.set(NOW + i);
        sids.push(session::create(&link, &clock, &OsRng, &c, &req(None), alice()).await.unwrap().sid().to_string());
    }
    let idx = index(&link, 7).await;
    assert_eq!(idx.len(), session::MAX_SESSIONS_PER_USER as usize);
    assert_eq!(idx.first(), Some(&sids[2]), "the two oldest were logged out");
    assert_eq!(raw(&link, &spindle::keys::session::session(&sids[0])).await, None);
    assert_eq!(raw(&link, &spindle::keys::session::session(&sids[1])).await, None);
    let ttl = ttl(&link, &spindle::keys::session::index(7)).await;
    assert!(ttl > 86_000, "the index expires with its sessions ({ttl})");

    // Sessions destroyed behind the index's back are trimmed when it is read.
    cmd(&link, &["DEL", &spindle::keys::session::session(&sids[5])]).await;
    let me = session::authenticate(&link, &clock, &c, &req(Some(&cookie_for(sids.last().unwrap())))).await.unwrap();
    let list = session::list(&link, &clock, &me).await.unwrap();
    assert_eq!(list.len(), session::MAX_SESSIONS_PER_USER as usize - 1);
    assert!(list[0].current, "newest first");
    assert!(!index(&link, 7).await.contains(&sids[5]));
    assert_eq!(session::destroy_all(&link, 7).await.unwrap(), session::MAX_SESSIONS_PER_USER as u64 - 1);
    assert!(index(&link, 7).await.is_empty());
}

async fn sessions_without_the_users_tag_are_listed_and_destroyed(fx: Fx) {
    // Express's sids carry no hash tag: on a cluster their sessions are in
    // other slots than the index, and every step on them is one key at a time.
    let (link, clock) = (fx.link.clone(), clock());
    let c = cfg();
    let express = r#"{"cookie":{"originalMaxAge":86400000,"expires":"2030-03-18T17:46:40.000Z","httpOnly":true,"path":"/"},"user":{"id":7,"username":"alice"}}"#;
    let mine = session::create(&link, &clock, &OsRng, &c, &req(None), alice()).await.unwrap();
    assert!(mine.sid().starts_with("{7}"), "Spindle's sids carry the user's tag");
    let foreign = ["expressAexpressAexpressAexpressA", "expressBexpressBexpressBexpressB", "expressCexpressCexpressCexpressC"];
    for sid in foreign {
        cmd(&link, &["SET", &spindle::keys::session::session(sid), express, "EX", "86400"]).await;
        session::authenticate(&link, &clock, &c, &req(Some(&cookie_for(sid)))).await.unwrap();
    }
    let mut all: Vec<String> = foreign.iter().map(|s| s.to_string()).chain([mine.sid().to_string()]).collect();
    all.sort();
    let mut idx = index(&link, 7).await;
    idx.sort();
    assert_eq!(idx, all, "indexed on their first refresh");

    let list = session::list(&link, &clock, &mine).await.unwrap();
    assert_eq!(list.len(), 4);
    assert_eq!(list.iter().filter(|s| s.current).count(), 1);
    assert!(list.iter().all(|s| s.user_agent.as_deref() == Some("native") || s.user_agent.is_none()));

    // One by its handle; one deleted behind the index's back (trimmed when listed).
    assert!(session::destroy_handle(&link, 7, &session::handle(foreign[0])).await.unwrap());
    assert_eq!(raw(&link, &spindle::keys::session::session(foreign[0])).await, None);
    cmd(&link, &["DEL", &spindle::keys::session::session(foreign[1])]).await;
    assert_eq!(session::list(&link, &clock, &mine).await.unwrap().len(), 2);
    assert!(!index(&link, 7).await.contains(&foreign[1].to_string()));

    // A login over an Express session's cookie ends that session.
    let again = session::create(&link, &clock, &OsRng, &c, &req(Some(&cookie_for(foreign[2]))), alice()).await.unwrap();
    assert_eq!(raw(&link, &spindle::keys::session::session(foreign[2])).await, None);
    // Logout everywhere: Spindle's two sessions (the Express ones are gone).
    assert_eq!(session::destroy_all(&link, 7).await.unwrap(), 2);
    for sid in [mine.sid(), again.sid()] {
        assert_eq!(raw(&link, &spindle::keys::session::session(sid)).await, None);
    }
    assert!(index(&link, 7).await.is_empty());

    // And one Express session left for logout everywhere to end.
    cmd(&link, &["SET", &spindle::keys::session::session(foreign[0]), express, "EX", "86400"]).await;
    session::authenticate(&link, &clock, &c, &req(Some(&cookie_for(foreign[0])))).await.unwrap();
    assert_eq!(session::destroy_all(&link, 7).await.unwrap(), 1);
    assert_eq!(raw(&link, &spindle::keys::session::session(foreign[0])).await, None);
}
