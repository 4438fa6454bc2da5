//! Loading an application: compile each component once (through wasmtime's
//! compilation cache, as Spin does, so a second start of the same app skips
//! the compiler), resolve its configuration, and pre-instantiate it, so a
//! request or message only pays for a fresh instance.

use crate::host::allowed_hosts::AllowedHosts;
use crate::host::{self, inbound_redis::RedisHandlerPre, ComponentEnv, Ctx, Shared};
use crate::manifest::App;
use crate::vars::Variables;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::{Component as WasmComponent, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// A loaded component and what its triggers call.
pub struct Component {
    pub env: Arc<ComponentEnv>,
    /// `wasi:http/incoming-handler`, if an HTTP route names the component.
    pub http: Option<ProxyPre<Ctx>>,
    /// `fermyon:spin/inbound-redis`, if a Redis trigger names it.
    pub redis: Option<RedisHandlerPre<Ctx>>,
}

pub struct Runtime {
    engine: Engine,
    components: HashMap<String, Component>,
    shared: Arc<Shared>,
}

/// Runtime configuration (`--runtime-config-file`): where SQLite databases live.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    #[serde(default)]
    pub sqlite_database: HashMap<String, SqliteDbConfig>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteDbConfig {
    #[serde(rename = "type")]
    pub kind: String,
    pub path: Option<PathBuf>,
}

impl RuntimeConfig {
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else { return Ok(Self::default()) };
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let cfg: RuntimeConfig = toml::from_str(&text).with_context(|| format!("{}: unsupported runtime config", path.display()))?;
        for (name, db) in &cfg.sqlite_database {
            if db.kind != "spin" {
                bail!("sqlite_database.{name}: type {:?} is not supported (only \"spin\")", db.kind);
            }
        }
        Ok(cfg)
    }
}

const MB: usize = 1 << 20;

/// Spin's engine: the pooling allocator with Spin 4's default limits (1000
/// live instances, 4 GiB per memory), and wasmtime's compilation cache in
/// its default place (`~/.cache/wasmtime`, settings from
/// `~/.config/wasmtime/config.toml` if that exists).
fn engine() -> Result<Engine> {
    // As Spin: SPIN_MAX_INSTANCE_COUNT (default 1000) sizes the pool. Under
    // valgrind (bench/profile/run.sh) a small one fits its address space.
    let max: u32 = match std::env::var("SPIN_MAX_INSTANCE_COUNT") {
        Ok(v) => v.parse().with_context(|| format!("SPIN_MAX_INSTANCE_COUNT={v}: expected a number"))?,
        Err(_) => 1000,
    };
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(max)
        .total_memories(max)
        .total_tables(2 * max)
        .total_stacks(max)
        .total_core_instances(4 * max)
        .table_elements(100_000)
        .max_component_instance_size(10 * MB)
        .max_core_instance_size(10 * MB)
        .max_core_instances_per_component(200)
        .max_tables_per_component(64)
        .max_memories_per_component(32)
        .max_tables_per_module(2)
        .max_memories_per_module(2)
        .max_memory_size(4 << 30)
        .linear_memory_keep_resident(2 * MB)
        .table_keep_resident(MB / 2);
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // SPINDLE_PROFILE=perfmap: /tmp/perf-<pid>.map names the compiled guest
    // functions, for `perf report` (bench/profile/run.sh). Spin has no such knob.
    match std::env::var("SPINDLE_PROFILE").as_deref() {
        Ok("perfmap") => {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        Ok("") | Err(_) => {}
        Ok(other) => bail!("SPINDLE_PROFILE={other}: expected perfmap"),
    }
    match wasmtime::Cache::from_file(None) {
        Ok(cache) => {
            config.cache(Some(cache));
        }
        Err(e) => eprintln!("warning: wasmtime's compilation cache is unavailable, every start compiles: {e:#}"),
    }
    Ok(Engine::new(&config)?)
}

impl Runtime {
    pub fn load(app: &App, vars: &Variables, runtime_config: &RuntimeConfig) -> Result<Runtime> {
        let engine = engine()?;
        let mut linker: Linker<Ctx> = Linker::new(&engine);
        host::add_to_linker(&mut linker)?;

        let m = &app.manifest;
        let mut components = HashMap::new();
        for (id, c) in &m.component {
            let has_http = m.trigger.http.iter().any(|t| &t.component == id);
            let has_redis = m.trigger.redis.iter().any(|t| &t.component == id);
            if !has_http && !has_redis {
                continue;
            }
            let path = app.source_path(c);
            let component = WasmComponent::from_file(&engine, &path)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("component {id}: loading {} (did you build it?)", path.display()))?;
            let allowed: Vec<String> = c.allowed_outbound_hosts.iter().map(|h| vars.expand(h)).collect::<Result<_>>()?;
            let mut sqlite = HashMap::new();
            for db in &c.sqlite_databases {
                let path = match runtime_config.sqlite_database.get(db).and_then(|d| d.path.clone()) {
                    Some(p) => p,
                    None if db == "default" => app.dir.join(".spin").join("sqlite_db.db"),
                    None => bail!("component {id}: sqlite database {db:?} is not defined in the runtime config"),
                };
                sqlite.insert(db.clone(), path);
            }
            let env = Arc::new(ComponentEnv {
                id: id.clone(),
                variables: vars.for_component(&c.variables).with_context(|| format!("component {id}"))?,
                allowed: Arc::new(AllowedHosts::parse(&allowed).with_context(|| format!("component {id}"))?),
                sqlite,
                environment: c.environment.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            });
            let pre = linker
                .instantiate_pre(&component)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("component {id}: imports something this runner does not provide"))?;
            let http = match has_http {
                true => Some(ProxyPre::new(pre.clone()).map_err(anyhow::Error::from).with_context(|| format!("component {id}: not an HTTP component"))?),
                false => None,
            };
            let redis = match has_redis {
                true => Some(RedisHandlerPre::new(pre).map_err(anyhow::Error::from).with_context(|| format!("component {id}: not a Redis component"))?),
                false => None,
            };
            components.insert(id.clone(), Component { env, http, redis });
        }
        Ok(Runtime { engine, components, shared: Arc::new(Shared::new()) })
    }

    pub fn component(&self, id: &str) -> Option<&Component> {
        self.components.get(id)
    }

    /// A fresh store for one instance of `component`. `self_origin` is where
    /// the instance's `self.alt` requests go (the HTTP trigger's address).
    pub fn new_store(&self, component: &Component, self_origin: Option<http::uri::Authority>) -> Store<Ctx> {
        Store::new(&self.engine, Ctx::new(component.env.clone(), self.shared.clone(), self_origin))
    }
}
