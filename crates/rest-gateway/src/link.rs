//! The gateway's connection to one Redis server (the only one, or one
//! cluster master).
//!
//! Every request to a server shares one multiplexed connection: Redis runs
//! commands one at a time, so one well-fed connection already saturates it,
//! and requests pipeline onto it without a pool checkout. The number of
//! requests on it at once is bounded by the gateway's admission control
//! (`admission`), not here. A `/multi-exec` transaction goes over the same
//! connection: its MULTI … EXEC is written as one contiguous batch, so no
//! other request's command can land inside it.
//!
//! The connection is opened lazily and replaced after a connection-level
//! failure, so the gateway starts before Redis does and survives a Redis
//! restart. A command that failed after it was sent is never retried: it
//! may have run.
//!
//! Scripts: before an EVALSHA of a script the gateway knows (`scripts`) but
//! has not seen loaded on this server since the connection was opened, the
//! batch carries a SCRIPT LOAD of it, so a server that lost its script cache
//! (restart, failover) still answers.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Pipeline, RedisError, Value};

use crate::metrics::{Event, Metrics};
use crate::routing::Args;
use crate::scripts::{self, Scripts};

/// Redis could not be reached or did not answer in time: the gateway's
/// fault or the operator's, never the client's (a 503).
#[derive(Clone, Debug)]
pub(crate) struct Unavailable {
    pub message: String,
    /// Whether the commands may have reached Redis. `false` only when no
    /// connection could be opened, so nothing was sent and a retry
    /// elsewhere is safe.
    pub sent: bool,
    /// The answer did not come in time (rather than the connection failing).
    pub timed_out: bool,
}

impl Unavailable {
    fn from_redis(err: &RedisError, sent: bool) -> Self {
        Unavailable {
            message: format!("Redis is unavailable: {err}"),
            sent,
            timed_out: err.is_timeout(),
        }
    }

    pub(crate) fn new(message: impl Into<String>) -> Self {
        Unavailable {
            message: message.into(),
            sent: false,
            timed_out: false,
        }
    }
}

pub(crate) struct Link {
    client: Client,
    config: AsyncConnectionConfig,
    /// The shared connection and its generation, so that a request that saw
    /// a stale connection fail does not throw away a newer, healthy one.
    shared: Mutex<Option<(u64, MultiplexedConnection)>>,
    /// Serialises reconnects, so a burst of requests opens one connection.
    connecting: tokio::sync::Mutex<()>,
    /// Completed connect attempts; lets waiters see that an attempt failed
    /// while they queued, and fail too instead of each waiting out a timeout.
    attempts: AtomicU64,
    last_failure: Mutex<Option<(u64, String)>>,
    scripts: Arc<Scripts>,
    metrics: Arc<Metrics>,
    /// SHA-1s of the scripts seen loaded on the server, and the connection
    /// generation they were seen on (a new connection may mean a new server,
    /// with an empty script cache).
    loaded: Mutex<(u64, HashSet<String>)>,
}

/// Locks a std mutex, ignoring poisoning: the guarded data is a cache that
/// stays valid whatever a panicking holder was doing.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn to_redis(cmd: &Args<'_>) -> redis::Cmd {
    let mut out = redis::Cmd::new();
    for arg in cmd {
        out.arg(arg.as_ref());
    }
    out
}

impl Link {
    /// Does not connect. `timeout` bounds connecting and, unless a call asks
    /// for longer, waiting for an answer.
    pub(crate) fn new(
        client: Client,
        timeout: Duration,
        scripts: Arc<Scripts>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        Link {
            client,
            config,
            shared: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            attempts: AtomicU64::new(0),
            last_failure: Mutex::new(None),
            scripts,
            metrics,
            loaded: Mutex::new((0, HashSet::new())),
        }
    }

    /// The shared connection, opening it if needed.
    async fn shared(&self) -> Result<(u64, MultiplexedConnection), Unavailable> {
        if let Some(current) = lock(&self.shared).clone() {
            return Ok(current);
        }
        let seen = self.attempts.load(Ordering::Acquire);
        let _guard = self.connecting.lock().await;
        if let Some(current) = lock(&self.shared).clone() {
            return Ok(current);
        }
        if self.attempts.load(Ordering::Acquire) != seen {
            if let Some((_, err)) = lock(&self.last_failure).clone() {
                return Err(Unavailable::new(err));
            }
        }
        let result = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(|e| Unavailable::from_redis(&e, false));
        let generation = self.attempts.fetch_add(1, Ordering::AcqRel) + 1;
        match result {
            Ok(conn) => {
                *lock(&self.last_failure) = None;
                *lock(&self.shared) = Some((generation, conn.clone()));
                Ok((generation, conn))
            }
            Err(err) => {
                *lock(&self.last_failure) = Some((generation, err.message.clone()));
                Err(err)
            }
        }
    }

