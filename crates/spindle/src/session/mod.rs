//! Sessions in Redis, wire-compatible with express-session + connect-redis.
//!
//! An Express app and Spindle components can share one Redis and one cookie:
//! the cookie is `connect.sid=s:<sid>.<HMAC>` signed like `cookie-signature`
//! ([`cookie`]), and `sess:<sid>` holds the JSON connect-redis writes
//! ([`StoredSession`]). A login in either is a login in both, and so is a logout.
//!
//! Other components check a session with one call, [`authenticate`]: one GET,
//! and a second, conditional write only when a rolling refresh is due.
//!
//! ```ignore
//! let cfg = SessionConfig::from_vars(&SpinVars)?;          // once per request
//! let me = session::authenticate(&link, &SystemClock, &cfg, &req).await?;
//! let resp = me.apply(Response::json(200, &json!({ "hello": me.user.username })));
//! ```
//!
//! Writes never undo a logout: a session is created with `SET NX` and
//! updated by a compare-and-set script that writes only if the value is the
//! one that was read ([`commit`]); a changed value is re-read and the change
//! re-applied ([`update`]), so concurrent updates of different fields all land.
//!
//! Each user's live sessions are indexed in a sorted set
//! (`spindle:user-sessions:<user id>`, scored by creation time), maintained by
//! the same scripts that create and destroy sessions and trimmed of dead
//! entries whenever it is read.

pub mod cookie;
mod config;
mod persist;
mod set_cookie;
pub(crate) mod scripts;
mod store;

pub use config::{SameSite, SecurePolicy, SessionConfig};
pub use cookie::CookieError;
pub use crate::date::{parse_iso, to_http_date, to_iso};
pub use persist::{commit, load, update, Commit, Loaded};
pub use set_cookie::{clear_cookie, set_cookie};
pub use store::{ttl_secs, Corrupt, CookieJson, Meta, StoredSession, UserRef};

use crate::env::{Clock, Rng};
use crate::http::{Problem, Request, Response};
use crate::redis::{self, Arg, Link};
use base64::Engine as _;
use serde_json::{json, Value};
use std::fmt;

use crate::keys::session::{in_user_slot, index as index_key, session as session_key, tag as user_tag, PREFIX as KEY_PREFIX};

/// A user's oldest sessions are logged out beyond this many.
pub const MAX_SESSIONS_PER_USER: u32 = 100;
/// Random bytes per session id (as express-session's `uid(24)`): 32 base64url characters.
pub const SID_BYTES: usize = 24;
/// Longest user agent kept in the session, in bytes.
pub const MAX_USER_AGENT: usize = 256;
/// How many times [`update`] re-reads a session that changed under it. A
/// writer only loses a round to another writer's success, so this many
/// concurrent writers of one session all get through.
pub const UPDATE_ATTEMPTS: usize = 16;

/// The opaque name of a session in the session list: the first 16 hex
/// digits of SHA-1(sid). It identifies a session to its owner without
/// revealing the sid (which would be a bearer credential).
pub fn handle(sid: &str) -> String {
    sha1_smol::Sha1::from(sid).digest().to_string()[..16].to_owned()
}

/// A fresh session id for a user: its hash tag `{<user id>}` (so the session
/// shares a Redis Cluster slot with the user's index), then [`SID_BYTES`]
/// from the CSPRNG, base64url without padding.
pub fn new_sid(rng: &impl Rng, user_id: i64) -> String {
    let mut b = [0u8; SID_BYTES];
    rng.fill(&mut b);
    let mut sid = user_tag(user_id);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(b, &mut sid);
    sid
}

/// A sid we are willing to turn into a key: what `uid-safe` and sensible
/// `genid`s produce, optionally after a user's hash tag (`{<id>}`, what
/// [`new_sid`] issues). It was signed by a holder of the secret, but a key
/// is never built from unchecked text.
fn valid_sid(sid: &str) -> bool {
    let body = match sid.strip_prefix('{').and_then(|rest| rest.split_once('}')) {
        Some((id, body)) if !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit() || b == b'-') => body,
        Some(_) => return false,
        None => sid,
    };
    (1..=128).contains(&body.len()) && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Everything that keeps a request from having a session, by what the client
