//! The key-value floor of the stacks benchmark (bench/stacks/run.sh, issue
//! 14 item 3): what one read through Spin's key-value API costs, beside the
//! floor's GET over outbound Redis and over REST (bench/floor).
//!
//! - `GET /kv`: `Store::open("default")` and one `get("floor:key")`. With
//!   the runtime config run.sh writes (`[key_value_store.default]`,
//!   `type = "redis"`), Spin's Redis provider answers it over one
//!   `ConnectionManager` per app, kept across requests: a `PING` on each
//!   open and a `GET` of the key as it is, with no prefix.
//!
//! Spin only: spindle-runner has no key-value host (it refuses
//! `key_value_stores`), so this is its own component and manifest, not a
//! route of bench/floor. Errors are 503 with the host's error text.

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;

/// The key the floor's Redis routes read too (bench/stacks/run.sh sets it).
const KEY: &str = "floor:key";

#[http_component]
fn handle(req: Request) -> Response {
    if req.path() != "/kv" {
        return text(404, b"not found".to_vec());
    }
    let read = Store::open("default")
        .map_err(|e| format!("key-value open: {e}"))
        .and_then(|store| store.get(KEY).map_err(|e| format!("key-value get: {e}")));
    match read {
        Ok(value) => text(200, value.unwrap_or_default()),
        Err(e) => text(503, e.into_bytes()),
    }
}

fn text(status: u16, body: Vec<u8>) -> Response {
    Response::builder().status(status).header("content-type", "text/plain").body(body).build()
}
