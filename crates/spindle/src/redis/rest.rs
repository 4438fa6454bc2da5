//! The Upstash REST protocol, as pure functions: JSON in, [`Reply`] out.
//!
//! The HTTP exchange itself lives with the transport (`spin::RestLink` in the
//! guest); keeping the codec here makes it testable natively and fuzzable.
//! Requests are JSON arrays of strings; replies are `{"result": …}` or
//! `{"error": "…"}`, with every string base64-encoded because we always send
//! `Upstash-Encoding: base64` (so binary values round-trip exactly).

use super::{Cmd, Error, Reply, Value};
use base64::Engine as _;
use serde_json::Value as Json;

/// The header that asks for base64-encoded strings in replies.
pub const ENCODING_HEADER: (&str, &str) = ("Upstash-Encoding", "base64");

/// Encodes one command as the JSON array Upstash expects.
///
/// JSON strings cannot carry arbitrary bytes, and the REST API has no binary
/// argument encoding, so a non-UTF-8 argument is refused here rather than
/// silently mangled.
pub fn encode_command(cmd: &Cmd) -> Result<Json, Error> {
    let mut out = Vec::with_capacity(cmd.args().len() + 1);
    out.push(Json::String(cmd.name().to_owned()));
    for a in cmd.args() {
        let s = std::str::from_utf8(&a.0).map_err(|_| {
            Error::Config(format!("{}: binary arguments cannot be sent over REST", cmd.name()))
        })?;
        out.push(Json::String(s.to_owned()));
    }
    Ok(Json::Array(out))
}

/// Decodes the body of a single-command reply. `status` is the HTTP status.
pub fn decode_single(status: u16, body: &[u8]) -> Result<Reply, Error> {
    let json: Json = serde_json::from_slice(body).map_err(|e| {
        http_error(status).unwrap_or_else(|| Error::Protocol(format!("REST reply is not JSON: {e}")))
    })?;
    if let Some(e) = http_error(status).filter(|_| json.get("error").is_none()) {
        return Err(e);
    }
    decode_entry(&json, status)
}

/// Maps HTTP statuses that mean "not Redis's answer" to errors.
fn http_error(status: u16) -> Option<Error> {
    match status {
        200..=299 | 400 => None,
        401 | 403 => Some(Error::Config(format!("REST token rejected (HTTP {status})"))),
        408 | 429 | 500..=599 => Some(Error::Unavailable(format!("REST endpoint answered HTTP {status}"))),
        _ => Some(Error::Protocol(format!("REST endpoint answered HTTP {status}"))),
    }
}

fn decode_entry(json: &Json, status: u16) -> Result<Reply, Error> {
    if let Some(err) = json.get("error") {
        let msg = err.as_str().unwrap_or("unknown error").to_owned();
        return Err(match status {
            401 | 403 => Error::Config(msg),
            500..=599 => Error::Unavailable(msg),
            _ => Error::Server(msg),
        });
    }
    let Some(result) = json.get("result") else {
        return Err(Error::Protocol("REST reply has neither result nor error".into()));
    };
    // Upstash leaves a top-level OK status unencoded even in base64 mode.
    if result.as_str() == Some("OK") {
        return Ok(Reply(vec![Value::Bytes(b"OK".to_vec())]));
    }
    let mut values = Vec::new();
    flatten(result, &mut values)?;
    Ok(Reply(values))
}

fn flatten(json: &Json, out: &mut Vec<Value>) -> Result<(), Error> {
    match json {
        Json::Null => out.push(Value::Nil),
        Json::Number(n) => match n.as_i64() {
            Some(i) => out.push(Value::Int(i)),
            None => return Err(Error::Protocol(format!("non-integer number {n} in reply"))),
        },
        Json::String(s) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| Error::Protocol("reply string is not base64".into()))?;
            out.push(Value::Bytes(bytes));
        }
        Json::Array(items) => {
            for item in items {
                flatten(item, out)?;
            }
        }
        Json::Bool(_) | Json::Object(_) => {
            return Err(Error::Protocol("unexpected JSON type in reply".into()))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands_as_string_arrays() {
        let cmd = Cmd::new("SET").arg("k").arg(42i64);
        assert_eq!(encode_command(&cmd).unwrap().to_string(), r#"["SET","k","42"]"#);
        let bin = Cmd::new("SET").arg("k").arg(vec![0xffu8, 0x00]);
        assert!(matches!(encode_command(&bin), Err(Error::Config(_))));
    }

    #[test]
    fn decodes_scalars_arrays_and_errors() {
        // "T0s=" is base64("OK"), "YQ==" is base64("a").
        assert_eq!(decode_single(200, br#"{"result":"T0s="}"#).unwrap(), Reply(vec![Value::Bytes(b"OK".to_vec())]));
        assert_eq!(decode_single(200, br#"{"result":"OK"}"#).unwrap(), Reply(vec![Value::Bytes(b"OK".to_vec())]));
        assert_eq!(decode_single(200, br#"{"result":null}"#).unwrap(), Reply(vec![Value::Nil]));
        assert_eq!(
            decode_single(200, br#"{"result":["YQ==",[1,null]]}"#).unwrap(),
            Reply(vec![Value::Bytes(b"a".to_vec()), Value::Int(1), Value::Nil])
        );
        assert_eq!(decode_single(200, br#"{"result":[]}"#).unwrap(), Reply(vec![]));
        assert_eq!(
            decode_single(400, br#"{"error":"NOSCRIPT No matching script"}"#).unwrap_err(),
            Error::Server("NOSCRIPT No matching script".into())
        );
        assert!(decode_single(401, br#"{"error":"Unauthorized"}"#).unwrap_err().to_string().contains("Unauthorized"));
        assert!(decode_single(502, b"<html>bad gateway</html>").unwrap_err().is_unavailable());
        assert!(matches!(decode_single(200, b"{"), Err(Error::Protocol(_))));
        assert!(matches!(decode_single(200, br#"{"result":"%%%"}"#), Err(Error::Protocol(_))));
    }
}