/// should be told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionError {
    /// No session cookie.
    Missing,
    /// A cookie that is not a valid session cookie.
    BadCookie(CookieError),
    /// No such session: logged out, expired, or never existed.
    NotFound,
    /// The session exists but nobody logged in with it (an Express session
    /// without `user`).
    Anonymous,
    /// The stored value is not a session we can read (logged, then a 401).
    Corrupt(String),
    /// A session variable has an invalid value.
    Misconfigured(String),
    /// Redis failed or could not be reached: fail closed.
    Redis(redis::Error),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Missing => write!(f, "no session cookie"),
            SessionError::BadCookie(e) => write!(f, "invalid session cookie ({e:?})"),
            SessionError::NotFound => write!(f, "no such session"),
            SessionError::Anonymous => write!(f, "the session has no user"),
            SessionError::Corrupt(m) => write!(f, "unreadable session: {m}"),
            SessionError::Misconfigured(m) => write!(f, "session configuration: {m}"),
            SessionError::Redis(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SessionError {}

impl From<crate::config::ConfigError> for SessionError {
    fn from(e: crate::config::ConfigError) -> Self {
        SessionError::Misconfigured(e.to_string())
    }
}

impl From<redis::Error> for SessionError {
    fn from(e: redis::Error) -> Self {
        SessionError::Redis(e)
    }
}

impl SessionError {
    /// 401 for every "no valid session" case (one uniform detail: which check
    /// failed is not the client's business), 500
    /// misconfigured, 503 when Redis fails.
    pub fn to_problem(&self) -> Problem {
        match self {
            SessionError::Missing
            | SessionError::BadCookie(_)
            | SessionError::NotFound
            | SessionError::Anonymous
            | SessionError::Corrupt(_) => Problem::unauthorized("no valid session; log in first"),
            SessionError::Misconfigured(m) => Problem::misconfigured(m),
            SessionError::Redis(redis::Error::Config(_)) => Problem::misconfigured("redis"),
            SessionError::Redis(_) => Problem::redis_unavailable(),
        }
    }

    pub fn is_unauthorized(&self) -> bool {
        self.to_problem().status == 401
    }
}

impl From<SessionError> for Problem {
    fn from(e: SessionError) -> Self {
        e.to_problem()
    }
}

/// A request's authenticated session: who, and what to send back.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionUser {
    pub user: UserRef,
    /// This session's handle, as in the session list.
    pub handle: String,
    pub created_at_ms: Option<u64>,
    pub last_seen_ms: Option<u64>,
    pub expires_at_ms: Option<u64>,
    /// A `Set-Cookie` value the response must carry when present: the
    /// rolling refresh extended the expiry, or the cookie was signed with an
    /// older secret and is re-signed with the current one. [`SessionUser::apply`] adds it.
    pub set_cookie: Option<String>,
    sid: String,
}

impl SessionUser {
    /// Adds the `Set-Cookie` header, if any, to a response.
    pub fn apply(&self, resp: Response) -> Response {
        match &self.set_cookie {
            Some(c) => resp.with_header("set-cookie", c.clone()),
            None => resp,
        }
    }

    /// `{handle, created_at, expires_at, last_seen}`, dates in ISO-8601 (or null).
    pub fn session_json(&self) -> Value {
        let iso = |ms: Option<u64>| ms.map(to_iso);
        json!({
            "handle": self.handle,
            "created_at": iso(self.created_at_ms),
            "expires_at": iso(self.expires_at_ms),
            "last_seen": iso(self.last_seen_ms),
        })
    }

    /// The session id. Internal: never put it in a response body or a log.
    pub fn sid(&self) -> &str {
        &self.sid
    }
}

/// Whether the request carries a session cookie at all, valid or not: other
/// components skip the session lookup (and its round trip) without one.
pub fn has_cookie(cfg: &SessionConfig, req: &Request) -> bool {
    sends_cookie(&cfg.cookie_name, req)
}

/// [`has_cookie`] by the cookie's name alone ([`SessionConfig::cookie_name_from_vars`]).
pub fn sends_cookie(cookie_name: &str, req: &Request) -> bool {
    !matches!(cookie::find(req.header_all("cookie"), cookie_name), Ok(None))
}

