//! `/users/...`: public profiles, read through the fleet-wide cache in
//! Redis (`spindle::cache`, leases against stale fills), written to the SQL
//! source of truth (`spindle::users`: Spin SQLite or PostgreSQL by `db_url`).
//!
//! | route                 | does                                                        |
//! |-----------------------|-------------------------------------------------------------|
//! | `GET /users/:id`      | one user; `X-Cache`, `ETag`, 304 on `If-None-Match`          |
//! | `GET /users?ids=1,2`  | a batch: every hit in one round trip, misses loaded at once |
//! | `PATCH /users/:id`    | the owner edits display_name / email; `If-Match` → 412      |
//!
//! Reads are public; `email` goes to its owner only (the cache keeps the
//! whole record and the view filters it). Handlers parse and validate, call
//! the library, and map the result.

use serde_json::json;
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_component;
use spindle::cache::{Degraded, Outcome, Sleep, WasiSleep};
use spindle::config::RedisConfig;
use spindle::env::{Clock, OsRng, SystemClock};
use spindle::http::{Problem, Response, NO_BODY_LIMIT};
use spindle::session::{self, SessionConfig, SessionError, SessionUser};
use spindle::spin::{serve, SpinLink, SpinVars};
use spindle::users::cached::{self, CachedUsers, Found, Settings};
use spindle::users::{self, view, LazyStore, StoreError, Updated};

/// Largest PATCH body.
const BODY_LIMIT: usize = 4096;

#[http_component]
async fn handle(req: Request) -> impl IntoResponse {
    serve(req, route).await
}

async fn route(req: spindle::http::Request) -> Result<Response, Problem> {
    let path = req.path.clone();
    let method = req.method.clone();
    let allow = |methods: &str| Problem::method_not_allowed(&method).with_header("allow", methods);
    // Reads take no body; a PATCH body is bounded by BODY_LIMIT.
    if method != "PATCH" {
        req.check_body_limit(NO_BODY_LIMIT)?;
    }
    match path.strip_prefix("/users") {
        Some("") | Some("/") => match method.as_str() {
            "GET" | "HEAD" => batch(req).await,
            _ => Err(allow("GET, HEAD")),
        },
        Some(rest) => match rest.strip_prefix('/') {
            Some(id) if !id.is_empty() && !id.contains('/') => match method.as_str() {
                "GET" | "HEAD" => get_one(&req, id).await,
                "PATCH" => patch(&req, id).await,
                _ => Err(allow("GET, HEAD, PATCH")),
            },
            _ => Err(Problem::not_found(&path)),
        },
        None => Err(Problem::not_found(&path)),
    }
}

/// The Redis link (connecting on first use) and the validated settings.
fn env() -> Result<(SpinLink, Settings), Problem> {
    let redis = RedisConfig::from_vars(&SpinVars).map_err(|e| Problem::misconfigured(&e.to_string()))?;
    Ok((SpinLink::new(&redis), Settings::from_vars(&SpinVars)?))
}

/// The store `db_url` selects, opened only if the request reaches it.
fn store() -> LazyStore<users::Store, impl Fn() -> Result<users::Store, StoreError>> {
    LazyStore::new(|| users::open_store(&SpinVars))
}

fn store_failed(e: StoreError) -> Problem {
    eprintln!("users: {e}");
    Problem::from(e)
}

fn log_degraded(d: Option<Degraded>) {
    if let Some(d) = d {
        eprintln!("users: {d}");
    }
}

/// Maps a session error, logging what an operator must see (never cookies).
fn fail(e: SessionError) -> Problem {
    if matches!(e, SessionError::Redis(_) | SessionError::Corrupt(_) | SessionError::Misconfigured(_)) {
        eprintln!("users: {e}");
    }
    e.to_problem()
}

/// Who is asking, when they send a valid session: reads are public, so a
/// missing, bad or unverifiable session is simply anonymous.
async fn viewer(link: &SpinLink, req: &spindle::http::Request) -> Option<SessionUser> {
    let cfg = SessionConfig::from_vars(&SpinVars).ok()?;
    if !session::has_cookie(&cfg, req) {
        return None;
    }
    session::authenticate(link, &SystemClock, &cfg, req).await.ok()
}

/// Headers every read carries: where the answer came from, and that it
/// depends on the cookie (the owner sees more).
fn read_headers(resp: Response, outcome: Outcome, me: &Option<SessionUser>) -> Response {
    let resp = resp.with_header("x-cache", outcome.as_str()).with_header("vary", "Cookie").with_header("cache-control", "no-cache");
    match me {
        Some(s) => s.apply(resp),
        None => resp,
    }
}

