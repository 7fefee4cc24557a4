//! The edge instance: one task that owns the config in force, the peer tasks, the VIP announce state (the
//! announce hook), the VIP addresses on the interface and the drain. Everything else talks to it through
//! [`Command`]s: the control API, the [`AnnounceHook`] the L4 load balancer drives, SIGHUP and SIGTERM.
//!
//! ```text
//!  SIGHUP ─► reload (diff: only changed peers restart)      control API / AnnounceHook ─► Command ─┐
//!  SIGTERM ─► drain: withdraw all, wait, Cease, exit          listeners ─► accepted TCP ─────────────┤
//!                                                                                                   ▼
//!                                 instance ── Published routes (watch) ──► peer tasks ──► routers
//!                                     └── netlink: VIP addresses on `interface`
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use prometheus_client::registry::Registry;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};
use yagura_bgp::packet::{cease_subcode, AfiSafi};
use yagura_daemon::{config as dconfig, http, signals, CancellationToken, RuntimeMetrics};

use crate::bfd::Bfd;
use crate::config::{AnnounceWhen, EdgeConfig, PeerConfig, VipConfig};
use crate::control;
use crate::fsm::{Settings, State};
use crate::lb::Lb;
use crate::metrics::Metrics;
use crate::network::{self, Transport};
use crate::peer::{self, PeerHandle, PeerSpec, Published};
use crate::rib::{RouteAttrs, RouteSet};
use crate::vip::Addresses;

/// Why the daemon could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// The config is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] yagura_daemon::ConfigError),
    /// A socket or netlink operation failed at start.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A peer's settings could not be used (e.g. its MD5 password is unreadable).
    #[error("{0}")]
    Peer(String),
    /// The VIP interface could not be managed.
    #[error(transparent)]
    Vip(#[from] crate::vip::VipError),
    /// The load balancer could not start (a listener socket, a CA file).
    #[error(transparent)]
    Lb(#[from] crate::lb::LbError),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EdgeError {
    let what = what.into();
    move |source| EdgeError::Io { what, source }
}

/// Requests to the instance.
#[derive(Debug)]
pub enum Command {
    /// Set a hook-driven VIP's announce state.
    SetAnnounce {
        /// VIP name.
        vip: String,
        /// Announce (true) or withdraw (false).
        announce: bool,
        /// The result.
        reply: oneshot::Sender<Result<(), HookError>>,
    },
    /// Drain and exit.
    Drain {
        /// Fired when the drain has started.
        reply: oneshot::Sender<()>,
    },
    /// The status document.
    Status {
        /// The result.
        reply: oneshot::Sender<Value>,
    },
}

/// Why the announce hook refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// No VIP of that name.
    #[error("no VIP named `{0}`")]
    UnknownVip(String),
    /// The VIP's condition is not `hook`.
    #[error("VIP `{0}` is announced `{1}`, not by the hook")]
    NotHookDriven(String, &'static str),
    /// The daemon is draining or gone.
    #[error("the edge daemon is draining or stopped")]
    Stopped,
}

/// The announce-condition hook: whoever decides whether a VIP should be reachable through this edge (the
/// control API today, the L4 load balancer's backend health next) calls [`AnnounceHook::set`]. Only VIPs with
/// `announce = "hook"` follow it.
#[derive(Debug, Clone)]
pub struct AnnounceHook {
    tx: mpsc::Sender<Command>,
}

impl AnnounceHook {
    pub(crate) fn new(tx: mpsc::Sender<Command>) -> Self {
        Self { tx }
    }

    /// Announces (`true`) or withdraws (`false`) the VIP named `vip`.
    pub async fn set(&self, vip: &str, announce: bool) -> Result<(), HookError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::SetAnnounce {
                vip: vip.to_string(),
                announce,
                reply,
            })
            .await
            .map_err(|_| HookError::Stopped)?;
        rx.await.map_err(|_| HookError::Stopped)?
    }
}

fn announce_name(a: AnnounceWhen) -> &'static str {
    match a {
        AnnounceWhen::Always => "always",
        AnnounceWhen::Hook => "hook",
        AnnounceWhen::Never => "never",
    }
}

