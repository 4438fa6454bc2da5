//! A minimal MessagePack encoder: exactly what the Socket.IO emitter format
//! needs (nil, booleans, integers, floats, strings, arrays, maps), matching
//! the encodings `notepack.io` produces, so payloads are byte-identical.

use super::json::Json;
use serde_json::Value;

pub fn write_nil(out: &mut Vec<u8>) {
    out.push(0xc0);
}

pub fn write_bool(out: &mut Vec<u8>, b: bool) {
    out.push(if b { 0xc3 } else { 0xc2 });
}

pub fn write_int(out: &mut Vec<u8>, n: i64) {
    match n {
        0..=0x7f => out.push(n as u8),
        -32..=-1 => out.push(n as i8 as u8),
        0x80..=0xff => out.extend_from_slice(&[0xcc, n as u8]),
        0x100..=0xffff => {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        -0x80..=-33 => out.extend_from_slice(&[0xd0, n as i8 as u8]),
        -0x8000..=-0x81 => {
            out.push(0xd1);
            out.extend_from_slice(&(n as i16).to_be_bytes());
        }
        -0x8000_0000..=-0x8001 => {
            out.push(0xd2);
            out.extend_from_slice(&(n as i32).to_be_bytes());
        }
        n if n > 0 => {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
        n => {
            out.push(0xd3);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

pub fn write_f64(out: &mut Vec<u8>, f: f64) {
    out.push(0xcb);
    out.extend_from_slice(&f.to_be_bytes());
}

pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let n = s.len();
    match n {
        0..=31 => out.push(0xa0 | n as u8),
        32..=0xff => out.extend_from_slice(&[0xd9, n as u8]),
        0x100..=0xffff => {
            out.push(0xda);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => {
            out.push(0xdb);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }
    out.extend_from_slice(s.as_bytes());
}

fn write_len(out: &mut Vec<u8>, n: usize, fix: u8, m16: u8, m32: u8) {
    match n {
        0..=15 => out.push(fix | n as u8),
        16..=0xffff => {
            out.push(m16);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => {
            out.push(m32);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }
}

pub fn write_array_len(out: &mut Vec<u8>, n: usize) {
    write_len(out, n, 0x90, 0xdc, 0xdd);
}

pub fn write_map_len(out: &mut Vec<u8>, n: usize) {
    write_len(out, n, 0x80, 0xde, 0xdf);
}

/// Encodes a JSON value. Integers use the smallest encoding; other numbers
/// are float64, as notepack.io does for non-integers.
pub fn write_json(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => write_nil(out),
        Value::Bool(b) => write_bool(out, *b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => write_int(out, i),
            None => match n.as_u64() {
                Some(u) => {
                    out.push(0xcf);
                    out.extend_from_slice(&u.to_be_bytes());
                }
                None => write_f64(out, n.as_f64().unwrap_or(0.0)),
            },
        },
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            write_array_len(out, items.len());
            items.iter().for_each(|i| write_json(out, i));
        }
        Value::Object(map) => {
            write_map_len(out, map.len());
            for (k, v) in map {
                write_str(out, k);
                write_json(out, v);
            }
        }
    }
}

/// Encodes a number as notepack.io encodes a JavaScript number: every JSON
/// number is an IEEE double in JS, so integral values (also `1.0`, `1e2`)
/// take the smallest integer encoding and everything else is float64.
/// Beyond ±2^32, notepack splits the value into 32-bit halves with JS's
/// `>> 0` / `>>> 0`; that is reproduced bit for bit (including its
/// wrap-around past 2^63, where JS numbers have no integer meaning anyway).
pub fn write_js_number(out: &mut Vec<u8>, v: f64) {
    if v.floor() != v || !v.is_finite() {
        write_f64(out, v);
        return;
    }
    if v >= 0.0 {
        if v < 4_294_967_296.0 {
            write_int(out, v as i64);
        } else {
            out.push(0xcf);
            out.extend_from_slice(&to_int32(v / 4_294_967_296.0).to_be_bytes());
            out.extend_from_slice(&to_uint32(v).to_be_bytes());
        }
    } else if v >= -2_147_483_648.0 {
        write_int(out, v as i64);
    } else {
        out.push(0xd3);
        out.extend_from_slice(&to_int32((v / 4_294_967_296.0).floor()).to_be_bytes());
        out.extend_from_slice(&to_uint32(v).to_be_bytes());
    }
}

/// ECMAScript ToUint32 (`x >>> 0`).
fn to_uint32(v: f64) -> u32 {
    if !v.is_finite() {
        return 0;
    }
    v.trunc().rem_euclid(4_294_967_296.0) as u32
}

/// ECMAScript ToInt32 (`x >> 0`).
fn to_int32(v: f64) -> i32 {
    to_uint32(v) as i32
}

/// A key JavaScript treats as an array index: `0` or `[1-9][0-9]*` below
/// 2^32 - 1. `Object.keys` lists those first, in numeric order.
fn array_index(k: &str) -> Option<u32> {
    let ok = k == "0" || (!k.is_empty() && !k.starts_with('0') && k.len() <= 10 && k.bytes().all(|b| b.is_ascii_digit()));
    ok.then(|| k.parse::<u64>().ok()).flatten().filter(|n| *n < u32::MAX as u64).map(|n| n as u32)
}

/// Encodes order-preserving JSON exactly as `notepack.encode(JSON.parse(text))`:
/// numbers as JS numbers ([`write_js_number`]) and object members in
/// `Object.keys` order (array-index keys ascending, then the others as written).
pub fn write_js(out: &mut Vec<u8>, v: &Json) {
    match v {
        Json::Null => write_nil(out),
        Json::Bool(b) => write_bool(out, *b),
        Json::Number(n) => write_js_number(out, n.as_f64().unwrap_or(0.0)),
        Json::String(s) => write_str(out, s),
        Json::Array(items) => {
            write_array_len(out, items.len());
            items.iter().for_each(|i| write_js(out, i));
        }
        Json::Object(members) => {
            let mut indexed: Vec<(u32, &(String, Json))> =
                members.iter().filter_map(|m| array_index(&m.0).map(|i| (i, m))).collect();
            indexed.sort_by_key(|(i, _)| *i);
            let named = members.iter().filter(|m| array_index(&m.0).is_none());
            write_map_len(out, members.len());
            for (k, v) in indexed.into_iter().map(|(_, m)| m).chain(named) {
                write_str(out, k);
                write_js(out, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: Value) -> Vec<u8> {
        let mut out = Vec::new();
        write_json(&mut out, &v);
        out
    }

    #[test]
    fn encodes_scalars_like_the_spec() {
        assert_eq!(enc(Value::Null), [0xc0]);
        assert_eq!(enc(true.into()), [0xc3]);
        assert_eq!(enc(5.into()), [0x05]);
        assert_eq!(enc((-1).into()), [0xff]);
        assert_eq!(enc(200.into()), [0xcc, 200]);
        assert_eq!(enc(70000.into()), [0xce, 0, 1, 0x11, 0x70]);
        assert_eq!(enc((-200).into()), [0xd1, 0xff, 0x38]);
        assert_eq!(enc(1.5.into()), [0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]);
        assert_eq!(enc("hi".into()), [0xa2, b'h', b'i']);
        let long = "x".repeat(40);
        assert_eq!(&enc(long.clone().into())[..2], &[0xd9, 40]);
        assert_eq!(enc(serde_json::json!([])), [0x90]);
        assert_eq!(enc(serde_json::json!({})), [0x80]);
    }

    fn js(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        write_js(&mut out, &Json::parse(text).unwrap());
        out
    }

    #[test]
    fn numbers_are_javascript_numbers() {
        assert_eq!(js("1.0"), [0x01]);
        assert_eq!(js("1e2"), [0x64]);
        assert_eq!(js("-0"), [0x00]);
        assert_eq!(js("-0.0"), [0x00]);
        assert_eq!(js("-33"), [0xd0, 0xdf]);
        assert_eq!(js("-2147483648"), [0xd2, 0x80, 0, 0, 0]);
        assert_eq!(js("4294967296"), [0xcf, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(js("-4294967297"), [0xd3, 0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(js("0.5"), [0xcb, 0x3f, 0xe0, 0, 0, 0, 0, 0, 0]);
        // 2^53 + 1 is not a JS number: it rounds, as JSON.parse does.
        assert_eq!(js("9007199254740993"), js("9007199254740992"));
    }

    #[test]
    fn object_members_follow_object_keys_order() {
        assert_eq!(js(r#"{"b":1,"10":2,"a":3,"2":4,"01":5}"#), js(r#"{"2":4,"10":2,"b":1,"a":3,"01":5}"#));
        let bytes = js(r#"{"b":1,"2":2}"#);
        assert_eq!(bytes, [0x82, 0xa1, b'2', 0x02, 0xa1, b'b', 0x01]);
        assert_eq!(array_index("4294967295"), None);
        assert_eq!(array_index("4294967294"), Some(4294967294));
    }
}