async fn get_one(req: &spindle::http::Request, id: &str) -> Result<Response, Problem> {
    let id = view::parse_id(id)?;
    let (link, settings) = env()?;
    let me = viewer(&link, req).await;
    let store = store();
    let users = CachedUsers::new(&link, &SystemClock, &OsRng, &WasiSleep, settings.cache, &store);
    let (found, degraded) = users.get(id, view::accepts_stale(req)).await.map_err(store_failed)?;
    log_degraded(degraded);
    let Some(user) = found.user else {
        let mut p = Problem::new(404, "not-found", "Not Found", format!("no user with id {id}"));
        p.headers.extend(read_headers(Response::empty(404), found.outcome, &me).headers);
        return Err(p);
    };
    let owner = me.as_ref().is_some_and(|m| m.user.id == user.id);
    let tag = view::etag(&user, owner);
    let resp = if view::not_modified(req, &tag) {
        Response::empty(304)
    } else {
        Response::json(200, &json!({ "user": view::user_json(&user, owner) }))
    };
    Ok(read_headers(resp.with_header("etag", tag), found.outcome, &me))
}

async fn batch(req: spindle::http::Request) -> Result<Response, Problem> {
    let (link, settings) = env()?;
    let ids = view::parse_ids(&req, settings.batch_max)?;
    let me = viewer(&link, &req).await;
    let store = store();
    let users = CachedUsers::new(&link, &SystemClock, &OsRng, &WasiSleep, settings.cache, &store);
    let (found, degraded) = users.get_many(&ids, view::accepts_stale(&req)).await.map_err(store_failed)?;
    log_degraded(degraded);
    let me_id = me.as_ref().map(|m| m.user.id);
    let count = |o: Outcome| found.iter().filter(|f| f.outcome == o).count();
    let lookups = format!(
        "hit={}, stale={}, miss={}, bypass={}",
        count(Outcome::Hit),
        count(Outcome::Stale),
        count(Outcome::Miss),
        count(Outcome::Bypass)
    );
    let (present, absent): (Vec<&Found>, Vec<&Found>) = found.iter().partition(|f| f.user.is_some());
    let body = json!({
        "users": present.iter().filter_map(|f| f.user.as_ref()).map(|u| view::user_json(u, me_id == Some(u.id))).collect::<Vec<_>>(),
        "not_found": absent.iter().map(|f| f.id).collect::<Vec<_>>(),
    });
    let resp = Response::json(200, &body).with_header("x-cache-lookups", lookups);
    Ok(read_headers(resp, cached::summary(&found), &me))
}

async fn patch(req: &spindle::http::Request, id: &str) -> Result<Response, Problem> {
    let id = view::parse_id(id)?;
    let (link, settings) = env()?;
    let cfg = SessionConfig::from_vars(&SpinVars).map_err(fail)?;
    cfg.check_origin(req).map_err(fail)?;
    let body: serde_json::Value = req.json(BODY_LIMIT)?;
    let patch = view::parse_patch(&body)?;
    let expected = view::if_match_versions(req, id)?;
    let me = session::authenticate(&link, &SystemClock, &cfg, req).await.map_err(fail)?;
    if me.user.id != id {
        return Err(Problem::forbidden("only the owner may change a profile"));
    }
    if settings.test_delay_ms > 0 {
        WasiSleep.sleep_ms(settings.test_delay_ms).await;
    }
    let store = store();
    let users = CachedUsers::new(&link, &SystemClock, &OsRng, &WasiSleep, settings.cache, &store);
    let now = session::to_iso(SystemClock.now_ms());
    let (updated, _, degraded) = users.update(id, &patch, expected.as_deref(), &now).await.map_err(store_failed)?;
    log_degraded(degraded);
    match updated {
        Updated::Done(user) => {
            let resp = Response::json(200, &json!({ "user": view::user_json(&user, true) }))
                .with_header("etag", view::etag(&user, true))
                .with_header("cache-control", "no-store");
            Ok(me.apply(resp))
        }
        Updated::Conflict(current) => Err(Problem::new(
            412,
            "precondition-failed",
            "Precondition Failed",
            format!("the user is at version {}; fetch it again and retry", current.version),
        )
        .with_header("etag", view::etag(&current, true))),
        Updated::NotFound => Err(Problem::new(404, "not-found", "Not Found", format!("no user with id {id}"))),
    }
}
