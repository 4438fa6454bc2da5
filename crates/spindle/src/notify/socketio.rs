//! The Socket.IO redis-emitter wire format (@socket.io/redis-emitter, as
//! consumed by @socket.io/redis-adapter): what to PUBLISH, and where, so
//! Socket.IO 4 servers deliver an event to the clients in a room.

use super::json::Json;
use super::msgpack::{write_array_len, write_js, write_json, write_map_len, write_str};
use serde_json::Value;

/// The emitter's uid: adapters ignore packets from their own uid only.
pub const EMITTER_UID: &str = "emitter";
/// Socket.IO packet type EVENT.
const EVENT: i64 = 2;

/// The pub/sub channel for a broadcast to one room of a namespace.
pub use crate::keys::socketio_room as channel;

/// The msgpack payload of `io.of(nsp).to(room).emit(event, ...args)`:
/// `[uid, {type: 2, data: [event, ...args], nsp}, {rooms: [room], flags: {}, except: []}]`.
pub fn packet(nsp: &str, room: &str, event: &str, args: &[Value]) -> Vec<u8> {
    encode(nsp, room, event, args.len(), |out| args.iter().for_each(|a| write_json(out, a)))
}

/// The same packet for a Spindle event: `emit(event, data)`, with `data`
/// encoded as notepack.io encodes `JSON.parse` of it (member order and JS
/// number semantics kept), so the bytes equal @socket.io/redis-emitter's.
pub fn event_packet(nsp: &str, room: &str, event: &str, data: &Json) -> Vec<u8> {
    encode(nsp, room, event, 1, |out| write_js(out, data))
}

fn encode(nsp: &str, room: &str, event: &str, nargs: usize, args: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_array_len(&mut out, 3);
    write_str(&mut out, EMITTER_UID);

    write_map_len(&mut out, 3);
    write_str(&mut out, "type");
    super::msgpack::write_int(&mut out, EVENT);
    write_str(&mut out, "data");
    write_array_len(&mut out, 1 + nargs);
    write_str(&mut out, event);
    args(&mut out);
    write_str(&mut out, "nsp");
    write_str(&mut out, nsp);

    write_map_len(&mut out, 3);
    write_str(&mut out, "rooms");
    write_array_len(&mut out, 1);
    write_str(&mut out, room);
    write_str(&mut out, "flags");
    write_map_len(&mut out, 0);
    write_str(&mut out, "except");
    write_array_len(&mut out, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_redis_emitter_test_vector() {
        // `emitter.to("room1").emit("hello", "world")`
        let hex = "93a7656d697474657283a47479706502a46461746192a568656c6c6fa5776f726c64a36e7370a12f83a5726f6f6d7391a5726f6f6d31a5666c61677380a665786365707490";
        let got: String = packet("/", "room1", "hello", &["world".into()]).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, hex);
        assert_eq!(channel("/", "room1"), "socket.io#/#room1#");
        let data = Json::parse(r#""world""#).unwrap();
        let same: String = event_packet("/", "room1", "hello", &data).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(same, hex);
    }
}
