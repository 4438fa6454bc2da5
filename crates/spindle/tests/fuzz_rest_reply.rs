//! Property-based fuzzing of the Upstash REST reply decoder
//! (`redis::rest::decode_single`) and the command encoder.
//!
//! Cases per property: `PROPTEST_CASES` (default 256).
//! Deep run: `PROPTEST_CASES=100000 cargo test --profile native -p spindle --test fuzz_rest_reply`.

use base64::Engine as _;
use proptest::prelude::*;
use serde_json::{json, Value as Json};
use spindle::redis::rest::{decode_single, encode_command};
use spindle::redis::{Cmd, Error, Reply, Value};

fn config() -> ProptestConfig {
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Nil),
        any::<i64>().prop_map(Value::Int),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
        Just(Value::Bytes(b"OK".to_vec())),
    ]
}

/// A reply, and how Upstash might nest it: every value either alone or in
/// sub-arrays (the decoder flattens).
fn reply() -> impl Strategy<Value = Reply> {
    prop::collection::vec(value(), 0..8).prop_map(Reply)
}

fn encode_value(v: &Value) -> Json {
    match v {
        Value::Nil => Json::Null,
        Value::Int(n) => json!(n),
        Value::Bytes(b) => Json::String(b64(b)),
    }
}

/// Upstash's encoding of a reply: a scalar for one value (sometimes), an
/// array otherwise, optionally nested in groups.
fn encode_reply(r: &Reply, scalar: bool, group: usize) -> Json {
    match r.values() {
        [v] if scalar => encode_value(v),
        vs if group > 1 => Json::Array(vs.chunks(group).map(|c| Json::Array(c.iter().map(encode_value).collect())).collect()),
        vs => Json::Array(vs.iter().map(encode_value).collect()),
    }
}

fn arbitrary_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Json::Number)),
        any::<String>().prop_map(Json::String),
        "[A-Za-z0-9+/=]{0,12}".prop_map(Json::String),
        Just(Json::String("OK".into())),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Json::Array),
            prop::collection::vec((prop_oneof![Just("result".to_string()), Just("error".to_string()), "[a-z]{0,6}".prop_map(|s| s)], inner), 0..3)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![Just(200u16), Just(400), Just(401), Just(403), Just(429), Just(500), Just(502), 100u16..600]
}

proptest! {
    #![proptest_config(config())]

    /// Random bytes, any status: an error or a reply, never a panic.
    #[test]
    fn random_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..200), status in status()) {
        let _ = decode_single(status, &body);
    }

    /// Arbitrary JSON: never a panic; HTTP failure statuses are never taken for a reply.
    #[test]
    fn arbitrary_json_never_panics(j in arbitrary_json(), status in status()) {
        let body = serde_json::to_vec(&j).unwrap();
        let single = decode_single(status, &body);
        if matches!(status, 401 | 403 | 408 | 429 | 500..=599) {
            prop_assert!(single.is_err(), "HTTP {status} decoded as {single:?}");
        }
        if let Ok(r) = &single {
            // A reply needs a "result" member.
            prop_assert!(j.get("result").is_some(), "{j} decoded as {r:?}");
        }
        let wrapped = serde_json::to_vec(&json!({ "result": j })).unwrap();
        let _ = decode_single(status, &wrapped);
    }

    /// Generated replies, encoded as Upstash does (base64 strings), decode back equal.
    #[test]
    fn encoded_replies_decode_back(r in reply(), scalar in any::<bool>(), group in 1usize..4, status in prop_oneof![Just(200u16), 201u16..300]) {
        let body = serde_json::to_vec(&json!({ "result": encode_reply(&r, scalar, group) })).unwrap();
        prop_assert_eq!(decode_single(status, &body), Ok(r.clone()));
    }

    /// Error replies carry their message, classed by the HTTP status.
    #[test]
    fn error_replies(msg in any::<String>(), status in prop_oneof![Just(200u16), Just(400)]) {
        let body = serde_json::to_vec(&json!({ "error": msg })).unwrap();
        prop_assert_eq!(decode_single(status, &body), Err(Error::Server(msg)));
    }

    /// Commands encode to JSON string arrays; binary arguments are refused, not mangled.
    #[test]
    fn commands_encode(name in "[A-Z]{1,8}", args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 0..5)) {
        let cmd = args.iter().fold(Cmd::new(&name), |c, a| c.arg(a.clone()));
        match encode_command(&cmd) {
            Ok(Json::Array(items)) => {
                prop_assert_eq!(items.len(), args.len() + 1);
                prop_assert_eq!(&items[0], &Json::String(name));
                for (j, a) in items[1..].iter().zip(&args) {
                    prop_assert_eq!(j.as_str().map(str::as_bytes), Some(a.as_slice()));
                }
            }
            Ok(other) => prop_assert!(false, "not an array: {other}"),
            Err(e) => {
                prop_assert!(matches!(e, Error::Config(_)));
                prop_assert!(args.iter().any(|a| std::str::from_utf8(a).is_err()));
            }
        }
    }
}
