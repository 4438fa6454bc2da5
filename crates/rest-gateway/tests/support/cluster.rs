//! A 3-master, 3-replica Redis Cluster on loopback, and the few helpers it
//! needs. Self-contained (std and serde_json), so the app's end-to-end
//! suites (`tests/src/lib.rs`) use this same file through `#[path]`: one
//! copy of how a cluster is started, inspected and crashed.
#![allow(dead_code)] // each includer uses a different part

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A port nothing listens on, and one this process has not handed out
/// before: tests run in parallel, and a cluster takes 12 ports at once.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free port");
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub fn redis_server() -> String {
    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

/// A scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("gw-{tag}-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Answers PING on `port` (a raw RESP probe, no client library).
pub fn pings(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// Polls `ok` every 20 ms until it holds; panics after `limit`.
pub fn wait_until(limit: Duration, what: &str, ok: impl FnMut() -> bool) {
    wait_until_or(limit, what, ok, String::new)
}

/// [`wait_until`], showing `details()` when it gives up.
pub fn wait_until_or(
    limit: Duration,
    what: &str,
    mut ok: impl FnMut() -> bool,
    details: impl Fn() -> String,
) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            details()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `redis-cli -p PORT args...`, its stdout.
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("cannot run redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The port of the master serving `slot`, as the node on `node` sees it.
pub fn slot_owner(node: u16, slot: u16) -> Option<u16> {
    let slots = cli(node, &["--json", "CLUSTER", "SLOTS"]);
    let slots: Value = serde_json::from_str(&slots).ok()?;
    slots.as_array()?.iter().find_map(|range| {
        let (start, end) = (range[0].as_u64()?, range[1].as_u64()?);
        (start..=end)
            .contains(&u64::from(slot))
            .then(|| range[2][1].as_u64().map(|p| p as u16))?
    })
}

/// One node of a [`Cluster`].
pub struct Node {
    pub port: u16,
    bus: u16,
    child: Option<Child>,
}

/// One cluster node on `port` (its bus on `bus`), its config, data and log
/// in `dir`: started again with the same `dir`, it rejoins as what it was.
fn spawn_node(dir: &Path, port: u16, bus: u16) -> Child {
    Command::new(redis_server())
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--cluster-enabled", "yes", "--cluster-port", &bus.to_string()])
        .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
        .arg("--cluster-config-file")
        .arg(dir.join(format!("nodes-{port}.conf")))
        .arg("--dir")
        .arg(dir)
        .args(["--save", "", "--appendonly", "no"])
        .arg("--logfile")
        .arg(dir.join(format!("{port}.log")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start redis-server")
}

/// The ports of the masters that serve slots, from a `CLUSTER NODES` reply.
pub fn masters_in(nodes: &str) -> Vec<u16> {
    let mut ports: Vec<u16> = nodes
        .lines()
        .filter(|l| {
            let flags = l.split(' ').nth(2).unwrap_or("");
            flags.contains("master") && !flags.contains("fail")
        })
        .filter(|l| l.split(' ').nth(8).is_some()) // serves slots
        .filter_map(|l| l.split(' ').nth(1)?.split(['@', ':']).nth(1)?.parse().ok())
        .collect();
    ports.sort_unstable();
    ports
}

/// A 3-master, 3-replica Redis Cluster on loopback, torn down on drop.
///
/// Started as the cluster tutorial does (`--cluster-enabled yes`, then
/// `redis-cli --cluster create … --cluster-replicas 1`), with the bus on a
/// port of its own (`--cluster-port`) and a node timeout of 1 s, so a
/// failover takes seconds rather than the default 15 s timeout's ~30 s.
pub struct Cluster {
    pub nodes: Vec<Node>,
    dir: TempDir,
}

pub const NODE_TIMEOUT_MS: u64 = 1000;

impl Cluster {
    pub fn start() -> Cluster {
        let mut attempt = 1;
        let cluster = loop {
            let dir = TempDir::new("cluster");
            let nodes = (0..6)
                .map(|_| {
                    let (port, bus) = (free_port(), free_port());
                    let child = Some(spawn_node(dir.path(), port, bus));
                    Node { port, bus, child }
                })
                .collect();
            let mut cluster = Cluster { nodes, dir };
            match cluster.listening() {
                Ok(()) => break cluster,
                // Another process took a port between free_port and the
                // node's bind (a host or a gateway binding port 0): again,
                // on other ports.
                Err(log) if attempt < 3 => eprintln!("a cluster node did not start, again ({log:.300})"),
                Err(log) => panic!("cluster nodes did not start, 3 times: {log}"),
            }
            attempt += 1;
        };
        let addrs: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("cannot run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        cluster.wait_healthy(Duration::from_secs(30));
        cluster
    }

    /// Waits until every node answers; the log of the first that exits.
    fn listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        for i in 0..self.nodes.len() {
            let port = self.nodes[i].port;
            while !pings(port) {
                let exited = self.nodes[i].child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
                if exited || Instant::now() > deadline {
                    return Err(self.log(port));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    fn wait_listening(&self) {
        for node in self.live() {
            let log = self.dir.path().join(format!("{}.log", node.port));
            let what = format!("cluster node {} to start", node.port);
            wait_until_or(
                Duration::from_secs(10),
                &what,
                || pings(node.port),
                || std::fs::read_to_string(&log).unwrap_or_default(),
            );
        }
    }

    /// Stops every node: the whole cluster is down.
    pub fn stop_all(&mut self) {
        let ports: Vec<u16> = self.live().map(|n| n.port).collect();
        for port in ports {
            self.kill(port);
        }
    }

    /// Starts every stopped node again, on its ports and with its config
    /// (no data: persistence is off), and waits until the cluster is healthy.
    pub fn restart_all(&mut self) {
        for node in &mut self.nodes {
            if node.child.is_none() {
                node.child = Some(spawn_node(self.dir.path(), node.port, node.bus));
            }
        }
        self.wait_listening();
        self.wait_healthy(Duration::from_secs(30));
    }

    /// Waits until every live node says `cluster_state:ok`, there are 3
    /// masters, and every other live node is a replica whose link to its
    /// master is up (so that a failover can promote it).
    pub fn wait_healthy(&self, limit: Duration) {
        wait_until(limit, "a healthy cluster", || {
            let live = self.live().count();
            self.live()
                .all(|n| cli(n.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
                && self.masters().len() == 3
                && self
                    .live()
                    .filter(|n| {
                        cli(n.port, &["INFO", "replication"]).contains("master_link_status:up")
                    })
                    .count()
                    == live - 3
        });
    }

    pub fn live(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.child.is_some())
    }

    pub fn seeds(&self) -> Vec<String> {
        self.live()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// Ports of the masters, as a live node sees them.
    pub fn masters(&self) -> Vec<u16> {
        let Some(node) = self.live().next() else {
            return Vec::new();
        };
        masters_in(&cli(node.port, &["CLUSTER", "NODES"]))
    }

    /// The port of the master serving `key`, asked directly of the nodes.
    pub fn master_of(&self, key: &str) -> u16 {
        let node = self.live().next().expect("no live node").port;
        let slot: u16 = cli(node, &["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .unwrap();
        self.master_of_slot(slot)
    }

    pub fn master_of_slot(&self, slot: u16) -> u16 {
        slot_owner(self.live().next().expect("no live node").port, slot)
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }

    /// Waits until every replica of the master on `port` has everything the
    /// master had when called (what `WAIT` does, seen from outside: `WAIT`
    /// only counts the calling connection's own writes).
    pub fn wait_replicated(&self, port: u16) {
        let info = cli(port, &["INFO", "replication"]);
        let field = |info: &str, name: &str| -> u64 {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or(0)
        };
        let target = field(&info, "master_repl_offset:");
        wait_until(Duration::from_secs(10), "replicas to catch up", || {
            let info = cli(port, &["INFO", "replication"]);
            let offsets: Vec<u64> = info
                .lines()
                .filter(|l| l.starts_with("slave"))
                .filter_map(|l| {
                    l.split(',')
                        .find_map(|f| f.strip_prefix("offset=")?.parse().ok())
                })
                .collect();
            !offsets.is_empty() && offsets.iter().all(|&o| o >= target)
        });
    }

    /// The log of the node on `port`.
    pub fn log(&self, port: u16) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{port}.log"))).unwrap_or_default()
    }

    /// The node id of the node on `port`.
    pub fn id(&self, port: u16) -> String {
        cli(port, &["CLUSTER", "MYID"]).trim().to_owned()
    }

    /// A replica of the master on `port`.
    pub fn replica_of(&self, port: u16) -> u16 {
        self.live()
            .map(|n| n.port)
            .find(|&p| cli(p, &["INFO", "replication"]).contains(&format!("master_port:{port}\r")))
            .unwrap_or_else(|| panic!("no replica of {port}"))
    }

    /// SIGKILLs the node on `port`: no goodbye, as a crash.
    pub fn kill(&mut self, port: u16) {
        let node = self.nodes.iter_mut().find(|n| n.port == port).unwrap();
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
