//! An Upstash-REST-compatible gateway in front of a real Redis.
//!
//! It lets the `upstash-rest` transport (and the real `@upstash/redis` npm
//! client) run locally and in tests against a plain `redis-server`. It is a
//! faithful subset of the Upstash Redis REST API, not a replacement for it:
//!
//! - `POST /` with `["SET","k","v"]` runs one command: `{"result": ...}`;
//! - `GET /set/k/v` (and `POST /set/k` with the value as body, then query
//!   pairs as further arguments) is the path form;
//! - `POST /pipeline` runs a batch as one Redis pipeline, `POST /multi-exec`
//!   as one MULTI/EXEC transaction, each answering `[{"result"|"error": ...}]`;
//! - `Authorization: Bearer <token>` or `?_token=`; `Upstash-Encoding: base64`.
//!
//! Commands that need a connection of their own (pub/sub, MULTI, SELECT, …)
//! or that block (BLPOP, XREAD BLOCK, …) are refused with a 400.
//!
//! Start it in-process with [`serve`], or use the `spindle-rest-gateway`
//! binary.

mod command;
mod link;
mod reply;
mod service;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Gateway settings. [`Config::new`] fills in the CLI's defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on, `host:port`; port 0 picks a free port.
    pub listen: String,
    /// `redis://` URL of the Redis to forward to.
    pub redis_url: String,
    /// The bearer token clients must present. Must not be empty.
    pub token: String,
    /// Largest request body accepted; larger ones get a 413.
    pub max_body_bytes: usize,
    /// How long to wait for a connection to Redis, and for the answer to an
    /// ordinary command, before answering 503. Short, so that a Redis that is
    /// down or hung is reported quickly.
    pub redis_timeout: Duration,
    /// How long to wait for the answer when the request runs a script
    /// (EVAL, EVALSHA, FCALL, …): a long Lua script is a legitimate reason
    /// for a slow answer.
    pub command_timeout: Duration,
}

impl Config {
    pub fn new(redis_url: impl Into<String>, token: impl Into<String>) -> Self {
        Config {
            listen: "127.0.0.1:8079".into(),
            redis_url: redis_url.into(),
            token: token.into(),
            max_body_bytes: 1024 * 1024,
            redis_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(10),
        }
    }
}

/// A running gateway. Dropping it without [`Server::shutdown`] leaves it
/// serving until the runtime stops.
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    /// The bound address (useful when listening on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, lets requests in flight finish (for at
    /// most a few seconds), and returns when the server is gone.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// How long [`Server::shutdown`] waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Binds with a deep accept queue: the default of 128 overflows when a
/// burst of clients connects at once (the kernel then drops handshakes and
/// some clients see resets). The kernel caps it at `net.core.somaxconn`.
async fn listen(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
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
/// while Redis is not up yet; only a malformed Redis URL or a bind failure
/// is an error here.
pub async fn serve(config: Config) -> anyhow::Result<Server> {
    anyhow::ensure!(!config.token.is_empty(), "the token must not be empty");
    let link = link::Link::new(&config.redis_url, config.redis_timeout)?;
    let listener = listen(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let state = Arc::new(service::State {
        token: config.token.into_bytes(),
        max_body_bytes: config.max_body_bytes,
        redis_timeout: config.redis_timeout,
        command_timeout: config.command_timeout,
        link,
    });
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(accept_loop(listener, state, stopped));
    Ok(Server {
        addr,
        stop: Some(stop),
        task,
    })
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<service::State>,
    mut stopped: oneshot::Receiver<()>,
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
                    eprintln!("spindle-rest-gateway: accept failed: {err}");
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
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
}
