//! `spindle-rest-gateway`: serves the Upstash Redis REST API in front of
//! Redis or a Redis Cluster. All logic lives in the library; this is flags
//! and signals.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde_json::json;
use spindle_rest_gateway::log::{self, Level};
use spindle_rest_gateway::{serve, Config, TlsFiles};

/// An Upstash-REST-compatible gateway in front of Redis or a Redis Cluster.
#[derive(Parser, Debug)]
#[command(name = "spindle-rest-gateway", version, about)]
struct Cli {
    /// Address to listen on (port 0: pick a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8079")]
    listen: String,
    /// Redis to forward to (redis:// or rediss://, user and password in the
    /// URL). With --cluster, a seed node; repeat for more seeds.
    #[arg(long, value_name = "URL", default_value = "redis://127.0.0.1:6379")]
    redis: Vec<String>,
    /// The --redis URLs are seeds of a Redis Cluster: route by hash slot,
    /// follow MOVED and ASK, follow failovers.
    #[arg(long)]
    cluster: bool,
    /// A read-write bearer token clients may send.
    #[arg(long, env = "SPINDLE_REST_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file of hashed, scoped tokens, one `<scope> <sha256-hex> [name]` a
    /// line; reloaded on SIGHUP and when it changes.
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// How often the token file is checked for changes (0: only on SIGHUP).
    #[arg(long, value_name = "MS", default_value_t = 1_000)]
    token_file_poll_ms: u64,
    /// Largest accepted request body, in bytes.
    #[arg(long, value_name = "N", default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// How long a script (EVAL, EVALSHA, FCALL) may keep Redis busy before the
    /// request fails with 503.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    command_timeout_ms: u64,
    /// How long to wait for a connection to Redis, and for the answer to any
    /// other command, before failing with 503.
    #[arg(long, value_name = "MS", default_value_t = 2_000)]
    redis_timeout_ms: u64,
    /// Most requests talking to Redis at once.
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_in_flight: usize,
    /// Most requests waiting for a turn; more get an immediate 503.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_queue: usize,
    /// Longest wait for a turn before a 503.
    #[arg(long, value_name = "MS", default_value_t = 1_000)]
    queue_timeout_ms: u64,
    /// On SIGTERM, how long requests in flight may take to finish.
    #[arg(long, value_name = "MS", default_value_t = 5_000)]
    drain_timeout_ms: u64,
    /// How often the cluster's slot map is read again.
    #[arg(long, value_name = "MS", default_value_t = 5_000)]
    cluster_refresh_ms: u64,
    /// PEM file of the CA that signed the Redis servers' certificates
    /// (default: the system's roots).
    #[arg(long, value_name = "PATH")]
    redis_ca_file: Option<PathBuf>,
    /// PEM client certificate, for Redis servers that require mutual TLS.
    #[arg(long, value_name = "PATH", requires = "redis_client_key")]
    redis_client_cert: Option<PathBuf>,
    /// PEM key of --redis-client-cert.
    #[arg(long, value_name = "PATH", requires = "redis_client_cert")]
    redis_client_key: Option<PathBuf>,
    /// Log one JSON line per request (route, status, time, token name).
    #[arg(long)]
    access_log: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            log::event(
                Level::Error,
                "cannot start",
                json!({"error": format!("{err:#}")}),
            );
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let ms = Duration::from_millis;
    let config = Config {
        listen: cli.listen,
        redis: cli.redis,
        cluster: cli.cluster,
        token: cli.token,
        token_file: cli.token_file,
        token_file_poll: ms(cli.token_file_poll_ms),
        max_body_bytes: cli.max_body_bytes,
        redis_timeout: ms(cli.redis_timeout_ms),
        command_timeout: ms(cli.command_timeout_ms),
        max_in_flight: cli.max_in_flight,
        max_queue: cli.max_queue,
        queue_timeout: ms(cli.queue_timeout_ms),
        drain_timeout: ms(cli.drain_timeout_ms),
        cluster_refresh: ms(cli.cluster_refresh_ms),
        tls: TlsFiles {
            ca_file: cli.redis_ca_file,
            client_cert: cli.redis_client_cert,
            client_key: cli.redis_client_key,
        },
        access_log: cli.access_log,
    };
    // Handlers first: whoever sees the line below may signal at once, and a
    // SIGTERM before they exist would kill the process instead of stopping it.
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let server = serve(config).await?;
    // Scripts and tests wait for exactly this line.
    println!("listening on http://{}", server.local_addr());
    std::io::stdout().flush()?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            // Logged (and counted) by the library.
            _ = hup.recv() => { let _ = server.reload_tokens(); }
        }
    }
    server.shutdown().await;
    Ok(())
}
