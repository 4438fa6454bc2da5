//! Typed configuration: every Spin variable the library reads goes through
//! one reader, [`Config`], with one error, [`ConfigError`], that names the
//! variable and maps to the `misconfigured` problem in one place.
//!
//! Values are trimmed; an unset or empty variable takes its default. A
//! component reads only the variables a route needs, when it needs them:
//! each read is a host call (Spin instantiates a component per request).

use crate::http::Problem;
use crate::redis::Transport;
use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

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

/// A variable with a value the code cannot use: which one, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub var: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(var: &str, problem: impl Into<String>) -> Self {
        ConfigError { var: var.to_owned(), problem: problem.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.var, self.problem)
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for Problem {
    fn from(e: ConfigError) -> Problem {
        Problem::misconfigured(&e.to_string())
    }
}

/// The typed reader over a [`Vars`].
#[derive(Clone, Copy)]
pub struct Config<'v, V: ?Sized> {
    vars: &'v V,
}

impl<'v, V: Vars + ?Sized> Config<'v, V> {
    pub fn new(vars: &'v V) -> Self {
        Config { vars }
    }

    /// The trimmed value; `None` when unset or empty.
    pub fn text(&self, name: &str) -> Option<String> {
        self.vars.get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// The value parsed by `parse`, or `default`; a parse error names the variable.
    pub fn parse<T>(&self, name: &str, default: T, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<T, ConfigError> {
        match self.text(name) {
            None => Ok(default),
            Some(v) => parse(&v).map_err(|p| ConfigError::new(name, p)),
        }
    }

    /// An integer in `range`.
    pub fn int<T>(&self, name: &str, default: T, range: RangeInclusive<T>) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
    {
        self.parse(name, default, |v| {
            v.parse::<T>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| format!("expected an integer in {}..={}, got {v:?}", range.start(), range.end()))
        })
    }

    /// A decimal number in `range`.
    pub fn float(&self, name: &str, default: f64, range: RangeInclusive<f64>) -> Result<f64, ConfigError> {
        self.parse(name, default, |v| {
            v.parse::<f64>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| format!("expected a number in {}..={}, got {v:?}", range.start(), range.end()))
        })
    }

    /// A duration (`250ms`, `5s`, `15m`, `1h`, `7d`) in `range`, in ms.
    pub fn duration_ms(&self, name: &str, default: u64, range: RangeInclusive<u64>) -> Result<u64, ConfigError> {
        self.parse(name, default, |v| {
            parse_duration(v)
                .filter(|ms| range.contains(ms))
                .ok_or_else(|| format!("expected a duration in {}ms..={}ms (e.g. 20s), got {v:?}", range.start(), range.end()))
        })
    }

    /// One of `options` (matched without regard to case), or `default`.
    pub fn choice<T: Copy>(&self, name: &str, default: T, options: &[(&str, T)]) -> Result<T, ConfigError> {
        self.parse(name, default, |v| {
            options.iter().find(|(o, _)| o.eq_ignore_ascii_case(v)).map(|(_, t)| *t).ok_or_else(|| {
                let names: Vec<&str> = options.iter().map(|(o, _)| *o).collect();
                format!("expected one of {}, got {v:?}", names.join(", "))
            })
        })
    }

    /// `true` or `false`.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        self.choice(name, default, &[("true", true), ("false", false)])
    }

    /// A comma-separated list, each item trimmed and parsed; empty items are skipped.
    pub fn list<T>(&self, name: &str, item: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, ConfigError> {
        let Some(v) = self.text(name) else { return Ok(Vec::new()) };
        v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| item(s).map_err(|p| ConfigError::new(name, p))).collect()
    }

    /// A URL whose scheme is one of `schemes`, as given (`None` when unset).
    pub fn url(&self, name: &str, schemes: &[&str]) -> Result<Option<String>, ConfigError> {
        let Some(v) = self.text(name) else { return Ok(None) };
        let ok = v.split_once("://").is_some_and(|(s, rest)| schemes.iter().any(|x| x.eq_ignore_ascii_case(s)) && !rest.is_empty());
        // The value may carry credentials: the error says what is expected, not what was given.
        ok.then_some(Some(v)).ok_or_else(|| ConfigError::new(name, format!("expected a {}:// URL", schemes.join("://, "))))
    }
}

/// `500ms`, `60s`, `15m`, `1h`, `7d`: milliseconds, or `None` when not a
/// duration (or more than a year, or zero).
pub fn parse_duration(s: &str) -> Option<u64> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (n, unit) = s.split_at(digits);
    let scale = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.parse::<u64>().ok()?.checked_mul(scale).filter(|ms| (1..=MAX_DURATION_MS).contains(ms))
}

/// The longest duration any setting takes: a year.
pub const MAX_DURATION_MS: u64 = 365 * 86_400_000;

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

pub const DEFAULT_REDIS_SCHEME: &str = "redis";
pub const DEFAULT_REDIS_HOST: &str = "127.0.0.1:6379";
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 2000;

