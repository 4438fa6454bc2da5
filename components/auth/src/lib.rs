//! `/auth/...`: accounts and sessions, wire-compatible with express-session
//! + connect-redis.
//!
//! Its routes, their bodies and answers: docs/routes.md ("auth"), which
//! `tests/tests/docs.rs` holds to the route table below.
//!
//! Handlers parse and validate, call `spindle::session` / `spindle::users`,
//! and map the result; all policy lives in the library. State-changing
//! routes pass the CSRF origin check first.

use serde::Deserialize;
use serde_json::json;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use spindle::app::session_failed;
use spindle::env::Clock;
use spindle::http::router::BodyLimit;
use spindle::http::{Problem, Response};
use spindle::ratelimit::{register_attempt, LoginAttempt};
use spindle::session;
use spindle::spin::{serve, Cx, Routes};
use spindle::users::{self, UserStore};
use std::time::Instant;

/// Register and login bodies: a username and a password.
const CREDENTIALS: BodyLimit = BodyLimit::Bytes(4096);

const ROUTES: Routes = spindle::routes![
    POST "/auth/register" (CREDENTIALS) => register,
    POST "/auth/login" (CREDENTIALS) => login,
    POST "/auth/logout" => logout,
    GET|HEAD "/auth/me" => me,
    GET|HEAD "/auth/sessions" => list_sessions,
    DELETE "/auth/sessions" => logout_everywhere,
    DELETE "/auth/sessions/:handle" => logout_one,
];

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(ROUTES, req, out).await
}

/// The user store `db_url` selects (Spin SQLite `default`, or PostgreSQL),
/// through the one selection function `users` uses too.
fn store(cx: &Cx) -> Result<users::Store, Problem> {
    users::open_store(cx.vars()).map_err(|e| {
        eprintln!("auth: {e}");
        Problem::from(e)
    })
}

fn no_store(resp: Response) -> Response {
    resp.with_header("cache-control", "no-store")
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

async fn register(cx: Cx) -> Result<Response, Problem> {
    cx.same_origin()?;
    let body: Credentials = cx.json()?;
    users::validate_username(&body.username)?;
    users::validate_password(&body.password)?;
    // Before the hash: a refused registration costs no Argon2id.
    let limited = register_attempt(cx.link()?, cx.clock(), cx.vars(), &cx.req).await?;
    let hash = users::hash_password(cx.rng(), &body.password)?;
    let now = session::to_iso(cx.clock().now_ms());
    match store(&cx)?.insert(&body.username, &hash, &now).await.map_err(Problem::from)? {
        Some(user) => Ok(limited.apply(no_store(Response::json(201, &json!({ "user": user }))).with_header("location", "/auth/me"))),
        None => {
            // 409 by design (spindle::ratelimit::login: the enumeration trade-off).
            let mut p = Problem::conflict("that username is taken");
            p.headers.extend(limited.headers);
            Err(p)
        }
    }
}

async fn login(cx: Cx) -> Result<Response, Problem> {
    cx.same_origin()?;
    let body: Credentials = cx.json()?;
    let (link, clock) = (cx.link()?, cx.clock());
    let attempt = LoginAttempt::start(link, clock, cx.vars(), &cx.req, &body.username).await?;

    let store = store(&cx)?;
    let started = Instant::now();
    let found = users::check_login(&store, &body.username, &body.password).await.map_err(Problem::from)?;
    // How long the lookup and Argon2id took: the same whether or not the
    // user exists, so it is safe to show and useful to measure.
    let timing = format!("verify;dur={:.1}", started.elapsed().as_secs_f64() * 1000.0);
    let Some(user) = found else {
        // One answer for "no such user" and "wrong password".
        let mut problem = Problem::unauthorized("invalid username or password").with_header("server-timing", timing);
        problem.headers.extend(attempt.limited.apply(Response::empty(401)).headers);
        return Err(problem);
    };
    attempt.succeeded(link, clock).await;
    let who = session::UserRef { id: user.id, username: user.username.clone() };
    let cfg = cx.session_config()?;
    let session = session::create(link, clock, cx.rng(), cfg, &cx.req, who).await.map_err(session_failed)?;
    let resp = Response::json(200, &json!({ "user": user, "session": session.session_json() }));
    Ok(no_store(session.apply(resp)).with_header("server-timing", timing))
}

async fn me(cx: Cx) -> Result<Response, Problem> {
    let me = cx.session().await?;
    Ok(no_store(me.apply(Response::json(200, &json!({ "user": me.user, "session": me.session_json() })))))
}

async fn logout(cx: Cx) -> Result<Response, Problem> {
    cx.same_origin()?;
    let cfg = cx.session_config()?;
    // Idempotent: no session is fine. A Redis failure is not: the cookie
    // stays, so the client does not believe it logged out when it did not.
    session::logout(cx.link()?, cfg, &cx.req).await.map_err(session_failed)?;
    Ok(Response::empty(204).with_header("set-cookie", session::clear_cookie(cfg, &cx.req)))
}

async fn list_sessions(cx: Cx) -> Result<Response, Problem> {
    let me = cx.session().await?;
    let sessions = session::list(cx.link()?, cx.clock(), &me).await.map_err(session_failed)?;
    Ok(no_store(me.apply(Response::json(200, &json!({ "sessions": sessions })))))
}

async fn logout_everywhere(cx: Cx) -> Result<Response, Problem> {
    cx.same_origin()?;
    let me = cx.session().await?;
    let n = session::destroy_all(cx.link()?, me.user.id).await.map_err(session_failed)?;
    let cleared = session::clear_cookie(cx.session_config()?, &cx.req);
    Ok(Response::json(200, &json!({ "destroyed": n })).with_header("set-cookie", cleared))
}

async fn logout_one(cx: Cx) -> Result<Response, Problem> {
    cx.same_origin()?;
    let me = cx.session().await?;
    let handle = cx.param("handle");
    if !session::destroy_handle(cx.link()?, me.user.id, handle).await.map_err(session_failed)? {
        return Err(Problem::new(404, "not-found", "Not Found", "you have no live session with that handle"));
    }
    Ok(if handle == me.handle {
        Response::empty(204).with_header("set-cookie", session::clear_cookie(cx.session_config()?, &cx.req))
    } else {
        me.apply(Response::empty(204))
    })
}
