//! Who a request counts against: a user, an API key, or a client address.
//!
//! The client address is `crate::http::client`'s: the TCP peer, or behind
//! trusted proxies the first `X-Forwarded-For` hop that is not one.

use crate::keys::{escape, hex32};
use crate::http::client::TrustedProxies;
use crate::http::{Problem, Request};
use std::net::{IpAddr, Ipv6Addr};

/// What a limit is counted against. Its [`identifier`](Identity::identifier)
/// is safe to put in a key whatever the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// A logged-in user, by user id: `user:<id>`.
    User(String),
    /// A known API key, by the first 128 bits of its SHA-256: `key:<hex>`.
    /// Never the key itself.
    ApiKey(String),
    /// A client address: `ip:<IPv4>`, or `ip:<IPv6 /64>` (one subscriber
    /// usually holds a whole /64, so single IPv6 addresses are free to rotate).
    Ip(IpAddr),
    /// A caller with no address (never under Spin, which always sets
    /// `spin-client-addr`): all such callers share `ip:unknown`.
    Unknown,
    /// Any other identifier, used as it is when ordinary (so a Node service
    /// calling `ratelimit.limit("alice")` shares it) and hashed otherwise.
    Name(String),
}

impl Identity {
    /// An API key's identity: the key is hashed, never stored.
    pub fn api_key(key: &str) -> Identity {
        Identity::ApiKey(hex32(key.as_bytes()))
    }

