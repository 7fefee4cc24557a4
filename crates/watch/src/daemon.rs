//! The running daemon: starts the store writer, the decoder threads, the listeners and the HTTP server;
//! applies a reloaded config (restarting only the listeners that changed); drains on shutdown.
//!
//! The daemon plumbing shared with `edge` and `gate` (config loading with diagnostics, signals, logs,
//! `/metrics`, `/healthz`) comes from `yagura-daemon`. Later watch features (heartbeats, the Prometheus probe,
//! the disk guard, SNMP, alert delivery) start here as sibling tasks of the collectors.

use crate::api::{self, ApiState};
use crate::collect::{FlowDecoder, FlowInput};
use crate::config::WatchConfig;
use crate::listen::{self, FlowDatagram, SyslogItem};
use crate::metrics::Metrics;
use crate::pipeline;
use crate::store::{StoreError, Writer, WriterCmd, WriterLimits};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use yagura_daemon::RuntimeMetrics;

/// How long shutdown waits for queued data to reach the store.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Why the daemon could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The config is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] yagura_daemon::ConfigError),
    /// The store could not be opened.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// A socket could not be bound.
    #[error("cannot listen on {what} {addr}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another I/O failure (signals, runtime, threads).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Alert delivery could not start (a notifier's or peer's URL variable is unset, the spool is unusable).
    #[error("alerts: {0}")]
    Alert(#[from] yagura_alert::AlertError),
}

/// Which kind of listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ListenerKind {
    /// sFlow UDP.
    Sflow,
    /// NetFlow/IPFIX UDP.
    Netflow,
    /// Syslog UDP.
    SyslogUdp,
    /// Syslog TCP.
    SyslogTcp,
}

impl ListenerKind {
    fn name(self) -> &'static str {
        match self {
            Self::Sflow => "sflow",
            Self::Netflow => "netflow",
            Self::SyslogUdp => "syslog udp",
            Self::SyslogTcp => "syslog tcp",
        }
    }

    fn configured(self, c: &WatchConfig) -> &[SocketAddr] {
        match self {
            Self::Sflow => &c.listen.sflow,
            Self::Netflow => &c.listen.netflow,
            Self::SyslogUdp => &c.listen.syslog_udp,
            Self::SyslogTcp => &c.listen.syslog_tcp,
        }
    }

    const ALL: [ListenerKind; 4] = [Self::Sflow, Self::Netflow, Self::SyslogUdp, Self::SyslogTcp];
}

#[derive(Debug)]
struct ListenerHandle {
    bound: SocketAddr,
    stop: CancellationToken,
}

/// A running watch daemon.
#[derive(Debug)]
pub struct Daemon {
    config: WatchConfig,
    metrics: Arc<Metrics>,
    runtime_metrics: RuntimeMetrics,
    registry: Arc<Registry>,
    flow_tx: Option<mpsc::Sender<FlowDatagram>>,
    syslog_tx: Option<mpsc::Sender<SyslogItem>>,
    writer_tx: SyncSender<WriterCmd>,
    logs_tx: SyncSender<WriterCmd>,
    listeners: HashMap<(ListenerKind, SocketAddr), ListenerHandle>,
    threads: Vec<std::thread::JoinHandle<()>>,
    http_addr: SocketAddr,
    http_stop: CancellationToken,
    http_task: JoinHandle<std::io::Result<()>>,
    aux_stop: CancellationToken,
    api: Arc<ApiState>,
    top_n: Arc<AtomicUsize>,
    local_offset: Arc<AtomicI32>,
    ready: Arc<AtomicBool>,
    /// Where every guard reports alert state.
    alerts: yagura_alert::SharedSink,
    /// Alert delivery, heartbeats and peers (`[alerts]`, `[[heartbeats]]`, `[[peers]]`).
    alerting: crate::guard::alerting::Alerting,
    /// SNMP polling (restarted on reload).
    snmp: crate::snmp::SnmpGuard,
    /// The Prometheus/Alertmanager probes and the disk guard.
    storage_guards: crate::guard::storage::StorageGuards,
}

fn spawn_thread(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, WatchError> {
    Ok(std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)?)
}

