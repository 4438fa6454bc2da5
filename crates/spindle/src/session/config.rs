//! Session and cookie policy, read from Spin variables in one call.

use super::SessionError;
use crate::config::Vars;
use std::fmt;
use std::net::IpAddr;

/// Every variable [`SessionConfig::from_vars`] reads. A component that checks
/// sessions declares all of them in its `[component.<name>.variables]`
/// (a missing one silently falls back to its default, which may differ from
/// what the app set for `auth`).
pub const VARIABLES: &[&str] = &[
    "session_secrets",
    "cookie_name",
    "cookie_secure",
    "cookie_http_only",
    "cookie_same_site",
    "cookie_path",
    "cookie_domain",
    "session_max_age_s",
    "session_refresh_s",
    "trusted_proxies",
    "allowed_origins",
];

pub const DEFAULT_COOKIE_NAME: &str = "connect.sid";
pub const DEFAULT_MAX_AGE_S: u64 = 86_400;
pub const DEFAULT_REFRESH_S: u64 = 60;
/// The signing secret must have at least this many bytes; older,
/// verify-only secrets may be shorter (so a weak legacy secret can be rotated out).
pub const MIN_SECRET_LEN: usize = 16;

/// When the cookie carries `Secure`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurePolicy {
    /// When the request arrived over HTTPS: `spin-full-url` is `https://…`,
    /// or a trusted proxy says `X-Forwarded-Proto: https`.
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
    None,
}

impl SameSite {
    /// The attribute value in `Set-Cookie`.
    pub fn attribute(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }

    /// As express-session stores it in `cookie.sameSite`.
    pub fn json(self) -> &'static str {
        match self {
            SameSite::Lax => "lax",
            SameSite::Strict => "strict",
            SameSite::None => "none",
        }
    }
}

/// An IP network (`10.0.0.0/8`, `::1`), for `trusted_proxies`.
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
        let ip = ip.to_canonical();
        let (a, b, bits) = match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
            _ => return false,
        };
        let shift = bits - self.prefix as u32;
        shift >= bits || (a >> shift) == (b >> shift)
    }
}

/// How sessions are signed, stored and sent. Build it with [`SessionConfig::from_vars`].
#[derive(Clone)]
pub struct SessionConfig {
    pub cookie_name: String,
    secrets: Vec<String>,
    pub secure: SecurePolicy,
    pub http_only: bool,
    pub same_site: SameSite,
    pub path: String,
    pub domain: Option<String>,
    /// Cookie lifetime and session TTL, refreshed by use (rolling).
    pub max_age_ms: u64,
    /// A request refreshes the expiry only when the last refresh is at least
    /// this old, so reads do not write on every hit. 0 refreshes every time.
    pub refresh_interval_ms: u64,
    pub trusted_proxies: Vec<IpNet>,
    /// Normalised origins (`https://app.example.com`). Empty: the request's own
    /// origin, per `spin-full-url`.
    pub allowed_origins: Vec<String>,
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets are never printed, only counted.
        f.debug_struct("SessionConfig")
            .field("cookie_name", &self.cookie_name)
            .field("secrets", &format_args!("[{} redacted]", self.secrets.len()))
            .field("secure", &self.secure)
            .field("http_only", &self.http_only)
            .field("same_site", &self.same_site)
            .field("path", &self.path)
            .field("domain", &self.domain)
            .field("max_age_ms", &self.max_age_ms)
            .field("refresh_interval_ms", &self.refresh_interval_ms)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}

fn bad(what: impl Into<String>) -> SessionError {
    SessionError::Misconfigured(what.into())
}

fn cookie_safe(s: &str) -> bool {
    s.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b';' && b != b',')
}

