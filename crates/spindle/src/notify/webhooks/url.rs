//! Webhook URLs, and the allow-list registrations are checked against
//! (Spin's `allowed_outbound_hosts` grammar).

use super::MAX_URL_LEN;

/// A webhook URL, checked: `http(s)://host[:port][/path][?query]`, ASCII,
/// no user info, no fragment, at most [`MAX_URL_LEN`] bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookUrl {
    pub scheme: String,
    pub host: String,
    pub port: u16,
    pub url: String,
}

pub fn parse_url(s: &str) -> Result<WebhookUrl, String> {
    if s.len() > MAX_URL_LEN || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("url must be at most {MAX_URL_LEN} printable ASCII characters"));
    }
    let (scheme, rest) = s.split_once("://").ok_or("url must start with http:// or https://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err("url must start with http:// or https://".into()),
    };
    if s.contains('#') {
        return Err("url must not have a fragment".into());
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains('@') {
        return Err("url must not carry credentials".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or("bad IPv6 host")?;
        (h.to_owned(), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    let host = host.to_ascii_lowercase();
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b))
        && !host.starts_with(['.', '-']);
    if !host_ok {
        return Err("url has no valid host".into());
    }
    let port = match port {
        None => default_port,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or("url has an invalid port")?,
    };
    Ok(WebhookUrl { scheme, host, port, url: s.to_owned() })
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    Subdomain(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Origin {
    scheme: Option<String>,
    host: HostPattern,
    ports: (u16, u16),
}

/// Where webhooks may point: `scheme://host[:port]` entries in the grammar
/// of Spin's `allowed_outbound_hosts` (`*` for any scheme, host or port,
/// `*.example.com` for subdomains, `8000-8099` for a port range), separated
/// by commas or spaces. Empty allows nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList(Vec<Origin>);

impl AllowList {
    pub fn parse(list: &str) -> Result<AllowList, String> {
        let mut out = Vec::new();
        for item in list.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()) {
            let bad = || format!("{item:?} is not scheme://host[:port]");
            let (scheme, rest) = item.split_once("://").ok_or_else(bad)?;
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            if rest.contains(['/', '@', '?', '#']) {
                return Err(bad());
            }
            let scheme = match scheme.to_ascii_lowercase().as_str() {
                "*" => None,
                s @ ("http" | "https") => Some(s.to_owned()),
                _ => return Err(format!("{item:?}: webhooks are http or https")),
            };
            let (host, port) = match rest.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h, Some(p)),
                _ => (rest, None),
            };
            let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
            let host = match host.as_str() {
                "*" => HostPattern::Any,
                h if h.starts_with("*.") && h.len() > 2 && !h[2..].contains('*') => HostPattern::Subdomain(h[2..].to_owned()),
                h if !h.is_empty() && !h.contains('*') => HostPattern::Exact(h.to_owned()),
                _ => return Err(bad()),
            };
            let ports = match port {
                Some("*") => (1, u16::MAX),
                Some(p) => match p.split_once('-') {
                    Some((lo, hi)) => (lo.parse().map_err(|_| bad())?, hi.parse().map_err(|_| bad())?),
                    None => {
                        let n = p.parse().map_err(|_| bad())?;
                        (n, n)
                    }
                },
                None => match scheme.as_deref() {
                    Some("http") => (80, 80),
                    Some(_) => (443, 443),
                    None => return Err(format!("{item:?}: a wildcard scheme needs a port")),
                },
            };
            out.push(Origin { scheme, host, ports });
        }
        Ok(AllowList(out))
    }

    pub fn allows(&self, u: &WebhookUrl) -> bool {
        self.0.iter().any(|o| {
            o.scheme.as_deref().is_none_or(|s| s == u.scheme)
                && match &o.host {
                    HostPattern::Any => true,
                    HostPattern::Exact(h) => *h == u.host,
                    HostPattern::Subdomain(s) => u.host.ends_with(&format!(".{s}")),
                }
                && (o.ports.0..=o.ports.1).contains(&u.port)
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let u = parse_url("https://hooks.example.com/a/b?x=1").unwrap();
        assert_eq!((u.scheme.as_str(), u.host.as_str(), u.port), ("https", "hooks.example.com", 443));
        assert_eq!(parse_url("http://127.0.0.1:8080/h").unwrap().port, 8080);
        assert_eq!(parse_url("http://[::1]:9/").unwrap().host, "::1");
        for bad in ["ftp://x/", "http://", "http://u:p@x/", "http://x/#f", "http://x:0/", "http://x:99999/", "http://a b/", "https://-x/", "x"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert!(parse_url(&format!("https://x/{}", "a".repeat(MAX_URL_LEN))).is_err());
    }

    #[test]
    fn the_allow_list_uses_spins_grammar() {
        let a = AllowList::parse("https://*.example.com, http://127.0.0.1:8000-8099 *://localhost:*").unwrap();
        let ok = |s: &str| a.allows(&parse_url(s).unwrap());
        assert!(ok("https://hooks.example.com/x"));
        assert!(!ok("https://example.com/x"));
        assert!(!ok("http://hooks.example.com/x"));
        assert!(ok("http://127.0.0.1:8042/"));
        assert!(!ok("http://127.0.0.1:9000/"));
        assert!(ok("https://localhost:1/"));
        assert!(!AllowList::parse("").unwrap().allows(&parse_url("https://x/").unwrap()));
        for bad in ["hooks.example.com", "ftp://x", "https://x/path", "*://x", "https://a*b"] {
            assert!(AllowList::parse(bad).is_err(), "{bad}");
        }
    }
}
