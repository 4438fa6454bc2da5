//! Typed configuration, read from Spin variables through a narrow seam.

use crate::redis::{Error, Transport};

/// Where configuration values come from: Spin variables in the guest, a map in tests.
pub trait Vars {
    /// The value of a variable, or `None` when it is not declared or has no value.
    fn get(&self, name: &str) -> Option<String>;
}

impl Vars for std::collections::HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).cloned()
    }
}

/// How to reach Redis. One variable, `redis_host`, points every component
/// at a Redis: it is also what `allowed_outbound_hosts` grants
/// (`{{ redis_scheme }}://{{ redis_host }}` and `tcp://{{ redis_host }}`), so
/// the two cannot disagree. `redis_scheme` picks the transport: `redis`
/// (RESP over TCP), `rediss` (RESP over TLS), or `https` / `http` (the
/// Upstash REST API). Credentials are separate secrets: `redis_username` and
/// `redis_password` for RESP, `redis_token` for REST.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    pub scheme: String,
    /// `host:port`, as given (the port is required).
    pub host: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    pub transport: Transport,
    /// Upper bound for one exchange with Redis (connect, send, answer), in
    /// ms, on every path that can be bounded: RESP over `wasi:sockets` and
    /// REST. Spin's own outbound Redis (used for `rediss` and host names)
    /// has no timeout.
    pub timeout_ms: u64,
}

/// The variables [`RedisConfig::from_vars`] reads; every component that
/// talks to Redis declares them.
pub const REDIS_VARIABLES: &[&str] =
    &["redis_scheme", "redis_host", "redis_username", "redis_password", "redis_token", "redis_timeout_ms"];

pub const DEFAULT_REDIS_SCHEME: &str = "redis";
pub const DEFAULT_REDIS_HOST: &str = "127.0.0.1:6379";
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 2000;

impl RedisConfig {
    pub fn from_vars(vars: &impl Vars) -> Result<Self, Error> {
        let get = |name: &str| vars.get(name).filter(|s| !s.is_empty());
        let scheme = get("redis_scheme").unwrap_or_else(|| DEFAULT_REDIS_SCHEME.into()).to_ascii_lowercase();
        let transport = match scheme.as_str() {
            "redis" | "rediss" => Transport::Tcp,
            "http" | "https" => Transport::Rest,
            _ => return Err(Error::Config("redis_scheme must be redis, rediss, https or http".into())),
        };
        let host = get("redis_host").unwrap_or_else(|| DEFAULT_REDIS_HOST.into());
        check_host(&host)?;
        let token = get("redis_token");
        if transport == Transport::Rest && token.is_none() {
            return Err(Error::Config("redis_token must be set when redis_scheme is https or http".into()));
        }
        let timeout_ms = match get("redis_timeout_ms") {
            None => DEFAULT_REDIS_TIMEOUT_MS,
            Some(s) => s
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=60_000).contains(n))
                .ok_or_else(|| Error::Config("redis_timeout_ms must be an integer in 1..=60000".into()))?,
        };
        Ok(RedisConfig { scheme, host, username: get("redis_username"), password: get("redis_password"), token, transport, timeout_ms })
    }

    /// The URL for Spin's outbound Redis (`redis://user:pass@host:port`) or
    /// the REST API's base (`https://host:port`). Carries credentials: never log it.
    pub fn url(&self) -> String {
        let auth = match (&self.username, &self.password) {
            _ if self.transport == Transport::Rest => String::new(),
            (None, None) => String::new(),
            (u, p) => format!("{}:{}@", userinfo(u.as_deref().unwrap_or("")), userinfo(p.as_deref().unwrap_or(""))),
        };
        format!("{}://{auth}{}", self.scheme, self.host)
    }

    /// Where to open a RESP connection over `wasi:sockets`: plain `redis`
    /// to an IP address. Spin grants sockets by IP (`tcp://<ip>:<port>`)
    /// and resolves no names for guests, so a host name (or TLS) goes
    /// through Spin's outbound Redis instead.
    pub fn socket_addr(&self) -> Option<std::net::SocketAddr> {
        (self.scheme == "redis").then(|| self.host.parse().ok()).flatten()
    }
}

/// `host:port`, with a port: Spin's `allowed_outbound_hosts` needs one for
/// `tcp://{{ redis_host }}`.
fn check_host(host: &str) -> Result<(), Error> {
    if host.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let bad = || Error::Config(format!("redis_host must be host:port (an IP address or a DNS name, and a port), got {host:?}"));
    let (name, port) = host.rsplit_once(':').ok_or_else(bad)?;
    port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?;
    let label_ok = |l: &str| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(bad());
    }
    Ok(())
}

/// Percent-encodes a URL userinfo part (RFC 3986: unreserved characters stay).
fn userinfo(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn picks_transport_by_scheme() {
        let c = RedisConfig::from_vars(&vars(&[])).unwrap();
        assert_eq!((c.url(), c.transport), ("redis://127.0.0.1:6379".to_string(), Transport::Tcp));
        assert_eq!(c.socket_addr(), Some("127.0.0.1:6379".parse().unwrap()));
        let c = RedisConfig::from_vars(&vars(&[("redis_scheme", "https"), ("redis_host", "x.upstash.io:443"), ("redis_token", "t")])).unwrap();
        assert_eq!((c.url(), c.transport, c.socket_addr()), ("https://x.upstash.io:443".to_string(), Transport::Rest, None));
        assert!(RedisConfig::from_vars(&vars(&[("redis_scheme", "https")])).is_err());
        assert!(RedisConfig::from_vars(&vars(&[("redis_scheme", "memcached")])).is_err());
        assert!(RedisConfig::from_vars(&vars(&[("redis_timeout_ms", "0")])).is_err());
    }

    #[test]
    fn sockets_only_for_plain_redis_at_an_ip() {
        let c = |pairs: &[(&str, &str)]| RedisConfig::from_vars(&vars(pairs)).unwrap();
        assert_eq!(c(&[("redis_host", "[::1]:7000")]).socket_addr(), Some("[::1]:7000".parse().unwrap()));
        assert_eq!(c(&[("redis_host", "redis.internal:6379")]).socket_addr(), None);
        assert_eq!(c(&[("redis_scheme", "rediss"), ("redis_host", "10.0.0.5:6380")]).socket_addr(), None);
    }

    #[test]
    fn credentials_are_encoded_into_the_url() {
        let c = RedisConfig::from_vars(&vars(&[("redis_password", "p@ss:/w"), ("redis_host", "db.local:6380")])).unwrap();
        assert_eq!(c.url(), "redis://:p%40ss%3A%2Fw@db.local:6380");
        let c = RedisConfig::from_vars(&vars(&[("redis_username", "app"), ("redis_password", "pw")])).unwrap();
        assert_eq!(c.url(), "redis://app:pw@127.0.0.1:6379");
    }

    #[test]
    fn host_needs_a_port() {
        for bad in ["127.0.0.1", "redis", "a/b:1", "x:0", "x:99999", ":6379", "u:p@h:1", "a..b:1"] {
            assert!(RedisConfig::from_vars(&vars(&[("redis_host", bad)])).is_err(), "{bad}");
        }
    }
}
