//! A Redis Cluster behind the gateway.
//!
//! The gateway keeps the cluster's slot map (`topology`), one `Link` (one
//! multiplexed connection) per master, and routes every command by its
//! hash slot (`routing`). A batch (a pipeline, or one command) becomes one
//! sub-pipeline per master, sent concurrently, each in request order, so
//! the commands of one slot run in the order the client sent them; the
//! answers are put back in request order.
//!
//! Redirects are followed per command: MOVED updates the map for that
//! slot (and triggers a full refresh in the background) and re-sends the
//! command to the new master; ASK re-sends it once, after ASKING, to the
//! importing master; TRYAGAIN is re-sent after a short pause. Every command
//! of a slot that moved gets MOVED, so the re-sent ones keep their order.
//!
//! Failover: when a master cannot be reached, the map is read again at once
//! (at most every `MIN_REFRESH_INTERVAL`), and commands for its slots are
//! re-sent if another master now serves them; until the cluster has
//! promoted a replica they fail fast with a 503. The map is also re-read
//! every `--cluster-refresh-ms`.
//!
//! Not done with redis-rs's cluster client on purpose: its pipelines fail
//! as a whole on the first error reply (Upstash answers per command) and
//! re-send a whole pipeline on a redirect, running again the commands that
//! had already run; and they cannot span slots.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use futures_util::future::{join_all, select_ok, FutureExt as _};
use redis::{ConnectionAddr, ConnectionInfo, Value};
use serde_json::json;

use crate::command::shown_name;
use crate::link::{Link, Unavailable};
use crate::log::{self, Level, Throttle};
use crate::metrics::{Event, Metrics};
use crate::reply::{error_text, error_value};
use crate::routing::{self, Args, FanOut, Route, Split, SLOTS};
use crate::topology::Topology;
use crate::upstream::{Answer, Connector, Health, TxError};

/// Most times one command is sent (the first, plus redirects and re-sends).
const MAX_ROUNDS: usize = 6;
/// Pause before re-sending after TRYAGAIN (a multi-key command during a
/// slot migration).
const TRYAGAIN_DELAY: Duration = Duration::from_millis(25);
/// Refreshes triggered by errors are at most this frequent.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(250);
/// How many nodes are asked for the map at once.
const REFRESH_FAN_OUT: usize = 3;

