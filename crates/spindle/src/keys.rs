#![doc = include_str!("../../../docs/keyspace.md")]

use sha2::{Digest, Sha256};

/// Makes user input safe to put in a key. An ordinary identifier (1..=128
/// plain bytes: [`is_plain`]) stays as it is, so it matches the key
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

/// Whether a byte may appear in a key part as it is: letters, digits and
/// `-._~:@/+=`. No spaces or control bytes, no glob characters (`*?[]\`,
/// which upstash's own reset feeds to SCAN MATCH), no braces (hash tags),
/// and not `!`, which marks a hashed part.
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:@/+=".contains(&b)
}

/// The longest key part kept as it is; longer ones are hashed.
pub const MAX_PLAIN_ID: usize = 128;

/// Sessions, as connect-redis keeps them, and Spindle's per-user index.
///
/// Redis Cluster: a sid Spindle issues starts with its user's hash tag,
/// `{<user id>}`, and so does the index, so a session and its user's index
/// share one slot (connect-redis treats a sid as opaque). Sids without it
/// (Express's own) are handled with single-key steps.
pub mod session {
    /// connect-redis's default prefix: sessions live at `sess:<sid>`.
    pub const PREFIX: &str = "sess:";
    /// Per-user index of live sessions: `spindle:user-sessions:{<user id>}`.
    pub const INDEX_PREFIX: &str = "spindle:user-sessions:";

    pub fn session(sid: &str) -> String {
        format!("{PREFIX}{sid}")
    }

    /// The hash tag of a user's sessions and index: `{<user id>}`.
    pub fn tag(user_id: i64) -> String {
        format!("{{{user_id}}}")
    }

    pub fn index(user_id: i64) -> String {
        format!("{INDEX_PREFIX}{}", tag(user_id))
    }

    /// Whether `sess:<sid>` is in the slot of the user's index.
    pub fn in_user_slot(sid: &str, user_id: i64) -> bool {
        sid.starts_with(&tag(user_id))
    }
}

/// Rate-limit counters: the @upstash/ratelimit layout, optionally with a
/// Redis Cluster hash tag.
///
/// ```text
/// upstash mode (default)    <prefix>:<policy>:<id>:<window>      fixed and sliding window
///                           <prefix>:<policy>:<id>               token bucket (hash: refilledAt, tokens)
/// cluster mode              <prefix>:<policy>:{<id>}:<window>    the same, with <id> as the hash tag
/// ```
///
/// `<prefix>:<policy>` is what @upstash/ratelimit calls its `prefix`, and
/// `<id>` its identifier; in cluster mode the Node side passes `{<id>}`.
pub mod ratelimit {
    /// @upstash/ratelimit's default prefix.
    pub const DEFAULT_PREFIX: &str = "@upstash/ratelimit";

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
    pub struct RateLimitKeys {
        prefix: String,
        mode: KeyMode,
    }

    impl Default for RateLimitKeys {
        fn default() -> Self {
            RateLimitKeys { prefix: DEFAULT_PREFIX.into(), mode: KeyMode::Upstash }
        }
    }

    impl RateLimitKeys {
        /// The prefix is 1..=100 printable ASCII characters, without spaces or
        /// braces (which would move keys between Cluster slots).
        pub fn new(prefix: &str, mode: KeyMode) -> Result<RateLimitKeys, String> {
            let ok = !prefix.is_empty()
                && prefix.len() <= 100
                && prefix.bytes().all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}');
            if !ok {
                return Err(format!("{prefix:?} must be 1-100 printable ASCII characters without spaces or braces"));
            }
            Ok(RateLimitKeys { prefix: prefix.to_owned(), mode })
        }

        pub fn prefix(&self) -> &str {
            &self.prefix
        }

        pub fn mode(&self) -> KeyMode {
            self.mode
        }

        /// `<prefix>:<policy>:<id>`, or with `{<id>}` in cluster mode. `id` is
        /// already escaped ([`super::escape`]), so it holds no braces.
        pub fn base(&self, policy: &str, id: &str) -> String {
            match self.mode {
                KeyMode::Upstash => format!("{}:{policy}:{id}", self.prefix),
                KeyMode::Cluster => format!("{}:{policy}:{{{id}}}", self.prefix),
            }
        }
    }
}

/// The cache: `<prefix>:<kind>:{<namespace>:<bucket>}:<key>`. A key's
/// bucket is FNV-1a of the key modulo the namespace's bucket count (1 by
/// default: every bucket number is then 0), and everything a cache script
/// touches for the keys of one bucket, their entries, leases, stale copies
/// and the bucket's copy of the source's epoch, shares the hash tag
/// `{<namespace>:<bucket>}`: one slot on Redis Cluster.
///
/// ```text
/// spindle:cache:{users:0}:42          the entry
/// spindle:cache-lease:{users:0}:42    the lease token of whoever is loading it
/// spindle:cache-stale:{users:0}:42    what the last write invalidated (short TTL)
/// spindle:cache-epoch:{users:0}       the source's epoch, as Redis last read it, for bucket 0
/// spindle:cache-epoch-lease:{users:0} who is refreshing that
/// ```
pub mod cache {
    use super::escape;

