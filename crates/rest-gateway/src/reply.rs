//! Mapping Redis replies to Upstash's JSON shapes.
//!
//! Serialisation walks the `redis::Value` directly instead of building a
//! `serde_json::Value` first, so a bulk string is copied once, into the
//! response body (plus the base64 text, when asked for).

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use redis::Value;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;

/// How strings in a result are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// UTF-8 text; invalid sequences become U+FFFD, as Upstash documents.
    Text,
    /// `Upstash-Encoding: base64`: every string (bulk and status alike) is
    /// standard base64 with padding, so binary values round-trip exactly;
    /// the one exception, as on Upstash, is a top-level `OK` status.
    Base64,
}

/// The text of a Redis error reply, exactly as Redis sent it
/// (`ERR wrong number of arguments for 'get' command`); `None` for any
/// other value. (redis-rs does not export the error type itself.)
pub(crate) fn error_text(value: &Value) -> Option<String> {
    match value {
        Value::ServerError(err) => Some(match err.details() {
            Some(detail) => format!("{} {}", err.code(), detail),
            None => err.code().to_owned(),
        }),
        _ => None,
    }
}

/// An error reply with this text, as if Redis had sent it (for answers the
/// gateway makes up: a cluster node that answered oddly, …).
pub(crate) fn error_value(text: &str) -> Value {
    let line: String = text
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    // "-<text>\r\n" is always a well-formed error reply.
    redis::parse_redis_value(format!("-{line}\r\n").as_bytes()).unwrap_or(Value::Nil)
}

/// A reply value, serialised as Upstash's `result` field.
pub(crate) struct Encoded<'a> {
    pub value: &'a Value,
    pub encoding: Encoding,
}

impl Encoded<'_> {
    fn nested<'b>(&self, value: &'b Value) -> Encoded<'b> {
        Encoded {
            value,
            encoding: self.encoding,
        }
    }

    fn string<S: Serializer>(&self, bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match self.encoding {
            Encoding::Text => s.serialize_str(&String::from_utf8_lossy(bytes)),
            Encoding::Base64 => s.serialize_str(&STANDARD.encode(bytes)),
        }
    }

    fn array<S: Serializer>(&self, items: &[Value], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(items.len()))?;
        for item in items {
            seq.serialize_element(&self.nested(item))?;
        }
        seq.end()
    }
}

impl Serialize for Encoded<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The gateway speaks RESP2, so only the first six arms occur in
        // practice; the RESP3 ones are folded into their RESP2 shapes so that
        // nothing a server sends can make serialisation fail.
        match self.value {
            Value::Nil => s.serialize_none(),
            Value::Int(i) => s.serialize_i64(*i),
            Value::BulkString(bytes) => self.string(bytes, s),
            Value::SimpleString(text) => self.string(text.as_bytes(), s),
            Value::Okay => self.string(b"OK", s),
            Value::Array(items) | Value::Set(items) => self.array(items, s),
            // An error nested inside a result (a Lua table holding an error
            // reply) has no Upstash shape; keep it distinguishable from data.
            Value::ServerError(_) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("error", &error_text(self.value))?;
                map.end()
            }
            Value::Map(pairs) => {
                let mut seq = s.serialize_seq(Some(pairs.len() * 2))?;
                for (k, v) in pairs {
                    seq.serialize_element(&self.nested(k))?;
                    seq.serialize_element(&self.nested(v))?;
                }
                seq.end()
            }
            Value::Attribute { data, .. } => self.nested(data).serialize(s),
            Value::Double(d) => self.string(d.to_string().as_bytes(), s),
            Value::Boolean(b) => s.serialize_i64(i64::from(*b)),
            Value::VerbatimString { text, .. } => self.string(text.as_bytes(), s),
            Value::BigNumber(n) => self.string(n.to_string().as_bytes(), s),
            Value::Push { data, .. } => self.array(data, s),
        }
    }
}

/// One entry of a `/pipeline` or `/multi-exec` answer, and the whole body of
/// a single-command answer: `{"result": ...}` or `{"error": "..."}`.
pub(crate) enum Outcome<'a> {
    Reply(&'a Value, Encoding),
    /// Refused by the gateway before reaching Redis.
    Refused(Cow<'a, str>),
}

impl Serialize for Outcome<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        match self {
            // Error strings are never base64-encoded.
            Outcome::Reply(value @ Value::ServerError(_), _) => {
                map.serialize_entry("error", &error_text(value))?
            }
            // Upstash leaves a top-level OK status unencoded even in base64
            // mode, and clients (@upstash/redis) special-case it; so do we.
            Outcome::Reply(Value::Okay, _) => map.serialize_entry("result", "OK")?,
            Outcome::Reply(Value::SimpleString(text), _) if text == "OK" => {
                map.serialize_entry("result", "OK")?
            }
            Outcome::Reply(value, encoding) => map.serialize_entry(
                "result",
                &Encoded {
                    value,
                    encoding: *encoding,
                },
            )?,
            Outcome::Refused(text) => map.serialize_entry("error", text)?,
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(value: &Value, encoding: Encoding) -> String {
        serde_json::to_string(&Outcome::Reply(value, encoding)).unwrap()
    }

    #[test]
    fn maps_resp2_values() {
        let v = Value::Array(vec![
            Value::Nil,
            Value::Int(-3),
            Value::BulkString(b"a\"b".to_vec()),
            Value::Okay,
            Value::Array(vec![Value::SimpleString("QUEUED".into())]),
        ]);
        assert_eq!(
            json(&v, Encoding::Text),
            r#"{"result":[null,-3,"a\"b","OK",["QUEUED"]]}"#
        );
        assert_eq!(
            json(&v, Encoding::Base64),
            r#"{"result":[null,-3,"YSJi","T0s=",["UVVFVUVE"]]}"#
        );
    }

    #[test]
    fn binary_is_lossy_as_text_and_exact_as_base64() {
        let v = Value::BulkString(vec![0xff, 0x00, b'a']);
        assert_eq!(
            json(&v, Encoding::Text),
            "{\"result\":\"\u{fffd}\\u0000a\"}"
        );
        assert_eq!(json(&v, Encoding::Base64), r#"{"result":"/wBh"}"#);
    }

    #[test]
    fn made_up_errors_read_like_redis_ones() {
        let v = error_value("CLUSTERDOWN no master\r\nserves it");
        assert_eq!(error_text(&v).unwrap(), "CLUSTERDOWN no master  serves it");
    }

    #[test]
    fn errors_are_never_encoded() {
        let err =
            redis::parse_redis_value(b"-ERR value is not an integer or out of range\r\n").unwrap();
        assert_eq!(
            json(&err, Encoding::Base64),
            r#"{"error":"ERR value is not an integer or out of range"}"#
        );
    }
}
