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
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use spindle::cache::{Degraded, Outcome};
use spindle::env::Sleep;
use spindle::env::Clock;
use spindle::http::router::BodyLimit;
use spindle::http::{Problem, Response};
use spindle::session::{self, SessionUser};
use spindle::spin::{serve, Cx, Routes, WasiSleep};
use spindle::users::cached::{self, CachedUsers, Found, Settings};
use spindle::users::{self, view, LazyStore, StoreError, Updated};

const ROUTES: Routes = spindle::routes![
    GET|HEAD "/users" => batch,
    GET|HEAD "/users/" => batch,
    GET|HEAD "/users/:id" => get_one,
    PATCH "/users/:id" (BodyLimit::Bytes(4096)) => patch,
];

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(ROUTES, req, out).await
}

/// The store `db_url` selects, opened only if the request reaches it.
fn store(cx: &Cx) -> LazyStore<users::Store, impl Fn() -> Result<users::Store, StoreError> + '_> {
    LazyStore::new(|| users::open_store(cx.vars()))
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

/// Headers every read carries: where the answer came from, and that it
/// depends on the cookie (the owner sees more).
fn read_headers(resp: Response, outcome: Outcome, me: &Option<SessionUser>) -> Response {
    let resp = resp.with_header("x-cache", outcome.as_str()).with_header("vary", "Cookie").with_header("cache-control", "no-cache");
    match me {
        Some(s) => s.apply(resp),
        None => resp,
    }
}

async fn get_one(cx: Cx) -> Result<Response, Problem> {
    let (req, id) = (&cx.req, view::parse_id(cx.param("id"))?);
    let settings = Settings::from_vars(cx.vars())?;
    let link = cx.link()?;
    // Reads are public: a missing, bad or unverifiable session is anonymous.
    let me = cx.optional_session().await;
    let store = store(&cx);
    let users = CachedUsers::new(link, cx.rng(), &WasiSleep, settings.cache, &store);
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

async fn batch(cx: Cx) -> Result<Response, Problem> {
    let settings = Settings::from_vars(cx.vars())?;
    let ids = view::parse_ids(&cx.req, settings.batch_max)?;
    let link = cx.link()?;
    let me = cx.optional_session().await;
    let store = store(&cx);
    let users = CachedUsers::new(link, cx.rng(), &WasiSleep, settings.cache, &store);
    let (found, degraded) = users.get_many(&ids, view::accepts_stale(&cx.req)).await.map_err(store_failed)?;
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

async fn patch(cx: Cx) -> Result<Response, Problem> {
    let (req, id) = (&cx.req, view::parse_id(cx.param("id"))?);
    let settings = Settings::from_vars(cx.vars())?;
    cx.session_config()?;
    cx.same_origin()?;
    let body: serde_json::Value = cx.json()?;
    let patch = view::parse_patch(&body)?;
    let expected = view::if_match_versions(req, id)?;
    let me = cx.session().await?;
    if me.user.id != id {
        return Err(Problem::forbidden("only the owner may change a profile"));
    }
    if settings.test_delay_ms > 0 {
        WasiSleep.sleep_ms(settings.test_delay_ms).await;
    }
    let store = store(&cx);
    let users = CachedUsers::new(cx.link()?, cx.rng(), &WasiSleep, settings.cache, &store);
    let now = session::to_iso(cx.clock().now_ms());
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
