//! The value of `sess:<sid>`: the JSON connect-redis writes for express-session.
//!
//! ```json
//! {"cookie":{"originalMaxAge":86400000,"expires":"2024-05-02T12:00:00.000Z","secure":false,
//!            "httpOnly":true,"path":"/","sameSite":"lax"},
//!  "user":{"id":1,"username":"alice"},
//!  "spindle":{"created_at":1714564800000,"last_seen":1714564800000,"user_agent":"…","ip":"…"}}
//! ```
//!
//! `cookie` comes first, its fields in the order of express-session's
//! `Cookie.prototype.data` (originalMaxAge, partitioned, priority, expires,
//! secure, httpOnly, domain, path, sameSite), undefined ones omitted. Every
//! other top-level field is kept as its original JSON text, in its original
//! order, so data an Express app stored survives a write by Spindle byte for byte.

use super::config::{SameSite, SessionConfig};
use serde_json::Value;

/// Who a session belongs to: `req.session.user` in Express terms.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct UserRef {
    pub id: i64,
    pub username: String,
}

/// Spindle's bookkeeping, in the `spindle` field: for the session list.
/// All optional, so sessions created by Express (which lack it) still work.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub created_at: Option<u64>,
    pub last_seen: Option<u64>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// A session as stored, parsed for reading, and writable back in the same shape.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSession {
    /// `cookie.expires` in ms; `None` for a browser-session cookie (`null`).
    pub expires: Option<u64>,
    /// `cookie.originalMaxAge` in ms, or `None` (`null`).
    pub original_max_age: Option<u64>,
    pub user: Option<UserRef>,
    pub meta: Meta,
    /// Every top-level field but `cookie`, as raw JSON, in order.
    fields: Vec<(String, String)>,
    /// The stored `cookie` object, kept until the session is touched.
    cookie_raw: Option<String>,
}

/// `connect-redis`'s TTL: `ceil((expires − now) / 1000)` seconds, or one day
/// when the cookie has no expiry. Zero or less means the session is over and
/// is deleted rather than written.
pub fn ttl_secs(expires_ms: Option<u64>, now_ms: u64) -> i64 {
    match expires_ms {
        None => 86_400,
        Some(e) => {
            let diff = e as i128 - now_ms as i128;
            if diff <= 0 {
                0
            } else {
                ((diff + 999) / 1000).min(i64::MAX as i128) as i64
            }
        }
    }
}

/// Cookie fields as they are serialised, in express-session's order.
pub struct CookieJson<'a> {
    pub original_max_age: Option<u64>,
    pub expires: Option<u64>,
    pub secure: bool,
    pub http_only: bool,
    pub domain: Option<&'a str>,
    pub path: &'a str,
    pub same_site: SameSite,
}

impl CookieJson<'_> {
    pub fn to_json(&self) -> String {
        let opt_num = |n: Option<u64>| n.map_or("null".to_string(), |n| n.to_string());
        let mut s = format!(
            "{{\"originalMaxAge\":{},\"expires\":{},\"secure\":{},\"httpOnly\":{}",
            opt_num(self.original_max_age),
            self.expires.map_or("null".to_string(), |e| format!("\"{}\"", crate::date::to_iso(e))),
            self.secure,
            self.http_only,
        );
        if let Some(d) = self.domain {
            s.push_str(&format!(",\"domain\":{}", json_str(d)));
        }
        s.push_str(&format!(",\"path\":{},\"sameSite\":\"{}\"}}", json_str(self.path), self.same_site.json()));
        s
    }
}

