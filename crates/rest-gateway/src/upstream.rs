//! The Redis side of the gateway: one server (`link`), or a Redis Cluster
//! (`cluster`), behind one interface, so the HTTP side does not care which.
//!
//! Both modes share the script cache (`scripts`) and the rule for a single
//! EVALSHA answered NOSCRIPT although the gateway knows the script: the
//! server lost its cache (restart, failover), nothing ran, so the command
//! is sent again, this time with the script loaded first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use redis::{Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo as _, Value};
use serde_json::json;

use crate::cluster::Cluster;
use crate::config::{Config, TlsFiles};
use crate::link::{Link, Unavailable};
use crate::metrics::Metrics;
use crate::routing::Args;
use crate::scripts::{self, Scripts};

/// The answer to one command: its reply (an error reply included), or the
/// reason Redis could not give one.
pub(crate) type Answer = Result<Value, Unavailable>;

/// Why a transaction did not run.
#[derive(Debug)]
pub(crate) enum TxError {
    Unavailable(Unavailable),
    /// It cannot run as asked (CROSSSLOT, a command that needs every master): a 400.
    Refused(String),
    /// The cluster is moving its slot; retrying later will work: a 503.
    Busy(String),
}

/// Opens Redis clients with the configured TLS certificates.
#[derive(Clone)]
pub(crate) struct Connector {
    certs: Option<redis::TlsCertificates>,
}

impl Connector {
    pub(crate) fn new(files: &TlsFiles) -> anyhow::Result<Self> {
        let read = |path: &std::path::Path| {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        };
        let root_cert = files.ca_file.as_deref().map(read).transpose()?;
        let client_tls = match (&files.client_cert, &files.client_key) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: read(cert)?,
                client_key: read(key)?,
            }),
            _ => None,
        };
        let certs =
            (root_cert.is_some() || client_tls.is_some()).then_some(redis::TlsCertificates {
                client_tls,
                root_cert,
            });
        Ok(Connector { certs })
    }

    pub(crate) fn client(&self, info: ConnectionInfo) -> redis::RedisResult<Client> {
        match (&self.certs, &info.addr) {
            (Some(certs), ConnectionAddr::TcpTls { .. }) => {
                Client::build_with_tls(info, certs.clone())
            }
            _ => Client::open(info),
        }
    }
}

/// Parses a Redis URL without ever echoing it (it may hold a password).
pub(crate) fn connection_info(url: &str) -> anyhow::Result<ConnectionInfo> {
    url.into_connection_info()
        .map_err(|e| anyhow::anyhow!("invalid Redis URL {:?}: {e}", crate::log::redact_url(url)))
}

enum Kind {
    Single(Box<Link>),
    Cluster(Arc<Cluster>),
}

pub(crate) struct Upstream {
    kind: Kind,
    scripts: Arc<Scripts>,
    timeout: Duration,
    /// The last health check, reused for a second so that probes (which
    /// need no token) cannot turn into load on Redis.
    health: tokio::sync::Mutex<Option<(Instant, Health)>>,
}

/// What `GET /healthz` reports.
#[derive(Clone, Debug)]
pub(crate) struct Health {
    /// Redis answers (on a cluster: at least one master does).
    pub ok: bool,
    /// Safe to show anyone: counts and states, never addresses.
    pub detail: serde_json::Value,
}

const HEALTH_CACHE: Duration = Duration::from_secs(1);

impl Upstream {
    /// Checks URLs and certificates; does not connect.
    pub(crate) fn new(config: &Config, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let connector = Connector::new(&config.tls)?;
        let scripts = Arc::new(Scripts::default());
        let infos = config
            .redis
            .iter()
            .map(|url| connection_info(url))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let kind = if config.cluster {
            Kind::Cluster(Arc::new(Cluster::new(
                infos,
                connector,
                config.redis_timeout,
                scripts.clone(),
                metrics,
            )?))
        } else {
            let info = infos.into_iter().next().context("no Redis URL given")?;
            let client = connector
                .client(info)
                .map_err(|e| anyhow::anyhow!("invalid Redis settings: {e}"))?;
            Kind::Single(Box::new(Link::new(
                client,
                config.redis_timeout,
                scripts.clone(),
                metrics,
            )))
        };
        Ok(Upstream {
            kind,
            scripts,
            timeout: config.redis_timeout,
            health: tokio::sync::Mutex::new(None),
        })
    }

