//! A test-only Redis-trigger component: it records each message it receives
//! in a Redis list, so tests can see that the runner delivered it.

use spin_sdk::redis_component;

#[redis_component]
fn on_message(message: bytes::Bytes) -> anyhow::Result<()> {
    let url = spin_sdk::variables::get("redis_url")?;
    let conn = spin_sdk::redis::Connection::open(&url)?;
    conn.execute(
        "RPUSH",
        &[
            spin_sdk::redis::RedisParameter::Binary(b"testbed:received".to_vec()),
            spin_sdk::redis::RedisParameter::Binary(message.to_vec()),
        ],
    )?;
    if message.as_ref() == b"fail" {
        anyhow::bail!("asked to fail");
    }
    Ok(())
}