impl Daemon {
    /// Opens the store, starts the workers, binds every listener and the HTTP server.
    pub async fn start(config: WatchConfig) -> Result<Self, WatchError> {
        let mut registry = Registry::default();
        let runtime_metrics = RuntimeMetrics::register(&mut registry, "watch");
        let metrics = Arc::new(Metrics::register(
            &mut registry,
            config.metrics.max_exporters,
        ));
        // The alert sink every guard reports to (heartbeats, probes, disk guard, SNMP).
        // The alert engine (logs every change; delivers to `[[alerts.notifiers]]`, spooling what fails).
        let alerting_metrics = crate::guard::alerting::AlertingMetrics::register(&mut registry);
        let alerting = crate::guard::alerting::Alerting::start(&config, alerting_metrics)?;
        let alerts: yagura_alert::SharedSink = alerting.sink();
        let mut storage_guards = crate::guard::storage::StorageGuards::register(&mut registry);
        let snmp_metrics = crate::snmp::SnmpMetrics::register(&mut registry);
        let registry = Arc::new(registry);

        let limits = WriterLimits::from_config(&config);
        let db = config.storage.path.clone();
        let mut writer = {
            let (db, m) = (db.clone(), metrics.clone());
            tokio::task::spawn_blocking(move || Writer::open(&db, limits, m))
                .await
                .map_err(std::io::Error::other)??
        };
        // Syslog goes to the log store on its own thread; flows and counters to SQLite on another.
        let logs = writer.take_logs();
        let (writer_tx, writer_rx) = std::sync::mpsc::sync_channel(config.queues.store);
        let (logs_tx, logs_rx) = std::sync::mpsc::sync_channel(config.queues.store);
        let mut threads = vec![spawn_thread("watch-store", move || writer.run(writer_rx))?];
        if let Some(logs) = logs {
            threads.push(spawn_thread("watch-logs", move || logs.run(logs_rx))?);
        }

        let (flow_tx, flow_rx) = mpsc::channel(config.queues.flow_datagrams);
        let decoder = FlowDecoder::new(
            config.flow.template_timeout.as_secs(),
            config.flow.max_templates_per_exporter,
            config.metrics.max_interfaces,
        );
        {
            let (tx, m) = (writer_tx.clone(), metrics.clone());
            threads.push(spawn_thread("watch-flow", move || {
                pipeline::flow_worker(flow_rx, tx, m, decoder)
            })?);
        }
        let (syslog_tx, syslog_rx) = mpsc::channel(config.queues.syslog_messages);
        let local_offset = Arc::new(AtomicI32::new(i32::from(
            config.syslog.local_offset_minutes,
        )));
        {
            let (tx, m, off) = (logs_tx.clone(), metrics.clone(), local_offset.clone());
            threads.push(spawn_thread("watch-syslog", move || {
                pipeline::syslog_worker(syslog_rx, tx, m, off)
            })?);
        }

        let api = Arc::new(ApiState {
            db: db.clone(),
            max_rows: AtomicUsize::new(config.http.max_rows),
            if_names: crate::snmp::IfNames::default(),
        });
        let ready = Arc::new(AtomicBool::new(false));
        let router = api::router(api.clone())
            .merge(yagura_daemon::http::metrics_router(registry.clone()))
            .merge(yagura_daemon::http::health_router(ready.clone()))
            .merge(alerting.router());
        let http = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .map_err(|source| WatchError::Bind {
                what: "http",
                addr: config.http.listen,
                source,
            })?;
        let http_addr = http.local_addr()?;
        let http_stop = CancellationToken::new();
        let http_task = tokio::spawn(yagura_daemon::http::serve(http, router, http_stop.clone()));

        let aux_stop = CancellationToken::new();
        let top_n = Arc::new(AtomicUsize::new(config.metrics.top_n));
        tokio::spawn(api::top_refresher(
            db,
            metrics.clone(),
            top_n.clone(),
            Duration::from_secs(60),
            aux_stop.clone(),
        ));
        storage_guards.start(&config, &alerts, &aux_stop);

        let mut snmp =
            crate::snmp::SnmpGuard::new(snmp_metrics, alerts.clone(), api.if_names.clone());
        snmp.start(&config.snmp, &aux_stop);

        let mut d = Self {
            config: config.clone(),
            metrics,
            runtime_metrics,
            registry,
            flow_tx: Some(flow_tx),
            syslog_tx: Some(syslog_tx),
            writer_tx,
            logs_tx,
            listeners: HashMap::new(),
            threads,
            http_addr,
            http_stop,
            http_task,
            aux_stop,
            api,
            top_n,
            local_offset,
            ready,
            alerts,
            alerting,
            snmp,
            storage_guards,
        };
        if let Err(e) = d.sync_listeners(&config) {
            d.shutdown().await;
            return Err(e);
        }
        d.ready.store(true, Ordering::Relaxed);
        tracing::info!(
            http = %d.http_addr,
            store = %d.config.storage.path.display(),
            listeners = ?d.bound(),
            "yagura watch running"
        );
        Ok(d)
    }

    /// The sink guards report alert state to.
    pub fn alerts(&self) -> &yagura_alert::SharedSink {
        &self.alerts
    }

