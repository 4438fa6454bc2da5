//! Distributed rate limiting, exact across hosts, keyspace-compatible with
//! [@upstash/ratelimit](https://github.com/upstash/ratelimit-js).
//!
//! Every decision is one Lua script call (EVALSHA, EVAL once on NOSCRIPT)
//! that reads, decides and writes atomically inside Redis, so any number of
//! hosts share one exact count: there is no read-modify-write across calls
//! and no local cache. Scripts return a flat array of integers
//! `{allowed, limit, remaining, reset_ms, retry_after_ms}`, which every
//! transport carries unchanged. The time is an argument (`now_ms`, from the
//! [`Clock`]), never Redis `TIME`, so tests control it and hosts agree on
//! window boundaries as well as their clocks do.
//!
//! Algorithms ([`Algorithm`]):
//! - **fixed window**: a counter per aligned window;
//! - **sliding window**: two fixed-window counters, the previous one weighted
//!   by how much of it the sliding window still covers — @upstash/ratelimit's
//!   formula, to the floating-point expression, so both sides agree on every
//!   count;
//! - **token bucket**: upstash's hash of `refilledAt` and `tokens`, refilled
//!   in steps of `refill` tokens per `interval`.
//!
//! GCRA is left out: with an integer emission interval it admits the same
//! requests as a token bucket of `1/<interval> burst <n>`, and storing its
//! fractional "theoretical arrival time" exactly in Lua (which prints numbers
//! with 14 significant digits) would need a second number format for no
//! behaviour a client could see.
//!
//! Semantics shared by all three, and stricter than upstash's own scripts
//! where they differ: a denial never consumes (upstash's fixed window counts
//! denied requests); a request costing more than what is left is denied, not
//! half-served; a refund (negative cost) gives back at most what the current
//! window used or fills the bucket at most to the top; every key written gets
//! a TTL, and a full bucket is deleted rather than stored. A peek answers for
//! a request of cost 1 and writes nothing. A denial carries `retry_after_ms`:
//! exactly when a request of the same cost would pass if no other request
//! came in meanwhile (for the sliding window, a binary search over the
//! weighting inside the script).

mod identity;
mod login;
mod policy;

pub use identity::{client_identity, ApiKeys, Identity, API_KEY_HEADER};
pub use login::{cost_per_kib, register_attempt, LoginAttempt};
pub use crate::http::client::TrustedProxies;
pub use crate::keys::ratelimit::{KeyMode, RateLimitKeys, DEFAULT_PREFIX};
pub use crate::keys::{escape, MAX_PLAIN_ID};
pub use policy::{parse_duration, Algorithm, FailureMode, Policy, MAX_LIMIT, MAX_WINDOW_MS};

use crate::config::{Config, ConfigError, Vars};
use crate::env::Clock;
use crate::http::{Problem, Request, Response};
use crate::redis::{self, Arg, Cmd, Link, Script};
use std::fmt;

crate::scripts! {
    FIXED_WINDOW = ("ratelimit/fixed_window", include_str!("fixed_window.lua"));
    SLIDING_WINDOW = ("ratelimit/sliding_window", include_str!("sliding_window.lua"));
    TOKEN_BUCKET = ("ratelimit/token_bucket", include_str!("token_bucket.lua"));
}

fn script(alg: &Algorithm) -> &'static Script {
    match alg {
        Algorithm::FixedWindow { .. } => &FIXED_WINDOW,
        Algorithm::SlidingWindow { .. } => &SLIDING_WINDOW,
        Algorithm::TokenBucket { .. } => &TOKEN_BUCKET,
    }
}

/// The largest refund one call may make.
pub const MAX_REFUND: u64 = MAX_LIMIT;

/// The answer to one request for budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The policy's capacity: the limit per window, or the bucket size.
    pub limit: u64,
    /// What is left after this request (before it, for a denial).
    pub remaining: u64,
    /// When the current window ends, or the bucket next refills (epoch ms).
    pub reset_ms: u64,
    /// For a denial, how long until a request of the same cost would pass,
    /// if nothing else happened meanwhile (ms, ≥ 1); 0 when allowed.
    pub retry_after_ms: u64,
    /// The time the decision was made for (epoch ms).
    pub now_ms: u64,
}

