//! The notify component's settings, read and validated once per request.

use super::Error;
use crate::config::{Config, Vars};

/// Longest a long poll may be configured to wait: under the 60 s that
/// proxies and platforms commonly allow an idle request.
pub const MAX_POLL_TIMEOUT_MS: u64 = 55_000;
/// Events one poll answer or one SSE read carries at most.
pub const MAX_EVENTS_PER_READ: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyConfig {
    /// Largest POST body (a publish with its data), bytes. 413 above.
    pub max_body_bytes: usize,
    /// `XADD … MAXLEN ~ n`: about this many events are kept per topic.
    pub stream_maxlen: u64,
    /// A topic's stream expires this long after its last publish.
    pub retention_ms: u64,
    /// How long an idempotency key keeps its publish.
    pub idempotency_ttl_ms: u64,
    /// The longest wait of `GET /notify/poll` (the default `wait_ms`).
    pub poll_timeout_ms: u64,
    /// REST mode: the pause between non-blocking reads of a long poll or stream.
    pub rest_poll_interval_ms: u64,
    /// How long one SSE response lasts before it ends cleanly.
    pub sse_lifetime_ms: u64,
    /// An SSE comment is sent after this long without other output.
    pub sse_heartbeat_ms: u64,
    /// The SSE `retry:` hint: how soon clients reconnect.
    pub sse_retry_ms: u64,
    /// A presence heartbeat counts for this long.
    pub presence_ttl_ms: u64,
    /// Long polls and SSE streams one caller may hold open at once, fleet-wide.
    pub max_streams: u64,
    /// Socket.IO rooms users may emit to (`notify_socketio_rooms`): none by default.
    pub socketio_rooms_users: RoomAllow,
    /// Socket.IO rooms API keys may emit to (`notify_socketio_rooms_keys`): all by default.
    pub socketio_rooms_keys: RoomAllow,
}

/// Socket.IO rooms a kind of caller may target with `socketio_room`: a list
/// of patterns, each a room name, a prefix ending in `*` (`team:*`), or `*`
/// (every room). Empty: none. Adapter packets are treated by Socket.IO
/// servers as coming from the server itself, so a room is an explicit grant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomAllow(Vec<String>);

impl RoomAllow {
    pub fn all() -> RoomAllow {
        RoomAllow(vec!["*".into()])
    }

    /// Comma- or space-separated patterns; each (without its `*`) must be
    /// made of topic characters. `none`: no room (an empty variable takes
    /// the default instead).
    pub fn parse(s: &str) -> Result<RoomAllow, String> {
        let mut out = Vec::new();
        if s.trim() == "none" {
            return Ok(RoomAllow(out));
        }
        for p in s.split(|c: char| c == ',' || c.is_whitespace()).filter(|p| !p.is_empty()) {
            let stem = p.strip_suffix('*').unwrap_or(p);
            if !stem.is_empty() && super::Topic::parse(stem).is_err() || stem.contains('*') {
                return Err(format!("{p:?} is not a room name, a prefix ending in *, or *"));
            }
            out.push(p.to_owned());
        }
        Ok(RoomAllow(out))
    }

    pub fn allows(&self, room: &str) -> bool {
        self.0.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => room.starts_with(prefix),
            None => p == room,
        })
    }
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            max_body_bytes: 65_536,
            stream_maxlen: 10_000,
            retention_ms: 7 * 86_400_000,
            idempotency_ttl_ms: 86_400_000,
            poll_timeout_ms: 20_000,
            rest_poll_interval_ms: 250,
            sse_lifetime_ms: 300_000,
            sse_heartbeat_ms: 15_000,
            sse_retry_ms: 1_000,
            presence_ttl_ms: 30_000,
            max_streams: 8,
            socketio_rooms_users: RoomAllow::default(),
            socketio_rooms_keys: RoomAllow::all(),
        }
    }
}

impl NotifyConfig {
    pub fn from_vars(vars: &impl Vars) -> Result<Self, Error> {
        let d = NotifyConfig::default();
        let c = Config::new(vars);
        const DAY: u64 = 86_400_000;
        Ok(NotifyConfig {
            max_body_bytes: c.int("notify_max_payload_bytes", d.max_body_bytes, 64..=1 << 20)?,
            stream_maxlen: c.int("notify_stream_maxlen", d.stream_maxlen, 1..=10_000_000)?,
            retention_ms: c.duration_ms("notify_retention", d.retention_ms, 1000..=365 * DAY)?,
            idempotency_ttl_ms: c.duration_ms("notify_idempotency_ttl", d.idempotency_ttl_ms, 1000..=30 * DAY)?,
            poll_timeout_ms: c.duration_ms("notify_poll_timeout", d.poll_timeout_ms, 1..=MAX_POLL_TIMEOUT_MS)?,
            rest_poll_interval_ms: c.duration_ms("notify_rest_poll_interval", d.rest_poll_interval_ms, 10..=10_000)?,
            sse_lifetime_ms: c.duration_ms("notify_sse_lifetime", d.sse_lifetime_ms, 1000..=DAY)?,
            sse_heartbeat_ms: c.duration_ms("notify_sse_heartbeat", d.sse_heartbeat_ms, 100..=300_000)?,
            sse_retry_ms: c.duration_ms("notify_sse_retry", d.sse_retry_ms, 1..=600_000)?,
            presence_ttl_ms: c.duration_ms("notify_presence_ttl", d.presence_ttl_ms, 1000..=DAY)?,
            max_streams: c.int("notify_max_streams", d.max_streams, 1..=1000)?,
            socketio_rooms_users: c.parse("notify_socketio_rooms", d.socketio_rooms_users, RoomAllow::parse)?,
            socketio_rooms_keys: c.parse("notify_socketio_rooms_keys", d.socketio_rooms_keys, RoomAllow::parse)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_vars as vars;


    #[test]
    fn defaults_and_overrides() {
        assert_eq!(NotifyConfig::from_vars(&vars(&[])).unwrap(), NotifyConfig::default());
        let c = NotifyConfig::from_vars(&vars(&[("notify_poll_timeout", "2s"), ("notify_sse_lifetime", " 10m ")])).unwrap();
        assert_eq!((c.poll_timeout_ms, c.sse_lifetime_ms), (2000, 600_000));
        for (k, v) in [
            ("notify_poll_timeout", "2min"),
            ("notify_poll_timeout", "56s"),
            ("notify_max_payload_bytes", "0"),
            ("notify_stream_maxlen", "-1"),
            ("notify_sse_heartbeat", "1ms"),
            ("notify_max_streams", "0"),
            ("notify_socketio_rooms", "a b{c}"),
            ("notify_socketio_rooms_keys", "*x"),
        ] {
            let e = NotifyConfig::from_vars(&vars(&[(k, v)])).unwrap_err();
            assert!(matches!(&e, Error::Misconfigured(m) if m.var == k), "{k}={v}: {e:?}");
        }
    }

    #[test]
    fn room_allow_lists() {
        let d = NotifyConfig::default();
        assert!(!d.socketio_rooms_users.allows("admins") && d.socketio_rooms_keys.allows("admins"));
        let a = RoomAllow::parse("lobby, team:* ").unwrap();
        assert!(a.allows("lobby") && a.allows("team:7") && !a.allows("lobby2") && !a.allows("admins"));
        assert!(RoomAllow::parse("").unwrap() == RoomAllow::default());
        assert!(RoomAllow::parse("*").unwrap().allows("anything"));
        assert!(!RoomAllow::parse("none").unwrap().allows("none"));
    }
}
