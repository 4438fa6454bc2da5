//! Where counters live: the @upstash/ratelimit key layout, optionally with a
//! Redis Cluster hash tag, and the escaping that keeps user input out of keys.
//!
//! ```text
//! upstash mode (default)    <prefix>:<policy>:<id>:<window>      fixed and sliding window
//!                           <prefix>:<policy>:<id>               token bucket (hash: refilledAt, tokens)
//! cluster mode              <prefix>:<policy>:{<id>}:<window>    the same, with <id> as the hash tag
//! ```
//!
//! `<prefix>:<policy>` is what @upstash/ratelimit calls its `prefix`, and
//! `<id>` its identifier; in cluster mode the Node side passes `{<id>}`.

use sha2::{Digest, Sha256};

/// @upstash/ratelimit's default prefix.
pub const DEFAULT_PREFIX: &str = "@upstash/ratelimit";
/// The longest identifier kept as it is; longer ones are hashed.
pub const MAX_PLAIN_ID: usize = 128;

/// Exact @upstash/ratelimit keys, or keys whose identifier is a hash tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyMode {
    /// `<prefix>:<policy>:<id>:…`: byte-for-byte what @upstash/ratelimit writes.
    /// The two keys of a sliding window may land in different Cluster slots.
    Upstash,
    /// `<prefix>:<policy>:{<id>}:…`: every key of one identifier in one slot.
    Cluster,
}

impl KeyMode {
    pub fn parse(s: &str) -> Result<KeyMode, String> {
        match s.trim() {
            "upstash" => Ok(KeyMode::Upstash),
            "cluster" => Ok(KeyMode::Cluster),
            other => Err(format!("expected upstash or cluster, got {other:?}")),
        }
    }
}

/// The key prefix and mode shared by every policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyspace {
    prefix: String,
    mode: KeyMode,
}

impl Default for Keyspace {
    fn default() -> Self {
        Keyspace { prefix: DEFAULT_PREFIX.into(), mode: KeyMode::Upstash }
    }
}

impl Keyspace {
    /// The prefix is 1..=100 printable ASCII characters, without spaces or
    /// braces (which would move keys between Cluster slots).
    pub fn new(prefix: &str, mode: KeyMode) -> Result<Keyspace, String> {
        let ok = !prefix.is_empty()
            && prefix.len() <= 100
            && prefix.bytes().all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}');
        if !ok {
            return Err(format!("{prefix:?} must be 1-100 printable ASCII characters without spaces or braces"));
        }
        Ok(Keyspace { prefix: prefix.to_owned(), mode })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn mode(&self) -> KeyMode {
        self.mode
    }

    /// `<prefix>:<policy>:<id>`, or with `{<id>}` in cluster mode. `id` is
    /// already escaped ([`escape`]), so it holds no braces.
    pub fn base(&self, policy: &str, id: &str) -> String {
        match self.mode {
            KeyMode::Upstash => format!("{}:{policy}:{id}", self.prefix),
            KeyMode::Cluster => format!("{}:{policy}:{{{id}}}", self.prefix),
        }
    }
}

/// Whether a byte may appear in an identifier as it is: letters, digits and
/// `-._~:@/+=`. No spaces or control bytes, no glob characters (`*?[]\`,
/// which upstash's own reset feeds to SCAN MATCH), no braces (hash tags),
/// and not `!`, which marks a hashed identifier.
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:@/+=".contains(&b)
}

/// Makes user input safe to put in a key. An ordinary identifier (1..=128
/// plain bytes, see above) stays as it is, so it matches the key
/// @upstash/ratelimit writes for it; anything else becomes `!` and the first
/// 32 hex digits of its SHA-256. `!` is never plain, so a hashed identifier
/// cannot equal a plain one.
pub fn escape(raw: &str) -> String {
    if !raw.is_empty() && raw.len() <= MAX_PLAIN_ID && raw.bytes().all(is_plain) {
        raw.to_owned()
    } else {
        format!("!{}", hex32(raw.as_bytes()))
    }
}

/// The first 16 bytes of SHA-256, in lower-case hex.
pub(crate) fn hex32(data: &[u8]) -> String {
    Sha256::digest(data)[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_identifiers_stay_as_they_are() {
        for id in ["alice", "ip:203.0.113.7", "ip:2001:db8::/64", "user:42", "a.b-c_d~e@f/g+h=i", &"x".repeat(128)] {
            assert_eq!(escape(id), id);
        }
    }

    #[test]
    fn hostile_identifiers_are_hashed() {
        let hostile = [
            "",
            " ",
            "a b",
            "a\r\nDEL x",
            "*",
            "a*",
            "a?",
            "[a]",
            "a\\b",
            "{tag}",
            "a}b",
            "!x",
            "é",
            "a\u{0}b",
            &"x".repeat(129),
        ];
        let mut seen = std::collections::HashSet::new();
        for id in hostile {
            let e = escape(id);
            assert!(e.starts_with('!') && e.len() == 33, "{id:?} -> {e}");
            assert!(e[1..].bytes().all(|b| b.is_ascii_hexdigit()));
            assert!(seen.insert(e), "collision for {id:?}");
        }
        assert_eq!(escape("a b"), escape("a b"), "deterministic");
    }

    #[test]
    fn key_layouts() {
        let up = Keyspace::default();
        assert_eq!(up.base("api", "ip:1.2.3.4"), "@upstash/ratelimit:api:ip:1.2.3.4");
        let cl = Keyspace::new("rl", KeyMode::Cluster).unwrap();
        assert_eq!(cl.base("api", "ip:1.2.3.4"), "rl:api:{ip:1.2.3.4}");
        for bad in ["", "a b", "a{b", "a}b", "é", &"p".repeat(101)] {
            assert!(Keyspace::new(bad, KeyMode::Upstash).is_err(), "{bad:?}");
        }
        assert_eq!(KeyMode::parse("cluster"), Ok(KeyMode::Cluster));
        assert!(KeyMode::parse("Cluster").is_err());
    }
}
