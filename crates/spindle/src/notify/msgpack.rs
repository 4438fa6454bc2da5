//! A minimal MessagePack encoder: exactly what the Socket.IO emitter format
//! needs (nil, booleans, integers, floats, strings, arrays, maps), matching
//! the encodings `notepack.io` produces, so payloads are byte-identical.

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
}
