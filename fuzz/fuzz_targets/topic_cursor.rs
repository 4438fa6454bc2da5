//! notify topics, cursors, and the query decoding they arrive through.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spindle::http::{percent_decode, Request};
use spindle::notify::{parse_cursor, Topic};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let s = s.as_ref();
    let t = Topic::parse(s);
    assert_eq!(t.is_ok(), spindle_fuzz::topic_ok(s), "{s:?}: {t:?}");
    if let Ok(t) = t {
        assert_eq!(t.as_str(), s);
        assert_eq!(t.owner(), s.strip_prefix("user:").map(|id| id.parse::<i64>().unwrap()));
    }
    match (parse_cursor(s), spindle_fuzz::cursor(s)) {
        (Ok(c), Some((ms, seq))) => {
            assert_eq!(c, format!("{ms}-{seq}"));
            assert_eq!(parse_cursor(&c), Ok(c.clone()));
        }
        (Err(e), None) => assert_eq!(e.to_problem().status, 400),
        (got, want) => panic!("{s:?}: parsed {got:?}, grammar {want:?}"),
    }
    assert_eq!(percent_decode(s), spindle_fuzz::form_decode(s), "{s:?}");
    let r = Request { query: s.to_owned(), ..Default::default() };
    for k in ["topic", "after", "wait_ms"] {
        let _ = r.query_param(k);
    }
});
