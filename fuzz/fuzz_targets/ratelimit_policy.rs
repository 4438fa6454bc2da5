//! Rate-limit policy strings: the grammar, Display → parse round trip,
//! and errors that name the problem.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spindle::ratelimit::{parse_duration, Algorithm, FailureMode, MAX_WINDOW_MS};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let got = Algorithm::parse(&s);
    assert_eq!(got.clone().ok(), spindle_fuzz::policy(&s), "{s:?}: {got:?}");
    match got {
        Ok(alg) => {
            let text = alg.to_string();
            assert_eq!(Algorithm::parse(&text), Ok(alg), "{text}");
            assert!(alg.capacity() >= 1 && (1..=MAX_WINDOW_MS).contains(&alg.quota_window_ms()));
        }
        Err(e) => {
            let named = ["expected", "unknown algorithm", "the limit", "the burst", "duration", "window", "unexpected", "365 days"];
            assert!(named.iter().any(|w| e.contains(w)), "{s:?}: vague error {e:?}");
        }
    }
    if let Ok(ms) = parse_duration(&s) {
        assert!((1..=MAX_WINDOW_MS).contains(&ms));
    }
    let _ = FailureMode::parse(&s);
});
