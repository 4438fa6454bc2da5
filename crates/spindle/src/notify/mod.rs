//! Fan-out notifications: Redis Streams + pub/sub, and the Socket.IO
//! redis-emitter wire format. (Being built: see the notify issue; the
//! emitter encoding is here already.)

pub mod msgpack;
pub mod socketio;

/// The Lua scripts of this module, by name, for the golden tests.
pub const SCRIPT_SOURCES: &[(&str, &str)] = &[];
