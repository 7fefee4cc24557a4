//! The L4 load balancer of `yagura edge`: TCP listeners on VIP:port forwarding to pools of backends, with
//! active and passive health checks that drive the VIP announcement (a VIP with `announce = "hook"` and
//! `pool = P` is announced while pool `P` has at least `min_healthy` backends up), reload without dropping
//! established connections, and drain.
//!
//! [`balance`] (pure selection, Maglev), [`health`] (rise/fall and the checks), [`proxy`] (PROXY protocol and
//! the copy loop), [`config`] (the `[[listeners]]` / `[[pools]]` sections), [`metrics`] (per backend series),
//! [`workers`] (the per-core threads connections are accepted and run on: one `SO_REUSEPORT` socket per
//! listener and worker), [`pipe`] (the pipe pool of the `splice(2)` data path).

pub mod balance;
pub mod config;
pub mod health;
pub mod metrics;
pub mod pipe;
pub mod proxy;
pub mod workers;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use socket2::{Domain, Socket, Type};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tracing::{error, info, warn};
use yagura_daemon::CancellationToken;

use self::balance::Selector;
use self::config::{ListenerConfig, PoolConfig, ProxyProtocol};
use self::health::{Checker, Health};
use self::metrics::{BackendMetrics, LbMetrics};
use self::proxy::{proxy_header, splice_streams, End};
use self::workers::Workers;
use crate::config::{AnnounceWhen, VipConfig};
use crate::instance::AnnounceHook;

/// One backend at run time. Kept across reloads while its pool keeps a backend of that name and address, so
/// its health and counters carry over; a removed one lives until its last connection ends (drain).
#[derive(Debug)]
pub struct Backend {
    name: String,
    address: SocketAddr,
    health: Mutex<Health>,
    up: AtomicBool,
    active: AtomicU64,
    connect_failures: AtomicU32,
    removed: AtomicBool,
    metrics: BackendMetrics,
    checks: Mutex<CancellationToken>,
}

impl Backend {
    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
        self.metrics.up.set(i64::from(up));
    }
}

/// A pool at run time: its config, backends and the current selector over the healthy ones.
#[derive(Debug)]
pub struct Pool {
    cfg: PoolConfig,
    backends: Vec<Arc<Backend>>,
    selector: RwLock<Arc<Selector>>,
    turn: AtomicU64,
}

impl Pool {
    fn refresh(&self) {
        let names: Vec<&str> = self.backends.iter().map(|b| b.name.as_str()).collect();
        let up: Vec<bool> = self
            .backends
            .iter()
            .map(|b| b.up.load(Ordering::Relaxed))
            .collect();
        let s = Arc::new(Selector::new(self.cfg.balance, &names, &up));
        if let Ok(mut g) = self.selector.write() {
            *g = s;
        }
    }

    fn selector(&self) -> Option<Arc<Selector>> {
        self.selector.read().ok().map(|g| g.clone())
    }

    fn healthy(&self) -> usize {
        self.selector().map(|s| s.healthy()).unwrap_or(0)
    }
}

#[derive(Debug)]
struct Shared {
    pools: RwLock<BTreeMap<String, Arc<Pool>>>,
    vips: RwLock<Vec<VipConfig>>,
    changed: Notify,
    active: AtomicU64,
    idle: Notify,
    metrics: LbMetrics,
}

impl Shared {
    fn pool(&self, name: &str) -> Option<Arc<Pool>> {
        self.pools.read().ok().and_then(|p| p.get(name).cloned())
    }
}

#[derive(Debug)]
struct ListenerHandle {
    settings: watch::Sender<ListenerConfig>,
    token: CancellationToken,
}

/// Why the load balancer config could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum LbError {
    /// A listener could not be bound.
    #[error("listener `{name}` on {address}: {source}")]
    Bind {
        /// Listener name.
        name: String,
        /// Its address.
        address: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// A pool's health check could not be set up (CA file).
    #[error("pool `{pool}` health check: {source}")]
    Check {
        /// Pool name.
        pool: String,
        /// The error.
        source: health::CheckError,
    },
}

/// A config checked and its new sockets bound, ready for [`Lb::commit`].
#[derive(Debug)]
pub struct Prepared {
    listeners: Vec<ListenerConfig>,
    bound: BTreeMap<SocketAddr, Vec<std::net::TcpListener>>,
    pools: Vec<(PoolConfig, Checker)>,
    vips: Vec<VipConfig>,
}

