//! The handler layer: what a route handler is given, and the extractors it
//! calls, each rejecting with the problem the API documents.
//!
//! A component is a route table ([`crate::routes!`], over
//! [`crate::http::router`]) and short handlers `async fn(Ctx) ->
//! Result<Response, Problem>`. The host adapter (`spin::serve`) matches the
//! route, reads the body up to the route's limit, and calls the handler with a
//! [`Ctx`]: the request, its path parameters, and an [`Env`] (variables,
//! clock, randomness, and how to reach Redis). Everything else is lazy and
//! read once per request: the Redis link connects on first use, and each
//! configuration is read the first time a handler asks for it, so a route
//! pays only for what it uses (Spin instantiates a component per request).
//!
//! Extractors, axum-style, as methods:
//! - [`Ctx::json`]: the body as `T` (415, 400 on bad JSON or too deep);
//! - [`Ctx::same_origin`]: the CSRF guard (403);
//! - [`Ctx::session`] (401 without a valid one) and [`Ctx::optional_session`];
//! - [`Ctx::caller`] (session, then API key, then client address) and
//!   [`Ctx::authenticated_caller`] (401 for an anonymous client).

use crate::caller::{Caller, API_KEYS_VAR};
use crate::config::{Config, RedisConfig, Vars};
use crate::env::{Clock, Rng};
use crate::http::client::{SameOrigin, TrustedProxies};
use crate::http::router::Params;
use crate::http::{Problem, Request, Response};
use crate::ratelimit::{client_identity, ApiKeys};
use crate::redis::Link;
use crate::session::{self, SessionConfig, SessionError, SessionUser};
use serde::de::DeserializeOwned;
use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;

/// What a host gives every request: variables, the clock, randomness, and
/// the Redis link for a configuration.
pub trait Env {
    type Vars: Vars;
    type Link: Link;
    type Clock: Clock;
    type Rng: Rng;
    /// How a streaming handler answers (the host's response channel).
    type Responder;
    fn vars(&self) -> &Self::Vars;
    fn clock(&self) -> &Self::Clock;
    fn rng(&self) -> &Self::Rng;
    fn connect(&self, cfg: &RedisConfig) -> Self::Link;
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// A route's handler: most answer with one response; a streaming one (SSE)
/// is given the host's responder to write as it goes.
pub enum Handler<E: Env> {
    Full(fn(Ctx<E>) -> BoxFuture<Result<Response, Problem>>),
    Stream(fn(Ctx<E>, E::Responder) -> BoxFuture<()>),
}

/// One request, as a handler sees it.
pub struct Ctx<E: Env> {
    pub req: Request,
    pub params: Params,
    pub env: E,
    body_limit: usize,
    link: OnceCell<E::Link>,
    session_cfg: OnceCell<SessionConfig>,
}

impl<E: Env> Ctx<E> {
    pub fn new(req: Request, params: Params, body_limit: usize, env: E) -> Self {
        Ctx { req, params, env, body_limit, link: OnceCell::new(), session_cfg: OnceCell::new() }
    }

    pub fn vars(&self) -> &E::Vars {
        self.env.vars()
    }

    pub fn clock(&self) -> &E::Clock {
        self.env.clock()
    }

    pub fn rng(&self) -> &E::Rng {
        self.env.rng()
    }

