//! Topics, and what a caller may read and publish.
//!
//! Notify's callers are logged-in users and services holding one of the
//! `api_keys` ([`crate::app::Ctx::authenticated_caller`]). Topics named
//! `user:<id>` are private: only that user reads them, and only that user or
//! a service (the app's own backend, holding an operator-issued key)
//! publishes to them. Every other topic is readable and publishable by any
//! caller.

use super::Error;
pub use crate::caller::Caller;
use std::fmt;

/// The longest topic name, in bytes.
pub const MAX_TOPIC_LEN: usize = 128;
const USER_PREFIX: &str = "user:";

/// A validated topic name: 1..=128 of `A-Z a-z 0-9 _ . : - /`. Topics that
/// start with `user:` (in any case) must be exactly `user:<id>` with a
/// canonical decimal id, so `user:007` or `User:7` can never pose as
/// `user:7`'s public twin. The charset keeps braces, spaces and glob
/// characters out, so a topic is safe inside a key and a hash tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Topic(String);

impl Topic {
    pub fn parse(s: &str) -> Result<Topic, Error> {
        let ok_char = |b: u8| b.is_ascii_alphanumeric() || b"_.:-/".contains(&b);
        if s.is_empty() || s.len() > MAX_TOPIC_LEN || !s.bytes().all(ok_char) {
            return Err(Error::Invalid(format!(
                "a topic is 1-{MAX_TOPIC_LEN} characters of A-Z a-z 0-9 _ . : - /"
            )));
        }
        let lower = s.to_ascii_lowercase();
        if lower.starts_with(USER_PREFIX) && user_id(s).is_none() {
            return Err(Error::Invalid("a user topic is user:<id>, the id in decimal without leading zeros".into()));
        }
        Ok(Topic(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The user a `user:<id>` topic belongs to.
    pub fn owner(&self) -> Option<i64> {
        user_id(&self.0)
    }
}

fn user_id(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(USER_PREFIX)?;
    let canonical = digits == "0" || (!digits.starts_with('0') && !digits.is_empty());
    (canonical && digits.len() <= 19 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok()).flatten()
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Caller {
    /// 403 unless the caller may read `topic` (poll, stream, presence, webhooks).
    pub fn check_read(&self, topic: &Topic) -> Result<(), Error> {
        match (topic.owner(), self) {
            (None, _) => Ok(()),
            (Some(owner), Caller::User(s)) if s.user.id == owner => Ok(()),
            _ => Err(Error::Forbidden(format!("{topic} is private to its user"))),
        }
    }

    /// 403 unless the caller may publish to `topic`: a user topic takes its
    /// own user, or a service.
    pub fn check_publish(&self, topic: &Topic) -> Result<(), Error> {
        match (topic.owner(), self) {
            (None, _) | (Some(_), Caller::Service(_)) => Ok(()),
            (Some(owner), Caller::User(s)) if s.user.id == owner => Ok(()),
            (Some(owner), _) => Err(Error::Forbidden(format!("only user {owner} and services may publish to {topic}"))),
        }
    }

    /// 403 unless the caller may emit to Socket.IO room `room`: as a topic
    /// ([`Self::check_publish`]), and listed in the allow-list for its kind
    /// (`notify_socketio_rooms` for users, `notify_socketio_rooms_keys` for
    /// API keys).
    pub fn check_room(&self, room: &Topic, cfg: &super::NotifyConfig) -> Result<(), Error> {
        self.check_publish(room)?;
        let allowed = match self {
            Caller::User(_) => &cfg.socketio_rooms_users,
            Caller::Service(_) => &cfg.socketio_rooms_keys,
            Caller::Client(_) => return Err(Error::Forbidden("Socket.IO rooms are for users and API keys".into())),
        };
        if allowed.allows(room.as_str()) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!("you may not emit to the Socket.IO room {room}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_validated() {
        for ok in ["a", "chat:lobby", "orders/eu-1.v2", "user:42", "user:0", &"x".repeat(128)] {
            assert!(Topic::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a{b}", "a*", "é", "user:", "user:007", "User:7", "USER:x", "user:-1", &"x".repeat(129), "a\nb"] {
            assert!(Topic::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Topic::parse("user:42").unwrap().owner(), Some(42));
        assert_eq!(Topic::parse("users:42").unwrap().owner(), None);
        assert!(Topic::parse("user:99999999999999999999").is_err());
    }

    #[test]
    fn user_topics_are_private() {
        use crate::ratelimit::Identity;
        let svc = Caller::Service(Identity::api_key("k"));
        let public = Topic::parse("news").unwrap();
        let mine = Topic::parse("user:7").unwrap();
        assert!(svc.check_read(&public).is_ok());
        assert!(svc.check_publish(&public).is_ok());
        assert!(svc.check_publish(&mine).is_ok(), "a service may notify a user");
        assert!(matches!(svc.check_read(&mine), Err(Error::Forbidden(_))), "but not read their topic");
        assert_eq!(svc.owner(), Identity::api_key("k").identifier());
    }
}
