//! `up`: load the app, start the Redis subscribers, and serve HTTP until a
//! signal or a trigger stops the runner.
//!
//! Start-up waits (at most 3 s) for the Redis subscriptions before it
//! announces "Serving" (its first line on stdout; the routes and Spin's
//! "Active Channels" listing follow), so a message published right after
//! that line is not missed; a subscription that fails makes the runner
//! exit, before or after serving began, with the error and a non-zero
//! status, as `spin up` does. SIGINT or SIGTERM stops accepting connections and gives in-flight
//! requests 5 s.

use crate::app::{Runtime, RuntimeConfig};
use crate::trigger::{http::HttpTrigger, redis};
use crate::{manifest, vars};
use anyhow::{Context, Result};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub struct Options {
    pub manifest: PathBuf,
    pub listen: SocketAddr,
    pub variables: Vec<(String, String)>,
    pub runtime_config: Option<PathBuf>,
}

pub async fn up(opts: Options) -> Result<()> {
    let app = manifest::App::load(&opts.manifest)?;
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let vars = vars::Variables::resolve(&app.manifest, &opts.variables, &env)?;
    let runtime_config = RuntimeConfig::load(opts.runtime_config.as_deref())?;
    let rt = Arc::new(Runtime::load(&app, &vars, &runtime_config)?);
    let http = Arc::new(HttpTrigger::new(rt.clone(), &app.manifest, opts.listen)?);

    let subscribers = redis::subscribers(&app.manifest, &vars)?;
    let channels = redis::listing(&subscribers);
    let mut triggers = redis::start(rt, subscribers);
    tokio::select! {
        _ = tokio::time::timeout(Duration::from_secs(3), &mut triggers.subscribed) => {}
        e = &mut triggers.stopped => return Err(e),
    }

    // Signal handlers before the line scripts wait for: a SIGTERM sent as
    // soon as it appears must stop the runner gracefully, not kill it.
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?);
    if http.routes().next().is_none() {
        // An app with no HTTP trigger (the webhook worker) listens on
        // nothing, as with Spin: two of them on one machine must not fight
        // over --listen's port.
        print!("{channels}");
        tokio::select! {
            e = &mut triggers.stopped => {
                println!("A trigger exited unexpectedly. Terminating.");
                return Err(e);
            }
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("shutting down");
        return Ok(());
    }
    let listener = listen(opts.listen).with_context(|| format!("binding {}", opts.listen))?;
    let local = listener.local_addr()?;
    println!("Serving http://{local}");
    println!("Available Routes:");
    for (component, path, wildcard) in http.routes() {
        println!("  {component}: http://{local}{path}{}", if wildcard { " (wildcard)" } else { "" });
    }
    print!("{channels}");

    let connections = Tracker::default();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, client) = match accepted {
                    Ok(a) => a,
                    Err(e) => { eprintln!("accept: {e}"); continue; }
                };
                let _ = stream.set_nodelay(true);
                let http = http.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let http = http.clone();
                        async move { http.handle(req, client).await.inspect_err(|e| eprintln!("{e:#}")) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
                });
            }
            e = &mut triggers.stopped => {
                println!("A trigger exited unexpectedly. Terminating.");
                return Err(e);
            }
            _ = int.recv() => break,
            _ = term.recv() => break,
        }
    }
    eprintln!("shutting down");
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(5), connections.wait_idle()).await;
    Ok(())
}

/// A deep accept queue: the default of 128 overflows when a burst of
/// clients connects at once, and some of them then see resets.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Counts connection tasks so shutdown can wait for in-flight requests.
#[derive(Default)]
struct Tracker {
    count: Arc<tokio::sync::watch::Sender<usize>>,
}

impl Tracker {
    fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let count = self.count.clone();
        count.send_modify(|c| *c += 1);
        tokio::spawn(async move {
            fut.await;
            count.send_modify(|c| *c -= 1);
        });
    }

    async fn wait_idle(&self) {
        let mut rx = self.count.subscribe();
        let _ = rx.wait_for(|c| *c == 0).await;
    }
}
