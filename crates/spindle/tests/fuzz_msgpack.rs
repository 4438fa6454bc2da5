//! Property-based fuzzing of the MessagePack encoder (`notify::msgpack`),
//! with an independent decoder, the `rmpv` crate, as the oracle: whatever
//! the library writes must decode to the value it was given.
//!
//! Cases per property: `PROPTEST_CASES` (default 256).
//! Deep run: `PROPTEST_CASES=100000 cargo test --profile native -p spindle --test fuzz_msgpack`.

use proptest::prelude::*;
use rmpv::Value as Mp;
use serde_json::Value;
use spindle::notify::json::Json;
use spindle::notify::msgpack;

fn config() -> ProptestConfig {
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

/// Decodes exactly one value and insists that nothing is left over.
fn decode(bytes: &[u8]) -> Result<Mp, String> {
    let mut rd = bytes;
    let v = rmpv::decode::read_value(&mut rd).map_err(|e| format!("{e}: {bytes:02x?}"))?;
    if !rd.is_empty() {
        return Err(format!("{} trailing bytes after {v}", rd.len()));
    }
    Ok(v)
}

/// What a serde_json value must decode to.
fn expected(v: &Value) -> Mp {
    match v {
        Value::Null => Mp::Nil,
        Value::Bool(b) => Mp::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Mp::from(i),
            (None, Some(u)) => Mp::from(u),
            _ => Mp::F64(n.as_f64().unwrap()),
        },
        Value::String(s) => Mp::from(s.as_str()),
        Value::Array(a) => Mp::Array(a.iter().map(expected).collect()),
        Value::Object(m) => Mp::Map(m.iter().map(|(k, v)| (Mp::from(k.as_str()), expected(v))).collect()),
    }
}

/// What notepack.io makes of a JS number: integral values as integers
/// (exact below 2^63 in magnitude), others as float64.
fn expected_js_number(f: f64) -> Option<Mp> {
    if f.fract() != 0.0 || !f.is_finite() {
        return Some(Mp::F64(f));
    }
    if f >= 0.0 && f < 18_446_744_073_709_551_616.0 {
        return Some(Mp::from(f as u64));
    }
    if f < 0.0 && f >= -9_223_372_036_854_775_808.0 {
        return Some(Mp::from(f as i64));
    }
    None // beyond 64 bits: notepack wraps around; no integer meaning to compare
}

/// Integers compare by value whichever width the encoder chose.
fn same(a: &Mp, b: &Mp) -> bool {
    match (a, b) {
        (Mp::Integer(x), Mp::Integer(y)) => x.as_i64() == y.as_i64() && x.as_u64() == y.as_u64(),
        (Mp::F64(x), Mp::F64(y)) => x.to_bits() == y.to_bits(),
        (Mp::Array(x), Mp::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Mp::Map(x), Mp::Map(y)) => x.len() == y.len() && x.iter().zip(y).all(|((k1, v1), (k2, v2))| same(k1, k2) && same(v1, v2)),
        _ => a == b,
    }
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![-40i64..300, -70_000i64..70_000, -5_000_000_000i64..5_000_000_000].prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        any::<String>().prop_map(Value::String),
        (0usize..70_000).prop_map(|n| Value::String("é".repeat(n / 2))),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 20, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..20).prop_map(Value::Array),
            prop::collection::vec(("[a-z0-9]{0,4}|.{0,40}", inner), 0..20).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Writes the same shape as `v` as JSON text with numbers as the JS side
/// would see them (so `write_js` gets integral floats like `1.0`, `1e2`).
fn js_number_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 { format!("{f:.1}") } else { format!("{f:e}") }
}

