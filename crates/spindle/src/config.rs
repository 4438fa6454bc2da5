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

/// How to reach Redis: `redis_url` picks the transport by scheme;
/// `redis_token` is the bearer token for REST.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    pub url: String,
    pub token: Option<String>,
    pub transport: Transport,
    /// Upper bound for one REST exchange (connect and first byte), in ms.
    pub timeout_ms: u64,
}

pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 2000;

impl RedisConfig {
    pub fn from_vars(vars: &impl Vars) -> Result<Self, Error> {
        let url = vars.get("redis_url").filter(|s| !s.is_empty()).unwrap_or_else(|| DEFAULT_REDIS_URL.into());
        let transport = Transport::for_url(&url)?;
        let token = vars.get("redis_token").filter(|s| !s.is_empty());
        if transport == Transport::Rest && token.is_none() {
            return Err(Error::Config("redis_token must be set when redis_url is an HTTP(S) URL".into()));
        }
        let timeout_ms = match vars.get("redis_timeout_ms").filter(|s| !s.is_empty()) {
            None => DEFAULT_REDIS_TIMEOUT_MS,
            Some(s) => s
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=60_000).contains(n))
                .ok_or_else(|| Error::Config("redis_timeout_ms must be an integer in 1..=60000".into()))?,
        };
        Ok(RedisConfig { url, token, transport, timeout_ms })
    }
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
        assert_eq!((c.url.as_str(), c.transport), (DEFAULT_REDIS_URL, Transport::Tcp));
        let c = RedisConfig::from_vars(&vars(&[("redis_url", "https://x.upstash.io"), ("redis_token", "t")])).unwrap();
        assert_eq!(c.transport, Transport::Rest);
        assert!(RedisConfig::from_vars(&vars(&[("redis_url", "https://x.upstash.io")])).is_err());
        assert!(RedisConfig::from_vars(&vars(&[("redis_url", "memcached://x")])).is_err());
        assert!(RedisConfig::from_vars(&vars(&[("redis_timeout_ms", "0")])).is_err());
    }
}
