//! Where a request came from: the client's address, whether it arrived over
//! HTTPS, its own origin, and the same-origin (CSRF) guard.
//!
//! `spin-client-addr` and `spin-full-url` are set by the host (Spin and the
//! runner drop client-sent `spin-*` headers). `X-Forwarded-*` headers are
//! believed only when the TCP peer is one of the `trusted_proxies`, and
//! `X-Forwarded-For` only back to the first hop that is not one: everything
//! to its left was written by the client and proves nothing. Sessions and
//! rate limits read the client through this one type, so both see one client.

use super::{Problem, Request};
use crate::config::{Config, ConfigError, Vars};
use std::net::{IpAddr, SocketAddr};

/// An IP network (`10.0.0.0/8`, `::1`). IPv4-mapped IPv6 counts as IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn parse(s: &str) -> Option<IpNet> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let addr = ip.parse::<IpAddr>().ok()?.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (a, b, bits) = match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
            _ => return false,
        };
        let shift = bits - self.prefix as u32;
        shift >= bits || (a >> shift) == (b >> shift)
    }
}

/// Proxies whose `X-Forwarded-*` headers are believed (`trusted_proxies`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub const VARIABLE: &'static str = "trusted_proxies";

    /// A comma- or space-separated list such as `10.0.0.0/8, 127.0.0.1, fd00::/8`.
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        list.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(|s| IpNet::parse(s).ok_or_else(|| format!("{s:?} is not an IP address or CIDR block")))
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    pub fn from_vars(vars: &impl Vars) -> Result<TrustedProxies, ConfigError> {
        Config::new(vars).parse(Self::VARIABLE, TrustedProxies::default(), TrustedProxies::parse)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn peer_is_trusted(&self, req: &Request) -> bool {
        peer_ip(req).is_some_and(|ip| self.contains(ip))
    }

    /// The client's address: the peer, or, when the peer is a trusted proxy,
    /// the rightmost `X-Forwarded-For` hop that is not one (a garbled hop
    /// stops the walk at the last trusted one). `None` when the host gave no
    /// address.
    pub fn client_ip(&self, req: &Request) -> Option<IpAddr> {
        let peer = peer_ip(req)?;
        if !self.contains(peer) {
            return Some(peer);
        }
        let hops: Vec<String> = req
            .header_all("x-forwarded-for")
            .flat_map(|v| String::from_utf8_lossy(v).split(',').map(str::to_owned).collect::<Vec<_>>())
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match parse_addr(hop) {
                Some(ip) => {
                    client = ip;
                    if !self.contains(ip) {
                        break;
                    }
                }
                None => break,
            }
        }
        Some(client)
    }

    /// True when the request reached the host over HTTPS, or a trusted proxy
    /// says it reached the proxy over HTTPS.
    pub fn is_https(&self, req: &Request) -> bool {
        if req.header("spin-full-url").is_some_and(|u| u.len() >= 8 && u[..8].eq_ignore_ascii_case("https://")) {
            return true;
        }
        self.peer_is_trusted(req) && forwarded_first(req, "x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https"))
    }

    /// The request's own origin: `spin-full-url`'s scheme and authority, or,
    /// behind a trusted proxy, `X-Forwarded-Proto` and `X-Forwarded-Host`.
    pub fn own_origin(&self, req: &Request) -> Option<String> {
        let full = req.header("spin-full-url").and_then(url_origin);
        if self.peer_is_trusted(req) {
            let proto = forwarded_first(req, "x-forwarded-proto");
            let host = forwarded_first(req, "x-forwarded-host");
            if proto.is_some() || host.is_some() {
                let (scheme, authority) = full.as_deref().and_then(|f| f.split_once("://")).unwrap_or(("http", ""));
                return normalize_origin(&format!("{}://{}", proto.unwrap_or(scheme), host.unwrap_or(authority)));
            }
        }
        full
    }
}

/// The TCP peer, from `spin-client-addr`.
pub fn peer_ip(req: &Request) -> Option<IpAddr> {
    parse_addr(req.header("spin-client-addr")?)
}

/// `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]` or `[::1]:5678`, as hosts and
/// proxies write them; IPv4-mapped IPv6 is the IPv4 address.
fn parse_addr(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse::<IpAddr>()
        .or_else(|_| s.parse::<SocketAddr>().map(|a| a.ip()))
        .or_else(|_| s.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>())
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The first (client-most) entry of a comma-separated forwarding header.
fn forwarded_first<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.header(name)?.split(',').next().map(str::trim).filter(|s| !s.is_empty())
}