impl Decision {
    /// The `t` of the `RateLimit` header, in whole seconds rounded up: until
    /// the reset, or for a denial until the request would pass (so it
    /// equals `Retry-After`).
    pub fn reset_seconds(&self) -> u64 {
        if self.allowed {
            self.reset_ms.saturating_sub(self.now_ms).div_ceil(1000)
        } else {
            self.retry_after_ms.div_ceil(1000).max(1)
        }
    }
}

/// What can go wrong deciding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Redis could not be reached or answered an error; the failure mode applies.
    Redis(redis::Error),
    /// A cost of 0, or a refund larger than [`MAX_REFUND`].
    InvalidCost(i64),
    /// One request costs more than the policy ever allows at once.
    CostExceedsLimit { cost: u64, limit: u64 },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Redis(e) => e.fmt(f),
            Error::InvalidCost(c) => write!(f, "invalid cost {c}: use 1 or more, or a negative refund"),
            Error::CostExceedsLimit { cost, limit } => {
                write!(f, "the request costs {cost} units, more than the limit of {limit}")
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<redis::Error> for Error {
    fn from(e: redis::Error) -> Self {
        Error::Redis(e)
    }
}

/// Decides against Redis through a [`Link`], at the time a [`Clock`] says.
pub struct RateLimiter<'a, L, C> {
    link: &'a L,
    clock: &'a C,
    keyspace: &'a RateLimitKeys,
}

impl<'a, L: Link, C: Clock> RateLimiter<'a, L, C> {
    pub fn new(link: &'a L, clock: &'a C, keyspace: &'a RateLimitKeys) -> Self {
        RateLimiter { link, clock, keyspace }
    }

    /// The keys one decision at `now_ms` touches, in the order the script takes them.
    pub fn keys(&self, policy: &Policy, who: &Identity, now_ms: u64) -> Vec<String> {
        let base = self.keyspace.base(&policy.name, &who.identifier());
        match policy.algorithm {
            Algorithm::FixedWindow { window_ms, .. } => vec![format!("{base}:{}", now_ms / window_ms)],
            Algorithm::SlidingWindow { window_ms, .. } => {
                let current = (now_ms / window_ms) as i64;
                vec![format!("{base}:{current}"), format!("{base}:{}", current - 1)]
            }
            Algorithm::TokenBucket { .. } => vec![base],
        }
    }

    /// Takes `cost` units (≥ 1), or gives `-cost` back when negative. One round trip.
    pub async fn limit(&self, policy: &Policy, who: &Identity, cost: i64) -> Result<Decision, Error> {
        let capacity = policy.algorithm.capacity();
        if cost == 0 || cost.unsigned_abs() > MAX_REFUND.max(capacity) {
            return Err(Error::InvalidCost(cost));
        }
        if cost > 0 && cost as u64 > capacity {
            return Err(Error::CostExceedsLimit { cost: cost as u64, limit: capacity });
        }
        self.run(policy, who, cost).await
    }

    /// What is left, without taking any: `allowed` says whether a request of
    /// cost 1 would pass, and `retry_after_ms` when it would if not. One round trip.
    pub async fn peek(&self, policy: &Policy, who: &Identity) -> Result<Decision, Error> {
        self.run(policy, who, 0).await
    }

    /// Forgets the identity's counters for this policy: one DEL of the exact
    /// keys the next decision would read (no SCAN). One round trip.
    pub async fn reset(&self, policy: &Policy, who: &Identity) -> Result<(), Error> {
        let keys = self.keys(policy, who, self.clock.now_ms());
        self.link.exec(&Cmd::new("DEL").args_from(keys)).await?;
        Ok(())
    }

