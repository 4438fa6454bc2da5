//! Policies: what a limit is, parsed from one Spin variable.
//!
//! ```text
//! fixed_window   <limit>/<window>               e.g. fixed_window 5/15m
//! sliding_window <limit>/<window>               e.g. sliding_window 100/60s
//! token_bucket   <refill>/<interval> burst <max> e.g. token_bucket 10/1s burst 50
//! ```
//!
//! Durations are an integer and a unit: `ms`, `s`, `m`, `h` or `d`. Without
//! `burst`, a token bucket holds `<refill>` tokens.

use std::fmt;

/// The longest window, interval, or token-bucket refill from empty: a year.
/// It bounds every TTL a script sets and keeps every number exact in Lua.
pub const MAX_WINDOW_MS: u64 = 365 * 24 * 3600 * 1000;
/// The largest limit, refill or burst.
pub const MAX_LIMIT: u64 = 1_000_000_000;

/// A rate-limiting algorithm with its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// At most `limit` units per aligned window (`floor(now / window)`).
    FixedWindow { limit: u64, window_ms: u64 },
    /// At most `limit` units in any window, estimated from two fixed windows
    /// with @upstash/ratelimit's weighting.
    SlidingWindow { limit: u64, window_ms: u64 },
    /// A bucket of `max` tokens, `refill` more every `interval_ms`.
    TokenBucket { refill: u64, interval_ms: u64, max: u64 },
}

impl Algorithm {
    /// Parses a policy string (see the module docs). The error says what is wrong.
    pub fn parse(spec: &str) -> Result<Algorithm, String> {
        let words: Vec<&str> = spec.split_whitespace().collect();
        let usage = concat!(
            "expected \"<fixed_window|sliding_window|token_bucket> <limit>/<window>[ burst <n>]\", ",
            "e.g. \"sliding_window 100/60s\""
        );
        let (name, rate, rest) = match words.as_slice() {
            [name, rate, rest @ ..] => (*name, *rate, rest),
            _ => return Err(usage.into()),
        };
        let (n, window) = rate.split_once('/').ok_or_else(|| format!("{rate:?}: {usage}"))?;
        let n = parse_count(n, "the limit")?;
        let window_ms = parse_duration(window)?;
        let alg = match (name, rest) {
            ("fixed_window", []) => Algorithm::FixedWindow { limit: n, window_ms },
            ("sliding_window", []) => Algorithm::SlidingWindow { limit: n, window_ms },
            ("token_bucket", []) => Algorithm::TokenBucket { refill: n, interval_ms: window_ms, max: n },
            ("token_bucket", ["burst", max]) => {
                let max = parse_count(max, "the burst")?;
                Algorithm::TokenBucket { refill: n, interval_ms: window_ms, max }
            }
            ("fixed_window" | "sliding_window" | "token_bucket", _) => {
                return Err(format!("unexpected {:?} after {rate:?}: {usage}", rest.join(" ")))
            }
            (other, _) => return Err(format!("unknown algorithm {other:?}: {usage}")),
        };
        if let Algorithm::TokenBucket { refill, interval_ms, max } = alg {
            if max.div_ceil(refill).saturating_mul(interval_ms) > MAX_WINDOW_MS {
                return Err("the bucket would take more than 365 days to refill from empty".into());
            }
        }
        Ok(alg)
    }

    /// The most units one request may cost: the limit, or the bucket size.
    pub fn capacity(&self) -> u64 {
        match *self {
            Algorithm::FixedWindow { limit, .. } | Algorithm::SlidingWindow { limit, .. } => limit,
            Algorithm::TokenBucket { max, .. } => max,
        }
    }

    /// The window a client should read `capacity` against, for the
    /// `RateLimit-Policy` `w` parameter: the window, or for a token bucket the
    /// time it takes to refill from empty.
    pub fn quota_window_ms(&self) -> u64 {
        match *self {
            Algorithm::FixedWindow { window_ms, .. } | Algorithm::SlidingWindow { window_ms, .. } => window_ms,
            Algorithm::TokenBucket { refill, interval_ms, max } => max.div_ceil(refill) * interval_ms,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::FixedWindow { .. } => "fixed_window",
            Algorithm::SlidingWindow { .. } => "sliding_window",
            Algorithm::TokenBucket { .. } => "token_bucket",
        }
    }
}

impl fmt::Display for Algorithm {
    /// The canonical policy string, which [`Algorithm::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Algorithm::FixedWindow { limit, window_ms } | Algorithm::SlidingWindow { limit, window_ms } => {
                write!(f, "{} {limit}/{}", self.name(), Duration(window_ms))
            }
            Algorithm::TokenBucket { refill, interval_ms, max } => {
                write!(f, "token_bucket {refill}/{} burst {max}", Duration(interval_ms))
            }
        }
    }
}

struct Duration(u64);

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1000, "s")];
        match units.iter().find(|(ms, _)| self.0.is_multiple_of(*ms)) {
            Some((ms, unit)) => write!(f, "{}{unit}", self.0 / ms),
            None => write!(f, "{}ms", self.0),
        }
    }
}

fn parse_count(s: &str, what: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) && s.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!("{what} must be an integer in 1..={MAX_LIMIT}, got {s:?}")),
    }
}