/// The verified sid of the request's cookie and whether it must be
/// re-signed (it verified with an older secret).
pub fn read_cookie(cfg: &SessionConfig, req: &Request) -> Result<(String, bool), SessionError> {
    let value = cookie::find(req.header_all("cookie"), &cfg.cookie_name)
        .map_err(SessionError::BadCookie)?
        .ok_or(SessionError::Missing)?;
    let (sid, index) = cookie::unsign_with(&value, cfg.secrets()).map_err(SessionError::BadCookie)?;
    if !valid_sid(&sid) {
        return Err(SessionError::BadCookie(CookieError::Malformed));
    }
    Ok((sid, index > 0))
}

fn request_meta(cfg: &SessionConfig, req: &Request) -> (Option<String>, Option<String>) {
    let ua = req.header("user-agent").map(|ua| {
        let mut end = ua.len().min(MAX_USER_AGENT);
        while !ua.is_char_boundary(end) {
            end -= 1;
        }
        ua[..end].to_owned()
    });
    (ua, cfg.trusted_proxies.client_ip(req).map(|ip| ip.to_string()))
}

/// Sets one user-data field of the request's session (e.g. `cart`), keeping
/// every other field, including ones other writers set meanwhile.
/// `cookie`, `user` and `spindle` are Spindle's and refused here.
pub async fn set_field(
    link: &impl Link,
    clock: &impl Clock,
    cfg: &SessionConfig,
    req: &Request,
    session: &SessionUser,
    name: &str,
    value: &Value,
) -> Result<(), SessionError> {
    if matches!(name, "cookie" | "user" | "spindle") {
        return Err(SessionError::Misconfigured(format!("the session field {name} is reserved")));
    }
    update(link, clock, cfg, &session.sid, cfg.secure_for(req), |s| s.set_field(name, value)).await
}

/// THE session check for every component: the signed cookie, one GET of
/// `sess:<sid>`, and — only when a rolling refresh is due (the last one is
/// older than `session_refresh_s`) — one conditional write. Add
/// [`SessionUser::set_cookie`] to the response ([`SessionUser::apply`]).
pub async fn authenticate(link: &impl Link, clock: &impl Clock, cfg: &SessionConfig, req: &Request) -> Result<SessionUser, SessionError> {
    let (sid, resign) = read_cookie(cfg, req)?;
    let read = load(link, &sid).await?.ok_or(SessionError::NotFound)?;
    let now = clock.now_ms();
    let s = &read.session;
    if s.is_expired(now) {
        return Err(SessionError::NotFound);
    }
    let user = s.user.clone().ok_or(SessionError::Anonymous)?;
    let mut out = SessionUser {
        user,
        handle: handle(&sid),
        created_at_ms: s.meta.created_at,
        last_seen_ms: s.meta.last_seen,
        expires_at_ms: s.expires,
        set_cookie: None,
        sid,
    };
    let due = s.meta.last_seen.is_none_or(|seen| now.saturating_sub(seen) >= cfg.refresh_interval_ms);
    if due {
        let secure = cfg.secure_for(req);
        let mut new = s.clone();
        new.roll(now, cfg);
        let (user_agent, ip) = request_meta(cfg, req);
        new.set_meta(Meta { last_seen: Some(now), user_agent: user_agent.or(s.meta.user_agent.clone()), ip: ip.or(s.meta.ip.clone()), ..s.meta.clone() });
        match commit(link, &read, &new, secure, cfg, now).await? {
            Commit::Written => {
                out.expires_at_ms = new.expires;
                out.last_seen_ms = Some(now);
                out.set_cookie = Some(set_cookie(cfg, req, &out.sid, new.expires, now));
            }
            Commit::Gone | Commit::Deleted => return Err(SessionError::NotFound),
            // Another request wrote it between our read and write: it
            // refreshed it or changed a field. Either way we are still in.
            Commit::Conflict => {}
        }
    }
    if resign && out.set_cookie.is_none() {
        out.set_cookie = Some(set_cookie(cfg, req, &out.sid, out.expires_at_ms, now));
    }
    Ok(out)
}

