//! Session and cookie policy, read from Spin variables in one call.

use super::SessionError;
use crate::config::{Config, ConfigError, Vars};
use crate::http::client::TrustedProxies;
use std::fmt;

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
    /// Whose `X-Forwarded-Proto` decides `Secure` (and whose
    /// `X-Forwarded-For` names the client in the session's metadata).
    pub trusted_proxies: TrustedProxies,
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
            trusted_proxies: TrustedProxies::default(),
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

    /// Reads and validates the session variables. Unset or empty
    /// variables take their defaults; `session_secrets` has none.
    pub fn from_vars(vars: &impl Vars) -> Result<Self, SessionError> {
        let c = Config::new(vars);
        let mut cfg = SessionConfig::new(secrets_from_vars(vars))?;
        cfg.cookie_name = cookie_name_from_vars(vars)?;
        cfg.secure = c.choice(
            "cookie_secure",
            SecurePolicy::Auto,
            &[("auto", SecurePolicy::Auto), ("true", SecurePolicy::Always), ("false", SecurePolicy::Never)],
        )?;
        cfg.http_only = c.flag("cookie_http_only", true)?;
        cfg.same_site =
            c.choice("cookie_same_site", SameSite::Lax, &[("lax", SameSite::Lax), ("strict", SameSite::Strict), ("none", SameSite::None)])?;
        if cfg.same_site == SameSite::None && cfg.secure != SecurePolicy::Always {
            return Err(ConfigError::new("cookie_same_site", "none needs cookie_secure=true (browsers drop it otherwise)").into());
        }
        cfg.path = c.parse("cookie_path", cfg.path, |v| {
            (v.starts_with('/') && cookie_safe(v)).then(|| v.to_owned()).ok_or_else(|| "must start with / and hold no ; , or spaces".to_owned())
        })?;
        cfg.domain = c.parse("cookie_domain", None, |v| {
            let ok = v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            ok.then(|| Some(v.to_ascii_lowercase())).ok_or_else(|| "must be a host name".to_owned())
        })?;
        // Up to 400 days, the longest lifetime browsers honour.
        cfg.max_age_ms = c.int("session_max_age_s", DEFAULT_MAX_AGE_S, 1..=400 * 86_400)? * 1000;
        cfg.refresh_interval_ms = c.int("session_refresh_s", DEFAULT_REFRESH_S, 0..=400 * 86_400)? * 1000;
        cfg.trusted_proxies = TrustedProxies::from_vars(vars)?;
        Ok(cfg)
    }

    /// The session cookie's name, once `session_secrets` is checked: all a
    /// request without that cookie needs (two variables, not the ten of
    /// [`Self::from_vars`]). An app without valid secrets is misconfigured
    /// whether or not this request has a cookie.
    pub fn cookie_name_from_vars(vars: &impl Vars) -> Result<String, SessionError> {
        SessionConfig::new(secrets_from_vars(vars))?;
        Ok(cookie_name_from_vars(vars)?)
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

/// `session_secrets`, comma-separated; none when unset or empty.
fn secrets_from_vars(vars: &impl Vars) -> Vec<String> {
    let secrets: Vec<String> = vars.get("session_secrets").map(|v| v.split(',').map(|s| s.trim().to_owned()).collect()).unwrap_or_default();
    if secrets.len() == 1 && secrets[0].is_empty() {
        Vec::new()
    } else {
        secrets
    }
}

fn cookie_name_from_vars(vars: &impl Vars) -> Result<String, ConfigError> {
    Config::new(vars).parse("cookie_name", DEFAULT_COOKIE_NAME.to_owned(), |name| {
        let token = name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        token.then(|| name.to_owned()).ok_or_else(|| "must be an RFC 6265 token".to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_vars as vars;


    const S: &str = "0123456789abcdef-secret";

    #[test]
    fn defaults_are_safe() {
        let c = SessionConfig::from_vars(&vars(&[("session_secrets", S)])).unwrap();
        assert_eq!(c.cookie_name, "connect.sid");
        assert_eq!((c.secure, c.http_only, c.same_site), (SecurePolicy::Auto, true, SameSite::Lax));
        assert_eq!((c.path.as_str(), c.domain.as_deref()), ("/", None));
        assert_eq!((c.max_age_ms, c.refresh_interval_ms), (86_400_000, 60_000));
        assert!(c.trusted_proxies.is_empty());
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
    fn the_cookie_name_alone_still_checks_the_secrets() {
        let name = |pairs: &[(&str, &str)]| SessionConfig::cookie_name_from_vars(&vars(pairs));
        assert_eq!(name(&[("session_secrets", S)]).unwrap(), "connect.sid");
        assert_eq!(name(&[("session_secrets", S), ("cookie_name", "sid")]).unwrap(), "sid");
        assert!(matches!(name(&[("session_secrets", S), ("cookie_name", "a b")]), Err(SessionError::Misconfigured(_))));
        assert!(matches!(name(&[("session_secrets", "short")]), Err(SessionError::Misconfigured(_))));
        assert!(matches!(name(&[]), Err(SessionError::Misconfigured(_))));
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
        assert!(with("trusted_proxies", "10.0.0.0/33").is_err());
    }
}