    /// The kind, for logs and the `/api/quota` answer: `user`, `api-key`, `ip` or `name`.
    pub fn kind(&self) -> &'static str {
        match self {
            Identity::User(_) => "user",
            Identity::ApiKey(_) => "api-key",
            Identity::Ip(_) | Identity::Unknown => "ip",
            Identity::Name(_) => "name",
        }
    }

    /// The escaped identifier that goes into keys.
    pub fn identifier(&self) -> String {
        match self {
            Identity::User(id) => format!("user:{}", escape(id)),
            Identity::ApiKey(hex) => format!("key:{}", escape(hex)),
            Identity::Ip(IpAddr::V4(v4)) => format!("ip:{v4}"),
            Identity::Ip(IpAddr::V6(v6)) => {
                let s = v6.segments();
                format!("ip:{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            Identity::Unknown => "ip:unknown".into(),
            Identity::Name(id) => escape(id),
        }
    }
}

/// The client's address as an [`Identity`].
pub fn client_identity(req: &Request, trusted: &TrustedProxies) -> Identity {
    trusted.client_ip(req).map(Identity::Ip).unwrap_or(Identity::Unknown)
}

/// The header that carries an API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The API keys a deployment accepts, as SHA-256 hex digests (so the secret
/// store never holds a key itself). An unvalidated key would let anyone mint
/// a fresh budget per request, so only known keys become identities.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiKeys(Vec<[u8; 32]>);

impl ApiKeys {
    /// A comma- or space-separated list of 64-digit hex SHA-256 digests.
    /// Empty disables API-key identities (the header is then ignored).
    pub fn parse(list: &str) -> Result<ApiKeys, String> {
        let mut out = Vec::new();
        for (i, item) in list.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()).enumerate() {
            let bytes = item.as_bytes();
            let digest = (bytes.len() == 64)
                .then(|| {
                    let mut d = [0u8; 32];
                    for (j, pair) in bytes.chunks(2).enumerate() {
                        d[j] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
                    }
                    Some(d)
                })
                .flatten()
                // The value is secret: name its position, never its text.
                .ok_or_else(|| format!("entry {} is not a 64-digit hex SHA-256 digest", i + 1))?;
            out.push(digest);
        }
        Ok(ApiKeys(out))
    }

    pub fn is_enabled(&self) -> bool {
        !self.0.is_empty()
    }

    /// The caller's API-key identity: `Ok(None)` without the header (or when
    /// API keys are disabled), 401 for a key that is not accepted.
    pub fn identify(&self, req: &Request) -> Result<Option<Identity>, Problem> {
        if !self.is_enabled() {
            return Ok(None);
        }
        let Some(raw) = req.header_all(API_KEY_HEADER).next() else {
            return Ok(None);
        };
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        let digest: [u8; 32] = Sha256::digest(raw).into();
        let known = self.0.iter().fold(subtle::Choice::from(0), |acc, k| acc | k.ct_eq(&digest));
        if bool::from(known) {
            Ok(Some(Identity::ApiKey(hex32(raw))))
        } else {
            Err(Problem::unauthorized("unknown API key"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Request {
        Request {
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect(),
            ..Default::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_peer_address_loses_its_port() {
        let none = TrustedProxies::default();
        assert_eq!(none.client_ip(&req(&[("spin-client-addr", "203.0.113.7:5555")])), Some(ip("203.0.113.7")));
        assert_eq!(none.client_ip(&req(&[("spin-client-addr", "[2001:db8::1]:5555")])), Some(ip("2001:db8::1")));
        assert_eq!(none.client_ip(&req(&[("spin-client-addr", "::ffff:10.1.2.3")])), Some(ip("10.1.2.3")));
        assert_eq!(none.client_ip(&req(&[("spin-client-addr", "garbage")])), None);
        assert_eq!(none.client_ip(&req(&[])), None);
        assert_eq!(client_identity(&req(&[]), &none).identifier(), "ip:unknown");
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1 ::1").unwrap();
        let xff = ("x-forwarded-for", "198.51.100.9, 203.0.113.7, 10.0.0.2");
        // From an untrusted peer the header is ignored.
        assert_eq!(trusted.client_ip(&req(&[("spin-client-addr", "192.0.2.1:1"), xff])), Some(ip("192.0.2.1")));
        // From a trusted one: the rightmost untrusted hop, not the spoofable leftmost.
        assert_eq!(trusted.client_ip(&req(&[("spin-client-addr", "10.9.9.9:1"), xff])), Some(ip("203.0.113.7")));
        // Several header lines are one list, in order.
        let two = [
            ("spin-client-addr", "127.0.0.1:1"),
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "2.2.2.2, 10.0.0.1"),
        ];
        assert_eq!(trusted.client_ip(&req(&two)), Some(ip("2.2.2.2")));
        // A garbled hop stops the walk at the last trusted address.
        let bad = [("spin-client-addr", "127.0.0.1:1"), ("x-forwarded-for", "1.1.1.1, nonsense, 10.0.0.5")];
        assert_eq!(trusted.client_ip(&req(&bad)), Some(ip("10.0.0.5")));
        // Only trusted hops: the leftmost.
        let all = [("spin-client-addr", "127.0.0.1:1"), ("x-forwarded-for", "10.0.0.7, 10.0.0.5")];
        assert_eq!(trusted.client_ip(&req(&all)), Some(ip("10.0.0.7")));
        // Ports and brackets in hops are tolerated.
        let ported = [("spin-client-addr", "[::1]:1"), ("x-forwarded-for", "[2001:db8::5]:443")];
        assert_eq!(trusted.client_ip(&req(&ported)), Some(ip("2001:db8::5")));
    }

    #[test]
    fn trusted_proxy_lists() {
        let t = TrustedProxies::parse("192.168.0.0/16,fd00::/8 0.0.0.0/0").unwrap();
        assert!(t.contains(ip("8.8.8.8")));
        assert!(t.contains(ip("fd12::1")));
        assert!(!t.contains(ip("fe80::1")));
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0.0/x", "::/129", "1.2.3.4:80"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn identifiers() {
        assert_eq!(Identity::Ip(ip("203.0.113.7")).identifier(), "ip:203.0.113.7");
        assert_eq!(Identity::Ip(ip("2001:db8:1:2:3:4:5:6")).identifier(), "ip:2001:db8:1:2::/64");
        assert_eq!(Identity::User("42".into()).identifier(), "user:42");
        let hostile = Identity::User("x}\r\n*{".into()).identifier();
        assert!(hostile.starts_with("user:!") && !hostile.contains(['{', '}', '*', '\r']));
        let key = Identity::api_key("sk_live_secret").identifier();
        assert!(key.starts_with("key:") && !key.contains("secret") && key.len() == 4 + 32);
        assert_eq!(Identity::Name("alice".into()).identifier(), "alice");
    }

    #[test]
    fn api_keys_are_checked_against_digests() {
        let digest = "a7f3c5b0d3e0f2a3a6a1f0d6e0c1d0d1a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5";
        let good_key = "k1";
        let good = {
            use sha2::{Digest, Sha256};
            Sha256::digest(good_key).iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        let keys = ApiKeys::parse(&format!("{digest}, {good}")).unwrap();
        assert!(keys.is_enabled());
        assert_eq!(keys.identify(&req(&[])).unwrap(), None);
        assert_eq!(keys.identify(&req(&[("x-api-key", good_key)])).unwrap(), Some(Identity::api_key(good_key)));
        assert_eq!(keys.identify(&req(&[("x-api-key", "k2")])).unwrap_err().status, 401);
        // Disabled: the header is ignored.
        assert_eq!(ApiKeys::parse("").unwrap().identify(&req(&[("x-api-key", "k2")])).unwrap(), None);
        let err = ApiKeys::parse("secret-not-a-digest").unwrap_err();
        assert!(err.contains("entry 1") && !err.contains("secret"));
        assert!(ApiKeys::parse(&"zz".repeat(32)).is_err());
    }
}
