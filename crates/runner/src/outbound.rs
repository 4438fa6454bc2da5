//! `allowed_outbound_hosts`: which scheme://host:port a component may reach.

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, PartialEq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com`: any subdomain of the suffix.
    Subdomain(String),
}

#[derive(Debug, Clone, PartialEq)]
enum PortPattern {
    Any,
    Range(u16, u16),
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

/// The compiled allow-list of one component. Empty means nothing is allowed.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    rules: Vec<Rule>,
}

pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "redis" | "rediss" => Some(6379),
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        _ => None,
    }
}

impl AllowedHosts {
    pub fn parse(entries: &[String]) -> Result<Self> {
        let rules = entries.iter().map(|e| parse_rule(e).with_context(|| format!("allowed_outbound_hosts entry {e:?}"))).collect::<Result<_>>()?;
        Ok(AllowedHosts { rules })
    }

    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        self.rules.iter().any(|r| {
            r.scheme.as_deref().is_none_or(|s| s == scheme)
                && match &r.host {
                    HostPattern::Any => true,
                    HostPattern::Exact(h) => *h == host,
                    HostPattern::Subdomain(suffix) => host.ends_with(&format!(".{suffix}")),
                }
                && match r.port {
                    PortPattern::Any => true,
                    PortPattern::Range(lo, hi) => (lo..=hi).contains(&port),
                }
        })
    }

    /// Checks a URL such as `redis://user:pw@host:6379/0`.
    pub fn allows_url(&self, url: &str) -> Result<bool> {
        let u = url::Url::parse(url).with_context(|| "invalid address")?;
        let scheme = u.scheme();
        let host = u.host_str().context("address has no host")?;
        let port = u.port().or_else(|| default_port(scheme)).context("address has no port")?;
        Ok(self.allows(scheme, host, port))
    }
}

fn parse_rule(entry: &str) -> Result<Rule> {
    let (scheme, rest) = entry.split_once("://").context("expected scheme://host[:port]")?;
    let scheme = match scheme {
        "*" => None,
        s if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-') => Some(s.to_owned()),
        _ => bail!("invalid scheme"),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') || rest.contains('@') {
        bail!("only scheme://host:port is allowed (no path or credentials)");
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h, Some(p)),
        _ => (rest, None),
    };
    let host = match host {
        "*" => HostPattern::Any,
        h if h.starts_with("*.") => HostPattern::Subdomain(h[2..].to_ascii_lowercase()),
        h if !h.is_empty() && !h.contains('*') => HostPattern::Exact(h.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase()),
        _ => bail!("invalid host"),
    };
    let port = match port {
        Some("*") => PortPattern::Any,
        Some(p) => match p.split_once('-') {
            Some((lo, hi)) => PortPattern::Range(lo.parse()?, hi.parse()?),
            None => {
                let n = p.parse()?;
                PortPattern::Range(n, n)
            }
        },
        None => {
            let s = scheme.as_deref().context("a wildcard scheme needs an explicit port")?;
            let n = default_port(s).with_context(|| format!("scheme {s} has no default port; give one"))?;
            PortPattern::Range(n, n)
        }
    };
    Ok(Rule { scheme, host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(e: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(&e.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn matches_scheme_host_and_port() {
        let h = hosts(&["redis://127.0.0.1:6379", "https://*.upstash.io", "http://localhost:*"]);
        assert!(h.allows_url("redis://127.0.0.1:6379").unwrap());
        assert!(h.allows_url("redis://:pw@127.0.0.1:6379/0").unwrap());
        assert!(h.allows_url("redis://127.0.0.1").unwrap());
        assert!(!h.allows_url("redis://127.0.0.1:6380").unwrap());
        assert!(!h.allows_url("rediss://127.0.0.1:6379").unwrap());
        assert!(h.allows_url("https://eu1-x.upstash.io/pipeline").unwrap());
        assert!(!h.allows_url("https://upstash.io.evil.com").unwrap());
        assert!(h.allows_url("http://localhost:8079").unwrap());
        assert!(!AllowedHosts::default().allows_url("http://localhost:1").unwrap());
        assert!(hosts(&["*://*:*"]).allows("redis", "anything", 1));
    }

    #[test]
    fn rejects_malformed_entries() {
        for bad in ["localhost", "redis://h/path", "*://h", "redis://u:p@h:1", "foo://h"] {
            assert!(AllowedHosts::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
