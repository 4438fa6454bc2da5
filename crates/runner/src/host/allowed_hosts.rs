//! `allowed_outbound_hosts`: which destinations a component may reach.
//!
//! A port of Spin 4.0.2's `spin-outbound-networking-config` (the
//! `AllowedHostConfig` and `OutboundUrl` types), so that an entry means here
//! exactly what it means on Spin and a destination Spin refuses is refused
//! here too:
//! - an entry is `scheme://host[:port]`, each part may be `*`; the scheme is
//!   letters only; a host is a name (`example.com`), `*.example.com` (any
//!   subdomain, not the domain itself), an IP literal (`127.0.0.1`,
//!   `[::1]`), a CIDR block (`10.0.0.0/8`; host bits are ignored) or `self`;
//! - the port is a number, `*`, or a half-open range `8000..8100` (the end is
//!   excluded); without one the scheme's well-known port applies (http 80,
//!   https 443, redis 6379, postgres 5432, mysql 3306, mqtt 1883) and a
//!   scheme without one (`rediss`, `tcp`) needs an explicit port;
//! - a destination is a URL; if it does not parse as one with a host, it is
//!   retried as `<default scheme>://<destination>`, so a socket address
//!   `127.0.0.1:6379` is checked as `tcp://127.0.0.1:6379`. A literal or
//!   CIDR matches IP addresses only by value: `localhost` does not match
//!   `127.0.0.1`.
//!
//! Not supported, unlike Spin: service chaining (`*.spin.internal`).

use anyhow::{bail, ensure, Context, Result};
use std::net::IpAddr;
use std::ops::Range;
use url::Host;

/// The compiled allow-list of one component. Empty means nothing is allowed.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    scheme: SchemePattern,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone, PartialEq)]
enum SchemePattern {
    Any,
    Exact(String),
}

#[derive(Debug, Clone, PartialEq)]
enum HostPattern {
    Any,
    /// `*.example.com`, kept as `.example.com`.
    AnySubdomain(String),
    /// `self`: relative requests to the app itself.
    ToSelf,
    Literal(Host),
    Cidr(Cidr),
}

#[derive(Debug, Clone, PartialEq)]
enum PortPattern {
    Any,
    Port(u16),
    Range(Range<u16>),
}

