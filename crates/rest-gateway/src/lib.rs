//! An Upstash-REST-compatible gateway in front of Redis: one server, or a
//! Redis Cluster.
//!
//! Spin's outbound Redis talks to one address, follows no redirects and
//! opens a connection per request; its outbound HTTP is pooled and bounded.
//! So a fleet of Spin hosts reaches a shared Redis (or a cluster) through
//! this gateway, over HTTP, speaking the Upstash Redis REST API (as the real
//! `@upstash/redis` client does):
//!
//! - `POST /` with `["SET","k","v"]` runs one command: `{"result": ...}`;
//! - `GET /set/k/v` (and `POST /set/k` with the value as body, then query
//!   pairs as further arguments) is the path form;
//! - `POST /pipeline` runs a batch as one Redis pipeline, `POST /multi-exec`
//!   as one MULTI/EXEC transaction, each answering `[{"result"|"error": ...}]`;
//! - `Authorization: Bearer <token>` or `?_token=`; `Upstash-Encoding: base64`;
//! - `GET /healthz` (no token) and `GET /metrics` (Prometheus).
//!
//! Commands that need a connection of their own (pub/sub, MULTI, SELECT, …)
//! or that block (BLPOP, XREAD BLOCK, …) are refused with a 400.
//!
//! The modules, one concern each: `config` (settings), `tokens` (who may
//! do what), `command` (parsing and command facts), `routing` and
//! `topology` (where a command runs on a cluster), `link` (one server's
//! connection), `cluster` (many), `upstream` (either), `scripts` (Lua
//! bodies for servers that lost them), `admission` (back-pressure),
//! `metrics`, `log`, `reply` (Redis replies as Upstash JSON) and `service`
//! (HTTP).
//!
//! Start it in-process with [`serve`], or use the `spindle-rest-gateway`
//! binary.

mod admission;
mod cluster;
mod command;
mod config;
mod link;
pub mod log;
mod metrics;
mod reply;
mod routing;
mod scripts;
mod service;
mod tokens;
mod topology;
mod upstream;

pub use config::{Config, TlsFiles};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::log::Level;

/// A running gateway. Dropping it without [`Server::shutdown`] leaves it
/// serving until the runtime stops.
pub struct Server {
    addr: SocketAddr,
    state: Arc<service::State>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    /// The token-file watcher and the cluster refresher.
    background: Vec<JoinHandle<()>>,
}

impl Server {
    /// The bound address (useful when listening on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Reads the token file again (what SIGHUP does). On error the previous
    /// tokens stay in force; the error says why (never with a token in it).
    pub fn reload_tokens(&self) -> Result<(), String> {
        self.state.tokens.reload().map(|_| ())
    }

    /// Stops accepting connections, lets requests in flight finish (for at
    /// most the configured drain timeout), and returns when the server is
    /// gone.
    pub async fn shutdown(mut self) {
        log::event(
            Level::Info,
            "draining",
            json!({"in_flight": self.state.admission.in_flight()}),
        );
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
        for task in &self.background {
            task.abort();
        }
        log::event(Level::Info, "stopped", json!({}));
    }
}

/// Binds with a deep accept queue: the default of 128 overflows when a
/// burst of clients connects at once (the kernel then drops handshakes and
/// some clients see resets). The kernel caps it at `net.core.somaxconn`.
async fn listen(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(4096)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address")))
}

/// Binds the listener and starts serving in the background.
///
/// Redis is connected to lazily, so the gateway starts (and answers 503)
/// while Redis is not up yet; only bad settings (a malformed Redis URL, an
/// unreadable token file or certificate, no token at all) or a bind failure
/// are errors here.
pub async fn serve(config: Config) -> anyhow::Result<Server> {
    config.validate()?;
    // rustls needs a process-wide crypto provider; another part of the
    // process may have installed one already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = Arc::new(metrics::Metrics::default());
    let tokens = tokens::Tokens::new(
        config.token.as_deref(),
        config.token_file.clone(),
        metrics.clone(),
    )?;
    let upstream = upstream::Upstream::new(&config, metrics.clone())?;
    let listener = listen(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let state = Arc::new(service::State {
        tokens,
        max_body_bytes: config.max_body_bytes,
        redis_timeout: config.redis_timeout,
        command_timeout: config.command_timeout,
        upstream,
        admission: admission::Admission::new(
            config.max_in_flight,
            config.max_queue,
            config.queue_timeout,
        ),
        metrics,
        access_log: config.access_log,
    });
    let mut background = Vec::new();
    if config.token_file.is_some() && !config.token_file_poll.is_zero() {
        let state = state.clone();
        let every = config.token_file_poll;
        background.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                state.tokens.reload_if_changed();
            }
        }));
    }
    if let Some(cluster) = state.upstream.cluster() {
        background.push(cluster.spawn_refresher(config.cluster_refresh));
    }
    let redis: Vec<String> = config.redis.iter().map(|u| log::redact_url(u)).collect();
    log::event(
        Level::Info,
        "listening",
        json!({
            "addr": addr.to_string(),
            "redis": redis,
            "cluster": config.cluster,
            "tokens": state.tokens.counts().iter().sum::<usize>(),
            "max_in_flight": config.max_in_flight,
            "max_queue": config.max_queue,
        }),
    );
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(accept_loop(
        listener,
        state.clone(),
        stopped,
        config.drain_timeout,
    ));
    Ok(Server {
        addr,
        state,
        stop: Some(stop),
        task,
        background,
    })
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<service::State>,
    mut stopped: oneshot::Receiver<()>,
    drain_timeout: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    // Keep-alive is on by default; the timer bounds slow header senders.
    http.timer(TokioTimer::new());
    loop {
        let (stream, _peer) = tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    // Usually out of file descriptors: back off, don't spin.
                    log::event(Level::Error, "accept failed", json!({"error": err.to_string()}));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Replies are small and latency-bound; don't let Nagle hold them.
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let service = service_fn(move |req| service::handle(state.clone(), req));
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that hangs up mid-request is not our error to report.
            let _ = conn.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        log::event(
            Level::Warn,
            "drain timed out; abandoning requests still in flight",
            json!({"in_flight": state.admission.in_flight()}),
        );
    }
}
