//! The bodies of the Lua scripts clients have loaded through the gateway
//! (SCRIPT LOAD, or EVAL), by SHA-1.
//!
//! Redis keeps scripts per server and does not replicate SCRIPT LOAD, so a
//! replica promoted by a failover, a restarted Redis or a new master after
//! a reshard answers EVALSHA with NOSCRIPT although the client did load the
//! script. With the body at hand the gateway loads it on such a node itself,
//! just before the EVALSHA, in the same round trip (see `link`).
//!
//! Bounded: at most `MAX_SCRIPTS` bodies; when full, the oldest is forgotten
//! (an EVALSHA of it then behaves as it would without the gateway).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;

use crate::routing::Args;

const MAX_SCRIPTS: usize = 1024;

#[derive(Default)]
pub(crate) struct Scripts {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    bodies: HashMap<String, Bytes>,
    /// Insertion order, for eviction.
    order: VecDeque<String>,
}

/// The lowercase hex SHA-1 of a script body, as Redis names scripts.
pub(crate) fn sha1_hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

/// What a command does with scripts, for the cache and for preloading.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Use<'c> {
    /// EVAL/EVAL_RO with this body: Redis caches it as a side effect.
    Eval(&'c [u8]),
    /// SCRIPT LOAD of this body.
    Load(&'c [u8]),
    /// EVALSHA/EVALSHA_RO of this SHA (as sent: any case).
    EvalSha(&'c [u8]),
    /// SCRIPT FLUSH: Redis forgets every script.
    Flush,
    None,
}

pub(crate) fn use_of<'c>(cmd: &'c Args<'_>) -> Use<'c> {
    let is = |i: usize, w: &str| {
        cmd.get(i)
            .is_some_and(|a| a.eq_ignore_ascii_case(w.as_bytes()))
    };
    let arg = |i: usize| cmd.get(i).map(|a| a.as_ref());
    match arg(1) {
        Some(a) if is(0, "EVAL") || is(0, "EVAL_RO") => Use::Eval(a),
        Some(a) if is(0, "EVALSHA") || is(0, "EVALSHA_RO") => Use::EvalSha(a),
        _ if is(0, "SCRIPT") && is(1, "FLUSH") => Use::Flush,
        _ if is(0, "SCRIPT") && is(1, "LOAD") => arg(2).map_or(Use::None, Use::Load),
        _ => Use::None,
    }
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Scripts {
    /// Remembers a body; returns its SHA-1.
    pub(crate) fn remember(&self, body: &[u8]) -> String {
        let sha = sha1_hex(body);
        let mut inner = lock(&self.inner);
        if !inner.bodies.contains_key(&sha) {
            if inner.order.len() >= MAX_SCRIPTS {
                if let Some(old) = inner.order.pop_front() {
                    inner.bodies.remove(&old);
                }
            }
            inner
                .bodies
                .insert(sha.clone(), Bytes::copy_from_slice(body));
            inner.order.push_back(sha.clone());
        }
        sha
    }

    /// The body of a script, by SHA-1 in any case.
    pub(crate) fn body(&self, sha: &[u8]) -> Option<(String, Bytes)> {
        let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
        let body = lock(&self.inner).bodies.get(&sha).cloned()?;
        Some((sha, body))
    }

    pub(crate) fn forget_all(&self) {
        let mut inner = lock(&self.inner);
        inner.bodies.clear();
        inner.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn sha_matches_redis() {
        // `redis-cli SCRIPT LOAD "return 1"`
        assert_eq!(
            sha1_hex(b"return 1"),
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
    }

    #[test]
    fn remembers_boundedly_and_by_any_case() {
        let scripts = Scripts::default();
        let sha = scripts.remember(b"return 1");
        assert_eq!(
            scripts.body(sha.to_uppercase().as_bytes()).unwrap().1,
            &b"return 1"[..]
        );
        for i in 0..MAX_SCRIPTS {
            scripts.remember(format!("return {}", i + 2).as_bytes());
        }
        assert!(
            scripts.body(sha.as_bytes()).is_none(),
            "the oldest is evicted"
        );
        assert!(scripts.body(sha1_hex(b"return 2").as_bytes()).is_some());
        scripts.forget_all();
        assert!(scripts.body(sha1_hex(b"return 2").as_bytes()).is_none());
    }

    #[test]
    fn uses() {
        let c = |s: &[&'static str]| -> Vec<Cow<'static, [u8]>> {
            s.iter().map(|a| Cow::Borrowed(a.as_bytes())).collect()
        };
        assert_eq!(
            use_of(&c(&["eval", "return 1", "0"])),
            Use::Eval(b"return 1")
        );
        assert_eq!(use_of(&c(&["EVALSHA_RO", "ab", "0"])), Use::EvalSha(b"ab"));
        assert_eq!(use_of(&c(&["script", "load", "x"])), Use::Load(b"x"));
        assert_eq!(use_of(&c(&["SCRIPT", "FLUSH", "ASYNC"])), Use::Flush);
        assert_eq!(use_of(&c(&["SCRIPT", "EXISTS", "x"])), Use::None);
        assert_eq!(use_of(&c(&["GET", "k"])), Use::None);
    }
}
