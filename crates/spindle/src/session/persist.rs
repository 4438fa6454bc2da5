//! Sessions in Redis: one GET to read, a compare-and-set script to write,
//! and the read-change-write loop that lets concurrent writers of one
//! session all land.

use super::{scripts, SessionConfig, SessionError, UPDATE_ATTEMPTS};
use super::store::{ttl_secs, StoredSession};
use crate::env::Clock;
use crate::keys::session::{in_user_slot, index as index_key, session as session_key};
use crate::redis::{self, Arg, Cmd, Link};

/// A session as read: its raw bytes (for the compare-and-set) and parsed form.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub sid: String,
    raw: Vec<u8>,
    pub session: StoredSession,
}

/// Reads `sess:<sid>`: one GET.
pub async fn load(link: &impl Link, sid: &str) -> Result<Option<Loaded>, SessionError> {
    let Some(raw) = link.exec(&Cmd::new("GET").arg(session_key(sid))).await?.opt_bytes()? else {
        return Ok(None);
    };
    let session = StoredSession::parse(&raw).map_err(|c| SessionError::Corrupt(c.0))?;
    Ok(Some(Loaded { sid: sid.to_owned(), raw, session }))
}

/// What [`commit`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Commit {
    Written,
    /// The session no longer exists (logged out or expired): nothing written.
    Gone,
    /// The stored value changed since it was read: nothing written.
    Conflict,
    /// The new expiry has passed: the session was deleted.
    Deleted,
}

/// Writes `new` over the session `read`, only if it is still what was read
/// (one script: compare SHA-1, then SET XX with the TTL from `new`'s expiry).
pub async fn commit(link: &impl Link, read: &Loaded, new: &StoredSession, secure: bool, cfg: &SessionConfig, now_ms: u64) -> Result<Commit, SessionError> {
    let json = new.to_json(cfg, secure);
    let ttl = ttl_secs(new.expires, now_ms);
    let mut keys = vec![Arg::from(session_key(&read.sid))];
    // The index goes in the script when it shares the session's slot (a sid
    // Spindle issued); else it is a step of its own after the write.
    let user = new.user.as_ref().map(|u| u.id);
    let elsewhere = user.filter(|id| !in_user_slot(&read.sid, *id));
    if let Some(id) = user.filter(|_| elsewhere.is_none()) {
        keys.push(index_key(id).into());
    }
    let score = new.meta.created_at.unwrap_or(now_ms);
    let sha = sha1_smol::Sha1::from(&read.raw).digest().to_string();
    let args = [Arg::from(read.sid.as_str()), json.into(), score.into(), sha.into(), ttl.into()];
    let r = link.eval(&scripts::COMMIT, &keys, &args).await?.int()?;
    if let (Some(id), 1 | 2) = (elsewhere, r) {
        let remove = if r == 2 { "1" } else { "0" };
        let args = [Arg::from(read.sid.as_str()), score.into(), ttl.into(), remove.into()];
        link.eval(&scripts::INDEX_ADD, &[index_key(id).into()], &args).await?;
    }
    Ok(match r {
        1 => Commit::Written,
        0 => Commit::Gone,
        -1 => Commit::Conflict,
        2 => Commit::Deleted,
        n => return Err(SessionError::Redis(redis::Error::Protocol(format!("commit answered {n}")))),
    })
}

/// Read, change, compare-and-set, retried while other writers get in
/// between. `Err(NotFound)` when the session is gone (a logout won).
pub async fn update(
    link: &impl Link,
    clock: &impl Clock,
    cfg: &SessionConfig,
    sid: &str,
    secure: bool,
    mut change: impl FnMut(&mut StoredSession),
) -> Result<(), SessionError> {
    for _ in 0..UPDATE_ATTEMPTS {
        let read = load(link, sid).await?.ok_or(SessionError::NotFound)?;
        let mut new = read.session.clone();
        change(&mut new);
        match commit(link, &read, &new, secure, cfg, clock.now_ms()).await? {
            Commit::Written => return Ok(()),
            Commit::Gone | Commit::Deleted => return Err(SessionError::NotFound),
            Commit::Conflict => continue,
        }
    }
    Err(SessionError::Redis(redis::Error::Server("the session kept changing; update abandoned".into())))
}

