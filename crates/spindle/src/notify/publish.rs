//! `POST /notify/publish`: validate, then one script that rate-limits and
//! publishes atomically.
//!
//! The `notify` rate limit is folded into the publish script (the policy's
//! own Lua, from `ratelimit`, wrapped as a function), so a publish costs one
//! round trip and a denied publish never reaches the stream. A replayed
//! idempotency key is answered before the limiter runs, so retries cost no
//! budget.
//!
//! Redis Cluster (`rate_limit_keys=cluster`): the limiter's keys are in the
//! caller's slot and the stream in the topic's, so the steps run apart: a
//! GET of the idempotency key (only with one), the limiter, then the
//! publish script with a limiter that allows. A denied publish still never
//! reaches the stream; a replay that races its original is refunded.

use super::json::Json;
use super::{keys, socketio, Caller, Error, NotifyConfig, Topic};
use crate::env::Clock;
use crate::http::Request;
use crate::ratelimit::{
    self, Algorithm, Decision, Limited, RateLimiter, Throttle,
};
use crate::keys::ratelimit::KeyMode;
use crate::redis::{Arg, Cmd, Link, Script};
use crate::date::to_iso;
use serde::Deserialize;

macro_rules! with_limiter {
    ($counts:literal, $limiter:literal) => {
        concat!(
            $counts,
            "local function ratelimit(KEYS, ARGV)\n",
            include_str!($limiter),
            "\nend\n",
            include_str!("publish.lua")
        )
    };
}

crate::scripts! {
    /// The publish script over each rate-limit algorithm.
    pub PUBLISH_FIXED_WINDOW =
        ("notify/publish_fixed_window", with_limiter!("local RL_KEYS, RL_ARGS = 1, 4\n", "../ratelimit/fixed_window.lua"));
    pub PUBLISH_SLIDING_WINDOW =
        ("notify/publish_sliding_window", with_limiter!("local RL_KEYS, RL_ARGS = 2, 4\n", "../ratelimit/sliding_window.lua"));
    pub PUBLISH_TOKEN_BUCKET =
        ("notify/publish_token_bucket", with_limiter!("local RL_KEYS, RL_ARGS = 1, 5\n", "../ratelimit/token_bucket.lua"));
    /// The publish script after a limiter that ran as its own step (cluster).
    pub PUBLISH_LIMITED_APART =
        ("notify/publish_limited_apart", with_limiter!("local RL_KEYS, RL_ARGS = 0, 4\n", "publish_allow.lua"));
}

fn script(alg: &Algorithm) -> &'static Script {
    match alg {
        Algorithm::FixedWindow { .. } => &PUBLISH_FIXED_WINDOW,
        Algorithm::SlidingWindow { .. } => &PUBLISH_SLIDING_WINDOW,
        Algorithm::TokenBucket { .. } => &PUBLISH_TOKEN_BUCKET,
    }
}

/// The Socket.IO namespace publishes emit to.
pub const SOCKETIO_NAMESPACE: &str = "/";
/// Longest event name and idempotency key, in bytes.
pub const MAX_EVENT_LEN: usize = 64;
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    topic: String,
    event: String,
    #[serde(default)]
    data: Json,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default)]
    socketio_room: Option<String>,
}

/// A validated publish request.
#[derive(Clone, Debug, PartialEq)]
pub struct Publish {
    pub topic: Topic,
    /// 1..=64 of `A-Z a-z 0-9 _ . : - /` (safe in an SSE `event:` line).
    pub event: String,
    pub data: Json,
    pub idempotency_key: Option<String>,
    /// Also emit to this Socket.IO room (authorised like a topic of that name,
    /// and only when the caller's room allow-list names it).
    pub socketio_room: Option<Topic>,
}

/// Event names: the topic charset, shorter.
pub fn check_event(e: &str) -> Result<(), Error> {
    let ok = !e.is_empty() && e.len() <= MAX_EVENT_LEN && e.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-/".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!("event must be 1-{MAX_EVENT_LEN} characters of A-Z a-z 0-9 _ . : - /")))
    }
}

