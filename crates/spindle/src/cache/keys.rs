//! The cache's keys: `<prefix>:<kind>:{<namespace>:<key>}`.
//!
//! The three keys of one cache entry share a hash tag, so one script may
//! touch them together on Redis Cluster:
//!
//! ```text
//! spindle:cache:{users:42}          the entry
//! spindle:cache-lease:{users:42}    the lease token of whoever is loading it
//! spindle:cache-stale:{users:42}    what the last write invalidated (short TTL)
//! spindle:cache-epoch:users         the source's epoch, as Redis last read it
//! spindle:cache-epoch-lease:users   who is refreshing that
//! ```
//!
//! Cache keys come from callers and may come from users: anything but
//! 1–64 bytes of `A-Z a-z 0-9 . _ -` becomes `!` and 32 hex digits of its
//! SHA-256, so no key carries braces, colons, globs or control bytes.

use sha2::{Digest, Sha256};

pub const DEFAULT_PREFIX: &str = "spindle";
const MAX_PLAIN: usize = 64;

/// A key part as it may appear in a Redis key.
pub fn escape(key: &str) -> String {
    let plain = (1..=MAX_PLAIN).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if plain {
        key.to_owned()
    } else {
        let digest = Sha256::digest(key.as_bytes());
        format!("!{}", digest[..16].iter().map(|b| format!("{b:02x}")).collect::<String>())
    }
}

/// The keys of one cache namespace (`users`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyspace {
    prefix: String,
    namespace: String,
}

impl Keyspace {
    /// `prefix` and `namespace` are chosen by code, not users; they are
    /// escaped all the same.
    pub fn new(prefix: &str, namespace: &str) -> Keyspace {
        Keyspace { prefix: escape(prefix), namespace: escape(namespace) }
    }

    fn tagged(&self, kind: &str, key: &str) -> String {
        format!("{}:{kind}:{{{}:{}}}", self.prefix, self.namespace, escape(key))
    }

    pub fn value(&self, key: &str) -> String {
        self.tagged("cache", key)
    }

    pub fn lease(&self, key: &str) -> String {
        self.tagged("cache-lease", key)
    }

    pub fn stale(&self, key: &str) -> String {
        self.tagged("cache-stale", key)
    }

    pub fn epoch(&self) -> String {
        format!("{}:cache-epoch:{}", self.prefix, self.namespace)
    }

    pub fn epoch_lease(&self) -> String {
        format!("{}:cache-epoch-lease:{}", self.prefix, self.namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_scheme() {
        let ks = Keyspace::new(DEFAULT_PREFIX, "users");
        assert_eq!(ks.value("42"), "spindle:cache:{users:42}");
        assert_eq!(ks.lease("42"), "spindle:cache-lease:{users:42}");
        assert_eq!(ks.stale("42"), "spindle:cache-stale:{users:42}");
        assert_eq!(ks.epoch(), "spindle:cache-epoch:users");
        assert_eq!(ks.epoch_lease(), "spindle:cache-epoch-lease:users");
    }

    #[test]
    fn user_input_is_escaped() {
        assert_eq!(escape("a.b_c-9"), "a.b_c-9");
        for hostile in ["", "a}b", "{x}", "a:b", "*", "a b", "é", "a\0", &"x".repeat(65)] {
            let e = escape(hostile);
            assert!(e.starts_with('!') && e.len() == 33, "{hostile:?} → {e}");
            assert!(e[1..].bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(escape("a}b"), escape("a{b"));
        assert_eq!(escape(&"x".repeat(64)), "x".repeat(64));
    }
}
