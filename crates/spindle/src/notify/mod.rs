//! Fan-out notifications across hosts: Redis Streams for durable, ordered
//! events, pub/sub for live listeners, and the Socket.IO redis-emitter wire
//! format for Socket.IO 4 servers.
//!
//! **Events.** A publish is one Lua script call ([`publish()`]): it checks
//! the idempotency key, takes one unit of the `notify` rate limit, XADDs the
//! event to the topic's stream (`MAXLEN ~`), and PUBLISHes it to the topic's
//! channel, to the webhook worker's channel when the topic has webhooks, and
//! to a Socket.IO room when asked. Readers never subscribe: they read the
//! stream after a cursor (the last event id they saw), so a reader on any
//! host, or one that reconnects, misses nothing the stream still holds and
//! sees nothing twice ([`poll`], [`stream_events`]).
//!
//! **Keys** (`{topic}` is a Redis Cluster hash tag, so one topic's keys
//! share a slot; topics are validated, so they never hold braces):
//!
//! ```text
//! spindle:notify:{<topic>}:events                stream: e (event), d (data JSON), t (published ms)
//! spindle:notify:{<topic>}:idem:<hash>           string "<event id> <fingerprint>", TTL notify_idempotency_ttl
//! spindle:notify:{<topic>}:presence              zset member JSON {"id","username"} → last heartbeat (ms)
//! spindle:notify:{<topic>}:webhooks              set of webhook ids on the topic
//! spindle:notify:{<topic>}:webhooks-cursor       last event id fanned out to the topic's webhooks
//! spindle:notify:webhooks                        hash webhook id → "<owner>\n<topic>\n<JSON>"
//! spindle:notify:webhook-topics                  set of topics that have webhooks
//! spindle:notify:owner:<owner>:webhooks          set of the owner's webhook ids
//! spindle:notify:owner:<owner>:dead-letters      stream of failed deliveries (j: JSON)
//! spindle:notify:deliveries:due                  zset delivery id → when it is due (ms)
//! spindle:notify:deliveries:pending              hash delivery id → "<attempt>\n<webhook id>\n<owner>\n<topic>\n<event id>"
//! spindle:notify:deliveries:owners               hash owner → its deliveries pending
//! spindle:notify:readers:<owner>                 zset lease token → lease end (ms): open polls and streams
//! cluster layout of webhooks (rate_limit_keys=cluster), instead of the registry, deliveries and owner sets above:
//! spindle:notify:{<topic>}:webhook-defs          hash webhook id → registry value (the topic's webhooks)
//! spindle:notify:{<topic>}:deliveries:due        zset, as deliveries:due, the topic's only
//! spindle:notify:{<topic>}:deliveries:pending    hash, as deliveries:pending, the topic's only
//! spindle:notify:{<topic>}:deliveries:owners     hash owner → its deliveries pending on the topic
//! spindle:notify:owner:<owner>:webhook-defs      hash webhook id → registry value (the owner's webhooks)
//! spindle:notify:webhook-topics-by-time          zset topic → last registration (ms): the topics a tick catches up
//! channels: spindle:notify:topic:<topic> (event JSON), spindle:notify:deliver (the worker's trigger),
//!           socket.io#/#<room># (Socket.IO emitter packets)
//! ```

pub mod json;
pub mod msgpack;
pub mod socketio;

mod access;
mod config;
pub(crate) mod presence;
pub(crate) mod publish;
mod read;
pub(crate) mod readers;
pub mod webhooks;

pub use access::{Caller, Topic, MAX_TOPIC_LEN};
pub use config::{NotifyConfig, RoomAllow};
pub use presence::{beat_topic, heartbeat, present, Present};
pub use publish::{publish, Publish, Published};
pub use readers::Reader;
pub use read::{parse_cursor, poll, stream_events, tail, Batch, Event, Sink, ZERO_CURSOR};