impl Publish {
    /// Parses the body: 413 over `notify_max_payload_bytes`, 415 without a
    /// JSON content type, 400 for anything malformed. No Redis.
    pub fn from_request(req: &Request, cfg: &NotifyConfig) -> Result<Publish, Error> {
        if req.body.len() > cfg.max_body_bytes {
            return Err(Error::TooLarge(cfg.max_body_bytes));
        }
        let b: Body = req.json(cfg.max_body_bytes)?;
        // serde would also take a struct as a positional array.
        if req.body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(Error::Invalid("the body must be a JSON object".into()));
        }
        let topic = Topic::parse(&b.topic)?;
        check_event(&b.event)?;
        if let Some(k) = &b.idempotency_key {
            if k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY_LEN || k.chars().any(char::is_control) {
                return Err(Error::Invalid(format!(
                    "idempotency_key must be 1-{MAX_IDEMPOTENCY_KEY_LEN} bytes without control characters"
                )));
            }
        }
        let socketio_room = b
            .socketio_room
            .as_deref()
            .map(|r| Topic::parse(r).map_err(|_| Error::Invalid("socketio_room must be a valid topic name".into())))
            .transpose()?;
        Ok(Publish { topic, event: b.event, data: b.data, idempotency_key: b.idempotency_key, socketio_room })
    }

    /// What an idempotency key promises: the same event, data and room.
    fn fingerprint(&self, data: &str) -> String {
        let room = self.socketio_room.as_ref().map(Topic::as_str).unwrap_or("");
        keys::hex32(format!("{}\0{}\0{}", self.event, data, room).as_bytes())
    }
}

/// A publish's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Published {
    /// The stream id: `<ms>-<seq>`, also the cursor that follows it.
    pub id: String,
    pub topic: Topic,
    /// A replay of an idempotency key: nothing new was published, `id` is the original.
    pub duplicate: bool,
    /// The rate-limit headers (empty for a replay, which takes nothing).
    pub limited: Limited,
}

