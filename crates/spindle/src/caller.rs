//! Who is asking. One order everywhere ([`crate::app::Ctx::caller`]): a
//! valid session cookie, then an accepted `X-API-Key`, then the client's
//! address. What each caller may do is the business of the module that
//! decides it (rate limits count against [`Caller::identity`]; notify's
//! topic rules live in `notify::access`).

use crate::http::Response;
use crate::ratelimit::Identity;
use crate::session::SessionUser;

/// The variable with the accepted API keys' SHA-256 digests.
pub const API_KEYS_VAR: &str = "api_keys";

#[derive(Clone, Debug)]
pub enum Caller {
    /// A logged-in user; the session may carry a `Set-Cookie` to send back.
    User(SessionUser),
    /// A holder of an accepted API key (`key:<first 128 bits of its SHA-256>`).
    Service(Identity),
    /// Anyone else, by client address (`ip:…`).
    Client(Identity),
}

impl Caller {
    /// What limits, idempotency keys and webhooks are counted against.
    pub fn identity(&self) -> Identity {
        match self {
            Caller::User(s) => Identity::User(s.user.id.to_string()),
            Caller::Service(id) | Caller::Client(id) => id.clone(),
        }
    }

    /// [`Self::identity`] as it appears in keys (`user:42`, `key:…`, `ip:…`).
    pub fn owner(&self) -> String {
        self.identity().identifier()
    }

    pub fn user(&self) -> Option<&SessionUser> {
        match self {
            Caller::User(s) => Some(s),
            _ => None,
        }
    }

    /// Adds the session's `Set-Cookie` (a rolling refresh), if any.
    pub fn apply(&self, resp: Response) -> Response {
        match self {
            Caller::User(s) => s.apply(resp),
            _ => resp,
        }
    }
}