    /// A `:name` segment of the route's path (present by construction).
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).unwrap_or_default()
    }

    /// The typed configuration reader.
    pub fn config(&self) -> Config<'_, E::Vars> {
        Config::new(self.env.vars())
    }

    /// The Redis link, configured on first use (it connects on first command).
    pub fn link(&self) -> Result<&E::Link, Problem> {
        if let Some(l) = self.link.get() {
            return Ok(l);
        }
        let cfg = RedisConfig::from_vars(self.env.vars())?;
        Ok(self.link.get_or_init(|| self.env.connect(&cfg)))
    }

    /// The body as JSON: 415 when it is not JSON, 400 when malformed, too
    /// deep or of the wrong shape (its size was bounded by the route).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        self.req.json(self.body_limit)
    }

    /// The CSRF guard for a state-changing request (403).
    pub fn same_origin(&self) -> Result<(), Problem> {
        if !SameOrigin::applies(&self.req) {
            return Ok(());
        }
        SameOrigin::from_vars(self.env.vars())?.check(&self.req)
    }

    pub fn session_config(&self) -> Result<&SessionConfig, Problem> {
        if let Some(c) = self.session_cfg.get() {
            return Ok(c);
        }
        let cfg = SessionConfig::from_vars(self.env.vars()).map_err(session_failed)?;
        Ok(self.session_cfg.get_or_init(|| cfg))
    }

    /// Whether the request carries the session cookie, reading only what
    /// that takes (the cookie's name, and the secrets checked): a request
    /// without one reads no other session or Redis variable.
    fn has_session_cookie(&self) -> Result<bool, Problem> {
        let name = SessionConfig::cookie_name_from_vars(self.env.vars()).map_err(session_failed)?;
        Ok(session::sends_cookie(&name, &self.req))
    }

    /// The request's session: 401 without a valid one, 503 when Redis
    /// cannot say (sessions fail closed).
    pub async fn session(&self) -> Result<SessionUser, Problem> {
        if !self.has_session_cookie()? {
            return Err(session_failed(SessionError::Missing));
        }
        let cfg = self.session_config()?;
        session::authenticate(self.link()?, self.env.clock(), cfg, &self.req).await.map_err(session_failed)
    }

    /// The session when the request has a valid one, checked only when it
    /// carries a session cookie at all. Routes that serve anyone take every
    /// failure (no secrets configured, a bad cookie, Redis down) as "no
    /// session"; they apply their own failure policy next.
    pub async fn optional_session(&self) -> Option<SessionUser> {
        self.session_lookup().await.ok().flatten()
    }

    /// `Ok(None)`: no cookie, or one that is not a valid session.
    async fn session_lookup(&self) -> Result<Option<SessionUser>, Problem> {
        if !matches!(self.has_session_cookie(), Ok(true)) {
            return Ok(None);
        }
        let Ok(cfg) = self.session_config() else { return Ok(None) };
        match session::authenticate(self.link()?, self.env.clock(), cfg, &self.req).await {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.is_unauthorized() => Ok(None),
            Err(e) => Err(session_failed(e)),
        }
    }

    /// The API key's identity, when the request sends an accepted one; 401
    /// for a key that is not accepted.
    fn api_key(&self) -> Result<Option<crate::ratelimit::Identity>, Problem> {
        let keys = self.config().parse(API_KEYS_VAR, ApiKeys::default(), ApiKeys::parse)?;
        keys.identify(&self.req)
    }

    /// Who is asking: the session user, else an API key's holder, else the
    /// client by address. A session that cannot be checked counts as none.
    pub async fn caller(&self) -> Result<Caller, Problem> {
        if let Some(s) = self.optional_session().await {
            return Ok(Caller::User(s));
        }
        if let Some(key) = self.api_key()? {
            return Ok(Caller::Service(key));
        }
        let proxies = TrustedProxies::from_vars(self.env.vars())?;
        Ok(Caller::Client(client_identity(&self.req, &proxies)))
    }

    /// [`Self::caller`] for routes that need a user or a service: 401 for an
    /// anonymous client, 503 when Redis cannot check the session. A request
    /// that `changes_state` on the strength of its cookie (no API key) passes
    /// the CSRF guard first.
    pub async fn authenticated_caller(&self, changes_state: bool) -> Result<Caller, Problem> {
        let key = self.api_key()?;
        if changes_state && key.is_none() {
            self.same_origin()?;
        }
        if let Some(s) = self.session_lookup().await? {
            return Ok(Caller::User(s));
        }
        match key {
            Some(key) => Ok(Caller::Service(key)),
            None => Err(Problem::unauthorized("log in, or send an X-API-Key")),
        }
    }
}

/// A session error as its problem, logging the ones an operator must see.
/// Never logs cookies, sids or secrets.
pub fn session_failed(e: SessionError) -> Problem {
    if matches!(e, SessionError::Redis(_) | SessionError::Corrupt(_) | SessionError::Misconfigured(_)) {
        eprintln!("session: {e}");
    }
    e.to_problem()
}

/// A route table: `METHOD[|METHOD…] "path" [(body limit)] => handler`, one per line;
/// `stream` before a handler marks a streaming one. The limit is a
/// [`crate::http::router::BodyLimit`]; without one a route takes no body
/// ([`crate::http::NO_BODY_LIMIT`]).
///
/// ```ignore
/// const ROUTES: Routes = spindle::routes![
///     POST "/auth/login" (BodyLimit::Bytes(4096)) => login,
///     GET|HEAD "/auth/me" => me,
///     GET "/notify/stream" => stream sse,
/// ];
/// ```
#[macro_export]
macro_rules! routes {
    (@limit) => { $crate::http::router::BodyLimit::Bytes($crate::http::NO_BODY_LIMIT) };
    (@limit $l:expr) => { $l };
    (@handler stream $h:path) => { $crate::app::Handler::Stream(|cx, out| ::std::boxed::Box::pin($h(cx, out))) };
    (@handler $h:path) => { $crate::app::Handler::Full(|cx| ::std::boxed::Box::pin($h(cx))) };
    ($($($method:ident)|+ $path:literal $(($limit:expr))? => $($h:ident)+),* $(,)?) => {
        &[$($crate::http::router::Route {
            methods: &[$(stringify!($method)),+],
            path: $path,
            body_limit: $crate::routes!(@limit $($limit)?),
            handler: $crate::routes!(@handler $($h)+),
        }),*]
    };
}
