#![doc = include_str!("../../../docs/architecture.md")]

pub mod app;
pub mod cache;
pub mod caller;
pub mod config;
pub mod date;
pub mod env;
pub mod http;
pub mod keys;
pub mod notify;
pub mod ratelimit;
pub mod redis;
pub mod session;
pub mod users;

/// The registry: every Lua script the library sends, each declared once
/// ([`scripts!`]). The golden tests run each one over every transport and
/// compare the replies.
pub fn all_scripts() -> impl Iterator<Item = &'static redis::Script> {
    [session::scripts::SCRIPTS, ratelimit::SCRIPTS, notify::publish::SCRIPTS, notify::presence::SCRIPTS, notify::readers::SCRIPTS, notify::webhooks::SCRIPTS, cache::SCRIPTS]
        .into_iter()
        .flatten()
}

#[cfg(feature = "spin")]
pub mod spin;

#[cfg(test)]
mod tests {
    #[test]
    fn every_script_is_registered_once_by_name() {
        let mut names: Vec<&str> = super::all_scripts().map(|s| s.name()).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "a name is used twice");
        assert!(n >= 20 && super::all_scripts().all(|s| !s.source().trim().is_empty()));
    }
}
