//! `/auth/...`: accounts and sessions, wire-compatible with express-session
//! + connect-redis.
//!
//! | route                          | does                                           |
//! |--------------------------------|------------------------------------------------|
//! | `POST /auth/register`          | create a user (SQLite `users`), 201 / 409      |
//! | `POST /auth/login`             | verify the password, new session, cookie       |
//! | `GET /auth/me`                 | the session's user, or 401                     |
//! | `POST /auth/logout`            | destroy the session, clear the cookie          |
//! | `GET /auth/sessions`           | this user's live sessions (by opaque handle)   |
//! | `DELETE /auth/sessions`        | log out everywhere                             |
//! | `DELETE /auth/sessions/:handle`| log out one session                            |
//!
//! Handlers parse and validate, call `spindle::session` / `spindle::users`,
//! and map the result; all policy lives in the library. State-changing
//! routes pass the CSRF origin check first.

use serde::Deserialize;
use serde_json::json;
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_component;
use spindle::config::RedisConfig;
use spindle::env::{Clock, OsRng, SystemClock};
use spindle::http::{Problem, Response, NO_BODY_LIMIT};
use spindle::ratelimit::{Identity, Limited, Throttle};
use spindle::redis::Link;
use spindle::session::{self, SessionConfig, SessionError, SessionUser, UserRef};
use spindle::spin::{serve, SpinLink, SpinVars};
use spindle::users::{self, UserStore};
use std::time::Instant;

/// Largest JSON body the auth routes accept.
const BODY_LIMIT: usize = 4096;

#[http_component]
async fn handle(req: Request) -> impl IntoResponse {
    serve(req, route).await
}

async fn route(req: spindle::http::Request) -> Result<Response, Problem> {
    // Register and login bound their JSON bodies (BODY_LIMIT); the other
    // routes take none.
    if !matches!(req.path.as_str(), "/auth/register" | "/auth/login") {
        req.check_body_limit(NO_BODY_LIMIT)?;
    }
    let path = req.path.clone();
    let method = req.method.as_str();
    let allow = |methods: &str| Problem::method_not_allowed(method).with_header("allow", methods);
    match path.as_str() {
        "/auth/register" => match method {
            "POST" => register(req).await,
            _ => Err(allow("POST")),
        },
        "/auth/login" => match method {
            "POST" => login(req).await,
            _ => Err(allow("POST")),
        },
        "/auth/logout" => match method {
            "POST" => logout(req).await,
            _ => Err(allow("POST")),
        },
        "/auth/me" => match method {
            "GET" | "HEAD" => me(req).await,
            _ => Err(allow("GET, HEAD")),
        },
        "/auth/sessions" => match method {
            "GET" | "HEAD" => list_sessions(req).await,
            "DELETE" => logout_everywhere(req).await,
            _ => Err(allow("GET, HEAD, DELETE")),
        },
        p => match p.strip_prefix("/auth/sessions/") {
            Some(handle) if !handle.is_empty() && !handle.contains('/') => match method {
                "DELETE" => logout_one(req, handle).await,
                _ => Err(allow("DELETE")),
            },
            _ => Err(Problem::not_found(p)),
        },
    }
}

/// What every handler needs: the session policy and a Redis link (which
/// connects on first use only).
struct Env {
    cfg: SessionConfig,
    link: SpinLink,
}

fn env() -> Result<Env, Problem> {
    let redis = RedisConfig::from_vars(&SpinVars).map_err(|e| Problem::misconfigured(&e.to_string()))?;
    let cfg = SessionConfig::from_vars(&SpinVars).map_err(fail)?;
    Ok(Env { cfg, link: SpinLink::new(&redis) })
}

/// Maps a session error to its problem, logging the ones an operator must
/// see. Never logs cookies, sids or secrets.
fn fail(e: SessionError) -> Problem {
    if matches!(e, SessionError::Redis(_) | SessionError::Corrupt(_) | SessionError::Misconfigured(_)) {
        eprintln!("auth: {e}");
    }
    e.to_problem()
}

