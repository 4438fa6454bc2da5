//! A link over the `redis` crate, for native tests and tools. Not in the guest.

use super::{Cmd, Error, Link, Reply, Transport, Value};

/// A native link on one multiplexed connection.
#[derive(Clone)]
pub struct NativeLink {
    conn: redis::aio::MultiplexedConnection,
}

impl NativeLink {
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let client = redis::Client::open(url).map_err(|e| Error::Config(e.to_string()))?;
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        Ok(NativeLink { conn })
    }
}

fn to_redis(cmd: &Cmd) -> redis::Cmd {
    let mut c = redis::cmd(cmd.name());
    for a in cmd.args() {
        c.arg(&a.0[..]);
    }
    c
}

fn map_err(e: redis::RedisError) -> Error {
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
        Error::Unavailable(e.to_string())
    } else if let Some(code) = e.code() {
        // Rebuild the wire text ("NOSCRIPT No matching script...") so callers
        // see the same message as on the other transports.
        Error::Server(format!("{code} {}", e.detail().unwrap_or_default()).trim_end().to_owned())
    } else {
        Error::Server(e.to_string())
    }
}

/// Flattens a RESP value the way Spin's outbound Redis does.
pub fn flatten(v: redis::Value, out: &mut Vec<Value>) {
    use redis::Value as R;
    match v {
        R::Nil => out.push(Value::Nil),
        R::Int(n) => out.push(Value::Int(n)),
        R::BulkString(b) => out.push(Value::Bytes(b)),
        R::SimpleString(s) => out.push(Value::Bytes(s.into_bytes())),
        R::Okay => out.push(Value::Bytes(b"OK".to_vec())),
        R::Array(items) | R::Set(items) => items.into_iter().for_each(|i| flatten(i, out)),
        R::Double(d) => out.push(Value::Bytes(d.to_string().into_bytes())),
        R::Boolean(b) => out.push(Value::Int(b as i64)),
        other => out.push(Value::Bytes(format!("{other:?}").into_bytes())),
    }
}

impl Link for NativeLink {
    fn transport(&self) -> Transport {
        Transport::Native
    }

    async fn exec(&self, cmd: &Cmd) -> Result<Reply, Error> {
        let mut conn = self.conn.clone();
        let v: redis::Value = to_redis(cmd).query_async(&mut conn).await.map_err(map_err)?;
        let mut out = Vec::new();
        flatten(v, &mut out);
        Ok(Reply(out))
    }
}
