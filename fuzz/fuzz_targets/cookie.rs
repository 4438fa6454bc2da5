//! Cookie header parsing and session-cookie unsigning.
//! Mode 0: raw `Cookie` header bytes. Mode 1: a valid signed cookie, then
//! one byte changed. Mode 2: decodeURIComponent against a reference.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spindle::session::cookie;
use spindle_fuzz::Bytes;

const NAME: &str = "connect.sid";

fuzz_target!(|data: &[u8]| {
    let mut d = Bytes(data);
    let secrets = vec!["current secret".to_string(), "older secret".to_string()];
    match d.byte() % 3 {
        0 => {
            let raw = d.rest();
            let headers: Vec<&[u8]> = raw.split(|b| *b == b'\n').collect();
            if let Ok(Some(v)) = cookie::find(headers.iter().copied(), NAME) {
                assert!(v.len() <= 3 * cookie::MAX_VALUE_LEN);
                if let Ok((sid, i)) = cookie::unsign_with(&v, &secrets) {
                    // Verified only if it is exactly what we would have signed.
                    assert_eq!(cookie::signed_value(&sid, &secrets[i]), v);
                }
            }
        }
        1 => {
            let sid = d.str(64);
            let which = d.byte() as usize % 2;
            let (pos, byte) = (d.byte() as usize, d.byte());
            let signed = cookie::signed_value(&sid, &secrets[which]);
            let wire = cookie::wire_value(&sid, &secrets[which]);
            let header = format!("a=1; {NAME}={wire}; b=2");
            let found = cookie::find(std::iter::once(header.as_bytes()), NAME);
            if wire.len() <= 3 * cookie::MAX_VALUE_LEN {
                assert_eq!(found, Ok(Some(signed.clone())));
            }
            if signed.len() <= cookie::MAX_VALUE_LEN {
                assert_eq!(cookie::unsign_with(&signed, &secrets), Ok((sid.clone(), which)));
            }
            let mut bytes = signed.clone().into_bytes();
            let i = pos % bytes.len();
            if bytes[i] != byte {
                bytes[i] = byte;
                if let Ok(t) = String::from_utf8(bytes) {
                    assert!(cookie::unsign_with(&t, &secrets).is_err(), "tampered {t:?} verified");
                }
            }
        }
        _ => {
            let s = String::from_utf8_lossy(d.rest()).into_owned();
            assert_eq!(cookie::decode_uri_component(&s), spindle_fuzz::decode_uri_component(&s), "{s:?}");
            assert_eq!(cookie::decode_uri_component(&cookie::encode_uri_component(&s)), Some(s));
        }
    }
});