/// The user store `db_url` selects (Spin SQLite `default`, or PostgreSQL),
/// through the one selection function `users` uses too.
fn store() -> Result<users::Store, Problem> {
    users::open_store(&SpinVars).map_err(|e| {
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

async fn register(req: spindle::http::Request) -> Result<Response, Problem> {
    let env = env()?;
    env.cfg.check_origin(&req).map_err(fail)?;
    let body: Credentials = req.json(BODY_LIMIT)?;
    users::validate_username(&body.username)?;
    users::validate_password(&body.password)?;
    let hash = users::hash_password(&OsRng, &body.password)?;
    let now = session::to_iso(SystemClock.now_ms());
    match store()?.insert(&body.username, &hash, &now).await.map_err(Problem::from)? {
        Some(user) => Ok(no_store(Response::json(201, &json!({ "user": user }))).with_header("location", "/auth/me")),
        None => Err(Problem::conflict("that username is taken")),
    }
}

/// Brute-force protection for `POST /auth/login`, through `spindle::ratelimit`
/// with the `login_rate_limit` policy (failing closed by default).
///
/// `login` calls this first, right after parsing the body and before any user
/// lookup or password hashing, so a refused attempt costs neither. Two
/// budgets are spent: one per client address (resolved through
/// `trusted_proxies`) and one per username (lower-cased; an unusual name is
/// hashed before it becomes a key). Every attempt counts, not only failures,
/// so the answer does not reveal whether a password was right; a successful
/// login gives its attempts back. Either budget spent answers 429
/// `quota-exceeded` with `Retry-After`.
struct LoginAttempt {
    throttle: Throttle,
    by_ip: Identity,
    by_name: Identity,
    limited: Limited,
}

async fn throttle_login(link: &impl Link, req: &spindle::http::Request, username: &str) -> Result<LoginAttempt, Problem> {
    let throttle = Throttle::login(&SpinVars)?;
    let by_ip = throttle.client(req);
    let by_name = Identity::Name(format!("login:{}", username.to_lowercase()));
    let limited = throttle.check(link, &SystemClock, &by_ip, 1).await?;
    let by_name_limited = throttle.check(link, &SystemClock, &by_name, 1).await;
    if by_name_limited.is_err() {
        // The address's attempt was spent on a request that is refused anyway;
        // give it back so one targeted username cannot exhaust a shared address.
        let _ = throttle.refund(link, &SystemClock, &by_ip, 1).await;
    }
    by_name_limited?;
    Ok(LoginAttempt { throttle, by_ip, by_name, limited })
}

impl LoginAttempt {
    /// A successful login returns its attempts: only failures accumulate.
    async fn succeeded(&self, link: &impl Link) {
        let _ = self.throttle.refund(link, &SystemClock, &self.by_ip, 1).await;
        let _ = self.throttle.refund(link, &SystemClock, &self.by_name, 1).await;
    }
}

async fn login(req: spindle::http::Request) -> Result<Response, Problem> {
    let env = env()?;
    env.cfg.check_origin(&req).map_err(fail)?;
    let body: Credentials = req.json(BODY_LIMIT)?;
    let attempt = throttle_login(&env.link, &req, &body.username).await?;

    let store = store()?;
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
    attempt.succeeded(&env.link).await;
    let who = UserRef { id: user.id, username: user.username.clone() };
    let session = session::create(&env.link, &SystemClock, &OsRng, &env.cfg, &req, who).await.map_err(fail)?;
    let resp = Response::json(200, &json!({ "user": user, "session": session.session_json() }));
    Ok(no_store(session.apply(resp)).with_header("server-timing", timing))
}

async fn authenticated(env: &Env, req: &spindle::http::Request) -> Result<SessionUser, Problem> {
    session::authenticate(&env.link, &SystemClock, &env.cfg, req).await.map_err(fail)
}

async fn me(req: spindle::http::Request) -> Result<Response, Problem> {
    let env = env()?;
    let me = authenticated(&env, &req).await?;
    Ok(no_store(me.apply(Response::json(200, &json!({ "user": me.user, "session": me.session_json() })))))
}

async fn logout(req: spindle::http::Request) -> Result<Response, Problem> {
    let env = env()?;
    env.cfg.check_origin(&req).map_err(fail)?;
    // Idempotent: no session is fine. A Redis failure is not: the cookie
    // stays, so the client does not believe it logged out when it did not.
    session::logout(&env.link, &env.cfg, &req).await.map_err(fail)?;
    Ok(Response::empty(204).with_header("set-cookie", session::clear_cookie(&env.cfg, &req)))
}

async fn list_sessions(req: spindle::http::Request) -> Result<Response, Problem> {
    let env = env()?;
    let me = authenticated(&env, &req).await?;
    let sessions = session::list(&env.link, &SystemClock, &me).await.map_err(fail)?;
    Ok(no_store(me.apply(Response::json(200, &json!({ "sessions": sessions })))))
}

async fn logout_everywhere(req: spindle::http::Request) -> Result<Response, Problem> {
    let env = env()?;
    env.cfg.check_origin(&req).map_err(fail)?;
    let me = authenticated(&env, &req).await?;
    let n = session::destroy_all(&env.link, me.user.id).await.map_err(fail)?;
    Ok(Response::json(200, &json!({ "destroyed": n })).with_header("set-cookie", session::clear_cookie(&env.cfg, &req)))
}

async fn logout_one(req: spindle::http::Request, handle: &str) -> Result<Response, Problem> {
    let env = env()?;
    env.cfg.check_origin(&req).map_err(fail)?;
    let me = authenticated(&env, &req).await?;
    if !session::destroy_handle(&env.link, me.user.id, handle).await.map_err(fail)? {
        return Err(Problem::new(404, "not-found", "Not Found", "you have no live session with that handle"));
    }
    Ok(if handle == me.handle {
        Response::empty(204).with_header("set-cookie", session::clear_cookie(&env.cfg, &req))
    } else {
        me.apply(Response::empty(204))
    })
}
