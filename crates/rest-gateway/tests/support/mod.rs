//! What the end-to-end tests share: real `redis-server`s (one, or a
//! 3-master, 3-replica Redis Cluster) on free loopback ports with no
//! persistence, killed on drop so they go away even when a test fails (the
//! cluster in `cluster.rs`, which the app's suites share); the
//! gateway in-process or as the real binary; an HTTP client.
#![allow(dead_code)] // each test file uses a different part

use std::io::BufRead as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use spindle_rest_gateway::{serve, Config, Server};

mod cluster;
pub use cluster::*;

pub const TOKEN: &str = "test-token-0123456789";

/// A throwaway `redis-server`.
pub struct Redis {
    pub child: Child,
    pub port: u16,
}

impl Redis {
    pub fn start() -> Redis {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Redis {
        let child = Command::new(redis_server())
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
        let redis = Redis { child, port };
        wait_until(
            Duration::from_secs(10),
            &format!("redis-server on {port}"),
            || pings(port),
        );
        redis
    }

    /// A `redis-server` with more settings (a password, TLS, ACL users),
    /// started in `dir`; ready once it accepts connections.
    pub fn start_with(port: u16, args: &[&str], dir: &Path) -> Redis {
        let child = Command::new(redis_server())
            .current_dir(dir)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
        let redis = Redis { child, port };
        wait_until(
            Duration::from_secs(10),
            &format!("redis-server on {port}"),
            || TcpStream::connect(("127.0.0.1", port)).is_ok(),
        );
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A gateway running in this process, and an HTTP client for it.
pub struct Gw {
    pub server: Option<Server>,
    pub base: String,
    pub http: reqwest::Client,
}

impl Gw {
    pub async fn start(config: Config) -> Gw {
        let mut config = config;
        config.listen = "127.0.0.1:0".into();
        let server = serve(config).await.expect("gateway did not start");
        let base = format!("http://{}", server.local_addr());
        Gw {
            server: Some(server),
            base,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(TOKEN)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(TOKEN)
    }

    /// `POST /` with a JSON command; returns status and parsed body.
    pub async fn cmd(&self, command: Value) -> (StatusCode, Value) {
        send(self.post("/").json(&command)).await
    }

    pub async fn pipeline(&self, batch: Value) -> (StatusCode, Value) {
        send(self.post("/pipeline").json(&batch)).await
    }

    pub async fn shutdown(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

pub async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.expect("request failed");
    let status = resp.status();
    let text = resp.text().await.expect("no body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, body)
}

/// Sends a signal to a process (`kill -STOP`, `-CONT`, `-TERM`, `-HUP`).
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill {sig} {pid}");
}

/// The gateway binary, with its first stdout line read and its stderr (the
/// JSON log) kept in a file; killed on drop.
pub struct Binary {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
    _dir: TempDir,
}

impl Binary {
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Binary {
        let dir = TempDir::new("bin");
        let log = dir.path().join("stderr.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_spindle-rest-gateway"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("cannot start the gateway binary");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("unexpected first line {line:?}; log: {log}")
            })
            .to_owned();
        Binary {
            child,
            base,
            log,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most `limit`) for the process to exit; its status.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the gateway did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