/// Publishes `p` for `caller`: one EVALSHA. 403 for someone else's user
/// topic or room, 409 for an idempotency key reused for a different publish,
/// 429 (with the rate-limit headers) when the `notify` budget is spent.
pub async fn publish(
    link: &impl Link,
    clock: &impl Clock,
    throttle: &Throttle,
    cfg: &NotifyConfig,
    caller: &Caller,
    p: &Publish,
) -> Result<Published, Error> {
    caller.check_publish(&p.topic)?;
    if let Some(room) = &p.socketio_room {
        caller.check_room(room, cfg)?;
    }
    let now = clock.now_ms();
    let who = caller.identity();
    let policy = &throttle.policy;
    let limiter = RateLimiter::new(link, clock, &throttle.keyspace);
    let apart = throttle.keyspace.mode() == KeyMode::Cluster;
    let idem_key = p.idempotency_key.as_ref().map(|k| keys::idempotency(&p.topic, &who.identifier(), k));
    let data = p.data.to_text();
    let fingerprint = p.fingerprint(&data);
    let mut keys: Vec<Arg> = Vec::new();
    let mut apart_decision = None;
    if apart {
        if let Some(k) = &idem_key {
            if let Some(seen) = link.exec(&Cmd::new("GET").arg(k)).await?.opt_bytes()? {
                return replayed(p, &String::from_utf8_lossy(&seen), &fingerprint);
            }
        }
        let d = limiter.limit(policy, &who, 1).await.map_err(|e| match e {
            ratelimit::Error::Redis(e) => Error::Redis(e),
            other => Error::Invalid(other.to_string()),
        })?;
        if !d.allowed {
            return Err(Error::Problem(ratelimit::denied(policy, &d)));
        }
        apart_decision = Some(d);
    } else {
        keys.extend(limiter.keys(policy, &who, now).into_iter().map(Arg::from));
    }
    keys.push(keys::stream(&p.topic).into());
    keys.push(keys::topic_webhooks(&p.topic).into());
    if let Some(k) = &idem_key {
        keys.push(k.into());
    }

    // The limiter's ARGV (see ratelimit's scripts): capacity, period, now, cost[, refill].
    let mut args: Vec<Arg> = match (apart, policy.algorithm) {
        (true, _) => vec![0i64.into(), 0i64.into(), now.into(), 1i64.into()],
        (false, Algorithm::FixedWindow { limit, window_ms } | Algorithm::SlidingWindow { limit, window_ms }) => {
            vec![limit.into(), window_ms.into(), now.into(), 1i64.into()]
        }
        (false, Algorithm::TokenBucket { refill, interval_ms, max }) => {
            vec![max.into(), interval_ms.into(), now.into(), 1i64.into(), refill.into()]
        }
    };
    let published_at = to_iso(now);
    let rest = format!(
        "\"topic\":{},\"event\":{},\"data\":{data},\"published_at\":{}}}",
        quote(p.topic.as_str()),
        quote(&p.event),
        quote(&published_at)
    );
    let (sio_channel, sio_hex) = match &p.socketio_room {
        Some(room) => {
            let packet = socketio::event_packet(SOCKETIO_NAMESPACE, room.as_str(), &p.event, &p.data);
            (socketio::channel(SOCKETIO_NAMESPACE, room.as_str()), packet.iter().map(|b| format!("{b:02x}")).collect())
        }
        None => (String::new(), String::new()),
    };
    args.extend([
        Arg::from(cfg.stream_maxlen),
        cfg.retention_ms.into(),
        cfg.idempotency_ttl_ms.into(),
        fingerprint.as_str().into(),
        p.event.as_str().into(),
        data.into(),
        keys::channel(&p.topic).into(),
        rest.into(),
        keys::DELIVER_CHANNEL.into(),
        p.topic.as_str().into(),
        sio_channel.into(),
        sio_hex.into(),
    ]);

    let script = if apart { &PUBLISH_LIMITED_APART } else { script(&policy.algorithm) };
    let reply = link.eval(script, &keys, &args).await?;
    let (allowed, limit, remaining, reset_ms, retry_after_ms, status, id): (bool, u64, u64, u64, u64, i64, Option<String>) =
        reply.parse("the publish script")?;
    let id = id.unwrap_or_default();
    let decision = apart_decision.unwrap_or(Decision { allowed, limit, remaining, reset_ms, retry_after_ms, now_ms: now });
    if apart && status != 1 {
        // A replay that raced its original: give the unit back (best effort).
        let _ = limiter.limit(policy, &who, -1).await;
    }
    if !decision.allowed {
        return Err(Error::Problem(ratelimit::denied(policy, &decision)));
    }
    let limited = |d: &Decision| Limited { headers: ratelimit::headers(policy, d), decision: Some(*d) };
    match status {
        1 => Ok(Published { id, topic: p.topic.clone(), duplicate: false, limited: limited(&decision) }),
        0 => Ok(Published {
            id,
            topic: p.topic.clone(),
            duplicate: true,
            limited: Limited { decision: None, headers: Vec::new() },
        }),
        -1 => Err(Error::Conflict(format!(
            "this idempotency_key already published event {id} with a different event, data or socketio_room"
        ))),
        n => Err(Error::Redis(crate::redis::Error::Protocol(format!("publish answered status {n}")))),
    }
}

/// The answer to a publish whose idempotency key is already stored as
/// `<id> <fingerprint>`: the original's id, or 409 for another publish.
fn replayed(p: &Publish, seen: &str, fingerprint: &str) -> Result<Published, Error> {
    match seen.split_once(' ') {
        Some((id, fp)) if fp == fingerprint => {
            Ok(Published { id: id.to_owned(), topic: p.topic.clone(), duplicate: true, limited: Limited { decision: None, headers: Vec::new() } })
        }
        Some((id, _)) => Err(Error::Conflict(format!(
            "this idempotency_key already published event {id} with a different event, data or socketio_room"
        ))),
        None => Err(Error::Redis(crate::redis::Error::Protocol(format!("an idempotency record {seen:?}")))),
    }
}