fn json_str(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// Why a stored value could not be read as a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corrupt(pub String);

impl StoredSession {
    /// A new session for `user`: `expires` is `now + max_age`.
    pub fn new(user: UserRef, meta: Meta, now_ms: u64, cfg: &SessionConfig) -> Self {
        let mut s = StoredSession {
            expires: Some(now_ms + cfg.max_age_ms),
            original_max_age: Some(cfg.max_age_ms),
            user: None,
            meta: Meta::default(),
            fields: Vec::new(),
            cookie_raw: None,
        };
        s.set_user(user);
        s.set_meta(meta);
        s
    }

    /// Parses a stored value. Unknown fields are kept; `cookie.expires` must
    /// be an ISO date or null; `user` must be `{id: integer, username: string}`
    /// or absent (an anonymous session).
    pub fn parse(raw: &[u8]) -> Result<Self, Corrupt> {
        let text = std::str::from_utf8(raw).map_err(|_| Corrupt("not UTF-8".into()))?;
        let v: Value = serde_json::from_str(text).map_err(|e| Corrupt(format!("not JSON: {e}")))?;
        let obj = v.as_object().ok_or_else(|| Corrupt("not a JSON object".into()))?;
        let cookie = obj.get("cookie").and_then(Value::as_object);
        let expires = match cookie.and_then(|c| c.get("expires")) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(crate::date::parse_iso(s).ok_or_else(|| Corrupt("cookie.expires is not an ISO date".into()))?),
            Some(_) => return Err(Corrupt("cookie.expires is not a string".into())),
        };
        let original_max_age = cookie.and_then(|c| c.get("originalMaxAge")).and_then(Value::as_u64);
        let user = match obj.get("user") {
            None | Some(Value::Null) => None,
            Some(u) => {
                let id = u.get("id").and_then(Value::as_i64);
                let name = u.get("username").and_then(Value::as_str);
                match (id, name) {
                    (Some(id), Some(name)) => Some(UserRef { id, username: name.to_owned() }),
                    _ => return Err(Corrupt("user must be {id: integer, username: string}".into())),
                }
            }
        };
        let m = obj.get("spindle");
        let num = |k: &str| m.and_then(|m| m.get(k)).and_then(Value::as_u64);
        let string = |k: &str| m.and_then(|m| m.get(k)).and_then(Value::as_str).map(str::to_owned);
        let meta = Meta { created_at: num("created_at"), last_seen: num("last_seen"), user_agent: string("user_agent"), ip: string("ip") };

        let mut fields: Vec<(String, String)> = Vec::new();
        let mut cookie_raw = None;
        for (k, raw) in split_object(text).ok_or_else(|| Corrupt("unexpected JSON layout".into()))? {
            if k == "cookie" {
                cookie_raw = Some(raw.to_owned());
            } else if let Some(slot) = fields.iter_mut().find(|(n, _)| *n == k) {
                slot.1 = raw.to_owned(); // a duplicate key: the last one wins, as in JSON.parse
            } else {
                fields.push((k, raw.to_owned()));
            }
        }
        Ok(StoredSession { expires, original_max_age, user, meta, fields, cookie_raw })
    }

    /// True when the cookie's expiry has passed (Redis's TTL normally
    /// removes the key first; clocks differ).
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires.is_some_and(|e| e <= now_ms)
    }

    /// Sets a top-level field (anything but `cookie`) to a JSON value.
    pub fn set_field(&mut self, name: &str, value: &Value) {
        self.set_raw(name, value.to_string());
    }

    /// The raw JSON of a top-level field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn set_raw(&mut self, name: &str, raw: String) {
        match self.fields.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = raw,
            None => self.fields.push((name.to_owned(), raw)),
        }
    }

    pub fn set_user(&mut self, user: UserRef) {
        self.set_raw("user", format!("{{\"id\":{},\"username\":{}}}", user.id, json_str(&user.username)));
        self.user = Some(user);
    }

    pub fn set_meta(&mut self, meta: Meta) {
        // Written by hand: serde_json's map would sort the keys.
        let mut parts = Vec::new();
        if let Some(v) = meta.created_at {
            parts.push(format!("\"created_at\":{v}"));
        }
        if let Some(v) = meta.last_seen {
            parts.push(format!("\"last_seen\":{v}"));
        }
        if let Some(v) = &meta.user_agent {
            parts.push(format!("\"user_agent\":{}", json_str(v)));
        }
        if let Some(v) = &meta.ip {
            parts.push(format!("\"ip\":{}", json_str(v)));
        }
        self.set_raw("spindle", format!("{{{}}}", parts.join(",")));
        self.meta = meta;
    }

    /// Extends the expiry to `now + max_age` (rolling) and rewrites the
    /// cookie object from the current policy.
    pub fn roll(&mut self, now_ms: u64, cfg: &SessionConfig) {
        self.expires = Some(now_ms + cfg.max_age_ms);
        self.original_max_age = Some(cfg.max_age_ms);
        self.cookie_raw = None;
    }

    /// The JSON to store, with the cookie object written per `secure` and `cfg`
    /// unless it is unchanged since it was read.
    pub fn to_json(&self, cfg: &SessionConfig, secure: bool) -> String {
        let cookie = match &self.cookie_raw {
            Some(raw) => raw.clone(),
            None => CookieJson {
                original_max_age: self.original_max_age,
                expires: self.expires,
                secure,
                http_only: cfg.http_only,
                domain: cfg.domain.as_deref(),
                path: &cfg.path,
                same_site: cfg.same_site,
            }
            .to_json(),
        };
        let mut out = String::with_capacity(cookie.len() + 256);
        out.push_str("{\"cookie\":");
        out.push_str(&cookie);
        for (k, v) in &self.fields {
            out.push(',');
            out.push_str(&json_str(k));
            out.push(':');
            out.push_str(v);
        }
        out.push('}');
        out
    }
}