/// `500ms`, `60s`, `15m`, `1h`, `7d` (the grammar of every duration setting,
/// [`crate::config::parse_duration`]), with a message when it is not one.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    crate::config::parse_duration(s).ok_or_else(|| {
        format!("{s:?} is not a duration between 1ms and 365d: use an integer and ms, s, m, h or d, e.g. 60s")
    })
}

/// What to do when Redis cannot be reached or answers an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureMode {
    /// Serve the request, unenforced, and say so in `RateLimit-Status: not-enforced`.
    Open,
    /// Refuse the request with 503 `redis-unavailable`.
    Closed,
}

impl FailureMode {
    pub fn parse(s: &str) -> Result<FailureMode, String> {
        match s.trim() {
            "fail_open" => Ok(FailureMode::Open),
            "fail_closed" => Ok(FailureMode::Closed),
            other => Err(format!("expected fail_open or fail_closed, got {other:?}")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailureMode::Open => "fail_open",
            FailureMode::Closed => "fail_closed",
        }
    }
}

/// A named policy: the name is the `RateLimit-Policy` item and a segment of
/// every key, so two policies never share counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub algorithm: Algorithm,
    pub failure: FailureMode,
}

impl Policy {
    /// `name` must be a short token (`[a-z0-9_-]`, 1..=32): it appears in keys and headers.
    pub fn new(name: &str, algorithm: Algorithm, failure: FailureMode) -> Result<Policy, String> {
        let ok = !name.is_empty()
            && name.len() <= 32
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ok {
            return Err(format!("policy name {name:?} must be 1-32 of [a-z0-9_-]"));
        }
        Ok(Policy { name: name.to_owned(), algorithm, failure })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_algorithm_and_prints_it_back() {
        let cases = [
            (
                "sliding_window 100/60s",
                Algorithm::SlidingWindow { limit: 100, window_ms: 60_000 },
                "sliding_window 100/1m",
            ),
            ("fixed_window   5/15m", Algorithm::FixedWindow { limit: 5, window_ms: 900_000 }, "fixed_window 5/15m"),
            (
                "token_bucket 10/1s",
                Algorithm::TokenBucket { refill: 10, interval_ms: 1000, max: 10 },
                "token_bucket 10/1s burst 10",
            ),
            (
                "token_bucket 1/250ms burst 40",
                Algorithm::TokenBucket { refill: 1, interval_ms: 250, max: 40 },
                "token_bucket 1/250ms burst 40",
            ),
            ("fixed_window 1/1d", Algorithm::FixedWindow { limit: 1, window_ms: 86_400_000 }, "fixed_window 1/1d"),
        ];
        for (spec, want, canonical) in cases {
            let got = Algorithm::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(got, want, "{spec}");
            assert_eq!(got.to_string(), canonical);
            assert_eq!(Algorithm::parse(canonical).unwrap(), want);
        }
    }

    #[test]
    fn rejects_bad_policy_strings_with_a_reason() {
        let bad = [
            "",
            "sliding_window",
            "sliding_window 100",
            "sliding_window 100/",
            "sliding_window /60s",
            "sliding_window 0/60s",
            "sliding_window -1/60s",
            "sliding_window +5/60s",
            "sliding_window 1.5/60s",
            "sliding_window 100/60",
            "sliding_window 100/60 s",
            "sliding_window 100/0s",
            "sliding_window 100/366d",
            "sliding_window 100/1y",
            "sliding_window 100/99999999999999999999d",
            "sliding_window 10000000000/60s",
            "sliding_window 100/60s burst 5",
            "fixed_window 5/15m extra",
            "token_bucket 10/1s burst",
            "token_bucket 10/1s burst 0",
            "token_bucket 10/1s bust 5",
            "token_bucket 1/1d burst 1000",
            "Sliding_Window 100/60s",
            "leaky_bucket 100/60s",
            "gcra 10/1s",
            "sliding_window 100/60s\u{0}",
        ];
        for spec in bad {
            let err = Algorithm::parse(spec).expect_err(spec);
            assert!(!err.is_empty(), "{spec}");
        }
        assert!(Algorithm::parse("leaky_bucket 1/1s").unwrap_err().contains("unknown algorithm"));
        assert!(Algorithm::parse("sliding_window 0/1s").unwrap_err().contains("the limit"));
    }

    #[test]
    fn capacity_and_quota_window() {
        let tb = Algorithm::parse("token_bucket 2/1s burst 5").unwrap();
        assert_eq!((tb.capacity(), tb.quota_window_ms()), (5, 3000));
        let sw = Algorithm::parse("sliding_window 100/60s").unwrap();
        assert_eq!((sw.capacity(), sw.quota_window_ms()), (100, 60_000));
    }

    #[test]
    fn failure_modes_and_policy_names() {
        assert_eq!(FailureMode::parse("fail_open"), Ok(FailureMode::Open));
        assert_eq!(FailureMode::parse(" fail_closed "), Ok(FailureMode::Closed));
        assert!(FailureMode::parse("open").is_err());
        let alg = Algorithm::parse("fixed_window 1/1s").unwrap();
        assert!(Policy::new("api", alg, FailureMode::Open).is_ok());
        for bad in ["", "API", "a b", "a:b", "a{b}", &"x".repeat(33)] {
            assert!(Policy::new(bad, alg, FailureMode::Open).is_err(), "{bad}");
        }
    }
}