impl SessionConfig {
    /// The defaults, signing with `secrets[0]` and verifying with all of them.
    pub fn new(secrets: Vec<String>) -> Result<Self, SessionError> {
        let cfg = SessionConfig {
            cookie_name: DEFAULT_COOKIE_NAME.into(),
            secrets: Vec::new(),
            secure: SecurePolicy::Auto,
            http_only: true,
            same_site: SameSite::Lax,
            path: "/".into(),
            domain: None,
            max_age_ms: DEFAULT_MAX_AGE_S * 1000,
            refresh_interval_ms: DEFAULT_REFRESH_S * 1000,
            trusted_proxies: Vec::new(),
            allowed_origins: Vec::new(),
        };
        cfg.with_secrets(secrets)
    }

    pub fn with_secrets(mut self, secrets: Vec<String>) -> Result<Self, SessionError> {
        if secrets.is_empty() {
            return Err(bad("session_secrets is not set (a comma-separated list; the first signs)"));
        }
        if secrets.iter().any(|s| s.is_empty()) {
            return Err(bad("session_secrets has an empty entry"));
        }
        if secrets[0].len() < MIN_SECRET_LEN {
            return Err(bad(format!("the first of session_secrets must be at least {MIN_SECRET_LEN} bytes")));
        }
        self.secrets = secrets;
        Ok(self)
    }