/// Logs `user` in: a NEW session id (never the one the request carried, which
/// is destroyed in the same script: no fixation), stored with `SET NX` and
/// indexed under the user. One round trip. Send `set_cookie` with the response.
pub async fn create(
    link: &impl Link,
    clock: &impl Clock,
    rng: &impl Rng,
    cfg: &SessionConfig,
    req: &Request,
    user: UserRef,
) -> Result<SessionUser, SessionError> {
    let now = clock.now_ms();
    let replaced = read_cookie(cfg, req).ok().map(|(sid, _)| sid);
    let (user_agent, ip) = request_meta(cfg, req);
    let meta = Meta { created_at: Some(now), last_seen: Some(now), user_agent, ip };
    let stored = StoredSession::new(user.clone(), meta, now, cfg);
    let json = stored.to_json(cfg, cfg.secure_for(req));
    let ttl = ttl_secs(stored.expires, now);
    let tag = user_tag(user.id);
    for _ in 0..3 {
        let sid = new_sid(rng, user.id);
        let mut keys = vec![Arg::from(session_key(&sid)), index_key(user.id).into()];
        // The replaced session goes in the same script when it is in the
        // user's slot, else in a step of its own once this one is in.
        let old = replaced.as_deref().filter(|old| *old != sid);
        let old_elsewhere = old.filter(|old| !in_user_slot(old, user.id));
        if let Some(old) = old.filter(|_| old_elsewhere.is_none()) {
            keys.push(session_key(old).into());
        }
        let args = [Arg::from(sid.as_str()), json.as_str().into(), now.into(), MAX_SESSIONS_PER_USER.into(), ttl.into(), KEY_PREFIX.into(), tag.as_str().into()];
        let reply = link.eval(&scripts::CREATE, &keys, &args).await?;
        let (created, evicted) = status_and_sids(&reply, "session/create")?;
        if created == 1 {
            if let Some(old) = old_elsewhere {
                link.exec(&redis::Cmd::new("DEL").arg(session_key(old))).await?;
            }
            for sid in &evicted {
                destroy_elsewhere(link, sid, user.id).await?;
            }
            return Ok(SessionUser {
                user,
                handle: handle(&sid),
                created_at_ms: Some(now),
                last_seen_ms: Some(now),
                expires_at_ms: stored.expires,
                set_cookie: Some(set_cookie(cfg, req, &sid, stored.expires, now)),
                sid,
            });
        }
    }
    Err(SessionError::Redis(redis::Error::Server("could not draw a free session id".into())))
}

/// Destroys an authenticated session (one script: the key and its index entry).
pub async fn destroy(link: &impl Link, session: &SessionUser) -> Result<bool, SessionError> {
    destroy_sid(link, &session.sid, Some(session.user.id)).await
}

/// Deletes `sess:<sid>` and its entry in the user's index: one script when
/// they share a slot, else the key and then the entry.
async fn destroy_sid(link: &impl Link, sid: &str, user_id: Option<i64>) -> Result<bool, SessionError> {
    let mut keys = vec![Arg::from(session_key(sid))];
    match user_id {
        Some(id) if !in_user_slot(sid, id) => return destroy_elsewhere(link, sid, id).await,
        Some(id) => keys.push(index_key(id).into()),
        None => {}
    }
    Ok(link.eval(&scripts::DESTROY, &keys, &[sid.into()]).await?.int()? == 1)
}

/// Deletes a session outside its user's slot, then its index entry (so a
/// crash in between leaves an entry without a session, never the reverse).
/// Whether the session existed.
async fn destroy_elsewhere(link: &impl Link, sid: &str, user_id: i64) -> Result<bool, SessionError> {
    let existed = link.exec(&redis::Cmd::new("DEL").arg(session_key(sid))).await?.int()? == 1;
    link.exec(&redis::Cmd::new("ZREM").arg(index_key(user_id)).arg(sid)).await?;
    Ok(existed)
}

/// A reply `{status, sid...}`.
fn status_and_sids(reply: &redis::Reply, what: &str) -> Result<(i64, Vec<String>), SessionError> {
    let bad = || SessionError::Redis(redis::Error::Protocol(format!("{what} answered {reply:?}")));
    let values = reply.values();
    let Some(redis::Value::Int(status)) = values.first() else { return Err(bad()) };
    let sids = values[1..]
        .iter()
        .map(|v| match v {
            redis::Value::Bytes(b) => String::from_utf8(b.clone()).map_err(|_| bad()),
            _ => Err(bad()),
        })
        .collect::<Result<_, _>>()?;
    Ok((*status, sids))
}