    /// Drops the shared connection after a failure that leaves it unusable.
    fn on_error(&self, generation: u64, err: &RedisError) -> Unavailable {
        if err.is_unrecoverable_error() {
            let mut shared = lock(&self.shared);
            if shared.as_ref().is_some_and(|(g, _)| *g == generation) {
                *shared = None;
            }
        }
        Unavailable::from_redis(err, true)
    }

    fn is_loaded(&self, generation: u64, sha: &str) -> bool {
        let loaded = lock(&self.loaded);
        loaded.0 == generation && loaded.1.contains(sha)
    }

    fn mark_loaded(&self, generation: u64, sha: String, yes: bool) {
        let mut loaded = lock(&self.loaded);
        if loaded.0 != generation {
            if loaded.0 > generation {
                return; // a newer connection's knowledge: keep it
            }
            *loaded = (generation, HashSet::new());
        }
        if yes {
            loaded.1.insert(sha);
        } else {
            loaded.1.remove(&sha);
        }
    }

    fn forget_loaded(&self) {
        lock(&self.loaded).1.clear();
    }

    /// Sends `cmds` in one round trip, waiting at most `timeout` for the
    /// answers, and returns one reply per command. A Redis error reply is
    /// `Value::ServerError` in its slot, not an `Err`: only transport
    /// failures are errors here.
    pub(crate) async fn run(
        &self,
        cmds: &[&Args<'_>],
        timeout: Duration,
    ) -> Result<Vec<Value>, Unavailable> {
        let (generation, replies) = self.send(cmds, false, timeout).await?;
        for (cmd, reply) in cmds.iter().zip(&replies) {
            self.observe(generation, cmd, reply);
        }
        Ok(replies)
    }

    /// Sends `cmds` as MULTI … EXEC and returns every reply (MULTI's, each
    /// QUEUED, EXEC's), so queue-time errors can be reported.
    pub(crate) async fn transaction(
        &self,
        cmds: &[&Args<'_>],
        timeout: Duration,
    ) -> Result<Vec<Value>, Unavailable> {
        Ok(self.send(cmds, true, timeout).await?.1)
    }

    async fn send(
        &self,
        cmds: &[&Args<'_>],
        multi: bool,
        timeout: Duration,
    ) -> Result<(u64, Vec<Value>), Unavailable> {
        let (generation, mut conn) = self.shared().await?;
        let mut pipe = Pipeline::with_capacity(cmds.len() + 2);
        let mut preloads: Vec<String> = Vec::new();
        for cmd in cmds {
            if let scripts::Use::EvalSha(sha) = scripts::use_of(cmd) {
                if let Some((sha, body)) = self.scripts.body(sha) {
                    if !self.is_loaded(generation, &sha) && !preloads.contains(&sha) {
                        pipe.add_command(redis::cmd("SCRIPT").arg("LOAD").arg(&body[..]).clone());
                        self.metrics.event(Event::ScriptPreload);
                        preloads.push(sha);
                    }
                }
            }
        }
        if multi {
            pipe.add_command(redis::cmd("MULTI"));
        }
        for cmd in cmds {
            pipe.add_command(to_redis(cmd));
        }
        if multi {
            pipe.add_command(redis::cmd("EXEC"));
        }
        conn.set_response_timeout(timeout);
        let mut replies = conn
            .send_packed_commands(&pipe, 0, pipe.len())
            .await
            .map_err(|e| self.on_error(generation, &e))?;
        if replies.len() != pipe.len() {
            return Err(Unavailable {
                message: "Redis is unavailable: it sent too few replies".into(),
                sent: true,
                timed_out: false,
            });
        }
        let rest = replies.split_off(preloads.len());
        for (sha, reply) in preloads.into_iter().zip(replies) {
            let ok = matches!(reply, Value::BulkString(_));
            self.mark_loaded(generation, sha, ok);
        }
        Ok((generation, rest))
    }

    /// Keeps the script cache and the loaded set in step with what a
    /// command did on the server.
    fn observe(&self, generation: u64, cmd: &Args<'_>, reply: &Value) {
        let failed = matches!(reply, Value::ServerError(_));
        match scripts::use_of(cmd) {
            scripts::Use::Eval(body) | scripts::Use::Load(body) => {
                let sha = self.scripts.remember(body);
                self.mark_loaded(generation, sha, !failed);
            }
            scripts::Use::EvalSha(sha) => {
                if let Value::ServerError(err) = reply {
                    if err.code() == "NOSCRIPT" {
                        let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
                        self.mark_loaded(generation, sha, false);
                    }
                }
            }
            scripts::Use::Flush if !failed => {
                self.scripts.forget_all();
                self.forget_loaded();
            }
            _ => {}
        }
    }
}
