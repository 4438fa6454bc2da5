//! The session cookie, byte for byte as express-session writes and reads it.
//!
//! Value: `s:<sid>.<base64(HMAC-SHA256(sid, secret)) without '='>`
//! (the `cookie-signature` package), URL-encoded with JavaScript's
//! `encodeURIComponent` on the wire (the `cookie` package's `serialize`).
//! Parsing follows `cookie.parse`: `;`-separated pairs, trimmed values,
//! optional double quotes, percent-decoding when a `%` is present.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Longest cookie value we look at, decoded: `s:` + a 128-character sid +
/// `.` + a 43-character signature, with room to spare. Longer is refused
/// unparsed (it cannot be ours, and HMACing it costs work).
pub const MAX_VALUE_LEN: usize = 256;

/// `cookie-signature`'s `sign(val, secret)`: `val.<base64 HMAC without '='>`.
pub fn sign(val: &str, secret: &str) -> String {
    format!("{val}.{}", signature(val, secret))
}

fn signature(val: &str, secret: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(val.as_bytes());
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(mac.finalize().into_bytes())
}

/// `cookie-signature`'s `unsign`: the value before the last `.` when the
/// signature matches `secret`, compared in constant time.
pub fn unsign<'a>(input: &'a str, secret: &str) -> Option<&'a str> {
    let dot = input.rfind('.')?;
    let (val, sig) = (&input[..dot], &input[dot + 1..]);
    let expected = signature(val, secret);
    bool::from(expected.as_bytes().ct_eq(sig.as_bytes())).then_some(val)
}

/// The signed cookie value for `sid`, before URL encoding: `s:<sid>.<sig>`.
pub fn signed_value(sid: &str, secret: &str) -> String {
    format!("s:{}", sign(sid, secret))
}

/// The value as it goes on the wire (`encodeURIComponent` of [`signed_value`]).
pub fn wire_value(sid: &str, secret: &str) -> String {
    encode_uri_component(&signed_value(sid, secret))
}

/// Why a cookie was not accepted. None of these is the client's secret to
/// know in detail; all of them are a 401.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieError {
    /// Several cookies of that name with different values (a tossed cookie
    /// from a sibling domain, or a stale one from another Path).
    Ambiguous,
    /// Too long, not `s:`-prefixed, or not valid UTF-8.
    Malformed,
    /// The signature matches none of the secrets.
    BadSignature,
}

/// Verifies a decoded cookie value against the secrets, in order. Returns the
/// sid and the index of the secret that verified it (0 is the current one).
pub fn unsign_with(value: &str, secrets: &[String]) -> Result<(String, usize), CookieError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(CookieError::Malformed);
    }
    let signed = value.strip_prefix("s:").ok_or(CookieError::Malformed)?;
    for (i, secret) in secrets.iter().enumerate() {
        if let Some(sid) = unsign(signed, secret) {
            return Ok((sid.to_owned(), i));
        }
    }
    Err(CookieError::BadSignature)
}

/// The value of the cookie `name` across every `Cookie` header of a request.
///
/// `Ok(None)` when there is none. Duplicates with the same value are one
/// cookie; duplicates that differ are [`CookieError::Ambiguous`] — express
/// takes the first, which lets a cookie planted by a sibling subdomain win.
pub fn find<'a>(headers: impl Iterator<Item = &'a [u8]>, name: &str) -> Result<Option<String>, CookieError> {
    let mut found: Option<String> = None;
    for header in headers {
        let Ok(header) = std::str::from_utf8(header) else {
            // A header we cannot read might hold our cookie: refuse, don't guess.
            if contains(header, name.as_bytes()) {
                return Err(CookieError::Malformed);
            }
            continue;
        };
        for pair in header.split(';') {
            let Some((k, v)) = pair.split_once('=') else { continue };
            if k.trim_matches(is_ws) != name {
                continue;
            }
            let mut v = v.trim_matches(is_ws);
            if v.len() > 3 * MAX_VALUE_LEN {
                return Err(CookieError::Malformed);
            }
            if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
                v = &v[1..v.len() - 1];
            }
            let v = if v.contains('%') { decode_uri_component(v).unwrap_or_else(|| v.to_owned()) } else { v.to_owned() };
            match &found {
                Some(prev) if *prev != v => return Err(CookieError::Ambiguous),
                Some(_) => {}
                None => found = Some(v),
            }
        }
    }
    Ok(found)
}

fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// JavaScript's `encodeURIComponent`: everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )`
/// is percent-encoded as UTF-8.
pub fn encode_uri_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// JavaScript's `decodeURIComponent` (no `+` → space, unlike form decoding);
/// `None` on a malformed escape or non-UTF-8 result, as JS would throw.
pub fn decode_uri_component(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_express_session_test_vector() {
        // express-session's own docs and tests: secret "keyboard cat", sid "apple".
        assert_eq!(wire_value("apple", "keyboard cat"), "s%3Aapple.D8Y%2BpkTAmeR0PobOhY4G97PRW%2Bj7bUnP%2F5m6%2FOn1MCU");
        assert_eq!(signed_value("apple", "keyboard cat"), "s:apple.D8Y+pkTAmeR0PobOhY4G97PRW+j7bUnP/5m6/On1MCU");
        let secrets = vec!["keyboard cat".to_string()];
        let decoded = decode_uri_component("s%3Aapple.D8Y%2BpkTAmeR0PobOhY4G97PRW%2Bj7bUnP%2F5m6%2FOn1MCU").unwrap();
        assert_eq!(unsign_with(&decoded, &secrets), Ok(("apple".into(), 0)));
    }

    #[test]
    fn rotation_verifies_with_every_secret_in_order() {
        let secrets = vec!["new secret".to_string(), "old secret".to_string()];
        assert_eq!(unsign_with(&signed_value("sid1", "new secret"), &secrets), Ok(("sid1".into(), 0)));
        assert_eq!(unsign_with(&signed_value("sid1", "old secret"), &secrets), Ok(("sid1".into(), 1)));
        assert_eq!(unsign_with(&signed_value("sid1", "other"), &secrets), Err(CookieError::BadSignature));
    }

    #[test]
    fn tampered_truncated_and_unsigned_values_are_refused() {
        let s = vec!["keyboard cat".to_string()];
        let good = signed_value("apple", "keyboard cat");
        assert!(unsign_with(&good, &s).is_ok());
        assert_eq!(unsign_with("apple", &s), Err(CookieError::Malformed), "unsigned");
        assert_eq!(unsign_with(&good[2..], &s), Err(CookieError::Malformed), "no s: prefix");
        assert_eq!(unsign_with(&good[..good.len() - 1], &s), Err(CookieError::BadSignature), "truncated");
        assert_eq!(unsign_with(&good.replace("apple", "apples"), &s), Err(CookieError::BadSignature), "other sid");
        assert_eq!(unsign_with(&format!("{good}="), &s), Err(CookieError::BadSignature), "padding is not accepted");
        assert_eq!(unsign_with("s:apple", &s), Err(CookieError::BadSignature), "no dot");
        assert_eq!(unsign_with("s:", &s), Err(CookieError::BadSignature));
        assert_eq!(unsign_with(&format!("s:{}", "a".repeat(300)), &s), Err(CookieError::Malformed), "oversized");
        let flipped: String = good.chars().rev().collect();
        assert!(unsign_with(&flipped, &s).is_err());
    }

    #[test]
    fn finds_the_cookie_like_the_cookie_package() {
        let h = |s: &'static str| vec![s.as_bytes()].into_iter();
        assert_eq!(find(h("a=1; connect.sid=s%3Ax.y; b=2"), "connect.sid"), Ok(Some("s:x.y".into())));
        assert_eq!(find(h("connect.sid=\"s%3Ax.y\""), "connect.sid"), Ok(Some("s:x.y".into())));
        assert_eq!(find(h(" connect.sid = s:x.y ;"), "connect.sid"), Ok(Some("s:x.y".into())));
        assert_eq!(find(h("connect.sid=%E0%A4%A"), "connect.sid"), Ok(Some("%E0%A4%A".into())), "bad escapes stay raw");
        assert_eq!(find(h("other=1"), "connect.sid"), Ok(None));
        assert_eq!(find(h("connect.sidx=1; xconnect.sid=2"), "connect.sid"), Ok(None));
        assert_eq!(find(h("connect.sid=a; connect.sid=a"), "connect.sid"), Ok(Some("a".into())));
        assert_eq!(find(h("connect.sid=a; connect.sid=b"), "connect.sid"), Err(CookieError::Ambiguous));
        let two = vec![&b"connect.sid=a"[..], &b"connect.sid=b"[..]];
        assert_eq!(find(two.into_iter(), "connect.sid"), Err(CookieError::Ambiguous), "across headers");
        let big = format!("connect.sid={}", "a".repeat(1000));
        assert_eq!(find(vec![big.as_bytes()].into_iter(), "connect.sid"), Err(CookieError::Malformed));
        let binary = vec![&b"connect.sid=\xff\xfe"[..]];
        assert_eq!(find(binary.into_iter(), "connect.sid"), Err(CookieError::Malformed));
    }

    #[test]
    fn uri_component_coding_matches_javascript() {
        assert_eq!(encode_uri_component("s:a+b/c=d.e-f_g~h!i*j'k(l)m n"), "s%3Aa%2Bb%2Fc%3Dd.e-f_g~h!i*j'k(l)m%20n");
        assert_eq!(encode_uri_component("é"), "%C3%A9");
        assert_eq!(decode_uri_component("a%2Bb+c%C3%A9").as_deref(), Some("a+b+cé"));
        assert_eq!(decode_uri_component("%"), None);
        assert_eq!(decode_uri_component("%zz"), None);
        assert_eq!(decode_uri_component("%ff"), None);
    }

    /// Found by fuzzing (tests/fuzz_cookie.rs): `from_str_radix` takes a sign,
    /// decodeURIComponent does not.
    #[test]
    fn fuzz_regression_signed_escape_is_malformed() {
        assert_eq!(decode_uri_component("%+A"), None);
        assert_eq!(decode_uri_component("%-0"), None);
        let h = vec![&b"connect.sid=s%3Ax%+A"[..]];
        assert_eq!(find(h.into_iter(), "connect.sid"), Ok(Some("s%3Ax%+A".into())), "kept raw, as the cookie package does");
    }
}