    pub(crate) fn cluster(&self) -> Option<&Arc<Cluster>> {
        match &self.kind {
            Kind::Cluster(c) => Some(c),
            Kind::Single(_) => None,
        }
    }

    /// Why `cmd` cannot run in this mode, if it cannot.
    pub(crate) fn refusal(&self, cmd: &Args<'_>) -> Option<String> {
        match self.kind {
            Kind::Cluster(_) => crate::routing::cluster_refusal(cmd),
            Kind::Single(_) => None,
        }
    }

    /// Runs `cmds` (a pipeline, or one command) and answers each. `Err`
    /// only when the whole batch failed for the same reason.
    pub(crate) async fn batch(
        &self,
        cmds: &[&Args<'_>],
        timeout: Duration,
    ) -> Result<Vec<Answer>, Unavailable> {
        let started = Instant::now();
        let mut answers = self.run(cmds, timeout).await?;
        if let ([cmd], [Ok(Value::ServerError(err))]) = (cmds, &answers[..]) {
            if err.code() == "NOSCRIPT" {
                if let scripts::Use::EvalSha(sha) = scripts::use_of(cmd) {
                    let left = timeout.saturating_sub(started.elapsed());
                    if self.scripts.body(sha).is_some() && !left.is_zero() {
                        answers = self.run(cmds, left).await?;
                    }
                }
            }
        }
        Ok(answers)
    }

    async fn run(&self, cmds: &[&Args<'_>], timeout: Duration) -> Result<Vec<Answer>, Unavailable> {
        match &self.kind {
            Kind::Single(link) => Ok(link.run(cmds, timeout).await?.into_iter().map(Ok).collect()),
            Kind::Cluster(cluster) => cluster.batch(cmds, timeout).await,
        }
    }

    /// Runs `cmds` as one MULTI … EXEC and returns every reply (MULTI's,
    /// each QUEUED, EXEC's).
    pub(crate) async fn transaction(
        &self,
        cmds: &[&Args<'_>],
        timeout: Duration,
    ) -> Result<Vec<Value>, TxError> {
        match &self.kind {
            Kind::Single(link) => link
                .transaction(cmds, timeout)
                .await
                .map_err(TxError::Unavailable),
            Kind::Cluster(cluster) => cluster.transaction(cmds, timeout).await,
        }
    }

    pub(crate) async fn health(&self) -> Health {
        let mut cached = self.health.lock().await;
        if let Some((at, health)) = cached.as_ref() {
            if at.elapsed() < HEALTH_CACHE {
                return health.clone();
            }
        }
        let health = match &self.kind {
            Kind::Single(link) => {
                const PING: &[std::borrow::Cow<'static, [u8]>] =
                    &[std::borrow::Cow::Borrowed(b"PING")];
                match link.run(&[PING], self.timeout).await {
                    Ok(replies) if !matches!(replies.first(), Some(Value::ServerError(_))) => {
                        Health {
                            ok: true,
                            detail: json!({"mode": "single", "redis": "ok"}),
                        }
                    }
                    Ok(replies) => Health {
                        ok: false,
                        detail: json!({"mode": "single", "redis": replies.first().and_then(crate::reply::error_text)}),
                    },
                    Err(err) => Health {
                        ok: false,
                        detail: json!({"mode": "single", "redis": err.message}),
                    },
                }
            }
            Kind::Cluster(cluster) => cluster.health().await,
        };
        *cached = Some((Instant::now(), health.clone()));
        health
    }
}