    /// Reads and validates every variable in [`VARIABLES`]. Unset or empty
    /// variables take their defaults; `session_secrets` has none.
    pub fn from_vars(vars: &impl Vars) -> Result<Self, SessionError> {
        let get = |name: &str| vars.get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let secrets: Vec<String> = vars
            .get("session_secrets")
            .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
            .unwrap_or_default();
        let secrets = if secrets.len() == 1 && secrets[0].is_empty() { Vec::new() } else { secrets };
        let mut cfg = SessionConfig::new(secrets)?;

        if let Some(name) = get("cookie_name") {
            let token = name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                return Err(bad("cookie_name must be an RFC 6265 token"));
            }
            cfg.cookie_name = name;
        }
        if let Some(v) = get("cookie_secure") {
            cfg.secure = match v.to_ascii_lowercase().as_str() {
                "auto" => SecurePolicy::Auto,
                "true" => SecurePolicy::Always,
                "false" => SecurePolicy::Never,
                _ => return Err(bad("cookie_secure must be auto, true or false")),
            };
        }
        if let Some(v) = get("cookie_http_only") {
            cfg.http_only = match v.to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(bad("cookie_http_only must be true or false")),
            };
        }
        if let Some(v) = get("cookie_same_site") {
            cfg.same_site = match v.to_ascii_lowercase().as_str() {
                "lax" => SameSite::Lax,
                "strict" => SameSite::Strict,
                "none" => SameSite::None,
                _ => return Err(bad("cookie_same_site must be lax, strict or none")),
            };
        }
        if cfg.same_site == SameSite::None && cfg.secure != SecurePolicy::Always {
            return Err(bad("cookie_same_site=none needs cookie_secure=true (browsers drop it otherwise)"));
        }
        if let Some(v) = get("cookie_path") {
            if !v.starts_with('/') || !cookie_safe(&v) {
                return Err(bad("cookie_path must start with / and hold no ; , or spaces"));
            }
            cfg.path = v;
        }
        if let Some(v) = get("cookie_domain") {
            let ok = v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !ok {
                return Err(bad("cookie_domain must be a host name"));
            }
            cfg.domain = Some(v.to_ascii_lowercase());
        }
        let secs = |name: &str, default: u64, range: std::ops::RangeInclusive<u64>| -> Result<u64, SessionError> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| range.contains(n))
                    .ok_or_else(|| bad(format!("{name} must be an integer in {}..={}", range.start(), range.end()))),
            }
        };
        // Up to 400 days, the longest lifetime browsers honour.
        cfg.max_age_ms = secs("session_max_age_s", DEFAULT_MAX_AGE_S, 1..=400 * 86_400)? * 1000;
        cfg.refresh_interval_ms = secs("session_refresh_s", DEFAULT_REFRESH_S, 0..=400 * 86_400)? * 1000;
        if let Some(v) = get("trusted_proxies") {
            // Comma- or space-separated, as spindle::ratelimit reads the same variable.
            cfg.trusted_proxies = v
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(|s| IpNet::parse(s).ok_or_else(|| bad(format!("trusted_proxies: {s:?} is not an IP or CIDR"))))
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = get("allowed_origins") {
            cfg.allowed_origins = v
                .split(',')
                .map(|s| {
                    super::request::normalize_origin(s.trim())
                        .ok_or_else(|| bad(format!("allowed_origins: {:?} is not an http(s) origin", s.trim())))
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(cfg)
    }

    /// The secrets, the signing one first.
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// The secret that signs new cookies.
    pub fn signing_secret(&self) -> &str {
        &self.secrets[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const S: &str = "0123456789abcdef-secret";

    #[test]
    fn defaults_are_safe() {
        let c = SessionConfig::from_vars(&vars(&[("session_secrets", S)])).unwrap();
        assert_eq!(c.cookie_name, "connect.sid");
        assert_eq!((c.secure, c.http_only, c.same_site), (SecurePolicy::Auto, true, SameSite::Lax));
        assert_eq!((c.path.as_str(), c.domain.as_deref()), ("/", None));
        assert_eq!((c.max_age_ms, c.refresh_interval_ms), (86_400_000, 60_000));
        assert!(c.trusted_proxies.is_empty() && c.allowed_origins.is_empty());
        assert!(!format!("{c:?}").contains(S), "Debug never shows secrets");
    }

    #[test]
    fn secrets_are_an_ordered_list() {
        let c = SessionConfig::from_vars(&vars(&[("session_secrets", &format!(" {S} , old "))])).unwrap();
        assert_eq!(c.secrets(), &[S.to_string(), "old".to_string()]);
        assert_eq!(c.signing_secret(), S);
        for bad in ["", " ", "short", &format!("{S},,x"), &format!("{S},")] {
            let e = SessionConfig::from_vars(&vars(&[("session_secrets", bad)])).unwrap_err();
            assert!(matches!(e, SessionError::Misconfigured(_)), "{bad:?}");
        }
        assert!(SessionConfig::from_vars(&vars(&[])).is_err(), "no default secret");
    }

    #[test]
    fn every_variable_is_validated() {
        let with = |k: &str, v: &str| SessionConfig::from_vars(&vars(&[("session_secrets", S), (k, v)]));
        assert_eq!(with("cookie_secure", "TRUE").unwrap().secure, SecurePolicy::Always);
        assert_eq!(with("cookie_secure", "false").unwrap().secure, SecurePolicy::Never);
        assert!(with("cookie_secure", "yes").is_err());
        assert!(!with("cookie_http_only", "false").unwrap().http_only);
        assert_eq!(with("cookie_same_site", "Strict").unwrap().same_site, SameSite::Strict);
        assert!(with("cookie_same_site", "none").is_err(), "None needs Secure");
        assert!(with("cookie_name", "my sid").is_err());
        assert_eq!(with("cookie_name", "sid").unwrap().cookie_name, "sid");
        assert!(with("cookie_path", "app").is_err());
        assert!(with("cookie_path", "/a;b").is_err());
        assert_eq!(with("cookie_domain", "Example.COM").unwrap().domain.as_deref(), Some("example.com"));
        assert!(with("cookie_domain", "a;b").is_err());
        assert_eq!(with("session_max_age_s", "3600").unwrap().max_age_ms, 3_600_000);
        assert!(with("session_max_age_s", "0").is_err());
        assert_eq!(with("session_refresh_s", "0").unwrap().refresh_interval_ms, 0);
        assert!(with("session_refresh_s", "-1").is_err());
        let c = with("trusted_proxies", "10.0.0.0/8, ::1 192.168.0.1").unwrap();
        assert_eq!(c.trusted_proxies.len(), 3);
        assert!(with("trusted_proxies", "10.0.0.0/33").is_err());
        let c = with("allowed_origins", "https://App.example.com:443, http://localhost:3000").unwrap();
        assert_eq!(c.allowed_origins, vec!["https://app.example.com", "http://localhost:3000"]);
        assert!(with("allowed_origins", "*").is_err());
        assert!(with("allowed_origins", "https://a.example/path").is_err());
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
    }
}
