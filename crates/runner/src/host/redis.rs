//! `fermyon:spin/redis@2.0.0`, as Spin 4.0.2's factor-outbound-redis does it:
//! - `open` checks the address against `allowed_outbound_hosts` (scheme
//!   `redis`, default port 6379), then dials a new connection (redis-rs's
//!   multiplexed connection): no pool, and no connect or response timeout,
//!   so a Redis that accepts and never answers holds the request as long as
//!   the client waits — exactly what a component would see on Spin;
//! - the typed calls send what redis-rs sends for Spin: `incr` is
//!   `INCRBY key 1`, and only `sadd` reports a wrong-type key as
//!   `type-error` (every other failure is `other` with redis-rs's text);
//! - `execute` flattens nested arrays (and sets) into one list; doubles and
//!   big numbers come back as text, booleans as 0/1; maps, attributes,
//!   verbatim strings and pushes are errors;
//! - a reply larger than 128 MiB is refused, after the fact, as in Spin.
//!
//! `rediss://` is not supported (Spin has TLS through native-tls).

use super::fermyon::spin2_0_0::redis as r;
use super::Ctx;
use ::redis::aio::MultiplexedConnection;
use ::redis::{RedisError, Value};
use wasmtime::component::Resource;

/// Spin's `MAX_HOST_BUFFERED_BYTES`.
const MAX_REPLY_BYTES: usize = 128 << 20;

fn other(e: RedisError) -> r::Error {
    r::Error::Other(e.to_string())
}

fn too_large() -> r::Error {
    r::Error::Other(format!("query result exceeds limit of {MAX_REPLY_BYTES} bytes"))
}

async fn query<T: ::redis::FromRedisValue>(conn: &mut MultiplexedConnection, cmd: &::redis::Cmd) -> Result<T, r::Error> {
    cmd.query_async(conn).await.map_err(other)
}

fn unconvertible(detail: &str) -> Result<(), String> {
    Err(format!("Could not convert Redis response - TypeError: {detail}"))
}

/// Flattens a reply into Spin's list of results; an error is redis-rs's text
/// for the conversion Spin makes.
fn flatten(v: &Value, out: &mut Vec<r::RedisResult>) -> Result<(), String> {
    match v {
        Value::Nil => out.push(r::RedisResult::Nil),
        Value::Int(n) => out.push(r::RedisResult::Int64(*n)),
        Value::BulkString(b) => out.push(r::RedisResult::Binary(b.clone())),
        Value::SimpleString(s) => out.push(r::RedisResult::Status(s.clone())),
        Value::Okay => out.push(r::RedisResult::Status("OK".into())),
        Value::Array(items) | Value::Set(items) => {
            for i in items {
                flatten(i, out)?;
            }
        }
        Value::Double(d) => out.push(r::RedisResult::Binary(d.to_string().into_bytes())),
        Value::Boolean(b) => out.push(r::RedisResult::Int64(i64::from(*b))),
        Value::BigNumber(n) => out.push(r::RedisResult::Binary(n.to_string().into_bytes())),
        Value::Map(_) => return unconvertible("Redis Map type is not supported"),
        Value::Attribute { .. } => return unconvertible("Redis Attribute type is not supported"),
        Value::VerbatimString { .. } => return unconvertible("Redis string with format attribute is not supported"),
        Value::Push { .. } => return unconvertible("Redis Pub/Sub types are not supported"),
        Value::ServerError(e) => return Err(format!("Server error - ResponseError: {e:?}")),
    }
    Ok(())
}

fn result_size(r: &r::RedisResult) -> usize {
    std::mem::size_of::<r::RedisResult>()
        + match r {
            r::RedisResult::Nil | r::RedisResult::Int64(_) => 0,
            r::RedisResult::Binary(b) => b.len(),
            r::RedisResult::Status(s) => s.len(),
        }
}

impl r::Host for Ctx {}

impl r::HostConnection for Ctx {
    async fn open(&mut self, address: String) -> wasmtime::Result<Result<Resource<MultiplexedConnection>, r::Error>> {
        if !self.env.allowed.check_url(&address, "redis") {
            return Ok(Err(r::Error::InvalidAddress));
        }
        let Ok(client) = ::redis::Client::open(address.as_str()) else {
            return Ok(Err(r::Error::InvalidAddress));
        };
        match client.get_multiplexed_async_connection_with_config(&::redis::AsyncConnectionConfig::new()).await {
            Ok(conn) => Ok(Ok(self.table.push(conn)?)),
            Err(e) => Ok(Err(other(e))),
        }
    }

    async fn publish(&mut self, c: Resource<MultiplexedConnection>, channel: String, payload: Vec<u8>) -> wasmtime::Result<Result<(), r::Error>> {
        let conn = self.table.get_mut(&c)?;
        Ok(query::<()>(conn, ::redis::cmd("PUBLISH").arg(channel).arg(payload)).await)
    }