    async fn run(&self, policy: &Policy, who: &Identity, cost: i64) -> Result<Decision, Error> {
        let now = self.clock.now_ms();
        let keys: Vec<Arg> = self.keys(policy, who, now).into_iter().map(Arg::from).collect();
        // ARGV: capacity, period (ms), now (ms), cost, then what the algorithm adds.
        let args: Vec<Arg> = match policy.algorithm {
            Algorithm::FixedWindow { limit, window_ms } | Algorithm::SlidingWindow { limit, window_ms } => {
                vec![limit.into(), window_ms.into(), now.into(), cost.into()]
            }
            Algorithm::TokenBucket { refill, interval_ms, max } => {
                vec![max.into(), interval_ms.into(), now.into(), cost.into(), refill.into()]
            }
        };
        let reply = self.link.eval(script(&policy.algorithm), &keys, &args).await?;
        let (allowed, limit, remaining, reset_ms, retry_after_ms) = reply.parse("the rate-limit script")?;
        Ok(Decision { allowed, limit, remaining, reset_ms, retry_after_ms, now_ms: now })
    }
}

/// The header that says a fail-open answer was not rate limited.
pub const STATUS_HEADER: &str = "ratelimit-status";
/// Its value.
pub const NOT_ENFORCED: &str = "not-enforced";

/// `RateLimit-Policy: "<name>";q=<capacity>;w=<window s>` (draft-ietf-httpapi-ratelimit-headers-11).
pub fn policy_header(policy: &Policy) -> String {
    let w = policy.algorithm.quota_window_ms().div_ceil(1000).max(1);
    format!("\"{}\";q={};w={w}", policy.name, policy.algorithm.capacity())
}

/// The rate-limit headers of a decision: the IETF draft-11 pair, and the
/// legacy `X-RateLimit-*` trio (`Reset` in epoch seconds, rounded up, as
/// GitHub sends it: the same instant as `t`).
pub fn headers(policy: &Policy, d: &Decision) -> Vec<(String, String)> {
    let t = d.reset_seconds();
    let reset_at_ms = if d.allowed { d.reset_ms } else { d.now_ms + d.retry_after_ms };
    vec![
        ("ratelimit-policy".into(), policy_header(policy)),
        ("ratelimit".into(), format!("\"{}\";r={};t={t}", policy.name, d.remaining)),
        ("x-ratelimit-limit".into(), d.limit.to_string()),
        ("x-ratelimit-remaining".into(), d.remaining.to_string()),
        ("x-ratelimit-reset".into(), reset_at_ms.div_ceil(1000).to_string()),
    ]
}

/// The 429 for a denial: an RFC 9457 `quota-exceeded` problem with the
/// rate-limit headers and a `Retry-After` equal to `t`.
pub fn denied(policy: &Policy, d: &Decision) -> Problem {
    let t = d.reset_seconds();
    let mut p = Problem::new(
        429,
        "quota-exceeded",
        "Too Many Requests",
        format!("rate limit \"{}\" exceeded; retry in {t} s", policy.name),
    );
    p.headers = headers(policy, d);
    p.with_header("retry-after", t.to_string())
}

/// A request that may go ahead, with the headers its response must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limited {
    /// `None` when Redis failed and the policy fails open.
    pub decision: Option<Decision>,
    pub headers: Vec<(String, String)>,
}

impl Limited {
    pub fn enforced(&self) -> bool {
        self.decision.is_some()
    }

    /// Adds the rate-limit headers to a response.
    pub fn apply(&self, mut r: Response) -> Response {
        r.headers.extend(self.headers.iter().cloned());
        r
    }
}

/// Where a policy comes from: its name, its Spin variable and default, and
/// what it does when Redis fails.
#[derive(Clone, Copy, Debug)]
pub struct PolicyVars {
    pub name: &'static str,
    pub var: &'static str,
    pub default: &'static str,
    pub failure: Failure,
}

