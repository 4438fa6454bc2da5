//! Who is on a topic: heartbeats in a sorted set scored by time.
//!
//! `POST /notify/presence` records the caller as present now; `GET` lists
//! the users whose last heartbeat is within `notify_presence_ttl`, trimming
//! the expired ones first. Clients send a heartbeat somewhat more often
//! than the TTL (e.g. every TTL/2). One script call each; time comes from
//! the host clock (NTP-synchronised hosts), never Redis `TIME`.

use super::{keys, Error, NotifyConfig, Topic};
use crate::env::Clock;
use crate::redis::{Arg, Link, Records};
use crate::session::UserRef;

crate::scripts! {
    BEAT = ("notify/presence_beat", include_str!("presence_beat.lua"));
    LIST = ("notify/presence_list", include_str!("presence_list.lua"));
}
/// Most members a topic's presence set keeps (the most recent).
pub const MAX_PRESENT: u64 = 1000;

/// The topic of `POST /notify/presence {"topic": …}` (at most 4 KiB of JSON).
pub fn beat_topic(req: &crate::http::Request) -> Result<Topic, Error> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        topic: String,
    }
    let b: Body = req.json(4096)?;
    if req.body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Error::Invalid("the body must be a JSON object".into()));
    }
    Topic::parse(&b.topic)
}

/// A present user.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Present {
    pub id: i64,
    pub username: String,
    pub last_seen_ms: u64,
}

fn member(user: &UserRef) -> String {
    serde_json::json!({ "id": user.id, "username": user.username }).to_string()
}

/// Records `user` as present on `topic` now. Returns how many are present.
pub async fn heartbeat(
    link: &impl Link,
    clock: &impl Clock,
    cfg: &NotifyConfig,
    topic: &Topic,
    user: &UserRef,
) -> Result<u64, Error> {
    let args = [
        Arg::from(clock.now_ms()),
        cfg.presence_ttl_ms.into(),
        member(user).into(),
        MAX_PRESENT.into(),
    ];
    let n = link.eval(&BEAT, &[keys::presence(topic).into()], &args).await?.int()?;
    Ok(n.max(0) as u64)
}

/// The users present on `topic`, most recent first.
pub async fn present(link: &impl Link, clock: &impl Clock, cfg: &NotifyConfig, topic: &Topic) -> Result<Vec<Present>, Error> {
    let args = [Arg::from(clock.now_ms()), cfg.presence_ttl_ms.into(), MAX_PRESENT.into()];
    let Records(members): Records<(Vec<u8>, u64)> = link.eval(&LIST, &[keys::presence(topic).into()], &args).await?.parse("presence")?;
    // Members another writer left in a different shape are skipped, not fatal.
    Ok(members
        .into_iter()
        .filter_map(|(m, at)| {
            let v = serde_json::from_slice::<serde_json::Value>(&m).ok()?;
            Some(Present { id: v["id"].as_i64()?, username: v["username"].as_str()?.to_owned(), last_seen_ms: at })
        })
        .collect())
}