/// `scheme://host[:port]` of a URL (Origin or Referer), normalised.
fn url_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    normalize_origin(&format!("{scheme}://{}", &rest[..end]))
}

/// Lower-cases scheme and host and drops the default port: `HTTPS://A.example:443`
/// → `https://a.example`. Only http(s) origins without path, user info or
/// query are origins; anything else is `None`.
pub fn normalize_origin(s: &str) -> Option<String> {
    let (scheme, authority) = s.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let valid = |c: char| c.is_ascii_alphanumeric() || ".-:[]_".contains(c);
    if authority.is_empty() || !authority.chars().all(valid) {
        return None;
    }
    let default = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority.strip_suffix(default).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}"))
}

/// The CSRF defence for requests that change state on the strength of a
/// cookie: their `Origin` (or, failing that, `Referer`) must be one of
/// `allowed_origins`, by default the request's own origin. A browser sends
/// `Origin` with every cross-origin (and modern browsers with every) POST,
/// PUT, PATCH and DELETE; a request with neither header is not from a
/// browser that could have been tricked into it, and passes. Safe methods
/// always pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SameOrigin {
    pub proxies: TrustedProxies,
    /// Normalised origins (`https://app.example.com`). Empty: the request's own.
    pub allowed: Vec<String>,
}

impl SameOrigin {
    pub fn from_vars(vars: &impl Vars) -> Result<SameOrigin, ConfigError> {
        let allowed = Config::new(vars)
            .list("allowed_origins", |s| normalize_origin(s).ok_or_else(|| format!("{s:?} is not an http(s) origin")))?;
        Ok(SameOrigin { proxies: TrustedProxies::from_vars(vars)?, allowed })
    }

    /// Whether the guard has anything to check: a state-changing method
    /// that says where it came from (`Origin`, else `Referer`). When not,
    /// [`Self::check`] passes, and its variables need not be read.
    pub fn applies(req: &Request) -> bool {
        !matches!(req.method.as_str(), "GET" | "HEAD" | "OPTIONS") && (req.header("origin").is_some() || req.header("referer").is_some())
    }

