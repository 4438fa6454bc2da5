//! The Upstash REST reply decoder. Mode 0: arbitrary bytes with any HTTP
//! status. Mode 1: a reply made from the bytes, encoded the Upstash way
//! (base64 strings), must decode back equal.
#![no_main]
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value as Json};
use spindle::redis::rest::decode_single;
use spindle::redis::{Reply, Value};
use spindle_fuzz::Bytes;

fuzz_target!(|data: &[u8]| {
    let mut d = Bytes(data);
    match d.byte() % 2 {
        0 => {
            let status = 100 + (u16::from(d.byte()) * 4 + u16::from(d.byte() % 4)) % 500;
            let body = d.rest();
            let r = decode_single(status, body);
            if matches!(status, 401 | 403 | 408 | 429 | 500..=599) {
                assert!(r.is_err(), "HTTP {status} decoded as {r:?}");
            }
            if r.is_ok() {
                let j: Json = serde_json::from_slice(body).unwrap();
                assert!(j.get("result").is_some());
            }
        }
        _ => {
            let mut values = Vec::new();
            while !d.0.is_empty() && values.len() < 16 {
                values.push(match d.byte() % 3 {
                    0 => Value::Nil,
                    1 => Value::Int(i64::from_le_bytes(d.take(8).iter().chain([0u8; 8].iter()).take(8).copied().collect::<Vec<_>>().try_into().unwrap())),
                    _ => {
                        let n = d.byte() as usize % 32;
                        Value::Bytes(d.take(n).to_vec())
                    }
                });
            }
            let enc = |v: &Value| match v {
                Value::Nil => Json::Null,
                Value::Int(n) => json!(n),
                Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
            };
            let want = Reply(values);
            let result = match want.values() {
                [v] => enc(v),
                vs => Json::Array(vs.iter().map(enc).collect()),
            };
            let body = serde_json::to_vec(&json!({ "result": result })).unwrap();
            assert_eq!(decode_single(200, &body), Ok(want));
        }
    }
});
