//! `spindle-runner up`: a small, faithful local stand-in for `spin up`.
//!
//! It runs the same `.wasm` files as laid out in `spin.toml` (manifest v2):
//! Spin's HTTP routing and `spin-*` headers, application variables,
//! `allowed_outbound_hosts`, WASI 0.2 + wasi:http, Spin outbound Redis and
//! PostgreSQL, variables and SQLite, and the Redis trigger.

mod app;
mod host;
mod http_trigger;
mod log;
mod manifest;
mod outbound;
mod postgres_host;
mod redis_pool;
mod redis_trigger;
mod routes;
mod vars;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(name = "spindle-runner", version, about = "Run a Spin app locally on wasmtime")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the application, like `spin up`.
    Up(UpArgs),
}

#[derive(clap::Args)]
struct UpArgs {
    /// The application manifest.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    from: PathBuf,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Set an application variable (repeatable). Overrides SPIN_VARIABLE_<NAME>.
    #[arg(long = "variable", value_name = "KEY=VALUE")]
    variables: Vec<String>,
    /// Runtime configuration (TOML), e.g. `[sqlite_database.default] type = "spin", path = "…"`.
    #[arg(long)]
    runtime_config_file: Option<PathBuf>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let Cmd::Up(args) = cli.cmd;
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(up(args))
}

async fn up(args: UpArgs) -> Result<()> {
    let app = manifest::App::load(&args.from)?;
    let cli_vars = args
        .variables
        .iter()
        .map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).with_context(|| format!("--variable {kv}: expected KEY=VALUE")))
        .collect::<Result<Vec<_>>>()?;
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let vars = vars::Variables::resolve(&app.manifest, &cli_vars, &env)?;
    let runtime_config = app::RuntimeConfig::load(args.runtime_config_file.as_deref())?;
    let rt = Arc::new(app::Runtime::load(&app, vars, &runtime_config)?);

    let mut triggers = Vec::new();
    let mut subscribed = Vec::new();
    for t in &app.manifest.trigger.redis {
        let address = match (&t.address, &app.manifest.application.trigger.redis) {
            (Some(a), _) => a.clone(),
            (None, Some(d)) => d.address.clone(),
            (None, None) => bail!("trigger.redis channel {:?}: no address and no [application.trigger.redis] address", t.channel),
        };
        let sub = redis_trigger::Subscription {
            address: rt.vars.expand(&address)?,
            channel: rt.vars.expand(&t.channel)?,
            component: t.component.clone(),
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        subscribed.push(rx);
        triggers.push(redis_trigger::spawn(rt.clone(), sub, tx));
    }
    // Serve once the Redis triggers are subscribed, so a message published
    // right after start-up is not missed; but never wait long on a Redis
    // that is down (the triggers keep retrying in the background).
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), futures::future::join_all(subscribed)).await;

    // A deep accept queue: the default of 128 overflows when a burst of
    // clients connects at once, and some of them then see resets.
    let listener = listen(args.listen).with_context(|| format!("binding {}", args.listen))?;
    let local = listener.local_addr()?;
    // Signal handlers before the line scripts wait for: a SIGTERM sent as
    // soon as it appears must stop the runner gracefully, not kill it.
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?);
    println!("Serving http://{local}");
    println!("Available Routes:");
    for t in &app.manifest.trigger.http {
        if let manifest::Route::Path(p) = &t.route {
            println!("  {}: http://{local}{}", t.component, p.trim_end_matches("/..."));
        }
    }

    let connections = tokio_util_tracker();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, client) = match accepted {
                    Ok(a) => a,
                    Err(e) => { eprintln!("accept: {e}"); continue; }
                };
                let _ = stream.set_nodelay(true);
                let rt = rt.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let rt = rt.clone();
                        async move { Ok::<_, std::convert::Infallible>(http_trigger::handle(rt, req, client, local).await) }
                    });
                    let _ = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service).await;
                });
            }
            _ = int.recv() => break,
            _ = term.recv() => break,
        }
    }
    eprintln!("shutting down");
    for t in triggers {
        t.abort();
    }
    drop(listener);
    // In-flight requests get a short grace period.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), connections.wait_idle()).await;
    Ok(())
}

fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Tracks connection tasks so shutdown can wait for in-flight requests.
struct Tracker {
    count: Arc<tokio::sync::watch::Sender<usize>>,
}

fn tokio_util_tracker() -> Tracker {
    Tracker { count: Arc::new(tokio::sync::watch::channel(0).0) }
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
