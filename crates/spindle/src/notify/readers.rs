//! How many long polls and SSE streams one caller may hold open, across the
//! fleet, and how fast it may open them.
//!
//! Each open reader holds a **lease**: a random token in the caller's zset
//! `spindle:notify:readers:<owner>`, scored with the time the lease ends
//! (the longest the reader can last: its wait or the SSE lifetime, plus
//! [`LEASE_GRACE_MS`]). Taking one is one script call
//! ([`readers_acquire.lua`](readers_acquire.lua)) that first drops leases
//! past their end, so a host that dies mid-stream leaks its slots only until
//! their end, never for good; the key itself expires with its last lease. A
//! reader gives its lease back (ZREM) when it ends, whichever way it ends.
//! `notify_max_streams` leases per caller at once; the next open is a 429
//! `too-many-streams` with `Retry-After` (when the soonest lease would end,
//! at most [`MAX_RETRY_AFTER_S`]). Opening also spends one unit of the
//! `notify_stream` rate limit (`notify_stream_rate_limit`, per caller,
//! failing closed), checked first, so refused opens cost no lease.
//!
//! A caller is what [`Caller::identity`] says: a user, an API key, or an
//! anonymous client address. Other callers' leases are other keys: one
//! caller at its cap changes nothing for anyone else.

use super::{keys, Error, NotifyConfig};
use crate::caller::Caller;
use crate::env::{Clock, Rng};
use crate::http::Problem;
use crate::ratelimit::{Limited, Throttle};
use crate::redis::{Arg, Cmd, Link};

crate::scripts! {
    /// Takes a reader lease if the caller holds fewer than its cap.
    pub ACQUIRE = ("notify/readers_acquire", include_str!("readers_acquire.lua"));
}

/// Added to a reader's longest life for its lease: time to set up, and
/// one Redis timeout at the end.
pub const LEASE_GRACE_MS: u64 = 10_000;
/// The most `Retry-After` a `too-many-streams` answer gives.
pub const MAX_RETRY_AFTER_S: u64 = 30;

/// An open reader's lease: give it back with [`Reader::release`].
#[derive(Debug)]
pub struct Reader {
    key: String,
    token: String,
    /// The `notify_stream` rate limit's headers, for the answer.
    pub limited: Limited,
}

impl Reader {
    /// Spends one open of the rate limit, then takes a lease that lasts
    /// `longest_ms` + [`LEASE_GRACE_MS`]. 429 `quota-exceeded` when the rate
    /// is spent, 429 `too-many-streams` when the caller is at its cap.
    /// Two round trips.
    pub async fn open(
        link: &impl Link,
        clock: &impl Clock,
        rng: &impl Rng,
        throttle: &Throttle,
        cfg: &NotifyConfig,
        caller: &Caller,
        longest_ms: u64,
    ) -> Result<Reader, Error> {
        let limited = throttle.check(link, clock, &caller.identity(), 1).await?;
        let key = keys::readers(&caller.owner());
        let mut raw = [0u8; 16];
        rng.fill(&mut raw);
        let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let now = clock.now_ms();
        let until = now + longest_ms + LEASE_GRACE_MS;
        let args: [Arg; 4] = [now.into(), until.into(), cfg.max_streams.into(), token.clone().into()];
        let reply = link.eval(&ACQUIRE, &[Arg::from(key.clone())], &args).await?;
        let (taken, held, retry_ms): (u64, u64, u64) = reply.parse("the reader-lease script")?;
        if taken != 1 {
            let retry_s = retry_ms.div_ceil(1000).clamp(1, MAX_RETRY_AFTER_S);
            let p = Problem::new(
                429,
                "too-many-streams",
                "Too Many Requests",
                format!("{held} of your long polls and streams are open, the most allowed at once; retry in {retry_s} s"),
            );
            let mut p = p.with_header("retry-after", retry_s.to_string());
            p.headers.extend(limited.headers.iter().cloned());
            return Err(Error::Problem(p));
        }
        Ok(Reader { key, token, limited })
    }

    /// Gives the lease back (one ZREM). If this fails the lease ends by itself.
    pub async fn release(self, link: &impl Link) {
        if let Err(e) = link.exec(&Cmd::new("ZREM").arg(self.key).arg(self.token)).await {
            eprintln!("notify: a reader lease was not released (it ends by itself): {e}");
        }
    }
}