    pub fn check(&self, req: &Request) -> Result<(), Problem> {
        if !Self::applies(req) {
            return Ok(());
        }
        let claimed = match (req.header("origin"), req.header("referer")) {
            (Some(o), _) => o.trim(),
            (_, r) => r.unwrap_or_default().trim(),
        };
        // "Origin: null" (sandboxed frames, file://) and garbage fail here.
        let refuse = |why: String| Err(Problem::forbidden(format!("cross-site request refused: {why}")));
        let Some(origin) = url_origin(claimed) else { return refuse("the request's origin is opaque or invalid".into()) };
        let allowed = if self.allowed.is_empty() {
            self.proxies.own_origin(req).is_some_and(|own| own == origin)
        } else {
            self.allowed.contains(&origin)
        };
        if allowed {
            Ok(())
        } else {
            refuse(format!("requests from {origin} are not allowed"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &str) -> TrustedProxies {
        TrustedProxies::parse(list).unwrap()
    }

    fn req(method: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            method: method.into(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn ip_networks() {
        let n = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.0.9".parse().unwrap()), "v4-mapped");
        assert!(IpNet::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(IpNet::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(!IpNet::parse("::1").unwrap().contains("127.0.0.1".parse().unwrap()));
        assert!(IpNet::parse("nope").is_none());
        assert!(IpNet::parse("10.0.0.0/33").is_none());
        assert_eq!(proxies("10.0.0.0/8, ::1 192.168.0.1").0.len(), 3);
        assert!(TrustedProxies::parse("10.0.0.0/99").is_err());
    }

    #[test]
    fn client_ip_believes_forwarded_for_only_from_trusted_proxies() {
        let xff = ("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.2");
        let p = proxies("10.0.0.0/8");
        assert_eq!(p.client_ip(&req("GET", &[("spin-client-addr", "9.9.9.9:1234"), xff])), Some("9.9.9.9".parse().unwrap()));
        assert_eq!(p.client_ip(&req("GET", &[("spin-client-addr", "10.0.0.1:1234"), xff])), Some("1.2.3.4".parse().unwrap()));
        let garbled = req("GET", &[("spin-client-addr", "10.0.0.1:1234"), ("x-forwarded-for", "1.2.3.4, junk, 10.0.0.2")]);
        assert_eq!(p.client_ip(&garbled), Some("10.0.0.2".parse().unwrap()));
        // Proxies write hops with ports and brackets too.
        let ported = req("GET", &[("spin-client-addr", "10.0.0.1:1"), ("x-forwarded-for", "[2001:db8::1]:443, 1.2.3.4:80")]);
        assert_eq!(p.client_ip(&ported), Some("1.2.3.4".parse().unwrap()));
        let v6 = req("GET", &[("spin-client-addr", "[::1]:80")]);
        assert_eq!(proxies("").client_ip(&v6), Some("::1".parse().unwrap()));
        assert_eq!(proxies("").client_ip(&req("GET", &[])), None);
        let mapped = req("GET", &[("spin-client-addr", "[::ffff:10.0.0.1]:9"), ("x-forwarded-for", "5.5.5.5")]);
        assert_eq!(p.client_ip(&mapped), Some("5.5.5.5".parse().unwrap()), "a v4-mapped peer is the IPv4 proxy");
    }

    #[test]
    fn https_per_full_url_or_trusted_forwarded_proto() {
        let p = proxies("127.0.0.1");
        assert!(p.is_https(&req("GET", &[("spin-full-url", "https://a.example/x")])));
        assert!(!p.is_https(&req("GET", &[("spin-full-url", "http://a.example/x")])));
        let fwd = |peer: &str| req("GET", &[("spin-full-url", "http://a/x"), ("spin-client-addr", peer), ("x-forwarded-proto", "https, http")]);
        assert!(p.is_https(&fwd("127.0.0.1:5")));
        assert!(!p.is_https(&fwd("8.8.8.8:5")), "untrusted peers cannot claim HTTPS");
    }

    #[test]
    fn same_origin_guard() {
        let own = [("spin-full-url", "http://127.0.0.1:3000/auth/login")];
        let guard = |proxy_list: &str, origins: &str| SameOrigin {
            proxies: proxies(proxy_list),
            allowed: origins.split(',').filter(|s| !s.is_empty()).map(|s| normalize_origin(s).unwrap()).collect(),
        };
        let with = |extra: &[(&str, &str)]| {
            let mut h = own.to_vec();
            h.extend_from_slice(extra);
            req("POST", &h)
        };
        let g = guard("", "");
        assert!(g.check(&with(&[("origin", "http://127.0.0.1:3000")])).is_ok());
        assert!(g.check(&with(&[])).is_ok(), "no browser, no CSRF");
        assert!(!SameOrigin::applies(&with(&[])) && !SameOrigin::applies(&req("GET", &[("origin", "https://evil.example")])));
        assert!(SameOrigin::applies(&with(&[("referer", "http://x/")])));
        assert_eq!(g.check(&with(&[("origin", "https://evil.example")])).unwrap_err().status, 403);
        assert!(g.check(&with(&[("origin", "null")])).is_err());
        assert!(g.check(&with(&[("referer", "http://127.0.0.1:3000/page?q=1")])).is_ok());
        assert!(g.check(&with(&[("referer", "http://evil.example/http://127.0.0.1:3000")])).is_err());
        assert!(g.check(&req("GET", &[("origin", "https://evil.example")])).is_ok(), "safe methods pass");
        let listed = guard("", "https://app.example");
        assert!(listed.check(&with(&[("origin", "https://APP.example:443")])).is_ok());
        assert!(listed.check(&with(&[("origin", "http://127.0.0.1:3000")])).is_err(), "the list replaces same-origin");
        // Behind a trusted TLS proxy the public origin is the forwarded one.
        let r = req("POST", &[("spin-full-url", "http://internal:80/x"), ("spin-client-addr", "10.0.0.1:9"),
            ("x-forwarded-proto", "https"), ("x-forwarded-host", "app.example"), ("origin", "https://app.example")]);
        assert!(guard("10.0.0.1", "").check(&r).is_ok());
    }

    #[test]
    fn allowed_origins_are_validated() {
        let vars = |v: &str| std::collections::HashMap::from([("allowed_origins".to_string(), v.to_string())]);
        let g = SameOrigin::from_vars(&vars("https://App.example.com:443, http://localhost:3000")).unwrap();
        assert_eq!(g.allowed, vec!["https://app.example.com", "http://localhost:3000"]);
        assert!(SameOrigin::from_vars(&vars("*")).is_err());
        assert_eq!(SameOrigin::from_vars(&vars("https://a.example/path")).unwrap_err().var, "allowed_origins");
    }
}
