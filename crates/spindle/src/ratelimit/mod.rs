//! Distributed rate limiting, keyspace-compatible with @upstash/ratelimit.
//! (Being built: see the api issue.)

/// The Lua scripts of this module, by name, for the golden tests.
pub const SCRIPT_SOURCES: &[(&str, &str)] = &[];