/// Builds a peer's runtime spec from the config.
pub fn peer_spec(cfg: &EdgeConfig, p: &PeerConfig, restarting: bool) -> Result<PeerSpec, String> {
    let md5 = p.md5_password()?;
    let gr = p
        .graceful_restart
        .filter(|g| g.enabled)
        .map(|g| u16::try_from(g.restart_time.as_secs()).unwrap_or(4095));
    Ok(PeerSpec {
        settings: Settings {
            local_as: cfg.asn,
            router_id: cfg.router_id,
            peer_as: p.asn,
            hold_time: u16::try_from(p.hold_time.as_secs()).unwrap_or(u16::MAX),
            keepalive: p.keepalive,
            mode: p.mode,
            connect_retry: p.connect_retry,
            connect_retry_max: p.connect_retry_max,
            graceful_restart: gr,
            restarting: restarting && gr.is_some(),
            families: vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST],
        },
        transport: Transport {
            md5_key: md5.map(String::into_bytes),
            ttl_security: p.ttl_security,
        },
        bfd: p.bfd_timing(&cfg.bfd),
        config: p.clone(),
    })
}

struct Instance {
    cfg: EdgeConfig,
    path: PathBuf,
    peers: BTreeMap<String, PeerHandle>,
    hook: BTreeMap<String, bool>,
    /// VIPs whose route is published, by name.
    announced: BTreeMap<String, IpNet>,
    routes: watch::Sender<Published>,
    addresses: Option<Addresses>,
    listeners: Vec<Arc<TcpListener>>,
    bfd: Option<Bfd>,
    metrics: Arc<Metrics>,
    runtime: RuntimeMetrics,
    restarting: bool,
    draining: bool,
    ready: Arc<AtomicBool>,
    started: SystemTime,
    lb: Lb,
}