/// A policy's failure mode: set by a variable, or fixed by what it guards.
#[derive(Clone, Copy, Debug)]
pub enum Failure {
    Var { var: &'static str, default: FailureMode },
    Fixed(FailureMode),
}

/// `/api/*`: sliding window, 100 requests per 60 s, failing open.
pub const API_POLICY: PolicyVars = PolicyVars {
    name: "api",
    var: "api_rate_limit",
    default: "sliding_window 100/60s",
    failure: Failure::Var { var: "api_rate_limit_failure", default: FailureMode::Open },
};

/// Login attempts (the auth component): 10 per 5 minutes per client, failing
/// closed, so an outage never turns into unthrottled password guessing.
pub const LOGIN_POLICY: PolicyVars = PolicyVars {
    name: "login",
    var: "login_rate_limit",
    default: "sliding_window 10/5m",
    failure: Failure::Var { var: "login_rate_limit_failure", default: FailureMode::Closed },
};

/// Publishes (notify), per caller. A publish cannot happen without Redis,
/// so it always fails closed.
pub const NOTIFY_POLICY: PolicyVars =
    PolicyVars { name: "notify", var: "notify_rate_limit", default: "sliding_window 120/60s", failure: Failure::Fixed(FailureMode::Closed) };

/// Opening a long poll or an SSE stream (notify), per caller. Reading needs
/// Redis anyway, so it fails closed.
pub const NOTIFY_STREAM_POLICY: PolicyVars = PolicyVars {
    name: "notify_stream",
    var: "notify_stream_rate_limit",
    default: "token_bucket 2/1s burst 60",
    failure: Failure::Fixed(FailureMode::Closed),
};

/// Registrations (the auth component), per client address: each costs an
/// Argon2id hash and hands out a fresh identity. Failing closed, so an
/// outage never turns into unthrottled account creation.
pub const REGISTER_POLICY: PolicyVars = PolicyVars {
    name: "register",
    var: "register_rate_limit",
    default: "sliding_window 10/1h",
    failure: Failure::Fixed(FailureMode::Closed),
};

/// `POST /notify/webhooks/redrive`, per caller: each makes every host's
/// worker run a full pass. Fails closed.
pub const REDRIVE_POLICY: PolicyVars = PolicyVars {
    name: "redrive",
    var: "notify_redrive_rate_limit",
    default: "fixed_window 6/60s",
    failure: Failure::Fixed(FailureMode::Closed),
};

/// Variables every policy shares.
pub const PREFIX_VAR: &str = "rate_limit_prefix";
pub const KEYS_VAR: &str = "rate_limit_keys";

/// A policy with its keyspace and proxy trust, read from Spin variables:
/// what a component needs to limit a request. Build one per request (it is
/// cheap); a bad variable is a 500 `misconfigured` problem that names it.
///
/// ```no_run
/// # use spindle::{http::{Problem, Request, Response}, redis::Link};
/// # async fn login(link: &impl Link, req: &Request) -> Result<Response, Problem> {
/// use spindle::ratelimit::Throttle;
/// let vars = std::collections::HashMap::<String, String>::new(); // SpinVars in a component
/// let clock = spindle::env::SystemClock;
/// let throttle = Throttle::login(&vars)?;          // login_rate_limit, login_rate_limit_failure
/// let who = throttle.client(req);                  // the client IP (trusted X-Forwarded-For aware)
/// let limited = throttle.check(link, &clock, &who, 1).await?; // Err: 429, or 503 when failing closed
/// // … verify the password; on success, optionally give the attempt back:
/// let _ = throttle.refund(link, &clock, &who, 1).await;
/// Ok(limited.apply(Response::empty(204)))
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Throttle {
    pub policy: Policy,
    pub keyspace: RateLimitKeys,
    pub trusted_proxies: TrustedProxies,
}

impl Throttle {
    pub fn from_vars(vars: &impl Vars, p: &PolicyVars) -> Result<Throttle, ConfigError> {
        let c = Config::new(vars);
        let algorithm = c.parse(p.var, Algorithm::parse(p.default).map_err(|e| ConfigError::new(p.var, e))?, Algorithm::parse)?;
        let failure = match p.failure {
            Failure::Fixed(mode) => mode,
            Failure::Var { var, default } => c.parse(var, default, FailureMode::parse)?,
        };
        let policy = Policy::new(p.name, algorithm, failure).map_err(|e| ConfigError::new(p.var, e))?;
        let mode = c.parse(KEYS_VAR, KeyMode::Upstash, KeyMode::parse)?;
        let prefix = c.text(PREFIX_VAR).unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
        let keyspace = RateLimitKeys::new(&prefix, mode).map_err(|e| ConfigError::new(PREFIX_VAR, e))?;
        Ok(Throttle { policy, keyspace, trusted_proxies: TrustedProxies::from_vars(vars)? })
    }