/// The load balancer.
#[derive(Debug)]
pub struct Lb {
    shared: Arc<Shared>,
    listeners: BTreeMap<SocketAddr, ListenerHandle>,
    stop: CancellationToken,
    workers: Arc<Workers>,
}

/// Binds a listener socket: `SO_REUSEADDR`, and `IP_FREEBIND` so a VIP port can be bound before the VIP is
/// on the interface; `[::]` accepts IPv4 too. With `reuse_port`, `SO_REUSEPORT` too, so that each worker
/// binds its own socket of the listener and the kernel spreads new connections over them.
pub fn bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    if addr.is_ipv4() {
        s.set_freebind_v4(true)?;
    } else {
        s.set_freebind_v6(true)?;
        s.set_only_v6(!addr.ip().is_unspecified())?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    Ok(s.into())
}

/// One socket per worker on `addr` (a group of `SO_REUSEPORT` sockets when there are several workers). The
/// first bind fails as a plain one would when the address is taken by a socket without `SO_REUSEPORT`.
fn bind_group(addr: SocketAddr, n: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let first = bind(addr, n > 1)?;
    // A port of 0 picks one: the others of the group take the same.
    let addr = first.local_addr()?;
    let mut group = vec![first];
    for _ in 1..n {
        group.push(bind(addr, true)?);
    }
    Ok(group)
}

impl Lb {
    /// An empty load balancer whose metrics go in `registry`; `hook` carries pool health to the VIPs.
    pub fn new(registry: &mut prometheus_client::registry::Registry, hook: AnnounceHook) -> Self {
        let shared = Arc::new(Shared {
            pools: RwLock::new(BTreeMap::new()),
            vips: RwLock::new(Vec::new()),
            changed: Notify::new(),
            active: AtomicU64::new(0),
            idle: Notify::new(),
            metrics: LbMetrics::register(registry),
        });
        let stop = CancellationToken::new();
        tokio::spawn(announcer(shared.clone(), hook, stop.clone()));
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let workers = Arc::new(Workers::start(cores, &stop));
        Self {
            shared,
            listeners: BTreeMap::new(),
            stop,
            workers,
        }
    }

    /// Checks what a new config needs from the system (CA files, listener sockets) without changing
    /// anything in force.
    pub fn prepare(
        &self,
        listeners: &[ListenerConfig],
        pools: &[PoolConfig],
        vips: &[VipConfig],
    ) -> Result<Prepared, LbError> {
        let mut checked = Vec::new();
        for p in pools {
            let c = Checker::new(&p.health).map_err(|source| LbError::Check {
                pool: p.name.clone(),
                source,
            })?;
            checked.push((p.clone(), c));
        }
        let mut bound = BTreeMap::new();
        for l in listeners {
            if !self.listeners.contains_key(&l.address) {
                let s = bind_group(l.address, self.workers.count()).map_err(|source| {
                    LbError::Bind {
                        name: l.name.clone(),
                        address: l.address,
                        source,
                    }
                })?;
                bound.insert(l.address, s);
            }
        }
        Ok(Prepared {
            listeners: listeners.to_vec(),
            bound,
            pools: checked,
            vips: vips.to_vec(),
        })
    }

