//! The gateway's settings. The binary fills them from flags (`main.rs`);
//! tests build them with [`Config::new`] and change what they need.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::log::redact_url;

/// Gateway settings. [`Config::new`] fills in the CLI's defaults.
#[derive(Clone)]
pub struct Config {
    /// Address to listen on, `host:port`; port 0 picks a free port.
    pub listen: String,
    /// `redis://` or `rediss://` URLs: the one Redis, or with `cluster` the
    /// seed nodes the cluster's layout is first read from.
    pub redis: Vec<String>,
    /// Treat `redis` as seeds of a Redis Cluster.
    pub cluster: bool,
    /// One read-write token (`--token`); may be combined with `token_file`.
    pub token: Option<String>,
    /// A file of hashed, scoped tokens (see `tokens`), reloaded on SIGHUP
    /// and when it changes on disk.
    pub token_file: Option<PathBuf>,
    /// How often the token file is checked for changes; zero: never (only
    /// SIGHUP reloads it).
    pub token_file_poll: Duration,
    /// Largest request body accepted; larger ones get a 413.
    pub max_body_bytes: usize,
    /// How long to wait for a connection to Redis, and for the answer to an
    /// ordinary command, before answering 503. Short, so that a Redis that is
    /// down or hung is reported quickly.
    pub redis_timeout: Duration,
    /// How long to wait for the answer when the request runs a script
    /// (EVAL, EVALSHA, FCALL, …): a long Lua script is a legitimate reason
    /// for a slow answer.
    pub command_timeout: Duration,
    /// Most requests talking to Redis at once.
    pub max_in_flight: usize,
    /// Most requests waiting for a turn; beyond that, an immediate 503.
    pub max_queue: usize,
    /// Longest wait for a turn before a 503.
    pub queue_timeout: Duration,
    /// On shutdown, how long requests in flight may take to finish.
    pub drain_timeout: Duration,
    /// How often the cluster's slot map is read again (besides after MOVED
    /// replies and connection failures).
    pub cluster_refresh: Duration,
    /// Certificates for `rediss://`.
    pub tls: TlsFiles,
    /// Log one line per request (route, status, time, token name).
    pub access_log: bool,
}

/// PEM files for TLS to Redis. Without `ca_file`, the system's roots are
/// trusted.
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key, for servers that require mutual TLS.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl Config {
    pub fn new(redis_url: impl Into<String>, token: impl Into<String>) -> Self {
        Config {
            listen: "127.0.0.1:8079".into(),
            redis: vec![redis_url.into()],
            cluster: false,
            token: Some(token.into()),
            token_file: None,
            token_file_poll: Duration::from_secs(1),
            max_body_bytes: 1024 * 1024,
            redis_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(10),
            max_in_flight: 256,
            max_queue: 1024,
            queue_timeout: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(5),
            cluster_refresh: Duration::from_secs(5),
            tls: TlsFiles::default(),
            access_log: false,
        }
    }

    /// Checks what can be checked without connecting.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.redis.is_empty(), "no Redis URL given");
        anyhow::ensure!(
            self.cluster || self.redis.len() == 1,
            "several Redis URLs need --cluster (they are the seeds of one cluster)"
        );
        anyhow::ensure!(self.max_in_flight > 0, "--max-in-flight must be at least 1");
        anyhow::ensure!(
            self.tls.client_cert.is_some() == self.tls.client_key.is_some(),
            "--redis-client-cert and --redis-client-key go together"
        );
        Ok(())
    }
}

/// Never shows the token, nor a password in a Redis URL.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redis: Vec<String> = self.redis.iter().map(|u| redact_url(u)).collect();
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("redis", &redis)
            .field("cluster", &self.cluster)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("token_file", &self.token_file)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("redis_timeout", &self.redis_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_queue", &self.max_queue)
            .field("queue_timeout", &self.queue_timeout)
            .field("drain_timeout", &self.drain_timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let config = Config::new("redis://u:hunter2@h:1", "tok-secret");
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("tok-secret"),
            "{shown}"
        );
    }

    #[test]
    fn validates() {
        let mut config = Config::new("redis://a", "t");
        assert!(config.validate().is_ok());
        config.redis.push("redis://b".into());
        assert!(config.validate().is_err());
        config.cluster = true;
        assert!(config.validate().is_ok());
    }
}
