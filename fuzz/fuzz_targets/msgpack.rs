//! The MessagePack encoder, checked against an independent decoder (rmpv):
//! the input is JSON text; both encodings (serde_json values with
//! `write_json`, order-preserving JSON as JS numbers with `write_js`) must
//! decode to the values they were given.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rmpv::Value as Mp;
use serde_json::Value;
use spindle::notify::json::Json;
use spindle::notify::msgpack;

fn decode(bytes: &[u8]) -> Mp {
    let mut rd = bytes;
    let v = rmpv::decode::read_value(&mut rd).unwrap_or_else(|e| panic!("{e}: {bytes:02x?}"));
    assert!(rd.is_empty(), "trailing bytes after {v}");
    v
}

fn int_eq(m: &Mp, want: &Mp) -> bool {
    match (m, want) {
        (Mp::Integer(a), Mp::Integer(b)) => a.as_i64() == b.as_i64() && a.as_u64() == b.as_u64(),
        (Mp::F64(a), Mp::F64(b)) => a.to_bits() == b.to_bits(),
        _ => false,
    }
}

fn check_json(v: &Value, m: &Mp) {
    match (v, m) {
        (Value::Null, Mp::Nil) => {}
        (Value::Bool(a), Mp::Boolean(b)) => assert_eq!(a, b),
        (Value::Number(n), m) => {
            let want = match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Mp::from(i),
                (None, Some(u)) => Mp::from(u),
                _ => Mp::F64(n.as_f64().unwrap()),
            };
            assert!(int_eq(m, &want), "{n} → {m}");
        }
        (Value::String(s), Mp::String(t)) => assert_eq!(t.as_str(), Some(s.as_str())),
        (Value::Array(a), Mp::Array(b)) => {
            assert_eq!(a.len(), b.len());
            a.iter().zip(b).for_each(|(x, y)| check_json(x, y));
        }
        (Value::Object(o), Mp::Map(e)) => {
            assert_eq!(o.len(), e.len());
            for ((k, v), (mk, mv)) in o.iter().zip(e) {
                assert_eq!(mk.as_str(), Some(k.as_str()));
                check_json(v, mv);
            }
        }
        (v, m) => panic!("{v} encoded as {m}"),
    }
}

fn js_number(f: f64) -> Option<Mp> {
    if f.fract() != 0.0 || !f.is_finite() {
        Some(Mp::F64(f))
    } else if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
        Some(Mp::from(f as u64))
    } else if (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
        Some(Mp::from(f as i64))
    } else {
        None
    }
}

fn array_index(k: &str) -> Option<u32> {
    if k != "0" && (k.starts_with('0') || k.is_empty()) {
        return None;
    }
    k.parse::<u32>().ok().filter(|n| *n < u32::MAX && n.to_string() == k)
}

fn check_js(j: &Json, m: &Mp) {
    match (j, m) {
        (Json::Null, Mp::Nil) => {}
        (Json::Bool(a), Mp::Boolean(b)) => assert_eq!(a, b),
        (Json::Number(n), m) => match js_number(n.as_f64().unwrap()) {
            Some(want) => assert!(int_eq(m, &want), "{n} → {m}, want {want}"),
            None => assert!(m.is_i64() || m.is_u64()),
        },
        (Json::String(s), Mp::String(t)) => assert_eq!(t.as_str(), Some(s.as_str())),
        (Json::Array(a), Mp::Array(b)) => {
            assert_eq!(a.len(), b.len());
            a.iter().zip(b).for_each(|(x, y)| check_js(x, y));
        }
        (Json::Object(members), Mp::Map(e)) => {
            let mut idx: Vec<&(String, Json)> = members.iter().filter(|(k, _)| array_index(k).is_some()).collect();
            idx.sort_by_key(|(k, _)| array_index(k).unwrap());
            let order: Vec<_> = idx.into_iter().chain(members.iter().filter(|(k, _)| array_index(k).is_none())).collect();
            assert_eq!(order.len(), e.len());
            for ((k, v), (mk, mv)) in order.into_iter().zip(e) {
                assert_eq!(mk.as_str(), Some(k.as_str()));
                check_js(v, mv);
            }
        }
        (j, m) => panic!("{j:?} encoded as {m}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        let mut out = Vec::new();
        msgpack::write_json(&mut out, &v);
        check_json(&v, &decode(&out));
    }
    if let Ok(j) = Json::parse(text) {
        let mut out = Vec::new();
        msgpack::write_js(&mut out, &j);
        check_js(&j, &decode(&out));
    }
});