    /// Where the HTTP server listens.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The bound address of every listener (useful with port 0).
    pub fn bound(&self) -> Vec<(ListenerKind, SocketAddr)> {
        let mut v: Vec<_> = self
            .listeners
            .iter()
            .map(|((k, _), h)| (*k, h.bound))
            .collect();
        v.sort();
        v
    }

    /// The first bound address of a kind.
    pub fn bound_of(&self, kind: ListenerKind) -> Option<SocketAddr> {
        self.bound()
            .into_iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, a)| a)
    }

    /// The metrics registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The config in force.
    pub fn config(&self) -> &WatchConfig {
        &self.config
    }

    /// Starts listeners that `config` has and the daemon lacks; stops those it no longer has. On a bind error
    /// the listeners already started stay, and the error is returned.
    fn sync_listeners(&mut self, config: &WatchConfig) -> Result<(), WatchError> {
        for kind in ListenerKind::ALL {
            let want = kind.configured(config);
            let gone: Vec<_> = self
                .listeners
                .keys()
                .filter(|(k, a)| *k == kind && !want.contains(a))
                .copied()
                .collect();
            for key in gone {
                if let Some(h) = self.listeners.remove(&key) {
                    h.stop.cancel();
                    tracing::info!(listener = kind.name(), addr = %key.1, "listener stopped");
                }
            }
            for addr in want {
                if self.listeners.contains_key(&(kind, *addr)) {
                    continue;
                }
                let h = self.spawn_listener(kind, *addr, config)?;
                tracing::info!(listener = kind.name(), addr = %h.bound, "listening");
                self.listeners.insert((kind, *addr), h);
            }
        }
        Ok(())
    }

    fn spawn_listener(
        &self,
        kind: ListenerKind,
        addr: SocketAddr,
        c: &WatchConfig,
    ) -> Result<ListenerHandle, WatchError> {
        let bind_err = |source| WatchError::Bind {
            what: kind.name(),
            addr,
            source,
        };
        let stop = CancellationToken::new();
        let m = self.metrics.clone();
        let (Some(flow_tx), Some(syslog_tx)) = (self.flow_tx.clone(), self.syslog_tx.clone())
        else {
            return Err(WatchError::Io(std::io::Error::other("daemon is stopping")));
        };
        let bound = match kind {
            ListenerKind::Sflow | ListenerKind::Netflow => {
                let s = listen::bind_udp(addr, c.queues.udp_recv_buffer).map_err(bind_err)?;
                let bound = s.local_addr()?;
                let input = if kind == ListenerKind::Sflow {
                    FlowInput::Sflow
                } else {
                    FlowInput::Netflow
                };
                tokio::spawn(listen::flow_udp_loop(s, input, flow_tx, m, stop.clone()));
                bound
            }
            ListenerKind::SyslogUdp => {
                let s = listen::bind_udp(addr, c.queues.udp_recv_buffer).map_err(bind_err)?;
                let bound = s.local_addr()?;
                tokio::spawn(listen::syslog_udp_loop(s, syslog_tx, m, stop.clone()));
                bound
            }
            ListenerKind::SyslogTcp => {
                let l = listen::bind_tcp(addr).map_err(bind_err)?;
                let bound = l.local_addr()?;
                tokio::spawn(listen::syslog_tcp_loop(
                    l,
                    syslog_tx,
                    m,
                    c.queues.max_tcp_connections,
                    c.queues.max_message_bytes,
                    stop.clone(),
                ));
                bound
            }
        };
        Ok(ListenerHandle { bound, stop })
    }

    /// Applies a new, valid config: retention, size cap, row and label limits take effect at once; listeners
    /// that changed are restarted. Changes to `storage.path`, `http.listen` and queue capacities need a restart
    /// (logged). Returns an error if a new listener could not be bound (the others stay as they were).
    pub async fn reload(&mut self, new: WatchConfig) -> Result<(), WatchError> {
        let old = self.config.clone();
        if new.storage.path != old.storage.path
            || new.http.listen != old.http.listen
            || new.queues != old.queues
        {
            tracing::warn!(
                "storage.path, http.listen and [queues] changes take effect at the next restart"
            );
        }
        let limits = WriterLimits::from_config(&new);
        let (tx, ltx) = (self.writer_tx.clone(), self.logs_tx.clone());
        let _ = tokio::task::spawn_blocking(move || {
            let _ = ltx.send(WriterCmd::Limits(limits.clone()));
            tx.send(WriterCmd::Limits(limits)).is_ok()
        })
        .await;
        self.api
            .max_rows
            .store(new.http.max_rows, Ordering::Relaxed);
        self.top_n.store(new.metrics.top_n, Ordering::Relaxed);
        self.local_offset.store(
            i32::from(new.syslog.local_offset_minutes),
            Ordering::Relaxed,
        );
        if new.prometheus != old.prometheus
            || new.alertmanager != old.alertmanager
            || new.disk != old.disk
        {
            self.storage_guards
                .start(&new, &self.alerts, &self.aux_stop);
        }
        // Always: a reload is also how rotated SNMP secrets (environment) are picked up; baselines stay.
        self.snmp.start(&new.snmp, &self.aux_stop);
        let alerting = self.alerting.reload(&new).await;
        let result = self
            .sync_listeners(&new)
            .and(alerting.map_err(WatchError::from));
        // Keep what could not be applied in the recorded config so a later reload retries it.
        let mut applied = new;
        applied.storage.path = old.storage.path;
        applied.http.listen = old.http.listen;
        applied.queues = old.queues;
        if result.is_err() {
            for kind in ListenerKind::ALL {
                let now: Vec<SocketAddr> = self
                    .listeners
                    .keys()
                    .filter(|(k, _)| *k == kind)
                    .map(|(_, a)| *a)
                    .collect();
                match kind {
                    ListenerKind::Sflow => applied.listen.sflow = now,
                    ListenerKind::Netflow => applied.listen.netflow = now,
                    ListenerKind::SyslogUdp => applied.listen.syslog_udp = now,
                    ListenerKind::SyslogTcp => applied.listen.syslog_tcp = now,
                }
            }
        }
        self.config = applied;
        result
    }

    /// Asks the writer to commit now and waits for it (tests and drain).
    pub async fn flush(&self) {
        let txs = [self.writer_tx.clone(), self.logs_tx.clone()];
        let _ = tokio::task::spawn_blocking(move || {
            for tx in txs {
                let (ack, done) = std::sync::mpsc::channel();
                if tx.send(WriterCmd::Flush(ack)).is_ok() {
                    let _ = done.recv_timeout(Duration::from_secs(30));
                }
            }
        })
        .await;
    }

    /// Stops the listeners, lets the queues drain into the store (up to a deadline), commits, and stops HTTP.
    pub async fn shutdown(mut self) {
        self.ready.store(false, Ordering::Relaxed);
        for (_, h) in self.listeners.drain() {
            h.stop.cancel();
        }
        self.aux_stop.cancel();
        // Pending notifications go to the spool (and get a last chance to be delivered).
        self.alerting.shutdown().await;
        self.flow_tx = None;
        self.syslog_tx = None;
        let threads = std::mem::take(&mut self.threads);
        let (writer_tx, logs_tx) = (self.writer_tx, self.logs_tx);
        let join = tokio::task::spawn_blocking(move || {
            drop(writer_tx);
            drop(logs_tx);
            for t in threads {
                let _ = t.join();
            }
        });
        yagura_daemon::drain("the store writer and decoders", DRAIN_DEADLINE, join).await;
        self.http_stop.cancel();
        let _ = yagura_daemon::drain("HTTP requests", Duration::from_secs(5), self.http_task).await;
        tracing::info!("yagura watch stopped");
    }
}