proptest! {
    #![proptest_config(config())]

    /// write_json: every value decodes back equal (integers by value).
    #[test]
    fn write_json_decodes_back(v in value()) {
        let mut out = Vec::new();
        msgpack::write_json(&mut out, &v);
        let got = decode(&out).map_err(TestCaseError::fail)?;
        let want = expected(&v);
        prop_assert!(same(&got, &want), "{v}\n got {got}\nwant {want}");
    }

    /// Integers take the smallest encoding, as notepack.io does.
    #[test]
    fn integers_use_the_smallest_encoding(n in prop_oneof![any::<i64>(), -40i64..300, -70_000i64..70_000]) {
        let mut out = Vec::new();
        msgpack::write_int(&mut out, n);
        let got = decode(&out).map_err(TestCaseError::fail)?;
        prop_assert_eq!(got.as_i64(), Some(n));
        let len = match n {
            -32..=127 => 1,
            -128..=255 => 2,
            -32768..=65535 => 3,
            -2147483648..=4294967295 => 5,
            _ => 9,
        };
        prop_assert_eq!(out.len(), len, "{} as {:02x?}", n, out);
    }

    /// Strings and container headers of every length class.
    #[test]
    fn lengths(n in prop_oneof![0usize..40, 250usize..260, 65530usize..65540, 0usize..70_000]) {
        let s = "x".repeat(n);
        let mut out = Vec::new();
        msgpack::write_str(&mut out, &s);
        prop_assert_eq!(decode(&out).map_err(TestCaseError::fail)?, Mp::from(s.as_str()));
        let mut arr = Vec::new();
        msgpack::write_array_len(&mut arr, n);
        for _ in 0..n { msgpack::write_nil(&mut arr); }
        prop_assert_eq!(decode(&arr).map_err(TestCaseError::fail)?, Mp::Array(vec![Mp::Nil; n]));
        let mut map = Vec::new();
        msgpack::write_map_len(&mut map, n);
        for _ in 0..n { msgpack::write_nil(&mut map); msgpack::write_bool(&mut map, true); }
        prop_assert_eq!(decode(&map).map_err(TestCaseError::fail)?.as_map().map(Vec::len), Some(n));
    }

    /// write_js_number: JS numbers, integral ones as integers of equal value.
    #[test]
    fn js_numbers(f in prop_oneof![
        any::<f64>(),
        any::<i64>().prop_map(|n| n as f64),
        any::<u64>().prop_map(|n| n as f64),
        (-5_000_000_000i64..5_000_000_000).prop_map(|n| n as f64),
        (-1e20f64..1e20).prop_map(f64::trunc),
    ]) {
        let mut out = Vec::new();
        msgpack::write_js_number(&mut out, f);
        let got = decode(&out).map_err(TestCaseError::fail)?;
        if let Some(want) = expected_js_number(f) {
            prop_assert!(same(&got, &want) || (f == 0.0 && got.as_u64() == Some(0)), "{f:?}: got {got}, want {want}");
        } else {
            prop_assert!(got.is_i64() || got.is_u64(), "{f:?} → {got}");
        }
    }

    /// write_js over order-preserving JSON: decodes to the same values, with
    /// members in Object.keys order (array-index keys ascending, then the rest).
    #[test]
    fn write_js_decodes_back(v in value()) {
        let text = v.to_string();
        let j = Json::parse(&text).map_err(TestCaseError::fail)?;
        let mut out = Vec::new();
        msgpack::write_js(&mut out, &j);
        let got = decode(&out).map_err(TestCaseError::fail)?;
        prop_assert!(js_same(&j, &got), "{text}\n got {got}");
        // Integral numbers written as floats in the text encode the same.
        if let Value::Number(n) = &v {
            if let Some(f) = n.as_f64() {
                let j2 = Json::parse(&js_number_text(f)).map_err(TestCaseError::fail)?;
                let Json::Number(n2) = &j2 else { return Err(TestCaseError::fail("not a number")) };
                prop_assert_eq!(n2.as_f64(), Some(f), "{} read back", js_number_text(f));
                let mut out2 = Vec::new();
                msgpack::write_js(&mut out2, &j2);
                let mut out3 = Vec::new();
                msgpack::write_js_number(&mut out3, f);
                prop_assert_eq!(out2, out3);
            }
        }
    }

    /// Random bytes decoded by rmpv never make the encoder disagree: any
    /// msgpack value that is JSON-representable re-encodes to a value equal to it.
    #[test]
    fn reencode_decoded_values(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut rd = bytes.as_slice();
        if let Ok(mp) = rmpv::decode::read_value(&mut rd) {
            if let Some(v) = to_json(&mp) {
                let mut out = Vec::new();
                msgpack::write_json(&mut out, &v);
                let back = decode(&out).map_err(TestCaseError::fail)?;
                prop_assert!(same(&back, &expected(&v)));
            }
        }
    }
}

fn array_index(k: &str) -> Option<u32> {
    if k != "0" && (k.starts_with('0') || k.is_empty()) {
        return None;
    }
    k.parse::<u32>().ok().filter(|n| *n < u32::MAX && n.to_string() == k)
}

/// Compares an ordered JSON value with what came back, in Object.keys order.
fn js_same(j: &Json, m: &Mp) -> bool {
    match (j, m) {
        (Json::Null, Mp::Nil) => true,
        (Json::Bool(a), Mp::Boolean(b)) => a == b,
        (Json::Number(n), m) => match expected_js_number(n.as_f64().unwrap()) {
            Some(want) => same(m, &want) || (n.as_f64() == Some(0.0) && m.as_u64() == Some(0)),
            None => m.is_i64() || m.is_u64(),
        },
        (Json::String(s), Mp::String(t)) => t.as_str() == Some(s.as_str()),
        (Json::Array(a), Mp::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| js_same(x, y)),
        (Json::Object(members), Mp::Map(entries)) => {
            let mut idx: Vec<&(String, Json)> = members.iter().filter(|(k, _)| array_index(k).is_some()).collect();
            idx.sort_by_key(|(k, _)| array_index(k).unwrap());
            let order: Vec<&(String, Json)> = idx.into_iter().chain(members.iter().filter(|(k, _)| array_index(k).is_none())).collect();
            order.len() == entries.len()
                && order.iter().zip(entries).all(|((k, v), (mk, mv))| mk.as_str() == Some(k.as_str()) && js_same(v, mv))
        }
        _ => false,
    }
}

fn to_json(m: &Mp) -> Option<Value> {
    Some(match m {
        Mp::Nil => Value::Null,
        Mp::Boolean(b) => Value::Bool(*b),
        Mp::Integer(i) => i.as_i64().map(Value::from).or_else(|| i.as_u64().map(Value::from))?,
        Mp::F64(f) => Value::Number(serde_json::Number::from_f64(*f)?),
        Mp::String(s) => Value::String(s.as_str()?.to_owned()),
        Mp::Array(a) => Value::Array(a.iter().map(to_json).collect::<Option<_>>()?),
        Mp::Map(e) => Value::Object(e.iter().map(|(k, v)| Some((k.as_str()?.to_owned(), to_json(v)?))).collect::<Option<_>>()?),
        _ => return None,
    })
}