    pub const DEFAULT_PREFIX: &str = "spindle";
    /// Most buckets (slots) per namespace.
    pub const MAX_BUCKETS: u32 = 1024;

    /// FNV-1a (32 bits) of a key's escaped form: a fixed function, so keys
    /// never move between builds.
    fn fnv(key: &str) -> u32 {
        escape(key).bytes().fold(0x811c_9dc5u32, |h, b| (h ^ b as u32).wrapping_mul(0x0100_0193))
    }

    /// The keys of one cache namespace (`users`).
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct CacheKeys {
        prefix: String,
        namespace: String,
        buckets: u32,
    }

    impl CacheKeys {
        /// `prefix` and `namespace` are chosen by code, not users; they are
        /// escaped all the same. One bucket.
        pub fn new(prefix: &str, namespace: &str) -> CacheKeys {
            CacheKeys { prefix: escape(prefix), namespace: escape(namespace), buckets: 1 }
        }

        /// With `n` buckets (1..=[`MAX_BUCKETS`]).
        pub fn with_buckets(self, n: u32) -> CacheKeys {
            CacheKeys { buckets: n.clamp(1, MAX_BUCKETS), ..self }
        }

        /// The bucket of a cache key.
        pub fn bucket(&self, key: &str) -> u32 {
            fnv(key) % self.buckets
        }

        fn tagged(&self, kind: &str, key: &str) -> String {
            format!("{}:{kind}:{{{}:{}}}:{}", self.prefix, self.namespace, self.bucket(key), escape(key))
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

        /// The bucket's copy of the source's epoch.
        pub fn epoch(&self, bucket: u32) -> String {
            format!("{}:cache-epoch:{{{}:{bucket}}}", self.prefix, self.namespace)
        }

        pub fn epoch_lease(&self, bucket: u32) -> String {
            format!("{}:cache-epoch-lease:{{{}:{bucket}}}", self.prefix, self.namespace)
        }
    }
}

/// Notify: a topic's keys share its `{topic}` hash tag.
pub mod notify {
    pub(crate) use super::hex32;
    use crate::notify::Topic;

    pub const PREFIX: &str = "spindle:notify";
    /// The worker's `[[trigger.redis]]` channel: a topic name kicks that
    /// topic's fan-out, `*` (or anything that is not a topic) is a tick that
    /// re-drives every topic and every due retry.
    pub const DELIVER_CHANNEL: &str = "spindle:notify:deliver";
    pub const TICK: &str = "*";
    pub const WEBHOOKS: &str = "spindle:notify:webhooks";
    pub const WEBHOOK_TOPICS: &str = "spindle:notify:webhook-topics";
    pub const DUE: &str = "spindle:notify:deliveries:due";
    pub const PENDING: &str = "spindle:notify:deliveries:pending";
    /// Hash owner → how many of the owner's deliveries are pending.
    pub const OWNER_PENDING: &str = "spindle:notify:deliveries:owners";

    pub fn stream(t: &Topic) -> String {
        format!("{PREFIX}:{{{t}}}:events")
    }

    /// Scoped to the publisher, so two callers' keys never collide, and
    /// hashed, so the key's text is never the caller's.
    pub fn idempotency(t: &Topic, owner: &str, key: &str) -> String {
        format!("{PREFIX}:{{{t}}}:idem:{}", hex32(format!("{owner}\n{key}").as_bytes()))
    }

    pub fn presence(t: &Topic) -> String {
        format!("{PREFIX}:{{{t}}}:presence")
    }

    pub fn topic_webhooks(t: &Topic) -> String {
        format!("{PREFIX}:{{{t}}}:webhooks")
    }

    pub fn webhook_cursor(t: &Topic) -> String {
        format!("{PREFIX}:{{{t}}}:webhooks-cursor")
    }

    pub fn channel(t: &Topic) -> String {
        format!("{PREFIX}:topic:{t}")
    }

    /// Under `rate_limit_keys=cluster` a topic's webhook registry and its
    /// deliveries live under its tag, beside its stream, so that every
    /// webhook script touches one slot: hash webhook id → registry value.
    pub fn topic_registry(t: &Topic) -> String {
        format!("{PREFIX}:{{{t}}}:webhook-defs")
    }

    /// The topic's own `deliveries:due` (cluster layout).
    pub fn topic_due(t: &Topic) -> String {
        format!("{PREFIX}:{{{t}}}:deliveries:due")
    }

    /// The topic's own `deliveries:pending` (cluster layout).
    pub fn topic_pending(t: &Topic) -> String {
        format!("{PREFIX}:{{{t}}}:deliveries:pending")
    }

    /// The topic's own `deliveries:owners`: each owner's deliveries pending
    /// on this topic (cluster layout).
    pub fn topic_owner_pending(t: &Topic) -> String {
        format!("{PREFIX}:{{{t}}}:deliveries:owners")
    }

