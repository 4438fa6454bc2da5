//! The Redis link: one small interface over every transport.
//!
//! Commands are values ([`Cmd`]) that are built and then sent. Replies are
//! normalised to a flat list of [`Value`]s, because Spin's outbound Redis
//! flattens nested arrays: a scalar reply is a one-element list, an array
//! reply is its elements. The REST transport flattens the same way, so every
//! caller sees identical replies whichever transport is configured.

mod cmd;
mod reply;
mod script;
pub mod resp;
pub mod rest;

#[cfg(feature = "native")]
pub mod native;

pub use cmd::{Arg, Cmd};
pub use reply::{FromReply, FromValue, Records, Reply, Value};
pub use script::Script;

use std::fmt;

/// Which wire a link speaks. Reported by `/healthz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Spin outbound Redis (RESP over TCP, `redis://` or `rediss://`).
    Tcp,
    /// The Upstash REST API over outbound HTTP (`https://` or `http://`).
    Rest,
    /// The `redis` crate, for native tests and tools.
    Native,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Rest => "rest",
            Transport::Native => "native",
        }
    }

    /// Picks the transport from the URL scheme of `redis_url`.
    pub fn for_url(url: &str) -> Result<Transport, Error> {
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("redis") | Some("rediss") => Ok(Transport::Tcp),
            Some("http") | Some("https") => Ok(Transport::Rest),
            _ => Err(Error::Config(
                "redis_url must start with redis://, rediss://, https:// or http://".into(),
            )),
        }
    }
}

/// Everything that can go wrong talking to Redis, by what the caller should do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Redis could not be reached, or did not answer in time. Callers apply
    /// their fail-open or fail-closed policy.
    Unavailable(String),
    /// Redis answered with an error reply (`ERR ...`, `WRONGTYPE ...`).
    Server(String),
    /// The reply did not have the shape the caller expected.
    Protocol(String),
    /// The link is misconfigured (bad URL, missing token).
    Config(String),
}

impl Error {
    /// True for errors that mean "Redis is not there right now".
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }

    pub(crate) fn is_noscript(&self) -> bool {
        matches!(self, Error::Server(m) if m.starts_with("NOSCRIPT"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unavailable(m) => write!(f, "redis unavailable: {m}"),
            Error::Server(m) => write!(f, "redis error: {m}"),
            Error::Protocol(m) => write!(f, "unexpected redis reply: {m}"),
            Error::Config(m) => write!(f, "redis configuration: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// A connection to Redis for the length of one request.
///
/// Implementations open lazily and reuse one connection for every command of
/// the request (Spin opens a new TCP connection per `open`, so opening once
/// matters). Futures are not `Send`: the guest is single-threaded. There is
/// no pipeline: every operation that needs several commands is one Lua
/// script, atomic and one round trip on every transport.
#[allow(async_fn_in_trait)]
pub trait Link {
    fn transport(&self) -> Transport;

    /// Sends one command and waits for its reply.
    async fn exec(&self, cmd: &Cmd) -> Result<Reply, Error>;

    /// Runs a Lua script: EVALSHA first, and EVAL once if the server answers NOSCRIPT.
    async fn eval(&self, script: &Script, keys: &[Arg], args: &[Arg]) -> Result<Reply, Error> {
        match self.exec(&script.evalsha(keys, args)).await {
            Err(e) if e.is_noscript() => self.exec(&script.eval(keys, args)).await,
            r => r,
        }
    }
}
