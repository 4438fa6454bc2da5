//! The end-to-end harness: real `redis-server`s on free ports, the real
//! runner serving the real `.wasm` files, and HTTP in between.
//!
//! The README's test command builds the runner, the gateway and the
//! components first; the harness only starts processes and cleans them up
//! (on drop, so a failing test leaves nothing behind).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

pub fn bin(name: &str) -> PathBuf {
    let p = target_dir().join("native").join(name);
    assert!(p.exists(), "{} is missing: run the README's test command (scripts/test.sh), which builds it", p.display());
    p
}

pub use cluster::free_port;

fn log_file(name: &str) -> std::fs::File {
    let dir = target_dir().join("e2e-logs");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::File::create(dir.join(format!("{name}.log"))).unwrap()
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start listening on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Which Redis a REST [`Backend`] stands on (`SPINDLE_REDIS`): `node`
/// (the default) or `cluster`, a 3-master, 3-replica [`Cluster`] behind the
/// gateway in `--cluster` mode, with the app on `rate_limit_keys=cluster`.
/// TCP backends stay on one node whatever it says: Spin's outbound Redis
/// follows no `MOVED`, so TCP is no way to a cluster.
pub fn on_cluster() -> bool {
    match std::env::var("SPINDLE_REDIS").as_deref() {
        Ok("cluster") => true,
        Ok("node") | Err(_) => false,
        Ok(other) => panic!("SPINDLE_REDIS={other}: expected node or cluster"),
    }
}

/// A throwaway `redis-server`: no persistence, or an append-only file that
/// survives [`Redis::restart`] ([`Redis::start_durable`]). Or, from
/// [`Redis::start_cluster`], a whole [`Cluster`] behind the same methods:
/// [`Redis::conn`] follows `MOVED` and fans keyless commands out to the
/// masters, and stop and restart take every node down and up.
pub struct Redis {
    /// The node's port; on a cluster, one node's (any node hears a
    /// `PUBLISH` and can carry the worker's trigger).
    pub port: u16,
    child: Option<Child>,
    aof_dir: Option<PathBuf>,
    cluster: Option<Cluster>,
}

impl Redis {
    pub fn start() -> Redis {
        let mut r = Redis { port: free_port(), child: None, aof_dir: None, cluster: None };
        r.restart();
        r
    }

    /// With `appendonly yes` in a temp dir, so data survives a restart, as
    /// in production.
    pub fn start_durable() -> Redis {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("spindle-aof-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Redis { port, child: None, aof_dir: Some(dir), cluster: None };
        r.restart();
        r
    }

    /// A fresh [`Cluster`].
    pub fn start_cluster() -> Redis {
        let cluster = Cluster::start();
        Redis { port: cluster.nodes[0].port, child: None, aof_dir: None, cluster: Some(cluster) }
    }

    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `host:port`, as `redis_host` takes it.
    pub fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port.
    pub fn restart(&mut self) {
        self.stop();
        if let Some(c) = &mut self.cluster {
            c.restart_all();
            return;
        }
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""]);
        match &self.aof_dir {
            None => cmd.args(["--appendonly", "no"]),
            Some(dir) => cmd.args(["--appendonly", "yes", "--appendfsync", "always", "--dir"]).arg(dir),
        };
        let child = cmd
            .stdout(append_log_file(&format!("redis-{}", self.port)))
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        self.child = Some(child);
        wait_for_port(self.port, "redis-server");
    }

    pub fn stop(&mut self) {
        if let Some(c) = &mut self.cluster {
            c.stop_all();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A client of the node on [`Redis::port`] (for pub/sub, which a
    /// cluster carries to every node).
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).unwrap()
    }

    pub async fn conn(&self) -> Conn {
        match &self.cluster {
            None => Conn::Node(self.client().get_multiplexed_async_connection().await.unwrap()),
            Some(_) => Conn::Cluster { masters: None, nodes: HashMap::new(), port: self.port },
        }
    }
}

/// A connection to a [`Redis`]: one node's, or the cluster's. On a cluster
/// a command goes to the node of [`Redis::port`] and follows `MOVED`/`ASK`;
/// keyless commands that read or clear a whole keyspace (`KEYS`, `DBSIZE`,
/// `FLUSHALL`, `INFO`, `SCRIPT`) go to every master, and their replies are
/// joined (arrays concatenated, numbers added, texts one after another).
pub enum Conn {
    Node(redis::aio::MultiplexedConnection),
    /// `masters`: read with `CLUSTER NODES` on first need, over this
    /// connection's own link (so it opens no connection of its own).
    Cluster { masters: Option<Vec<u16>>, nodes: HashMap<u16, redis::aio::MultiplexedConnection>, port: u16 },
}

impl Conn {
    /// The connections to Redis this one opened (one per node it reached).
    pub fn opened(&self) -> u64 {
        match self {
            Conn::Node(_) => 1,
            Conn::Cluster { nodes, .. } => nodes.len() as u64,
        }
    }
}

const FAN_OUT: [&str; 5] = ["KEYS", "DBSIZE", "FLUSHALL", "INFO", "SCRIPT"];

async fn node_conn(nodes: &mut HashMap<u16, redis::aio::MultiplexedConnection>, port: u16) -> redis::RedisResult<&mut redis::aio::MultiplexedConnection> {
    if !nodes.contains_key(&port) {
        let c = redis::Client::open(format!("redis://127.0.0.1:{port}"))?.get_multiplexed_async_connection().await?;
        nodes.insert(port, c);
    }
    Ok(nodes.get_mut(&port).unwrap())
}

/// Where a `MOVED`/`ASK` reply points: (port, ask).
fn redirect(reply: &redis::RedisResult<redis::Value>) -> Option<(u16, bool)> {
    let (code, detail) = match reply {
        Ok(redis::Value::ServerError(e)) => (e.code().to_string(), e.details().unwrap_or("").to_string()),
        Err(e) => (e.code().unwrap_or("").to_string(), e.detail().unwrap_or("").to_string()),
        _ => return None,
    };
    let port = detail.split_ascii_whitespace().nth(1)?.rsplit(':').next()?.parse().ok()?;
    match code.as_str() {
        "MOVED" => Some((port, false)),
        "ASK" => Some((port, true)),
        _ => None,
    }
}

fn join(replies: Vec<redis::Value>) -> redis::Value {
    use redis::Value as V;
    match replies.first() {
        Some(V::Array(_)) => V::Array(replies.into_iter().flat_map(|r| if let V::Array(a) = r { a } else { vec![r] }).collect()),
        Some(V::Int(_)) => V::Int(replies.iter().map(|r| if let V::Int(n) = r { *n } else { 0 }).sum()),
        Some(V::BulkString(_)) | Some(V::VerbatimString { .. }) => {
            let mut text = Vec::new();
            for r in replies {
                match r {
                    V::BulkString(b) => text.extend(b),
                    V::VerbatimString { text: t, .. } => text.extend(t.into_bytes()),
                    _ => {}
                }
                text.extend(b"\r\n");
            }
            V::BulkString(text)
        }
        _ => replies.into_iter().next().unwrap_or(V::Nil),
    }
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        Box::pin(async move {
            let (masters, nodes, port) = match self {
                Conn::Node(c) => return c.req_packed_command(cmd).await,
                Conn::Cluster { masters, nodes, port } => (masters, nodes, *port),
            };
            let name = match cmd.args_iter().next() {
                Some(redis::Arg::Simple(b)) => String::from_utf8_lossy(b).to_ascii_uppercase(),
                _ => String::new(),
            };
            if FAN_OUT.contains(&name.as_str()) {
                if masters.is_none() {
                    let nodes_info: String = redis::cmd("CLUSTER").arg("NODES").query_async(node_conn(nodes, port).await?).await?;
                    *masters = Some(cluster::masters_in(&nodes_info));
                }
                let mut replies = Vec::new();
                for &m in masters.as_deref().unwrap_or_default() {
                    replies.push(node_conn(nodes, m).await?.req_packed_command(cmd).await?);
                }
                return Ok(join(replies));
            }
            let (mut target, mut ask) = (port, false);
            for _ in 0..5 {
                let c = node_conn(nodes, target).await?;
                if ask {
                    let _: redis::Value = redis::cmd("ASKING").query_async(c).await?;
                }
                let reply = c.req_packed_command(cmd).await;
                match redirect(&reply) {
                    Some((p, a)) => (target, ask) = (p, a),
                    None => return reply,
                }
            }
            Err(redis::RedisError::from((redis::ErrorKind::ClientError, "too many redirects")))
        })
    }

    fn req_packed_commands<'a>(&'a mut self, cmd: &'a redis::Pipeline, offset: usize, count: usize) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        Box::pin(async move {
            match self {
                Conn::Node(c) => c.req_packed_commands(cmd, offset, count).await,
                Conn::Cluster { .. } => Err(redis::RedisError::from((redis::ErrorKind::ClientError, "pipelines are not routed on a cluster"))),
            }
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = &self.aof_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A TCP server that accepts every connection and never answers: a Redis
/// that is up but stuck (or a network that swallows replies).
pub struct BlackHole {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl BlackHole {
    pub fn start() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let st = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !st.load(std::sync::atomic::Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => held.push(conn),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        BlackHole { port, stop }
    }

    pub fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// How many connections Redis has accepted so far (`INFO stats`).
/// `total_connections_received` (on a cluster, summed over the masters),
/// and how many of those this call itself opened to ask.
pub async fn connections_received(redis: &Redis) -> (u64, u64) {
    let mut c = redis.conn().await;
    let info: String = redis::cmd("INFO").arg("stats").query_async(&mut c).await.unwrap();
    let total: u64 = info.lines().filter_map(|l| l.strip_prefix("total_connections_received:")?.trim().parse::<u64>().ok()).sum();
    (total, c.opened())
}

/// Which host serves the app in this test run: `SPINDLE_HOST=runner`
/// (spindle-runner, the default) or `SPINDLE_HOST=spin` (real Spin, found as
/// [`spin_bin`] says). One switch for every suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKind {
    Runner,
    Spin,
}

impl HostKind {
    pub fn current() -> HostKind {
        match std::env::var("SPINDLE_HOST").as_deref() {
            Ok("spin") => HostKind::Spin,
            Ok("runner") | Ok("") | Err(_) => HostKind::Runner,
            Ok(other) => panic!("SPINDLE_HOST={other:?}: expected runner or spin"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HostKind::Runner => "runner",
            HostKind::Spin => "spin",
        }
    }
}

/// The Spin CLI: `SPIN_BIN`, else `spin` on `PATH`, else `../shared/bin/spin`
/// next to the repository (where this project's machines keep it).
pub fn spin_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SPIN_BIN").filter(|p| !p.is_empty()) {
        // A relative SPIN_BIN is taken from where the command ran, or else
        // from the repository's root (cargo runs each suite in its package).
        let p = PathBuf::from(p);
        return Some(if p.is_relative() && !p.is_file() { root().join(p) } else { p });
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("spin"))
        .find(|p| p.is_file());
    on_path.or_else(|| Some(root().join("../shared/bin/spin")).filter(|p| p.is_file()))
}

/// An app host process: `spindle-runner up` or `spin up` (per
/// [`HostKind::current`]) serving one manifest. Stopped on drop, with every
/// process it started (Spin runs its trigger as a child process).
pub struct Runner {
    pub port: u16,
    pub kind: HostKind,
    child: Child,
    log_path: PathBuf,
    /// Spin's `--state-dir` (its default SQLite database and component logs).
    state_dir: Option<PathBuf>,
}

/// The app host is the runner or Spin; the name stays for the suites.
pub type Host = Runner;

#[derive(Default, Clone)]
pub struct RunnerOpts<'a> {
    pub variables: Vec<(&'a str, String)>,
    pub env: Vec<(&'a str, String)>,
    pub runtime_config: Option<PathBuf>,
}

static INSTANCE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Runner {
    pub fn start(manifest: &Path, opts: RunnerOpts<'_>) -> Runner {
        Self::try_start(manifest, opts).unwrap_or_else(|e| panic!("{} failed to start: {e}", HostKind::current().name()))
    }

    /// Starts the host and waits until it serves, or returns what it printed if it exits.
    pub fn try_start(manifest: &Path, opts: RunnerOpts<'_>) -> Result<Runner, String> {
        let (mut host, stdout) = Self::spawn(manifest, &opts, true);
        let mut lines = BufReader::new(stdout).lines();
        // Spin prints a few lines (log and database locations) before this one.
        if lines.by_ref().map_while(Result::ok).any(|l| l.starts_with("Serving")) {
            // Keep draining stdout so the host never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            wait_for_port(host.port, host.kind.name());
            Ok(host)
        } else {
            host.stop();
            Err(host.log())
        }
    }

    /// Starts a host process for `manifest` (with `--listen` on a free port
    /// when `http`: an app with only a Redis trigger takes none on Spin).
    fn spawn(manifest: &Path, opts: &RunnerOpts<'_>, http: bool) -> (Runner, std::process::ChildStdout) {
        let kind = HostKind::current();
        let port = if http { free_port() } else { 0 };
        let n = INSTANCE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("{}-{}-{n}-{port}", kind.name(), std::process::id());
        let mut cmd = match kind {
            HostKind::Runner => Command::new(bin("spindle-runner")),
            HostKind::Spin => Command::new(spin_bin().expect(
                "SPINDLE_HOST=spin but no Spin CLI: set SPIN_BIN, put spin on PATH, or provide ../shared/bin/spin",
            )),
        };
        cmd.arg("up").arg("-f").arg(manifest);
        if http {
            cmd.arg("--listen").arg(format!("127.0.0.1:{port}"));
        }
        let state_dir = (kind == HostKind::Spin).then(|| std::env::temp_dir().join(format!("spindle-state-{name}")));
        if let Some(dir) = &state_dir {
            let _ = std::fs::remove_dir_all(dir);
            cmd.arg("--state-dir").arg(dir);
        }
        for (k, v) in &opts.variables {
            cmd.arg("--variable").arg(format!("{k}={v}"));
        }
        if let Some(rc) = &opts.runtime_config {
            cmd.arg("--runtime-config-file").arg(rc);
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        // Its own process group, so stopping it stops Spin's trigger child too.
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let log_path = target_dir().join("e2e-logs").join(format!("{name}.log"));
        let mut child = cmd.stdout(Stdio::piped()).stderr(log_file(&name)).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        (Runner { port, kind, child, log_path, state_dir }, stdout)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// The peak resident memory (VmHWM, KiB) of every process of the host's
    /// process group, summed: the runner alone, or Spin and its trigger child.
    pub fn peak_rss_kib(&self) -> u64 {
        let pgid = self.child.id().to_string();
        let mut total = 0;
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
            // pid (comm) state ppid pgrp …: comm may hold spaces, so count after the last ')'.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
            if rest.split_whitespace().nth(2) != Some(pgid.as_str()) {
                continue;
            }
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            let hwm = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            total += hwm.unwrap_or(0);
        }
        total
    }

    /// What the host has logged so far: its own output, and on Spin the
    /// components' stdout and stderr (which Spin writes under its state dir).
    pub fn log(&self) -> String {
        let mut out = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        if let Some(dir) = &self.state_dir {
            let mut files: Vec<_> = std::fs::read_dir(dir.join("logs")).into_iter().flatten().flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files {
                out.push_str(&std::fs::read_to_string(&f).unwrap_or_default());
            }
        }
        out
    }

    /// Fails when a component read a variable its manifest entry does not
    /// declare (`spindle::spin::SpinVars` logs each such read).
    pub fn assert_every_variable_declared(&self) {
        assert_declared(&self.log());
    }

    /// Whether the host process has exited (and how).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kills the host's whole process group (Spin's trigger child too).
    pub fn stop(&mut self) {
        // SAFETY: kill(2) on the process group made for this child (a group
        // id is not reused while any member lives).
        unsafe { libc_kill(-(self.child.id() as i32), 9) };
        let _ = self.child.wait();
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = &self.state_dir {
            // A failing test keeps Spin's component logs for the post-mortem.
            if std::thread::panicking() {
                eprintln!("{} logs kept in {}", self.kind.name(), dir.join("logs").display());
            } else {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("tests").join("fixtures").join(name)
}

pub fn app_manifest() -> PathBuf {
    root().join("spin.toml")
}

/// Waits, when needed, until the current minute has at least `need` left:
/// a `fixed_window …/60s` policy's windows are aligned to the minute (as
/// @upstash/ratelimit's are), so a test that spends a budget and expects
/// the refusal must not straddle a window's end.
pub async fn inside_one_minute(need: Duration) {
    let into = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64 % 60_000;
    let left = 60_000 - into;
    if left < need.as_millis() as u64 {
        tokio::time::sleep(Duration::from_millis(left + 200)).await;
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// A local Upstash-REST gateway (`spindle-rest-gateway`) in front of a Redis.
pub struct Gateway {
    pub port: u16,
    pub token: String,
    child: Child,
}

impl Gateway {
    pub fn start(redis_url: &str) -> Gateway {
        Gateway::start_with(&["--redis", redis_url])
    }

    /// In front of a Redis Cluster (`--cluster`, every node a seed).
    pub fn start_cluster(cluster: &Cluster) -> Gateway {
        Gateway::start_cluster_with(cluster, &[])
    }

    /// [`Gateway::start_cluster`], with more flags (its pool, its queue).
    pub fn start_cluster_with(cluster: &Cluster, flags: &[&str]) -> Gateway {
        let mut args = vec!["--cluster".to_string()];
        for seed in cluster.seeds() {
            args.extend(["--redis".to_string(), seed]);
        }
        args.extend(flags.iter().map(|f| f.to_string()));
        Gateway::start_with(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// With these flags after `--listen` and `--token`.
    pub fn start_with(flags: &[&str]) -> Gateway {
        let token = format!("tok-{:x}{:x}", std::process::id(), free_port());
        let mut child = Command::new(bin("spindle-rest-gateway"))
            .args(["--listen", "127.0.0.1:0", "--token", &token])
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(log_file(&format!("gateway-{}", free_port())))
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next().expect("gateway printed nothing").unwrap();
        let addr = line.strip_prefix("listening on http://").unwrap_or_else(|| panic!("unexpected gateway output {line:?}"));
        let port = addr.rsplit(':').next().unwrap().parse().unwrap();
        std::thread::spawn(move || lines.for_each(drop));
        Gateway { port, token, child }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `host:port`, as `redis_host` takes it.
    pub fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The Spin variables that send the HTTP app's Redis calls here (REST).
    pub fn app_variables(&self) -> Vec<(&'static str, String)> {
        vec![("redis_scheme", "http".into()), ("redis_host", self.authority()), ("redis_token", self.token.clone())]
    }

    /// The worker's variables for a cluster behind this gateway: its
    /// commands here, in the cluster layout (its trigger's `redis_host` is
    /// a node's, the caller's to choose).
    pub fn cluster_worker_variables(&self) -> Vec<(&'static str, String)> {
        vec![
            ("redis_commands_scheme", "http".into()),
            ("redis_commands_host", self.authority()),
            ("redis_token", self.token.clone()),
            ("rate_limit_keys", "cluster".into()),
        ]
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A 3-master, 3-replica Redis Cluster on loopback (`--cluster-enabled yes`
/// on six free ports, joined by `redis-cli --cluster create … --cluster-replicas 1`),
/// with a node timeout of 1 s; torn down on drop. The same file the
/// gateway's own suites start theirs with, so a test here can find a key's
/// master, wait for its replicas and crash it as those do.
#[path = "../../crates/rest-gateway/tests/support/cluster.rs"]
mod cluster;
pub use cluster::{cli as redis_cli, Cluster, NODE_TIMEOUT_MS};

/// The Upstash REST protocol natively (reqwest and the library's own codec,
/// `spindle::redis::rest`): the library's functions through a gateway, as a
/// guest on REST calls them, e.g. on a [`Cluster`].
#[derive(Clone)]
pub struct RestLink {
    url: String,
    token: String,
    client: reqwest::Client,
}

impl RestLink {
    pub fn new(gateway: &Gateway) -> RestLink {
        RestLink { url: gateway.url(), token: gateway.token.clone(), client: http() }
    }
}

impl spindle::redis::Link for RestLink {
    fn transport(&self) -> spindle::redis::Transport {
        spindle::redis::Transport::Rest
    }

    async fn exec(&self, cmd: &spindle::redis::Cmd) -> Result<spindle::redis::Reply, spindle::redis::Error> {
        use spindle::redis::{rest, Error};
        let body = rest::encode_command(cmd)?;
        let (name, value) = rest::ENCODING_HEADER;
        let r = self.client.post(&self.url).bearer_auth(&self.token).header(name, value).json(&body).send().await;
        let r = r.map_err(|e| Error::Unavailable(e.to_string()))?;
        let status = r.status().as_u16();
        let body = r.bytes().await.map_err(|e| Error::Unavailable(e.to_string()))?;
        rest::decode_single(status, &body)
    }
}

/// How components reach Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// RESP to an IP address: the guest's own client over `wasi:sockets`.
    Tcp,
    /// RESP to a host name (`localhost`): Spin's outbound Redis.
    TcpByName,
    /// The Upstash REST API, through the local gateway.
    Rest,
}

impl Transport {
    /// What `/healthz` reports for it.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp | Transport::TcpByName => "tcp",
            Transport::Rest => "rest",
        }
    }
}

/// A Redis, and for REST a gateway in front of it: what one suite runs against.
pub struct Backend {
    pub transport: Transport,
    pub redis: Redis,
    pub gateway: Option<Gateway>,
}

impl Backend {
    /// One Redis, and for REST the gateway in front of it; for REST under
    /// `SPINDLE_REDIS=cluster` ([`on_cluster`]), a [`Cluster`] and the
    /// gateway in `--cluster` mode.
    pub fn start(transport: Transport) -> Backend {
        if transport == Transport::Rest && on_cluster() {
            let redis = Redis::start_cluster();
            let gateway = Some(Gateway::start_cluster(redis.cluster().unwrap()));
            return Backend { transport, redis, gateway };
        }
        let redis = Redis::start();
        let gateway = (transport == Transport::Rest).then(|| Gateway::start(&redis.url()));
        Backend { transport, redis, gateway }
    }

    pub fn on_cluster(&self) -> bool {
        self.redis.cluster().is_some()
    }

    /// The Spin variables that point the HTTP app at this backend.
    pub fn variables(&self) -> Vec<(&'static str, String)> {
        let mut v = match (&self.gateway, self.transport) {
            (Some(g), _) => g.app_variables(),
            (None, Transport::TcpByName) => vec![("redis_host", format!("localhost:{}", self.redis.port))],
            (None, _) => vec![("redis_host", self.redis.authority())],
        };
        if self.on_cluster() {
            v.push(("rate_limit_keys", "cluster".into()));
        }
        v
    }

    /// The real app (spin.toml) on this backend, with extra variables
    /// (which replace this backend's own of the same name).
    pub fn app(&self, extra: &[(&'static str, String)]) -> Runner {
        Runner::start(&app_manifest(), RunnerOpts { variables: with(self.variables(), extra), ..Default::default() })
    }

    /// The webhook worker app (spin-worker.toml) on this backend's Redis,
    /// supervised as production runs it. On a cluster its trigger listens
    /// on one node (a cluster carries `PUBLISH` to every node) and its
    /// commands go through the gateway.
    pub fn worker(&self, extra: &[(&'static str, String)]) -> Worker {
        let mut variables = vec![("redis_host", self.redis.authority())];
        if let (true, Some(g)) = (self.on_cluster(), &self.gateway) {
            variables.extend(g.cluster_worker_variables());
        }
        Worker::start(self.redis.port, with(variables, extra))
    }

    /// Stops Redis (the gateway, if any, stays up and answers 503).
    pub fn stop_redis(&mut self) {
        self.redis.stop();
    }

    pub fn restart_redis(&mut self) {
        self.redis.restart();
    }
}

/// `base` with `extra` after it, an `extra` replacing a `base` of its name.
fn with(mut base: Vec<(&'static str, String)>, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    base.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    base.extend(extra.iter().cloned());
    base
}

/// Fails on any `undeclared variable` line in a host's log: a component
/// read a variable its manifest entry does not declare, which would
/// silently take its default.
pub fn assert_declared(log: &str) {
    let undeclared: Vec<&str> = log.lines().filter(|l| l.contains("undeclared variable")).collect();
    assert!(undeclared.is_empty(), "components read undeclared variables:\n{}", undeclared.join("\n"));
}

/// The channel the worker's Redis trigger subscribes to (spin-worker.toml).
pub const WORKER_CHANNEL: &str = "spindle:notify:deliver";

/// The webhook worker app under a supervisor, as production runs it
/// (systemd `Restart=always`, a Kubernetes Deployment): Spin stops an app
/// whose Redis trigger loses Redis, so whenever the worker exits it is
/// started again after [`Worker::RESTART_DELAY`]. Stopped on drop.
pub struct Worker {
    shared: std::sync::Arc<std::sync::Mutex<WorkerState>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct WorkerState {
    host: Option<Runner>,
    starts: u32,
    logs: String,
}

impl Worker {
    pub const RESTART_DELAY: Duration = Duration::from_millis(500);

    /// spin-worker.toml with `variables`, supervised; ready once its trigger
    /// is subscribed on the Redis (or cluster node) listening on `port`.
    pub fn start(port: u16, variables: Vec<(&'static str, String)>) -> Worker {
        use std::sync::atomic::Ordering;
        let variables: Vec<(&'static str, String)> = variables;
        let shared = std::sync::Arc::new(std::sync::Mutex::new(WorkerState::default()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, st) = (shared.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let manifest = root().join("spin-worker.toml");
            while !st.load(Ordering::SeqCst) {
                let opts = RunnerOpts { variables: variables.clone(), ..Default::default() };
                let (host, stdout) = Runner::spawn(&manifest, &opts, false);
                std::thread::spawn(move || BufReader::new(stdout).lines().for_each(drop));
                {
                    let mut g = s.lock().unwrap();
                    g.starts += 1;
                    g.host = Some(host);
                }
                loop {
                    std::thread::sleep(Duration::from_millis(50));
                    let mut g = s.lock().unwrap();
                    if st.load(Ordering::SeqCst) {
                        return;
                    }
                    if g.host.as_mut().is_some_and(|h| h.exited().is_some()) {
                        let h = g.host.take().unwrap();
                        let log = h.log();
                        g.logs.push_str(&log);
                        break;
                    }
                }
                std::thread::sleep(Self::RESTART_DELAY);
            }
        });
        let w = Worker { shared, stop, thread: Some(thread) };
        w.wait_subscribed_on(port, Duration::from_secs(30));
        w
    }

    /// Waits until the worker's trigger is subscribed (`PUBSUB NUMSUB`),
    /// which is the same signal on Spin and the runner.
    pub fn wait_subscribed(&self, redis: &Redis, within: Duration) {
        self.wait_subscribed_on(redis.port, within)
    }

    /// [`Worker::wait_subscribed`], on the Redis listening on `port`.
    pub fn wait_subscribed_on(&self, port: u16, within: Duration) {
        let deadline = Instant::now() + within;
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        loop {
            let subs = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(WORKER_CHANNEL)
                .query::<(String, u64)>(&mut client.get_connection().unwrap())
                .map(|(_, n)| n)
                .unwrap_or(0);
            if subs > 0 {
                return;
            }
            assert!(Instant::now() < deadline, "the worker did not subscribe within {within:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How many times the supervisor has started the worker.
    pub fn starts(&self) -> u32 {
        self.shared.lock().unwrap().starts
    }

    /// Everything every run of the worker has logged.
    pub fn log(&self) -> String {
        let g = self.shared.lock().unwrap();
        format!("{}{}", g.logs, g.host.as_ref().map(Runner::log).unwrap_or_default())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.shared.lock().unwrap().host = None;
    }
}

/// Redis's own count of commands executed, from INFO commandstats, with the
/// INFO calls themselves left out, and the connection housekeeping of
/// subscribers (the Redis trigger's SUBSCRIBE, CLIENT SETINFO on connect),
/// which a (re)connecting trigger may do at any moment. Used to assert round
/// trips per request.
pub async fn command_count(redis: &Redis) -> u64 {
    // On a cluster: `cluster|slots` (the gateway's topology refreshes),
    // `cluster|nodes` and `cluster|info` (the harness's own look at it:
    // [`Redis::conn`] finds the masters so), and `replconf` (each replica's
    // ACK to its master, every second).
    const HOUSEKEEPING: &[&str] = &[
        "info",
        "subscribe",
        "psubscribe",
        "unsubscribe",
        "punsubscribe",
        "client|setinfo",
        "client|setname",
        "hello",
        "cluster|slots",
        "cluster|nodes",
        "cluster|info",
        "replconf",
    ];
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(&mut redis.conn().await).await.unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_"))
        .filter(|l| !HOUSEKEEPING.iter().any(|h| l.starts_with(&format!("cmdstat_{h}:"))))
        .filter_map(|l| l.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
        .sum()
}

/// Runs an async test body once per transport:
/// `both_transports!(name, |backend| async move { … })` defines `name::tcp` and `name::rest`.
#[macro_export]
macro_rules! both_transports {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test]
            async fn tcp() {
                ($body)($crate::Backend::start($crate::Transport::Tcp)).await
            }
            #[tokio::test]
            async fn rest() {
                ($body)($crate::Backend::start($crate::Transport::Rest)).await
            }
        }
    };
}

/// A throwaway PostgreSQL server from Debian's `postgresql` package: its own
/// cluster in a temp dir (trust auth, listening on 127.0.0.1 only, fsync
/// off) with one database for the test. PostgreSQL refuses to run as root,
/// so under root the server runs as the `postgres` system user. Stopped and
/// removed on drop.
pub struct Postgres {
    pub port: u16,
    pub db: String,
    dir: PathBuf,
    bin: PathBuf,
    /// uid and gid to run the server as (None: as ourselves).
    user: Option<(u32, u32)>,
    child: Option<Child>,
}

/// Like `log_file`, but a restart appends to what the first start logged.
fn append_log_file(name: &str) -> std::fs::File {
    let dir = target_dir().join("e2e-logs");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("{name}.log"))).unwrap()
}

/// The newest `/usr/lib/postgresql/<ver>/bin` that has `initdb`.
fn postgres_bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut found: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("bin").join("initdb").exists())
        .map(|e| {
            let version = e.file_name().to_string_lossy().split('.').map(|p| p.parse().unwrap_or(0)).collect();
            (version, e.path().join("bin"))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p).expect("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run scripts/test.sh, which installs it")
}

/// The uid and gid of the `postgres` system user, when we are root.
fn postgres_user() -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .expect("running as root needs the postgres system user (the postgresql package creates it)");
    let f: Vec<&str> = line.split(':').collect();
    Some((f[2].parse().unwrap(), f[3].parse().unwrap()))
}

impl Postgres {
    pub fn start() -> Postgres {
        use std::os::unix::process::CommandExt;
        let bin = postgres_bin_dir();
        let user = postgres_user();
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("spindle-pg-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        let mut pg = Postgres { port, db: "spindle_test".into(), dir, bin, user, child: None };
        let initdb_log = log_file(&format!("postgres-{port}-initdb"));
        let mut initdb = Command::new(pg.bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(pg.dir.join("data"))
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
            .current_dir(&pg.dir)
            .stdout(initdb_log.try_clone().unwrap())
            .stderr(initdb_log);
        if let Some((uid, gid)) = user {
            initdb.uid(uid).gid(gid);
        }
        let status = initdb.status().expect("running initdb");
        assert!(status.success(), "initdb failed: see target/e2e-logs/postgres-{port}-initdb.log");
        drop(log_file(&format!("postgres-{port}"))); // a fresh log; restarts append
        pg.restart();
        let out = pg.client("createdb").arg(&pg.db).output().unwrap();
        assert!(out.status.success(), "createdb: {}", String::from_utf8_lossy(&out.stderr));
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, self.db)
    }

    /// A client tool (`psql`, `createdb`, `pg_isready`) aimed at this server.
    fn client(&self, tool: &str) -> Command {
        let mut c = Command::new(self.bin.join(tool));
        c.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres"]);
        c
    }

    /// Runs SQL with psql in the test database; returns the unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        let out = self.client("psql").args(["-d", &self.db, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]).output().unwrap();
        assert!(out.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Starts (again) on the same port and data directory, and waits until it accepts connections.
    pub fn restart(&mut self) {
        use std::os::unix::process::CommandExt;
        self.stop();
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "shared_buffers=16MB", "-c", "max_connections=200"])
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(append_log_file(&format!("postgres-{}", self.port)));
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        self.child = Some(cmd.spawn().expect("starting postgres"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("postgres exited ({status}): see target/e2e-logs/postgres-{}.log", self.port);
            }
            if self.client("pg_isready").arg("-q").status().is_ok_and(|s| s.success()) {
                break;
            }
            assert!(Instant::now() < deadline, "postgres did not become ready on {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (fast shutdown: clients are disconnected), keeping its data.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.wait();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A per-test directory holding a SQLite database and the runtime config
/// that points the runner's `default` database at it; removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let dir = std::env::temp_dir().join(format!("spindle-db-{}-{nanos}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("runtime-config.toml"),
            format!("[sqlite_database.default]\ntype = \"spin\"\npath = \"{}\"\n", dir.join("db.sqlite").display()),
        )
        .unwrap();
        TempDir(dir)
    }

    /// The `--runtime-config-file` for this database.
    pub fn runtime_config(&self) -> PathBuf {
        self.0.join("runtime-config.toml")
    }
}

impl Default for TempDir {
    fn default() -> Self {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How often one command has run so far (`evalsha`, `get`…), from INFO
/// commandstats; commands run inside Lua scripts count too.
pub async fn cmdstat(redis: &Redis, name: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(&mut redis.conn().await).await.unwrap();
    // Summed: on a cluster, the INFO of every master, one after another.
    info.lines()
        .filter(|l| l.starts_with(&format!("cmdstat_{name}:")))
        .filter_map(|l| l.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
        .sum()
}

/// Every command Redis receives from clients, via MONITOR, to count round
/// trips. Commands scripts run inside Redis (`[0 lua]`) are kept apart, and
/// subscriber housekeeping (the Redis trigger's SUBSCRIBE, which may come at
/// any time) is left out, as in [`command_count`].
pub struct Monitor {
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Monitor {
    /// On a cluster, every master's (each in its own order).
    pub async fn start(redis: &Redis) -> Monitor {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let ports = redis.cluster().map(|c| c.masters()).unwrap_or(vec![redis.port]);
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for port in ports {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            s.write_all(b"MONITOR\r\n").await.unwrap();
            let mut r = BufReader::new(s);
            let mut ok = String::new();
            r.read_line(&mut ok).await.unwrap();
            assert_eq!(ok.trim(), "+OK");
            let sink = lines.clone();
            tasks.push(tokio::spawn(async move {
                let mut line = String::new();
                while r.read_line(&mut line).await.unwrap_or(0) > 0 {
                    sink.lock().unwrap().push(std::mem::take(&mut line));
                }
            }));
        }
        Monitor { lines, tasks }
    }

    /// The command names seen since the last call, once in-flight lines have
    /// arrived: (sent by clients, run inside scripts).
    pub async fn take(&self) -> (Vec<String>, Vec<String>) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let lines = std::mem::take(&mut *self.lines.lock().unwrap());
        let name = |l: &String| l.split("] \"").nth(1).and_then(|s| s.split('"').next()).unwrap_or("").to_ascii_uppercase();
        let (lua, sent): (Vec<_>, Vec<_>) = lines.iter().partition(|l| l.contains(" lua] "));
        // CLUSTER: the gateway's own topology refreshes (`CLUSTER SLOTS`).
        let sent = sent.into_iter().map(name).filter(|c| !["SUBSCRIBE", "PSUBSCRIBE", "CLUSTER"].contains(&c.as_str())).collect();
        (sent, lua.into_iter().map(name).collect())
    }

    /// The raw MONITOR lines since the last call, in Redis's order: a
    /// script's own commands (`[0 lua]`) follow the call that ran it.
    pub async fn lines(&self) -> Vec<String> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        std::mem::take(&mut *self.lines.lock().unwrap())
    }

    /// Only the commands sent by clients.
    pub async fn sent(&self) -> Vec<String> {
        self.take().await.0
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

/// A logged-in session stored as connect-redis stores it (as an Express app
/// sharing `secret` would), for user `id`/`username`; returns the `Cookie`
/// header value. The sid starts with `tag`, so suites' sessions differ.
pub async fn express_session(redis: &Redis, secret: &str, tag: &str, id: i64, username: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let sid = format!("{tag}{id}x{now}");
    let value = serde_json::json!({
        "cookie": { "originalMaxAge": 86_400_000u64, "expires": spindle::session::to_iso(now + 86_400_000),
                    "secure": false, "httpOnly": true, "path": "/", "sameSite": "lax" },
        "user": { "id": id, "username": username },
        "spindle": { "created_at": now, "last_seen": now },
    });
    let _: () = redis::cmd("SET")
        .arg(format!("sess:{sid}"))
        .arg(value.to_string())
        .arg("EX")
        .arg(86_400)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    format!("connect.sid={}", spindle::session::cookie::wire_value(&sid, secret))
}
