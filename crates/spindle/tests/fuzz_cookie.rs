//! Property-based fuzzing of the session cookie: `Cookie` header parsing
//! (`cookie::find`), URI-component coding, and signing/unsigning
//! (`cookie::unsign_with`), on random bytes and on valid signed cookies
//! that are then mutated.
//!
//! Cases per property: `PROPTEST_CASES` (proptest's default, 256, when unset).
//! Deep run: `PROPTEST_CASES=100000 cargo test --profile native -p spindle --test fuzz_cookie`.

mod oracles;

use oracles::decode_uri_component as reference_decode;
use proptest::prelude::*;
use spindle::session::cookie::{self, CookieError};

const NAME: &str = "connect.sid";

fn config() -> ProptestConfig {
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

/// A session id as the library makes them, or anything cookie-safe.
fn sid() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_-]{32}",
        "[ -~]{0,64}",
        any::<String>().prop_map(|s| s.chars().take(40).collect()),
    ]
}

fn secret() -> impl Strategy<Value = String> {
    prop_oneof!["[ -~]{1,48}", any::<String>()]
}

/// Other cookies to surround ours with: names that are never `connect.sid`.
fn other_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(("[a-z][a-z0-9_]{0,10}", "[A-Za-z0-9%._~-]{0,20}"), 0..5)
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary header bytes never panic, and whatever is found obeys the
    /// documented bounds.
    #[test]
    fn find_never_panics_on_random_headers(headers in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..4)) {
        let r = cookie::find(headers.iter().map(|h| h.as_slice()), NAME);
        if let Ok(Some(v)) = r {
            prop_assert!(v.len() <= 3 * cookie::MAX_VALUE_LEN);
        }
    }

    /// Structured headers built from pieces that look like cookies.
    #[test]
    fn find_never_panics_on_cookie_like_headers(h in "[ \t;=\"%a-z.A-Z0-9+/]{0,120}") {
        let _ = cookie::find(std::iter::once(h.as_bytes()), NAME);
        let _ = cookie::find(std::iter::once(h.as_bytes()), "a");
    }

    /// Our cookie among others, in any position, with optional spaces and
    /// quotes, is found and decoded to the signed value.
    #[test]
    fn find_locates_the_cookie_among_others(
        sid in sid(), secret in secret(), before in other_pairs(), after in other_pairs(),
        quoted in any::<bool>(), pad in "[ \t]{0,2}",
    ) {
        let wire = cookie::wire_value(&sid, &secret);
        let ours = if quoted { format!("\"{wire}\"") } else { wire };
        let mut parts: Vec<String> = before.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.push(format!("{pad}{NAME}{pad}={pad}{ours}{pad}"));
        parts.extend(after.iter().map(|(k, v)| format!("{k}={v}")));
        let header = parts.join("; ");
        let found = cookie::find(std::iter::once(header.as_bytes()), NAME);
        let signed = cookie::signed_value(&sid, &secret);
        if ours.len() <= 3 * cookie::MAX_VALUE_LEN {
            prop_assert_eq!(found, Ok(Some(signed)));
        } else {
            prop_assert_eq!(found, Err(CookieError::Malformed));
        }
    }

    /// sign → unsign is the identity, with the index of the signing secret.
    #[test]
    fn sign_unsign_round_trip(sid in sid(), secret in secret()) {
        let signed = cookie::signed_value(&sid, &secret);
        let got = cookie::unsign_with(&signed, std::slice::from_ref(&secret));
        if signed.len() <= cookie::MAX_VALUE_LEN {
            prop_assert_eq!(got, Ok((sid.clone(), 0)));
        } else {
            prop_assert_eq!(got, Err(CookieError::Malformed));
        }
        // And through the wire encoding.
        let wire = cookie::wire_value(&sid, &secret);
        prop_assert_eq!(cookie::decode_uri_component(&wire), Some(signed));
    }

    /// Any single-byte change of a valid signed value is refused.
    #[test]
    fn any_single_byte_tamper_fails(sid in "[A-Za-z0-9_-]{1,40}", secret in secret(), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let signed = cookie::signed_value(&sid, &secret);
        let mut bytes = signed.clone().into_bytes();
        let i = pos.index(bytes.len());
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        if let Ok(tampered) = String::from_utf8(bytes) {
            prop_assert!(cookie::unsign_with(&tampered, std::slice::from_ref(&secret)).is_err(), "{tampered:?} verified");
        }
    }

    /// Inserting or deleting a byte is refused too.
    #[test]
    fn insertions_and_deletions_fail(sid in "[A-Za-z0-9_-]{1,40}", secret in secret(), pos in any::<prop::sample::Index>(), byte in 0x20u8..0x7f, insert in any::<bool>()) {
        let signed = cookie::signed_value(&sid, &secret);
        let mut s = signed.clone();
        let i = pos.index(s.len());
        if insert { s.insert(i, byte as char) } else { s.remove(i); }
        prop_assume!(s != signed);
        prop_assert!(cookie::unsign_with(&s, std::slice::from_ref(&secret)).is_err(), "{s:?} verified");
    }

    /// Rotation: a value signed with any secret of the list verifies, with
    /// the index of the first secret equal to it; a secret not in the list fails.
    #[test]
    fn rotation_with_several_secrets(sid in "[A-Za-z0-9_-]{1,40}", secrets in prop::collection::vec(secret(), 1..5), pick in any::<prop::sample::Index>(), stranger in secret()) {
        let k = pick.index(secrets.len());
        let signed = cookie::signed_value(&sid, &secrets[k]);
        let first = secrets.iter().position(|s| *s == secrets[k]).unwrap();
        prop_assert_eq!(cookie::unsign_with(&signed, &secrets), Ok((sid.clone(), first)));
        if !secrets.contains(&stranger) {
            let other = cookie::signed_value(&sid, &stranger);
            prop_assert_eq!(cookie::unsign_with(&other, &secrets), Err(CookieError::BadSignature));
        }
    }

    /// Arbitrary strings never panic and never verify without the secret.
    #[test]
    fn unsign_random_strings(s in any::<String>(), t in "s:[ -~]{0,300}", secret in secret()) {
        for v in [&s, &t] {
            if let Ok((sid, _)) = cookie::unsign_with(v, std::slice::from_ref(&secret)) {
                prop_assert_eq!(&cookie::signed_value(&sid, &secret), v);
            }
        }
    }

    /// decodeURIComponent agrees with an independent reference; encode → decode is the identity.
    #[test]
    fn uri_component_coding(s in any::<String>(), raw in "[%0-9a-fA-F+g-z -]{0,30}") {
        prop_assert_eq!(cookie::decode_uri_component(&cookie::encode_uri_component(&s)), Some(s.clone()));
        for x in [&s, &raw] {
            prop_assert_eq!(cookie::decode_uri_component(x), reference_decode(x), "{:?}", x);
        }
    }
}

/// The comparison of signatures must stay constant-time: the library's
/// `unsign` compares with `subtle`'s `ct_eq`, never `==`.
#[test]
fn unsign_compares_in_constant_time() {
    let src = include_str!("../src/session/cookie.rs");
    let body = src.split("pub fn unsign<").nth(1).expect("unsign exists").split("\n}\n").next().unwrap();
    assert!(body.contains(".ct_eq("), "unsign must compare with ct_eq:\n{body}");
    assert!(!body.contains("== sig") && !body.contains("sig =="), "unsign must not compare with ==");
}
