//! The HTTP-facing rules of `/users`: ids, what a requester may see, ETags,
//! conditional requests and profile edits. Pure functions, no I/O.

use super::{Patch, User};
use crate::http::{Problem, Request};
use serde_json::{json, Map, Value};

/// The largest id accepted: SQLite's and PostgreSQL's `BIGINT`.
pub const MAX_ID: i64 = i64::MAX;
pub const DISPLAY_NAME_MAX: usize = 64;
pub const EMAIL_MAX: usize = 254;
const EMAIL_LOCAL_MAX: usize = 64;

/// A user id in a path or a list: a positive decimal integer without sign,
/// spaces or leading zeros, up to `i64::MAX`.
pub fn parse_id(s: &str) -> Result<i64, Problem> {
    let canonical = !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0');
    canonical
        .then(|| s.parse::<i64>().ok())
        .flatten()
        .ok_or_else(|| Problem::bad_request("a user id is a positive integer (1 to 9223372036854775807, no leading zeros)"))
}

/// `ids=1,2,3`: at most `max` ids (counted before duplicates are dropped),
/// each a valid id; duplicates are answered once, in first-seen order.
pub fn parse_ids(req: &Request, max: usize) -> Result<Vec<i64>, Problem> {
    let raw = req.query_param("ids").ok_or_else(|| Problem::bad_request(format!("send ids=1,2,3 (at most {max})")))?;
    let parts: Vec<&str> = raw.split(',').collect();
    if parts.len() > max {
        return Err(Problem::bad_request(format!("at most {max} ids per request, got {}", parts.len())));
    }
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        let id = parse_id(p)?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// What `viewer` may see of `user`: everything but the email, which only
/// its owner sees.
pub fn user_json(user: &User, owner: bool) -> Value {
    let mut v = json!({
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
        "version": user.version,
    });
    if owner {
        v["email"] = json!(user.email);
    }
    v
}

/// A strong ETag per user, version and view: `"u42-v7"` for everyone,
/// `"u42-v7-owner"` for the owner (whose representation has the email).
pub fn etag(user: &User, owner: bool) -> String {
    if owner {
        format!("\"u{}-v{}-owner\"", user.id, user.version)
    } else {
        format!("\"u{}-v{}\"", user.id, user.version)
    }
}

/// One member of an `If-Match` / `If-None-Match` list.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tag {
    Any,
    /// (weak, opaque text without quotes)
    Entity(bool, String),
    /// A bare version number (our convenience for `If-Match: 7`).
    Version(i64),
}

