//! Guest adapters: the only place that touches spin-sdk and WASI.
//!
//! - [`SpinLink`]: the Redis link a component uses, chosen by
//!   `redis_scheme` and `redis_host` ([`RedisConfig`](crate::config::RedisConfig)): RESP over
//!   `wasi:sockets` ([`SocketLink`]) for `redis://<ip>:<port>`, Spin's
//!   outbound Redis ([`OutboundLink`]) for host names and `rediss://`, and
//!   the Upstash REST API over outbound HTTP ([`RestLink`]);
//! - [`SpinVars`]: Spin variables;
//! - [`serve`]: a component's route table over Spin's `wasi:http` request,
//!   the body read up to the route's limit, the answer sent (or streamed);
//! - [`sleep_ms`] and [`WasiSleep`]: timers on WASI's monotonic clock that
//!   let the other futures of the request run.

mod link;
mod outbound;
mod rest;
mod serve;
mod socket;
mod time;

pub use link::SpinLink;
pub use serve::{serve, BodySink, Cx, Responder, Routes, SpinEnv};
pub use outbound::OutboundLink;
pub use rest::RestLink;
pub use socket::SocketLink;
pub use time::{sleep_ms, WasiSleep};

use crate::config::Vars;

/// Spin application variables, as declared for the component in `spin.toml`,
/// each read from the host at most once per instance (one request): Spin
/// resolves a variable anew on every read, and a variable that falls back to
/// its default goes through its environment provider, which is costly
/// (docs/benchmarks.md, "Where a request's time goes").
///
/// A variable the component does not declare is logged (`undeclared
/// variable`) and read as unset: without the line it would silently take its
/// default, whatever the app set. The e2e suites fail on any such line.
#[derive(Debug, Default)]
pub struct SpinVars {
    read: std::cell::RefCell<Vec<(String, Option<String>)>>,
}

impl SpinVars {
    /// The value, read once; `warn` logs a read of an undeclared variable.
    fn read(&self, name: &str, warn: bool) -> Option<String> {
        if let Some((_, v)) = self.read.borrow().iter().find(|(n, _)| n == name) {
            return v.clone();
        }
        let v = match spin_sdk::variables::get(name) {
            Ok(v) => Some(v),
            Err(spin_sdk::variables::Error::Undefined(_)) if warn => {
                eprintln!("undeclared variable {name}: declare it in the component's [component.<id>.variables]");
                None
            }
            Err(_) => None,
        };
        self.read.borrow_mut().push((name.to_owned(), v.clone()));
        v
    }

    /// An optional variable a component may leave undeclared (`host_id`).
    pub(crate) fn optional(&self, name: &str) -> Option<String> {
        self.read(name, false)
    }
}

impl Vars for SpinVars {
    fn get(&self, name: &str) -> Option<String> {
        self.read(name, true)
    }
}
