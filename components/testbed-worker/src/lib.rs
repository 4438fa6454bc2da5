//! A test-only Redis-trigger component: it records each message it receives
//! in a Redis list, so tests can see that the runner delivered it, and how
//! many deliveries were running at once: `testbed:inflight` counts the
//! handlers running now and `testbed:concurrency` lists that count as each
//! handler saw it on entry. A `slow:<ms>` message holds its handler that
//! long; `fail` makes it return an error.

use spin_sdk::redis::{Connection, RedisParameter as P, RedisResult};
use spin_sdk::redis_component;

#[redis_component]
fn on_message(message: bytes::Bytes) -> anyhow::Result<()> {
    let url = spin_sdk::variables::get("redis_url")?;
    let conn = Connection::open(&url)?;
    let key = |k: &str| P::Binary(k.as_bytes().to_vec());
    let running = match conn.execute("INCR", &[key("testbed:inflight")])?.first() {
        Some(RedisResult::Int64(n)) => *n,
        other => anyhow::bail!("INCR answered {other:?}"),
    };
    conn.execute("RPUSH", &[key("testbed:concurrency"), P::Int64(running)])?;
    if let Some(ms) = message.strip_prefix(b"slow:").and_then(|ms| std::str::from_utf8(ms).ok()?.parse().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    conn.execute("DECR", &[key("testbed:inflight")])?;
    conn.execute("RPUSH", &[key("testbed:received"), P::Binary(message.to_vec())])?;
    if message.as_ref() == b"fail" {
        anyhow::bail!("asked to fail");
    }
    Ok(())
}