    /// Hash webhook id → registry value: the owner's webhooks with their
    /// definitions, so listing them reads one key (cluster layout).
    pub fn owner_webhook_defs(owner: &str) -> String {
        format!("{PREFIX}:owner:{owner}:webhook-defs")
    }

    /// Zset topic → when a webhook was last registered on it (ms): the
    /// topics a tick catches up (cluster layout; a tick drops a topic with
    /// no webhooks and nothing due once its entry is old).
    pub const WEBHOOK_TOPICS_BY_TIME: &str = "spindle:notify:webhook-topics-by-time";

    /// `owner` is an [`Identity::identifier`](crate::ratelimit::Identity::identifier): escaped already.
    pub fn owner_webhooks(owner: &str) -> String {
        format!("{PREFIX}:owner:{owner}:webhooks")
    }

    pub fn dead_letters(owner: &str) -> String {
        format!("{PREFIX}:owner:{owner}:dead-letters")
    }

    /// The caller's open long polls and SSE streams (`notify::readers`).
    pub fn readers(owner: &str) -> String {
        format!("{PREFIX}:readers:{owner}")
    }
}

/// Socket.IO's Redis adapter channel for a room of a namespace:
/// `socket.io#<namespace>#<room>#`, as @socket.io/redis-adapter subscribes.
pub fn socketio_room(namespace: &str, room: &str) -> String {
    format!("socket.io#{namespace}#{room}#")
}

#[cfg(test)]
mod tests {
    use super::ratelimit::{KeyMode, RateLimitKeys};
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
        let up = RateLimitKeys::default();
        assert_eq!(up.base("api", "ip:1.2.3.4"), "@upstash/ratelimit:api:ip:1.2.3.4");
        let cl = RateLimitKeys::new("rl", KeyMode::Cluster).unwrap();
        assert_eq!(cl.base("api", "ip:1.2.3.4"), "rl:api:{ip:1.2.3.4}");
        for bad in ["", "a b", "a{b", "a}b", "é", &"p".repeat(101)] {
            assert!(RateLimitKeys::new(bad, KeyMode::Upstash).is_err(), "{bad:?}");
        }
        assert_eq!(KeyMode::parse("cluster"), Ok(KeyMode::Cluster));
        assert!(KeyMode::parse("Cluster").is_err());
    }

    #[test]
    fn keys_follow_the_scheme() {
        let ks = cache::CacheKeys::new(cache::DEFAULT_PREFIX, "users");
        assert_eq!(ks.value("42"), "spindle:cache:{users:0}:42");
        let ks = ks.with_buckets(16);
        let b = ks.bucket("42");
        assert_eq!(ks.value("42"), format!("spindle:cache:{{users:{b}}}:42"));
        assert_eq!(ks.lease("42"), format!("spindle:cache-lease:{{users:{b}}}:42"));
        assert_eq!(ks.stale("42"), format!("spindle:cache-stale:{{users:{b}}}:42"));
        assert_eq!(ks.epoch(b), format!("spindle:cache-epoch:{{users:{b}}}"));
        assert_eq!(ks.epoch_lease(b), format!("spindle:cache-epoch-lease:{{users:{b}}}"));
        // FNV-1a of "42" is 0x87e38583: a fixed function, so keys never move between builds.
        assert_eq!(b, 0x87e3_8583 % 16);
        let used: std::collections::BTreeSet<u32> = (0..1000).map(|i| ks.bucket(&i.to_string())).collect();
        assert_eq!(used.len(), 16, "ids spread over every bucket");
    }

    #[test]
    fn sessions_and_topics() {
        assert_eq!(session::session("abc"), "sess:abc");
        assert_eq!(session::index(42), "spindle:user-sessions:{42}");
        assert!(session::in_user_slot("{42}abc", 42));
        assert!(!session::in_user_slot("{421}abc", 42) && !session::in_user_slot("abc{42}", 42));
        let t = crate::notify::Topic::parse("chat:lobby").unwrap();
        let cluster_layout = [notify::topic_registry(&t), notify::topic_due(&t), notify::topic_pending(&t), notify::topic_owner_pending(&t)];
        for k in [notify::stream(&t), notify::presence(&t), notify::topic_webhooks(&t), notify::webhook_cursor(&t)].into_iter().chain(cluster_layout) {
            assert!(k.starts_with("spindle:notify:{chat:lobby}:"), "{k}");
        }
        let a = notify::idempotency(&t, "user:1", "k");
        assert!(a.starts_with("spindle:notify:{chat:lobby}:idem:") && !a.ends_with(":k"));
        assert_ne!(a, notify::idempotency(&t, "user:2", "k"), "scoped to the publisher");
        assert_eq!(notify::channel(&t), "spindle:notify:topic:chat:lobby");
        assert_eq!(socketio_room("/", "admins"), "socket.io#/#admins#");
    }
}
