//! Golden tests: every Lua script the library sends, run through the guest's
//! link on both transports (Spin TCP, and REST through the gateway) and
//! natively, must give identical normalised replies.
//!
//! Each script runs on a fresh database with the same keys and arguments.
//! Scripts take time from ARGV, never from the server clock, so the replies
//! are deterministic.

use serde_json::{json, Value};
use spindle::redis::{native::NativeLink, Arg, Link, Script};
use spindle_e2e::*;

/// Scripts that exercise reply normalisation itself.
const SHAPES: &[(&str, &str)] = &[
    ("shape/scalars", "return {1, 'two', false, -3}"),
    ("shape/nested", "return {1, {2, {3, 'x'}}, {}}"),
    ("shape/status", "return redis.status_reply('OK')"),
    ("shape/nil", "return redis.call('GET', KEYS[1])"),
    ("shape/binary", "return string.char(0, 255, 128, 10)"),
    ("shape/error", "return redis.error_reply('ERR golden failure')"),
    ("shape/writes", "redis.call('SET', KEYS[1], ARGV[1]); redis.call('HSET', KEYS[2], 'f', ARGV[2]); return {redis.call('GET', KEYS[1]), redis.call('HGET', KEYS[2], 'f'), redis.call('TTL', KEYS[1])}"),
];

/// Generic inputs: two keys in one hash slot, numbers a limiter or a session
/// script can take (limit, window ms, now ms, cost, ttl …).
fn inputs() -> (Vec<String>, Vec<String>) {
    let keys = vec!["{golden}:a".to_string(), "{golden}:b".to_string()];
    let args = ["100", "60000", "1700000000000", "1", "86400", "golden"].iter().map(|s| s.to_string()).collect();
    (keys, args)
}

fn cases() -> Vec<(&'static str, &'static str)> {
    let mut all: Vec<_> = SHAPES.to_vec();
    all.extend(spindle::all_scripts().map(|s| (s.name(), s.source())));
    all
}

async fn flush(redis: &Redis) {
    let _: () = redis::cmd("FLUSHALL").query_async(&mut redis.conn().await).await.unwrap();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut redis.conn().await).await.unwrap();
}

async fn native(redis: &Redis, source: &'static str) -> Value {
    let link = NativeLink::connect(&redis.url()).await.unwrap();
    let (keys, args) = inputs();
    let keys: Vec<Arg> = keys.into_iter().map(Arg::from).collect();
    let args: Vec<Arg> = args.into_iter().map(Arg::from).collect();
    match link.eval(&Script::new("golden", source), &keys, &args).await {
        Ok(r) => json!({ "ok": r.values().iter().map(|v| match v {
            spindle::redis::Value::Nil => Value::Null,
            spindle::redis::Value::Int(n) => json!(n),
            spindle::redis::Value::Bytes(b) => json!({ "bytes": b }),
        }).collect::<Vec<_>>() }),
        Err(e) => json!({ "error": format!("{e:?}").split('(').next().unwrap_or("").to_string() }),
    }
}

async fn guest(rt: &Runner, source: &str) -> Value {
    let (keys, args) = inputs();
    let r = http()
        .post(rt.url("/tb/eval"))
        .json(&json!({ "script": source, "keys": keys, "args": args }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut v: Value = r.json().await.unwrap();
    let obj = v.as_object_mut().unwrap();
    obj.remove("transport");
    obj.remove("message");
    v
}

#[tokio::test]
async fn every_script_gives_the_same_reply_on_every_transport() {
    let tcp = Backend::start(Transport::Tcp);
    let by_name = Backend::start(Transport::TcpByName);
    let rest = Backend::start(Transport::Rest);
    let start = |b: &Backend| {
        let mut variables = b.variables();
        // The testbed has no rate limits (on a cluster, b.variables() has their key mode).
        variables.retain(|(k, _)| *k != "rate_limit_keys");
        variables.push(("secret_thing", "x".into()));
        variables.push(("redis_trigger_url", b.redis.url()));
        Runner::start(&fixture("testbed.toml"), RunnerOpts { variables, ..Default::default() })
    };
    let (rt_tcp, rt_name, rt_rest) = (start(&tcp), start(&by_name), start(&rest));
    let all = cases();
    assert!(all.len() >= SHAPES.len());
    for (name, source) in all {
        flush(&tcp.redis).await;
        let expected = native(&tcp.redis, source).await;
        flush(&tcp.redis).await;
        let over_tcp = guest(&rt_tcp, source).await;
        flush(&by_name.redis).await;
        let over_outbound = guest(&rt_name, source).await;
        flush(&rest.redis).await;
        let over_rest = guest(&rt_rest, source).await;
        assert_eq!(over_tcp, expected, "{name}: RESP over wasi:sockets differs from native");
        assert_eq!(over_outbound, expected, "{name}: Spin outbound Redis differs from native");
        assert_eq!(over_rest, expected, "{name}: REST differs from native");
    }
}