    /// Puts a prepared config in force: pools and backends are replaced (a kept backend keeps its health and
    /// counters; a removed one takes no new connections and drains), listeners on a new address start, on a
    /// removed address stop accepting; established connections are never touched.
    pub fn commit(&mut self, mut p: Prepared) {
        let old = self
            .shared
            .pools
            .read()
            .map(|g| g.clone())
            .unwrap_or_default();
        let mut pools = BTreeMap::new();
        let mut kept_backends = Vec::new();
        for (cfg, checker) in p.pools {
            let previous = old.get(&cfg.name);
            let backends: Vec<Arc<Backend>> = cfg
                .backends
                .iter()
                .map(|b| {
                    previous
                        .and_then(|o| {
                            o.backends
                                .iter()
                                .find(|x| x.name == b.name && x.address == b.address)
                                .cloned()
                        })
                        .unwrap_or_else(|| {
                            Arc::new(Backend {
                                name: b.name.clone(),
                                address: b.address,
                                health: Mutex::new(Health::default()),
                                up: AtomicBool::new(false),
                                active: AtomicU64::new(0),
                                connect_failures: AtomicU32::new(0),
                                removed: AtomicBool::new(false),
                                metrics: self.shared.metrics.backend(&cfg.name, &b.name),
                                checks: Mutex::new(CancellationToken::new()),
                            })
                        })
                })
                .collect();
            for b in &backends {
                b.set_up(b.up.load(Ordering::Relaxed));
                kept_backends.push(Arc::as_ptr(b));
                start_checks(
                    self.shared.clone(),
                    cfg.name.clone(),
                    b.clone(),
                    checker.clone(),
                );
            }
            let pool = Arc::new(Pool {
                selector: RwLock::new(Arc::new(Selector::new(cfg.balance, &[] as &[&str], &[]))),
                cfg,
                backends,
                turn: AtomicU64::new(0),
            });
            pool.refresh();
            pools.insert(pool.cfg.name.clone(), pool);
        }
        for (name, pool) in &old {
            for b in &pool.backends {
                if !kept_backends.contains(&Arc::as_ptr(b)) {
                    b.removed.store(true, Ordering::Relaxed);
                    if let Ok(t) = b.checks.lock() {
                        t.cancel();
                    }
                    self.shared.metrics.remove_backend(name, &b.name);
                    info!(pool = %name, backend = %b.name, active = b.active.load(Ordering::Relaxed), "backend removed; its connections drain");
                }
            }
        }
        if let Ok(mut g) = self.shared.pools.write() {
            *g = pools;
        }
        if let Ok(mut g) = self.shared.vips.write() {
            *g = p.vips;
        }
        // Listeners.
        let wanted: Vec<SocketAddr> = p.listeners.iter().map(|l| l.address).collect();
        self.listeners.retain(|addr, h| {
            let keep = wanted.contains(addr);
            if !keep {
                info!(address = %addr, "listener removed: no longer accepting, established connections stay");
                h.token.cancel();
            }
            keep
        });
        for l in p.listeners {
            if let Some(h) = self.listeners.get(&l.address) {
                h.settings.send_replace(l);
            } else if let Some(group) = p.bound.remove(&l.address) {
                info!(listener = %l.name, address = %l.address, pool = %l.pool, workers = group.len(), "L4 listener");
                let token = self.stop.child_token();
                let (tx, rx) = watch::channel(l.clone());
                // One counter for the listener's sockets on all workers: `max_connections` is per listener.
                let active = Arc::new(AtomicU64::new(0));
                for (i, sock) in group.into_iter().enumerate() {
                    let (rx, shared, token, active) = (
                        rx.clone(),
                        self.shared.clone(),
                        token.clone(),
                        active.clone(),
                    );
                    // Registered with the worker's own reactor: accept, proxy and close on that thread.
                    self.workers.spawn_on(i, async move {
                        match TcpListener::from_std(sock) {
                            Ok(l) => serve(l, rx, shared, active, token).await,
                            Err(e) => error!(error = %e, "cannot start a listener on a worker"),
                        }
                    });
                }
                self.listeners.insert(
                    l.address,
                    ListenerHandle {
                        settings: tx,
                        token,
                    },
                );
            }
        }
        self.shared.changed.notify_one();
    }

    /// Stops accepting on every listener (drain); established connections continue.
    pub fn stop_accepting(&mut self) {
        for h in self.listeners.values() {
            h.token.cancel();
        }
        self.listeners.clear();
    }

    /// Connections being proxied now.
    pub fn active(&self) -> u64 {
        self.shared.active.load(Ordering::Relaxed)
    }

