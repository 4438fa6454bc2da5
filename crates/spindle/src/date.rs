//! The two date formats Spindle speaks: ISO-8601 as JavaScript's
//! `Date.prototype.toJSON` writes it (sessions' stored JSON, API answers,
//! events) and the IMF-fixdate of HTTP (`Set-Cookie: Expires=`). Times are
//! ms since the Unix epoch.

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

struct Parts {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    min: u64,
    sec: u64,
    ms: u64,
    weekday: usize,
}

fn parts(ms: u64) -> Parts {
    let days = (ms / 86_400_000) as i64;
    let rem = ms % 86_400_000;
    let (year, month, day) = civil_from_days(days);
    Parts {
        year,
        month,
        day,
        hour: rem / 3_600_000,
        min: rem / 60_000 % 60,
        sec: rem / 1000 % 60,
        ms: rem % 1000,
        // 1970-01-01 was a Thursday.
        weekday: ((days + 4) % 7) as usize,
    }
}

/// `2024-05-01T12:00:00.000Z`, exactly as `JSON.stringify(new Date(ms))`.
pub fn to_iso(ms: u64) -> String {
    let p = parts(ms);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", p.year, p.month, p.day, p.hour, p.min, p.sec, p.ms)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff]Z` (what `Date.prototype.toJSON` and
/// `to_iso` write). Anything else is `None`: the caller treats the session as
/// invalid rather than guess.
pub fn parse_iso(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let t = s.get(r)?;
        t.bytes().all(|c| c.is_ascii_digit()).then(|| t.parse().ok()).flatten()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let rest = &s[19..];
    let ms = match rest {
        "Z" => 0,
        _ => {
            let frac = rest.strip_prefix('.')?.strip_suffix('Z')?;
            if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            // Milliseconds: the first three digits, right-padded.
            let mut digits = frac.bytes().take(3).map(|c| (c - b'0') as u64).collect::<Vec<_>>();
            digits.resize(3, 0);
            digits[0] * 100 + digits[1] * 10 + digits[2]
        }
    };
    if !(1..=12).contains(&month) || day == 0 || day > 31 || hour > 23 || min > 59 || sec > 59 || year < 1970 {
        return None;
    }
    let days = days_from_civil(year as i64, month as u32, day as u32);
    // Reject dates like 02-31 that the formula would roll over.
    if civil_from_days(days) != (year as i64, month as u32, day as u32) {
        return None;
    }
    Some(days as u64 * 86_400_000 + hour * 3_600_000 + min * 60_000 + sec * 1000 + ms)
}

/// `Thu, 01 Jan 1970 00:00:00 GMT` (RFC 9110 IMF-fixdate), for `Expires=`.
pub fn to_http_date(ms: u64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let p = parts(ms);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[p.weekday],
        p.day,
        MONTHS[(p.month - 1) as usize],
        p.year,
        p.hour,
        p.min,
        p.sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trips_like_javascript() {
        // new Date(0).toJSON(), new Date(1700000000123).toJSON(), a leap day.
        assert_eq!(to_iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(to_iso(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(to_iso(951_782_400_000), "2000-02-29T00:00:00.000Z");
        for ms in [0, 1, 999, 86_399_999, 951_782_400_000, 1_700_000_000_123, 4_102_444_800_000] {
            assert_eq!(parse_iso(&to_iso(ms)), Some(ms), "{ms}");
        }
        assert_eq!(parse_iso("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(parse_iso("2023-11-14T22:13:20.1Z"), Some(1_700_000_000_100));
        for bad in ["", "2023-11-14", "2023-02-30T00:00:00.000Z", "2023-11-14T22:13:20.123", "2023-11-14T22:13:20.Z",
            "2023-11-14T24:00:00.000Z", "+2023-11-14T22:13:20Z", "2023-11-14 22:13:20.123Z", "1969-12-31T23:59:59.999Z"] {
            assert_eq!(parse_iso(bad), None, "{bad}");
        }
    }

    #[test]
    fn http_dates() {
        assert_eq!(to_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(to_http_date(1_700_000_000_123), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(to_http_date(951_782_400_000), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
