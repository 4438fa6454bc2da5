//! What a request says about where it came from: the client's IP, whether it
//! arrived over HTTPS, and whether a browser sent it from an allowed origin.
//!
//! `spin-client-addr` and `spin-full-url` are set by the host (Spin and the
//! runner drop client-sent `spin-*` headers). `X-Forwarded-*` headers are
//! believed only when the peer is in `trusted_proxies`.

use super::{SecurePolicy, SessionConfig, SessionError};
use crate::http::Request;
use std::net::{IpAddr, SocketAddr};

/// The TCP peer, from `spin-client-addr` (`1.2.3.4:5678` or `[::1]:5678`).
pub fn peer_ip(req: &Request) -> Option<IpAddr> {
    let v = req.header("spin-client-addr")?.trim();
    v.parse::<SocketAddr>().map(|s| s.ip()).or_else(|_| v.parse::<IpAddr>()).ok().map(|ip| ip.to_canonical())
}

impl SessionConfig {
    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(ip))
    }

    fn peer_is_trusted(&self, req: &Request) -> bool {
        peer_ip(req).is_some_and(|ip| self.trusted(ip))
    }

    /// The client's IP: the peer, or, behind trusted proxies, the right-most
    /// `X-Forwarded-For` hop that is not itself a trusted proxy (a garbled hop
    /// stops the walk at the last trusted one). The same rule as
    /// `spindle::ratelimit`'s, so both see one client.
    pub fn client_ip(&self, req: &Request) -> Option<IpAddr> {
        let peer = peer_ip(req)?;
        if !self.trusted(peer) {
            return Some(peer);
        }
        let hops: Vec<String> = req
            .header_all("x-forwarded-for")
            .flat_map(|v| String::from_utf8_lossy(v).split(',').map(|s| s.trim().to_owned()).collect::<Vec<_>>())
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip.to_canonical();
                    if !self.trusted(client) {
                        break;
                    }
                }
                Err(_) => break,
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

    /// Whether the cookie set in answer to `req` carries `Secure`.
    pub fn secure_for(&self, req: &Request) -> bool {
        match self.secure {
            SecurePolicy::Always => true,
            SecurePolicy::Never => false,
            SecurePolicy::Auto => self.is_https(req),
        }
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
                let origin = format!("{}://{}", proto.unwrap_or(scheme), host.unwrap_or(authority));
                return normalize_origin(&origin);
            }
        }
        full
    }

    /// CSRF defence for requests that change state on the strength of the
    /// cookie. A browser sends `Origin` with every cross-origin (and modern
    /// browsers with every) POST, PUT, PATCH and DELETE; failing that we look
    /// at `Referer`. It must be in `allowed_origins` (default: the request's
    /// own origin). A request with neither header is not from a browser
    /// that could have been tricked into it, and passes. Safe methods always pass.
    pub fn check_origin(&self, req: &Request) -> Result<(), SessionError> {
        if matches!(req.method.as_str(), "GET" | "HEAD" | "OPTIONS") {
            return Ok(());
        }
        let claimed = match (req.header("origin"), req.header("referer")) {
            (Some(o), _) => o.trim(),
            (None, Some(r)) => r.trim(),
            (None, None) => return Ok(()),
        };
        // "Origin: null" (sandboxed frames, file://) and garbage fail here.
        let origin = url_origin(claimed).ok_or_else(|| SessionError::CrossOrigin("the request's origin is opaque or invalid".into()))?;
        let allowed = if self.allowed_origins.is_empty() {
            self.own_origin(req).is_some_and(|own| own == origin)
        } else {
            self.allowed_origins.contains(&origin)
        };
        if allowed {
            Ok(())
        } else {
            Err(SessionError::CrossOrigin(format!("requests from {origin} are not allowed")))
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(proxies: &str, origins: &str) -> SessionConfig {
        let mut c = SessionConfig::new(vec!["0123456789abcdef-secret".into()]).unwrap();
        c.trusted_proxies = proxies.split(',').filter(|s| !s.is_empty()).map(|s| super::super::IpNet::parse(s).unwrap()).collect();
        c.allowed_origins = origins.split(',').filter(|s| !s.is_empty()).map(|s| normalize_origin(s).unwrap()).collect();
        c
    }

    fn req(method: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            method: method.into(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn client_ip_believes_forwarded_for_only_from_trusted_proxies() {
        let xff = ("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.2");
        let direct = req("GET", &[("spin-client-addr", "9.9.9.9:1234"), xff]);
        assert_eq!(cfg("10.0.0.0/8", "").client_ip(&direct), Some("9.9.9.9".parse().unwrap()));
        let proxied = req("GET", &[("spin-client-addr", "10.0.0.1:1234"), xff]);
        assert_eq!(cfg("10.0.0.0/8", "").client_ip(&proxied), Some("1.2.3.4".parse().unwrap()));
        let garbled = req("GET", &[("spin-client-addr", "10.0.0.1:1234"), ("x-forwarded-for", "1.2.3.4, junk, 10.0.0.2")]);
        assert_eq!(cfg("10.0.0.0/8", "").client_ip(&garbled), Some("10.0.0.2".parse().unwrap()));
        let v6 = req("GET", &[("spin-client-addr", "[::1]:80")]);
        assert_eq!(cfg("", "").client_ip(&v6), Some("::1".parse().unwrap()));
        assert_eq!(cfg("", "").client_ip(&req("GET", &[])), None);
    }

    #[test]
    fn https_per_full_url_or_trusted_forwarded_proto() {
        let c = cfg("127.0.0.1", "");
        assert!(c.is_https(&req("GET", &[("spin-full-url", "https://a.example/x")])));
        assert!(!c.is_https(&req("GET", &[("spin-full-url", "http://a.example/x")])));
        let fwd = |peer: &str| req("GET", &[("spin-full-url", "http://a/x"), ("spin-client-addr", peer), ("x-forwarded-proto", "https, http")]);
        assert!(c.is_https(&fwd("127.0.0.1:5")));
        assert!(!c.is_https(&fwd("8.8.8.8:5")), "untrusted peers cannot claim HTTPS");
        let mut always = c.clone();
        always.secure = SecurePolicy::Always;
        assert!(always.secure_for(&req("GET", &[])));
    }

    #[test]
    fn origin_check() {
        let own = [("spin-full-url", "http://127.0.0.1:3000/auth/login")];
        let c = cfg("", "");
        let with = |extra: &[(&str, &str)]| {
            let mut h = own.to_vec();
            h.extend_from_slice(extra);
            req("POST", &h)
        };
        assert!(c.check_origin(&with(&[("origin", "http://127.0.0.1:3000")])).is_ok());
        assert!(c.check_origin(&with(&[])).is_ok(), "no browser, no CSRF");
        assert!(c.check_origin(&with(&[("origin", "https://evil.example")])).is_err());
        assert!(c.check_origin(&with(&[("origin", "null")])).is_err());
        assert!(c.check_origin(&with(&[("referer", "http://127.0.0.1:3000/page?q=1")])).is_ok());
        assert!(c.check_origin(&with(&[("referer", "http://evil.example/http://127.0.0.1:3000")])).is_err());
        assert!(c.check_origin(&req("GET", &[("origin", "https://evil.example")])).is_ok(), "safe methods pass");
        let listed = cfg("", "https://app.example");
        assert!(listed.check_origin(&with(&[("origin", "https://APP.example:443")])).is_ok());
        assert!(listed.check_origin(&with(&[("origin", "http://127.0.0.1:3000")])).is_err(), "the list replaces same-origin");
        // Behind a trusted TLS proxy the public origin is the forwarded one.
        let proxied = cfg("10.0.0.1", "");
        let r = req("POST", &[("spin-full-url", "http://internal:80/x"), ("spin-client-addr", "10.0.0.1:9"),
            ("x-forwarded-proto", "https"), ("x-forwarded-host", "app.example"), ("origin", "https://app.example")]);
        assert!(proxied.check_origin(&r).is_ok());
    }
}