    async fn get(&mut self, c: Resource<MultiplexedConnection>, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, r::Error>> {
        let conn = self.table.get_mut(&c)?;
        Ok(query::<Option<Vec<u8>>>(conn, ::redis::cmd("GET").arg(key)).await.and_then(|v| {
            match std::mem::size_of::<Option<Vec<u8>>>() + v.as_ref().map_or(0, Vec::len) > MAX_REPLY_BYTES {
                true => Err(too_large()),
                false => Ok(v),
            }
        }))
    }

    async fn set(&mut self, c: Resource<MultiplexedConnection>, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), r::Error>> {
        let conn = self.table.get_mut(&c)?;
        Ok(query::<()>(conn, ::redis::cmd("SET").arg(key).arg(value)).await)
    }

    async fn incr(&mut self, c: Resource<MultiplexedConnection>, key: String) -> wasmtime::Result<Result<i64, r::Error>> {
        let conn = self.table.get_mut(&c)?;
        Ok(query(conn, ::redis::cmd("INCRBY").arg(key).arg(1)).await)
    }

    async fn del(&mut self, c: Resource<MultiplexedConnection>, keys: Vec<String>) -> wasmtime::Result<Result<u32, r::Error>> {
        let conn = self.table.get_mut(&c)?;
        Ok(query(conn, ::redis::cmd("DEL").arg(keys)).await)
    }

    async fn sadd(&mut self, c: Resource<MultiplexedConnection>, key: String, values: Vec<String>) -> wasmtime::Result<Result<u32, r::Error>> {
        let conn = self.table.get_mut(&c)?;
        Ok(::redis::cmd("SADD").arg(key).arg(values).query_async(conn).await.map_err(|e| match e.kind() {
            ::redis::ErrorKind::TypeError => r::Error::TypeError,
            _ => other(e),
        }))
    }

    async fn smembers(&mut self, c: Resource<MultiplexedConnection>, key: String) -> wasmtime::Result<Result<Vec<String>, r::Error>> {
        let conn = self.table.get_mut(&c)?;
        Ok(query(conn, ::redis::cmd("SMEMBERS").arg(key)).await)
    }

    async fn srem(&mut self, c: Resource<MultiplexedConnection>, key: String, values: Vec<String>) -> wasmtime::Result<Result<u32, r::Error>> {
        let conn = self.table.get_mut(&c)?;
        Ok(query(conn, ::redis::cmd("SREM").arg(key).arg(values)).await)
    }

    async fn execute(
        &mut self,
        c: Resource<MultiplexedConnection>,
        command: String,
        arguments: Vec<r::RedisParameter>,
    ) -> wasmtime::Result<Result<Vec<r::RedisResult>, r::Error>> {
        let conn = self.table.get_mut(&c)?;
        let mut cmd = ::redis::cmd(&command);
        for a in arguments {
            match a {
                r::RedisParameter::Int64(n) => cmd.arg(n),
                r::RedisParameter::Binary(b) => cmd.arg(b),
            };
        }
        let value: Value = match query(conn, &cmd).await {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let mut out = Vec::new();
        if let Err(e) = flatten(&value, &mut out) {
            return Ok(Err(r::Error::Other(e)));
        }
        if std::mem::size_of::<Vec<r::RedisResult>>() + out.iter().map(result_size).sum::<usize>() > MAX_REPLY_BYTES {
            return Ok(Err(too_large()));
        }
        Ok(Ok(out))
    }

    async fn drop(&mut self, c: Resource<MultiplexedConnection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(v: Value) -> Result<Vec<r::RedisResult>, String> {
        let mut out = Vec::new();
        flatten(&v, &mut out).map(|_| out)
    }

    #[test]
    fn replies_flatten_as_in_spin() {
        use r::RedisResult as R;
        let nested = Value::Array(vec![
            Value::Int(1),
            Value::Array(vec![Value::BulkString(b"a".to_vec()), Value::Nil]),
            Value::Set(vec![Value::SimpleString("s".into())]),
            Value::Okay,
        ]);
        let want = [R::Int64(1), R::Binary(b"a".to_vec()), R::Nil, R::Status("s".into()), R::Status("OK".into())];
        assert_eq!(format!("{:?}", flat(nested).unwrap()), format!("{want:?}"));
        assert_eq!(format!("{:?}", flat(Value::Double(1.5)).unwrap()), format!("{:?}", [R::Binary(b"1.5".to_vec())]));
        assert_eq!(format!("{:?}", flat(Value::Boolean(true)).unwrap()), format!("{:?}", [R::Int64(1)]));
        assert!(flat(Value::Map(vec![(Value::Int(1), Value::Int(2))])).unwrap_err().contains("Map"));
        assert!(flat(Value::Array(vec![Value::Int(1), Value::Map(vec![])])).is_err(), "a map anywhere fails the reply");
    }
}
