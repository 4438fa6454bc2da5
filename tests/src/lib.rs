//! The end-to-end harness: real `redis-server`s on free ports, the real
//! runner serving the real `.wasm` files, and HTTP in between.
//!
//! The README's test command builds the runner, the gateway and the
//! components first; the harness only starts processes and cleans them up
//! (on drop, so a failing test leaves nothing behind).

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
    let p = target_dir().join("release").join(name);
    assert!(p.exists(), "{} is missing: run the README's test command (scripts/test.sh), which builds it", p.display());
    p
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

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

/// A throwaway `redis-server` with no persistence.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Redis {
        let mut r = Redis { port: free_port(), child: None };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(log_file(&format!("redis-{}", self.port)))
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        self.child = Some(child);
        wait_for_port(self.port, "redis-server");
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).unwrap()
    }

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        self.client().get_multiplexed_async_connection().await.unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `spindle-runner up` process.
pub struct Runner {
    pub port: u16,
    child: Child,
}

#[derive(Default, Clone)]
pub struct RunnerOpts<'a> {
    pub variables: Vec<(&'a str, String)>,
    pub env: Vec<(&'a str, String)>,
    pub runtime_config: Option<PathBuf>,
}

impl Runner {
    pub fn start(manifest: &Path, opts: RunnerOpts<'_>) -> Runner {
        Self::try_start(manifest, opts).unwrap_or_else(|e| panic!("runner failed to start: {e}"))
    }

    /// Starts the runner and waits until it serves, or returns what it printed if it exits.
    pub fn try_start(manifest: &Path, opts: RunnerOpts<'_>) -> Result<Runner, String> {
        let port = free_port();
        let mut cmd = Command::new(bin("spindle-runner"));
        cmd.arg("up").arg("-f").arg(manifest).arg("--listen").arg(format!("127.0.0.1:{port}"));
        for (k, v) in &opts.variables {
            cmd.arg("--variable").arg(format!("{k}={v}"));
        }
        if let Some(rc) = &opts.runtime_config {
            cmd.arg("--runtime-config-file").arg(rc);
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let log_path = target_dir().join("e2e-logs").join(format!("runner-{port}.log"));
        let mut child = cmd.stdout(Stdio::piped()).stderr(log_file(&format!("runner-{port}"))).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        match lines.next() {
            Some(Ok(l)) if l.starts_with("Serving") => {
                // Keep draining stdout so the runner never blocks on a full pipe.
                std::thread::spawn(move || lines.for_each(drop));
                wait_for_port(port, "runner");
                Ok(Runner { port, child })
            }
            _ => {
                let _ = child.wait();
                Err(std::fs::read_to_string(&log_path).unwrap_or_default())
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// What the runner has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(target_dir().join("e2e-logs").join(format!("runner-{}.log", self.port))).unwrap_or_default()
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("tests").join("fixtures").join(name)
}

pub fn app_manifest() -> PathBuf {
    root().join("spin.toml")
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
        let token = format!("tok-{:x}{:x}", std::process::id(), free_port());
        let mut child = Command::new(bin("spindle-rest-gateway"))
            .args(["--listen", "127.0.0.1:0", "--redis", redis_url, "--token", &token])
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
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How components reach Redis: Spin outbound Redis, or the REST API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Rest,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
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
    pub fn start(transport: Transport) -> Backend {
        let redis = Redis::start();
        let gateway = (transport == Transport::Rest).then(|| Gateway::start(&redis.url()));
        Backend { transport, redis, gateway }
    }

    /// The Spin variables that point the app at this backend.
    pub fn variables(&self) -> Vec<(&'static str, String)> {
        match &self.gateway {
            None => vec![("redis_url", self.redis.url()), ("redis_origin", self.redis.url())],
            Some(g) => vec![("redis_url", g.url()), ("redis_origin", g.url()), ("redis_token", g.token.clone())],
        }
    }

    /// The real app (spin.toml) on this backend, with extra variables.
    pub fn app(&self, extra: &[(&'static str, String)]) -> Runner {
        let mut variables = self.variables();
        variables.extend(extra.iter().cloned());
        Runner::start(&app_manifest(), RunnerOpts { variables, ..Default::default() })
    }

    /// Stops Redis (the gateway, if any, stays up and answers 503).
    pub fn stop_redis(&mut self) {
        self.redis.stop();
    }

    pub fn restart_redis(&mut self) {
        self.redis.restart();
    }
}

/// Redis's own count of commands executed, from INFO commandstats, with the
/// INFO calls themselves left out. Used to assert round trips per request.
pub async fn command_count(redis: &Redis) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(&mut redis.conn().await).await.unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_") && !l.starts_with("cmdstat_info:"))
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