/// Runs the daemon with the config at `path` until it is drained (SIGTERM or the control API).
pub async fn run(path: &Path) -> Result<(), EdgeError> {
    let loaded = dconfig::load::<EdgeConfig>(path)?;
    if !loaded.warnings.is_empty() {
        warn!("{}", loaded.warnings.trim_end());
    }
    let cfg = loaded.config;
    let mut sig = signals::install().map_err(io_err("installing signal handlers"))?;
    let mut registry = Registry::default();
    let runtime = RuntimeMetrics::register(&mut registry, "edge");
    let metrics = Arc::new(Metrics::register(&mut registry));
    let (cmd_tx, mut cmd_rx) = mpsc::channel::<Command>(64);
    let mut lb = Lb::new(&mut registry, AnnounceHook::new(cmd_tx.clone()));
    let prepared = lb.prepare(&cfg.listeners, &cfg.pools, &cfg.vips)?;
    lb.commit(prepared);
    let registry = Arc::new(registry);
    let ready = Arc::new(AtomicBool::new(false));

    let addresses = if cfg.manage_addresses {
        Some(Addresses::new(&cfg.interface)?)
    } else {
        None
    };
    // A VIP address still on the interface means the last run ended without a drain (crash, kill, restart):
    // this start is a graceful restart (RFC 4724 Restart State).
    let mut restarting = false;
    if let Some(a) = &addresses {
        for v in cfg.vips.iter().filter(|v| v.wants_address()) {
            if a.contains(&v.prefix).await.unwrap_or(false) {
                restarting = true;
            }
        }
    }
    if restarting {
        info!("VIP addresses from a previous run are present: starting as a restarting speaker");
    }

    let bfd_token = CancellationToken::new();
    let bfd = if cfg.peers.iter().any(|p| p.bfd_timing(&cfg.bfd).is_some()) {
        Some(Bfd::start(metrics.clone(), bfd_token.clone()).map_err(io_err("starting BFD"))?)
    } else {
        None
    };

    let (accept_tx, mut accept_rx) = mpsc::channel::<(TcpStream, SocketAddr)>(32);
    let mut listeners = Vec::new();
    for addr in &cfg.listen {
        let l = Arc::new(network::listen(*addr).map_err(io_err(format!("listening on {addr}")))?);
        info!(%addr, "BGP listener");
        let tx = accept_tx.clone();
        let l2 = l.clone();
        tokio::spawn(async move {
            loop {
                match l2.accept().await {
                    Ok(c) => {
                        if tx.send(c).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        listeners.push(l);
    }

    let http_shutdown = CancellationToken::new();
    let control_listener = TcpListener::bind(cfg.control)
        .await
        .map_err(io_err(format!("control API on {}", cfg.control)))?;
    info!(addr = %cfg.control, "control API and /metrics");
    let router = control::router(cmd_tx.clone())
        .merge(http::metrics_router(registry))
        .merge(http::health_router(ready.clone()));
    let token = http_shutdown.clone();
    tokio::spawn(async move {
        if let Err(e) = http::serve(control_listener, router, token).await {
            error!(error = %e, "control API stopped");
        }
    });

    let (routes, _) = watch::channel(Published::default());
    let mut inst = Instance {
        hook: BTreeMap::new(),
        announced: BTreeMap::new(),
        peers: BTreeMap::new(),
        path: path.to_path_buf(),
        routes,
        addresses,
        listeners,
        bfd,
        metrics,
        runtime,
        restarting,
        draining: false,
        ready,
        started: SystemTime::now(),
        lb,
        cfg,
    };
    inst.set_listener_keys(&[]);
    let peers = inst.cfg.peers.clone();
    for p in &peers {
        inst.start_peer(p)?;
    }
    inst.update_routes().await;

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let shutdown = sig.shutdown.clone();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(()) = sig.reload.recv() => inst.reload().await,
            Some(cmd) = cmd_rx.recv() => {
                match cmd {
                    Command::Drain { reply } => {
                        let _ = reply.send(());
                        break;
                    }
                    other => inst.command(other).await,
                }
            }
            Some((stream, from)) = accept_rx.recv() => inst.accepted(stream, from).await,
            _ = tick.tick() => inst.tick(),
        }
    }
    // Answer status requests while draining.
    let drain = inst.drain();
    tokio::pin!(drain);
    loop {
        tokio::select! {
            () = &mut drain => break,
            Some(cmd) = cmd_rx.recv() => match cmd {
                Command::Status { reply } => { let _ = reply.send(json!({"draining": true})); }
                Command::SetAnnounce { reply, .. } => { let _ = reply.send(Err(HookError::Stopped)); }
                Command::Drain { reply } => { let _ = reply.send(()); }
            },
        }
    }
    bfd_token.cancel();
    http_shutdown.cancel();
    info!("drained; exiting");
    Ok(())
}

impl Instance {
    fn start_peer(&mut self, p: &PeerConfig) -> Result<(), EdgeError> {
        let spec = peer_spec(&self.cfg, p, self.restarting).map_err(EdgeError::Peer)?;
        let h = peer::spawn(
            spec,
            self.routes.subscribe(),
            self.bfd.as_ref(),
            self.metrics.clone(),
        )
        .map_err(io_err(format!("peer {}", p.name)))?;
        info!(peer = %p.name, address = %p.address, "peer started");
        self.peers.insert(p.name.clone(), h);
        Ok(())
    }

    /// Installs MD5 keys on the listeners for every peer that has one, and removes those of `removed` peers.
    fn set_listener_keys(&self, removed: &[PeerConfig]) {
        for l in &self.listeners {
            for p in removed
                .iter()
                .filter(|p| p.md5_password_env.is_some() || p.md5_password_file.is_some())
            {
                let _ = network::set_listener_md5(l, p.address, None);
            }
            for p in &self.cfg.peers {
                match p.md5_password() {
                    Ok(Some(key)) => {
                        if let Err(e) =
                            network::set_listener_md5(l, p.address, Some(key.as_bytes()))
                        {
                            error!(peer = %p.name, error = %e, "cannot install the TCP MD5 key on the listener");
                        }
                    }
                    Ok(None) => {}
                    Err(e) => error!("{e}"),
                }
            }
        }
    }

    fn wanted(&self) -> Vec<VipConfig> {
        if self.draining {
            return Vec::new();
        }
        self.cfg
            .vips
            .iter()
            .filter(|v| match v.announce {
                AnnounceWhen::Always => true,
                AnnounceWhen::Hook => self.hook.get(&v.name).copied().unwrap_or(false),
                AnnounceWhen::Never => false,
            })
            .cloned()
            .collect()
    }

    /// Brings addresses and published routes to what the config and the hook want: addresses go on before a
    /// route is announced, and come off after its withdrawal reached every peer.
    async fn update_routes(&mut self) {
        let wanted = self.wanted();
        for v in &wanted {
            if v.wants_address() && !self.announced.contains_key(&v.name) {
                if let Some(a) = &self.addresses {
                    if let Err(e) = a.add(&v.prefix).await {
                        error!(vip = %v.name, error = %e, "cannot add the VIP address; not announcing it");
                        continue;
                    }
                }
            }
        }
        let mut routes = RouteSet::new();
        let mut now: BTreeMap<String, IpNet> = BTreeMap::new();
        for v in &wanted {
            if v.wants_address() && self.addresses.is_some() {
                // Skip VIPs whose address could not be added (logged above).
                if let Some(a) = &self.addresses {
                    if !self.announced.contains_key(&v.name)
                        && !a.contains(&v.prefix).await.unwrap_or(false)
                    {
                        continue;
                    }
                }
            }
            routes.insert(
                v.prefix,
                RouteAttrs {
                    communities: v.parsed_communities(),
                    large_communities: v.parsed_large_communities(),
                    med: v.med,
                },
            );
            now.insert(v.name.clone(), v.prefix);
        }
        let removed: Vec<(String, IpNet)> = self
            .announced
            .iter()
            .filter(|(n, p)| now.get(*n) != Some(*p))
            .map(|(n, p)| (n.clone(), *p))
            .collect();
        let changed = removed.len()
            + now
                .keys()
                .filter(|n| !self.announced.contains_key(*n))
                .count();
        let version = self.publish(routes);
        for v in &self.cfg.vips {
            self.metrics.vip(&v.name, now.contains_key(&v.name));
        }
        for (n, p) in now.iter().filter(|(n, _)| !self.announced.contains_key(*n)) {
            info!(vip = %n, prefix = %p, "VIP announced");
        }
        self.announced = now;
        if changed == 0 {
            return;
        }
        if !removed.is_empty() {
            for (n, p) in &removed {
                info!(vip = %n, prefix = %p, "VIP withdrawn");
            }
            self.wait_synced(version, Duration::from_secs(3)).await;
            if let Some(a) = &self.addresses {
                for (_, p) in &removed {
                    let still = self.announced.values().any(|q| q == p);
                    if !still {
                        if let Err(e) = a.remove(p).await {
                            warn!(prefix = %p, error = %e, "cannot remove the VIP address");
                        }
                    }
                }
            }
        }
    }

    fn publish(&self, routes: RouteSet) -> u64 {
        let mut version = 0;
        self.routes.send_modify(|p| {
            if *p.routes != routes {
                p.version += 1;
                p.routes = Arc::new(routes);
            }
            version = p.version;
        });
        version
    }

    /// Waits until every peer has sent route version `version` (or is not Established), up to `deadline`.
    async fn wait_synced(&self, version: u64, deadline: Duration) -> bool {
        let mut rxs: Vec<_> = self.peers.values().map(|p| p.status.clone()).collect();
        let all = async {
            for rx in &mut rxs {
                let _ = rx
                    .wait_for(|s| s.synced_version >= version || s.state != State::Established)
                    .await;
            }
        };
        tokio::time::timeout(deadline, all).await.is_ok()
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::SetAnnounce {
                vip,
                announce,
                reply,
            } => {
                let r = match self.cfg.vips.iter().find(|v| v.name == vip) {
                    None => Err(HookError::UnknownVip(vip)),
                    Some(v) if v.announce != AnnounceWhen::Hook => {
                        Err(HookError::NotHookDriven(vip, announce_name(v.announce)))
                    }
                    Some(_) => {
                        self.hook.insert(vip, announce);
                        self.update_routes().await;
                        Ok(())
                    }
                };
                let _ = reply.send(r);
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Command::Drain { reply } => {
                let _ = reply.send(());
            }
        }
    }

    async fn accepted(&mut self, stream: TcpStream, from: SocketAddr) {
        let ip = network::canonical(from.ip());
        let Some(p) = self.peers.values().find(|p| p.config.address == ip) else {
            self.metrics.dropped("bgp_unknown_peer");
            warn!(%from, "connection from an address that is not a peer; closed");
            return;
        };
        if p.cmd.send(peer::PeerCmd::Inbound(stream)).await.is_err() {
            self.metrics.dropped("bgp_peer_stopped");
        }
    }

    fn tick(&self) {
        if !self.ready.load(Ordering::Relaxed) {
            let up = self.peers.is_empty()
                || self
                    .peers
                    .values()
                    .any(|p| p.status.borrow().state == State::Established);
            if up {
                self.ready.store(true, Ordering::Relaxed);
            }
        }
    }

    fn status(&self) -> Value {
        let secs = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        };
        let sessions: Vec<Value> = self
            .peers
            .values()
            .map(|p| {
                let s = p.status.borrow().clone();
                let bfd = s.bfd.as_ref().map(|b| {
                    json!({
                        "state": format!("{:?}", b.state).to_lowercase(),
                        "since": secs(b.since),
                        "last_down": b.last_down.map(secs),
                        "detection_time_ms": b.detection_time.map(|d| d.as_millis() as u64),
                    })
                });
                json!({
                    "name": p.config.name,
                    "address": p.config.address,
                    "asn": p.config.asn,
                    "state": s.state.as_str(),
                    "uptime_seconds": s.established_at.and_then(|t| t.elapsed().ok()).map(|d| d.as_secs()),
                    "flaps": s.flaps,
                    "prefixes_sent": s.prefixes_sent,
                    "prefixes_received": s.prefixes_received,
                    "local_address": s.local_address.map(|a| a.to_string()),
                    "hold_time_seconds": s.negotiated.as_ref().map(|n| n.hold_time.as_secs()),
                    "families": s.negotiated.as_ref().map(|n| n.families.iter().map(|f| f.to_string()).collect::<Vec<_>>()),
                    "graceful_restart": s.negotiated.as_ref().map(|n| n.graceful_restart),
                    "stale_until": s.stale_until.map(secs),
                    "last_error": s.last_error,
                    "bfd": bfd,
                })
            })
            .collect();
        let vips: Vec<Value> = self
            .cfg
            .vips
            .iter()
            .map(|v| {
                json!({
                    "name": v.name,
                    "prefix": v.prefix.to_string(),
                    "pool": v.pool,
                    "announce": announce_name(v.announce),
                    "announced": self.announced.contains_key(&v.name),
                })
            })
            .collect();
        json!({
            "asn": self.cfg.asn,
            "router_id": self.cfg.router_id,
            "draining": self.draining,
            "pools": self.lb.status(),
            "restarting": self.restarting,
            "started": secs(self.started),
            "sessions": sessions,
            "vips": vips,
        })
    }

    async fn reload(&mut self) {
        let loaded = match dconfig::load::<EdgeConfig>(&self.path) {
            Ok(l) => l,
            Err(e) => {
                error!("reload refused, the running config stays in force:\n{e}");
                self.runtime.reload(false);
                return;
            }
        };
        let new = loaded.config;
        // Check every peer's settings (e.g. secrets) before touching anything.
        for p in &new.peers {
            if let Err(e) = peer_spec(&new, p, false) {
                error!("reload refused, the running config stays in force: {e}");
                self.runtime.reload(false);
                return;
            }
        }
        for (what, old, now) in [
            (
                "listen",
                format!("{:?}", self.cfg.listen),
                format!("{:?}", new.listen),
            ),
            (
                "control",
                self.cfg.control.to_string(),
                new.control.to_string(),
            ),
            (
                "interface",
                self.cfg.interface.clone(),
                new.interface.clone(),
            ),
        ] {
            if old != now {
                warn!("`{what}` changed; it takes effect at the next start");
            }
        }
        let prepared = match self.lb.prepare(&new.listeners, &new.pools, &new.vips) {
            Ok(p) => p,
            Err(e) => {
                error!("reload refused, the running config stays in force: {e}");
                self.runtime.reload(false);
                return;
            }
        };
        let global_changed = new.asn != self.cfg.asn || new.router_id != self.cfg.router_id;
        let old_peers = std::mem::take(&mut self.peers);
        let mut removed = Vec::new();
        let mut kept = 0;
        let mut stops = Vec::new();
        for (name, h) in old_peers {
            match new.peers.iter().find(|p| p.name == name) {
                Some(p)
                    if !global_changed
                        && *p == h.config
                        && p.bfd_timing(&new.bfd) == h.bfd_timing =>
                {
                    kept += 1;
                    self.peers.insert(name, h);
                }
                Some(_) => stops.push((h, cease_subcode::OTHER_CONFIGURATION_CHANGE)),
                None => {
                    removed.push(h.config.clone());
                    self.metrics.remove_peer(&name);
                    stops.push((h, cease_subcode::PEER_DECONFIGURED));
                }
            }
        }
        let restarted = stops.len() - removed.len();
        futures::future::join_all(
            stops
                .into_iter()
                .map(|(h, sub)| h.stop(sub, Duration::from_secs(2))),
        )
        .await;
        self.cfg = new;
        self.lb.commit(prepared);
        // The old tasks have released their BFD sessions; start the new and changed ones.
        if self.bfd.is_none()
            && self
                .cfg
                .peers
                .iter()
                .any(|p| p.bfd_timing(&self.cfg.bfd).is_some())
        {
            match Bfd::start(self.metrics.clone(), CancellationToken::new()) {
                Ok(b) => self.bfd = Some(b),
                Err(e) => error!(error = %e, "cannot start BFD"),
            }
        }
        let peers = self.cfg.peers.clone();
        let missing: Vec<PeerConfig> = peers
            .into_iter()
            .filter(|p| !self.peers.contains_key(&p.name))
            .collect();
        for p in &missing {
            if let Err(e) = self.start_peer(p) {
                error!(error = %e, "peer not started");
            }
        }
        self.set_listener_keys(&removed);
        self.hook
            .retain(|n, _| self.cfg.vips.iter().any(|v| &v.name == n));
        self.update_routes().await;
        self.runtime.reload(true);
        info!(
            kept,
            restarted,
            removed = removed.len(),
            "configuration reloaded"
        );
    }

    async fn drain(&mut self) {
        self.draining = true;
        self.metrics.draining();
        info!(wait = ?self.cfg.drain_wait, "draining: withdrawing every VIP");
        let announced: Vec<IpNet> = self.announced.values().copied().collect();
        let version = self.publish(RouteSet::new());
        for v in &self.cfg.vips {
            self.metrics.vip(&v.name, false);
        }
        self.announced.clear();
        if !self.wait_synced(version, Duration::from_secs(5)).await {
            warn!("some peers did not take the withdrawal in time");
        }
        info!("withdrawn; waiting before closing the sessions");
        tokio::time::sleep(self.cfg.drain_wait).await;
        self.lb.stop_accepting();
        let active = self.lb.active();
        if active > 0 {
            info!(active, timeout = ?self.cfg.drain_timeout, "stopped accepting; waiting for proxied connections");
            let left = self.lb.wait_idle(self.cfg.drain_timeout).await;
            if left > 0 {
                warn!(
                    left,
                    "drain timeout: closing the remaining proxied connections"
                );
            } else {
                info!("every proxied connection finished");
            }
        }
        let peers = std::mem::take(&mut self.peers);
        futures::future::join_all(peers.into_values().map(|h| {
            h.stop(
                cease_subcode::ADMINISTRATIVE_SHUTDOWN,
                Duration::from_secs(2),
            )
        }))
        .await;
        if let Some(a) = &self.addresses {
            for p in announced {
                if let Err(e) = a.remove(&p).await {
                    warn!(prefix = %p, error = %e, "cannot remove the VIP address");
                }
            }
        }
    }
}