/// Parses `*`, or a comma-separated list of entity tags (`"x"`, `W/"x"`)
/// and bare versions. `None` when malformed.
fn parse_tags(header: &str) -> Option<Vec<Tag>> {
    let mut out = Vec::new();
    let mut rest = header.trim();
    if rest == "*" {
        return Some(vec![Tag::Any]);
    }
    while !rest.is_empty() {
        let (weak, r) = match rest.strip_prefix("W/") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        if let Some(r) = r.strip_prefix('"') {
            let end = r.find('"')?;
            let opaque = &r[..end];
            if !opaque.bytes().all(|b| b == 0x21 || (0x23..=0x7e).contains(&b)) {
                return None;
            }
            out.push(Tag::Entity(weak, opaque.to_owned()));
            rest = &r[end + 1..];
        } else if !weak {
            let end = r.find(',').unwrap_or(r.len());
            let token = r[..end].trim();
            out.push(Tag::Version(token.parse().ok().filter(|v| *v > 0)?));
            rest = &r[end..];
        } else {
            return None;
        }
        rest = rest.trim_start();
        match rest.strip_prefix(',') {
            Some(r) => rest = r.trim_start(),
            None if rest.is_empty() => {}
            None => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}

/// `If-None-Match` (weak comparison): true when the current representation
/// matches, so the answer is 304.
pub fn not_modified(req: &Request, current_etag: &str) -> bool {
    let Some(h) = req.header("if-none-match") else { return false };
    let current = current_etag.trim_matches('"');
    parse_tags(h).is_some_and(|tags| {
        tags.iter().any(|t| match t {
            Tag::Any => true,
            Tag::Entity(_, o) => o == current,
            Tag::Version(_) => false,
        })
    })
}

/// `If-Match` on `PATCH /users/:id`: the versions the write may apply to.
/// `Ok(None)`: no condition (absent, or `*`). An ETag of this user (either
/// view) or a bare version (`7` or `"7"`) names a version; weak tags and
/// other tags never match (strong comparison), which leaves the list empty
/// and the write a 412. A malformed header is a 400.
pub fn if_match_versions(req: &Request, id: i64) -> Result<Option<Vec<i64>>, Problem> {
    let Some(h) = req.text_header("if-match")? else { return Ok(None) };
    let tags = parse_tags(h).ok_or_else(|| Problem::bad_request("If-Match must be *, entity tags or a version number"))?;
    if tags.contains(&Tag::Any) {
        return Ok(None);
    }
    let prefix = format!("u{id}-v");
    let mut versions = Vec::new();
    for t in tags {
        let v = match t {
            Tag::Version(v) => Some(v),
            Tag::Entity(false, o) => o
                .strip_prefix(&prefix)
                .map(|r| r.strip_suffix("-owner").unwrap_or(r))
                .or(Some(o.as_str()))
                .and_then(|n| parse_id(n).ok()),
            _ => None,
        };
        if let Some(v) = v.filter(|v| !versions.contains(v)) {
            versions.push(v);
        }
    }
    Ok(Some(versions))
}

/// Whether the request accepts an answer older than the last write
/// (`Cache-Control: max-stale`, RFC 9111 §5.2.1.2).
pub fn accepts_stale(req: &Request) -> bool {
    req.header_all("cache-control").filter_map(|v| std::str::from_utf8(v).ok()).any(|v| {
        v.split(',').any(|d| {
            let name = d.split('=').next().unwrap_or("").trim();
            name.eq_ignore_ascii_case("max-stale")
        })
    })
}

/// 1–64 characters, no control characters, not only whitespace.
pub fn validate_display_name(s: &str) -> Result<(), Problem> {
    let n = s.chars().count();
    if n == 0 || n > DISPLAY_NAME_MAX || s.chars().any(char::is_control) || s.trim().is_empty() {
        return Err(Problem::bad_request(format!(
            "display_name must be 1-{DISPLAY_NAME_MAX} characters, not only spaces, without control characters (or null)"
        )));
    }
    Ok(())
}

/// A plain `local@domain` address: at most 254 bytes; the local part 1–64
/// of `A-Z a-z 0-9 !#$%&'*+/=?^_`{|}~-` and dots (not first, last or
/// doubled); the domain two or more labels of letters, digits and hyphens
/// (1–63 each, no hyphen at either end), the last alphabetic. No quoted
/// local parts, comments or IP literals.
pub fn validate_email(s: &str) -> Result<(), Problem> {
    let bad = || Problem::bad_request("email must be an address like name@example.com (or null)");
    if s.len() > EMAIL_MAX {
        return Err(bad());
    }
    let (local, domain) = s.split_once('@').ok_or_else(bad)?;
    let local_ok = (1..=EMAIL_LOCAL_MAX).contains(&local.len())
        && local.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-.".contains(&b))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && labels.last().is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
    if local_ok && domain_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// `{"display_name"?: string|null, "email"?: string|null}`, nothing else,
/// at least one of them.
pub fn parse_patch(body: &Value) -> Result<Patch, Problem> {
    let obj: &Map<String, Value> = body.as_object().ok_or_else(|| Problem::bad_request("the body must be a JSON object"))?;
    if let Some(other) = obj.keys().find(|k| *k != "display_name" && *k != "email") {
        let shown: String = other.chars().take(32).filter(|c| !c.is_control()).collect();
        return Err(Problem::bad_request(format!("unknown field {shown:?}: only display_name and email can be changed")));
    }
    let field = |name: &str, check: fn(&str) -> Result<(), Problem>| -> Result<Option<Option<String>>, Problem> {
        match obj.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) => {
                check(s)?;
                Ok(Some(Some(s.clone())))
            }
            Some(_) => Err(Problem::bad_request(format!("{name} must be a string or null"))),
        }
    };
    let patch = Patch { display_name: field("display_name", validate_display_name)?, email: field("email", validate_email)? };
    if patch.display_name.is_none() && patch.email.is_none() {
        return Err(Problem::bad_request("send display_name and/or email"));
    }
    Ok(patch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)], query: &str) -> Request {
        Request {
            method: "GET".into(),
            path: "/users".into(),
            query: query.into(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect(),
            body: Vec::new(),
        }
    }

    fn user() -> User {
        User {
            id: 42,
            username: "alice".into(),
            display_name: Some("Alice".into()),
            email: Some("a@example.com".into()),
            created_at: "2026-01-01T00:00:00.000Z".into(),
            updated_at: "2026-01-01T00:00:00.000Z".into(),
            version: 7,
        }
    }

    #[test]
    fn ids() {
        assert_eq!(parse_id("1").unwrap(), 1);
        assert_eq!(parse_id("9223372036854775807").unwrap(), i64::MAX);
        for bad in ["", "0", "01", "-1", "+1", " 1", "1 ", "1.0", "9223372036854775808", "99999999999999999999", "x", "1e3", "٣"] {
            assert_eq!(parse_id(bad).unwrap_err().status, 400, "{bad:?}");
        }
        assert_eq!(parse_ids(&req(&[], "ids=3,1,3,2"), 100).unwrap(), vec![3, 1, 2]);
        assert_eq!(parse_ids(&req(&[], "ids=3%2C1"), 100).unwrap(), vec![3, 1]);
        for bad in ["", "ids=", "ids=1,,2", "ids=1,x", "x=1"] {
            assert_eq!(parse_ids(&req(&[], bad), 100).unwrap_err().status, 400, "{bad:?}");
        }
        let many = (1..=101).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        assert_eq!(parse_ids(&req(&[], &format!("ids={many}")), 100).unwrap_err().status, 400);
        assert_eq!(parse_ids(&req(&[], "ids=1,1,1"), 2).unwrap_err().status, 400, "counted before dropping duplicates");
    }

    #[test]
    fn views_hide_the_email_from_others() {
        let u = user();
        let public = user_json(&u, false);
        assert!(public.get("email").is_none());
        assert_eq!(public["username"], "alice");
        assert_eq!(user_json(&u, true)["email"], "a@example.com");
        assert_ne!(etag(&u, true), etag(&u, false));
        assert_eq!(etag(&u, false), "\"u42-v7\"");
    }

    #[test]
    fn conditional_headers() {
        let u = user();
        let e = etag(&u, false);
        assert!(not_modified(&req(&[("if-none-match", &e)], ""), &e));
        assert!(not_modified(&req(&[("if-none-match", "W/\"u42-v7\", \"x\"")], ""), &e));
        assert!(not_modified(&req(&[("if-none-match", "*")], ""), &e));
        assert!(!not_modified(&req(&[("if-none-match", "\"u42-v6\"")], ""), &e));
        assert!(!not_modified(&req(&[("if-none-match", "\"u42-v7-owner\"")], ""), &e));
        assert!(!not_modified(&req(&[("if-none-match", "garbage")], ""), &e));
        assert!(!not_modified(&req(&[], ""), &e));

        let m = |h: &str| if_match_versions(&req(&[("if-match", h)], ""), 42);
        assert_eq!(if_match_versions(&req(&[], ""), 42).unwrap(), None);
        assert_eq!(m("*").unwrap(), None);
        assert_eq!(m("\"u42-v7\"").unwrap(), Some(vec![7]));
        assert_eq!(m("\"u42-v7-owner\", \"u42-v8\"").unwrap(), Some(vec![7, 8]));
        assert_eq!(m("7").unwrap(), Some(vec![7]));
        assert_eq!(m("\"7\"").unwrap(), Some(vec![7]));
        assert_eq!(m("W/\"u42-v7\"").unwrap(), Some(vec![]), "weak tags never match If-Match");
        assert_eq!(m("\"u41-v7\"").unwrap(), Some(vec![]), "another user's tag");
        assert_eq!(m("\"whatever\"").unwrap(), Some(vec![]));
        for bad in ["", "\"unterminated", "7 8", "x", "-1", "W/7", "\"a\" \"b\""] {
            assert_eq!(m(bad).unwrap_err().status, 400, "{bad:?}");
        }
    }

    #[test]
    fn max_stale() {
        assert!(accepts_stale(&req(&[("cache-control", "max-stale")], "")));
        assert!(accepts_stale(&req(&[("cache-control", "no-transform, Max-Stale=30")], "")));
        assert!(!accepts_stale(&req(&[("cache-control", "max-age=0")], "")));
        assert!(!accepts_stale(&req(&[], "")));
    }

    #[test]
    fn patches() {
        let p = parse_patch(&json!({"display_name": "Alice A.", "email": null})).unwrap();
        assert_eq!(p, Patch { display_name: Some(Some("Alice A.".into())), email: Some(None) });
        assert_eq!(parse_patch(&json!({"email": "x.y+z@mail.example.org"})).unwrap().display_name, None);
        for bad in [
            json!({}),
            json!([]),
            json!("x"),
            json!({"password": "x"}),
            json!({"display_name": 5}),
            json!({"display_name": ""}),
            json!({"display_name": "   "}),
            json!({"display_name": "a\u{0}b"}),
            json!({"display_name": "x".repeat(65)}),
            json!({"email": "nope"}),
            json!({"email": "a@b"}),
            json!({"email": "a@b.c"}),
            json!({"email": "a b@example.com"}),
            json!({"email": ".a@example.com"}),
            json!({"email": "a..b@example.com"}),
            json!({"email": "a@-x.com"}),
            json!({"email": "a@x..com"}),
            json!({"email": "a@@x.com"}),
            json!({"email": format!("{}@example.com", "a".repeat(65))}),
            json!({"email": format!("a@{}.com", "b".repeat(250))}),
        ] {
            assert_eq!(parse_patch(&bad).unwrap_err().status, 400, "{bad}");
        }
        assert!(validate_display_name(&"é".repeat(64)).is_ok());
        assert!(validate_email("o'brien@example.co.uk").is_ok());
    }
}
