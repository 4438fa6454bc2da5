//! The `Set-Cookie` a session answer carries, per the cookie policy
//! ([`SessionConfig`]): signed value, `Max-Age` and `Expires`, `Domain`,
//! `Path`, `HttpOnly`, `Secure` (always, never, or when the request came over
//! HTTPS) and `SameSite`.

use super::{cookie, SecurePolicy, SessionConfig};
use crate::date::to_http_date;
use crate::http::Request;

/// The `Set-Cookie` value for `sid`, per the cookie policy, expiring at
/// `expires_ms` (a browser-session cookie when `None`).
pub fn set_cookie(cfg: &SessionConfig, req: &Request, sid: &str, expires_ms: Option<u64>, now_ms: u64) -> String {
    let mut c = format!("{}={}", cfg.cookie_name, cookie::wire_value(sid, cfg.signing_secret()));
    if let Some(e) = expires_ms {
        c.push_str(&format!("; Max-Age={}", e.saturating_sub(now_ms) / 1000));
    }
    attributes(cfg, req, &mut c, expires_ms);
    c
}

/// The `Set-Cookie` value that removes the cookie.
pub fn clear_cookie(cfg: &SessionConfig, req: &Request) -> String {
    let mut c = format!("{}=; Max-Age=0", cfg.cookie_name);
    attributes(cfg, req, &mut c, Some(0));
    c
}

fn attributes(cfg: &SessionConfig, req: &Request, c: &mut String, expires_ms: Option<u64>) {
    if let Some(d) = &cfg.domain {
        c.push_str(&format!("; Domain={d}"));
    }
    c.push_str(&format!("; Path={}", cfg.path));
    if let Some(e) = expires_ms {
        c.push_str(&format!("; Expires={}", to_http_date(e)));
    }
    if cfg.http_only {
        c.push_str("; HttpOnly");
    }
    if cfg.secure_for(req) {
        c.push_str("; Secure");
    }
    c.push_str(&format!("; SameSite={}", cfg.same_site.attribute()));
}

impl SessionConfig {
    /// Whether the cookie set in answer to `req` carries `Secure`.
    pub fn secure_for(&self, req: &Request) -> bool {
        match self.secure {
            SecurePolicy::Always => true,
            SecurePolicy::Never => false,
            SecurePolicy::Auto => self.trusted_proxies.is_https(req),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::client::TrustedProxies;

    #[test]
    fn secure_per_policy_and_https() {
        let mut c = SessionConfig::new(vec!["0123456789abcdef-secret".into()]).unwrap();
        c.trusted_proxies = TrustedProxies::parse("127.0.0.1").unwrap();
        let req = |h: &[(&str, &str)]| Request { headers: h.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect(), ..Default::default() };
        assert!(c.secure_for(&req(&[("spin-full-url", "https://a.example/x")])));
        assert!(!c.secure_for(&req(&[("spin-full-url", "http://a.example/x")])));
        assert!(c.secure_for(&req(&[("spin-client-addr", "127.0.0.1:5"), ("x-forwarded-proto", "https")])));
        c.secure = SecurePolicy::Always;
        assert!(c.secure_for(&req(&[])));
        c.secure = SecurePolicy::Never;
        assert!(!c.secure_for(&req(&[("spin-full-url", "https://a.example/x")])));
    }
}
