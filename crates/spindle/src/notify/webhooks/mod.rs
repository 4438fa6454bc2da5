//! Webhooks: a topic's events POSTed to registered URLs, signed per the
//! [Standard Webhooks](https://www.standardwebhooks.com/) scheme, retried
//! with backoff, and dead-lettered after the last attempt.
//!
//! **Model.** Spin's Redis trigger hands a component only the message
//! payload, one short-lived invocation per message, so nothing can wait in
//! memory. Everything durable is in Redis:
//!
//! - a topic's events are its stream; `…{topic}:webhooks-cursor` is the last
//!   one fanned out;
//! - a delivery (one event × one webhook) is a record in
//!   `deliveries:pending` and a member of `deliveries:due`, scored by when it
//!   is next due; the record is a reference (attempt, webhook, owner, topic,
//!   event id), and the event is read from the stream when it is leased, so
//!   a publish costs one copy of its data however many webhooks it has; an
//!   event trimmed from the stream first is dead-lettered;
//! - `deliveries:owners` counts each owner's pending deliveries: past
//!   `notify_webhook_max_pending` a new delivery is not queued but goes to
//!   the owner's dead-letter stream (`pending cap reached`);
//! - the worker's pass ([`run`]) is one claim script (fan out new events,
//!   at most `notify_webhook_claim_budget` events × webhooks, whole events
//!   only, the rest left to the next claim; lease up to a batch of due
//!   deliveries by pushing their due time past the send timeout, with their
//!   events), concurrent signed POSTs, then one settle script (forget the
//!   delivered, reschedule the failed with backoff, dead-letter the
//!   exhausted).
//!
//! Every host's trigger receives every message (pub/sub), so every host's
//! worker runs the pass; the atomic lease gives each delivery to one of
//! them. A worker that dies mid-delivery leaves a lease that simply runs
//! out: the delivery is due again and retried (at-least-once; receivers
//! dedupe by `webhook-id`).
//!
//! These are the single-node layout's keys; under `rate_limit_keys=cluster`
//! each topic has its own registry and delivery keys in its slot, and the
//! pass runs per topic ([`Layout`]).
//!
//! **What drives retries.** A publish on a topic with webhooks PUBLISHes the
//! topic to `spindle:notify:deliver`; every pass also re-drives all due
//! retries of every topic. When traffic is idle nothing arrives, so
//! something must tick: `PUBLISH spindle:notify:deliver '*'` from cron (or
//! `POST /notify/webhooks/redrive` from an HTTP scheduler). A tick also
//! catches up every topic whose kick was lost while no trigger was listening.

mod registry;
mod sign;
mod url;
mod worker;

pub use registry::{create, dead_letters, delete, list, redrive, Webhook, MAX_CREATE_BODY};
pub use sign::{new_secret, sign};
pub use url::{parse_url, AllowList, WebhookUrl};
pub use worker::{run, Deliver, Delivery, Kick, Outcome, Outgoing, Report, State, CAPPED, TRIMMED};

use crate::config::{Config, ConfigError, Vars};
use crate::env::Rng;
use super::Error;

crate::scripts! {
    CREATE = ("notify/webhook_create", concat!(include_str!("../webhook_topic.lua"), include_str!("../webhook_create.lua")));
    LIST = ("notify/webhook_list", include_str!("../webhook_list.lua"));
    DELETE = ("notify/webhook_delete", include_str!("../webhook_delete.lua"));
    CLAIM = ("notify/delivery_claim", include_str!("../delivery_claim.lua"));
    SETTLE = ("notify/delivery_settle", include_str!("../delivery_settle.lua"));
    RESERVE = ("notify/webhook_reserve", include_str!("../webhook_reserve.lua"));
    ADD = ("notify/webhook_add", concat!(include_str!("../webhook_topic.lua"), include_str!("../webhook_add.lua")));
    REMOVE = ("notify/webhook_remove", include_str!("../webhook_remove.lua"));
    DEAD_LETTER = ("notify/dead_letter_add", include_str!("../dead_letter_add.lua"));
    PRUNE_TOPIC = ("notify/webhook_topic_prune", include_str!("../webhook_topic_prune.lua"));
}

/// Where webhook registrations and deliveries live.
///
/// - `Node` (the default): one registry and one set of delivery keys for
///   every topic; a claim covers every kicked topic and every due delivery
///   in one script. The scripts reach keys of several slots, so this needs
///   one Redis node (or Upstash).
/// - `Cluster` (`rate_limit_keys=cluster`, in both manifests): each topic
///   keeps its registry and deliveries under its `{topic}` tag, the owner a
///   copy of its definitions; every script touches one slot, and what spans
///   slots (a registration, a deletion, dead letters) runs as steps that are
///   safe to repeat. A claim then covers one topic, and the pending cap
///   counts per owner and topic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    #[default]
    Node,
    Cluster,
}

impl Layout {
    /// From `rate_limit_keys` (`cluster`: the cluster layout).
    pub fn from_vars(vars: &impl Vars) -> Result<Layout, ConfigError> {
        use crate::ratelimit::{KeyMode, KEYS_VAR};
        Ok(match Config::new(vars).parse(KEYS_VAR, KeyMode::Upstash, KeyMode::parse)? {
            KeyMode::Upstash => Layout::Node,
            KeyMode::Cluster => Layout::Cluster,
        })
    }
}