/// Runs the daemon from a config file until SIGTERM/SIGINT; SIGHUP reloads (a bad file keeps the old config).
pub async fn run(path: &Path) -> Result<(), WatchError> {
    let loaded = yagura_daemon::config::load::<WatchConfig>(path)?;
    for w in loaded.warnings.lines().filter(|l| !l.trim().is_empty()) {
        tracing::warn!("{w}");
    }
    let mut signals = yagura_daemon::signals::install()?;
    let mut daemon = Daemon::start(loaded.config).await?;
    loop {
        tokio::select! {
            _ = signals.shutdown.cancelled() => break,
            Some(()) = signals.reload.recv() => {
                match yagura_daemon::config::load::<WatchConfig>(path) {
                    Ok(l) => {
                        for w in l.warnings.lines().filter(|l| !l.trim().is_empty()) {
                            tracing::warn!("{w}");
                        }
                        match daemon.reload(l.config).await {
                            Ok(()) => {
                                daemon.runtime_metrics.reload(true);
                                tracing::info!("configuration reloaded");
                            }
                            Err(e) => {
                                daemon.runtime_metrics.reload(false);
                                tracing::error!(error = %e, "reload partly applied");
                            }
                        }
                    }
                    Err(e) => {
                        daemon.runtime_metrics.reload(false);
                        tracing::error!("reload refused, the running configuration stays in force:\n{e}");
                    }
                }
            }
        }
    }
    daemon.shutdown().await;
    Ok(())
}

/// Builds the tokio runtime, installs logging and runs [`run`] (what `yagura watch --config FILE` calls).
pub fn run_blocking(path: &Path, log: yagura_daemon::log::LogFormat) -> Result<(), WatchError> {
    yagura_daemon::log::init(log);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("watch-io")
        .build()?;
    rt.block_on(run(path))
}
