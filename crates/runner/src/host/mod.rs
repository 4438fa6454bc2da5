//! The host: what one component instance can reach, one module per
//! capability, as Spin splits them into factor crates. Each module owns its
//! state (a pool, a client, a database handle) and implements its interface
//! on [`Ctx`], the store data of one instance:
//! - [`variables`]: `fermyon:spin/variables@2.0.0`;
//! - [`redis`]: `fermyon:spin/redis@2.0.0`, a new connection per `open`;
//! - [`sqlite`]: `fermyon:spin/sqlite@2.0.0`;
//! - [`postgres`]: `spin:postgres/postgres@3.0.0`, pooled;
//! - [`outbound_http`]: `wasi:http/outgoing-handler`, pooled;
//! - [`sockets`]: `wasi:sockets`, checked against `allowed_outbound_hosts`;
//! - [`stdio`]: component stdout/stderr, tagged lines on stderr;
//! - [`allowed_hosts`]: the `allowed_outbound_hosts` rules all of them check.
//!
//! The rest of WASI 0.2 (clocks, random, filesystem without preopens,
//! environment) is wasmtime-wasi's.

pub mod allowed_hosts;
pub mod outbound_http;
pub mod postgres;
pub mod redis;
pub mod sockets;
pub mod sqlite;
pub mod stdio;
pub mod variables;

use allowed_hosts::AllowedHosts;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

wasmtime::component::bindgen!({
    path: "wit",
    world: "spindle:runner/host",
    imports: { default: async | trappable },
    with: {
        "fermyon:spin/redis@2.0.0.connection": ::redis::aio::MultiplexedConnection,
        "fermyon:spin/sqlite@2.0.0.connection": sqlite::Connection,
        "spin:postgres/postgres@3.0.0.connection": postgres::PgConn,
    },
});

/// The Redis trigger's export, `fermyon:spin/inbound-redis`.
pub mod inbound_redis {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "spindle:runner/redis-handler",
        exports: { default: async },
    });
}

/// One component's configuration, resolved at start-up and shared by all
/// its instances.
pub struct ComponentEnv {
    pub id: String,
    pub variables: HashMap<String, String>,
    pub allowed: Arc<AllowedHosts>,
    /// SQLite database label → file.
    pub sqlite: HashMap<String, PathBuf>,
    pub environment: Vec<(String, String)>,
}

/// What every instance of every component shares: the connection pools.
pub struct Shared {
    pub sqlite: sqlite::Databases,
    pub postgres: Arc<postgres::PgPool>,
    pub http: Arc<outbound_http::Clients>,
}

impl Shared {
    pub fn new() -> Shared {
        Shared { sqlite: Default::default(), postgres: Default::default(), http: Arc::new(outbound_http::Clients::new()) }
    }
}

/// The store data of one instance.
pub struct Ctx {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: outbound_http::Hooks,
    env: Arc<ComponentEnv>,
    shared: Arc<Shared>,
}

impl Ctx {
    /// `self_origin`: the HTTP trigger's listen address, for `self.alt` requests.
    pub fn new(env: Arc<ComponentEnv>, shared: Arc<Shared>, self_origin: Option<http::uri::Authority>) -> Ctx {
        let mut wasi = WasiCtx::builder();
        stdio::configure(&mut wasi, &env.id);
        sockets::configure(&mut wasi, &env.allowed);
        for (k, v) in &env.environment {
            wasi.env(k, v);
        }
        let hooks = outbound_http::Hooks { allowed: env.allowed.clone(), clients: shared.http.clone(), self_origin };
        Ctx { wasi: wasi.build(), http: WasiHttpCtx::new(), table: ResourceTable::new(), hooks, env, shared }
    }
}

impl WasiView for Ctx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for Ctx {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

pub fn add_to_linker(linker: &mut Linker<Ctx>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    Host_::add_to_linker::<Ctx, HasSelf<Ctx>>(linker, |c| c)?;
    Ok(())
}
