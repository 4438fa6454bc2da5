//! Property-based fuzzing of notify's topic and cursor parsing, and of the
//! query-string decoding they arrive through (`?topic=…&after=…`).
//!
//! Cases per property: `PROPTEST_CASES` (default 256).
//! Deep run: `PROPTEST_CASES=100000 cargo test --profile native -p spindle --test fuzz_topic_cursor`.

mod oracles;

use oracles::{cursor as cursor_ok, form_decode as reference_form_decode, topic_ok};
use proptest::prelude::*;
use spindle::http::{percent_decode, Request};
use spindle::notify::{parse_cursor, Topic, ZERO_CURSOR};

fn config() -> ProptestConfig {
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

fn topicish() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_.:/-]{0,130}",
        "[uU][sS][eE][rR]:[0-9]{0,21}",
        "user:[0-9a-z:-]{0,6}",
        any::<String>(),
        (0u64..=u64::MAX).prop_map(|n| format!("user:{n}")),
        any::<i64>().prop_map(|n| format!("user:{n}")),
    ]
}

fn cursorish() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{0,22}-[0-9]{0,22}",
        "[ \t]{0,2}[0-9+-]{0,6}[ \t]{0,2}",
        any::<String>(),
        (any::<u64>(), any::<u64>()).prop_map(|(a, b)| format!("{a}-{b}")),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Accepted topics are exactly those of the documented grammar.
    #[test]
    fn topics_follow_the_grammar(s in topicish()) {
        let parsed = Topic::parse(&s);
        prop_assert_eq!(parsed.is_ok(), topic_ok(&s), "{:?}: {:?}", s, parsed);
        if let Ok(t) = parsed {
            prop_assert_eq!(t.as_str(), s.as_str());
            prop_assert_eq!(t.to_string(), s.clone());
            // No brace, space or glob character can reach a key.
            let unsafe_char = s.contains(['{', '}', ' ', '*', '?', '[']);
            prop_assert!(!unsafe_char);
            let owner = s.strip_prefix("user:").map(|id| id.parse::<i64>().unwrap());
            prop_assert_eq!(t.owner(), owner);
            prop_assert_eq!(Topic::parse(t.as_str()), Ok(t.clone()), "reparse");
        } else {
            prop_assert_eq!(parsed.unwrap_err().to_problem().status, 400);
        }
    }

    /// Cursors: accepted exactly per the grammar, printed canonically, and
    /// the printed form parses back to itself.
    #[test]
    fn cursors_round_trip(s in cursorish()) {
        match (parse_cursor(&s), cursor_ok(&s)) {
            (Ok(c), Some((ms, seq))) => {
                prop_assert_eq!(&c, &format!("{ms}-{seq}"));
                prop_assert_eq!(parse_cursor(&c), Ok(c.clone()), "print → parse");
            }
            (Err(e), None) => prop_assert_eq!(e.to_problem().status, 400),
            (got, want) => prop_assert!(false, "{s:?}: parsed {got:?}, grammar says {want:?}"),
        }
    }

    #[test]
    fn cursor_print_parse_identity(ms in any::<u64>(), seq in any::<u64>()) {
        let c = format!("{ms}-{seq}");
        prop_assert_eq!(parse_cursor(&c), Ok(c.clone()));
        prop_assert_eq!(parse_cursor(&format!(" 000{ms}-0{seq}\t")), Ok(c));
    }

    /// Query decoding agrees with an independent form decoder, and a topic
    /// and a cursor survive the round trip through a query string.
    #[test]
    fn query_decoding(raw in "[%0-9a-fA-F+g-z =&-]{0,40}", s in any::<String>(), ms in any::<u64>()) {
        prop_assert_eq!(percent_decode(&raw), reference_form_decode(&raw), "{:?}", raw);
        let enc: String = s.bytes().map(|b| format!("%{b:02X}")).collect();
        prop_assert_eq!(percent_decode(&enc), Some(s.clone()));
        let r = Request { query: format!("x=1&topic={enc}&after={ms}-0"), ..Default::default() };
        prop_assert_eq!(r.query_param("topic"), Some(s.clone()));
        prop_assert_eq!(r.query_param("after").map(|a| parse_cursor(&a)), Some(Ok(format!("{ms}-0"))));
        let _ = Request { query: raw.clone(), ..Default::default() }.query_param("topic");
    }
}

#[test]
fn zero_cursor_is_the_start() {
    assert_eq!(parse_cursor("0").unwrap(), ZERO_CURSOR);
}
