//! Structured logs: one JSON object per line on stderr
//! (`{"ts":"2025-01-31T12:00:00.123Z","level":"info","msg":"listening",...}`).
//! stdout carries only the `listening on` line scripts wait for.
//!
//! Callers pass only what is safe to keep: never tokens, keys, values or
//! request paths (the path form carries keys and values), and Redis URLs
//! only through [`redact_url`].

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

#[derive(Clone, Copy, Debug)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// Writes one event. `fields` should be a JSON object; its entries follow
/// `ts`, `level` and `msg`.
pub fn event(level: Level, msg: &str, fields: Value) {
    let level = match level {
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    };
    // Written by hand so that `ts`, `level` and `msg` come first whatever
    // the order of the other keys.
    let quoted = |s: &str| Value::from(s).to_string();
    let mut line = format!(
        "{{\"ts\":{},\"level\":{},\"msg\":{}",
        quoted(&rfc3339(SystemTime::now())),
        quoted(level),
        quoted(msg)
    );
    if let Value::Object(fields) = fields {
        for (key, value) in fields {
            line.push(',');
            line.push_str(&quoted(&key));
            line.push(':');
            line.push_str(&value.to_string());
        }
    }
    line.push_str("}\n");
    // One write per line, so lines from different threads never interleave.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// A Redis URL fit for a log line: the password (if any) becomes `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // userinfo ends at the last '@' before the path.
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    let redacted = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        // `redis://secret@host` is a password alone.
        None => "***".to_owned(),
    };
    format!("{scheme}://{redacted}{}", &rest[at..])
}

/// Formats a time as RFC 3339 UTC with milliseconds.
fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Lets an event that may repeat at request rate (Redis down, saturation)
/// through at most once per `every`, and counts the ones held back, so a
/// flood of failures costs one line a second, not one per request.
pub(crate) struct Throttle {
    every: Duration,
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl Throttle {
    pub(crate) const fn new(every: Duration) -> Self {
        Throttle {
            every,
            last: Mutex::new(None),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when this occurrence should be logged, `n` being how many
    /// were held back since the last one logged; `None` to skip it.
    pub(crate) fn admit(&self) -> Option<u64> {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if last.is_some_and(|l| now.duration_since(l) < self.every) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_123); // leap day
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_735_689_599);
        assert_eq!(rfc3339(t), "2024-12-31T23:59:59.000Z");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            redact_url("rediss://alice:s3cr@t@host:6380/0"),
            "rediss://alice:***@host:6380/0"
        );
        assert_eq!(redact_url("redis://:pw@host"), "redis://:***@host");
        assert_eq!(redact_url("redis://pw@host"), "redis://***@host");
    }

    #[test]
    fn throttles() {
        let t = Throttle::new(Duration::from_secs(3600));
        assert_eq!(t.admit(), Some(0));
        assert_eq!(t.admit(), None);
        assert_eq!(t.admit(), None);
        let t = Throttle::new(Duration::ZERO);
        assert_eq!(t.admit(), Some(0));
        assert_eq!(t.admit(), Some(0));
    }
}
