//! The Redis trigger: subscribe to each `[[trigger.redis]]` channel and call
//! the component's `inbound-redis` export once per message, with a fresh
//! instance each time. Unlike Spin, which stops when the connection drops,
//! the runner reconnects with backoff; messages published while it is
//! disconnected are lost, as with any pub/sub subscriber.

use crate::app::Runtime;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;

pub struct Subscription {
    pub address: String,
    pub channel: String,
    pub component: String,
}

/// Starts the subscription loop. `subscribed` fires once, the first time the
/// subscription is in place, so start-up can wait for it (bounded).
pub fn spawn(rt: Arc<Runtime>, sub: Subscription, subscribed: tokio::sync::oneshot::Sender<()>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        let mut subscribed = Some(subscribed);
        loop {
            match run(&rt, &sub, &mut subscribed).await {
                Ok(()) => eprintln!("[redis-trigger] {}: connection closed; reconnecting", sub.channel),
                Err(e) => eprintln!("[redis-trigger] {}: {e}; reconnecting in {backoff:?}", sub.channel),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    })
}

async fn run(rt: &Arc<Runtime>, sub: &Subscription, subscribed: &mut Option<tokio::sync::oneshot::Sender<()>>) -> anyhow::Result<()> {
    let client = redis::Client::open(sub.address.as_str())?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(&sub.channel).await?;
    eprintln!("[redis-trigger] subscribed to {} for {}", sub.channel, sub.component);
    if let Some(tx) = subscribed.take() {
        let _ = tx.send(());
    }
    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        let payload = msg.get_payload_bytes().to_vec();
        let rt = rt.clone();
        let component = sub.component.clone();
        let channel = sub.channel.clone();
        // Each message gets its own instance; slow handlers do not hold up the next message.
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let result = deliver(&rt, &component, payload).await;
            let outcome = match &result {
                Ok(Ok(())) => "ok".to_string(),
                Ok(Err(e)) => format!("error {e:?}"),
                Err(e) => format!("trap {e:#}"),
            };
            eprintln!("REDIS {channel} {outcome} {:.2}ms {component}", started.elapsed().as_secs_f64() * 1000.0);
        });
    }
    Ok(())
}

async fn deliver(
    rt: &Arc<Runtime>,
    component: &str,
    payload: Vec<u8>,
) -> anyhow::Result<Result<(), crate::host::trigger::fermyon::spin::redis_types::Error>> {
    let loaded = rt.components.get(component).ok_or_else(|| anyhow::anyhow!("component not loaded"))?;
    let pre = loaded.redis.as_ref().ok_or_else(|| anyhow::anyhow!("not a Redis component"))?;
    let mut store = rt.new_store(loaded);
    let handler = pre.instantiate_async(&mut store).await?;
    Ok(handler.fermyon_spin_inbound_redis().call_handle_message(&mut store, &payload).await?)
}
