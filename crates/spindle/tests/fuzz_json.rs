//! Property-based fuzzing of JSON request bodies: `Request::json` with its
//! size, media-type and depth limits, and the order-preserving `notify::json::Json`.
//! serde_json is the oracle for well-formed input.
//!
//! Cases per property: `PROPTEST_CASES` (default 256).
//! Deep run: `PROPTEST_CASES=100000 cargo test --profile native -p spindle --test fuzz_json`.

mod oracles;

use oracles::depth;
use proptest::prelude::*;
use serde_json::Value;
use spindle::http::{Request, MAX_JSON_DEPTH};
use spindle::notify::json::Json;

const LIMIT: usize = 64 * 1024;

fn config() -> ProptestConfig {
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

fn req(body: Vec<u8>) -> Request {
    Request {
        method: "POST".into(),
        path: "/x".into(),
        headers: vec![("content-type".into(), b"application/json".to_vec())],
        body,
        ..Default::default()
    }
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Every finite float: the library enables serde_json's `float_roundtrip`
        // (fuzzing found its best-effort parsing 1 ulp off JSON.parse).
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        // Long decimal digit strings, where best-effort float parsing rounds wrongly.
        "[1-9][0-9]{15,60}(\\.[0-9]{1,30})?(e[+-]?[0-9]{1,2})?".prop_map(|t| serde_json::from_str(&t).unwrap()),
        any::<String>().prop_map(Value::String),
        "[\\[\\]{}\"\\\\:,]{0,8}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-z\\[\\]{}\"]{0,6}", inner), 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Wraps a value in `n` levels of arrays or objects.
fn nest(mut v: Value, n: usize, objects: bool) -> Value {
    for _ in 0..n {
        v = if objects { serde_json::json!({ "k": v }) } else { Value::Array(vec![v]) };
    }
    v
}

/// The library's verdict agrees with serde_json plus the documented depth limit.
fn check(body: &[u8]) -> Result<(), TestCaseError> {
    let got = req(body.to_vec()).json::<Value>(LIMIT);
    let oracle = serde_json::from_slice::<Value>(body);
    match (&got, &oracle) {
        (Ok(v), Ok(w)) => {
            prop_assert_eq!(v, w);
            prop_assert!(depth(v) <= MAX_JSON_DEPTH);
        }
        (Ok(v), Err(e)) => prop_assert!(false, "accepted {v:?}, serde_json says {e}"),
        (Err(p), Ok(w)) => {
            prop_assert_eq!(p.status, 400);
            prop_assert!(depth(w) > MAX_JSON_DEPTH, "refused a valid body of depth {}: {}", depth(w), p.detail);
            prop_assert!(p.detail.contains("nested deeper"), "{}", p.detail);
        }
        (Err(p), Err(_)) => {
            prop_assert_eq!(p.status, 400);
            prop_assert_eq!(p.kind, "bad-request");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Random bytes: never a panic, always 400 or agreement with serde_json.
    #[test]
    fn random_bytes(body in prop::collection::vec(any::<u8>(), 0..256)) {
        check(&body)?;
    }

    /// Bytes drawn from JSON's punctuation, where depth counting can go wrong.
    #[test]
    fn json_punctuation(body in "[\\[\\]{}\",:\\\\ 0-9a-z]{0,200}") {
        check(body.as_bytes())?;
    }

    /// Generated values within the limit parse to themselves.
    #[test]
    fn generated_values_round_trip(v in value()) {
        let text = serde_json::to_vec(&v).unwrap();
        prop_assert_eq!(req(text.clone()).json::<Value>(LIMIT), Ok(v.clone()));
        check(&text)?;
        let pretty = serde_json::to_vec_pretty(&v).unwrap();
        check(&pretty)?;
    }

    /// Numbers read as JSON.parse reads them: the correctly rounded double
    /// (Rust's `str::parse::<f64>` is correctly rounded and is the oracle).
    #[test]
    fn numbers_are_correctly_rounded(t in prop_oneof![
        "-?[1-9][0-9]{0,60}(\\.[0-9]{1,30})?([eE][+-]?[0-9]{1,2})?",
        "-?[1-9]\\.[0-9]{1,25}[eE][+-]?(2[0-9]{2}|30[0-7])",
        "-?0\\.[0-9]{1,40}",
    ]) {
        let want = t.parse::<f64>().unwrap();
        prop_assume!(want.is_finite());
        let v: Value = req(t.clone().into_bytes()).json(LIMIT).unwrap();
        let is_int = !t.contains(['.', 'e', 'E']);
        if !(is_int && (v.is_i64() || v.is_u64())) {
            prop_assert_eq!(v.as_f64(), Some(want), "{}", t);
        }
        let j = Json::parse(&t).unwrap();
        let Json::Number(n) = &j else { return Err(TestCaseError::fail("not a number")) };
        if !(is_int && (n.is_i64() || n.is_u64())) {
            prop_assert_eq!(n.as_f64(), Some(want), "{}", t);
        }
    }

    /// Nesting: depth ≤ 32 is accepted, deeper is the documented 400.
    #[test]
    fn depth_limit_is_exact(v in leaf(), n in 0usize..60, objects in any::<bool>()) {
        let nested = nest(v, n, objects);
        let got = req(serde_json::to_vec(&nested).unwrap()).json::<Value>(LIMIT);
        if n <= MAX_JSON_DEPTH {
            prop_assert_eq!(got, Ok(nested));
        } else {
            let p = got.unwrap_err();
            prop_assert_eq!((p.status, p.kind), (400, "bad-request"));
            prop_assert!(p.detail.contains("nested deeper than 32 levels"), "{}", p.detail);
            let body: Value = serde_json::from_slice(&p.to_response().body).unwrap();
            prop_assert_eq!(&body["type"], "urn:spindle:problem:bad-request");
        }
    }

    /// Over the size limit is a 413, whatever the bytes.
    #[test]
    fn size_limit(body in prop::collection::vec(any::<u8>(), 1..64), limit in 0usize..64) {
        let got = req(body.clone()).json::<Value>(limit);
        if body.len() > limit {
            prop_assert_eq!(got.unwrap_err().status, 413);
        }
    }

    /// The order-preserving parser agrees with serde_json and prints text
    /// that reads back as itself.
    #[test]
    fn ordered_json_agrees_with_serde_json(v in value(), raw in "[\\[\\]{}\",:0-9a-z]{0,80}") {
        let text = serde_json::to_string(&v).unwrap();
        for t in [&text, &raw] {
            match (Json::parse(t), serde_json::from_str::<Value>(t)) {
                (Ok(j), Ok(w)) => {
                    let printed = j.to_text();
                    prop_assert_eq!(serde_json::from_str::<Value>(&printed).unwrap(), w);
                    prop_assert_eq!(Json::parse(&printed).unwrap(), j);
                }
                (Err(_), Err(_)) => {}
                (a, b) => prop_assert!(false, "{t:?}: ordered {a:?}, serde_json {b:?}"),
            }
        }
    }
}