/// A JSON string literal.
pub(crate) fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn req(body: &str) -> Request {
        Request {
            method: "POST".into(),
            path: "/notify/publish".into(),
            headers: vec![("content-type".into(), b"application/json".to_vec())],
            body: body.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn parses_and_validates_the_body() {
        let cfg = NotifyConfig::default();
        let p = Publish::from_request(&req(r#"{"topic":"t","event":"e","data":{"b":1,"a":2}}"#), &cfg).unwrap();
        assert_eq!(p.data.to_text(), r#"{"b":1,"a":2}"#);
        assert_eq!(p.idempotency_key, None);
        let p = Publish::from_request(&req(r#"{"topic":"t","event":"e"}"#), &cfg).unwrap();
        assert_eq!(p.data, Json::Null);
        let bad = [
            r#"{"topic":"t"}"#,
            r#"{"topic":"a b","event":"e"}"#,
            r#"{"topic":"t","event":"e\nx"}"#,
            r#"{"topic":"t","event":"e","extra":1}"#,
            r#"{"topic":"t","event":"e","idempotency_key":""}"#,
            r#"{"topic":"t","event":"e","socketio_room":"a{b}"}"#,
            r#"{"topic":"t","event":"e","topic":"u"}"#,
            r#"[1]"#,
        ];
        for b in bad {
            assert!(matches!(Publish::from_request(&req(b), &cfg), Err(Error::Problem(_)) | Err(Error::Invalid(_))), "{b}");
        }
        let small = NotifyConfig { max_body_bytes: 10, ..cfg };
        assert_eq!(Publish::from_request(&req(r#"{"topic":"t","event":"e"}"#), &small), Err(Error::TooLarge(10)));
    }

    #[test]
    fn a_stored_idempotency_record_replays_or_conflicts() {
        let cfg = NotifyConfig::default();
        let p = Publish::from_request(&req(r#"{"topic":"t","event":"e","data":1}"#), &cfg).unwrap();
        let fp = p.fingerprint(&p.data.to_text());
        let r = replayed(&p, &format!("1700000000000-0 {fp}"), &fp).unwrap();
        assert!(r.duplicate && r.id == "1700000000000-0" && r.limited.decision.is_none());
        assert!(matches!(replayed(&p, "1700000000000-0 other", &fp), Err(Error::Conflict(_))));
        assert!(matches!(replayed(&p, "garbage", &fp), Err(Error::Redis(_))));
    }

    #[test]
    fn fingerprints_cover_event_data_and_room() {
        let cfg = NotifyConfig::default();
        let a = Publish::from_request(&req(r#"{"topic":"t","event":"e","data":1}"#), &cfg).unwrap();
        let b = Publish::from_request(&req(r#"{"topic":"t","event":"e","data":2}"#), &cfg).unwrap();
        assert_ne!(a.fingerprint("1"), b.fingerprint("2"));
        assert_eq!(a.fingerprint("1"), a.fingerprint("1"));
    }

    #[test]
    fn the_throttle_reads_its_policy() {
        let v: HashMap<String, String> = [("notify_rate_limit".to_string(), "fixed_window 5/1s".to_string())].into();
        let t = Throttle::notify(&v).unwrap();
        assert_eq!(t.policy.name, "notify");
        assert_eq!(t.policy.algorithm.capacity(), 5);
        assert_eq!(t.policy.failure, crate::ratelimit::FailureMode::Closed, "publishing needs Redis");
        let bad: HashMap<String, String> = [("notify_rate_limit".to_string(), "nonsense".to_string())].into();
        assert_eq!(Throttle::notify(&bad).unwrap_err().var, "notify_rate_limit");
    }

    #[test]
    fn scripts_wrap_the_limiters() {
        for s in [PUBLISH_FIXED_WINDOW, PUBLISH_SLIDING_WINDOW, PUBLISH_TOKEN_BUCKET].map(|s| s.source()) {
            assert!(s.starts_with("local RL_KEYS, RL_ARGS = "));
            assert!(s.contains("local function ratelimit(KEYS, ARGV)") && s.contains("XADD"));
        }
    }
}
