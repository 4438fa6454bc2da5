//! `spindle-rest-gateway`: serves the Upstash Redis REST API in front of a
//! real Redis. All logic lives in the library; this is flags and signals.

use std::io::Write as _;
use std::time::Duration;

use clap::Parser;
use spindle_rest_gateway::{serve, Config};

/// An Upstash-REST-compatible gateway in front of a real Redis, for local
/// REST mode and tests.
#[derive(Parser, Debug)]
#[command(name = "spindle-rest-gateway", version, about)]
struct Cli {
    /// Address to listen on (port 0: pick a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8079")]
    listen: String,
    /// Redis to forward to.
    #[arg(long, value_name = "URL", default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// Bearer token clients must send.
    #[arg(long, env = "SPINDLE_REST_TOKEN", hide_env_values = true)]
    token: String,
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config {
        listen: cli.listen,
        redis_url: cli.redis,
        token: cli.token,
        max_body_bytes: cli.max_body_bytes,
        redis_timeout: Duration::from_millis(cli.redis_timeout_ms),
        command_timeout: Duration::from_millis(cli.command_timeout_ms),
    };
    // Handlers first: whoever sees the line below may signal at once, and a
    // SIGTERM before they exist would kill the process instead of stopping it.
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?);
    let server = serve(config).await?;
    // Scripts and tests wait for exactly this line.
    println!("listening on http://{}", server.local_addr());
    std::io::stdout().flush()?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    server.shutdown().await;
    Ok(())
}
