//! Sessions in Redis, wire-compatible with express-session + connect-redis.
//! (Being built: see the auth issue.)

/// The Lua scripts of this module, by name, for the golden tests.
pub const SCRIPT_SOURCES: &[(&str, &str)] = &[];
