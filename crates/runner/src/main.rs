//! `spindle-runner up`: a small, faithful local stand-in for `spin up`.
//! What it does and where it differs from Spin 4.0.2 is in [`server`] and
//! the modules it uses, and in the README's "The local runner".
//!
//! Modules depend on each other in one direction only (each imports only
//! from modules to its right):
//!
//! ```text
//! main → server → trigger → app → host → manifest
//!                                  app → vars → manifest
//! ```
//!
//! - [`manifest`]: `spin.toml` (manifest v2), the subset supported; imports
//!   nothing from the crate;
//! - [`vars`]: application variables and `{{ name }}` templates (manifest);
//! - [`host`]: what an instance can reach, one module per capability, as
//!   Spin's factors (manifest, for variable names);
//! - [`app`]: the engine, the compiled components, a store per instance
//!   (host, vars, manifest);
//! - [`trigger`]: what calls a component, HTTP and Redis (app, vars,
//!   manifest);
//! - [`server`]: start-up, the accept loop, shutdown (trigger, app, vars,
//!   manifest);
//! - `main`: the command line (server).

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