const ASKING: &[Cow<'static, [u8]>] = &[Cow::Borrowed(b"ASKING")];
const CLUSTER_SLOTS: &[Cow<'static, [u8]>] = &[Cow::Borrowed(b"CLUSTER"), Cow::Borrowed(b"SLOTS")];
const PING: &[Cow<'static, [u8]>] = &[Cow::Borrowed(b"PING")];

static REFRESH_FAILED_LOG: Throttle = Throttle::new(Duration::from_secs(10));

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `host:port` of a connection address (brackets around an IPv6 host).
fn address(addr: &ConnectionAddr) -> Option<String> {
    let (host, port) = match addr {
        ConnectionAddr::Tcp(host, port) => (host, port),
        ConnectionAddr::TcpTls { host, port, .. } => (host, port),
        ConnectionAddr::Unix(_) => return None,
    };
    Some(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

fn split_address(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host, port.parse().ok()?))
}

/// A redirect in a reply.
#[derive(Debug, PartialEq, Eq)]
enum Redirect {
    Moved(u16, String),
    Ask(String),
    TryAgain,
}

/// Reads MOVED/ASK/TRYAGAIN from a reply that came from `from`. Redis
/// leaves the host out (`MOVED 3999 :6381`) when it is the same one.
fn redirect(reply: &Value, from: &str) -> Option<Redirect> {
    let Value::ServerError(err) = reply else {
        return None;
    };
    let target = || -> Option<(u16, String)> {
        let (slot, addr) = err.details()?.trim().split_once(' ')?;
        let addr = match addr.strip_prefix(':') {
            Some(port) => format!("{}:{port}", from.rsplit_once(':')?.0),
            None => addr.to_owned(),
        };
        Some((slot.parse().ok()?, addr))
    };
    match err.code() {
        "MOVED" => target().map(|(slot, addr)| Redirect::Moved(slot, addr)),
        "ASK" => target().map(|(_, addr)| Redirect::Ask(addr)),
        "TRYAGAIN" => Some(Redirect::TryAgain),
        _ => None,
    }
}

/// Where a piece goes next.
#[derive(Clone, Debug, PartialEq, Eq)]
enum To {
    /// The master of the piece's slot.
    Slot,
    /// Any master but these (tried and unreachable).
    Keyless(Vec<String>),
    /// This node (after a redirect, or one master of a fan-out).
    Node(String),
}

/// A command, or one piece of a split or fanned-out command, and where it
/// goes.
struct Piece<'c> {
    args: Cow<'c, [Cow<'c, [u8]>]>,
    slot: Option<u16>,
    to: To,
    /// Send ASKING first (after an ASK redirect).
    asking: bool,
}

/// How a command's answer is made from its pieces' answers.
enum Plan {
    One(usize),
    /// Pieces and the argument indices each one carries.
    Split(Split, Vec<(usize, Vec<usize>)>),
    FanOut(FanOut, Vec<usize>),
}

pub(crate) struct Cluster {
    /// Addresses of the seeds, and the connection settings (credentials,
    /// TLS) every node is reached with: the first seed's.
    seeds: Vec<String>,
    template: ConnectionInfo,
    connector: Connector,
    timeout: Duration,
    scripts: Arc<crate::scripts::Scripts>,
    metrics: Arc<Metrics>,
    topology: RwLock<Arc<Topology>>,
    links: Mutex<HashMap<String, Arc<Link>>>,
    /// Serialises refreshes; `refreshes` counts the finished ones, so that
    /// a caller who waited for another's refresh does not repeat it.
    refreshing: tokio::sync::Mutex<()>,
    refreshes: AtomicU64,
    last_refresh: Mutex<Option<Instant>>,
    last_error: Mutex<String>,
    next_keyless: AtomicUsize,
}

impl Cluster {
    pub(crate) fn new(
        seeds: Vec<ConnectionInfo>,
        connector: Connector,
        timeout: Duration,
        scripts: Arc<crate::scripts::Scripts>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let template = seeds
            .first()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no seed given"))?;
        let seed_addrs = seeds
            .iter()
            .map(|s| {
                address(&s.addr)
                    .ok_or_else(|| anyhow::anyhow!("a cluster seed must be a TCP address"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Cluster {
            seeds: seed_addrs,
            template,
            connector,
            timeout,
            scripts,
            metrics,
            topology: RwLock::new(Arc::new(Topology::empty())),
            links: Mutex::new(HashMap::new()),
            refreshing: tokio::sync::Mutex::new(()),
            refreshes: AtomicU64::new(0),
            last_refresh: Mutex::new(None),
            last_error: Mutex::new("the cluster's layout has not been read yet".into()),
            next_keyless: AtomicUsize::new(0),
        })
    }

    fn snapshot(&self) -> Arc<Topology> {
        self.topology
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Masters and covered slots, for the metrics.
    pub(crate) fn gauges(&self) -> (usize, usize) {
        let t = self.snapshot();
        (t.masters().len(), t.covered())
    }

    /// The link to a node, opened on first use (lazily: no connection yet).
    fn link(&self, addr: &str) -> Result<Arc<Link>, Unavailable> {
        if let Some(link) = lock(&self.links).get(addr) {
            return Ok(link.clone());
        }
        let (host, port) = split_address(addr)
            .ok_or_else(|| Unavailable::new("Redis Cluster sent a bad node address"))?;
        let mut info = self.template.clone();
        info.addr = match info.addr {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure,
                tls_params,
            },
            _ => ConnectionAddr::Tcp(host.to_owned(), port),
        };
        let client = self
            .connector
            .client(info)
            .map_err(|e| Unavailable::new(format!("Redis is unavailable: {e}")))?;
        let link = Arc::new(Link::new(
            client,
            self.timeout,
            self.scripts.clone(),
            self.metrics.clone(),
        ));
        Ok(lock(&self.links)
            .entry(addr.to_owned())
            .or_insert(link)
            .clone())
    }

    /// Reads the slot map again, unless another caller just did. `force`
    /// skips the minimum interval (periodic refreshes, the first one).
    pub(crate) async fn refresh(&self, force: bool) -> Result<(), String> {
        let seen = self.refreshes.load(Ordering::Acquire);
        let _guard = self.refreshing.lock().await;
        if self.refreshes.load(Ordering::Acquire) != seen {
            return Ok(());
        }
        let recent = lock(&self.last_refresh).is_some_and(|t| t.elapsed() < MIN_REFRESH_INTERVAL);
        if recent && !force && !self.snapshot().is_empty() {
            return Ok(());
        }
        let result = tokio::time::timeout(self.timeout, self.read_topology())
            .await
            .unwrap_or_else(|_| Err("timed out reading the cluster's layout".into()));
        *lock(&self.last_refresh) = Some(Instant::now());
        self.refreshes.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(next) => {
                self.metrics.event(Event::RefreshOk);
                self.install(next);
                Ok(())
            }
            Err(err) => {
                self.metrics.event(Event::RefreshFailed);
                if let Some(held_back) = REFRESH_FAILED_LOG.admit() {
                    log::event(
                        Level::Warn,
                        "cannot read the cluster's layout",
                        json!({"error": err, "similar_since_last": held_back}),
                    );
                }
                *lock(&self.last_error) = err.clone();
                Err(err)
            }
        }
    }

    /// Asks a few masters (and seeds) at once for `CLUSTER SLOTS`; the first
    /// good answer wins, so one dead or hung node does not stall a refresh.
    async fn read_topology(&self) -> Result<Topology, String> {
        let current = self.snapshot();
        let masters = current.masters();
        let mut candidates: Vec<String> = Vec::new();
        if !masters.is_empty() {
            let start = self.refreshes.load(Ordering::Relaxed) as usize;
            for i in 0..masters.len().min(REFRESH_FAN_OUT) {
                candidates.push(masters[(start + i) % masters.len()].clone());
            }
        }
        for seed in &self.seeds {
            if !candidates.contains(seed) {
                candidates.push(seed.clone());
            }
        }
        let asks = candidates.into_iter().map(|addr| {
            async move {
                let link = self.link(&addr).map_err(|e| e.message)?;
                let replies = link
                    .run(&[CLUSTER_SLOTS], self.timeout)
                    .await
                    .map_err(|e| e.message)?;
                let reply = replies.first().ok_or("no reply to CLUSTER SLOTS")?;
                if let Some(err) = error_text(reply) {
                    return Err(format!("cannot read the cluster's layout: {err}"));
                }
                let host = split_address(&addr).map_or("", |(h, _)| h);
                let topology = Topology::parse(reply, host)?;
                if topology.is_empty() {
                    return Err("the cluster reports no master".into());
                }
                Ok(topology)
            }
            .boxed()
        });
        match select_ok(asks).await {
            Ok((topology, _)) => Ok(topology),
            Err(err) => Err(err),
        }
    }

    fn install(&self, next: Topology) {
        let changed = {
            let mut current = self
                .topology
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let changed = **current != next;
            *current = Arc::new(next);
            changed
        };
        let t = self.snapshot();
        if changed {
            log::event(
                Level::Info,
                "cluster layout",
                json!({
                    "masters": t.masters(),
                    "replicas": t.replicas(),
                    "slots_covered": t.covered(),
                }),
            );
        }
        // Drop connections to nodes that are no longer masters.
        lock(&self.links).retain(|addr, _| t.masters().contains(addr) || self.seeds.contains(addr));
    }

    /// Applies a MOVED reply to the map. The caller then has the whole map
    /// read again ([`Cluster::refresh_soon`]): a reshard usually moves many
    /// slots.
    fn moved(&self, slot: u16, to: &str) {
        self.metrics.event(Event::Moved);
        let mut current = self
            .topology
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if current.master_of(slot) != Some(to) {
            *current = Arc::new(current.with_moved(slot, to));
        }
    }

    /// Reads the map again in the background.
    fn refresh_soon(self: &Arc<Self>) {
        let this = self.clone();
        tokio::spawn(async move {
            let _ = this.refresh(false).await;
        });
    }

    /// A slot map with at least one master, reading it first if needed.
    async fn ready(&self) -> Result<Arc<Topology>, Unavailable> {
        let t = self.snapshot();
        if !t.is_empty() {
            return Ok(t);
        }
        let _ = self.refresh(true).await;
        let t = self.snapshot();
        if t.is_empty() {
            return Err(Unavailable::new(format!(
                "Redis is unavailable: {}",
                lock(&self.last_error)
            )));
        }
        Ok(t)
    }

    /// A master for a keyless command, round robin, avoiding `avoid`.
    fn pick(&self, topology: &Topology, avoid: &[String]) -> Option<String> {
        let masters = topology.masters();
        let start = self.next_keyless.fetch_add(1, Ordering::Relaxed);
        (0..masters.len())
            .map(|i| &masters[(start + i) % masters.len()])
            .find(|m| !avoid.contains(m))
            .cloned()
    }

    /// Runs a batch; one answer per command.
    pub(crate) async fn batch(
        self: &Arc<Self>,
        cmds: &[&Args<'_>],
        timeout: Duration,
    ) -> Result<Vec<Answer>, Unavailable> {
        let deadline = Instant::now() + timeout;
        let topology = tokio::time::timeout(timeout, self.ready())
            .await
            .map_err(|_| timed_out())??;
        let (plans, mut pieces) = plan(cmds, &topology);
        let mut answers: Vec<Option<Answer>> = vec![None; pieces.len()];
        self.execute(&mut pieces, &mut answers, deadline).await;
        let mut answers: Vec<Answer> = answers
            .into_iter()
            .map(|a| {
                a.unwrap_or_else(|| Err(Unavailable::new("Redis sent no reply for this command")))
            })
            .collect();
        Ok(plans
            .into_iter()
            .zip(cmds)
            .map(|(plan, cmd)| assemble(plan, cmd, &mut answers))
            .collect())
    }

    /// Sends pieces, follows redirects, re-sends after failovers, until
    /// every piece has an answer.
    async fn execute(
        self: &Arc<Self>,
        pieces: &mut [Piece<'_>],
        answers: &mut [Option<Answer>],
        deadline: Instant,
    ) {
        let mut pending: Vec<usize> = (0..pieces.len()).collect();
        for round in 0.. {
            if pending.is_empty() {
                return;
            }
            let now = Instant::now();
            if now >= deadline || round == MAX_ROUNDS {
                let err = if now >= deadline {
                    timed_out()
                } else {
                    Unavailable::new(
                        "Redis Cluster is reconfiguring (too many redirections); retry",
                    )
                };
                for p in pending {
                    answers[p] = Some(Err(err.clone()));
                }
                return;
            }
            let remaining = deadline - now;
            let topology = self.snapshot();

            // One group per node, each in request order.
            let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
            for &p in &pending {
                let piece = &pieces[p];
                let addr = match (&piece.to, piece.slot) {
                    (To::Node(addr), _) => Some(addr.clone()),
                    (To::Slot, Some(slot)) => topology.master_of(slot).map(str::to_owned),
                    (To::Keyless(avoid), _) => self.pick(&topology, avoid),
                    (To::Slot, None) => None,
                };
                let Some(addr) = addr else {
                    let what = piece.slot.map_or("no master is reachable".to_owned(), |s| {
                        format!("CLUSTERDOWN no master serves hash slot {s}")
                    });
                    answers[p] = Some(Err(Unavailable::new(what)));
                    continue;
                };
                match groups.iter_mut().find(|(a, _)| *a == addr) {
                    Some((_, ps)) => ps.push(p),
                    None => groups.push((addr, vec![p])),
                }
            }

            let sends = groups.iter().map(|(addr, ps)| {
                let mut cmds: Vec<&Args<'_>> = Vec::with_capacity(ps.len());
                let mut asking: Vec<bool> = Vec::with_capacity(ps.len());
                for &p in ps {
                    if pieces[p].asking {
                        cmds.push(ASKING);
                        asking.push(true);
                    }
                    cmds.push(&pieces[p].args);
                    asking.push(false);
                }
                async move {
                    let link = self.link(addr)?;
                    let replies = link.run(&cmds, remaining).await?;
                    Ok::<Vec<Value>, Unavailable>(
                        replies
                            .into_iter()
                            .zip(asking)
                            .filter(|(_, a)| !a)
                            .map(|(r, _)| r)
                            .collect(),
                    )
                }
            });
            let results = join_all(sends).await;

            let mut next: Vec<usize> = Vec::new();
            let mut try_again = false;
            let mut moved = false;
            let mut unreachable: Vec<(String, Vec<usize>, Unavailable)> = Vec::new();
            for ((addr, ps), result) in groups.into_iter().zip(results) {
                let replies = match result {
                    Ok(replies) => replies,
                    Err(err) if !err.sent => {
                        unreachable.push((addr, ps, err));
                        continue;
                    }
                    Err(err) => {
                        for p in ps {
                            answers[p] = Some(Err(err.clone()));
                        }
                        continue;
                    }
                };
                for (p, reply) in ps.into_iter().zip(replies) {
                    let piece = &mut pieces[p];
                    match redirect(&reply, &addr) {
                        Some(Redirect::Moved(slot, to)) => {
                            self.moved(slot, &to);
                            moved = true;
                            piece.to = To::Node(to);
                            piece.asking = false;
                            next.push(p);
                        }
                        Some(Redirect::Ask(to)) => {
                            self.metrics.event(Event::Ask);
                            piece.to = To::Node(to);
                            piece.asking = true;
                            next.push(p);
                        }
                        Some(Redirect::TryAgain) => {
                            try_again = true;
                            next.push(p);
                        }
                        None => answers[p] = Some(Ok(reply)),
                    }
                }
            }

            if moved {
                self.refresh_soon();
            }
            // Nodes that could not be reached got nothing: read the map again
            // and re-send what another master now serves.
            if !unreachable.is_empty() {
                let left = deadline.saturating_duration_since(Instant::now());
                let _ = tokio::time::timeout(left, self.refresh(false)).await;
                let topology = self.snapshot();
                for (addr, ps, err) in unreachable {
                    for p in ps {
                        let piece = &mut pieces[p];
                        let retry = match (&mut piece.to, piece.slot) {
                            (To::Keyless(avoid), _) => {
                                avoid.push(addr.clone());
                                avoid.len() < topology.masters().len()
                            }
                            (to, Some(slot)) => {
                                *to = To::Slot;
                                piece.asking = false;
                                topology.master_of(slot).is_some_and(|m| m != addr)
                            }
                            // One master's part of a fan-out.
                            (To::Node(_), None) | (To::Slot, None) => false,
                        };
                        if retry {
                            next.push(p);
                        } else {
                            answers[p] = Some(Err(err.clone()));
                        }
                    }
                }
                next.sort_unstable(); // back to request order
            }
            if try_again {
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(TRYAGAIN_DELAY.min(left)).await;
            }
            pending = next;
        }
    }

    /// Runs a transaction on the master of its one slot.
    pub(crate) async fn transaction(
        self: &Arc<Self>,
        cmds: &[&Args<'_>],
        timeout: Duration,
    ) -> Result<Vec<Value>, TxError> {
        let slot = transaction_slot(cmds).map_err(TxError::Refused)?;
        let deadline = Instant::now() + timeout;
        let mut topology = tokio::time::timeout(timeout, self.ready())
            .await
            .map_err(|_| TxError::Unavailable(timed_out()))?
            .map_err(TxError::Unavailable)?;
        let mut target: Option<String> = None;
        let mut avoid: Vec<String> = Vec::new();
        for _ in 0..MAX_ROUNDS {
            let addr = match (&target, slot) {
                (Some(addr), _) => Some(addr.clone()),
                (None, Some(slot)) => topology.master_of(slot).map(str::to_owned),
                (None, None) => self.pick(&topology, &avoid),
            }
            .ok_or_else(|| {
                TxError::Unavailable(Unavailable::new(
                    "CLUSTERDOWN no master serves the transaction's slot",
                ))
            })?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(TxError::Unavailable(timed_out()));
            }
            let link = self.link(&addr).map_err(TxError::Unavailable)?;
            match link.transaction(cmds, left).await {
                Ok(replies) => match replies.iter().find_map(|r| redirect(r, &addr)) {
                    // Refused at queue time or at EXEC: nothing ran.
                    Some(Redirect::Moved(s, to)) => {
                        self.moved(s, &to);
                        self.refresh_soon();
                        target = Some(to);
                    }
                    Some(_) => return Err(TxError::Busy(
                        "TRYAGAIN the transaction's slot is being migrated between masters; retry"
                            .into(),
                    )),
                    None => return Ok(replies),
                },
                Err(err) if !err.sent => {
                    let _ = tokio::time::timeout(left, self.refresh(false)).await;
                    topology = self.snapshot();
                    target = None;
                    avoid.push(addr.clone());
                    let moved_on = match slot {
                        Some(slot) => topology.master_of(slot).is_some_and(|m| m != addr),
                        None => avoid.len() < topology.masters().len(),
                    };
                    if !moved_on {
                        return Err(TxError::Unavailable(err));
                    }
                }
                Err(err) => return Err(TxError::Unavailable(err)),
            }
        }
        Err(TxError::Busy(
            "Redis Cluster is reconfiguring (too many redirections); retry".into(),
        ))
    }

    /// Reachability of the masters, without addresses.
    pub(crate) async fn health(&self) -> Health {
        let _ = self.refresh(false).await;
        let topology = self.snapshot();
        if topology.is_empty() {
            return Health {
                ok: false,
                detail: json!({"mode": "cluster", "redis": lock(&self.last_error).clone()}),
            };
        }
        let pings = topology.masters().iter().map(|addr| async move {
            let Ok(link) = self.link(addr) else { return false };
            matches!(link.run(&[PING], self.timeout).await, Ok(r) if !matches!(r.first(), Some(Value::ServerError(_))))
        });
        let reachable = join_all(pings).await.into_iter().filter(|&up| up).count();
        let masters = topology.masters().len();
        let whole = reachable == masters && topology.covered() == SLOTS;
        Health {
            ok: reachable > 0,
            detail: json!({
                "mode": "cluster",
                "redis": if whole { "ok" } else if reachable > 0 { "degraded" } else { "unavailable" },
                "masters": masters,
                "masters_reachable": reachable,
                "replicas": topology.replicas(),
                "slots_covered": topology.covered(),
            }),
        }
    }

    /// Reads the map now, then every `every`, for as long as the cluster
    /// is in use.
    pub(crate) fn spawn_refresher(
        self: &Arc<Self>,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(this) = weak.upgrade() else { break };
                let _ = this.refresh(true).await;
                drop(this);
                tokio::time::sleep(every).await;
            }
        })
    }
}

fn timed_out() -> Unavailable {
    Unavailable {
        message: "Redis is unavailable: it did not answer in time".into(),
        sent: true,
        timed_out: true,
    }
}

/// Turns commands into pieces, and records how to put answers together.
fn plan<'c>(cmds: &[&'c Args<'c>], topology: &Topology) -> (Vec<Plan>, Vec<Piece<'c>>) {
    let mut plans = Vec::with_capacity(cmds.len());
    let mut pieces = Vec::with_capacity(cmds.len());
    for &cmd in cmds {
        let whole = |slot, to| Piece {
            args: Cow::Borrowed(cmd),
            slot,
            to,
            asking: false,
        };
        match routing::route(cmd) {
            Route::Slot(slot) => {
                plans.push(Plan::One(pieces.len()));
                pieces.push(whole(Some(slot), To::Slot));
            }
            Route::Keyless => {
                plans.push(Plan::One(pieces.len()));
                pieces.push(whole(None, To::Keyless(Vec::new())));
            }
            Route::Split(kind, parts) => {
                let mut indexed = Vec::with_capacity(parts.len());
                for (slot, indices) in parts {
                    let mut args: Vec<Cow<'c, [u8]>> = Vec::with_capacity(indices.len() + 1);
                    args.push(cmd[0].clone());
                    args.extend(indices.iter().map(|&i| cmd[i].clone()));
                    indexed.push((pieces.len(), indices));
                    pieces.push(Piece {
                        args: Cow::Owned(args),
                        slot: Some(slot),
                        to: To::Slot,
                        asking: false,
                    });
                }
                plans.push(Plan::Split(kind, indexed));
            }
            Route::FanOut(kind) => {
                let mut indexed = Vec::new();
                for master in topology.masters() {
                    indexed.push(pieces.len());
                    pieces.push(whole(None, To::Node(master.clone())));
                }
                plans.push(Plan::FanOut(kind, indexed));
            }
        }
    }
    (plans, pieces)
}

/// The one slot a transaction's keys live in (`None`: no keys), or why it
/// cannot run on a cluster.
fn transaction_slot(cmds: &[&Args<'_>]) -> Result<Option<u16>, String> {
    let mut slots: Vec<u16> = Vec::new();
    for cmd in cmds {
        match routing::route(cmd) {
            Route::Keyless => {}
            Route::Slot(slot) => slots.push(slot),
            Route::Split(_, parts) => slots.extend(parts.iter().map(|(s, _)| *s)),
            Route::FanOut(_) => {
                return Err(format!(
                    "ERR '{}' runs on every master of a Redis Cluster and cannot be part of a multi-exec transaction",
                    shown_name(cmd)
                ))
            }
        }
    }
    slots.sort_unstable();
    slots.dedup();
    match slots[..] {
        [] => Ok(None),
        [slot] => Ok(Some(slot)),
        _ => Err(format!(
            "CROSSSLOT Keys in request don't hash to the same slot: on a Redis Cluster every key of a \
             multi-exec transaction must be in one hash slot (this one touches {} slots); \
             use a hash tag, e.g. {{user1}}:a and {{user1}}:b",
            slots.len()
        )),
    }
}

/// Takes a piece's answer out of `answers`.
fn take(answers: &mut [Answer], p: usize) -> Answer {
    std::mem::replace(&mut answers[p], Ok(Value::Nil))
}

/// A command's answer from its pieces'. A piece that could not run fails
/// the command; so does an error reply (the first one is kept).
fn assemble(plan: Plan, cmd: &Args<'_>, answers: &mut [Answer]) -> Answer {
    let parts: Vec<(Answer, Vec<usize>)> = match plan {
        Plan::One(p) => return take(answers, p),
        Plan::Split(_, ref parts) => parts
            .iter()
            .map(|(p, idx)| (take(answers, *p), idx.clone()))
            .collect(),
        Plan::FanOut(_, ref ps) => ps.iter().map(|&p| (take(answers, p), Vec::new())).collect(),
    };
    let mut values = Vec::with_capacity(parts.len());
    for (answer, indices) in parts {
        match answer? {
            err @ Value::ServerError(_) => return Ok(err),
            value => values.push((value, indices)),
        }
    }
    let unexpected = || {
        Ok(error_value(&format!(
            "ERR unexpected reply from a Redis Cluster master to '{}'",
            shown_name(cmd)
        )))
    };
    let sum = |values: Vec<(Value, Vec<usize>)>| {
        let mut total = 0i64;
        for (v, _) in values {
            match v {
                Value::Int(n) => total = total.saturating_add(n),
                _ => return None,
            }
        }
        Some(Value::Int(total))
    };
    match plan {
        Plan::One(_) => unreachable!("returned above"),
        Plan::Split(Split::Mget, _) => {
            let mut out = vec![Value::Nil; cmd.len().saturating_sub(1)];
            for (v, indices) in values {
                match v {
                    Value::Array(items) if items.len() == indices.len() => {
                        for (item, i) in items.into_iter().zip(indices) {
                            out[i - 1] = item;
                        }
                    }
                    _ => return unexpected(),
                }
            }
            Ok(Value::Array(out))
        }
        Plan::Split(Split::Mset, _) => Ok(Value::Okay),
        Plan::Split(Split::Sum, _) | Plan::FanOut(FanOut::Sum, _) => {
            sum(values).map_or_else(unexpected, Ok)
        }
        Plan::FanOut(FanOut::AllSucceed, _) => {
            Ok(values.into_iter().next().map_or(Value::Nil, |(v, _)| v))
        }
        Plan::FanOut(FanOut::Concat, _) => {
            let mut out = Vec::new();
            for (v, _) in values {
                match v {
                    Value::Array(items) => out.extend(items),
                    _ => return unexpected(),
                }
            }
            Ok(Value::Array(out))
        }
        Plan::FanOut(FanOut::And, _) => {
            let mut out: Option<Vec<i64>> = None;
            for (v, _) in values {
                let Value::Array(items) = v else {
                    return unexpected();
                };
                let bits: Option<Vec<i64>> = items
                    .iter()
                    .map(|i| {
                        if let Value::Int(n) = i {
                            Some(*n)
                        } else {
                            None
                        }
                    })
                    .collect();
                let Some(bits) = bits else {
                    return unexpected();
                };
                out = Some(match out {
                    None => bits,
                    Some(acc) if acc.len() == bits.len() => acc
                        .iter()
                        .zip(&bits)
                        .map(|(a, b)| i64::from(*a != 0 && *b != 0))
                        .collect(),
                    Some(_) => return unexpected(),
                });
            }
            Ok(Value::Array(
                out.unwrap_or_default()
                    .into_iter()
                    .map(Value::Int)
                    .collect(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(args: &[&'static str]) -> Vec<Cow<'static, [u8]>> {
        args.iter().map(|a| Cow::Borrowed(a.as_bytes())).collect()
    }

    fn err(text: &str) -> Value {
        error_value(text)
    }

    #[test]
    fn reads_redirects() {
        assert_eq!(
            redirect(&err("MOVED 3999 10.0.0.1:6381"), "x:1"),
            Some(Redirect::Moved(3999, "10.0.0.1:6381".into()))
        );
        assert_eq!(
            redirect(&err("MOVED 3999 :6381"), "10.0.0.9:6380"),
            Some(Redirect::Moved(3999, "10.0.0.9:6381".into()))
        );
        assert_eq!(
            redirect(&err("ASK 1 h:2"), "x:1"),
            Some(Redirect::Ask("h:2".into()))
        );
        assert_eq!(
            redirect(
                &err("TRYAGAIN Multiple keys request during rehashing of slot"),
                "x:1"
            ),
            Some(Redirect::TryAgain)
        );
        assert_eq!(redirect(&err("ERR MOVED"), "x:1"), None);
        assert_eq!(redirect(&Value::Okay, "x:1"), None);
    }

    #[test]
    fn transactions_need_one_slot() {
        let set = |k: &'static str| c(&["SET", k, "v"]);
        let (a, b, tagged) = (set("a"), set("b"), set("{a}1"));
        let ping = c(&["PING"]);
        assert_eq!(transaction_slot(&[&a, &tagged, &ping]), Ok(Some(15495)));
        assert_eq!(transaction_slot(&[&ping]), Ok(None));
        let err = transaction_slot(&[&a, &b]).unwrap_err();
        assert!(err.starts_with("CROSSSLOT"), "{err}");
        let mget = c(&["MGET", "a", "b"]);
        assert!(transaction_slot(&[&mget])
            .unwrap_err()
            .starts_with("CROSSSLOT"));
        let flush = c(&["flushall"]);
        assert!(transaction_slot(&[&flush])
            .unwrap_err()
            .contains("'FLUSHALL'"));
    }

    #[test]
    fn assembles_split_and_fanned_out_answers() {
        let mget = c(&["MGET", "a", "b", "{a}x"]);
        let mut answers = vec![
            Ok(Value::Array(vec![
                Value::BulkString(b"1".to_vec()),
                Value::Nil,
            ])),
            Ok(Value::Array(vec![Value::BulkString(b"2".to_vec())])),
        ];
        let plan = Plan::Split(Split::Mget, vec![(0, vec![1, 3]), (1, vec![2])]);
        assert_eq!(
            assemble(plan, &mget, &mut answers).unwrap(),
            Value::Array(vec![
                Value::BulkString(b"1".to_vec()),
                Value::BulkString(b"2".to_vec()),
                Value::Nil
            ])
        );

        let del = c(&["DEL", "a", "b"]);
        let mut answers = vec![Ok(Value::Int(1)), Ok(Value::Int(0))];
        let plan = Plan::Split(Split::Sum, vec![(0, vec![1]), (1, vec![2])]);
        assert_eq!(assemble(plan, &del, &mut answers).unwrap(), Value::Int(1));

        let exists = c(&["SCRIPT", "EXISTS", "x", "y"]);
        let mut answers = vec![
            Ok(Value::Array(vec![Value::Int(1), Value::Int(1)])),
            Ok(Value::Array(vec![Value::Int(1), Value::Int(0)])),
        ];
        let plan = Plan::FanOut(FanOut::And, vec![0, 1]);
        assert_eq!(
            assemble(plan, &exists, &mut answers).unwrap(),
            Value::Array(vec![Value::Int(1), Value::Int(0)])
        );

        // An error reply from one piece is the command's answer; a piece
        // that could not run fails it.
        let mut answers = vec![Ok(Value::Okay), Ok(err("OOM command not allowed"))];
        let mset = c(&["MSET", "a", "1", "b", "2"]);
        let plan = Plan::Split(Split::Mset, vec![(0, vec![1, 2]), (1, vec![3, 4])]);
        assert_eq!(
            error_text(&assemble(plan, &mset, &mut answers).unwrap()).unwrap(),
            "OOM command not allowed"
        );
        let mut answers = vec![Ok(Value::Int(2)), Err(Unavailable::new("down"))];
        let plan = Plan::FanOut(FanOut::Sum, vec![0, 1]);
        assert!(assemble(plan, &c(&["DBSIZE"]), &mut answers).is_err());
    }
}