    /// The `/api/*` policy ([`API_POLICY`]).
    pub fn api(vars: &impl Vars) -> Result<Throttle, ConfigError> {
        Throttle::from_vars(vars, &API_POLICY)
    }

    /// The login policy ([`LOGIN_POLICY`]), for the auth component.
    pub fn login(vars: &impl Vars) -> Result<Throttle, ConfigError> {
        Throttle::from_vars(vars, &LOGIN_POLICY)
    }

    /// The publish policy ([`NOTIFY_POLICY`]).
    pub fn notify(vars: &impl Vars) -> Result<Throttle, ConfigError> {
        Throttle::from_vars(vars, &NOTIFY_POLICY)
    }

    /// The stream-opening policy ([`NOTIFY_STREAM_POLICY`]).
    pub fn notify_stream(vars: &impl Vars) -> Result<Throttle, ConfigError> {
        Throttle::from_vars(vars, &NOTIFY_STREAM_POLICY)
    }

    /// The registration policy ([`REGISTER_POLICY`]).
    pub fn register(vars: &impl Vars) -> Result<Throttle, ConfigError> {
        Throttle::from_vars(vars, &REGISTER_POLICY)
    }

    /// The redrive policy ([`REDRIVE_POLICY`]).
    pub fn redrive(vars: &impl Vars) -> Result<Throttle, ConfigError> {
        Throttle::from_vars(vars, &REDRIVE_POLICY)
    }

    /// The client-address identity of a request ([`client_identity`]).
    pub fn client(&self, req: &Request) -> Identity {
        client_identity(req, &self.trusted_proxies)
    }

    /// Takes `cost` units for `who`. `Ok` carries the headers to add to the
    /// response; `Err` is the response to send instead: 429 `quota-exceeded`,
    /// 503 `redis-unavailable` (failing closed), 413 for a cost above the
    /// limit, 500 `misconfigured`. Failing open answers `Ok` with
    /// `RateLimit-Status: not-enforced`. One round trip.
    pub async fn check<L: Link, C: Clock>(
        &self,
        link: &L,
        clock: &C,
        who: &Identity,
        cost: i64,
    ) -> Result<Limited, Problem> {
        match RateLimiter::new(link, clock, &self.keyspace).limit(&self.policy, who, cost).await {
            Ok(d) if d.allowed => Ok(Limited { headers: headers(&self.policy, &d), decision: Some(d) }),
            Ok(d) => Err(denied(&self.policy, &d)),
            Err(Error::Redis(e)) => self.redis_failed(e),
            Err(e) => Err(self.problem(e)),
        }
    }

    /// The budget left for `who`, without taking any. A peek has nothing to
    /// report when Redis fails, so that is a 503 whatever the failure mode.
    pub async fn peek<L: Link, C: Clock>(&self, link: &L, clock: &C, who: &Identity) -> Result<Limited, Problem> {
        match RateLimiter::new(link, clock, &self.keyspace).peek(&self.policy, who).await {
            Ok(d) => Ok(Limited { headers: headers(&self.policy, &d), decision: Some(d) }),
            Err(Error::Redis(redis::Error::Config(m))) => Err(Problem::misconfigured(&m)),
            Err(e) => {
                eprintln!("ratelimit {}: {e}", self.policy.name);
                Err(Problem::redis_unavailable())
            }
        }
    }

    /// Gives `units` back to `who` (e.g. after a successful login). One round trip.
    pub async fn refund<L: Link, C: Clock>(
        &self,
        link: &L,
        clock: &C,
        who: &Identity,
        units: u64,
    ) -> Result<Decision, Error> {
        let units = i64::try_from(units).map_err(|_| Error::InvalidCost(i64::MIN))?;
        RateLimiter::new(link, clock, &self.keyspace).limit(&self.policy, who, -units).await
    }

    /// Forgets `who`'s counters for this policy. One round trip.
    pub async fn reset<L: Link, C: Clock>(&self, link: &L, clock: &C, who: &Identity) -> Result<(), Error> {
        RateLimiter::new(link, clock, &self.keyspace).reset(&self.policy, who).await
    }

