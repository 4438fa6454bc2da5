//! Spindle: shared state for stateless Spin components, kept in Redis.
//!
//! All logic lives here and is plain Rust: it reaches the outside world only
//! through two narrow seams, a [`redis::Link`] and the clock/randomness in
//! [`env`], so the same code runs in the WebAssembly guest and in native tests.
//! The `spin` feature adds the guest adapters (Spin outbound Redis, outbound
//! HTTP, variables); the `native` feature adds a `redis`-crate link for tests.

pub mod app;
pub mod cache;
pub mod caller;
pub mod config;
pub mod env;
pub mod http;
pub mod notify;
pub mod ratelimit;
pub mod redis;
pub mod session;
pub mod users;

/// Every Lua script the library sends, by name. The golden tests run each
/// one over every transport and compare the replies.
pub fn all_scripts() -> Vec<(&'static str, &'static str)> {
    let mut all = Vec::new();
    all.extend_from_slice(session::SCRIPT_SOURCES);
    all.extend_from_slice(ratelimit::SCRIPT_SOURCES);
    all.extend_from_slice(notify::SCRIPT_SOURCES);
    all.extend_from_slice(cache::SCRIPT_SOURCES);
    all
}

#[cfg(feature = "spin")]
pub mod spin;