use crate::config::ConfigError;
use crate::http::Problem;
use crate::redis;
use std::fmt;

/// Key and channel names ([`crate::keys::notify`]).
pub(crate) use crate::keys::notify as keys;

/// Everything that can go wrong, by what the client is told ([`Error::to_problem`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    /// 400: a bad topic, event, cursor, URL or body.
    Invalid(String),
    /// 403: not this caller's topic (or webhook).
    Forbidden(String),
    /// 404
    NotFound(String),
    /// 409: an idempotency key reused for a different publish, or a limit on webhooks.
    Conflict(String),
    /// 413: a body over `notify_max_payload_bytes`.
    TooLarge(usize),
    /// A problem decided elsewhere (429 with its rate-limit headers, 415, 431).
    Problem(Problem),
    /// 500: a variable has an invalid value.
    Misconfigured(ConfigError),
    /// 503 (500 for a bad Redis configuration).
    Redis(redis::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid(m) | Error::Forbidden(m) | Error::NotFound(m) | Error::Conflict(m) => {
                f.write_str(m)
            }
            Error::TooLarge(n) => write!(f, "the body must be at most {n} bytes"),
            Error::Problem(p) => f.write_str(&p.detail),
            Error::Misconfigured(e) => write!(f, "misconfigured: {e}"),
            Error::Redis(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

impl From<redis::Error> for Error {
    fn from(e: redis::Error) -> Self {
        Error::Redis(e)
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Misconfigured(e)
    }
}

impl From<Problem> for Error {
    fn from(p: Problem) -> Self {
        Error::Problem(p)
    }
}

impl Error {
    /// The one place notify errors become HTTP problems. Redis failures are
    /// logged here (without arguments, which may hold user data) and answered
    /// with a generic 503.
    pub fn to_problem(&self) -> Problem {
        match self {
            Error::Invalid(m) => Problem::bad_request(m.clone()),
            Error::Forbidden(m) => Problem::forbidden(m.clone()),
            Error::NotFound(m) => Problem::new(404, "not-found", "Not Found", m.clone()),
            Error::Conflict(m) => Problem::conflict(m.clone()),
            Error::TooLarge(n) => Problem::payload_too_large(*n),
            Error::Problem(p) => p.clone(),
            Error::Misconfigured(e) => e.clone().into(),
            Error::Redis(redis::Error::Config(m)) => Problem::misconfigured(m),
            Error::Redis(e) => {
                eprintln!("notify: {e}");
                Problem::redis_unavailable()
            }
        }
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        e.to_problem()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_topic_hash_tag() {
        let t = Topic::parse("chat:lobby").unwrap();
        for k in [keys::stream(&t), keys::presence(&t), keys::topic_webhooks(&t), keys::webhook_cursor(&t)] {
            assert!(k.starts_with("spindle:notify:{chat:lobby}:"), "{k}");
        }
        let a = keys::idempotency(&t, "user:1", "k");
        assert!(a.starts_with("spindle:notify:{chat:lobby}:idem:") && !a.ends_with(":k"));
        assert_ne!(a, keys::idempotency(&t, "user:2", "k"), "scoped to the publisher");
        assert_eq!(keys::channel(&t), "spindle:notify:topic:chat:lobby");
    }

    #[test]
    fn errors_map_to_problems() {
        assert_eq!(Error::Invalid("x".into()).to_problem().status, 400);
        assert_eq!(Error::Forbidden("x".into()).to_problem().status, 403);
        assert_eq!(Error::TooLarge(10).to_problem().status, 413);
        assert_eq!(Error::Conflict("x".into()).to_problem().status, 409);
        assert_eq!(Error::Redis(redis::Error::Unavailable("x".into())).to_problem().status, 503);
        assert_eq!(Error::Redis(redis::Error::Config("x".into())).to_problem().status, 500);
        assert_eq!(Error::Misconfigured(ConfigError::new("x", "y")).to_problem().kind, "misconfigured");
    }
}
