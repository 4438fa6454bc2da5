//! The gateway's connections to Redis.
//!
//! Single commands and pipelines share one multiplexed connection: Redis is
//! single-threaded, so one well-fed connection already saturates it, and
//! requests pipeline onto it without a pool checkout. `/multi-exec` uses
//! connections of its own (kept in a small idle pool), because a transaction
//! must not share a connection with commands of other requests.
//!
//! Connections are opened lazily and replaced after a connection-level
//! failure, so the gateway starts before Redis does and survives a Redis
//! restart. A failed command is never retried: it may have run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Pipeline, RedisError, Value};

/// Redis could not be reached or did not answer in time: the gateway's
/// fault or the operator's, never the client's (a 503).
#[derive(Debug)]
pub(crate) struct Unavailable(pub String);

impl Unavailable {
    fn from_redis(err: &RedisError) -> Self {
        Unavailable(format!("Redis is unavailable: {err}"))
    }
}

/// How many idle transaction connections are kept for reuse.
const MAX_IDLE_DEDICATED: usize = 4;

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
    dedicated: Mutex<Vec<MultiplexedConnection>>,
}

/// Locks a std mutex, ignoring poisoning: the guarded data is a cache of
/// connections that stays valid whatever a panicking holder was doing.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Link {
    /// Validates the URL; does not connect. `timeout` bounds connecting and,
    /// unless a call asks for longer, waiting for an answer.
    pub(crate) fn new(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let client =
            Client::open(url).map_err(|e| anyhow::anyhow!("invalid Redis URL {url:?}: {e}"))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        Ok(Link {
            client,
            config,
            shared: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            attempts: AtomicU64::new(0),
            last_failure: Mutex::new(None),
            dedicated: Mutex::new(Vec::new()),
        })
    }

    async fn connect(&self) -> Result<MultiplexedConnection, Unavailable> {
        self.client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(|e| Unavailable::from_redis(&e))
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
                return Err(Unavailable(err));
            }
        }
        let result = self.connect().await;
        let generation = self.attempts.fetch_add(1, Ordering::AcqRel) + 1;
        match result {
            Ok(conn) => {
                *lock(&self.last_failure) = None;
                *lock(&self.shared) = Some((generation, conn.clone()));
                Ok((generation, conn))
            }
            Err(err) => {
                *lock(&self.last_failure) = Some((generation, err.0.clone()));
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
        Unavailable::from_redis(err)
    }

    /// Runs one command, waiting at most `timeout` for the answer (each clone
    /// of the shared connection carries its own timeout). A Redis error reply
    /// comes back as `Ok(Value::ServerError)`, not as `Err`: only transport
    /// failures are errors here.
    pub(crate) async fn command(
        &self,
        cmd: &redis::Cmd,
        timeout: Duration,
    ) -> Result<Value, Unavailable> {
        let (generation, mut conn) = self.shared().await?;
        conn.set_response_timeout(timeout);
        conn.send_packed_command(cmd)
            .await
            .map_err(|e| self.on_error(generation, &e))
    }

    /// Sends a pipeline in one round trip and returns one reply per command;
    /// a failing command leaves a `Value::ServerError` in its slot.
    pub(crate) async fn pipeline(
        &self,
        pipe: &Pipeline,
        timeout: Duration,
    ) -> Result<Vec<Value>, Unavailable> {
        let (generation, mut conn) = self.shared().await?;
        conn.set_response_timeout(timeout);
        conn.send_packed_commands(pipe, 0, pipe.len())
            .await
            .map_err(|e| self.on_error(generation, &e))
    }

    /// Sends `pipe`, which the caller has wrapped in MULTI … EXEC, on a
    /// connection used by no one else, and returns every reply (MULTI's,
    /// each QUEUED, EXEC's), so queue-time errors can be reported.
    pub(crate) async fn transaction(
        &self,
        pipe: &Pipeline,
        timeout: Duration,
    ) -> Result<Vec<Value>, Unavailable> {
        let idle = lock(&self.dedicated).pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        conn.set_response_timeout(timeout);
        match conn.send_packed_commands(pipe, 0, pipe.len()).await {
            Ok(replies) => {
                let mut idle = lock(&self.dedicated);
                if idle.len() < MAX_IDLE_DEDICATED {
                    idle.push(conn);
                }
                Ok(replies)
            }
            // After any failure the connection's state is unknown (it may
            // still be inside MULTI): drop it rather than reuse it.
            Err(err) => Err(Unavailable::from_redis(&err)),
        }
    }
}