/// An IP network, as `ip_network::IpNetwork::from_str_truncate` reads it.
#[derive(Debug, Clone, PartialEq)]
struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `addr/prefix`, both parts required; host bits are dropped.
    fn parse(s: &str) -> Option<Cidr> {
        let (ip, prefix) = s.split_once('/')?;
        if ip.is_empty() || prefix.is_empty() {
            return None;
        }
        let ip: IpAddr = ip.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        let network = match ip {
            IpAddr::V4(v4) if prefix <= 32 => IpAddr::V4((u32::from(v4) & mask32(prefix)).into()),
            IpAddr::V6(v6) if prefix <= 128 => IpAddr::V6((u128::from(v6) & mask128(prefix)).into()),
            _ => return None,
        };
        Some(Cidr { network, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => u32::from(ip) & mask32(self.prefix) == u32::from(net),
            (IpAddr::V6(net), IpAddr::V6(ip)) => u128::from(ip) & mask128(self.prefix) == u128::from(net),
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// The port a scheme implies when an entry or a destination gives none.
pub fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl AllowedHosts {
    pub fn parse(entries: &[String]) -> Result<Self> {
        if entries.len() == 1 && entries[0] == "insecure:allow-all" {
            bail!("'insecure:allow-all' is not allowed - use '*://*:*' instead if you really want to allow all outbound traffic'");
        }
        let entries = entries.iter().map(|e| Entry::parse(e).with_context(|| format!("allowed_outbound_hosts entry {e:?}"))).collect::<Result<_>>()?;
        Ok(AllowedHosts { entries })
    }

    /// Whether the list allows `destination` (a URL, or `host:port` read as
    /// `<default_scheme>://host:port`). A refusal is reported on stderr in
    /// Spin's words; a destination that is not a URL is refused silently.
    pub fn check_url(&self, destination: &str, default_scheme: &str) -> bool {
        let Ok(url) = Destination::parse(destination, default_scheme) else {
            return false;
        };
        let allowed = self.entries.iter().any(|e| e.allows(&url));
        if !allowed {
            let pattern = format!("{}://{}", url.scheme, url.authority());
            eprintln!("Warning: A component tried to make an outbound network connection to disallowed destination '{pattern}'.");
            eprintln!("To allow this request, add 'allowed_outbound_hosts = [\"{pattern}\"]' to the manifest component section.");
        }
        allowed
    }

    /// Whether relative ("self") requests with one of these schemes are allowed.
    pub fn allows_relative(&self, schemes: &[&str]) -> bool {
        let allowed = self.entries.iter().any(|e| schemes.iter().any(|s| e.scheme.allows(s)) && matches!(e.host, HostPattern::Any | HostPattern::ToSelf));
        if !allowed {
            eprintln!("Warning: A component tried to make an HTTP request to its own app but it does not have permission.");
            eprintln!("To allow this request, add 'allowed_outbound_hosts = [\"{}://self\"]' to the manifest component section.", schemes.first().unwrap_or(&""));
        }
        allowed
    }
}

impl Entry {
    fn parse(entry: &str) -> Result<Entry> {
        let entry = entry.trim();
        let Some((scheme, rest)) = entry.split_once("://") else {
            match entry {
                "*" | ":" | "" | "?" => bail!(
                    "{entry:?} is not an allowed outbound host format: hosts must be in the form <scheme>://<host>[:<port>], with '*' wildcards allowed for each (use '*://*:*' to allow all outbound networking)"
                ),
                _ => bail!("{entry:?} does not contain a scheme (e.g., 'http://' or '*://')"),
            }
        };
        let (host, rest) = rest.rsplit_once(':').unwrap_or((rest, ""));
        let port = match rest.split_once('/') {
            Some((_, path)) if !path.is_empty() => bail!("{entry:?} has a path but is not allowed to"),
            Some((port, _)) => port,
            None => rest,
        };
        let port = PortPattern::parse(port, scheme).with_context(|| format!("Invalid allowed host port {port:?}"))?;
        let scheme = SchemePattern::parse(scheme).with_context(|| format!("Invalid allowed host scheme {scheme:?}"))?;
        let host = HostPattern::parse(host).with_context(|| format!("Invalid allowed host {host:?}"))?;
        Ok(Entry { scheme, host, port })
    }

    fn allows(&self, url: &Destination) -> bool {
        self.scheme.allows(&url.scheme) && self.host.allows(&url.host) && self.port.allows(url.port, &url.scheme)
    }
}

impl SchemePattern {
    fn parse(scheme: &str) -> Result<Self> {
        if scheme == "*" {
            return Ok(SchemePattern::Any);
        }
        ensure!(!scheme.starts_with('{'), "scheme lists are not supported");
        ensure!(scheme.chars().all(char::is_alphabetic), "only alphabetic characters are allowed");
        Ok(SchemePattern::Exact(scheme.to_owned()))
    }

    fn allows(&self, scheme: &str) -> bool {
        match self {
            SchemePattern::Any => true,
            SchemePattern::Exact(s) => s == scheme,
        }
    }
}

impl HostPattern {
    fn parse(host: &str) -> Result<Self> {
        let host = host.trim();
        if host == "*" {
            return Ok(HostPattern::Any);
        }
        if host == "self" || host == "self.alt" {
            return Ok(HostPattern::ToSelf);
        }
        if host.starts_with('{') {
            ensure!(host.ends_with('}'));
            bail!("host lists are not yet supported");
        }
        if let Some(cidr) = Cidr::parse(host) {
            return Ok(HostPattern::Cidr(cidr));
        }
        let host = host.trim_end_matches('/');
        ensure!(!host.contains('/'), "must not include a path");
        if let Some(domain) = host.strip_prefix("*.") {
            ensure!(!domain.contains('*'), "wildcards are allowed only as prefixes");
            return Ok(HostPattern::AnySubdomain(format!(".{domain}")));
        }
        ensure!(!host.contains('*'), "wildcards are allowed only as subdomains");
        Ok(HostPattern::Literal(Host::parse(host)?))
    }

    fn allows(&self, host: &str) -> bool {
        let Ok(host) = Host::parse(host) else { return false };
        match (self, host) {
            (HostPattern::Any, _) => true,
            (HostPattern::AnySubdomain(suffix), Host::Domain(domain)) => domain.ends_with(suffix.as_str()),
            (HostPattern::Literal(literal), host) => host == *literal,
            (HostPattern::Cidr(c), Host::Ipv4(ip)) => c.contains(ip.into()),
            (HostPattern::Cidr(c), Host::Ipv6(ip)) => c.contains(ip.into()),
            // Subdomains match names only, CIDRs addresses only, and `self`
            // only relative requests.
            (HostPattern::AnySubdomain(_) | HostPattern::Cidr(_) | HostPattern::ToSelf, _) => false,
        }
    }
}

impl PortPattern {
    fn parse(port: &str, scheme: &str) -> Result<Self> {
        if port.is_empty() {
            return well_known_port(scheme)
                .map(PortPattern::Port)
                .with_context(|| format!("no port was provided and the scheme {scheme:?} does not have a known default port number"));
        }
        if port == "*" {
            return Ok(PortPattern::Any);
        }
        ensure!(!port.starts_with('{'), "port lists are not yet supported");
        if let Some((start, end)) = port.split_once("..") {
            let start = start.parse().with_context(|| format!("port range {port:?} contains non-number"))?;
            let end = end.parse().with_context(|| format!("port range {port:?} contains non-number"))?;
            return Ok(PortPattern::Range(start..end));
        }
        Ok(PortPattern::Port(port.parse().with_context(|| format!("port {port:?} is not a number"))?))
    }

    fn allows(&self, port: Option<u16>, scheme: &str) -> bool {
        let Some(port) = port.or_else(|| well_known_port(scheme)) else {
            return matches!(self, PortPattern::Any);
        };
        match self {
            PortPattern::Any => true,
            PortPattern::Port(p) => *p == port,
            PortPattern::Range(r) => r.contains(&port),
        }
    }
}

/// A destination as Spin's `OutboundUrl` reads it.
struct Destination {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Destination {
    fn parse(destination: &str, default_scheme: &str) -> Result<Self> {
        // Credentials may hold characters a URL cannot (`#`, `/`): encode
        // them, since only the host and port matter here.
        let mut text = destination.to_owned();
        if let Some(at) = text.find('@') {
            let scheme_end = text.find("://").map(|e| e + 3).unwrap_or(0);
            let path_start = text[scheme_end..].find('/').map(|e| e + scheme_end).unwrap_or(usize::MAX);
            if at < path_start {
                let userinfo = &text[scheme_end..at];
                text = format!("{}{}{}", &text[..scheme_end], percent_encode(userinfo), &text[at..]);
            }
        }
        let parsed = match url::Url::parse(&text) {
            Ok(u) if u.has_host() => u,
            first => match url::Url::parse(&format!("{default_scheme}://{text}")) {
                Ok(u) => u,
                Err(second) => return Err(first.err().map(anyhow::Error::from).unwrap_or_else(|| second.into())),
            },
        };
        Ok(Destination {
            scheme: parsed.scheme().to_owned(),
            host: parsed.host_str().with_context(|| format!("{text:?} does not have a host component"))?.to_owned(),
            port: parsed.port(),
        })
    }

    fn authority(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }
}

/// `urlencoding::encode`: everything but ASCII letters, digits and `-._~`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(e: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(&e.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn entry(e: &str) -> Entry {
        Entry::parse(e).unwrap()
    }

    // The cases of Spin's own tests (outbound-networking-config/src/allowed_hosts.rs).

    #[test]
    fn entries_parse_as_in_spin() {
        let literal = |h: &str| HostPattern::Literal(Host::parse(h).unwrap());
        let e = |scheme: SchemePattern, host: HostPattern, port: PortPattern| Entry { scheme, host, port };
        let http = || SchemePattern::Exact("http".into());
        assert_eq!(entry("http://spin.fermyon.dev"), e(http(), literal("spin.fermyon.dev"), PortPattern::Port(80)));
        assert_eq!(entry("http://spin.fermyon.dev/"), e(http(), literal("spin.fermyon.dev"), PortPattern::Port(80)));
        assert_eq!(entry("https://spin.fermyon.dev").port, PortPattern::Port(443));
        assert_eq!(entry("http://spin.fermyon.dev:4444/").port, PortPattern::Port(4444));
        assert_eq!(entry("http://spin.fermyon.dev:4444..5555").port, PortPattern::Range(4444..5555));
        assert_eq!(entry("*://spin.fermyon.dev:7777").scheme, SchemePattern::Any);
        assert_eq!(entry("http://self").host, HostPattern::ToSelf);
        assert_eq!(entry("http://localhost:3001").host, literal("localhost"));
        assert_eq!(entry("http://*.example.com").host, HostPattern::AnySubdomain(".example.com".into()));
        assert_eq!(entry("http://192.168.1.1:3002").host, literal("192.168.1.1"));
        assert_eq!(entry("http://[::1]:8001").host, literal("[::1]"));
        assert_eq!(entry("*://127.0.0.0/24:80").host, HostPattern::Cidr(Cidr { network: "127.0.0.0".parse().unwrap(), prefix: 24 }));
        assert_eq!(entry("*://ff00::/8:80").host, HostPattern::Cidr(Cidr { network: "ff00::".parse().unwrap(), prefix: 8 }));
        assert_eq!(entry("*://*:*"), e(SchemePattern::Any, HostPattern::Any, PortPattern::Any));
    }

    #[test]
    fn malformed_entries_are_rejected_as_in_spin() {
        for bad in [
            "spin.fermyon.dev",
            "spin.fermyon.dev:80",
            "localhost",
            "localhost:3001",
            "http://[::1]",
            "*://127.0.0.0/24",
            "http://spin.fermyon.dev/a",
            "http://spin.fermyon.dev:6666/a/b",
            "http://*.fermyon.dev/a",
            "example.com",
            // Not in Spin's tests, but what its parser does:
            "tcp://127.0.0.1",
            "rediss://cache.example",
            "*://h",
            "redis+tls://h:1",
            "http://h:1-2",
            "http://a.*.example.com",
        ] {
            assert!(AllowedHosts::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
        assert!(AllowedHosts::parse(&["insecure:allow-all".into()]).is_err());
        assert!(AllowedHosts::parse(&["spin.fermyon.dev".into(), "insecure:allow-all".into()]).is_err());
    }

    #[test]
    fn destinations_are_checked_as_in_spin() {
        let h = hosts(&["*://spin.fermyon.dev:443", "http://example.com:8383"]);
        assert!(h.check_url("http://example.com:8383/foo/bar", "http"));
        assert!(h.check_url("https://spin.fermyon.dev", "https"));
        assert!(h.check_url("https://spin.fermyon.dev/", "https"));
        assert!(!h.check_url("http://example.com/", "http"));
        assert!(!h.check_url("http://google.com/", "http"));
        assert!(h.check_url("spin.fermyon.dev:443", "https"));
        assert!(h.check_url("example.com:8383", "http"));

        let h = hosts(&["https://my.api.com/"]);
        assert!(h.check_url("https://my.api.com", "https"));
        assert!(h.check_url("https://my.api.com/", "https"));

        let h = hosts(&["http://*.example.com", "http://*.example2.com:8383"]);
        assert!(h.check_url("http://a.example.com/foo/bar", "http"));
        assert!(h.check_url("http://a.b.example.com/foo/bar", "http"));
        assert!(h.check_url("http://a.b.example2.com:8383/foo/bar", "http"));
        assert!(!h.check_url("http://a.b.example2.com/foo/bar", "http"));
        assert!(!h.check_url("http://example.com/foo/bar", "http"));
        assert!(!h.check_url("http://example.com:8383/foo/bar", "http"));
        assert!(!h.check_url("http://myexample.com/foo/bar", "http"));

        let h = hosts(&["mysql://xyz.com"]);
        assert!(h.check_url("mysql://user:pass#word@xyz.com", "mysql"));
        assert!(h.check_url("mysql://user%3Apass%23word@xyz.com", "mysql"));
        assert!(h.check_url("user%3Apass%23word@xyz.com", "mysql"));

        assert!(hosts(&["*://127.0.0.1/24:63551"]).check_url("tcp://127.0.0.1:63551", "tcp"));
    }

    #[test]
    fn socket_addresses_match_ip_literals_and_cidrs() {
        // What wasi:sockets checks: `SocketAddr::to_string()` with scheme tcp or udp.
        let h = hosts(&["tcp://127.0.0.1:6379", "tcp://10.1.0.0/16:*", "udp://[::1]:53", "tcp://localhost:7000"]);
        assert!(h.check_url("127.0.0.1:6379", "tcp"));
        assert!(!h.check_url("127.0.0.1:6380", "tcp"));
        assert!(!h.check_url("127.0.0.2:6379", "tcp"));
        assert!(!h.check_url("127.0.0.1:6379", "udp"), "the scheme must match");
        assert!(h.check_url("10.1.255.7:1", "tcp"));
        assert!(!h.check_url("10.2.0.1:1", "tcp"));
        assert!(h.check_url("[::1]:53", "udp"));
        assert!(!h.check_url("[::2]:53", "udp"));
        assert!(!h.check_url("127.0.0.1:7000", "tcp"), "a name never matches an address");
        // A CIDR only matches addresses of its own family.
        assert!(!hosts(&["tcp://0.0.0.0/0:*"]).check_url("[::ffff:127.0.0.1]:1", "tcp"));
        assert!(hosts(&["tcp://::/0:*"]).check_url("[::ffff:127.0.0.1]:1", "tcp"));
        // A port-less destination of a scheme with no well-known port matches only `*`.
        assert!(!hosts(&["tcp://127.0.0.1:1"]).check_url("tcp://127.0.0.1", "tcp"));
        assert!(hosts(&["tcp://127.0.0.1:*"]).check_url("tcp://127.0.0.1", "tcp"));
    }

    #[test]
    fn redis_and_http_destinations() {
        let h = hosts(&["redis://127.0.0.1:6379", "https://*.upstash.io", "http://localhost:*", "http://127.0.0.1:8000..8002"]);
        assert!(h.check_url("redis://127.0.0.1:6379", "redis"));
        assert!(h.check_url("redis://:pw@127.0.0.1:6379/0", "redis"));
        assert!(h.check_url("redis://127.0.0.1", "redis"), "the well-known port");
        assert!(!h.check_url("redis://127.0.0.1:6380", "redis"));
        assert!(!h.check_url("rediss://127.0.0.1:6379", "redis"));
        assert!(h.check_url("https://eu1-x.upstash.io/pipeline", "https"));
        assert!(!h.check_url("https://upstash.io.evil.com", "https"));
        assert!(h.check_url("http://LOCALHOST:8079", "https"), "names compare case-insensitively");
        assert!(h.check_url("http://127.0.0.1:8001/x", "https"));
        assert!(!h.check_url("http://127.0.0.1:8002/x", "https"), "a range excludes its end");
        assert!(!h.check_url("not a url", "https"));
        assert!(!AllowedHosts::default().check_url("http://localhost:1", "https"));
    }

    #[test]
    fn relative_requests_need_self_or_any_host() {
        assert!(hosts(&["http://self"]).allows_relative(&["http", "https"]));
        assert!(hosts(&["*://*:*"]).allows_relative(&["http", "https"]));
        assert!(!hosts(&["http://localhost:3000"]).allows_relative(&["http", "https"]));
        assert!(!hosts(&["https://self"]).allows_relative(&["http"]));
    }

    #[test]
    fn cidr_truncates_host_bits() {
        let c = Cidr::parse("192.168.1.255/24").unwrap();
        assert_eq!(c.network, "192.168.1.0".parse::<IpAddr>().unwrap());
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("10.0.0.0").is_none());
        assert!(Cidr::parse("/8").is_none());
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
    }
}
