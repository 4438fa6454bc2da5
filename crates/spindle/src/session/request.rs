//! What the cookie policy takes from a request: whether it carries `Secure`.
//! Where a request came from is `crate::http::client`'s business.

use super::{SecurePolicy, SessionConfig};
use crate::http::Request;

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
