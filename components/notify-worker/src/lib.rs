//! The webhook worker, on the `[[trigger.redis]]` channel
//! `spindle:notify:deliver` (see `spindle::notify::webhooks`).
//!
//! Each message is a kick: a topic name after a publish on a topic with
//! webhooks, or `*`, a tick that re-drives everything. One invocation runs
//! one pass: claim (one script), POST the batch concurrently with spin-sdk's
//! `http::send` futures joined, each bounded by `notify_webhook_timeout`,
//! then settle (one script). Nothing is kept in memory between messages.

use futures::future::{select, Either};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::redis_component;
use spindle::config::RedisConfig;
use spindle::env::{OsRng, SystemClock};
use spindle::notify::webhooks::{self, Deliver, Kick, Outcome, Outgoing, WebhookConfig};
use spindle::spin::{SpinLink, SpinVars};

#[redis_component]
async fn on_message(message: bytes::Bytes) -> anyhow::Result<()> {
    let vars = SpinVars::default();
    let cfg = WebhookConfig::from_vars(&vars).map_err(|e| anyhow::anyhow!("{e}"))?;
    let redis = RedisConfig::worker_from_vars(&vars).map_err(|e| anyhow::anyhow!("{e}"))?;
    let link = SpinLink::new(&redis);
    let kick = Kick::parse(&message);
    match webhooks::run(&link, &SystemClock, &OsRng, &HttpDeliver, &cfg, &kick).await {
        Ok(r) => {
            if r.delivered + r.retrying + r.dead + r.capped > 0 {
                println!(
                    "webhooks: {} delivered, {} to retry, {} dead-lettered, {} not queued (pending cap)",
                    r.delivered, r.retrying, r.dead, r.capped
                );
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("webhooks: pass failed: {e}");
            Err(anyhow::anyhow!("webhook pass failed"))
        }
    }
}

/// Concurrent POSTs: every request of the batch is in flight at once, so a
/// slow receiver costs the others nothing; each is cut off at the timeout.
struct HttpDeliver;

impl Deliver for HttpDeliver {
    async fn deliver_all(&self, batch: Vec<Outgoing>, timeout_ms: u64) -> Vec<Outcome> {
        futures::future::join_all(batch.into_iter().map(|o| deliver(o, timeout_ms))).await
    }
}

async fn deliver(o: Outgoing, timeout_ms: u64) -> Outcome {
    let mut b = Request::builder();
    b.method(Method::Post).uri(o.url);
    for (k, v) in o.headers {
        b.header(k, v);
    }
    let req = b.body(o.body).build();
    let send = Box::pin(spin_sdk::http::send::<_, Response>(req));
    let timeout = Box::pin(spindle::spin::sleep_ms(timeout_ms));
    match select(send, timeout).await {
        Either::Left((Ok(resp), _)) => {
            let status = *resp.status();
            if (200..300).contains(&status) {
                Outcome::Delivered(status)
            } else {
                Outcome::Failed { status: Some(status), error: format!("HTTP {status}") }
            }
        }
        Either::Left((Err(e), _)) => Outcome::Failed { status: None, error: format!("{e}") },
        Either::Right(_) => Outcome::Failed { status: None, error: format!("no answer within {timeout_ms} ms") },
    }
}
