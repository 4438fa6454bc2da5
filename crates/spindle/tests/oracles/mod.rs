//! Oracles: independent readings of each documented grammar, written
//! without the library's code, so a fuzz test can check not only "no panic"
//! but "the same answer as the spec". Shared by the property tests here
//! (`mod oracles;`) and the cargo-fuzz targets (fuzz/src/lib.rs includes
//! this file by path), so both layers check against one reading.
#![allow(dead_code)] // each test file uses some of them

use serde_json::Value;
use spindle::ratelimit::{Algorithm, MAX_LIMIT, MAX_WINDOW_MS};

/// JavaScript's decodeURIComponent: `%` + two hex digits, UTF-8 result.
pub fn decode_uri_component(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let (h, l) = (hex(*b.get(i + 1)?)?, hex(*b.get(i + 2)?)?);
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Form decoding: `+` is a space, `%XY` a byte, any other `%` itself.
pub fn form_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    let hex = |c: u8| (c as char).to_digit(16);
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() && hex(b[i + 1]).is_some() && hex(b[i + 2]).is_some() => {
                out.push((hex(b[i + 1]).unwrap() * 16 + hex(b[i + 2]).unwrap()) as u8);
                i += 3;
                continue;
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Topics: 1..=128 of `A-Z a-z 0-9 _ . : - /`; `user:` in any case must be
/// exactly `user:<canonical i64 ≥ 0>`.
pub fn topic_ok(s: &str) -> bool {
    if s.is_empty() || s.len() > 128 || !s.chars().all(|c| c.is_ascii_alphanumeric() || "_.:-/".contains(c)) {
        return false;
    }
    if s.len() >= 5 && s[..5].eq_ignore_ascii_case("user:") {
        return s.strip_prefix("user:").is_some_and(|id| id.parse::<i64>().is_ok_and(|n| n >= 0 && n.to_string() == id));
    }
    true
}

/// Cursors: `0`, or `<u64>-<u64>` in decimal, whitespace around ignored.
pub fn cursor(s: &str) -> Option<(u64, u64)> {
    let s = s.trim();
    if s == "0" {
        return Some((0, 0));
    }
    let (a, b) = s.split_once('-')?;
    let num = |p: &str| (!p.is_empty() && p.bytes().all(|c| c.is_ascii_digit())).then(|| p.parse::<u64>().ok()).flatten();
    Some((num(a)?, num(b)?))
}

/// Rate-limit policy strings, per the grammar in `ratelimit/policy.rs`.
pub fn policy(spec: &str) -> Option<Algorithm> {
    let words: Vec<&str> = spec.split_whitespace().collect();
    let count = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
    };
    let dur = |s: &str| {
        let units = [("ms", 1u64), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)];
        let (num, k) = units.iter().find_map(|(u, k)| {
            let n = s.strip_suffix(u)?;
            (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some((n, *k))
        })?;
        let ms = num.parse::<u64>().ok()?.checked_mul(k)?;
        (1..=MAX_WINDOW_MS).contains(&ms).then_some(ms)
    };
    let (name, rate, rest) = (*words.first()?, *words.get(1)?, words.get(2..)?);
    let (n, w) = rate.split_once('/')?;
    let (n, w) = (count(n)?, dur(w)?);
    let alg = match (name, rest) {
        ("fixed_window", []) => Algorithm::FixedWindow { limit: n, window_ms: w },
        ("sliding_window", []) => Algorithm::SlidingWindow { limit: n, window_ms: w },
        ("token_bucket", []) => Algorithm::TokenBucket { refill: n, interval_ms: w, max: n },
        ("token_bucket", ["burst", m]) => Algorithm::TokenBucket { refill: n, interval_ms: w, max: count(m)? },
        _ => return None,
    };
    if let Algorithm::TokenBucket { refill, interval_ms, max } = alg {
        if (max.div_ceil(refill) as u128) * (interval_ms as u128) > MAX_WINDOW_MS as u128 {
            return None;
        }
    }
    Some(alg)
}

/// Nesting depth of arrays and objects.
pub fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// A RESP2 reply as Redis sends it, for the RESP decoder's oracle.
#[derive(Clone, Debug)]
pub enum Resp {
    /// `+text` (no CR or LF inside).
    Simple(Vec<u8>),
    Int(i64),
    /// `$n` bulk string, or `$-1` (nil).
    Bulk(Option<Vec<u8>>),
    /// `*n` array, or `*-1` (nil).
    Array(Option<Vec<Resp>>),
}

impl Resp {
    /// The bytes on the wire.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Resp::Simple(s) => {
                out.push(b'+');
                out.extend_from_slice(s);
            }
            Resp::Int(n) => out.extend_from_slice(format!(":{n}").as_bytes()),
            Resp::Bulk(None) => out.extend_from_slice(b"$-1"),
            Resp::Bulk(Some(b)) => {
                out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            Resp::Array(None) => out.extend_from_slice(b"*-1"),
            Resp::Array(Some(items)) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                for i in items {
                    i.encode(out);
                }
                return;
            }
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Spin's outbound Redis flattening: nested arrays become one list, a
    /// nil (bulk or array) is one nil, a status is its bytes.
    pub fn flatten(&self, out: &mut Vec<spindle::redis::Value>) {
        use spindle::redis::Value as V;
        match self {
            Resp::Simple(s) => out.push(V::Bytes(s.clone())),
            Resp::Int(n) => out.push(V::Int(*n)),
            Resp::Bulk(b) => out.push(b.clone().map_or(V::Nil, V::Bytes)),
            Resp::Array(None) => out.push(V::Nil),
            Resp::Array(Some(items)) => items.iter().for_each(|i| i.flatten(out)),
        }
    }
}
