//! The Redis trigger, as Spin 4.0.2's `trigger-redis`:
//! - one subscriber connection per Redis address, subscribed to every
//!   channel the manifest names on that address;
//! - messages are handled one at a time, in order, per address: the next
//!   message waits until every component of the channel has returned (the
//!   components of one channel run side by side). Each call gets a fresh
//!   instance and only the payload;
//! - a handler that fails or traps is logged and the next message follows;
//! - a connection that cannot be made, or that drops later, stops the
//!   trigger with an error, and the runner then stops too, as `spin up`
//!   does ("A trigger exited unexpectedly. Terminating."). Messages are not
//!   buffered anywhere but in the subscriber connection: what is published
//!   while nobody is subscribed is lost, as with any pub/sub subscriber.

use crate::app::Runtime;
use crate::manifest::Manifest;
use crate::vars::Variables;
use anyhow::{anyhow, bail, Context, Result};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// The channels of one Redis address, each with the components it triggers.
pub struct Subscriber {
    client: redis::Client,
    /// The address as Spin shows it (`host:port`, no credentials).
    server: String,
    channels: BTreeMap<String, Vec<String>>,
}

/// Groups the manifest's `[[trigger.redis]]` by address, with variables expanded.
pub fn subscribers(m: &Manifest, vars: &Variables) -> Result<Vec<Subscriber>> {
    let default = m.application.trigger.redis.as_ref().map(|d| d.address.as_str());
    let mut by_address: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for t in &m.trigger.redis {
        let address = match (&t.address, default) {
            (Some(a), _) => a.as_str(),
            (None, Some(d)) => d,
            (None, None) => bail!("trigger.redis channel {:?}: no address and no [application.trigger.redis] address", t.channel),
        };
        let address = vars.expand(address).with_context(|| format!("failed to resolve redis trigger address for component {}", t.component))?;
        let channel = vars.expand(&t.channel).with_context(|| format!("failed to resolve redis trigger channel for component {}", t.component))?;
        by_address.entry(address).or_default().entry(channel).or_default().push(t.component.clone());
    }
    by_address
        .into_iter()
        .map(|(address, channels)| {
            let client = redis::Client::open(address.as_str()).map_err(|e| anyhow!("invalid Redis trigger address: {e}"))?;
            let server = client.get_connection_info().addr.to_string();
            Ok(Subscriber { client, server, channels })
        })
        .collect()
}

/// Spin's start-up listing of the subscriptions.
pub fn listing(subscribers: &[Subscriber]) -> String {
    let mut out = String::new();
    for s in subscribers {
        out.push_str(&format!("Active Channels on {}:\n", s.server));
        for (channel, components) in &s.channels {
            out.push_str(&format!("\t{}/{channel}: [{}]\n", s.server, components.join(",")));
        }
    }
    out
}

/// The running subscribers.
pub struct Running {
    /// Resolves once every subscriber is subscribed.
    pub subscribed: BoxFuture<'static, ()>,
    /// Resolves, with the reason, when the first subscriber stops (never if there is none).
    pub stopped: BoxFuture<'static, anyhow::Error>,
}

pub fn start(rt: Arc<Runtime>, subscribers: Vec<Subscriber>) -> Running {
    let mut ready = Vec::new();
    let mut tasks = Vec::new();
    for s in subscribers {
        let (tx, rx) = tokio::sync::oneshot::channel();
        ready.push(rx);
        tasks.push(tokio::spawn(s.run(rt.clone(), tx)));
    }
    let subscribed = futures::future::join_all(ready).map(drop).boxed();
    let stopped = match tasks.is_empty() {
        true => futures::future::pending().boxed(),
        false => futures::future::select_all(tasks)
            .map(|(result, _, _)| match result {
                Ok(e) => e,
                Err(join) => anyhow!("the Redis trigger failed: {join}"),
            })
            .boxed(),
    };
    Running { subscribed, stopped }
}

impl Subscriber {
    /// Subscribes and handles messages until the connection fails; returns why.
    async fn run(self, rt: Arc<Runtime>, subscribed: tokio::sync::oneshot::Sender<()>) -> anyhow::Error {
        match self.listen(&rt, subscribed).await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    async fn listen(&self, rt: &Arc<Runtime>, subscribed: tokio::sync::oneshot::Sender<()>) -> Result<std::convert::Infallible> {
        let server = &self.server;
        let mut pubsub = self.client.get_async_pubsub().await.with_context(|| format!("Redis trigger failed to connect to {server}"))?;
        for channel in self.channels.keys() {
            pubsub.subscribe(channel).await.with_context(|| format!("Redis trigger failed to subscribe to channel {channel:?} on {server}"))?;
        }
        let _ = subscribed.send(());
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            let channel = msg.get_channel_name().to_owned();
            let Some(components) = self.channels.get(&channel) else {
                eprintln!("Error handling message from {server}: message from unexpected channel {channel:?}");
                continue;
            };
            let payload = msg.get_payload_bytes();
            futures::future::join_all(components.iter().map(|c| deliver(rt, &channel, c, payload))).await;
        }
        bail!("disconnected from {server}")
    }
}

/// Calls one component with one message and logs the outcome.
async fn deliver(rt: &Runtime, channel: &str, component: &str, payload: &[u8]) {
    let started = Instant::now();
    let outcome = match call(rt, component, payload).await {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            eprintln!("Component {component} handler failed: {e:#}");
            "error".to_owned()
        }
    };
    eprintln!("REDIS {channel} {outcome} {:.2}ms {component}", started.elapsed().as_secs_f64() * 1000.0);
}

async fn call(rt: &Runtime, component: &str, payload: &[u8]) -> Result<()> {
    let payload = payload.to_vec();
    let c = rt.component(component).with_context(|| format!("component {component} is not loaded"))?;
    let pre = c.redis.as_ref().with_context(|| format!("component {component} does not export a Redis interface"))?;
    let mut store = rt.new_store(c, None);
    let handler = pre.instantiate_async(&mut store).await?;
    match handler.fermyon_spin_inbound_redis().call_handle_message(&mut store, &payload).await? {
        Ok(()) => Ok(()),
        Err(e) => Err(anyhow!("{e:?}")).context("Redis handler returned an error"),
    }
}
