//! A pool of Redis connections shared by all requests.
//!
//! Spin dials a new connection per `open`; the runner keeps idle connections
//! and hands one to each `open` exclusively until the guest drops it, so a
//! blocking command (XREAD BLOCK) only ever blocks its own request. What the
//! component sees is the same: a fresh, private connection.

use redis::aio::MultiplexedConnection;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How long `open` may take to dial Redis before it fails.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_IDLE_PER_ADDRESS: usize = 64;

pub struct Pooled {
    address: String,
    conn: MultiplexedConnection,
    broken: bool,
    /// Taken from the idle list and not yet used by this request: if it
    /// turns out dead (Redis restarted while it idled), the command never
    /// reached a live server, so redialling once is safe and is what a
    /// fresh Spin connection would have done.
    stale_candidate: bool,
}

fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_unrecoverable_error()
}

async fn dial(address: &str) -> redis::RedisResult<MultiplexedConnection> {
    let client = redis::Client::open(address)?;
    let config = redis::AsyncConnectionConfig::new().set_connection_timeout(CONNECT_TIMEOUT);
    client.get_multiplexed_async_connection_with_config(&config).await
}

impl Pooled {
    pub async fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        let mut r = cmd.query_async(&mut self.conn).await;
        if std::mem::take(&mut self.stale_candidate) && r.as_ref().is_err_and(is_connection_error) {
            match dial(&self.address).await {
                Ok(conn) => {
                    self.conn = conn;
                    r = cmd.query_async(&mut self.conn).await;
                }
                Err(e) => r = Err(e),
            }
        }
        if r.as_ref().is_err_and(|e| is_connection_error(e) || e.is_timeout()) {
            self.broken = true;
        }
        r
    }
}

#[derive(Default)]
pub struct RedisPool {
    idle: Mutex<HashMap<String, Vec<MultiplexedConnection>>>,
}

impl RedisPool {
    pub async fn checkout(&self, address: &str) -> redis::RedisResult<Pooled> {
        let idle = self.idle.lock().unwrap().get_mut(address).and_then(Vec::pop);
        let (conn, stale_candidate) = match idle {
            Some(c) => (c, true),
            None => (dial(address).await?, false),
        };
        Ok(Pooled { address: address.to_owned(), conn, broken: false, stale_candidate })
    }

    pub fn checkin(&self, p: Pooled) {
        let mut idle = self.idle.lock().unwrap();
        if p.broken {
            // Its siblings most likely died with it (Redis restarted): drop them
            // too, rather than fail one request per stale connection.
            idle.remove(&p.address);
            return;
        }
        let list = idle.entry(p.address).or_default();
        if list.len() < MAX_IDLE_PER_ADDRESS {
            list.push(p.conn);
        }
    }

}
