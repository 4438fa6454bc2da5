//! Loading an application: compile each component once, resolve its config,
//! and pre-instantiate it, so each request only pays for a fresh instance.

use crate::host::{self, ComponentEnv, Ctx, SqliteDbs};
use crate::manifest::{App, Route as RouteDecl};
use crate::outbound::AllowedHosts;
use crate::postgres_host::PgPool;
use crate::redis_pool::RedisPool;
use crate::routes::{Route, Router};
use crate::vars::Variables;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::WasiHttpCtx;

pub struct Loaded {
    pub env: Arc<ComponentEnv>,
    pub http: Option<ProxyPre<Ctx>>,
    pub redis: Option<host::trigger::RedisHandlerPre<Ctx>>,
}

pub struct Runtime {
    pub engine: Engine,
    pub router: Router,
    pub components: HashMap<String, Loaded>,
    pub redis: Arc<RedisPool>,
    pub dbs: Arc<SqliteDbs>,
    pub pg: Arc<PgPool>,
    pub vars: Variables,
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

fn engine() -> Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(1000)
        .total_core_instances(2000)
        .total_memories(1000)
        .total_tables(2000)
        .max_memory_size(256 << 20);
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(Engine::new(&config)?)
}

impl Runtime {
    pub fn load(app: &App, vars: Variables, runtime_config: &RuntimeConfig) -> Result<Runtime> {
        let engine = engine()?;
        let mut linker: Linker<Ctx> = Linker::new(&engine);
        host::add_to_linker(&mut linker)?;

        let m = &app.manifest;
        let mut routes = Vec::new();
        for t in &m.trigger.http {
            match &t.route {
                RouteDecl::Path(p) => routes.push(Route::parse(p, &t.component)?),
                RouteDecl::Private(p) if p.private => {}
                RouteDecl::Private(_) => bail!("route {{ private = false }} is not valid"),
            }
        }
        let router = Router::new(routes)?;

        let mut components = HashMap::new();
        for (id, c) in &m.component {
            let has_http = m.trigger.http.iter().any(|t| &t.component == id);
            let has_redis = m.trigger.redis.iter().any(|t| &t.component == id);
            if !has_http && !has_redis {
                continue;
            }
            let path = app.source_path(c);
            let component = Component::from_file(&engine, &path)
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
                allowed: AllowedHosts::parse(&allowed).with_context(|| format!("component {id}"))?,
                sqlite,
                environment: c.environment.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            });
            let pre = linker
                .instantiate_pre(&component)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("component {id}: imports something this runner does not provide"))?;
            let http = if has_http {
                Some(ProxyPre::new(pre.clone()).map_err(anyhow::Error::from).with_context(|| format!("component {id}: not an HTTP component"))?)
            } else {
                None
            };
            let redis = if has_redis {
                Some(host::trigger::RedisHandlerPre::new(pre).map_err(anyhow::Error::from).with_context(|| format!("component {id}: not a Redis component"))?)
            } else {
                None
            };
            components.insert(id.clone(), Loaded { env, http, redis });
        }
        Ok(Runtime { engine, router, components, redis: Arc::new(RedisPool::default()), dbs: Arc::default(), pg: Arc::default(), vars })
    }

    pub fn new_store(&self, loaded: &Loaded) -> Store<Ctx> {
        let env = loaded.env.clone();
        let mut wasi = WasiCtx::builder();
        wasi.stdout(crate::log::Tagged::new(&env.id))
            .stderr(crate::log::Tagged::new(&env.id))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        for (k, v) in &env.environment {
            wasi.env(k, v);
        }
        let ctx = Ctx {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: crate::http_trigger::OutboundHooks { component: env.id.clone(), allowed: env.allowed.clone() },
            env,
            redis: self.redis.clone(),
            dbs: self.dbs.clone(),
            pg: self.pg.clone(),
        };
        Store::new(&self.engine, ctx)
    }
}