/// Limits on registrations.
pub const MAX_PER_OWNER: u64 = 25;
pub const MAX_PER_TOPIC: u64 = 100;
pub const MAX_URL_LEN: usize = 2048;
/// Deliveries one pass leases at once, and events one topic fans out per pass.
pub const BATCH: usize = 32;
pub const MAX_EVENTS_PER_PASS: usize = 100;
/// A pass stops taking new batches after this long (Spin runs one trigger
/// message at a time, so a worker must not linger).
pub const PASS_BUDGET_MS: u64 = 10_000;
/// Topics a tick catches up at most.
pub const MAX_TICK_TOPICS: usize = 256;
/// The dead-letter stream of an owner: about this many entries, kept this long.
pub const DEAD_LETTER_MAXLEN: u64 = 1000;
pub const DEAD_LETTER_TTL_MS: u64 = 30 * 86_400_000;
/// The longest backoff between attempts.
pub const MAX_BACKOFF_MS: u64 = 6 * 3_600_000;

/// Fan-out one claim may do (events × webhooks), by default; never less
/// than a topic's most webhooks, so every claim takes at least one event.
pub const DEFAULT_CLAIM_BUDGET: u64 = 1000;
/// Deliveries one owner may have pending, by default.
pub const DEFAULT_MAX_PENDING: u64 = 1000;

/// `notify_webhook_allow`: where webhooks may point. Empty (the default):
/// nowhere, and registrations are refused until the operator sets it.
pub fn allow_list(vars: &impl Vars) -> Result<AllowList, Error> {
    let c = Config::new(vars);
    Ok(AllowList::parse(&c.text("notify_webhook_allow").unwrap_or_default()).map_err(|e| ConfigError::new("notify_webhook_allow", e))?)
}

/// The worker's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    /// [`allow_list`]: checked again before each delivery.
    pub allow: AllowList,
    /// One delivery's bound: connect, send and the whole answer.
    pub timeout_ms: u64,
    /// Attempts in all, the first included; then the dead-letter stream.
    pub max_attempts: u32,
    /// The wait after the first failure; ×4 after each further one (±10%), at most 6 h.
    pub backoff_ms: u64,
    /// `notify_webhook_max_pending`: deliveries one owner may have pending;
    /// past it a new delivery is not queued but dead-lettered.
    pub max_pending: u64,
    /// `notify_webhook_claim_budget`: fan-out one claim may do (events × webhooks).
    pub claim_budget: u64,
    /// [`Layout::from_vars`].
    pub layout: Layout,
}

impl WebhookConfig {
    pub fn from_vars(vars: &impl Vars) -> Result<Self, Error> {
        let c = Config::new(vars);
        Ok(WebhookConfig {
            allow: allow_list(vars)?,
            timeout_ms: c.duration_ms("notify_webhook_timeout", 5_000, 100..=60_000)?,
            max_attempts: c.int("notify_webhook_max_attempts", 6, 1..=20)?,
            backoff_ms: c.duration_ms("notify_webhook_backoff", 5_000, 10..=3_600_000)?,
            max_pending: c.int("notify_webhook_max_pending", DEFAULT_MAX_PENDING, 1..=1_000_000)?,
            claim_budget: c.int("notify_webhook_claim_budget", DEFAULT_CLAIM_BUDGET, MAX_PER_TOPIC..=100_000)?,
            layout: Layout::from_vars(vars)?,
        })
    }

    /// When a delivery that just failed its `attempt` is due again.
    pub fn backoff(&self, attempt: u32, rng: &impl Rng) -> u64 {
        let base = self.backoff_ms.saturating_mul(4u64.saturating_pow(attempt.saturating_sub(1))).min(MAX_BACKOFF_MS);
        let jitter = (rng.u64() % 201) as i64 - 100; // ±10% in steps of 0.1%
        (base as i64 + base as i64 * jitter / 1000).max(1) as u64
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::SeqRng;
    #[test]
    fn backoff_grows_and_is_capped() {
        let cfg = WebhookConfig { allow: AllowList::default(), timeout_ms: 1000, max_attempts: 6, backoff_ms: 5000, max_pending: 10, claim_budget: 100, layout: Layout::Node };
        let rng = SeqRng::default();
        let b: Vec<u64> = (1..=6).map(|n| cfg.backoff(n, &rng)).collect();
        for (n, want) in [5_000u64, 20_000, 80_000, 320_000, 1_280_000, 5_120_000].iter().enumerate() {
            assert!(b[n].abs_diff(*want) <= want / 10, "attempt {}: {} vs {want}", n + 1, b[n]);
        }
        assert!(cfg.backoff(30, &rng) <= MAX_BACKOFF_MS * 11 / 10);
    }

    #[test]
    fn webhooks_are_off_until_an_allow_list_is_set() {
        use crate::config::test_vars as vars;
        let d = WebhookConfig::from_vars(&vars(&[("webhook_origin", "https://*.example.com")])).unwrap();
        assert!(d.allow.is_empty(), "webhook_origin is not an allow-list");
        assert_eq!((d.max_pending, d.claim_budget), (DEFAULT_MAX_PENDING, DEFAULT_CLAIM_BUDGET));
        let c = WebhookConfig::from_vars(&vars(&[("notify_webhook_allow", "https://*.example.com"), ("notify_webhook_max_pending", "5")])).unwrap();
        assert!(!c.allow.is_empty() && c.max_pending == 5);
        assert_eq!((d.layout, WebhookConfig::from_vars(&vars(&[("rate_limit_keys", "cluster")])).unwrap().layout), (Layout::Node, Layout::Cluster));
        for (k, v) in [("notify_webhook_max_pending", "0"), ("notify_webhook_claim_budget", "99"), ("notify_webhook_allow", "nope"), ("rate_limit_keys", "Cluster")] {
            let e = WebhookConfig::from_vars(&vars(&[(k, v)])).unwrap_err();
            assert!(matches!(&e, Error::Misconfigured(m) if m.var == k), "{k}={v}: {e:?}");
        }
    }
}
