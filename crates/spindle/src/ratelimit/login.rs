//! Brute-force protection for logins, with the `login_rate_limit` policy
//! (failing closed by default).
//!
//! A login calls [`LoginAttempt::start`] right after parsing its body and
//! before any user lookup or password hashing, so a refused attempt costs
//! neither. Two budgets are spent: one per client address (resolved through
//! `trusted_proxies`) and one per username (lower-cased; an unusual name is
//! hashed before it becomes a key). Every attempt counts, not only failures,
//! so the answer does not reveal whether a password was right; a successful
//! login gives its attempts back ([`LoginAttempt::succeeded`]). Either
//! budget spent answers 429 `quota-exceeded` with `Retry-After`.
//!
//! Registrations spend the `register` policy (`register_rate_limit`) per
//! client address ([`register_attempt`]), after the body is validated and
//! before the password is hashed, whether the name turns out free or taken.
//!
//! **Username enumeration: a deliberate trade-off.** A taken name still
//! answers 409 `conflict` (a sign-up form must be able to say "pick another
//! name", and the name is public anyway: `GET /users/:id` shows it). What
//! the throttle changes is the rate: one address learns at most
//! `register_rate_limit` answers per window (10 per hour by default), each
//! at the cost of an Argon2id hash on our side, so enumerating a user base
//! takes as many addresses as names. Login keeps its one 401 for an unknown
//! user and a wrong password, so the two routes do not combine into a
//! password oracle. Deployments that must hide which names exist put the
//! account's identity on something they verify out of band (an email
//! link), which this service does not do.

use super::{Identity, Limited, Throttle};
use crate::config::Vars;
use crate::env::Clock;
use crate::http::{Problem, Request};
use crate::redis::Link;

pub struct LoginAttempt {
    throttle: Throttle,
    by_ip: Identity,
    by_name: Identity,
    /// The address budget's decision: its headers go on the answer.
    pub limited: Limited,
}

impl LoginAttempt {
    pub async fn start(link: &impl Link, clock: &impl Clock, vars: &impl Vars, req: &Request, username: &str) -> Result<LoginAttempt, Problem> {
        let throttle = Throttle::login(vars)?;
        let by_ip = throttle.client(req);
        let by_name = Identity::Name(format!("login:{}", username.to_lowercase()));
        let limited = throttle.check(link, clock, &by_ip, 1).await?;
        let by_name_limited = throttle.check(link, clock, &by_name, 1).await;
        if by_name_limited.is_err() {
            // The address's attempt was spent on a request that is refused anyway;
            // give it back so one targeted username cannot exhaust a shared address.
            let _ = throttle.refund(link, clock, &by_ip, 1).await;
        }
        by_name_limited?;
        Ok(LoginAttempt { throttle, by_ip, by_name, limited })
    }

    /// A successful login returns its attempts: only failures accumulate.
    pub async fn succeeded(&self, link: &impl Link, clock: &impl Clock) {
        let _ = self.throttle.refund(link, clock, &self.by_ip, 1).await;
        let _ = self.throttle.refund(link, clock, &self.by_name, 1).await;
    }
}

/// Spends one registration of the client address's `register` budget.
/// `Ok`: the headers for the answer; `Err`: 429 `quota-exceeded` with
/// `Retry-After`, or 503 when Redis fails (failing closed). One round trip.
pub async fn register_attempt(link: &impl Link, clock: &impl Clock, vars: &impl Vars, req: &Request) -> Result<Limited, Problem> {
    let throttle = Throttle::register(vars)?;
    throttle.check(link, clock, &throttle.client(req), 1).await
}

/// The cost of a request priced by its size (`POST /api/echo`): one unit
/// per started KiB, at least one.
pub fn cost_per_kib(bytes: usize) -> i64 {
    bytes.div_ceil(1024).max(1) as i64
}

#[cfg(test)]
mod tests {
    #[test]
    fn costs_per_started_kib() {
        assert_eq!([0, 1, 1024, 1025, 65_536].map(super::cost_per_kib), [1, 1, 1, 2, 64]);
    }
}
