//! Spin's outbound Redis (`fermyon:spin/redis@2.0.0`): for `rediss://`
//! (Spin does the TLS) and host names (Spin resolves them; guests cannot).
//! Spin dials a new connection on every `open` and bounds no call, so a
//! Redis that accepts and never answers holds the request for as long as the
//! client waits. [`super::SocketLink`] is the bounded path.

use crate::redis::{Cmd, Error, Link, Reply, Transport, Value};
use std::cell::OnceCell;

/// Spin outbound Redis. The connection opens on first use and serves the rest
/// of the request: Spin dials a new TCP connection for every `open`.
pub struct OutboundLink {
    url: String,
    conn: OnceCell<spin_sdk::redis::Connection>,
}

impl OutboundLink {
    pub fn new(url: &str) -> Self {
        OutboundLink { url: url.to_owned(), conn: OnceCell::new() }
    }

    fn conn(&self) -> Result<&spin_sdk::redis::Connection, Error> {
        if let Some(c) = self.conn.get() {
            return Ok(c);
        }
        let c = spin_sdk::redis::Connection::open(&self.url).map_err(|e| match e {
            spin_sdk::redis::Error::InvalidAddress => Error::Config("redis_host is not a valid Redis address".into()),
            other => Error::Unavailable(describe(&other)),
        })?;
        Ok(self.conn.get_or_init(|| c))
    }
}

fn describe(e: &spin_sdk::redis::Error) -> String {
    match e {
        spin_sdk::redis::Error::InvalidAddress => "invalid address".into(),
        spin_sdk::redis::Error::TooManyConnections => "too many connections".into(),
        spin_sdk::redis::Error::TypeError => "type error".into(),
        spin_sdk::redis::Error::Other(m) => m.clone(),
    }
}

/// Spin reports every failure of `execute` as `other(text)`. Tell server
/// error replies (which carry a Redis error code) from transport failures.
fn classify(msg: String) -> Error {
    let lower = msg.to_ascii_lowercase();
    // redis-rs, which Spin's host uses, renders this one as
    // "... NoScriptError: No matching script ..."; Redis itself says "NOSCRIPT".
    if lower.contains("noscript") {
        return Error::Server(format!("NOSCRIPT {msg}"));
    }
    let transport = ["os error", "connection", "broken pipe", "timed out", "timeout", "refused", "reset", "eof", "i/o"];
    if transport.iter().any(|t| lower.contains(t)) {
        Error::Unavailable(msg)
    } else {
        Error::Server(msg)
    }
}

impl Link for OutboundLink {
    fn transport(&self) -> Transport {
        Transport::Tcp
    }

    async fn exec(&self, cmd: &Cmd) -> Result<Reply, Error> {
        use spin_sdk::redis::{RedisParameter, RedisResult};
        let conn = self.conn()?;
        let params: Vec<RedisParameter> =
            cmd.args().iter().map(|a| RedisParameter::Binary(a.0.clone())).collect();
        let results = conn.execute(cmd.name(), &params).map_err(|e| match e {
            spin_sdk::redis::Error::Other(m) => classify(m),
            other => Error::Protocol(describe(&other)),
        })?;
        Ok(Reply(
            results
                .into_iter()
                .map(|r| match r {
                    RedisResult::Nil => Value::Nil,
                    RedisResult::Int64(n) => Value::Int(n),
                    RedisResult::Binary(b) => Value::Bytes(b),
                    RedisResult::Status(s) => Value::Bytes(s.into_bytes()),
                })
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_spin_error_text() {
        assert!(classify("NOSCRIPT: No matching script".into()).is_noscript());
        let spin = "An error was signalled by the server - NoScriptError: No matching script. Please use EVAL.";
        assert!(classify(spin.into()).is_noscript());
        assert!(classify("Connection refused (os error 111)".into()).is_unavailable());
        assert!(!classify("WRONGTYPE Operation against a key".into()).is_unavailable());
    }
}
