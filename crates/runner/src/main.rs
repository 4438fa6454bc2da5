#![doc = include_str!("../../../docs/runner.md")]

mod app;
mod host;
mod manifest;
mod server;
mod trigger;
mod vars;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

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
    let Cmd::Up(args) = Cli::parse().cmd;
    let variables = args
        .variables
        .iter()
        .map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).with_context(|| format!("--variable {kv}: expected KEY=VALUE")))
        .collect::<Result<_>>()?;
    let opts = server::Options { manifest: args.from, listen: args.listen, variables, runtime_config: args.runtime_config_file };
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(server::up(opts))
}