    fn redis_failed(&self, e: redis::Error) -> Result<Limited, Problem> {
        if let redis::Error::Config(m) = e {
            return Err(Problem::misconfigured(&m));
        }
        let policy = policy_header(&self.policy);
        match self.policy.failure {
            FailureMode::Open => {
                eprintln!("ratelimit {}: not enforced ({e})", self.policy.name);
                Ok(Limited {
                    decision: None,
                    headers: vec![("ratelimit-policy".into(), policy), (STATUS_HEADER.into(), NOT_ENFORCED.into())],
                })
            }
            FailureMode::Closed => {
                eprintln!("ratelimit {}: refusing ({e})", self.policy.name);
                Err(Problem::redis_unavailable().with_header("ratelimit-policy", policy))
            }
        }
    }

    fn problem(&self, e: Error) -> Problem {
        match e {
            Error::CostExceedsLimit { cost, limit } => Problem::new(
                413,
                "payload-too-large",
                "Payload Too Large",
                format!("this request costs {cost} units; the \"{}\" policy allows at most {limit}", self.policy.name),
            ),
            Error::InvalidCost(_) => Problem::bad_request(e.to_string()),
            Error::Redis(r) => self.redis_failed(r).err().unwrap_or_else(Problem::redis_unavailable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_vars as vars;
    use std::collections::HashMap;


    #[test]
    fn defaults_and_bad_variables() {
        let t = Throttle::api(&vars(&[])).unwrap();
        assert_eq!(t.policy.algorithm, Algorithm::SlidingWindow { limit: 100, window_ms: 60_000 });
        assert_eq!(t.policy.failure, FailureMode::Open);
        assert_eq!(t.keyspace, RateLimitKeys::default());
        let l = Throttle::login(&vars(&[("login_rate_limit", "")])).unwrap();
        assert_eq!((l.policy.name.as_str(), l.policy.failure), ("login", FailureMode::Closed));

        for (name, value) in [
            ("api_rate_limit", "sliding_window 100"),
            ("api_rate_limit_failure", "open"),
            ("rate_limit_keys", "sharded"),
            ("rate_limit_prefix", "has space"),
            ("trusted_proxies", "10.0.0.0/99"),
        ] {
            let e = Throttle::api(&vars(&[(name, value)])).unwrap_err();
            assert_eq!(e.var, name);
            let p = Problem::from(e);
            assert_eq!((p.status, p.kind), (500, "misconfigured"));
        }
    }

    fn decision(allowed: bool, remaining: u64, reset_in: u64, retry: u64) -> Decision {
        let now = 1_700_000_000_250;
        Decision { allowed, limit: 100, remaining, reset_ms: now + reset_in, retry_after_ms: retry, now_ms: now }
    }

    #[test]
    fn header_formats() {
        let policy =
            Policy::new("api", Algorithm::parse("sliding_window 100/60s").unwrap(), FailureMode::Open).unwrap();
        let h: HashMap<String, String> = headers(&policy, &decision(true, 42, 12_001, 0)).into_iter().collect();
        assert_eq!(h["ratelimit-policy"], "\"api\";q=100;w=60");
        assert_eq!(h["ratelimit"], "\"api\";r=42;t=13");
        assert_eq!(h["x-ratelimit-limit"], "100");
        assert_eq!(h["x-ratelimit-remaining"], "42");
        assert_eq!(h["x-ratelimit-reset"], "1700000013"); // ceil(1_700_000_012_251 / 1000)

        let p = denied(&policy, &decision(false, 0, 30_000, 1_500));
        assert_eq!((p.status, p.kind), (429, "quota-exceeded"));
        let r = p.to_response();
        assert_eq!(r.header("retry-after"), Some("2"));
        assert_eq!(r.header("ratelimit"), Some("\"api\";r=0;t=2"));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["type"], "urn:spindle:problem:quota-exceeded");

        let sub_second =
            Policy::new("x", Algorithm::parse("token_bucket 1/100ms burst 3").unwrap(), FailureMode::Open).unwrap();
        assert_eq!(policy_header(&sub_second), "\"x\";q=3;w=1");
    }
}