    /// Waits until no connection is left or `timeout` passed; returns how many are left.
    pub async fn wait_idle(&self, timeout: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let idle = self.shared.idle.notified();
            let n = self.active();
            if n == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.active();
            }
        }
    }

    /// Pools and backends for the status document.
    pub fn status(&self) -> Value {
        let pools = self
            .shared
            .pools
            .read()
            .map(|g| g.clone())
            .unwrap_or_default();
        pools
            .values()
            .map(|p| {
                json!({
                    "name": p.cfg.name,
                    "healthy": p.healthy(),
                    "min_healthy": p.cfg.min_healthy,
                    "backends": p.backends.iter().map(|b| json!({
                        "name": b.name,
                        "address": b.address.to_string(),
                        "up": b.up.load(Ordering::Relaxed),
                        "active": b.active.load(Ordering::Relaxed),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect()
    }
}

impl Drop for Lb {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Announces or withdraws each hook-driven VIP of a load-balanced pool as the pool's health changes.
async fn announcer(shared: Arc<Shared>, hook: AnnounceHook, stop: CancellationToken) {
    let mut last: BTreeMap<String, bool> = BTreeMap::new();
    loop {
        let wanted: Vec<(String, String, bool)> = {
            let vips = shared.vips.read().map(|v| v.clone()).unwrap_or_default();
            vips.iter()
                .filter(|v| v.announce == AnnounceWhen::Hook)
                .filter_map(|v| {
                    let p = shared.pool(&v.pool)?;
                    let h = p.healthy();
                    Some((
                        v.name.clone(),
                        p.cfg.name.clone(),
                        h >= p.cfg.min_healthy as usize,
                    ))
                })
                .collect()
        };
        let mut now = BTreeMap::new();
        for (vip, pool, up) in wanted {
            // Sent every round: a reload may have reset the instance's hook state.
            if last.get(&vip) != Some(&up) {
                info!(%vip, %pool, announce = up, "pool health changed the VIP's announcement");
            }
            match hook.set(&vip, up).await {
                Ok(()) => {}
                Err(crate::instance::HookError::Stopped) => return,
                Err(e) => warn!(%vip, error = %e, "announce hook refused"),
            }
            now.insert(vip, up);
        }
        last = now;
        tokio::select! {
            () = shared.changed.notified() => {}
            () = stop.cancelled() => return,
        }
    }
}

fn start_checks(shared: Arc<Shared>, pool: String, b: Arc<Backend>, checker: Checker) {
    let token = CancellationToken::new();
    if let Ok(mut t) = b.checks.lock() {
        t.cancel();
        *t = token.clone();
    }
    tokio::spawn(async move {
        let cfg = checker.config().clone();
        let mut tick = tokio::time::interval(cfg.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_err = String::new();
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                _ = tick.tick() => {}
            }
            let r = checker.check(b.address).await;
            if token.is_cancelled() {
                return;
            }
            if let Err(health::CheckError::Io(e)) = &r {
                if is_fd_exhaustion(e) {
                    // Our own limit says nothing about the backend.
                    warn!(%pool, backend = %b.name, error = %e, "health check skipped: out of file descriptors");
                    continue;
                }
            }
            let ok = r.is_ok();
            match &r {
                Ok(lat) => {
                    b.metrics.check_latency.set(lat.as_secs_f64());
                    last_err.clear();
                }
                Err(e) => {
                    b.metrics.check_failures.inc();
                    last_err = e.to_string();
                }
            }
            let changed = match b.health.lock() {
                Ok(mut h) => {
                    let c = h.observe(ok, cfg.rise, cfg.fall);
                    c.then_some(h.up)
                }
                Err(_) => None,
            };
            if let Some(up) = changed {
                b.set_up(up);
                if up {
                    b.connect_failures.store(0, Ordering::Relaxed);
                    info!(%pool, backend = %b.name, address = %b.address, "backend up");
                } else {
                    warn!(%pool, backend = %b.name, address = %b.address, error = %last_err, "backend down");
                }
                if let Some(p) = shared.pool(&pool) {
                    p.refresh();
                }
                shared.changed.notify_one();
            }
        }
    });
}

/// Decrements the active counters when a connection ends.
struct Active {
    shared: Arc<Shared>,
    listener: Arc<AtomicU64>,
}

impl Drop for Active {
    fn drop(&mut self) {
        self.listener.fetch_sub(1, Ordering::Relaxed);
        if self.shared.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.idle.notify_waiters();
        }
    }
}

fn is_fd_exhaustion(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
        || e.kind() == std::io::ErrorKind::OutOfMemory
}

/// The accept loop of one worker's socket of a listener; connections run on the same worker.
async fn serve(
    listener: TcpListener,
    settings: watch::Receiver<ListenerConfig>,
    shared: Arc<Shared>,
    active: Arc<AtomicU64>,
    token: CancellationToken,
) {
    let mut last_fd_log: Option<Instant> = None;
    loop {
        let r = tokio::select! {
            () = token.cancelled() => return,
            r = listener.accept() => r,
        };
        let cfg = settings.borrow().clone();
        match r {
            Ok((stream, from)) => {
                let max = u64::from(cfg.max_connections);
                // Shared by the listener's sockets on every worker: take a slot only while one is free.
                let admitted = active
                    .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                        (n < max).then_some(n + 1)
                    })
                    .is_ok();
                if !admitted {
                    shared.metrics.rejected(&cfg.name, "max_connections");
                    drop(stream);
                    continue;
                }
                shared.active.fetch_add(1, Ordering::AcqRel);
                let guard = Active {
                    shared: shared.clone(),
                    listener: active.clone(),
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    handle(stream, from, cfg, shared).await;
                    drop(guard);
                });
            }
            Err(e) if is_fd_exhaustion(&e) => {
                shared.metrics.rejected(&cfg.name, "fd_exhausted");
                if last_fd_log.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                    error!(listener = %cfg.name, address = %cfg.address, error = %e, active = shared.active.load(Ordering::Relaxed),
                        "cannot accept: out of file descriptors (raise LimitNOFILE / ulimit -n); established connections keep working");
                    last_fd_log = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                warn!(listener = %cfg.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

async fn connect(
    pool: &Pool,
    client: IpAddr,
    cfg: &ListenerConfig,
    shared: &Shared,
) -> Option<(Arc<Backend>, TcpStream)> {
    let attempts = pool.backends.len().min(3);
    let mut tried: Vec<usize> = Vec::new();
    for _ in 0..attempts {
        let sel = pool.selector()?;
        let turn = pool.turn.fetch_add(1, Ordering::Relaxed);
        let mut i = sel.pick(client, turn, |i| {
            pool.backends
                .get(i)
                .map(|b| b.active.load(Ordering::Relaxed))
                .unwrap_or(u64::MAX)
        })?;
        if tried.contains(&i) {
            // Consistent hashing keeps answering the one that failed: take the next healthy untried one.
            i = (0..pool.backends.len())
                .find(|j| !tried.contains(j) && pool.backends[*j].up.load(Ordering::Relaxed))?;
        }
        tried.push(i);
        let b = pool.backends.get(i)?.clone();
        b.active.fetch_add(1, Ordering::Relaxed);
        b.metrics.active.inc();
        match tokio::time::timeout(cfg.connect_timeout, TcpStream::connect(b.address)).await {
            Ok(Ok(s)) => {
                b.connect_failures.store(0, Ordering::Relaxed);
                return Some((b, s));
            }
            Ok(Err(e)) if is_fd_exhaustion(&e) => {
                // Our own limit, not the backend's fault: no ejection.
                b.active.fetch_sub(1, Ordering::Relaxed);
                b.metrics.active.dec();
                shared.metrics.rejected(&cfg.name, "fd_exhausted");
                error!(listener = %cfg.name, error = %e, "cannot connect to a backend: out of file descriptors (raise LimitNOFILE / ulimit -n); established connections keep working");
                return None;
            }
            r => {
                b.active.fetch_sub(1, Ordering::Relaxed);
                b.metrics.active.dec();
                b.metrics.connect_errors.inc();
                let why = match r {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_string(),
                };
                let fails = b.connect_failures.fetch_add(1, Ordering::Relaxed) + 1;
                if pool.cfg.eject_after > 0 && fails >= pool.cfg.eject_after {
                    let ejected = b.health.lock().map(|mut h| h.eject()).unwrap_or(false);
                    if ejected {
                        b.set_up(false);
                        warn!(pool = %pool.cfg.name, backend = %b.name, error = %why, fails, "backend ejected after connect failures");
                        pool.refresh();
                        shared.changed.notify_one();
                    }
                }
            }
        }
    }
    None
}

async fn handle(client: TcpStream, from: SocketAddr, cfg: ListenerConfig, shared: Arc<Shared>) {
    let Some(pool) = shared.pool(&cfg.pool) else {
        shared.metrics.rejected(&cfg.name, "no_pool");
        return;
    };
    let Some((b, mut backend)) = connect(&pool, from.ip(), &cfg, &shared).await else {
        shared.metrics.rejected(&cfg.name, "no_backend");
        return;
    };
    drop(pool);
    b.metrics.total.inc();
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    let header = if cfg.proxy_protocol == ProxyProtocol::None {
        Vec::new() // and no getsockname(2)
    } else {
        proxy_header(
            cfg.proxy_protocol,
            from,
            client.local_addr().unwrap_or(cfg.address),
        )
    };
    let end = if !header.is_empty() && backend.write_all(&header).await.is_err() {
        End::Error
    } else {
        splice_streams(
            client,
            backend,
            cfg.buffer_size as usize,
            cfg.splice,
            cfg.idle_timeout,
            &b.metrics.bytes,
        )
        .await
    };
    if end == End::Idle {
        b.metrics.idle_closed.inc();
    }
    b.active.fetch_sub(1, Ordering::Relaxed);
    b.metrics.active.dec();
    if b.removed.load(Ordering::Relaxed) && b.active.load(Ordering::Relaxed) == 0 {
        info!(backend = %b.name, "removed backend drained");
    }
}