/// Logs out whatever session the request's cookie names, if any: the GET
/// (to find its user's index) and the destroy script. `Ok(false)` when there
/// was nothing to destroy. Clear the cookie either way.
pub async fn logout(link: &impl Link, cfg: &SessionConfig, req: &Request) -> Result<bool, SessionError> {
    let Ok((sid, _)) = read_cookie(cfg, req) else { return Ok(false) };
    let user = match load(link, &sid).await {
        Ok(None) => return Ok(false),
        Ok(Some(l)) => l.session.user,
        // Unreadable: destroy it all the same.
        Err(SessionError::Corrupt(_)) => None,
        Err(e) => return Err(e),
    };
    destroy_sid(link, &sid, user.map(|u| u.id)).await
}

/// Logs a user out everywhere. Returns how many sessions were live.
pub async fn destroy_all(link: &impl Link, user_id: i64) -> Result<u64, SessionError> {
    let args = [Arg::from(KEY_PREFIX), user_tag(user_id).into()];
    let reply = link.eval(&scripts::DESTROY_ALL, &[index_key(user_id).into()], &args).await?;
    let (n, elsewhere) = status_and_sids(&reply, "session/destroy_all")?;
    let mut n = n.max(0) as u64;
    for sid in &elsewhere {
        n += destroy_elsewhere(link, sid, user_id).await? as u64;
    }
    Ok(n)
}

/// Destroys the user's session with this handle. `false` when the user has
/// no live session by that handle.
pub async fn destroy_handle(link: &impl Link, user_id: i64, handle: &str) -> Result<bool, SessionError> {
    if handle.len() != 16 || !handle.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Ok(false);
    }
    let args = [Arg::from(KEY_PREFIX), handle.into(), user_tag(user_id).into()];
    let reply = link.eval(&scripts::DESTROY_HANDLE, &[index_key(user_id).into()], &args).await?;
    match status_and_sids(&reply, "session/destroy_handle")? {
        (2, sids) if sids.len() == 1 => destroy_elsewhere(link, &sids[0], user_id).await,
        (n, _) => Ok(n == 1),
    }
}

/// One entry of the session list. No sid: the handle names it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SessionSummary {
    pub handle: String,
    pub current: bool,
    pub created_at: Option<String>,
    pub last_seen: Option<String>,
    pub expires_at: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// The user's live sessions, newest first (one script, which also trims
