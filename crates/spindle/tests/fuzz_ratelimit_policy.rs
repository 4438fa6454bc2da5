//! Property-based fuzzing of rate-limit policy strings (`Algorithm::parse`),
//! durations and failure modes.
//!
//! Cases per property: `PROPTEST_CASES` (default 256).
//! Deep run: `PROPTEST_CASES=100000 cargo test --profile native -p spindle --test fuzz_ratelimit_policy`.

mod oracles;

use oracles::policy as reference;
use proptest::prelude::*;
use spindle::ratelimit::{parse_duration, Algorithm, FailureMode, MAX_LIMIT, MAX_WINDOW_MS};

fn config() -> ProptestConfig {
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

fn algorithm() -> impl Strategy<Value = Algorithm> {
    let limit = prop_oneof![1u64..=10, 1u64..=MAX_LIMIT];
    let window = prop_oneof![1u64..=5000, 1u64..=MAX_WINDOW_MS, (1u64..=365).prop_map(|d| d * 86_400_000)];
    prop_oneof![
        (limit.clone(), window.clone()).prop_map(|(limit, window_ms)| Algorithm::FixedWindow { limit, window_ms }),
        (limit.clone(), window.clone()).prop_map(|(limit, window_ms)| Algorithm::SlidingWindow { limit, window_ms }),
        (limit.clone(), window, limit).prop_filter_map("refills within a year", |(refill, interval_ms, max)| {
            let ok = (max.div_ceil(refill) as u128) * (interval_ms as u128) <= MAX_WINDOW_MS as u128;
            ok.then_some(Algorithm::TokenBucket { refill, interval_ms, max })
        }),
    ]
}

fn specish() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("fixed_window".to_string()),
        Just("sliding_window".to_string()),
        Just("token_bucket".to_string()),
        "[a-z_]{0,16}",
    ];
    let num = prop_oneof!["[0-9]{1,12}", "[+-]?[0-9]{0,3}", "[0-9]{15,25}", "[0-9.e_]{0,6}"];
    let unit = prop_oneof![Just("ms"), Just("s"), Just("m"), Just("h"), Just("d"), Just(""), Just("y"), Just("S"), Just("sms")];
    let ws = "[ \t\n\u{a0}\u{3000}]{1,3}";
    prop_oneof![
        (name, ws, num.clone(), num.clone(), unit, prop::option::of((ws, "burst|bust|[a-z]{0,5}", num)))
            .prop_map(|(n, w, a, b, u, tail)| {
                let tail = tail.map(|(w2, kw, m)| format!("{w2}{kw}{w2}{m}")).unwrap_or_default();
                format!("{n}{w}{a}/{b}{u}{tail}")
            }),
        any::<String>(),
        "[a-z_ 0-9/]{0,40}",
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Parsing never panics, agrees with the grammar, and a refusal names the problem.
    #[test]
    fn parse_agrees_with_the_grammar(spec in specish()) {
        let got = Algorithm::parse(&spec);
        prop_assert_eq!(got.clone().ok(), reference(&spec), "{:?}: {:?}", spec, got);
        if let Err(e) = got {
            prop_assert!(!e.is_empty());
            let names_it = ["expected", "unknown algorithm", "the limit", "the burst", "duration", "window", "unexpected", "365 days"]
                .iter()
                .any(|w| e.contains(w));
            prop_assert!(names_it, "{spec:?}: vague error {e:?}");
        }
    }

    /// Display → parse is the identity, and the canonical string is stable.
    #[test]
    fn display_parse_round_trip(alg in algorithm()) {
        let text = alg.to_string();
        prop_assert_eq!(Algorithm::parse(&text), Ok(alg), "{}", text);
        prop_assert_eq!(Algorithm::parse(&text).unwrap().to_string(), text.clone());
        // Whatever parses prints canonically and reparses equal.
        prop_assert!(alg.capacity() >= 1 && alg.quota_window_ms() >= 1 && alg.quota_window_ms() <= MAX_WINDOW_MS);
    }

    /// Durations: never a panic; accepted values are within 1 ms ..= 365 d.
    #[test]
    fn durations(s in "[0-9]{0,22}(ms|s|m|h|d|)|.{0,8}") {
        if let Ok(ms) = parse_duration(&s) {
            prop_assert!((1..=MAX_WINDOW_MS).contains(&ms));
        }
    }

    #[test]
    fn failure_modes(s in any::<String>(), pad in "[ \t]{0,2}") {
        let _ = FailureMode::parse(&s);
        for m in [FailureMode::Open, FailureMode::Closed] {
            prop_assert_eq!(FailureMode::parse(&format!("{pad}{}{pad}", m.as_str())), Ok(m));
        }
    }
}
