//! JSON request bodies: `Request::json` (size, media type, depth ≤ 32)
//! against serde_json, and the order-preserving `notify::json::Json`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use spindle::http::{Request, MAX_JSON_DEPTH};
use spindle::notify::json::Json;

fuzz_target!(|data: &[u8]| {
    let req = Request {
        method: "POST".into(),
        headers: vec![("content-type".into(), b"application/json".to_vec())],
        body: data.to_vec(),
        ..Default::default()
    };
    let got = req.json::<Value>(1 << 20);
    match (got, serde_json::from_slice::<Value>(data)) {
        (Ok(v), Ok(w)) => {
            assert_eq!(v, w);
            assert!(spindle_fuzz::depth(&v) <= MAX_JSON_DEPTH);
        }
        (Ok(v), Err(e)) => panic!("accepted {v:?}; serde_json: {e}"),
        (Err(p), Ok(w)) => {
            assert_eq!(p.status, 400);
            assert!(spindle_fuzz::depth(&w) > MAX_JSON_DEPTH, "refused depth {}: {}", spindle_fuzz::depth(&w), p.detail);
        }
        (Err(p), Err(_)) => assert_eq!((p.status, p.kind), (400, "bad-request")),
    }
    if let Ok(text) = std::str::from_utf8(data) {
        match (Json::parse(text), serde_json::from_str::<Value>(text)) {
            (Ok(j), Ok(w)) => {
                let printed = j.to_text();
                assert_eq!(serde_json::from_str::<Value>(&printed).unwrap(), w);
                assert_eq!(Json::parse(&printed).unwrap(), j);
            }
            (Err(_), Err(_)) => {}
            (a, b) => panic!("{text:?}: ordered {a:?}, serde_json {b:?}"),
        }
    }
});