impl RedisConfig {
    pub fn from_vars(vars: &impl Vars) -> Result<Self, ConfigError> {
        let c = Config::new(vars);
        let transport = c.choice(
            "redis_scheme",
            Transport::Tcp,
            &[("redis", Transport::Tcp), ("rediss", Transport::Tcp), ("https", Transport::Rest), ("http", Transport::Rest)],
        )?;
        let scheme = c.text("redis_scheme").unwrap_or_else(|| DEFAULT_REDIS_SCHEME.into()).to_ascii_lowercase();
        let host = c.parse("redis_host", DEFAULT_REDIS_HOST.to_owned(), |h| check_host(h).map(|()| h.to_owned()))?;
        // Each transport reads only its own credentials.
        let (username, password, token) = match transport {
            Transport::Rest => {
                let token = c.text("redis_token").ok_or_else(|| ConfigError::new("redis_token", "must be set when redis_scheme is https or http"))?;
                (None, None, Some(token))
            }
            _ => (c.text("redis_username"), c.text("redis_password"), None),
        };
        let timeout_ms = c.int("redis_timeout_ms", DEFAULT_REDIS_TIMEOUT_MS, 1..=60_000)?;
        Ok(RedisConfig { scheme, host, username, password, token, transport, timeout_ms })
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

impl RedisConfig {
    /// The webhook worker's commands (spin-worker.toml). By default
    /// (`redis_commands_scheme` `redis`, or `rediss`) they go where its Redis
    /// trigger listens (`redis_*`, over RESP: the trigger has no REST mode). With `redis_commands_scheme` `http` or `https` they go
    /// over REST to `redis_commands_host` with `redis_token`, e.g. through
    /// `spindle-rest-gateway --cluster` on Redis Cluster, while the trigger
    /// stays subscribed on a node (pub/sub spans a cluster).
    pub fn worker_from_vars(vars: &impl Vars) -> Result<Self, ConfigError> {
        struct Commands<'a, V>(&'a V);
        impl<V: Vars> Vars for Commands<'_, V> {
            fn get(&self, name: &str) -> Option<String> {
                match name {
                    "redis_scheme" => self.0.get("redis_commands_scheme"),
                    "redis_host" => self.0.get("redis_commands_host"),
                    other => self.0.get(other),
                }
            }
        }
        let c = Config::new(vars);
        let rest = c.choice("redis_commands_scheme", false, &[("redis", false), ("rediss", false), ("http", true), ("https", true)])?;
        if !rest {
            return RedisConfig::from_vars(vars);
        }
        RedisConfig::from_vars(&Commands(vars)).map_err(|mut e| {
            let renamed = match e.var.as_str() {
                "redis_scheme" => Some("redis_commands_scheme"),
                "redis_host" => Some("redis_commands_host"),
                _ => None,
            };
            if let Some(name) = renamed {
                e.var = name.into();
            }
            e
        })
    }
}

/// `host:port`, with a port: Spin's `allowed_outbound_hosts` needs one for
/// `tcp://{{ redis_host }}`.
fn check_host(host: &str) -> Result<(), String> {
    if host.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let bad = || format!("expected host:port (an IP address or a DNS name, and a port), got {host:?}");
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

/// Test variables from pairs: the one helper every config module's tests use.
#[cfg(test)]
pub(crate) fn test_vars(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use super::test_vars as vars;


    #[test]
    fn picks_transport_by_scheme() {
        let c = RedisConfig::from_vars(&vars(&[])).unwrap();
        assert_eq!((c.url(), c.transport), ("redis://127.0.0.1:6379".to_string(), Transport::Tcp));
        assert_eq!(c.socket_addr(), Some("127.0.0.1:6379".parse().unwrap()));
        let c = RedisConfig::from_vars(&vars(&[("redis_scheme", "https"), ("redis_host", "x.upstash.io:443"), ("redis_token", "t")])).unwrap();
        assert_eq!((c.url(), c.transport, c.socket_addr()), ("https://x.upstash.io:443".to_string(), Transport::Rest, None));
        assert!(RedisConfig::from_vars(&vars(&[("redis_scheme", "https")])).is_err());
        assert!(RedisConfig::from_vars(&vars(&[("redis_scheme", "memcached")])).is_err());
        // The worker: the trigger's Redis by default, REST when asked.
        let w = RedisConfig::worker_from_vars(&vars(&[("redis_host", "10.0.0.5:6379"), ("redis_commands_host", "gw:8079")])).unwrap();
        assert_eq!((w.transport, w.host.as_str()), (Transport::Tcp, "10.0.0.5:6379"));
        let w = RedisConfig::worker_from_vars(&vars(&[("redis_commands_scheme", "http"), ("redis_commands_host", "gw:8079"), ("redis_token", "t")])).unwrap();
        assert_eq!((w.transport, w.url()), (Transport::Rest, "http://gw:8079".to_string()));
        let e = RedisConfig::worker_from_vars(&vars(&[("redis_commands_scheme", "http"), ("redis_commands_host", "nope"), ("redis_token", "t")])).unwrap_err();
        assert_eq!(e.var, "redis_commands_host");
        assert_eq!(RedisConfig::worker_from_vars(&vars(&[("redis_commands_scheme", "ftp")])).unwrap_err().var, "redis_commands_scheme");
        assert_eq!(RedisConfig::worker_from_vars(&vars(&[("redis_commands_scheme", "https")])).unwrap_err().var, "redis_token");
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