/// Splits a JSON object's text into its top-level (key, raw value) pairs, in
/// order. The text must already be valid JSON (the caller parsed it).
fn split_object(text: &str) -> Option<Vec<(String, &str)>> {
    let b = text.as_bytes();
    let ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    // The end (exclusive) of the string starting at the quote at `i`.
    let string_end = |mut i: usize| -> Option<usize> {
        i += 1;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 2,
                b'"' => return Some(i + 1),
                _ => i += 1,
            }
        }
        None
    };
    let mut out = Vec::new();
    let mut i = 0;
    ws(&mut i);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        ws(&mut i);
        match b.get(i)? {
            b'}' => return Some(out),
            b',' => {
                i += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let kend = string_end(i)?;
        let key: String = serde_json::from_str(&text[i..kend]).ok()?;
        i = kend;
        ws(&mut i);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i += 1;
        ws(&mut i);
        let start = i;
        let mut depth = 0usize;
        while i < b.len() {
            match b[i] {
                b'"' => {
                    i = string_end(i)?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth == 0 => break,
                b'}' | b']' => depth -= 1,
                b',' if depth == 0 => break,
                _ => {}
            }
            i += 1;
        }
        out.push((key, text[start..i].trim_end()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SessionConfig {
        SessionConfig::new(vec!["0123456789abcdef-secret".into()]).unwrap()
    }

    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn writes_connect_redis_json_in_express_order() {
        let meta = Meta { created_at: Some(NOW), last_seen: Some(NOW), user_agent: Some("ua \"x\"".into()), ip: Some("1.2.3.4".into()) };
        let s = StoredSession::new(UserRef { id: 7, username: "alice".into() }, meta, NOW, &cfg());
        assert_eq!(
            s.to_json(&cfg(), false),
            concat!(
                r#"{"cookie":{"originalMaxAge":86400000,"expires":"2023-11-15T22:13:20.000Z","secure":false,"httpOnly":true,"path":"/","sameSite":"lax"},"#,
                r#""user":{"id":7,"username":"alice"},"#,
                r#""spindle":{"created_at":1700000000000,"last_seen":1700000000000,"user_agent":"ua \"x\"","ip":"1.2.3.4"}}"#
            )
        );
        // Domain sits between httpOnly and path, as in Cookie.prototype.data.
        let mut c = cfg();
        c.domain = Some("example.com".into());
        let json = StoredSession::new(UserRef { id: 1, username: "a".into() }, Meta::default(), NOW, &c).to_json(&c, true);
        assert!(json.starts_with(r#"{"cookie":{"originalMaxAge":86400000,"expires":"2023-11-15T22:13:20.000Z","secure":true,"httpOnly":true,"domain":"example.com","path":"/","sameSite":"lax"},"user""#), "{json}");
    }

    #[test]
    fn reads_what_express_writes_and_keeps_its_fields() {
        // As connect-redis stores a session an Express app filled in.
        let express = r#"{"cookie":{"originalMaxAge":86400000,"partitioned":null,"expires":"2023-11-15T22:13:20.000Z","httpOnly":true,"path":"/"},"views":3,"user":{"id":42,"username":"bob","roles":["a","b"]},"cart":{"items":[1,2.50,{"x":"}"}]}}"#;
        let s = StoredSession::parse(express.as_bytes()).unwrap();
        assert_eq!(s.expires, Some(NOW + 86_400_000));
        assert_eq!(s.original_max_age, Some(86_400_000));
        assert_eq!(s.user, Some(UserRef { id: 42, username: "bob".into() }));
        assert_eq!(s.meta, Meta::default());
        assert_eq!(s.to_json(&cfg(), false), express, "untouched, it round-trips byte for byte");

        let mut touched = s.clone();
        touched.roll(NOW + 1000, &cfg());
        touched.set_meta(Meta { last_seen: Some(NOW + 1000), ..Default::default() });
        let out = touched.to_json(&cfg(), false);
        assert!(out.starts_with(r#"{"cookie":{"originalMaxAge":86400000,"expires":"2023-11-15T22:13:21.000Z","#), "{out}");
        assert!(out.ends_with(r#","views":3,"user":{"id":42,"username":"bob","roles":["a","b"]},"cart":{"items":[1,2.50,{"x":"}"}]},"spindle":{"last_seen":1700000001000}}"#), "{out}");
        assert_eq!(StoredSession::parse(out.as_bytes()).unwrap().meta.last_seen, Some(NOW + 1000));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in [&b"\xff"[..], b"", b"[]", b"{", br#"{"cookie":{"expires":"tomorrow"}}"#, br#"{"cookie":{"expires":5}}"#,
            br#"{"user":{"id":"7","username":"a"}}"#, br#"{"user":{"id":7}}"#, br#"{"user":{"id":1.5,"username":"a"}}"#] {
            assert!(StoredSession::parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let anon = StoredSession::parse(br#"{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"}}"#).unwrap();
        assert_eq!((anon.user, anon.expires), (None, None));
        let spaced = StoredSession::parse(b" { \"a\" : [ 1 , 2 ] , \"b\\\"\" : \"x,}\" } ").unwrap();
        assert_eq!(spaced.field("a"), Some("[ 1 , 2 ]"));
        assert_eq!(spaced.field("b\""), Some("\"x,}\""));
        let dup = StoredSession::parse(br#"{"a":1,"a":2}"#).unwrap();
        assert_eq!(dup.to_json(&cfg(), false).matches("\"a\"").count(), 1);
        assert_eq!(dup.field("a"), Some("2"));
    }

    #[test]
    fn ttl_follows_connect_redis() {
        assert_eq!(ttl_secs(None, NOW), 86_400);
        assert_eq!(ttl_secs(Some(NOW + 86_400_000), NOW), 86_400);
        assert_eq!(ttl_secs(Some(NOW + 1), NOW), 1, "rounds up");
        assert_eq!(ttl_secs(Some(NOW + 1000), NOW), 1);
        assert_eq!(ttl_secs(Some(NOW + 1001), NOW), 2);
        assert_eq!(ttl_secs(Some(NOW), NOW), 0, "expired: delete");
        assert_eq!(ttl_secs(Some(NOW - 5000), NOW), 0);
        assert_eq!(ttl_secs(Some(0), NOW), 0);
    }
}