/// index entries whose session is gone).
pub async fn list(link: &impl Link, clock: &impl Clock, current: &SessionUser) -> Result<Vec<SessionSummary>, SessionError> {
    let id = current.user.id;
    let reply = link.eval(&scripts::LIST, &[index_key(id).into()], &[KEY_PREFIX.into(), user_tag(id).into()]).await?;
    let bad = || SessionError::Redis(redis::Error::Protocol("the session list is not pairs of a sid and a session".into()));
    let values = reply.values();
    if values.len() % 2 != 0 {
        return Err(bad());
    }
    let mut live = Vec::with_capacity(values.len() / 2);
    for pair in values.chunks(2) {
        let redis::Value::Bytes(sid) = &pair[0] else { return Err(bad()) };
        let sid = String::from_utf8(sid.clone()).map_err(|_| bad())?;
        match &pair[1] {
            redis::Value::Bytes(raw) => live.push((sid, raw.clone())),
            // In another slot: read it here, and drop the entry if it is gone.
            redis::Value::Int(0) => match link.exec(&redis::Cmd::new("GET").arg(session_key(&sid))).await?.opt_bytes()? {
                Some(raw) => live.push((sid, raw)),
                None => {
                    link.exec(&redis::Cmd::new("ZREM").arg(index_key(id)).arg(&sid)).await?;
                }
            },
            _ => return Err(bad()),
        }
    }
    let now = clock.now_ms();
    let mut out = Vec::new();
    for (sid, raw) in live {
        let Ok(s) = StoredSession::parse(&raw) else { continue };
        if s.is_expired(now) || s.user.as_ref().map(|u| u.id) != Some(current.user.id) {
            continue;
        }
        out.push(SessionSummary {
            handle: handle(&sid),
            current: *sid == current.sid,
            created_at: s.meta.created_at.map(to_iso),
            last_seen: s.meta.last_seen.map(to_iso),
            expires_at: s.expires.map(to_iso),
            user_agent: s.meta.user_agent,
            ip: s.meta.ip,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::SeqRng;

    fn cfg() -> SessionConfig {
        SessionConfig::new(vec!["0123456789abcdef-secret".into(), "an old secret".into()]).unwrap()
    }

    fn req(headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            path: "/auth/me".into(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn sids_are_the_users_tag_and_32_base64url_characters() {
        let sid = new_sid(&SeqRng::default(), 42);
        assert_eq!(sid, "{42}AAECAwQFBgcICQoLDA0ODxAREhMUFRYX");
        assert!(valid_sid(&sid) && crate::keys::session::in_user_slot(&sid, 42));
        // Express's own sids (uid-safe) stay valid.
        assert!(valid_sid("AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"));
        assert!(!valid_sid("a.b") && !valid_sid("") && !valid_sid(&"a".repeat(129)) && !valid_sid("a:b"));
        for bad in ["{}abc", "{4x}abc", "{42}", "{42abc", "{42}{1}abc", &format!("{{{}}}abc", "1".repeat(21))] {
            assert!(!valid_sid(bad), "{bad}");
        }
    }

    #[test]
    fn handles_are_truncated_sha1() {
        // printf apple | sha1sum → d0be2dc421be4fcd0172e5afceea3970e2f3d940
        assert_eq!(handle("apple"), "d0be2dc421be4fcd");
    }

    #[test]
    fn read_cookie_verifies_rotates_and_refuses() {
        let c = cfg();
        let cookie = |v: String| req(&[("cookie", &format!("connect.sid={v}"))]);
        let new = cookie::wire_value("abc", "0123456789abcdef-secret");
        let old = cookie::wire_value("abc", "an old secret");
        assert_eq!(read_cookie(&c, &cookie(new.clone())), Ok(("abc".into(), false)));
        assert_eq!(read_cookie(&c, &cookie(old)), Ok(("abc".into(), true)), "old secret: re-sign");
        assert_eq!(read_cookie(&c, &req(&[])), Err(SessionError::Missing));
        assert_eq!(read_cookie(&c, &cookie("abc".into())), Err(SessionError::BadCookie(CookieError::Malformed)));
        let tampered = new.replace("abc", "abd");
        assert_eq!(read_cookie(&c, &cookie(tampered)), Err(SessionError::BadCookie(CookieError::BadSignature)));
        let dup = req(&[("cookie", &format!("connect.sid={new}; connect.sid={}", cookie::wire_value("xyz", "0123456789abcdef-secret")))]);
        assert_eq!(read_cookie(&c, &dup), Err(SessionError::BadCookie(CookieError::Ambiguous)));
        // A correctly signed sid that is no key we would build.
        let odd = cookie::wire_value("../x y", "0123456789abcdef-secret");
        assert_eq!(read_cookie(&c, &cookie(odd)), Err(SessionError::BadCookie(CookieError::Malformed)));
        for e in [SessionError::Missing, SessionError::NotFound, SessionError::Anonymous, SessionError::BadCookie(CookieError::Ambiguous)] {
            assert_eq!(e.to_problem().detail, "no valid session; log in first", "one uniform 401");
        }
        assert_eq!(SessionError::Redis(redis::Error::Unavailable("x".into())).to_problem().status, 503);
    }

    #[test]
    fn set_cookie_follows_the_policy() {
        let mut c = cfg();
        let r = req(&[("spin-full-url", "https://app.example/auth/login")]);
        let now = 1_700_000_000_000;
        let v = set_cookie(&c, &r, "apple", Some(now + 86_400_000), now);
        assert_eq!(v, format!(
            "connect.sid={}; Max-Age=86400; Path=/; Expires=Wed, 15 Nov 2023 22:13:20 GMT; HttpOnly; Secure; SameSite=Lax",
            cookie::wire_value("apple", "0123456789abcdef-secret")
        ));
        c.domain = Some("example.com".into());
        c.secure = SecurePolicy::Never;
        c.http_only = false;
        let v = set_cookie(&c, &r, "apple", None, now);
        assert!(v.ends_with("; Domain=example.com; Path=/; SameSite=Lax"), "{v}");
        assert_eq!(clear_cookie(&c, &req(&[])), "connect.sid=; Max-Age=0; Domain=example.com; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; SameSite=Lax");
    }
}
